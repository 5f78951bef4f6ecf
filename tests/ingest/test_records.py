"""Records: body formats, the record splitter, bounded steps, escaped name keys — and
property-based tests that no input raises anything but our own 400 RequestError."""

from __future__ import annotations

import json
import tracemalloc
from collections import Counter
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.extract import Extractor, Limits
from ingest.records import (
    STEP_RECORDS,
    BodyFormat,
    ParsedBody,
    body_format,
    may_have_name_keys,
    parse_records,
    parse_steps,
    split_json_array,
)
from ingest.registry import load_registry
from ingest.status import RequestError
from tests.ingest.json_strategies import json_docs, json_records, json_values
from tests.payloads import plain

MiB = 1024 * 1024
RECEIVED = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
EXTRACTOR = Extractor(load_registry(None), Limits(MiB, 64))


def records(body: bytes, fmt: BodyFormat) -> list:
    """Parsed records as plain Python values (JSON arrays are parsed lazily)."""
    return plain(parse_records(body, fmt).records)


def test_body_format_from_content_type() -> None:
    assert body_format("application/json") is BodyFormat.JSON
    assert body_format("") is BodyFormat.JSON
    assert body_format("application/x-ndjson; charset=utf-8") is BodyFormat.NDJSON
    assert body_format("text/plain; charset=utf-8") is BodyFormat.TEXT


def test_parse_formats() -> None:
    assert records(b'[{"a":1},{"b":2}]', BodyFormat.JSON) == [{"a": 1}, {"b": 2}]
    assert records(b'{"a":1}', BodyFormat.JSON) == [{"a": 1}]
    assert records(b"{}", BodyFormat.JSON) == []
    assert records(b'{"a":1}\n{"b":2}', BodyFormat.NDJSON) == [{"a": 1}, {"b": 2}]
    # NDJSON sent as application/json (no NDJSON content type) is still understood.
    assert records(b'{"a":1}\n{"b":2}\n', BodyFormat.JSON) == [{"a": 1}, {"b": 2}]
    assert records(b"one\n\ntwo\r\n", BodyFormat.TEXT) == [
        {"message": "one"},
        {"message": "two"},
    ]


def test_one_bad_element_does_not_sink_the_array() -> None:
    deep = b"[" * 10_000 + b"]" * 10_000
    body = b'[{"ok":1}, {"bad": NaN}, {"big": 123456789012345678901234567890}, ' + (
        b'{"utf8":"\xff\xfe"}, {"x": ' + deep + b'}, {"ok":2}, {"dup":1,"dup":2}]'
    )
    parsed = parse_records(body, BodyFormat.JSON)
    oks = [r for r in parsed.records if "ok" in r]
    assert oks == [{"ok": 1}, {"ok": 2}]
    assert {"dup": 2} in parsed.records  # duplicate keys: the last one wins, like orjson
    assert [b.reason for b in parsed.bad] == ["too_deep"]
    lenient = [parsed.records[i] for i in sorted(parsed.lenient)]
    assert len(lenient) == 2  # NaN and invalid UTF-8: extraction decides on them
    # orjson reads integers beyond 64 bits as floats; an `integer` field then fails its range.
    assert {"big": 1.2345678901234568e29} in parsed.records


def test_invalid_json_is_400_naming_the_problem() -> None:
    for body in (b"[{", b"not json", b'[{"a":1},]', b"[1] [2]", b'"just a string"'):
        with pytest.raises(RequestError) as ei:
            parse_records(body, BodyFormat.JSON)
        assert ei.value.status == 400
        assert "JSON" in ei.value.message


def test_split_json_array() -> None:
    assert split_json_array(b'[1, "a,]", {"b": [2, 3]}]') == [b"1", b'"a,]"', b'{"b": [2, 3]}']
    assert split_json_array(b"[]") == []
    assert split_json_array(b"[1,]") is None
    assert split_json_array(b"[1") is None
    assert split_json_array(b"[1]]") is None
    assert split_json_array(b'["a\\"]", 2]') == [b'"a\\"]"', b"2"]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    body=st.one_of(
        st.binary(max_size=1024),
        st.lists(json_values, max_size=5).map(lambda v: json.dumps(v).encode()),
        st.lists(json_values, max_size=5).map(lambda v: repr(v).encode()),
    ),
    fmt=st.sampled_from(list(BodyFormat)),
)
def test_parse_never_raises_anything_else(body: bytes, fmt: BodyFormat) -> None:
    try:
        parsed = parse_records(body, fmt)
    except RequestError as exc:
        assert exc.status == 400
    else:
        n = len(parsed.records) + len(parsed.bad)
        try:
            ref = json.loads(body)
        except (ValueError, RecursionError):
            return
        if fmt is BodyFormat.JSON and isinstance(ref, list):
            assert n == len(ref)  # every element is either a record or a dead letter


