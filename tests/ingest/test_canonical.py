"""The canonical lake line: every value rendered by ingest's own formatter, within what both
warehouses load; whatever cannot be made so is rejected alone with its reason (never the
catch-all "internal"). Each case here was accepted (or crashed to "internal") before and
would have failed the COPY of its whole lake object."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from ingest.event import (
    MAX_KEY_BYTES,
    MAX_LINE_BYTES,
    MAX_PROPERTIES_DEPTH,
    MAX_STRING_BYTES,
    Reject,
    canonical_problems,
)
from ingest.extract import Extracted, Extractor, Limits
from ingest.records import BodyFormat, ParsedBody, parse_records
from ingest.registry import PiiHasher, parse_registry
from ingest.timestamps import parse_timestamp
from tests.payloads import vector_record

RECEIVED = datetime(2026, 11, 23, 9, 0, 0, tzinfo=UTC)
REGISTRY = parse_registry(
    """
version: 1
entities: [delivery_id, robot_id, site_id]
events:
  test.every_type:
    fields:
      delivery_id: {type: string, required: true}
      robot_id: {type: integer}
      s: {type: string}
      t: {type: timestamp}
      o: {type: object}
      a: {type: array}
      name: {type: string, pii: drop}
  test.open:
    extra: allow
    fields:
      robot_id: {type: string, required: true}
  test.private:
    fields:
      site_id: {type: string, pii: drop}
      note: {type: string}
