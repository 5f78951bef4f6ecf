"""Stage 1: request body bytes → a list of records.

Two steps, both bounded and both raising only :class:`RequestError` (a 4xx) for bodies that can
never be decoded:

* :func:`decompress` — every ``Content-Encoding`` Vector, the Datadog Agent and Fluent Bit send,
  with output capped at the configured limit: a decompression bomb stops at the limit and the
  rest is never inflated.
* :func:`parse_records` — JSON array, single object, NDJSON or text lines. The fast path parses
  the whole body with one ``orjson.loads``. If that fails, the slow path splits the body into its
  records and parses each alone, so one bad record (invalid JSON or UTF-8, ``NaN``, a 2^70
  integer, 10,000-deep nesting) is dead-lettered alone and the good records of the batch are kept.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass, field
from enum import Enum
from io import BytesIO
from typing import Any

import cramjam
import orjson
import simdjson
import zstandard

try:  # ISA-L inflate is 2-3x faster than zlib's; same API.
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover - isal is a dependency, this is a safety net
    _zlib = zlib  # type: ignore[assignment]

from ingest.status import RequestError

_ZSTD = zstandard.ZstdDecompressor()
#: A record of a JSON-array body, parsed lazily by simdjson: its fields become Python objects
#: only when read. Extraction reads two or three fields of each of the ~90% noise records and
#: materialises (``.as_dict()``) only the candidates, which is what makes the sink faster than
#: a plain ``orjson.loads`` of the body.
LazyRecord = simdjson.Object
LazyArray = simdjson.Array


def may_have_name_keys(body: bytes) -> bool:
    """Could any record of this body carry its event name as a key of its own?

    A key `"event"`, `"evt.name"` or `"evt"` starts with an unescaped `"ev`. Inside JSON strings
    quotes are escaped, so the `\\"event\\"` of an app's JSON log line in `message` is preceded
    by a backslash — and a real key never is (it follows `{`, `,` or whitespace). One substring
    scan at memory speed, plus a step per escaped match (about one per event in a message). A
    string value starting with "ev" is a harmless false positive (the body is then parsed fully).

    When a body has no such key, only `message`/`log` strings can carry events and lazy parsing
    is safe; otherwise records are materialised, because key look-ups on lazy records cost
    microseconds each when the key is missing.
    """
    i = body.find(b'"ev')
    while i != -1:
        if i == 0 or body[i - 1] != 0x5C:  # 0x5C: backslash
            return True
        i = body.find(b'"ev', i + 3)
    return False


class BodyFormat(Enum):
    JSON = "json"  # array of records or one object (Vector json codec, Datadog intake)
    NDJSON = "ndjson"  # one JSON object per line (Vector newline_delimited, Fluent Bit json_lines)
    TEXT = "text"  # each line is one record's message


@dataclass(slots=True)
class BadRecord:
    """A record that could not be parsed; dead-lettered with its reason."""

    reason: str
    detail: str
    raw: str


@dataclass(slots=True)
class ParsedBody:
    #: Python values, or — for a JSON array body — a lazy simdjson array of LazyRecords.
    records: list[Any]
    bad: list[BadRecord] = field(default_factory=list)
    #: Indices of records parsed by the lenient (stdlib) parser: they may hold NaN, integers
    #: beyond 64 bits or lone surrogates, so extraction checks them before writing.
    lenient: set[int] = field(default_factory=set)


# --------------------------------------------------------------------------- decompression


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Decode `body` per its Content-Encoding; never produce more than `limit` bytes."""
    enc = encoding.strip().lower()
    if enc in ("", "identity"):
        out = body
    elif enc in ("gzip", "x-gzip"):
        out = _inflate(body, 16 + _zlib.MAX_WBITS, limit, "gzip")
    elif enc == "deflate":
        # RFC 9110 deflate is zlib-wrapped (Vector `zlib`); some clients send raw deflate.
        try:
            out = _inflate(body, _zlib.MAX_WBITS, limit, "deflate")
        except RequestError as exc:
            if exc.reason != "bad_compression":
                raise
            out = _inflate(body, -_zlib.MAX_WBITS, limit, "deflate")
    elif enc == "zstd":
        out = _unzstd(body, limit)
    elif enc in ("snappy", "x-snappy"):
        out = _unsnappy(body, limit)
    else:
        raise RequestError(
            "unsupported_encoding",
            f"Content-Encoding {encoding!r} is not supported "
            "(identity, gzip, x-gzip, deflate, zstd, snappy)",
        )
    if len(out) > limit:
        raise _too_large(limit)
    return out


def _too_large(limit: int) -> RequestError:
    return RequestError(
        "decompressed_too_large",
        f"decompressed body exceeds the limit of {limit} bytes (LOGSHIP_MAX_DECOMPRESSED_BYTES)",
    )


