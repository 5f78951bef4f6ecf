"""Every key layout of the lake, in one place: what ingest writes, what the loader lists, and
where the loader puts its manifests and the objects it refuses
(docs/architecture.md#lake-layout).

::

    events/dt=YYYY-MM-DD/hour=HH/<writer>-<origin>-<seq>.json.gz     accepted events
    rejected/dt=YYYY-MM-DD/hour=HH/<writer>-<origin>-<seq>.json.gz   dead letters
    <object key without .json.gz>-<sha256[:16]>.json.gz              the same, its key taken
    manifests/dt=YYYY-MM-DD/HHMMSS-<12 hex>.json                     one COPY's manifest
    quarantine/<object key>                                          a poison object, moved
    quarantine/<object key>.<YYYYmmddTHHMMSSffffffZ>                 a later one, same key
    quarantine/<object key>.reason.json                              why it was moved

`dt`/`hour` is the UTC hour ingest *received* the events, so a new object appears only in a
recent partition and the loader lists only those (see :mod:`loader.discovery`). An object key
holds no sender value: the writer is the worker's configured name, the origin the id of the
spool that wrote the segment, the sequence that spool's counter. So the key is deterministic:
a segment uploaded twice (a crash between upload and delete) meets its own key.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime

#: The streams of the lake, each a top-level prefix: events, and dead letters.
EVENTS = "events"
REJECTED = "rejected"
#: Every event object ends so (gzip NDJSON); anything else under a stream is not loaded.
OBJECT_SUFFIX = ".json.gz"
MANIFESTS = "manifests"
QUARANTINE = "quarantine"


def partition(received_at: datetime) -> str:
    """A batch's partition: the hour it was received, ``YYYY-MM-DDTHH`` (UTC). Its spool
    segments carry it in their names, and it becomes the object key's ``dt=``/``hour=``."""
    return received_at.astimezone(UTC).strftime("%Y-%m-%dT%H")


def partition_day(part: str) -> str:
    """``dt=`` of a partition: ``YYYY-MM-DD``."""
    return part[:10]


def partition_hour(part: str) -> str:
    """``hour=`` of a partition: ``HH``."""
    return part[11:13]


def object_key(stream: str, dt: str, hour: str, writer: str, origin: str, seq: int) -> str:
    """`<stream>/dt=YYYY-MM-DD/hour=HH/<writer>-<origin spool id>-<sequence>.json.gz`."""
    return f"{stream}/dt={dt}/hour={hour}/{writer}-{origin}-{seq:012d}{OBJECT_SUFFIX}"


def content_key(key: str, body: bytes) -> str:
    """The fallback for a taken key: the same name plus a digest of the object, so it cannot
    collide with another segment's, and a retry after a crash finds its own bytes there."""
    digest = hashlib.sha256(body).hexdigest()[:16]
    return key.removesuffix(OBJECT_SUFFIX) + f"-{digest}{OBJECT_SUFFIX}"


def is_object(key: str) -> bool:
    """Whether a listed key is an event object (not a temporary or foreign file)."""
    return key.endswith(OBJECT_SUFFIX)


def stream_prefix(stream: str) -> str:
    """Every object of `stream`: `events/`."""
    return f"{stream}/"


def day_prefix(stream: str, day: date) -> str:
    """The objects of `stream` received on `day` (UTC): `events/dt=YYYY-MM-DD/`."""
    return f"{stream}/dt={day.isoformat()}/"


def manifest_key(at: datetime, token: str) -> str:
    """A manifest written at `at` (UTC); `token` (random hex) keeps two in a second apart."""
    return f"{MANIFESTS}/dt={at:%Y-%m-%d}/{at:%H%M%S}-{token}.json"


def quarantine_key(key: str) -> str:
    """Where the poison object `key` is moved."""
    return f"{QUARANTINE}/{key}"


def quarantine_copy_key(key: str, at: datetime) -> str:
    """Where `key` goes when :func:`quarantine_key` already holds an earlier one (the same
    object after a crash, or one re-queued by copying it back): both are kept."""
    return f"{QUARANTINE}/{key}.{at:%Y%m%dT%H%M%S%fZ}"


def quarantine_note_key(key: str) -> str:
    """The JSON note saying why `key` was quarantined, and when."""
    return f"{QUARANTINE}/{key}.reason.json"
