"""Decoders: every encoding, the bomb guard, body formats, the record splitter — and
property-based tests that no input raises anything but our own 4xx RequestError."""

from __future__ import annotations

import gzip
import json
import zlib

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.decode import BodyFormat, body_format, decompress, parse_records, split_json_array
from ingest.status import RequestError
from tests.payloads import encode

MiB = 1024 * 1024


def records(body: bytes, fmt: BodyFormat) -> list:
    """Parsed records as plain Python values (JSON arrays are parsed lazily)."""
    out = []
    for r in parse_records(body, fmt).records:
        if hasattr(r, "as_dict"):
            r = r.as_dict()
        elif hasattr(r, "as_list"):
            r = r.as_list()
        out.append(r)
    return out


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
