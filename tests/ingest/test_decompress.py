"""Decompression: every encoding, the bomb guard, truncation and corruption, bounded steps —
and property-based tests that no input raises anything but our own 4xx RequestError."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import orjson
import pytest
import zstandard
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ingest.decompress import STEP_OUT_BYTES, decompress, decompress_steps
from ingest.status import RequestError
from tests.ingest.json_strategies import json_records
from tests.payloads import encode

MiB = 1024 * 1024


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


# --------------------------------------------------------------------------- properties
#
# Every decoder (identity, gzip, x-gzip, deflate zlib and raw, zstd, snappy) as properties over
# generated data: round trips, the size bound, truncation, and the only exception ever raised
# being the documented RequestError. Example counts are set so that this part runs in a few
# seconds on two shared cores (generating the data is most of the cost).

ENCODINGS = ["identity", "", "gzip", "x-gzip", "deflate", "zstd", "snappy", "x-snappy"]

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
    """Found by schemathesis: a zstd frame of an empty batch was a 400 ("no frame"),
    and a zstd body cut inside a frame decoded silently to a prefix of the batch."""
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


# --------------------------------------------------------------------------- bounded work
#
# The server decompresses with `decompress_steps`: work linear in the body, in bounded steps.
# Tiny gzip members each copying the rest of the body made the previous code quadratic; at
# these sizes that code runs for minutes, so the generous timeout only catches that class.


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
