"""Whatever ingest acknowledges, the warehouse loads — checked across the boundary.

Hypothesis writes hostile batches (times of every shape and script, strings with U+0000,
control and non-BMP characters, other scripts' digits, numbers at and past every edge, deep
nesting, empty and huge keys, long and multi-byte ids, every sender's envelope, JSON with NaN
and 400-digit integers, invalid UTF-8). Each batch goes through the real parser and the real
`Extractor`; every accepted event line goes, as ingest's uploader writes it, into a gzip lake
object (one per batch), and all objects are loaded in ONE load transaction through the
loader's own warehouse code: DuckDB's `read_json` stage and the Redshift emulator's manifest
COPY (PostgreSQL behind a Redshift wire proxy, objects in moto S3). The load must not fail,
and every accepted event must be in `events` with its event_id and occurred_at (and, when its
id is unique, every column as written).

Fixed cases (`REGRESSIONS`) — the ones the review and this test found — go into the same load
every run, so each keeps failing on the old code however hypothesis draws.
"""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.event import canonical_problems
from ingest.extract import Extractor, Limits
from ingest.lake import ObjectInfo
from ingest.records import BodyFormat, parse_records
from ingest.registry import PiiHasher, parse_registry
from ingest.status import RequestError
from loader.warehouse import DuckDBWarehouse, RedshiftWarehouse
from tests.conftest import s3_client
from tests.payloads import datadog_record, vector_record

REGISTRY = parse_registry(
    """
version: 1
entities: [delivery_id, robot_id, site_id]
events:
  test.every_type:
    fields:
      delivery_id: {type: string, required: true}
      robot_id: {type: integer}
      site_id: {type: string}
      s: {type: string}
      n: {type: number}
      i: {type: integer}
      b: {type: boolean}
      t: {type: timestamp}
      o: {type: object}
      a: {type: array}
      e: {type: string, enum: [low, high]}
      phone: {type: string, pii: hash}
      name: {type: string, pii: drop}
  test.open:
    extra: allow
    fields:
      robot_id: {type: string}
  test.flat:
    fields:
      delivery_id: {type: string}
      note: {type: string}
""",
    "accepted-loads",
)
ENTITIES = REGISTRY.entities
EXTRACTOR = Extractor(REGISTRY, Limits(1 << 20, 64), PiiHasher(b"hostile"))
RECEIVED = datetime(2026, 11, 23, 9, 0, 0, tzinfo=UTC)
EXAMPLES = 150
ROLE = "arn:aws:iam::123456789012:role/logship-loader"

# ------------------------------------------------------------------ hostile values

LONG = ["x" * 65535, "é" * 32768, "😀" * 16384, "\x00" * 300, "k" * 70000]
ODD_TEXT = [
    "", " ", "\x00", "a\x00b", "\\u0000", "\x01\x1f\x7f", "\x1b[31mred", "\u2028\u2029",
    "\ufeff", "\uffff", "\ufffe", "\U0010ffff", "😀", "é" * 300, "😀" * 128, "😀" * 129,
    "x" * 128, "x" * 129, "x" * 257, "٣٤", "２０２６", "²", "null", "true", "{}", '"', "\\",
]  # fmt: skip
DIGIT_SCRIPTS = [
    str.maketrans("0123456789", "０１２３４５６７８９"),
    str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"),
    str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"),
]
EDGE_NUMBERS = [
    0, -1, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63),
    -(2**63) - 1, 10**30, 10**400, 1e308, -1e308, 5e-324, 2.2250738585072014e-308, -0.0,
    float("nan"), float("inf"), float("-inf"), 0.1,
]  # fmt: skip
ODD_TIMES = [
    "2026-W47-1T08:30:00Z", "2026-W47-1", "2026-327", "20261123T083000Z", "2026-11-23",
    "2026-11-23T08", "2026-11-23T24:00:00Z", "2026-11-23T23:59:60Z", "2026-02-30T00:00:00Z",
    "2026-11-23T08:30:00,5Z", "2026-11-23T08:30:00.Z", "2026-11-23T08:30:00123Z",
    "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "1969-12-31T23:59:59.999999Z",
    "1970-01-01T00:00:00Z", "2199-12-31T23:59:59.9999999Z", "2200-01-01T00:00:00Z",
    "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "2026-11-23T08:30:00+23:59",
    "  2026-11-23T08:30:00Z  ", "2026-11-23T08:30:00Z\u3000", "", "now", "1795422600",
    "1795422600.123", "-1", "1e10", "0x10", 7258118399.999999, 7258118400, 1795422600123456789,
    -1, 0, 10**400, True, None, {}, [],
]  # fmt: skip