@settings(max_examples=200, deadline=None)
@given(records=st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=4), max_size=6))
def test_split_matches_a_real_parser(records: list[dict]) -> None:
    try:
        body = orjson.dumps(records)
    except TypeError:
        return
    parts = split_json_array(body)
    assert parts is not None
    assert [orjson.loads(p) for p in parts] == orjson.loads(body)


def test_name_key_prescan() -> None:
    msg_only = orjson.dumps(
        [{"message": orjson.dumps({"event": "a.b", "evt": {"name": "x"}}).decode()}]
    )
    assert not may_have_name_keys(msg_only)
    for rec in (
        {"event": "a.b"},
        {"evt.name": "a.b"},
        {"evt": {"name": "a.b"}},
        {"x": {"event": 1}},
    ):
        assert may_have_name_keys(orjson.dumps([rec])), rec
    assert may_have_name_keys(b'[{"path":"C:\\\\","event":"a.b"}]')  # a string ending in \
    assert may_have_name_keys(b'[{"event" : "a.b"}]')


# --------------------------------------------------------------------------- properties
#
# Every body format as properties over generated data: round trips, one bad element never
# sinking a batch, and the only exception ever raised being the documented RequestError.


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batch=st.lists(st.one_of(json_records, json_docs), max_size=8),
    indent=st.booleans(),
    ws=st.sampled_from(["", " ", "\n", "\r\n\t "]),
)
def test_json_array_roundtrip(batch: list, indent: bool, ws: str) -> None:
    """Both JSON readers (lazy simdjson for arrays, orjson) give back exactly what was sent."""
    option = orjson.OPT_INDENT_2 if indent else 0
    body = ws.encode() + orjson.dumps(batch, option=option) + ws.encode()
    parsed = parse_records(body, BodyFormat.JSON)
    assert parsed.bad == []
    assert records(body, BodyFormat.JSON) == batch


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batch=st.lists(json_records, max_size=8),
    eol=st.sampled_from(["\n", "\r\n"]),
    blank=st.lists(st.integers(0, 8), max_size=3),
    content_type=st.sampled_from(["application/x-ndjson", "application/jsonl", "application/json"]),
)
def test_ndjson_roundtrip(batch: list, eol: str, blank: list[int], content_type: str) -> None:
    """NDJSON (and the same lines sent as application/json): one record per line, blank lines
    skipped, either line ending."""
    lines = [orjson.dumps(r).decode() for r in batch]
    for i in sorted(blank, reverse=True):
        lines.insert(min(i, len(lines)), "  ")
    body = eol.join(lines).encode()
    fmt = body_format(content_type)
    if fmt is BodyFormat.JSON and len(batch) == 1:
        # One object is a one-record batch, and `{}` the Datadog Agent's empty probe.
        assert records(body, fmt) == ([batch[0]] if batch[0] else [])
        return
    assert parse_records(body, fmt).bad == []
    assert records(body, fmt) == batch


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(
        st.text(max_size=40).filter(lambda s: "\n" not in s and "\r" not in s), max_size=10
    )
)
def test_text_roundtrip(lines: list[str]) -> None:
    expected = [{"message": ln} for ln in lines if ln.strip()]
    assert records("\n".join(lines).encode(), BodyFormat.TEXT) == expected
    assert records("\r\n".join(lines).encode(), BodyFormat.TEXT) == expected