""",
    "canonical-test",
)


def run(records: list[Any], **limits: int) -> Extracted:
    ex = Extractor(
        REGISTRY,
        Limits(limits.get("max_record_bytes", 1 << 20), limits.get("max_json_depth", 64)),
        PiiHasher(b"k"),
    )
    out = ex.extract(ParsedBody(records), RECEIVED)
    for line in out.events:  # whatever else a test checks: every line is canonical
        assert canonical_problems(line, REGISTRY.entities) == [], line[:300]
    return out


def reasons(out: Extracted) -> list[str]:
    return [reason for _, reason in sorted(out.rejects.elements())]


def row(out: Extracted) -> dict[str, Any]:
    (line,) = out.events
    return orjson.loads(line)


def ev(**props: Any) -> dict[str, Any]:
    return {"event": "test.every_type", "delivery_id": "D-1", **props}


# ------------------------------------------------------------------ times: rendered, not echoed


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-W47-1T08:30:00Z", "2026-11-16T08:30:00.000000Z"),  # ISO week date
        ("20261123T083000Z", "2026-11-23T08:30:00.000000Z"),  # ISO basic format
        ("2026-11-23T08:30:00,5+01:00", "2026-11-23T07:30:00.500000Z"),  # comma fraction
        ("2026-11-23T08:30:00.123456789Z", "2026-11-23T08:30:00.123456Z"),
        ("2026-11-23 08:30:00.1z", "2026-11-23T08:30:00.100000Z"),
        ("2026-11-23", "2026-11-23T00:00:00.000000Z"),
        ("  2026-11-23T08:30:00Z  ", "2026-11-23T08:30:00.000000Z"),
        ("1795422600.5", "2026-11-23T08:30:00.500000Z"),
        (1795422600123456789, "2026-11-23T08:30:00.123457Z"),
    ],
)
def test_every_accepted_time_shape_is_rendered_canonically(value: Any, expected: str) -> None:
    stamp = parse_timestamp(value)
    assert stamp is not None and stamp[1] == expected
    (r,) = [row(run([ev(ts=value)]))]
    assert r["occurred_at"] == expected


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-23T08:30:00.٣Z",  # Arabic-Indic digit in the fraction (str.isdigit: True)
        "2026-11-23T08:30:00.²Z",  # superscript two: isdigit() True, int() fails
        "２０２６-11-23T08:30:00Z",  # fullwidth digits
        "١٧٩٥٤٢٢٦٠٠",  # an epoch in Arabic-Indic digits: float() reads it
        "2026-11-23T08:30:00Z\u3000",  # ideographic space: str.strip() removes it
        "2026-11-23T08:30:00123Z",  # seconds run into digits
        "2026-02-30T00:00:00Z",
        "2026-11-23T23:59:60Z",  # a leap second: no such datetime
        "9999-12-31T23:59:59-01:00",  # off the calendar once in UTC (was OverflowError)
        "0001-01-01T00:00:00+01:00",
        "1969-12-31T23:59:59Z",
        "2200-01-01T00:00:00Z",
        "2200-01-01",
        10**400,  # beyond any float (was OverflowError)
        7258118400,
        -1,
        float("nan"),
        True,
    ],
)
def test_unreadable_or_out_of_range_times_are_invalid_timestamp(value: Any) -> None:
    with pytest.raises(Reject) as info:
        parse_timestamp(value)
    assert info.value.reason == "invalid_timestamp"
    assert reasons(run([ev(ts=value)])) == ["invalid_timestamp"]


def test_a_strange_envelope_time_falls_back_but_is_never_echoed() -> None:
    rec = vector_record(ev(), timestamp="2026-W47-1T08:30:00Z")
    assert row(run([rec]))["occurred_at"] == "2026-11-16T08:30:00.000000Z"
    rec = vector_record(ev(), timestamp="٢٠٢٦-11-23T08:30:00Z")
    assert row(run([rec]))["occurred_at"] == "2026-11-23T09:00:00.000000Z"  # received_at


def test_timestamp_properties_are_rendered_with_four_digit_years() -> None:
    """`strftime("%Y")` writes year 5 as "5": not RFC 3339, and not what any reader parses."""
    r = row(run([ev(t="0005-03-04T05:06:07.5Z")]))
    assert r["properties"]["t"] == "0005-03-04T05:06:07.500000Z"
    assert reasons(run([ev(t="0001-01-01T00:00:00+01:00")])) == ["validation"]  # was internal


# ------------------------------------------------------------------ strings and keys


@pytest.mark.parametrize(
    "record",
    [
        ev(event_id="id\x00"),
        ev(s="a\x00b"),
        ev(delivery_id="D\x00"),
        ev(o={"k": ["x", {"deep": "\x00"}]}),
        ev(o={"k\x00": 1}),
        {"event": "test.open", "robot_id": "R", "free\x00key": 1},
    ],
)
def test_nul_anywhere_rejects_the_event_as_invalid_character(record: dict[str, Any]) -> None:
    """PostgreSQL and Redshift refuse U+0000 in text and JSON; DuckDB loads it, so only one of
    the two warehouses would fail — the lake line must load in both."""
    out = run([record, ev()])
    assert reasons(out) == ["invalid_character"] and len(out.events) == 1


def test_an_escaped_backslash_before_u0000_is_just_text() -> None:
    r = row(run([ev(s="C:\\u0000\\path")]))
    assert r["properties"]["s"] == "C:\\u0000\\path"


def test_nul_in_the_envelope_is_no_value_not_a_reject() -> None:
    rec = vector_record(ev(), host="node\x00-1")
    rec["kubernetes"]["pod_labels"]["app"] = "disp\x00atch"
    r = row(run([rec]))
    assert (r["service"], r["host"]) == ("dispatch", "node-1")  # the next candidates


@pytest.mark.parametrize(
    ("key", "ok"),
    [("", False), ("k" * MAX_KEY_BYTES, True), ("k" * (MAX_KEY_BYTES + 1), False),
     ("é" * 64, False), ("😀" * 31, True)],
)  # fmt: skip
def test_keys_of_free_form_values_are_bounded(key: str, ok: bool) -> None:
    for record in (ev(o={key: 1}), ev(a=[{"x": {key: None}}]),
                   {"event": "test.open", "robot_id": "R", key: 1}):  # fmt: skip
        assert reasons(run([record])) == ([] if ok else ["invalid_key"]), (key, record)


def test_strings_above_the_super_varchar_limit_are_value_too_large() -> None:
    fits = "é" * (MAX_STRING_BYTES // 2)  # 65,534 bytes
    assert reasons(run([ev(s=fits)])) == []
    for big in (fits + "é", "x" * (MAX_STRING_BYTES + 1)):
        assert reasons(run([ev(s=big)])) == ["value_too_large"]
        assert reasons(run([ev(o={"k": [big]})])) == ["value_too_large"]


def test_column_values_fit_their_byte_widths() -> None:
    """VARCHAR counts bytes: 128 four-byte characters are exactly event_id's 512, 256 exactly
    the entity/service/host 1,024; a longer event_id is replaced by the hash id."""
    big = "😀" * 300
    r = row(run([vector_record(ev(event_id="😀" * 128, delivery_id=big), host=big)]))
    assert len(r["event_id"].encode()) == 512
    assert len(r["delivery_id"].encode()) == len(r["host"].encode()) == 1024
    r = row(run([ev(event_id="😀" * 129)]))
    assert len(r["event_id"]) == 32


# ------------------------------------------------------------------ numbers and nesting


@pytest.mark.parametrize("n", [2**63, 2**64 - 1, -(2**63) - 1, 10**30])
def test_integers_beyond_64_signed_bits_are_number_out_of_range(n: int) -> None:
    """orjson writes integers up to 2**64 - 1; SUPER's integers are BIGINT."""
    assert reasons(run([ev(o={"n": n})])) == ["number_out_of_range"]
    assert reasons(run([ev(a=[[n]])])) == ["number_out_of_range"]
    assert reasons(run([{"event": "test.open", "robot_id": "R", "n": n}])) == [
        "number_out_of_range"
    ]


def test_integers_and_floats_at_the_edges_load() -> None:
    edges = [2**63 - 1, -(2**63), 1e308, -1e308, 5e-324, -0.0, 2.2250738585072014e-308]
    r = row(run([ev(a=edges)]))
    assert r["properties"]["a"] == edges


def test_huge_integer_ids_in_the_envelope_or_body_are_not_columns() -> None:
    """An integer beyond 64 bits (the lenient parser reads up to 4,300 digits) was written
    into the column as its digits, above the 256-character cut: such a value is no value."""
    r = row(run([{**ev(site_id=10**30), "host": 2**64, "service": 10**400}]))
    assert (r["site_id"], r["host"], r["service"]) == (None, None, None)
    r = row(run([{**ev(site_id=-(2**63)), "host": 7}]))
    assert (r["site_id"], r["host"]) == (str(-(2**63)), "7")