keys = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=8),
    st.sampled_from(["", "k" * 127, "k" * 128, "é" * 63, "é" * 64, "a\x00", "event", "ts"]),
)
#: Mostly text an event may well hold (so that many hostile events are accepted and must
#: load), often the odd and the too long.
clean_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=24)
texts = st.one_of(
    clean_text,
    clean_text,
    st.text(st.characters(codec="utf-8"), max_size=24),
    st.sampled_from(ODD_TEXT),
    st.sampled_from(LONG),
)
numbers = st.one_of(
    st.sampled_from(EDGE_NUMBERS),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
)
scalars = st.none() | st.booleans() | numbers | texts


def nested(depth: int, leaf: Any) -> Any:
    for i in range(depth):
        leaf = [leaf] if i % 2 else {"d": leaf}
    return leaf


json_values = st.one_of(
    st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
        max_leaves=8,
    ),
    st.builds(nested, st.sampled_from([2, 62, 63, 64, 65, 120, 249, 250, 251, 300]), scalars),
)


def in_script(text: str, table: dict[int, str]) -> str:
    return text.translate(table)


@st.composite
def rfc3339(draw: st.DrawFn) -> str:
    """RFC 3339-ish text of any year, separator, fraction, offset — and case."""
    when = draw(st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31)))
    year = draw(st.sampled_from([f"{when.year:04d}", str(when.year)]))  # strftime's "%Y": "5"
    sep = draw(st.sampled_from(["T", "t", " "]))
    frac = draw(st.sampled_from(["", ".1", ".123", ".123456", ".123456789", ".000000000001"]))
    tz = draw(st.sampled_from(["Z", "z", "+00:00", "-05:30", "+14:00", "", "+01", "-23:59"]))
    return f"{year}-{when:%m-%d}{sep}{when:%H:%M:%S}{frac}{tz}"


@st.composite
def iso_week_or_basic(draw: st.DrawFn) -> str:
    """ISO 8601 shapes other than RFC 3339 — week dates, ordinal dates, the basic format — of
    the same length as the common one (the fast path once echoed them)."""
    when = draw(st.datetimes(datetime(1900, 1, 1), datetime(2300, 12, 31)))
    year, week, day = when.isocalendar()
    clock = f"{when:%H:%M:%S}"
    return draw(
        st.sampled_from(
            [
                f"{year:04d}-W{week:02d}-{day}T{clock}Z",
                f"{year:04d}W{week:02d}{day}T{when:%H%M%S}Z",
                f"{when.year:04d}-{when.timetuple().tm_yday:03d}T{clock}Z",
                f"{when:%Y%m%dT%H%M%S}.{when.microsecond:06d}Z",
            ]
        )
    )


times = st.one_of(
    rfc3339(),
    iso_week_or_basic(),
    st.builds(in_script, rfc3339(), st.sampled_from(DIGIT_SCRIPTS)),
    st.sampled_from(ODD_TIMES),
    st.integers(-(10**20), 10**20),
    st.floats(),
    st.datetimes(datetime(1971, 1, 1), datetime(2199, 1, 1)).map(
        lambda d: d.replace(tzinfo=UTC).timestamp() * draw_unit(d)
    ),
)


def draw_unit(d: datetime) -> float:
    """Seconds, ms, µs or ns, picked from the value itself (hypothesis shrinks it anyway)."""
    return (1, 1e3, 1e6, 1e9)[d.microsecond % 4]


