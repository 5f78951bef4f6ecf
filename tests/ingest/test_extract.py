"""Record → registry event rules (docs/architecture.md#record-to-event), on the bundled
registry: where the body is found, name fields, properties, timestamps, ids, service/host, PII,
discards and rejects."""

from __future__ import annotations

import gzip
import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.event import DISCARD_REASONS, REJECT_REASONS, Reject, canonical_problems
from ingest.extract import Extracted, Extractor, Limits
from ingest.records import BodyFormat, LazyArray, ParsedBody, parse_records
from ingest.registry import PiiHasher, load_registry, parse_registry
from ingest.spool import Segment
from ingest.status import RequestError
from ingest.timestamps import parse_timestamp
from ingest.uploader import object_key
from tests.payloads import datadog_record, noise_record, vector_record

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


# --------------------------------------------------------------------------- properties
#
# Extraction as properties, over the bundled registry and one that uses every field type:
# valid events are accepted in every record shape the senders make, the two JSON paths (lazy
# simdjson, materialised orjson) agree, and on any body the counts add up, every output line is
# valid JSON, and no record ever reaches the catch-all ("internal") or fails the batch.

ALL_TYPES = parse_registry(
    """
version: 1
entities: [delivery_id, robot_id]
events:
  test.every_type:
    fields:
      delivery_id: {type: string, required: true}
      robot_id: {type: integer}
      s: {type: string}
      i: {type: integer}
      n: {type: number}
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
      robot_id: {type: string, required: true}
""",
    "all-types",
)
REGISTRIES = {"bundled": REGISTRY, "all_types": ALL_TYPES}
RFC3339_US = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
RECEIVED_AT = "2026-11-23T09:00:00.000000Z"


#: Text a valid event may hold: anything but U+0000 (which the warehouse refuses).
def texts(**kw: Any) -> st.SearchStrategy[str]:
    return st.text(st.characters(codec="utf-8", exclude_characters="\x00"), **kw)


scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts(max_size=12)
)
utc_times = st.datetimes(datetime(1970, 1, 2), datetime(2199, 12, 30), timezones=st.just(UTC))
# Event times as epoch numbers are read as seconds below 1e11 and as milliseconds above, so
# milliseconds before 1973-03 would read as seconds: event times in this century are not.
event_times = st.datetimes(datetime(2001, 9, 10), datetime(2199, 12, 30), timezones=st.just(UTC))


def field_value(spec: Any) -> st.SearchStrategy[Any]:
    """Values a producer may log for a declared field (all valid for its type)."""
    if spec.enum:
        return st.sampled_from(spec.enum)
    return {
        "string": texts(max_size=16),
        "integer": st.integers(-(2**63), 2**63 - 1),
        "number": st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53),
        "boolean": st.booleans(),
        "timestamp": utc_times.map(lambda d: d.isoformat().replace("+00:00", "Z")),
        "object": st.dictionaries(texts(min_size=1, max_size=6), scalars, max_size=3),
        "array": st.lists(scalars, max_size=3),
    }[spec.type]


@st.composite
def valid_event(draw: st.DrawFn, registry: Any) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(sorted(registry.events)))
    props: dict[str, Any] = {}
    for fname, spec in registry.events[name].spec.fields.items():
        if spec.required:
            props[fname] = draw(field_value(spec))
        elif draw(st.booleans()):
            props[fname] = (
                draw(st.none() | field_value(spec)) if not spec.enum else draw(field_value(spec))
            )
    if registry.events[name].spec.extra == "allow":
        props.update(
            draw(
                st.dictionaries(st.from_regex(r"x_[a-z]{1,5}", fullmatch=True), scalars, max_size=2)
            )
        )
    return name, props


SHAPES = ["bare", "evt.name", "evt", "segment", "vector", "datadog", "fluentbit", "text"]


