"""Stage 1: a request body as sent → its bytes, per its ``Content-Encoding``, in bounded steps.

Every encoding Vector, the Datadog Agent and Fluent Bit send (identity, gzip, x-gzip, deflate,
zstd, snappy), with output capped at the configured limit: a decompression bomb stops at the
limit and the rest is never inflated. Only :class:`RequestError` (400/413/415) is raised, for a
body that can never be decoded.

Work is linear in the body size and done in **bounded steps**, so the server can interleave
other requests between them (:mod:`ingest.app` yields the event loop between steps): every
call takes at most :data:`STEP_IN_BYTES` of input and produces at most
:data:`STEP_OUT_BYTES`, gzip members and zstd frames one after the other, and no scan restarts
from an earlier position (tiny gzip members or zstd frames cost a constant each).
:func:`decompress` joins the steps (tests and tools; the server uses :func:`decompress_steps`).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Generator, Iterator
from typing import Any

import cramjam
import zstandard
from isal import isal_zlib as _zlib  # ISA-L inflate is 2-3x faster than zlib's; same API.

from ingest.status import RequestError

_ZSTD = zstandard.ZstdDecompressor()
#: Most bytes one decompression call produces, and most compressed bytes it is given.
STEP_OUT_BYTES = 1024 * 1024
STEP_IN_BYTES = 64 * 1024


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Decode `body` per its Content-Encoding; never produce more than `limit` bytes."""
    return b"".join(decompress_steps(body, encoding, limit))


def decompress_steps(body: bytes, encoding: str, limit: int) -> Iterator[bytes]:
    """Decode `body` per its Content-Encoding in bounded steps: yields the output in pieces
    (an empty piece is a step that produced nothing), never more than `limit` bytes in all."""
    enc = encoding.strip().lower()
    if enc in ("", "identity"):
        if len(body) > limit:
            raise _too_large(limit)
        yield body
    elif enc in ("gzip", "x-gzip"):
        yield from _gunzip_steps(body, limit)
    elif enc == "deflate":
        yield from _deflate_steps(body, limit)
    elif enc == "zstd":
        yield from _unzstd_steps(body, limit)
    elif enc in ("snappy", "x-snappy"):
        yield _unsnappy(body, limit)
    else:
        raise RequestError(
            "unsupported_encoding",
            f"Content-Encoding {encoding!r} is not supported "
            "(identity, gzip, x-gzip, deflate, zstd, snappy)",
        )


def _too_large(limit: int) -> RequestError:
    return RequestError(
        "decompressed_too_large",
        f"decompressed body exceeds the limit of {limit} bytes (LOGSHIP_MAX_DECOMPRESSED_BYTES)",
    )


_GZIP_WBITS = 16 + zlib.MAX_WBITS
_NOT_NUL = re.compile(rb"[^\x00]")
_TICK_MEMBERS = 256  # a gzip body of tiny members reports progress every this many


def _gunzip_steps(body: bytes, limit: int) -> Iterator[bytes]:
    """gzip, member after member (concatenated members are valid gzip; trailing NUL padding
    is ignored)."""
    return _inflate_steps(body, _GZIP_WBITS, limit, "gzip")


def _deflate_steps(body: bytes, limit: int) -> Iterator[bytes]:
    """RFC 9110 deflate is zlib-wrapped (Vector `zlib`); some clients send raw deflate. Which
    one is decided from the first two bytes (a zlib header: compression method 8, a window of
    at most 32 KiB, a check sum divisible by 31 — a raw stream starts so only for a stored
    block with non-zero padding), so the output streams piece by piece and is counted against
    the in-flight budget as it inflates, instead of being held until the stream ends."""
    wbits = zlib.MAX_WBITS if _is_zlib_header(body) else -zlib.MAX_WBITS
    return _inflate_steps(body, wbits, limit, "deflate")


def _is_zlib_header(body: bytes) -> bool:
    """RFC 1950 §2.2: CMF (method 8, CINFO <= 7) and FLG with (CMF·256 + FLG) % 31 == 0."""
    if len(body) < 2:
        return False
    cmf, flg = body[0], body[1]
    return cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf << 8 | flg) % 31 == 0