@st.composite
def event_body(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from([*REGISTRY.events, *REGISTRY.events, "not.registered"]))
    body: dict[str, Any] = {}
    if name == "test.every_type":
        fields = {
            "delivery_id": texts | numbers, "robot_id": numbers | texts, "site_id": texts,
            "s": texts, "n": numbers, "i": numbers, "b": st.booleans() | texts,
            "t": times, "o": json_values, "a": json_values, "e": st.sampled_from(["low", "x"]),
            "phone": texts, "name": texts,
        }  # fmt: skip
    elif name == "test.open":
        fields = {"robot_id": texts, **{f"x{i}": json_values for i in range(3)}}
    else:
        fields = {"delivery_id": texts, "note": texts}
    for key, values in fields.items():
        if draw(st.integers(0, 3)):  # mostly present
            body[key] = draw(values)
    if name == "test.open" and draw(st.booleans()):
        body.update(draw(st.dictionaries(keys, json_values, max_size=2)))
    if draw(st.booleans()):
        body[draw(st.sampled_from(["timestamp", "time", "ts"]))] = draw(times)
    if draw(st.booleans()):
        body["event_id"] = draw(texts | numbers | st.none())
    if draw(st.booleans()):
        body["service"], body["host"] = draw(texts), draw(texts | numbers)
    shape = draw(st.sampled_from(["event", "evt.name", "evt", "properties"]))
    if shape == "properties":
        return {"event": name, "properties": body, "event_id": body.pop("event_id", None)}
    if shape == "evt":
        return {"evt": {"name": name}, **body}
    return {shape: name, **body}


@st.composite
def record(draw: st.DrawFn) -> Any:
    """One event as each sender wraps it, with hostile envelope values."""
    body = draw(event_body())
    wrap = draw(st.sampled_from(["bare", "bare", "vector", "datadog", "fluentbit", "noise"]))
    if wrap == "bare":
        return body
    if wrap == "noise":
        return draw(texts | numbers | st.lists(scalars, max_size=2))
    message = json.dumps(body, allow_nan=True, ensure_ascii=draw(st.booleans()))
    env = {}
    if draw(st.booleans()):
        env["host"] = draw(texts | numbers)
    if draw(st.booleans()):
        env["timestamp"] = draw(times)
    if wrap == "vector":
        rec = vector_record(message, **env)
        if draw(st.booleans()):
            rec["kubernetes"]["pod_labels"]["app"] = draw(texts | numbers)
        return rec
    if wrap == "datadog":
        return datadog_record(message, **env)
    return {"log": message, "date": draw(times), "kubernetes": {"host": draw(texts)}}


GOOD = {"event": "test.flat", "delivery_id": "D-good", "note": "fine"}


@st.composite
def batch(draw: st.DrawFn) -> tuple[bytes, BodyFormat]:
    """A request body: a JSON array, NDJSON or text lines, written by the stdlib (NaN, huge
    integers, \\u escapes), sometimes with a byte of invalid UTF-8; always two good events."""
    records = [
        {**GOOD, "event_id": f"good-{draw(st.uuids())}"},
        *draw(st.lists(record(), min_size=6, max_size=30)),
        {**GOOD, "ts": "2026-11-23T08:30:00Z", "note": draw(texts.filter(lambda t: "\x00" not in t and len(t) < 1000))},
    ]  # fmt: skip
    fmt = draw(st.sampled_from(list(BodyFormat)))
    ascii_only = draw(st.booleans())

    def dumps(v: Any) -> str:
        return json.dumps(v, allow_nan=True, ensure_ascii=ascii_only)

    text = dumps(records) if fmt is BodyFormat.JSON else "\n".join(map(dumps, records))
    body = text.encode("utf-8")
    if draw(st.integers(0, 9)) == 0:  # invalid UTF-8 somewhere: the lenient path
        at = draw(st.integers(0, len(body)))
        body = body[:at] + b"\xff" + body[at:]
    return body, fmt


# ------------------------------------------------------------------ fixed cases