def shaped(name: str, props: dict[str, Any], shape: str, extra: dict[str, Any]) -> Any:
    """One event as a record of `shape`; `extra` holds body keys (time, event_id)."""
    flat = {**props, **extra}
    if shape == "bare":
        return {"event": name, **flat}
    if shape == "evt.name":
        return {"evt.name": name, **flat}
    if shape == "evt":
        return {"evt": {"name": name}, **flat}
    if shape == "segment":  # Segment track shape (properties in `properties`)
        return {"event": name, "properties": props, **extra}
    message = orjson.dumps({"event": name, **flat}).decode()
    if shape == "vector":
        return vector_record(message)
    if shape == "datadog":
        return datadog_record(message)
    if shape == "fluentbit":  # Fluent Bit `http` output, json_lines: the line is `log`
        return {"date": 1795422600.25, "log": message, "kubernetes": {"container_name": "app"}}
    return message  # text: the line itself


ENVELOPE_TIME = {
    "vector": "2026-11-23T08:30:00.123456Z",
    "datadog": "2026-11-23T08:30:00.123000Z",
    "fluentbit": "2026-11-23T08:30:00.250000Z",
}


def expected_properties(ev: Any, props: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in props.items():
        spec = ev.spec.fields.get(k)
        if spec is None:
            if ev.spec.extra == "allow":
                out[k] = v
            continue
        if spec.pii == "drop":
            continue
        if v is not None and spec.type == "number":
            v = float(v)
        elif v is not None and spec.type == "timestamp":
            v = datetime.fromisoformat(v).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        elif v is not None and spec.type == "string" and spec.pii is None and type(v) is not str:
            v = str(v)
        out[k] = PiiHasher(b"k")(v) if spec.pii == "hash" and v is not None else v
    return out


noise = st.one_of(
    st.builds(noise_record, st.integers(0, 10_000)),
    st.builds(vector_record, st.text(max_size=30)),
    st.builds(datadog_record, st.sampled_from(["GET /x 200", '{"level":"info","msg":"hi"}'])),
    st.fixed_dictionaries({"log": st.text(max_size=20), "date": st.floats(0, 2e9)}),
    st.builds(
        lambda t: {"message": orjson.dumps({"event": t}).decode()},
        st.from_regex(r"zz\.[a-z]{1,8}", fullmatch=True),
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(), which=st.sampled_from(sorted(REGISTRIES)), fmt=st.sampled_from(list(BodyFormat))
)
def test_valid_events_are_accepted_in_every_shape(
    data: st.DataObject, which: str, fmt: BodyFormat
) -> None:
    registry = REGISTRIES[which]
    shapes = ["text"] if fmt is BodyFormat.TEXT else [s for s in SHAPES if s != "text"]
    items = data.draw(
        st.lists(st.tuples(valid_event(registry), st.sampled_from(shapes)), max_size=6)
    )
    n_noise = data.draw(st.integers(0, 4))
    batch, expect = [], []
    for (name, props), shape in items:
        extra: dict[str, Any] = {}
        when = data.draw(st.none() | event_times)
        if when is not None:
            key = data.draw(st.sampled_from(["timestamp", "time", "ts"]))
            extra[key] = data.draw(
                st.sampled_from([when.isoformat(), int(when.timestamp()), when.timestamp() * 1000])
            )
        if data.draw(st.booleans()):
            extra["event_id"] = data.draw(st.from_regex(r"[A-Za-z0-9-]{1,40}", fullmatch=True))
        batch.append(shaped(name, props, shape, extra))
        expect.append((name, props, shape, extra, when))
    noise_records = data.draw(st.lists(noise, min_size=n_noise, max_size=n_noise))
    for rec in noise_records:
        batch.insert(
            data.draw(st.integers(0, len(batch))),
            rec if fmt is not BodyFormat.TEXT else "GET /healthz 200",
        )
    if fmt is BodyFormat.TEXT:
        body = "\n".join(batch).encode()
    elif fmt is BodyFormat.NDJSON:
        body = b"\n".join(orjson.dumps(r) for r in batch)
    else:
        body = orjson.dumps(batch)
    out = Extractor(registry, Limits(1 << 20, 64), PiiHasher(b"k")).extract(
        parse_records(body, fmt), RECEIVED
    )
    assert out.rejected == [], [orjson.loads(x) for x in out.rejected]
    assert out.accepted == Counter(name for name, *_ in expect)
    assert sum(out.discarded.values()) == len(noise_records)
    for line, (name, props, shape, extra, when) in zip(out.events, expect, strict=True):
        ev = registry.events[name]
        assert canonical_problems(line, registry.entities) == [], line[:300]
        row = orjson.loads(line)
        assert (row["event_name"], row["event_version"]) == (name, ev.spec.version)
        assert row["received_at"] == RECEIVED_AT
        assert RFC3339_US.match(row["occurred_at"]), row["occurred_at"]
        if when is not None:
            got = datetime.fromisoformat(row["occurred_at"].replace("Z", "+00:00"))
            assert abs((got - when).total_seconds()) < 1.0, (row["occurred_at"], when)
        else:
            assert row["occurred_at"] == ENVELOPE_TIME.get(shape, RECEIVED_AT)
        assert row["event_id"] == extra.get("event_id", row["event_id"])
        if "event_id" not in extra:
            assert re.fullmatch(r"[0-9a-f]{32}", row["event_id"])
        assert row["properties"] == expected_properties(ev, props)
        for ent in registry.entities:
            v = props.get(ent)
            assert row[ent] == (None if v is None or v == "" else str(v)[:256]), ent
        if shape == "datadog":
            assert (row["service"], row["host"]) == ("fleet", "robot-gw-1")


@st.composite
def envelope_batches(draw: st.DrawFn) -> list[Any]:
    """JSON-array batches as Vector and the Datadog Agent send them: events only inside
    `message`/`log` strings (so the lazy path is taken), valid or not, among noise and odd
    records (`message: null` beside a `log`, non-objects, nested messages)."""
    out: list[Any] = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.integers(0, 6))
        name, props = draw(valid_event(REGISTRY))
        body = {"event": name, **props}
        if kind == 0:
            out.append(vector_record(body))
        elif kind == 1:
            out.append(datadog_record(body))
        elif kind == 2:  # an invalid event: a required field with the wrong type
            out.append(vector_record({**body, "robot_id": {"nested": True}}))
        elif kind == 3:
            out.append({"message": None, "log": orjson.dumps(body).decode()})
        elif kind == 4:
            out.append({"log": orjson.dumps(body).decode(), "date": 1795422600.5})
        elif kind == 5:
            out.append(draw(noise))
        else:
            out.append(draw(scalars | st.lists(scalars, max_size=2)))
    return out


def _outcome(out: Extracted) -> tuple[Any, ...]:
    return out.events, out.rejected, out.accepted, out.discarded, out.rejects


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=envelope_batches())
def test_lazy_and_materialised_paths_agree(batch: list[Any]) -> None:
    """The lazy simdjson path (JSON arrays with no event-name keys of their own) is an
    optimisation only: it must extract exactly what reading the same records with orjson does."""
    body = orjson.dumps(batch)
    ex = Extractor(REGISTRY, Limits(1 << 20, 64), PiiHasher(b"k"))
    parsed = parse_records(body, BodyFormat.JSON)
    eager = ex.extract(ParsedBody(orjson.loads(body) if batch else []), RECEIVED)
    assert _outcome(ex.extract(parsed, RECEIVED)) == _outcome(eager)


