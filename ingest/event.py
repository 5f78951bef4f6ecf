"""The canonical event: the one definition of what a lake event line and an `events` row are.

Ingest writes exactly this (``ingest/extract.py`` rejects a record it cannot make so), the
loader's warehouse schema is derived from :data:`BASE_COLUMNS`, the registry refuses entity and
field names that would collide with it, and the metrics label rejects with
:data:`REJECT_REASONS`. Every limit is what both warehouses load — checked against their
documentation and against DuckDB's ``read_json`` and the Redshift emulator (PostgreSQL) in
tests/hostile/test_accepted_loads.py. A lake object is loaded whole or not at all, so one value
outside these bounds would take every good event of its object out of the warehouse.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

# ---------------------------------------------------------------------- limits of a line

#: Redshift's COPY refuses a JSON object above 4 MB, whatever LOGSHIP_MAX_RECORD_BYTES says.
MAX_LINE_BYTES = 4_000_000
#: A string inside SUPER is a VARCHAR: at most 65,535 bytes (UTF-8).
MAX_STRING_BYTES = 65535
#: Object keys inside `properties`: non-empty, at most a Redshift identifier's 127 bytes (a
#: longer or empty one cannot be named in a SUPER path).
MAX_KEY_BYTES = 127
#: Nesting of `properties` (the object itself is level 1): orjson serialises at most 254
#: levels (the line adds one) and SUPER holds at most 1,000.
MAX_PROPERTIES_DEPTH = 250
#: Integers are BIGINT: a JSON integer beyond 64 signed bits has no SUPER type.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Event times outside [1970, 2200) are not times but defaults (Go's zero time 0001-01-01,
#: 9999-12-31 sentinels); they would also overflow date arithmetic downstream.
MIN_YEAR, MAX_YEAR = 1970, 2199

# ---------------------------------------------------------------------- the columns

#: A Redshift VARCHAR counts bytes; a character of UTF-8 takes at most four.
BYTES_PER_CHAR = 4
#: `event_id`: a sender's own id is kept when it is 1..128 characters, else one is derived.
EVENT_ID_MAX_CHARS = 128
#: `event_name`: a registry name (ASCII), at most a Redshift identifier's 127 bytes.
EVENT_NAME_MAX_CHARS = 127
#: ... and its column width: registry names are ASCII, so 256 bytes hold the 127 characters
#: (the width since the start; `event_registry.event_name` has the same).
EVENT_NAME_VARCHAR_BYTES = 256
EVENT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]*(\.[a-z0-9_]+)*$")
#: `service`, `host` and the entity columns (`courier_id`, …): longer values are cut to this
#: many characters, so that one long id cannot fail the COPY of a whole lake object.
TEXT_MAX_CHARS = 256

ColumnKind = Literal["text", "integer", "timestamp", "json"]


@dataclass(frozen=True, slots=True)
class Column:
    """One column of `events`. The warehouse maps `kind` to its dialect's type (a text column
    to `VARCHAR(varchar_bytes)` where widths count, a `json` one to SUPER / JSON)."""

    name: str
    kind: ColumnKind
    #: NOT NULL in the table.
    required: bool = False
    #: Text: the most characters ingest writes (longer values are cut or replaced).
    max_chars: int | None = None
    #: Text: the width in bytes (Redshift's VARCHAR counts bytes), room for `max_chars`.
    varchar_bytes: int | None = None
    #: False for `loaded_at`, which the loader sets: not a key of a lake line.
    in_lake: bool = True


def _text(name: str, max_chars: int, *, required: bool = False) -> Column:
    return Column(name, "text", required, max_chars, max_chars * BYTES_PER_CHAR)


#: The columns of `events` before the entity columns, in table order.
BASE_COLUMNS: tuple[Column, ...] = (
    _text("event_id", EVENT_ID_MAX_CHARS, required=True),  # VARCHAR(512)
    Column("event_name", "text", True, EVENT_NAME_MAX_CHARS, EVENT_NAME_VARCHAR_BYTES),
    Column("event_version", "integer"),
    Column("occurred_at", "timestamp", required=True),
    Column("received_at", "timestamp", required=True),
    Column("loaded_at", "timestamp", in_lake=False),
    _text("service", TEXT_MAX_CHARS),  # VARCHAR(1024)
    _text("host", TEXT_MAX_CHARS),
)


def entity_column(name: str) -> Column:
    """The column of one registry entity (placed after the base columns): VARCHAR(1024)."""
    return _text(name, TEXT_MAX_CHARS)


#: The last column: the event's validated properties, an object (SUPER / JSON).
PROPERTIES = Column("properties", "json")

#: Column names the canonical event already uses; an entity may not shadow them.
RESERVED_COLUMNS = frozenset({*(c.name for c in BASE_COLUMNS), PROPERTIES.name})


def table_columns(entities: tuple[str, ...]) -> list[Column]:
    """Every column of `events`, in table order: the base columns, the registry's entities,
    then `properties`. The one place that order is written."""
    return [*BASE_COLUMNS, *(entity_column(e) for e in entities), PROPERTIES]


def columns(entities: tuple[str, ...]) -> list[str]:
    """The names of :func:`table_columns`."""
    return [c.name for c in table_columns(entities)]


def lake_columns(entities: tuple[str, ...]) -> list[str]:
    """The keys of a lake event line, in order: the table's columns but `loaded_at`."""
    return [c.name for c in table_columns(entities) if c.in_lake]


