"""Record → registry event rules of DESIGN §3, on the bundled registry: where the body is found,
name fields, properties, timestamps, ids, service/host, PII, discards and rejects."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.decode import BodyFormat, ParsedBody, parse_records
from ingest.extract import Extracted, Extractor, Limits, Reject, parse_timestamp
from ingest.registry import PiiHasher, load_registry
from tests.payloads import datadog_record, vector_record

RECEIVED = datetime(2026, 11, 23, 9, 0, 0, tzinfo=UTC)
REGISTRY = load_registry()


def run(records: list[Any], **limits: int) -> Extracted:
    ex = Extractor(
        REGISTRY,
        Limits(limits.get("max_record_bytes", 1 << 20), limits.get("max_json_depth", 64)),
        PiiHasher(b"k"),
    )
    return ex.extract(ParsedBody(records), RECEIVED)


def rows(out: Extracted) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in out.events]


def dead(out: Extracted) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in out.rejected]


def test_body_in_record_in_message_and_name_fields() -> None:
    ids = {"delivery_id": "D-1", "robot_id": "R-1"}
    out = run(
        [
            {"event": "delivery.pickup_completed", **ids},
            vector_record({"event": "delivery.pickup_completed", **ids}),
            {"evt.name": "delivery.pickup_completed", **ids},
            {"evt": {"name": "delivery.pickup_completed"}, **ids},
            vector_record({"evt": {"name": "delivery.pickup_completed"}, **ids}),
        ]
    )
    assert out.accepted == {"delivery.pickup_completed": 5}
    assert all(r["delivery_id"] == "D-1" and r["robot_id"] == "R-1" for r in rows(out))


def test_discards_are_counted_not_errors() -> None:
    out = run(
        [
            vector_record("plain text log"),
            vector_record('{"level":"info","msg":"no event here"}'),
            vector_record({"event": "not.in.registry", "x": 1}),
            {"event": "../../etc/passwd"},
            {"event": 'quote"s\n\x00'},
            "a bare string record",
            42,
        ]
    )
    assert out.events == [] and out.rejected == []
    assert out.discarded == {"no_event_name": 4, "unregistered_event": 3}


def test_validation_reject_is_dead_lettered_whole_with_reason() -> None:
    rec = vector_record({"event": "robot.state_changed", "robot_id": "R-1", "to_state": "flying"})
    out = run([rec])
    assert out.events == []
    (letter,) = dead(out)
    assert letter["reason"] == "validation"
    assert "to_state" in letter["detail"]
    assert letter["event_name"] == "robot.state_changed"
    # Whole: the envelope as received, the message with only its `pii` fields treated.
    assert {k: v for k, v in letter["record"].items() if k != "message"} == {
        k: v for k, v in rec.items() if k != "message"
    }
    assert orjson.loads(letter["record"]["message"]) == orjson.loads(rec["message"])
    assert out.rejects == {("robot.state_changed", "validation"): 1}


def test_properties_declared_only_and_segment_shape() -> None:
    out = run(
        [
            {
                "event": "robot.state_changed",
                "timestamp": "2026-11-23T07:00:00+01:00",
                "properties": {
                    "robot_id": 7,
                    "to_state": "charging",
                    "reason": "battery_low",
                    "undeclared": "dropped",
                },
            }
        ]
    )
    (row,) = rows(out)
    assert row["properties"] == {"robot_id": "7", "to_state": "charging", "reason": "battery_low"}
    assert row["robot_id"] == "7"
    assert row["occurred_at"] == "2026-11-23T06:00:00.000000Z"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-23T08:30:00Z", "2026-11-23T08:30:00.000000Z"),
        ("2026-11-23T08:30:00.123456789Z", "2026-11-23T08:30:00.123456Z"),
        ("2026-11-23 08:30:00", "2026-11-23T08:30:00.000000Z"),
        (1795422600, "2026-11-23T08:30:00.000000Z"),
        (1795422600123, "2026-11-23T08:30:00.123000Z"),
        ("1795422600123", "2026-11-23T08:30:00.123000Z"),
        (1795422600.5, "2026-11-23T08:30:00.500000Z"),
        ("2026-11-23T09:30:00.5+01:00", "2026-11-23T08:30:00.500000Z"),
        ("2026-11-23t08:30:00z", "2026-11-23T08:30:00.000000Z"),
    ],
)
def test_timestamps(value: Any, expected: str) -> None:
    ts = parse_timestamp(value)
    assert ts is not None
    assert ts[1] == expected
    assert abs(ts[0] - datetime.fromisoformat(expected).timestamp()) < 1e-6


def test_bad_timestamp_rejects() -> None:
    with pytest.raises(Reject):
        parse_timestamp("yesterday")
    out = run([{"event": "robot.error", "robot_id": "R", "error_code": "E1", "ts": "soon"}])
    assert [d["reason"] for d in dead(out)] == ["invalid_timestamp"]


def test_occurred_at_fallbacks() -> None:
    body = {"event": "robot.error", "robot_id": "R", "error_code": "lid_error"}
    vec, dd, bare = rows(run([vector_record(body), datadog_record(body), body]))
    assert vec["occurred_at"] == "2026-11-23T08:30:00.123456Z"  # Vector envelope
    assert dd["occurred_at"] == "2026-11-23T08:30:00.123000Z"  # Datadog ms envelope
    assert bare["occurred_at"] == bare["received_at"] == "2026-11-23T09:00:00.000000Z"


def test_event_id_given_or_deterministic() -> None:
    body = {"event": "robot.error", "robot_id": "R", "error_code": "E", "ts": 1795422600}
    a, b = rows(run([dict(body), dict(body)]))
    assert a["event_id"] == b["event_id"] and len(a["event_id"]) == 32
    (c,) = rows(run([{**body, "error_code": "F"}]))
    assert c["event_id"] != a["event_id"]
    (d,) = rows(run([{**body, "event_id": "mine-1"}]))
    assert d["event_id"] == "mine-1"


def test_service_and_host() -> None:
    body = {"event": "robot.error", "robot_id": "R", "error_code": "E"}
    vec, dd, own = rows(
        run(
            [
                vector_record(body, host="node-7"),
                datadog_record(body),
                {**body, "service": "svc-own", "host": "h-own"},
            ]
        )
    )
    assert (vec["service"], vec["host"]) == ("dispatch", "node-7")
    assert (dd["service"], dd["host"]) == ("fleet", "robot-gw-1")
    assert (own["service"], own["host"]) == ("svc-own", "h-own")  # the body names its own
    (msg,) = rows(run([{"message": orjson.dumps({**body, "service": "svc-own"}).decode()}]))
    assert msg["service"] == "svc-own"


def test_pii_hash_and_drop_before_anything_is_written() -> None:
    phone = "+1-555-0100"
    body = {
        "event": "robot.state_changed",
        "robot_id": "R",
        "to_state": "available",
        "customer_phone": phone,
    }
    (row,) = rows(run([body]))
    assert row["properties"]["customer_phone"] != phone
    assert len(row["properties"]["customer_phone"]) == 64
    # A rejected record with PII is dead-lettered with the PII treated too.
    bad = {**body, "to_state": "nope"}
    (letter,) = dead(run([vector_record(bad)]))
    assert phone not in orjson.dumps(letter).decode()
    drops = [
        (name, f)
        for name, ev in REGISTRY.events.items()
        for f, spec in ev.spec.fields.items()
        if spec.pii == "drop"
    ]
    assert drops, "the bundled registry should exercise pii: drop"


def test_lenient_values_are_rejected_alone() -> None:
    good = {"event": "robot.error", "robot_id": "R", "error_code": "E"}
    body = (
        b'[{"event":"robot.error","robot_id":"R","error_code":"E","severity":NaN},'
        b'{"event":"robot.error","robot_id":"R\xff","error_code":"E"},' + orjson.dumps(good) + b"]"
    )
    out = Extractor(REGISTRY, Limits(1 << 20, 64)).extract(
        parse_records(body, BodyFormat.JSON), RECEIVED
    )
    assert out.accepted == {"robot.error": 1}
    assert sorted(d["reason"] for d in dead(out)) == ["invalid_utf8", "non_finite_number"]


def test_oversized_and_too_deep_records_rejected_alone() -> None:
    ok = {"event": "robot.error", "robot_id": "R", "error_code": "E"}
    huge = vector_record({**ok, "message": "x" * (2 << 20)})
    out = run([huge, vector_record(ok)])
    assert out.accepted == {"robot.error": 1}
    assert [d["reason"] for d in dead(out)] == ["record_too_large"]
    assert out.rejects == {("robot.error", "record_too_large"): 1}


def test_event_names_never_reach_object_keys() -> None:
    from ingest.spool import Segment
    from ingest.uploader import object_key

    seg = Segment(1, "events", "2026-11-23T08", path=__import__("pathlib").Path("x"))
    assert object_key(seg, "w", "s") == "events/dt=2026-11-23/hour=08/w-s-000000000001.json.gz"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.lists(
        st.one_of(
            st.dictionaries(
                st.sampled_from(
                    [
                        "event",
                        "message",
                        "evt",
                        "properties",
                        "robot_id",
                        "to_state",
                        "timestamp",
                        "ts",
                        "delivery_id",
                    ]
                ),
                st.one_of(
                    st.none(),
                    st.integers(),
                    st.text(max_size=30),
                    st.sampled_from(list(REGISTRY.events)),
                    st.dictionaries(st.text(max_size=5), st.text(max_size=5)),
                ),
                max_size=6,
            ),
            st.text(max_size=40),
        ),
        max_size=8,
    )
)
def test_extraction_never_raises(records: list[Any]) -> None:
    out = run(records)
    total = sum(out.accepted.values()) + sum(out.discarded.values()) + sum(out.rejects.values())
    assert total == len(records)
    for line in out.events:
        gzip.compress(line)  # lines are bytes ending in a newline, valid JSON
        assert line.endswith(b"\n")
        orjson.loads(line)


def test_default_dates_are_rejected_not_loaded() -> None:
    """Go's zero time and 9999 sentinels are defaults, not times (and would overflow the
    loader's date arithmetic)."""
    for ts in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", -5):
        out = run([{"event": "robot.error", "robot_id": "R", "error_code": "E", "ts": ts}])
        assert [d["reason"] for d in dead(out)] == ["invalid_timestamp"], ts