def _inflate_steps(body: bytes, wbits: int, limit: int, name: str) -> Iterator[bytes]:
    """Inflate a zlib, raw-deflate or gzip stream (gzip: every member) in calls bounded in
    input and output, yielding the output; an empty piece reports progress.

    One position moves forward through the body, so no member copies the rest of it (zlib's
    `unused_data` and `unconsumed_tail` are copies of what it was given). The input is given in
    slices that start small and grow after the first member, so a member of a few bytes costs
    no large copy either.
    zlib leaves what it did not take in `unconsumed_tail`; ISA-L takes all input and holds it:
    both cases are "given minus returned". Members after the first use the stdlib decoder,
    which starts up faster (a body of tiny members costs about a microsecond per member).
    """
    view = memoryview(body)
    n = len(body)
    pos = total = members = 0
    decoder: Any = _zlib
    feed_size = STEP_IN_BYTES  # the first member: most bodies have no other
    while True:
        d = decoder.decompressobj(wbits)
        while True:
            feed = view[pos : pos + feed_size]
            try:
                out = d.decompress(feed, min(STEP_OUT_BYTES, limit + 1 - total))
            except (zlib.error, _zlib.error) as exc:  # type: ignore[misc]  # isal stub: an instance
                raise RequestError("bad_compression", f"invalid {name} data: {exc}") from None
            consumed = len(feed) - len(d.unconsumed_tail)
            if d.eof:
                consumed -= len(d.unused_data)
            pos += consumed
            if out:
                total += len(out)
                if total > limit:
                    raise _too_large(limit)
                yield out
            if d.eof:
                break
            if not out and not consumed:
                # Nothing taken, nothing given: every byte was given and the stream ends early.
                what = "truncated" if pos >= n else "invalid"
                raise RequestError("bad_compression", f"{what} {name} data")
            feed_size = min(feed_size * 4, STEP_IN_BYTES)
        if wbits != _GZIP_WBITS or pos >= n:
            return
        if body[pos] == 0 and _NOT_NUL.search(body, pos) is None:
            return  # NUL padding after the last member
        decoder = zlib
        feed_size = 512
        members += 1
        if members % _TICK_MEMBERS == 0:
            yield b""


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_ZSTD_SKIPPABLE = b"\x2a\x4d\x18"  # bytes 1-3 of the magic 0x184D2A5? of a skippable frame
_ZSTD_BLOCK_MAX = 128 * 1024  # RFC 8878 §3.1.1.2.3: no block decompresses to more


def _unzstd_steps(body: bytes, limit: int) -> Iterator[bytes]:
    """zstd, frame after frame, fed to one streaming decoder in slices of whole blocks.

    The frame and block headers are walked here (RFC 8878 §3.1): that bounds what one call may
    produce (a block is at most 128 KiB, an RLE or raw block says its size) so each call gets
    at most :data:`STEP_OUT_BYTES` of output and :data:`STEP_IN_BYTES` of input, and it finds a
    body cut inside a frame (which the streaming decoder would silently read as a prefix of the
    batch) or followed by junk. The content of the blocks is checked by the decoder.
    """
    view = memoryview(body)
    dobj = _ZSTD.decompressobj(read_across_frames=True)
    total = 0
    start = 0  # first byte not yet given to the decoder
    out_bound = 0  # most output the bytes [start, i) can produce
    for i, block_out in _zstd_blocks(body):
        if i - start >= STEP_IN_BYTES or out_bound + block_out > min(
            STEP_OUT_BYTES, limit + 1 - total
        ):
            total = yield from _zstd_feed(dobj, view[start:i], limit, total)
            start, out_bound = i, 0
        out_bound += block_out
    yield from _zstd_feed(dobj, view[start:], limit, total)


def _zstd_feed(dobj: Any, data: memoryview, limit: int, total: int) -> Generator[bytes, None, int]:
    if not data:
        return total
    try:
        out = dobj.decompress(data)
    except zstandard.ZstdError as exc:
        raise RequestError("bad_compression", f"invalid zstd data: {exc}") from None
    total += len(out)
    if total > limit:
        raise _too_large(limit)
    yield out
    return total


def _zstd_blocks(body: bytes) -> Iterator[tuple[int, int]]:
    """(start offset, most output) of every block and skippable frame of a zstd body; raises
    the 400 of a body that is not a sequence of whole frames."""
    n = len(body)
    i = 0
    while i < n:
        magic = body[i : i + 4]
        if magic == _ZSTD_MAGIC:
            if i + 5 > n:
                raise _zstd_problem("truncated")
            fhd = body[i + 4]
            single_segment = fhd & 0x20
            i += 5 + (0 if single_segment else 1)  # magic, descriptor, window descriptor
            i += (0, 1, 2, 4)[fhd & 0x03]  # dictionary id
            i += ((1 if single_segment else 0), 2, 4, 8)[fhd >> 6]  # frame content size
            while True:
                if i + 3 > n:
                    raise _zstd_problem("truncated")
                header = int.from_bytes(body[i : i + 3], "little")
                kind = (header >> 1) & 0x03
                if kind == 3:
                    raise _zstd_problem("invalid")  # reserved block type
                size = header >> 3
                yield i, (_ZSTD_BLOCK_MAX if kind == 2 else size)
                i += 3 + (1 if kind == 1 else size)  # an RLE block holds one byte
                if header & 0x01:  # last block
                    break
            if fhd & 0x04:
                i += 4  # content checksum
            if i > n:
                raise _zstd_problem("truncated")
        elif magic[1:] == _ZSTD_SKIPPABLE and magic[0] & 0xF0 == 0x50:
            if i + 8 > n:
                raise _zstd_problem("truncated")
            yield i, 0
            i += 8 + int.from_bytes(body[i + 4 : i + 8], "little")
            if i > n:
                raise _zstd_problem("truncated")
        else:
            raise _zstd_problem("invalid" if i == 0 else "trailing bytes after the")


def _zstd_problem(what: str) -> RequestError:
    return RequestError("bad_compression", f"{what} zstd data")


def _unsnappy(body: bytes, limit: int) -> bytes:
    """Raw snappy block (what Vector sends); its header states the output size up front."""
    try:
        size = cramjam.snappy.decompress_raw_len(body)
    except Exception as exc:
        raise RequestError("bad_compression", f"invalid snappy data: {exc}") from None
    if size > limit:
        raise _too_large(limit)
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except Exception as exc:
        raise RequestError("bad_compression", f"invalid snappy data: {exc}") from None