def regression_records() -> list[Any]:
    """The cases of the review and of this test, one record each; each one broke a load (or
    was dead-lettered by the catch-all) before the canonical form."""
    deep_ok = nested(60, "x")
    return [
        {"event": "test.flat", "ts": "2026-W47-1T08:30:00Z", "note": "iso week date"},
        {"event": "test.flat", "ts": "20261123T083000,5+01:00", "note": "basic + comma"},
        {"event": "test.flat", "ts": "2026-11-23T08:30:00.²Z", "note": "superscript digit"},
        {"event": "test.flat", "ts": "١٧٩٥٤٢٢٦٠٠", "note": "arabic-indic epoch"},
        {"event": "test.flat", "ts": "9999-12-31T23:59:59-01:00", "note": "off calendar"},
        {"event": "test.flat", "ts": 10**400, "note": "integer beyond float"},
        {"event": "test.flat", "note": "nul \x00 in a property"},
        {"event": "test.flat", "event_id": "nul\x00id", "note": "nul in event_id"},
        {"event": "test.every_type", "delivery_id": "D", "o": {"n": 2**63}},
        {"event": "test.every_type", "delivery_id": "D", "a": [2**64 - 1]},
        {"event": "test.every_type", "delivery_id": "D", "o": {"": 1, "k" * 200: 2}},
        {"event": "test.every_type", "delivery_id": "D", "s": "é" * 40000},
        {"event": "test.every_type", "delivery_id": "D", "t": "0005-01-01T00:00:00Z"},
        {"event": "test.every_type", "delivery_id": "D", "t": "0001-01-01T00:00:00+01:00"},
        {"event": "test.every_type", "delivery_id": "D", "a": [1e308, 5e-324, -0.0]},
        {"event": "test.every_type", "delivery_id": "D", "a": deep_ok},
        {
            "event": "test.every_type",
            "delivery_id": "😀" * 300,
            "robot_id": 2**63 - 1,
            "event_id": "😀" * 128,
            "service": "😀" * 300,
            "host": "\x00",
        },
        {"event": "test.open", "robot_id": "R", "big": 10**30, "key\x00": 1},
        {"event": "test.flat", "site_id": 10**30, "host": 2**64, "note": "huge ids"},
        vector_record(
            json.dumps({"event": "test.flat", "note": "envelope"}),
            host="node\x00",
            timestamp="2026-W47-1T08:30:00Z",
        ),
    ]


# ------------------------------------------------------------------ generating the lake


@dataclass
class Lake:
    """The accepted lines, one gzip object per batch, and what each event should look like."""

    objects: list[tuple[str, bytes]] = field(default_factory=list)
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    #: Records not accepted, by reason (rejects, discards, and "400" for a refused body).
    refused: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, body: bytes, fmt: BodyFormat) -> None:
        n = len(self.objects)
        try:
            parsed = parse_records(body, fmt)
        except RequestError:
            self.refused["400"] += 1
            return  # nothing acknowledged
        out = EXTRACTOR.extract(parsed, RECEIVED + timedelta(seconds=n))
        assert "internal" not in {r for _, r in out.rejects}, out.rejected
        for (_, reason), count in out.rejects.items():
            self.refused[reason] += count
        for reason, count in out.discarded.items():
            self.refused[reason] += count
        for line in out.events:
            assert canonical_problems(line, ENTITIES) == [], line[:400]
            row = orjson.loads(line)
            self.rows[row["event_id"]].append(row)
        if out.events:
            key = f"events/dt=2026-11-23/hour=09/w0-hostile-{n:012d}.json.gz"
            self.objects.append((key, gzip.compress(b"".join(out.events))))

    @property
    def events(self) -> int:
        return sum(len(r) for r in self.rows.values())


@pytest.fixture(scope="module")
def lake() -> Lake:
    built = Lake()
    built.add(json.dumps(regression_records()).encode(), BodyFormat.JSON)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(b=batch())
    def generate(b: tuple[bytes, BodyFormat]) -> None:
        built.add(*b)

    generate()
    # Enough accepted to mean something (most hostile records are refused, as they should be).
    assert len(built.objects) >= EXAMPLES // 2 and built.events >= 2 * EXAMPLES, built.refused
    return built


# ------------------------------------------------------------------ checking a warehouse


def check_loaded(lake: Lake, rows: list[tuple[Any, ...]]) -> None:
    """Every accepted event is there once, with its id and one of its occurred_at; an event
    whose id no other shares has every column as written."""
    cols = ["event_id", "event_name", "occurred_at", "service", "host", *ENTITIES, "properties"]
    got = {r[0]: dict(zip(cols, r, strict=True)) for r in rows}
    assert len(got) == len(rows), "an event_id loaded twice"
    assert set(got) == set(lake.rows), set(lake.rows) ^ set(got)
    for eid, written in lake.rows.items():
        have = got[eid]
        times = {_utc(w["occurred_at"]) for w in written}
        assert _utc(have["occurred_at"]) in times, (eid, have["occurred_at"], times)
        if len(written) == 1:
            (want,) = written
            for col in ("event_name", "service", "host", *ENTITIES):
                assert have[col] == want[col], (eid, col, have[col], want[col])
            assert _numbers_as_written(_json(have["properties"]), want["properties"]), eid


def _utc(v: Any) -> datetime:
    if isinstance(v, str):
        v = datetime.fromisoformat(v.replace("Z", "+00:00"))
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