def test_null_message_falls_back_to_log_on_both_paths() -> None:
    """Regression: on the lazy path a record with `"message": null` never looked at
    its `log`, so its event was discarded there and accepted on every other path."""
    body = orjson.dumps({"event": "robot.error", "robot_id": "R", "error_code": "E"}).decode()
    batch = orjson.dumps([{"message": None, "log": body}])
    parsed = parse_records(batch, BodyFormat.JSON)
    assert type(parsed.records) is LazyArray
    out = Extractor(REGISTRY, Limits(1 << 20, 64)).extract(parsed, RECEIVED)
    assert out.accepted == {"robot.error": 1}


garbage_bodies = st.one_of(
    st.lists(st.one_of(envelope_batches(), st.lists(noise, max_size=3)), max_size=2).map(
        lambda bs: orjson.dumps([r for b in bs for r in b])
    ),
    st.binary(max_size=400),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=garbage_bodies,
    damage=st.lists(
        st.tuples(st.integers(0, 10_000), st.binary(min_size=1, max_size=4)), max_size=3
    ),
    fmt=st.sampled_from(list(BodyFormat)),
    limits=st.tuples(st.integers(64, 1 << 20), st.integers(1, 64)),
)
def test_any_body_counts_add_up_and_every_line_is_valid(
    body: bytes, damage: list[tuple[int, bytes]], fmt: BodyFormat, limits: tuple[int, int]
) -> None:
    """Whatever the body: a 400 for the batch, or every record counted exactly once (accepted,
    discarded or rejected), every event line a valid canonical event within the record limit,
    every dead letter valid JSON with a known reason — and none from the catch-all."""
    raw = bytearray(body)
    for at, patch in damage:
        at %= len(raw) + 1
        raw[at : at + len(patch)] = patch
    try:
        parsed = parse_records(bytes(raw), fmt)
    except RequestError as exc:
        assert exc.status == 400
        return
    n = len(parsed.records) + len(parsed.bad)
    out = Extractor(REGISTRY, Limits(*limits), PiiHasher(b"k")).extract(parsed, RECEIVED)
    total = sum(out.accepted.values()) + sum(out.discarded.values()) + sum(out.rejects.values())
    assert total == n
    assert set(out.discarded) <= set(DISCARD_REASONS)
    assert {reason for _, reason in out.rejects} <= set(REJECT_REASONS) - {"internal"}, out.rejects
    assert len(out.events) == sum(out.accepted.values())
    assert len(out.rejected) == sum(out.rejects.values())
    for line in out.events:
        assert len(line) <= limits[0]
        assert canonical_problems(line, REGISTRY.entities) == [], line[:300]
        row = orjson.loads(line)
        assert row["event_name"] in REGISTRY.events
        assert row["received_at"] == RECEIVED_AT
    for line in out.rejected:
        letter = orjson.loads(line)
        assert letter["reason"] in REJECT_REASONS and letter["received_at"] == RECEIVED_AT


