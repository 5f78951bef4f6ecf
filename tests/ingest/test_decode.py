"""Decoders: every encoding, the bomb guard, body formats, the record splitter — and
property-based tests that no input raises anything but our own 4xx RequestError."""

from __future__ import annotations

import gzip
import json
import zlib
from collections import Counter

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ingest.decode import BodyFormat, body_format, decompress, parse_records, split_json_array
from ingest.status import RequestError
from tests.payloads import encode, plain

MiB = 1024 * 1024


def records(body: bytes, fmt: BodyFormat) -> list:
    """Parsed records as plain Python values (JSON arrays are parsed lazily)."""
    return plain(parse_records(body, fmt).records)


@pytest.mark.parametrize("enc", ["identity", "gzip", "x-gzip", "deflate", "zstd", "snappy", ""])
def test_roundtrip(enc: str) -> None:
    data = b'[{"message":"hello"}]' * 100
    assert decompress(encode(data, enc or "identity"), enc, MiB) == data


def test_raw_deflate_and_concatenated_gzip() -> None:
    data = b"x" * 1000
    c = zlib.compressobj(wbits=-15)
    raw = c.compress(data) + c.flush()
    assert decompress(raw, "deflate", MiB) == data
    assert decompress(gzip.compress(b"ab") + gzip.compress(b"cd"), "gzip", MiB) == b"abcd"


@pytest.mark.parametrize("enc", ["gzip", "deflate", "zstd", "snappy"])
def test_bomb_stops_at_limit(enc: str) -> None:
    bomb = encode(b"\0" * (64 * MiB), enc)
    assert len(bomb) < 4 * MiB  # snappy tops out near 21:1, the others far beyond
    with pytest.raises(RequestError) as ei:
        decompress(bomb, enc, 1 * MiB)
    assert ei.value.status == 413
    assert "limit" in ei.value.message


def test_truncated_and_garbage() -> None:
    gz = gzip.compress(b"[1,2,3]" * 1000)
    with pytest.raises(RequestError) as ei:
        decompress(gz[: len(gz) // 2], "gzip", MiB)
    assert (ei.value.status, "truncated" in ei.value.message) == (400, True)
    for enc in ("gzip", "deflate", "zstd", "snappy"):
        with pytest.raises(RequestError) as ei:
            decompress(b"definitely not compressed", enc, MiB)
        assert ei.value.status == 400, enc
        assert enc in ei.value.message


def test_unknown_encoding_415() -> None:
    with pytest.raises(RequestError) as ei:
        decompress(b"x", "br", MiB)
    assert ei.value.status == 415


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
    body=st.binary(max_size=2048),
    enc=st.sampled_from(["identity", "gzip", "deflate", "zstd", "snappy", "br", "x-gzip"]),
)
def test_decompress_never_raises_anything_else(body: bytes, enc: str) -> None:
    try:
        out = decompress(body, enc, 64 * 1024)
    except RequestError as exc:
        assert 400 <= exc.status < 500
    else:
        assert len(out) <= 64 * 1024


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


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
    from ingest.decode import may_have_name_keys

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


# --------------------------------------------------------------------------- properties (issue 7)
#
# Every decoder (identity, gzip, x-gzip, deflate zlib and raw, zstd, snappy) and every body
# format as properties over generated data: round trips, the size bound, truncation, and the
# only exception ever raised being the documented RequestError. Example counts are set so that
# this part runs in about 15 s on two shared cores (generating the data is most of the cost).

ENCODINGS = ["identity", "", "gzip", "x-gzip", "deflate", "zstd", "snappy", "x-snappy"]

# JSON as senders make it: values orjson can write (64-bit integers, finite floats).
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_docs = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=6,
)
json_records = st.dictionaries(
    st.text(max_size=10), json_scalars | st.lists(json_scalars, max_size=3), max_size=4
)
payloads = st.one_of(
    st.binary(max_size=2048),
    # compressible, and long enough to span several deflate/zstd blocks
    st.tuples(st.binary(min_size=1, max_size=64), st.integers(1, 1500)).map(lambda t: t[0] * t[1]),
    st.lists(json_records, max_size=8).map(orjson.dumps),
)