def test_text_lines_split_on_newlines_only() -> None:
    """Regression: text bodies were split with str.splitlines, which also breaks on
    \\v, \\f, \\x1c-\\x1e, \\x85, U+2028 and U+2029 — so one log line holding such a character
    (JavaScript JSON logs keep U+2028 raw) became two records and its event was lost."""
    event = '{"event":"robot.error","robot_id":"R","error_code":"E","detail":"a\u2028b\x0cc"}'
    body = f"{event}\nplain\x85line\r\n".encode()
    assert records(body, BodyFormat.TEXT) == [{"message": event}, {"message": "plain\x85line"}]


# (An unterminated string is not among them: inside an array it swallows the elements after
# it, so where they start cannot be known.)
bad_elements = st.sampled_from(
    [
        b"NaN",
        b'{"x": Infinity}',
        b'{"n": 123456789012345678901234567890}',
        b'{"s": "\xff\xfe"}',
        b'{"s": "\\ud800"}',
        b"[" * 1200 + b"]" * 1200,
        b'{"missing": }',
        b"tru",
    ]
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(json_records, min_size=1, max_size=6), bad=bad_elements, at=st.integers(0, 6))
def test_one_bad_element_never_sinks_a_batch(batch: list, bad: bytes, at: int) -> None:
    """Whatever one element is, the others come out intact and in order; the bad one is either
    a dead letter or a lenient record left for extraction to judge — counted exactly once."""
    parts = [orjson.dumps(r) for r in batch]
    at = min(at, len(parts))
    parts.insert(at, bad)
    for body, fmt in (
        (b"[" + b",".join(parts) + b"]", BodyFormat.JSON),
        (b"\n".join(parts), BodyFormat.NDJSON),
    ):
        parsed = parse_records(body, fmt)
        assert len(parsed.records) + len(parsed.bad) == len(batch) + 1
        strict = [r for i, r in enumerate(parsed.records) if i not in parsed.lenient]
        if bad.startswith(b"{") and not parsed.bad and not parsed.lenient:
            strict.pop(at)  # `\ud800` as an escape: valid JSON, a lone surrogate for extraction
        assert strict == batch, (fmt, bad[:40])


# --------------------------------------------------------------------------- bounded work
#
# The server splits bodies with `parse_steps`: work linear in the body, in bounded steps, with
# at most a chunk of records alive as Python objects. The shapes below each made the previous
# code quadratic (a regex that backtracked from every quote of an unterminated string) or took
# gigabytes; at these sizes that code runs for minutes to hours, so the generous timeouts only
# catch that class, not slowness.


def steps(body: bytes, fmt: BodyFormat, max_record_bytes: int = MiB, **kw: int) -> list:
    return [p for p in parse_steps(body, fmt, max_record_bytes, **kw) if p is not None]


def outcome_of(pieces: list[ParsedBody]) -> tuple:
    """Everything extraction makes of a batch given in pieces: lines (sorted) and counts."""
    events: list[bytes] = []
    rejected: list[bytes] = []
    counts: list[Counter] = [Counter(), Counter(), Counter()]
    for piece in pieces:
        ex = EXTRACTOR.extract(piece, RECEIVED)
        events += ex.events
        rejected += ex.rejected
        for total, part in zip(counts, (ex.accepted, ex.discarded, ex.rejects), strict=True):
            total.update(part)
    return sorted(events), sorted(rejected), *(+c for c in counts)


def n_records(pieces: list[ParsedBody]) -> int:
    return sum(len(p.records) + len(p.bad) for p in pieces)


QUADRATIC_BEFORE = {
    # The review's 132-byte gzip body, ten times longer: an unterminated string of quotes.
    "unterminated quotes": (b"[" + b'\\"' * 480_000, 400),
    "terminated quotes": (b'["' + b'\\"' * 480_000 + b'"]', 1),
    "many strings": (b"[" + b'"",' * 300_000 + b'""]', 300_001),
    "many commas": (b"[" + b"1," * 500_000 + b"NaN]", 500_001),
    "deep nesting": (b"[" + b"[" * 600_000 + b"]" * 600_000 + b"]", 1),
    "huge key": (b'[{"' + b"k" * (4 * MiB) + b'":1}]', 1),
    "unbalanced": (b"[" + b"[" * 600_000, 400),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(QUADRATIC_BEFORE))