def test_entity_columns_are_cut_to_256_characters() -> None:
    """Regression: a declared string entity went to its column uncut, while the
    warehouse column (VARCHAR(1024) = 256 characters of up to 4 bytes) relies on ingest cutting
    it — one long id failed the COPY of a whole lake object. An empty id is NULL, as when the
    entity is not declared."""
    long_id = "é😀" * 200
    (row,) = rows(
        run([{"event": "delivery.pickup_completed", "delivery_id": long_id, "robot_id": ""}])
    )
    assert row["delivery_id"] == long_id[:256]
    assert len(row["delivery_id"].encode()) <= 1024
    assert row["properties"]["delivery_id"] == long_id  # the property keeps the whole value
    assert row["robot_id"] is None


def test_invalid_utf8_in_the_envelope_is_an_invalid_utf8_reject() -> None:
    """Regression (found by atheris): a record read by the lenient parser (invalid UTF-8 in its
    envelope, here the container name that becomes `service`) with a good event in `message`
    failed inside the event-id hash and was dead-lettered by the catch-all as "internal",
    without its record."""
    good = vector_record({"event": "robot.error", "robot_id": "R", "error_code": "E"})
    del good["kubernetes"]["pod_labels"]  # so the container name is the service
    bad = orjson.dumps(good).replace(
        b'"container_name":"dispatch"', b'"container_name":"dis\xffpatch"'
    )
    for fmt, body in ((BodyFormat.NDJSON, bad), (BodyFormat.JSON, b"[" + bad + b"]")):
        parsed = parse_records(body, fmt)
        assert parsed.lenient == {0}
        out = Extractor(REGISTRY, Limits(1 << 20, 64)).extract(parsed, RECEIVED)
        assert out.rejects == {("robot.error", "invalid_utf8"): 1}, out.rejects
        (letter,) = dead(out)
        name = letter["record"]["kubernetes"]["container_name"]  # the whole record, printable
        assert name.startswith("dis\ufffd") and name.endswith("\ufffdpatch"), name