def test_nesting_is_capped_at_what_serialiser_and_super_hold() -> None:
    """Above orjson's 254 levels the event failed to serialise and was reported as invalid
    UTF-8; LOGSHIP_MAX_JSON_DEPTH above the warehouse's cap does not raise the cap."""
    deep: Any = "x"
    for _ in range(MAX_PROPERTIES_DEPTH):
        deep = [deep]
    assert reasons(run([ev(a=deep)], max_json_depth=1000)) == ["too_deep"]
    ok: Any = "x"
    for _ in range(MAX_PROPERTIES_DEPTH - 2):
        ok = [ok]
    assert reasons(run([ev(a=ok)], max_json_depth=1000)) == []


def test_lines_above_the_copy_json_limit_are_too_large_whatever_the_setting() -> None:
    big = {f"k{i}": "x" * 60_000 for i in range(70)}
    out = run([ev(o=big)], max_record_bytes=8 << 20)
    assert reasons(out) == ["record_too_large"]
    assert MAX_LINE_BYTES == 4_000_000  # Redshift COPY: a JSON object is at most 4 MB


def test_a_pii_drop_entity_stays_out_of_its_column() -> None:
    r = row(run([{"event": "test.private", "site_id": "S-secret", "note": "n"}]))
    assert r["site_id"] is None and "site_id" not in r["properties"]


# ------------------------------------------------------------------ the checker itself


def good_line() -> dict[str, Any]:
    return row(run([ev(s="x")]))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"occurred_at": "2026-W47-1T08:30:00.000000Z"}, "occurred_at"),
        ({"occurred_at": "2026-11-23T08:30:00Z"}, "occurred_at"),
        ({"received_at": "2200-01-01T00:00:00.000000Z"}, "received_at"),
        ({"occurred_at": "2026-02-30T00:00:00.000000Z"}, "occurred_at"),
        ({"event_id": None}, "event_id"),
        ({"event_id": ""}, "event_id"),
        ({"event_id": "x" * 129}, "event_id"),
        ({"event_name": None}, "event_name"),
        ({"event_version": 2**31}, "event_version"),
        ({"host": "h" * 257}, "host"),
        ({"delivery_id": ""}, "delivery_id"),
        ({"service": "a\x00"}, "U+0000"),
        ({"properties": {"k": 2**63}}, "64 bits"),
        ({"properties": {"": 1}}, "key"),
        ({"properties": {"k": "x" * (MAX_STRING_BYTES + 1)}}, "bytes"),
        ({"properties": []}, "properties"),
    ],
)
def test_canonical_problems_names_each_violation(change: dict[str, Any], problem: str) -> None:
    r = {**good_line(), **change}
    line = orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE)
    found = canonical_problems(line, REGISTRY.entities)
    assert found and any(problem in p for p in found), found


def test_canonical_problems_checks_the_shape_of_the_line() -> None:
    r = good_line()
    ents = REGISTRY.entities
    assert canonical_problems(orjson.dumps(r), ents)  # no newline
    assert canonical_problems(orjson.dumps(r) + b"\n\n", ents)
    assert canonical_problems(orjson.dumps({**r, "extra": 1}) + b"\n", ents)
    del r["host"]
    assert canonical_problems(orjson.dumps(r) + b"\n", ents)
    assert canonical_problems(b"[1]\n", ents) and canonical_problems(b"{\n", ents)


def test_the_week_date_of_the_review_loads_from_the_lenient_and_lazy_paths_too() -> None:
    """The reported case: 51 events in one object, one with an ISO week date."""
    body = [vector_record(ev(delivery_id=f"D-{i}")) for i in range(50)]
    body.append(vector_record(ev(timestamp="2026-W47-1T08:30:00Z")))
    for raw in (orjson.dumps(body), orjson.dumps(body).replace(b'"D-1"', b'"D-\xff"')):
        out = Extractor(REGISTRY, Limits(1 << 20, 64)).extract(
            parse_records(raw, BodyFormat.JSON), RECEIVED
        )
        for line in out.events:
            assert canonical_problems(line, REGISTRY.entities) == []
        assert orjson.loads(out.events[-1])["occurred_at"] == "2026-11-16T08:30:00.000000Z"


def test_a_dead_letter_with_an_integer_beyond_64_bits_stays_readable() -> None:
    """Found by the fuzz harness: the stdlib fallback wrote a 400-digit integer as a number,
    which orjson (and DuckDB) read as infinity and refuse: the dead letter was unreadable."""
    body = b'[{"event":"test.open","robot_id":"R","ts":"soon","big":' + b"9" * 400 + b"}]"
    out = Extractor(REGISTRY, Limits(1 << 20, 64)).extract(
        parse_records(body, BodyFormat.JSON), RECEIVED
    )
    (letter,) = [orjson.loads(line) for line in out.rejected]
    assert letter["reason"] == "number_out_of_range"
    assert letter["record"]["big"] == "9" * 400