def compress(data: bytes, enc: str, level: int, pieces: int) -> bytes:
    """`data` as a sender would encode it: several gzip members / zstd frames when `pieces`
    says so (both formats allow concatenation), raw or zlib-wrapped deflate, any level."""
    enc = enc.strip().lower().removeprefix("x-")
    if enc in ("", "identity"):
        return data
    if enc in ("gzip", "zstd") and pieces > 1:
        step = max(1, -(-len(data) // pieces))
        chunks = [data[i : i + step] for i in range(0, len(data), step)] or [b""]
        return b"".join(compress(c, enc, level, 1) for c in chunks)
    if enc == "gzip":
        return gzip.compress(data, compresslevel=level % 10)
    if enc == "deflate":
        wbits = -15 if level % 2 else 15  # RFC 9110 says zlib; some clients send raw deflate
        c = zlib.compressobj(level % 10, zlib.DEFLATED, wbits)
        return c.compress(data) + c.flush()
    if enc == "zstd":
        import zstandard

        cctx = zstandard.ZstdCompressor(
            level=1 + level % 12, write_checksum=level % 3 == 0, write_content_size=level % 2 == 0
        )
        return cctx.compress(data)
    return encode(data, enc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=payloads,
    enc=st.sampled_from(ENCODINGS).flatmap(lambda e: st.sampled_from([e, e.upper(), f" {e} "])),
    level=st.integers(0, 60),
    pieces=st.integers(1, 4),
    slack=st.integers(-64, 64),
)
def test_roundtrip_every_encoding_within_the_limit(
    data: bytes, enc: str, level: int, pieces: int, slack: int
) -> None:
    """compress → decompress is the identity up to the limit, and 413 above it — never a
    partial body, never more than `limit` bytes."""
    body = compress(data, enc, level, pieces)
    limit = max(1, len(data) + slack)
    try:
        out = decompress(body, enc, limit)
    except RequestError as exc:
        assert len(data) > limit, exc.message
        assert (exc.status, exc.reason) == (413, "decompressed_too_large")
    else:
        assert len(data) <= limit
        assert out == data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=payloads,
    enc=st.sampled_from(["gzip", "deflate", "zstd", "snappy"]),
    level=st.integers(0, 60),
    cut=st.floats(0, 1, exclude_max=True),
)
def test_a_truncated_body_is_400_never_a_shorter_batch(
    data: bytes, enc: str, level: int, cut: float
) -> None:
    """A body cut anywhere (a dropped connection, a proxy limit) is refused whole: decoding it
    to a prefix of the batch would acknowledge records that were never received."""
    body = compress(data, enc, level, 1)
    assume(len(body) >= 2)  # snappy writes an empty batch as one byte: nothing to cut
    prefix = body[: 1 + int((len(body) - 1) * cut)]
    with pytest.raises(RequestError) as ei:
        decompress(prefix, enc, 1 << 20)
    assert (ei.value.status, ei.value.reason) == (400, "bad_compression")
    assert enc in ei.value.message


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=payloads,
    enc=st.sampled_from(["gzip", "deflate", "zstd", "snappy"]),
    garbage=st.binary(min_size=1, max_size=16),
    where=st.integers(0, 10_000),
)
def test_corrupted_bodies_raise_only_request_errors(
    data: bytes, enc: str, garbage: bytes, where: int
) -> None:
    """Bytes overwritten anywhere in a real body: a 400, or (when the damage is in a part the
    format does not check) some output — within the limit, and never another exception."""
    body = bytearray(compress(data, enc, 6, 1))
    at = where % (len(body) + 1)
    body[at : at + len(garbage)] = garbage
    try:
        out = decompress(bytes(body), enc, 1 << 16)
    except RequestError as exc:
        assert (exc.status, exc.reason) in (
            (400, "bad_compression"),
            (413, "decompressed_too_large"),
        )
    else:
        assert len(out) <= 1 << 16