def _inflate(body: bytes, wbits: int, limit: int, name: str) -> bytes:
    """Inflate, member after member (concatenated gzip is valid), capped at `limit` + 1 bytes."""
    chunks: list[bytes] = []
    total = 0
    data = body
    while True:
        d = _zlib.decompressobj(wbits)
        try:
            out = d.decompress(data, limit + 1 - total)
        except (zlib.error, _zlib.error) as exc:
            raise RequestError("bad_compression", f"invalid {name} data: {exc}") from None
        chunks.append(out)
        total += len(out)
        if total > limit:
            raise _too_large(limit)
        if not d.eof:
            if d.unconsumed_tail:  # stopped by max_length: more output than the limit
                raise _too_large(limit)
            raise RequestError("bad_compression", f"truncated {name} data")
        data = d.unused_data
        if not data or wbits != 16 + _zlib.MAX_WBITS or not data.strip(b"\x00"):
            break
    return b"".join(chunks)


def _unzstd(body: bytes, limit: int) -> bytes:
    try:
        reader = _ZSTD.stream_reader(BytesIO(body), read_across_frames=True)
        out = reader.read(limit + 1)
    except zstandard.ZstdError as exc:
        raise RequestError("bad_compression", f"invalid zstd data: {exc}") from None
    if len(out) > limit:
        raise _too_large(limit)
    # The streaming reader stops silently where its input ends: a body cut inside a frame
    # would decode to a prefix of the batch. Accept only whole frames.
    problem = _zstd_incomplete(body)
    if problem:
        raise RequestError("bad_compression", f"{problem} zstd data")
    return out


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_ZSTD_SKIPPABLE = b"\x2a\x4d\x18"  # bytes 1-3 of the magic 0x184D2A5? of a skippable frame


def _zstd_incomplete(body: bytes) -> str | None:
    """None when `body` is a sequence of whole zstd frames (RFC 8878 §3.1), else what is wrong.

    Walks frame and block headers only (no decompression): a few header reads per 128 KiB
    block. The content of the blocks was already checked by the decoder.
    """
    n = len(body)
    i = 0
    while i < n:
        magic = body[i : i + 4]
        if magic == _ZSTD_MAGIC:
            if i + 5 > n:
                return "truncated"
            fhd = body[i + 4]
            single_segment = fhd & 0x20
            i += 5 + (0 if single_segment else 1)  # magic, descriptor, window descriptor
            i += (0, 1, 2, 4)[fhd & 0x03]  # dictionary id
            i += ((1 if single_segment else 0), 2, 4, 8)[fhd >> 6]  # frame content size
            while True:
                if i + 3 > n:
                    return "truncated"
                header = int.from_bytes(body[i : i + 3], "little")
                kind = (header >> 1) & 0x03
                if kind == 3:
                    return "invalid"  # reserved block type
                i += 3 + (1 if kind == 1 else header >> 3)  # an RLE block holds one byte
                if header & 0x01:  # last block
                    break
            if fhd & 0x04:
                i += 4  # content checksum
            if i > n:
                return "truncated"
        elif magic[1:] == _ZSTD_SKIPPABLE and magic[0] & 0xF0 == 0x50:
            if i + 8 > n:
                return "truncated"
            i += 8 + int.from_bytes(body[i + 4 : i + 8], "little")
            if i > n:
                return "truncated"
        else:
            return "invalid" if i == 0 else "trailing bytes after the"
    return None


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


# --------------------------------------------------------------------------- body formats


def body_format(content_type: str) -> BodyFormat:
    """Pick the body format from the Content-Type; JSON unless it says lines."""
    ct = content_type.split(";", 1)[0].strip().lower()
    if ct in ("application/x-ndjson", "application/ndjson", "application/jsonlines",
              "application/x-jsonlines", "application/json-lines", "application/jsonl"):  # fmt: skip
        return BodyFormat.NDJSON
    if ct.startswith("text/plain"):
        return BodyFormat.TEXT
    return BodyFormat.JSON