def test_no_record_can_fail_the_batch() -> None:
    """Lone surrogates (in the record, the message, a pii: hash field) and nesting beyond
    the serialiser's limits are dead-lettered alone; the good record of the batch is kept."""
    good = {"event": "robot.error", "robot_id": "R", "error_code": "E"}
    deep: Any = "x"
    for _ in range(900):
        deep = {"d": deep}
    records = [
        {"event": "robot.error", "robot_id": "R\ud800", "error_code": "E"},
        {"message": '{"event": "robot.error", "robot_id": "R\ud800", "error_code": "E"}'},
        {"event": "robot.state_changed", "robot_id": "R", "to_state": "available",
         "customer_phone": "\ud800"},
        {**good, "extra": deep},
        good,
    ]  # fmt: skip
    out = run(records)
    assert out.accepted["robot.error"] >= 1
    assert sum(out.accepted.values()) + sum(out.rejects.values()) == len(records)
    for line in out.rejected:
        orjson.loads(line)


def test_redelivery_without_any_timestamp_keeps_its_ids() -> None:
    body = {"event": "robot.error", "robot_id": "R", "error_code": "E"}
    ex = Extractor(REGISTRY, Limits(1 << 20, 64))
    first = ex.extract(ParsedBody([dict(body)]), RECEIVED)
    later = ex.extract(ParsedBody([dict(body)]), datetime(2026, 11, 23, 9, 5, tzinfo=UTC))
    a, b = orjson.loads(first.events[0]), orjson.loads(later.events[0])
    assert a["event_id"] == b["event_id"] and a["received_at"] != b["received_at"]