@pytest.mark.parametrize("enc", ["gzip", "deflate", "zstd", "snappy"])
def test_bomb_memory_stays_near_the_limit(enc: str) -> None:
    """Bomb protection in bytes allocated, not only in the answer: decoding a 32 MiB bomb with
    a 256 KiB limit never holds much more than the limit."""
    import tracemalloc

    limit = 256 * 1024
    bomb = encode(b"\0" * (32 * MiB), enc)
    tracemalloc.start()
    try:
        with pytest.raises(RequestError) as ei:
            decompress(bomb, enc, limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ei.value.status == 413
    assert peak < 3 * limit, f"{enc}: peak {peak} bytes for a {limit}-byte limit"


def test_zstd_regressions() -> None:
    """Found by schemathesis (issue 7): a zstd frame of an empty batch was a 400 ("no frame"),
    and a zstd body cut inside a frame decoded silently to a prefix of the batch."""
    import zstandard

    cctx = zstandard.ZstdCompressor()
    assert decompress(cctx.compress(b""), "zstd", MiB) == b""
    assert decompress(cctx.compress(b"") * 3 + cctx.compress(b"[]"), "zstd", MiB) == b"[]"
    skippable = b"\x50\x2a\x4d\x18\x03\x00\x00\x00abc"  # RFC 8878 skippable frame
    assert decompress(skippable + cctx.compress(b"[1]"), "zstd", MiB) == b"[1]"
    body = cctx.compress(b'{"message":"one"}\n{"message":"two"}\n')
    for cut in (len(body) - 1, len(body) - 4, 5, 4):
        with pytest.raises(RequestError) as ei:
            decompress(body[:cut], "zstd", MiB)
        assert (ei.value.status, ei.value.message) == (400, "truncated zstd data"), cut
    for cut in (1, 2, 3):  # not even a whole magic number
        with pytest.raises(RequestError) as ei:
            decompress(body[:cut], "zstd", MiB)
        assert ei.value.status == 400
    with pytest.raises(RequestError) as ei:
        decompress(body + b"junk", "zstd", MiB)
    assert ei.value.status == 400


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
    """Regression (issue 7): text bodies were split with str.splitlines, which also breaks on
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
# The server decodes with `parse_steps` and `decompress_steps`: work linear in the body, in
# bounded steps, with at most a chunk of records alive as Python objects. The shapes below each
# made the previous code quadratic (a regex that backtracked from every quote of an unterminated
# string; gzip members each copying the rest of the body) or took gigabytes; at these sizes that
# code runs for minutes to hours, so the generous timeouts only catch that class, not slowness.

from datetime import UTC, datetime  # noqa: E402

from ingest.decode import (  # noqa: E402
    STEP_OUT_BYTES,
    STEP_RECORDS,
    ParsedBody,
    decompress_steps,
    may_have_name_keys,
    parse_steps,
)
from ingest.extract import Extractor, Limits  # noqa: E402
from ingest.registry import load_registry  # noqa: E402

RECEIVED = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
EXTRACTOR = Extractor(load_registry(None), Limits(MiB, 64))


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


@pytest.mark.timeout(60)
def test_gzip_members_are_linear() -> None:
    """4 MiB of tiny gzip members: each member used to copy the rest of the body."""
    member = gzip.compress(b'{"message":"x"}\n', mtime=0)
    body = member * (4 * MiB // len(member))
    n = len(body) // len(member)
    assert decompress(body, "gzip", 64 * MiB) == b'{"message":"x"}\n' * n
    empty = gzip.compress(b"", mtime=0) * (4 * MiB // 20)  # members of nothing at all
    assert decompress(empty + gzip.compress(b"[]"), "gzip", MiB) == b"[]"


@pytest.mark.parametrize("enc", ["gzip", "deflate", "zstd"])
def test_decompression_steps_are_bounded(enc: str) -> None:
    """No step produces more than STEP_OUT_BYTES, bombs and many-frame bodies included."""
    import zstandard

    data = b"\0" * (8 * MiB) + b'{"message":"x"}\n' * 50_000
    bodies = [encode(data, enc)]
    if enc == "zstd":  # thousands of frames, some of nothing
        cctx = zstandard.ZstdCompressor()
        bodies.append(b"".join(cctx.compress(data[i : i + 4096]) for i in range(0, 1 << 20, 4096)))
        bodies.append(cctx.compress(b"") * 100_000 + cctx.compress(b"[]"))
    for body in bodies:
        pieces = list(decompress_steps(body, enc, 64 * MiB))
        assert max(map(len, pieces)) <= STEP_OUT_BYTES
        assert b"".join(pieces) == decompress(body, enc, 64 * MiB)


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
    import tracemalloc

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