def parse_records(data: bytes, fmt: BodyFormat) -> ParsedBody:
    """Split a decompressed body into records; raise RequestError only if nothing is decodable."""
    if fmt is BodyFormat.TEXT:
        return _parse_text(data)
    if fmt is BodyFormat.NDJSON:
        return _parse_lines(data)
    stripped = data.strip()
    if not stripped:
        return ParsedBody([])
    if stripped[:1] == b"[" and not may_have_name_keys(stripped):
        # No record has an event-name key of its own, so only `message`/`log` strings can carry
        # events: parse lazily and let extraction read just those (see LazyRecord).
        try:
            # A new parser per body: lazy records keep their parser alive, and a parser may
            # not be reused while any of them exists (creating one costs under a microsecond).
            doc: Any = simdjson.Parser().parse(stripped)
        except (ValueError, RuntimeError):  # NaN, >64-bit ints, bad UTF-8, too deep, not JSON
            return _parse_json_slow(stripped)
        if isinstance(doc, simdjson.Array):
            return ParsedBody(doc)  # type: ignore[arg-type]  # iterated lazily by extraction
    try:
        doc = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        return _parse_json_slow(stripped)
    if isinstance(doc, list):
        return ParsedBody(doc)
    if isinstance(doc, dict):
        return ParsedBody([doc] if doc else [])  # `{}`: the Datadog Agent's connectivity probe
    raise RequestError("invalid_body", f"expected a JSON array or object, got {type(doc).__name__}")


def _parse_json_slow(data: bytes) -> ParsedBody:
    if data[:1] == b"[":
        parts = split_json_array(data)
        if parts is None:
            raise RequestError("invalid_body", _why_invalid(data))
        return _parse_parts(parts)
    if data[:1] == b"{" and b"\n" in data:
        # Several JSON objects, one per line, sent without an NDJSON content type.
        return _parse_lines(data)
    if data[:1] == b"{":
        out = _parse_parts([data])
        if out.records:
            return out
    raise RequestError("invalid_body", _why_invalid(data))


def _why_invalid(data: bytes) -> str:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return f"body is not valid JSON: {exc}"
    return "body is not valid JSON"  # pragma: no cover


def _parse_text(data: bytes) -> ParsedBody:
    # Lines end at \n (or \r\n) only, as in NDJSON and Vector's newline framing: not
    # str.splitlines, which also breaks on \f, \x85, U+2028... inside one log line.
    text = data.decode("utf-8", "replace")
    return ParsedBody(
        [{"message": line.removesuffix("\r")} for line in text.split("\n") if line.strip()]
    )


def _parse_lines(data: bytes) -> ParsedBody:
    lines = [ln for ln in data.split(b"\n") if ln.strip()]
    return _parse_parts(lines)


def _parse_parts(parts: list[bytes]) -> ParsedBody:
    out = ParsedBody([])
    for part in parts:
        try:
            out.records.append(orjson.loads(part))
            continue
        except orjson.JSONDecodeError as exc:
            fast_error = str(exc)
        value, bad = parse_lenient(part, fast_error)
        if bad is not None:
            out.bad.append(bad)
        else:
            out.lenient.add(len(out.records))
            out.records.append(value)
    return out


def parse_lenient(part: bytes, fast_error: str) -> tuple[Any, BadRecord | None]:
    """Parse what orjson refused with the stdlib parser, which accepts NaN, huge integers and
    (after surrogate-escaping) invalid UTF-8; the extraction step then rejects such values."""
    raw = part[:4096].decode("utf-8", "replace")
    if "recursion" in fast_error or "depth" in fast_error:
        return None, BadRecord("too_deep", "JSON nesting exceeds the parser limit", raw)
    try:
        text = part.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = part.decode("utf-8", "surrogateescape")
        utf8_error: str | None = f"invalid UTF-8 at byte {exc.start}"
    else:
        utf8_error = None
    try:
        value = json.loads(text)
    except RecursionError:
        return None, BadRecord("too_deep", "JSON nesting exceeds the parser limit", raw)
    except ValueError as exc:
        reason = "invalid_utf8" if utf8_error else "invalid_json"
        return None, BadRecord(reason, utf8_error or f"invalid JSON: {exc}", raw)
    return value, None


# A JSON string (with escapes), or one structural character.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},]', re.DOTALL)


def split_json_array(data: bytes) -> list[bytes] | None:
    """Split a JSON array into the byte slices of its elements without parsing them.

    Used only when the whole body failed to parse, so one bad element can be dead-lettered
    alone. Returns None when the array itself is malformed (unbalanced or unterminated).
    """
    depth = 0
    start = 0
    parts: list[bytes] = []
    for m in _TOKEN.finditer(data):
        tok = m.group()
        c = tok[:1]
        if c == b'"':
            continue
        if c in b"[{":
            depth += 1
            if depth == 1:
                if c != b"[" or m.start() != 0:
                    return None
                start = m.end()
        elif c in b"]}":
            depth -= 1
            if depth < 0:
                return None
            if depth == 0:
                if c != b"]" or data[m.end() :].strip():
                    return None
                last = data[start : m.start()].strip()
                if last:
                    parts.append(last)
                elif parts:
                    return None  # trailing comma
                return parts
        elif depth == 1:  # a comma between elements
            part = data[start : m.start()].strip()
            if not part:
                return None
            parts.append(part)
            start = m.end()
    return None
