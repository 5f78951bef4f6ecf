"""Coverage-guided fuzzing of stage 2, :mod:`ingest.extract` over :mod:`ingest.decode`'s output.

    python tests/fuzz/fuzz_extract.py -atheris_runs=100000
    mkdir -p /tmp/corpus-extract
    python tests/fuzz/fuzz_extract.py -max_total_time=600 /tmp/corpus-extract tests/fuzz/seeds/extract
    python tests/fuzz/fuzz_extract.py tests/fuzz/regressions/extract/*       # replay, exit 0

An input is `[selector][body...]`: selector % 3 picks the body format (JSON, NDJSON, text) and
selector // 3 % 4 the limits (record size 256 B .. 1 MiB, depth 2 .. 64). The body is parsed
(only a 400 may come out) and extracted with the bundled registry; the properties checked:

* extraction never raises, and every record is counted exactly once (accepted, discarded or
  rejected); no record ever reaches the catch-all dead letter (reason "internal");
* every event line is a valid canonical event (JSON, a registry name, RFC 3339 times, entity
  columns of at most 256 characters) within the record limit; every dead letter is valid JSON
  with a known reason;
* the lazy JSON path (simdjson) extracts exactly what the same records read by orjson do.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime

import _common  # first: puts the repository on sys.path
import atheris

with atheris.instrument_imports(include=["ingest"]):
    from ingest.decode import BodyFormat, LazyArray, ParsedBody, parse_records
    from ingest.extract import Extractor, Limits
    from ingest.metrics import DISCARD_REASONS, REJECT_REASONS
    from ingest.registry import PiiHasher, load_registry
    from ingest.status import RequestError

import orjson

REGISTRY = load_registry()
FORMATS = list(BodyFormat)
LIMITS = [Limits(1 << 20, 64), Limits(4096, 8), Limits(512, 4), Limits(256, 2)]
EXTRACTORS = [Extractor(REGISTRY, lim, PiiHasher(b"fuzz")) for lim in LIMITS]
RECEIVED = datetime(2026, 11, 23, 9, 0, 0, tzinfo=UTC)
RECEIVED_AT = "2026-11-23T09:00:00.000000Z"
RFC3339_US = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
CANONICAL_KEYS = ["event_id", "event_name", "event_version", "occurred_at", "received_at",
                  "service", "host", *REGISTRY.entities, "properties"]  # fmt: skip


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
    ex = EXTRACTORS[data[0] // len(FORMATS) % len(EXTRACTORS)]
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
        assert line.endswith(b"\n") and len(line) <= ex.limits.max_record_bytes
        row = orjson.loads(line)
        assert list(row) == CANONICAL_KEYS, list(row)
        assert row["event_name"] in REGISTRY.events
        assert RFC3339_US.fullmatch(row["occurred_at"]), row["occurred_at"]
        assert row["received_at"] == RECEIVED_AT
        assert isinstance(row["event_id"], str) and 0 < len(row["event_id"]) <= 128
        for ent in REGISTRY.entities:
            v = row[ent]
            assert v is None or (isinstance(v, str) and 0 < len(v) <= 256), (ent, v)
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
    return {name: bytes([sel[name.split("-")[0]]]) + body for name, body in out.items()}


if __name__ == "__main__":
    _common.main(test_one_input, seeds)
