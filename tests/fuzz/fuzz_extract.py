"""Coverage-guided fuzzing of :mod:`ingest.extract` over :mod:`ingest.records`' output.

    python tests/fuzz/fuzz_extract.py -atheris_runs=100000
    mkdir -p /tmp/corpus-extract
    python tests/fuzz/fuzz_extract.py -max_total_time=600 /tmp/corpus-extract tests/fuzz/seeds/extract
    python tests/fuzz/fuzz_extract.py tests/fuzz/regressions/extract/*       # replay, exit 0

An input is `[selector][body...]`: selector % 3 picks the body format (JSON, NDJSON, text),
selector // 3 % 4 the limits (record size 256 B .. 1 MiB, depth 2 .. 64, and one of 8 MiB and
depth 1,000 — above what the warehouse holds) and selector // 12 % 2 the registry: the bundled
one, or a small one with free-form fields (`t.all`: every field type; `t.open`: undeclared
fields kept). The body is parsed (only a 400 may come out) and extracted; the properties
checked:

* extraction never raises, and every record is counted exactly once (accepted, discarded or
  rejected); no record ever reaches the catch-all dead letter (reason "internal");
* every event line passes :func:`ingest.event.canonical_problems` — the one description of
  what both warehouses load (column order, rendered RFC 3339 times in 1970-2199, ids and text
  columns within their byte widths, no U+0000, integers within 64 bits, bounded strings, keys
  and nesting) — names a registry event, and is within the record limit; every dead letter
  is valid JSON with a known reason;
* the lazy JSON path (simdjson) extracts exactly what the same records read by orjson do.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import _common  # first: puts the repository on sys.path
import atheris

with atheris.instrument_imports(include=["ingest"]):
    from ingest.event import DISCARD_REASONS, REJECT_REASONS, canonical_problems
    from ingest.extract import Extractor, Limits
    from ingest.records import BodyFormat, LazyArray, ParsedBody, parse_records
    from ingest.registry import PiiHasher, load_registry, parse_registry
    from ingest.status import RequestError

import orjson

FREE_FORM = parse_registry(
    """
version: 1
entities: [delivery_id, robot_id]
events:
  t.all:
    fields:
      delivery_id: {type: string}
      robot_id: {type: integer}
      s: {type: string}
      n: {type: number}
      t: {type: timestamp}
      o: {type: object}
      a: {type: array}
      p: {type: string, pii: hash}
  t.open:
    extra: allow
    fields: {}