def _json(v: Any) -> Any:
    return orjson.loads(v) if isinstance(v, str | bytes) else v


def _numbers_as_written(have: Any, want: Any) -> bool:
    """Equal JSON, a float equal to the one written even when the warehouse gives it back in
    another notation (PostgreSQL's numeric prints 1.5e+18 as 1500000000000000000)."""
    if type(want) is float:
        return type(have) in (int, float) and float(have) == want
    if type(want) is dict:
        return (
            type(have) is dict
            and have.keys() == want.keys()
            and all(_numbers_as_written(have[k], want[k]) for k in want)
        )
    if type(want) is list:
        return (
            type(have) is list
            and len(have) == len(want)
            and all(_numbers_as_written(h, w) for h, w in zip(have, want, strict=True))
        )
    return type(have) is type(want) and have == want


SELECT = (
    "SELECT event_id, event_name, occurred_at, service, host, "
    + ", ".join(ENTITIES)
    + ", properties FROM logship.events"
)


def test_every_accepted_event_loads_into_duckdb(lake: Lake, tmp_path: Path) -> None:
    root = tmp_path / "lake"
    infos = []
    for key, data in lake.objects:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        infos.append(ObjectInfo(key, len(data), datetime.now(UTC)))
    wh = DuckDBWarehouse(
        str(tmp_path / "wh.duckdb"),
        schema="logship",
        entities=ENTITIES,
        dedupe_window_s=7 * 86400,
        views=None,
    )
    try:
        wh.ensure_schema()
        outcome = wh.load(
            infos, lambda batch: str(root / "manifest.json"),
            lambda batch: [str(root / o.key) for o in batch],
        )  # fmt: skip
        assert sorted(outcome.loaded) == sorted(k for k, _ in lake.objects)
        assert outcome.staged_rows == lake.events
        check_loaded(lake, wh.query(SELECT))
    finally:
        wh.close()


@pytest.fixture
def s3_lake(s3_env: dict[str, str], moto_endpoint: str) -> Iterator[tuple[Any, str]]:
    yield s3_client(moto_endpoint), s3_env["BUCKET"]


def test_every_accepted_event_loads_into_redshift(
    lake: Lake, s3_lake: tuple[Any, str], redshift_db: dict[str, Any]
) -> None:
    s3, bucket = s3_lake
    infos = []
    for key, data in lake.objects:
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        infos.append(ObjectInfo(key, len(data), datetime.now(UTC)))

    def write_manifest(batch: list[ObjectInfo]) -> str:
        entries = [{"url": f"s3://{bucket}/{o.key}", "mandatory": True,
                    "meta": {"content_length": o.size}} for o in batch]  # fmt: skip
        s3.put_object(
            Bucket=bucket, Key="manifests/m.json", Body=orjson.dumps({"entries": entries})
        )
        return f"s3://{bucket}/manifests/m.json"

    db = redshift_db
    url = f"redshift://{db['user']}:{db['password']}@{db['host']}:{db['port']}/{db['database']}?ssl=false"
    wh = RedshiftWarehouse(
        url, ROLE, 60, schema="logship", entities=ENTITIES, dedupe_window_s=7 * 86400, views=None
    )
    try:
        wh.ensure_schema()
        try:
            outcome = wh.load(infos, write_manifest, lambda batch: [])
        except Exception as exc:
            named = wh.load_error_files([f"s3://{bucket}/{k}" for k, _ in lake.objects])
            pytest.fail(f"COPY failed: {exc}; {_culprits(lake, named)}")
        assert sorted(outcome.loaded) == sorted(k for k, _ in lake.objects)
        assert outcome.staged_rows == lake.events
        check_loaded(lake, wh.query(SELECT))
    finally:
        wh.close()


def _culprits(lake: Lake, named: list[tuple[str, str]]) -> str:
    """The lines Redshift's load errors point at, for the failure message."""
    out = []
    data = {k: gzip.decompress(v).splitlines() for k, v in lake.objects}
    for url, reason in named:
        key = url.split("/", 3)[3]
        number = int(reason.split(",")[0].removeprefix("line ")) if reason.startswith("line") else 0
        line = data.get(key, [b""])[max(0, number - 1)] if number else b""
        out.append(f"{key}: {reason}: {line[:500]!r}")
    return "; ".join(out) or "no file named"