# ---------------------------------------------------------------------- the envelope

#: Keys naming the event, first found wins: `event`, `evt.name` (one key, with the dot), or
#: `evt` holding an object with a `name`.
EVENT_NAME_KEYS = ("event", "evt.name", "evt")
#: The key holding the event's properties; when absent, the event body itself is read.
PROPERTIES_KEY = "properties"
#: A sender's own event id.
EVENT_ID_KEY = "event_id"
#: The event's own time, first found wins.
TIME_KEYS = ("timestamp", "time", "ts")
#: The shipper's time of a record whose event is in its message (Vector/Datadog `timestamp`,
#: Fluent Bit `date`), used when the event has none of its own.
ENVELOPE_TIME_KEYS = ("timestamp", "date")
#: Where a shipper puts the log line: `message`, or `log` (Fluent Bit's tail input).
MESSAGE_KEYS = ("message", "log")
#: Keys of an event body that describe the envelope, not the event's properties.
ENVELOPE_KEYS = frozenset(
    {*EVENT_NAME_KEYS, EVENT_ID_KEY, *TIME_KEYS, "service", "host", "hostname", "message",
     PROPERTIES_KEY}
)  # fmt: skip
#: Registry field names that would be read as the event's envelope instead of as a property.
RESERVED_FIELDS = frozenset({"event", "evt", PROPERTIES_KEY})

# ---------------------------------------------------------------------- why a record is not loaded


class DiscardReason:
    """Why a record is dropped on purpose (label of logship_ingest_discarded_records_total)."""

    NO_EVENT_NAME = "no_event_name"
    UNREGISTERED_EVENT = "unregistered_event"


class RejectReason:
    """Why a record is dead-lettered: the `reason` of its dead letter and the label of
    logship_ingest_rejected_events_total."""

    VALIDATION = "validation"
    INVALID_JSON = "invalid_json"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_TIMESTAMP = "invalid_timestamp"
    NON_FINITE_NUMBER = "non_finite_number"
    NUMBER_OUT_OF_RANGE = "number_out_of_range"
    TOO_DEEP = "too_deep"
    RECORD_TOO_LARGE = "record_too_large"
    INVALID_CHARACTER = "invalid_character"
    INVALID_KEY = "invalid_key"
    VALUE_TOO_LARGE = "value_too_large"
    #: A bug: any exception extracting one record rejects that record alone.
    INTERNAL = "internal"