def test_parsing_is_linear_on_hostile_shapes(name: str) -> None:
    body, expected = QUADRATIC_BEFORE[name]
    for run in (
        lambda: n_records(steps(body, BodyFormat.JSON)),
        lambda: n_records([parse_records(body, BodyFormat.JSON)]),
    ):
        try:
            got = run()
        except RequestError as exc:
            got = exc.status
        assert got == expected, name
    assert (split_json_array(body) is None) == (expected == 400)


def _hostile_bodies(n: int) -> list[tuple[bytes, BodyFormat]]:
    return [
        (b"[" + b"{}," * (n // 3) + b"{}]", BodyFormat.JSON),
        (b"[" + b'{"a":1},' * (n // 8) + b'{"message":"{\\"ev"}]', BodyFormat.JSON),
        (b"[" + b'{"event":"x"},' * (n // 14) + b"{}]", BodyFormat.JSON),
        (b"{}\n" * (n // 3), BodyFormat.NDJSON),
        (b'{"event":"x"}\n' * (n // 14), BodyFormat.NDJSON),
        (b"a\n" * (n // 2), BodyFormat.TEXT),
        (b'{"ev\n' * (n // 5), BodyFormat.TEXT),
        (b'{"event":"x"}\n' * (n // 14), BodyFormat.TEXT),
    ]


def test_steps_hand_over_bounded_pieces() -> None:
    """Each piece holds at most STEP_RECORDS materialised records (the rest are None, counted as
    noise) or one lazily parsed chunk; the records of the whole body are all there."""
    for body, fmt in _hostile_bodies(2 * MiB):
        total = 0
        for piece in steps(body, fmt):
            total += len(piece.records) + len(piece.bad)
            if type(piece.records) is list:
                kept = [r for r in piece.records if r is not None]
                assert len(kept) <= STEP_RECORDS, (fmt, body[:20])
        assert total == n_records([parse_records(body, fmt)]), (fmt, body[:20])


def test_memory_of_a_body_stays_within_a_chunk_of_records() -> None:
    """2 MiB of tiny records is over 50 MiB of Python objects if parsed at once (the previous
    code; 64 MiB bodies took gigabytes); in steps, only one chunk's objects are alive at once,
    whatever the size of the body (here chunks of 64 KiB: 128 KiB of the densest records)."""
    for body, fmt in _hostile_bodies(2 * MiB)[::2]:
        tracemalloc.start()
        try:
            for piece in parse_steps(body, fmt, MiB, chunk_bytes=64 * 1024):
                if piece is not None:
                    EXTRACTOR.extract(piece, RECEIVED)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 8 * MiB, (fmt, body[:20], peak)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batch=st.lists(st.one_of(json_records, st.sampled_from(["event", "message"])), max_size=10),
    bad=st.lists(st.tuples(st.integers(0, 10), bad_elements), max_size=2),
    events=st.lists(st.integers(0, 10), max_size=3),
    chunk=st.sampled_from([1, 16, 64, 4096]),
    sep=st.sampled_from([b",", b", ", b",\n  "]),
)
def test_steps_extract_what_the_whole_body_extracts(
    batch: list, bad: list, events: list[int], chunk: int, sep: bytes
) -> None:
    """However the body is cut into chunks, extraction of the pieces gives exactly what
    extraction of the whole body gives: same events, dead letters and counts."""
    parts = [orjson.dumps(r) for r in batch]
    event = orjson.dumps({"event": "robot.error", "robot_id": "R-1", "error_code": "E"})
    for at in events:
        parts.insert(min(at, len(parts)), orjson.dumps({"message": event.decode()}))
    for at, element in bad:
        parts.insert(min(at, len(parts)), element)
    for body, fmt in (
        (b"[" + sep.join(parts) + b"]", BodyFormat.JSON),
        (b"\n".join(parts), BodyFormat.NDJSON),
        (b"\n".join(parts), BodyFormat.TEXT),
    ):
        try:
            whole = parse_records(body, fmt)
        except RequestError as exc:
            with pytest.raises(RequestError) as ei:
                steps(body, fmt, chunk_bytes=chunk)
            assert ei.value.reason == exc.reason
            continue
        pieces = steps(body, fmt, chunk_bytes=chunk)
        assert n_records(pieces) == n_records([whole])
        assert outcome_of(pieces) == outcome_of([whole]), (fmt, body[:200])


def test_records_above_the_limit_are_never_parsed() -> None:
    """A record above max_record_bytes is a `record_too_large` dead letter without its content
    when it could hold an event, else noise; the records around it are read as usual."""
    big_event = b'{"event":"robot.error","pad":"' + b"x" * 5000 + b'"}'
    big_noise = b'{"pad":[' + b"{}," * 2000 + b"{}]}"
    small = orjson.dumps({"event": "robot.error", "robot_id": "R", "error_code": "E"})
    for body, fmt in (
        (b"[" + b",".join([small, big_event, big_noise, small]) + b"]", BodyFormat.JSON),
        (b"\n".join([small, big_event, big_noise, small]), BodyFormat.NDJSON),
        (b"\n".join([small, big_event, big_noise, small]), BodyFormat.TEXT),
        (big_event, BodyFormat.JSON),
    ):
        pieces = steps(body, fmt, max_record_bytes=4096, chunk_bytes=64)
        bad = [b for p in pieces for b in p.bad]
        assert [(b.reason, b.raw) for b in bad] == [("record_too_large", "")], fmt
        assert "4096" in bad[0].detail
        events, _, accepted, _, _ = outcome_of(pieces)
        expected = 0 if body is big_event else 2
        assert (sum(accepted.values()), len(events)) == (expected, expected), fmt


# --------------------------------------------------------------------------- escaped keys


def spell(key: str, draw: st.DrawFn) -> str:
    """`key` as the inside of a JSON string, some characters as \\u escapes (either hex case)."""
    out = []
    for c in key:
        if draw(st.booleans()):
            code = f"{ord(c):04x}"
            out.append("\\u" + (code.upper() if draw(st.booleans()) else code))
        else:
            out.append(c)
    return "".join(out)


@st.composite
def escaped_batches(draw: st.DrawFn) -> bytes:
    """JSON arrays whose records carry an event under a name key or in a `message`/`log`
    string — every key spelled with random JSON escapes."""
    records = []
    for i in range(draw(st.integers(1, 5))):
        props = {"robot_id": f"R-{i}", "error_code": draw(st.sampled_from(["E1", "E2"]))}
        how = draw(st.sampled_from(["event", "evt.name", "evt", "message", "log", "noise"]))
        if how in ("event", "evt.name"):
            fields = {how: "robot.error", **props}
        elif how == "evt":
            fields = {"evt": {"name": "robot.error"}, **props}
        elif how == "noise":
            fields = {"message": draw(st.sampled_from(["GET /x 200", "eviction done"]))}
        else:
            fields = {how: orjson.dumps({"event": "robot.error", **props}).decode()}
        items = []
        for key, value in fields.items():
            if isinstance(value, dict):
                inner = ",".join(f'"{spell(k, draw)}":{orjson.dumps(v).decode()}'
                                 for k, v in value.items())  # fmt: skip
                text = "{" + inner + "}"
            else:
                text = orjson.dumps(value).decode()
            items.append(f'"{spell(key, draw)}":{text}')
        records.append("{" + ",".join(items) + "}")
    return ("[" + ",".join(records) + "]").encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=escaped_batches())
def test_lazy_and_full_paths_agree_on_escaped_keys(body: bytes) -> None:
    """`"\\u0065vent"` is `"event"` to every JSON parser: the lazy path (chosen when no record
    seems to have a name key) and the full path (orjson) must extract the same events."""
    full = outcome_of([ParsedBody(orjson.loads(body))])
    assert outcome_of([parse_records(body, BodyFormat.JSON)]) == full
    assert outcome_of(steps(body, BodyFormat.JSON)) == full
    assert outcome_of(steps(body, BodyFormat.JSON, chunk_bytes=8)) == full


def test_escaped_name_keys_are_name_keys() -> None:
    for key in ("\\u0065vent", "e\\u0076t", "\\u0065\\u0076t.name", "ev\\u0065nt"):
        assert may_have_name_keys(b'[{"' + key.encode() + b'":"robot.error"}]'), key
    # Inside a string (the app's JSON in `message`), escaped spellings are not keys.
    assert not may_have_name_keys(b'[{"message":"{\\"\\\\u0065vent\\":1}"}]')
    # (A string *value* spelled so, like one starting with "ev", is a harmless false positive.)