""",
    "fuzz free-form",
)
REGISTRIES = [load_registry(), FREE_FORM]
FORMATS = list(BodyFormat)
LIMITS = [Limits(1 << 20, 64), Limits(4096, 8), Limits(256, 2), Limits(8 << 20, 1000)]
EXTRACTORS = [[Extractor(reg, lim, PiiHasher(b"fuzz")) for lim in LIMITS] for reg in REGISTRIES]
RECEIVED = datetime(2026, 11, 23, 9, 0, 0, tzinfo=UTC)
RECEIVED_AT = "2026-11-23T09:00:00.000000Z"


def _outcome(out):  # type: ignore[no-untyped-def]
    return out.events, out.rejected, out.accepted, out.discarded, out.rejects


def _no_duplicate_keys(pairs: list) -> dict:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key")
    return dict(pairs)


def _plain_json(body: bytes) -> list | None:
    """The batch as orjson reads it, when a reference reading is unambiguous: valid JSON
    without duplicate keys (readers differ on which one wins inside the lazy path)."""
    try:
        ref = orjson.loads(body)
        json.loads(body, object_pairs_hook=_no_duplicate_keys)
    except (ValueError, RecursionError):
        return None
    return ref if isinstance(ref, list) else None


def test_one_input(data: bytes) -> None:
    if not data:
        return
    fmt = FORMATS[data[0] % len(FORMATS)]
    registry = REGISTRIES[data[0] // 12 % len(REGISTRIES)]
    ex = EXTRACTORS[data[0] // 12 % len(REGISTRIES)][data[0] // len(FORMATS) % len(LIMITS)]
    body = data[1:]
    try:
        parsed = parse_records(body, fmt)
    except RequestError as exc:
        assert exc.status == 400 and fmt is BodyFormat.JSON, exc.reason
        return
    n = len(parsed.records) + len(parsed.bad)
    out = ex.extract(parsed, RECEIVED)
    counted = sum(out.accepted.values()) + sum(out.discarded.values()) + sum(out.rejects.values())
    assert counted == n, (counted, n)
    assert set(out.discarded) <= set(DISCARD_REASONS), out.discarded
    reasons = {reason for _, reason in out.rejects}
    assert reasons <= set(REJECT_REASONS) - {"internal"}, out.rejects
    assert len(out.events) == sum(out.accepted.values())
    assert len(out.rejected) == sum(out.rejects.values())
    for line in out.events:
        assert len(line) <= ex.limits.max_record_bytes
        problems = canonical_problems(line, registry.entities)
        assert not problems, (problems, line[:400])
        row = orjson.loads(line)
        assert row["event_name"] in registry.events
        assert row["received_at"] == RECEIVED_AT
    for line in out.rejected:
        letter = orjson.loads(line)
        assert letter["reason"] in REJECT_REASONS and letter["received_at"] == RECEIVED_AT
    if type(parsed.records) is LazyArray:
        ref = _plain_json(body)
        if ref is not None:
            eager = ex.extract(ParsedBody(ref), RECEIVED)
            assert _outcome(ex.extract(parse_records(body, fmt), RECEIVED)) == _outcome(eager)


def seeds() -> dict[str, bytes]:
    """Starting inputs: batches shaped as every sender makes them, in every format."""
    sys.path.insert(0, str(_common.ROOT))
    from tests.payloads import app_event, datadog_record, noise_record, pickup, vector_record

    ev = [
        pickup(),
        app_event(
            "robot.state_changed",
            robot_id="R-1",
            to_state="charging",
            from_state="on_trip",
            customer_phone="+1-555",
            ts="2026-11-23T08:00:00Z",
        ),
        app_event("robot.error", robot_id=7, error_code="lid", timestamp=1795422600123),
        {"evt": {"name": "robot.error"}, "robot_id": "R", "error_code": "E", "time": 1795422600},
        {"event": "robot.state_changed", "properties": {"robot_id": "R", "to_state": "flying"}},
        {"event": "not.registered", "x": 1},
    ]
    records = [
        *(vector_record(e) for e in ev),
        *(datadog_record(e) for e in ev),
        {"log": orjson.dumps(ev[0]).decode(), "date": 1795422600.25},
        {"message": None, "log": orjson.dumps(ev[2]).decode()},
        noise_record(3),
        "a string record",
        42,
    ]
    out = {
        "json-vector": orjson.dumps([vector_record(e) for e in ev] + [noise_record(1)]),
        "json-datadog": orjson.dumps([datadog_record(e) for e in ev]),
        "json-bare": orjson.dumps(ev),
        "json-mixed": orjson.dumps(records),
        "json-one": orjson.dumps(ev[1]),
        "json-bad": b'[{"event":"robot.error","robot_id":"R","error_code":"E","x":NaN},'
        + b'{"event":"robot.error","robot_id":"\xff","error_code":"E"},{"a":'
        + b"[" * 100
        + b"]}]",
        "ndjson-mixed": b"\n".join(orjson.dumps(r) for r in records) + b"\n{broken\n",
        "text-lines": b"\n".join(orjson.dumps(e) for e in ev) + b"\nGET / 200\r\n",
    }
    sel = {"json": 0, "ndjson": 1, "text": 2}
    seeds = {name: bytes([sel[name.split("-")[0]]]) + body for name, body in out.items()}
    # Values the warehouse refuses, for the free-form registry (selector 12 + format), and
    # times of every shape; stdlib json writes what orjson will not (NaN, huge integers,
    # \u escapes of NUL and of surrogate pairs).
    deep: object = 1
    for _ in range(300):
        deep = [deep]
    hostile = [
        {"event": "t.all", "ts": "2026-W47-1T08:30:00Z", "s": "a\x00b"},
        {"event": "t.all", "ts": "2026-11-23T08:30:00.\u0663Z", "o": {"": 2**63}},
        {"event": "t.all", "time": "\uff12\uff10\uff12\uff16-11-23T08:30:00Z", "a": [2**64]},
        {"event": "t.all", "ts": "20261123T083000,5+01:00", "t": "0005-01-01T00:00:00Z"},
        {"event": "t.all", "ts": 10**30, "o": {"k" * 200: "x"}, "n": 1e308},
        {"event": "t.all", "ts": "9999-12-31T23:59:59-01:00", "a": deep},
        {"event": "t.open", "event_id": "\U0001f600" * 128, "free": {"x\x00": 1}},
        {"event": "t.open", "timestamp": "\u0661\u0667\u0669\u0665", "big": 10**400},
        {"event": "t.all", "delivery_id": "\u00e9" * 300, "robot_id": 7, "s": "\ud83d\ude00"},
    ]
    seeds["json-hostile"] = bytes([12]) + json.dumps(hostile).encode()
    seeds["ndjson-hostile"] = bytes([13]) + "\n".join(
        json.dumps(vector_record(json.dumps(h)), ensure_ascii=False) for h in hostile
    ).encode("utf-8", "surrogatepass")
    return seeds


if __name__ == "__main__":
    _common.main(test_one_input, seeds)