class Reject(Exception):
    """One record is rejected: `reason` (a :class:`RejectReason`) is its dead letter's reason
    and a metric label, `detail` is for humans."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _values(namespace: type) -> tuple[str, ...]:
    return tuple(v for k, v in vars(namespace).items() if k.isupper())


DISCARD_REASONS = _values(DiscardReason)
REJECT_REASONS = _values(RejectReason)

# ---------------------------------------------------------------------- time as text

_CANONICAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


def iso_utc(dt: datetime) -> str:
    """The one text form of a time: RFC 3339 UTC with microseconds, 2026-11-23T08:30:00.123456Z
    — in lake lines, registry timestamps and what the analyses print.

    A naive `dt` is UTC; an aware one is converted (OverflowError when that pushes it off the
    calendar, e.g. 0001-01-01T00:00+01:00). The text is rendered from the fields, never taken
    from an input's text (`isoformat` pads the year to four digits; `strftime("%Y")` does not).
    """
    if dt.tzinfo is not None and dt.utcoffset():
        dt = dt.astimezone(UTC)
    if dt.microsecond:  # (cheaper than isoformat's timespec="microseconds")
        return dt.isoformat()[:26] + "Z"
    return dt.isoformat()[:19] + ".000000Z"


# ---------------------------------------------------------------------- the contract, as code


def canonical_problems(line: bytes, entities: tuple[str, ...]) -> list[str]:
    """Everything wrong with `line` as a lake event line; empty when it is canonical.

    The canonical form, column by column (what DuckDB's `read_json` and Redshift's COPY JSON
    'auto' both load): one JSON object on one line ending in a newline, at most MAX_LINE_BYTES,
    its keys exactly :func:`lake_columns` in table order;
    `event_id` a string of 1..128 characters; `event_name` a registry name; `event_version` an
    INTEGER; `occurred_at`/`received_at` `YYYY-MM-DDTHH:MM:SS.ffffffZ`, a real UTC time in
    1970..2199; `service`, `host` and the entity columns null or 1..256 characters; no string
    or key anywhere holding U+0000; `properties` an object whose strings and keys are at most
    MAX_STRING_BYTES, keys non-empty and at most MAX_KEY_BYTES, integers within 64 signed bits,
    floats finite, nesting at most MAX_PROPERTIES_DEPTH. Ingest writes nothing else; tests and
    the fuzz harness check it here.
    """
    if not line.endswith(b"\n") or b"\n" in line[:-1]:
        return ["not exactly one line ending in a newline"]
    if len(line) > MAX_LINE_BYTES:
        return [f"line of {len(line)} bytes, above {MAX_LINE_BYTES}"]
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return [f"not JSON: {exc}"]
    if type(row) is not dict:
        return ["not a JSON object"]
    expected = lake_columns(entities)
    if list(row) != expected:
        return [f"columns {list(row)} are not {expected}"]
    problems: list[str] = []
    eid = row["event_id"]
    if type(eid) is not str or not 0 < len(eid) <= EVENT_ID_MAX_CHARS:
        problems.append(f"event_id {eid!r:.80} is not a string of 1..{EVENT_ID_MAX_CHARS}")
    name = row["event_name"]
    if type(name) is not str or len(name) > EVENT_NAME_MAX_CHARS or not EVENT_NAME_RE.match(name):
        problems.append(f"event_name {name!r:.80} is not a registry name")
    version = row["event_version"]
    if type(version) is not int or not 1 <= version <= 2**31 - 1:
        problems.append(f"event_version {version!r} is not a positive INTEGER")
    for col in ("occurred_at", "received_at"):
        problems += _time_problems(col, row[col])
    for col in ("service", "host", *entities):
        v = row[col]
        if v is not None and (type(v) is not str or not 0 < len(v) <= TEXT_MAX_CHARS):
            problems.append(f"{col} {v!r:.80} is not null or 1..{TEXT_MAX_CHARS} chars")
    if type(row["properties"]) is not dict:
        problems.append("properties is not an object")
    problems += _value_problems(row, 0)
    return problems


def utf8_len(s: str) -> int:
    """Bytes of `s` as UTF-8 (lone surrogates, from invalid input, count as three)."""
    return len(s.encode("utf-8", "surrogatepass"))


def _time_problems(col: str, v: Any) -> list[str]:
    if type(v) is not str or not _CANONICAL_TIME.fullmatch(v):
        return [f"{col} {v!r:.80} is not YYYY-MM-DDTHH:MM:SS.ffffffZ"]
    try:
        dt = datetime.fromisoformat(v[:-1])
    except ValueError:
        return [f"{col} {v!r} is not a valid time"]
    if not MIN_YEAR <= dt.year <= MAX_YEAR:
        return [f"{col} {v!r} is outside 1970..{MAX_YEAR}"]
    return []


def _value_problems(v: Any, depth: int) -> list[str]:
    """Bounds of every value of the line (`depth` 1 is `properties` itself)."""
    t = type(v)
    if t is str:
        if "\x00" in v:
            return [f"string {v!r:.60} holds U+0000"]
        if utf8_len(v) > MAX_STRING_BYTES:
            return [f"string of {utf8_len(v)} bytes, above {MAX_STRING_BYTES}"]
        return []
    if t is int:
        return [] if INT64_MIN <= v <= INT64_MAX else [f"integer {v} beyond 64 bits"]
    if t is float:
        return [] if math.isfinite(v) else [f"float {v} is not finite"]
    if v is None or t is bool:
        return []
    if depth > MAX_PROPERTIES_DEPTH:
        return [f"properties nest more than {MAX_PROPERTIES_DEPTH} levels"]
    out: list[str] = []
    if t is dict:
        for k, x in v.items():
            if depth >= 1 and not 0 < utf8_len(k) <= MAX_KEY_BYTES:
                out.append(f"key {k!r:.60} is empty or above {MAX_KEY_BYTES} bytes")
            if "\x00" in k:
                out.append(f"key {k!r:.60} holds U+0000")
            out += _value_problems(x, depth + 1)
        return out
    for x in v:
        out += _value_problems(x, depth + 1)
    return out
