"""Stage 2: a decompressed body → records, in bounded steps.

JSON array, single object, NDJSON or text lines (:func:`body_format` picks by Content-Type).
The fast path parses a whole chunk of records with one C call (simdjson lazily, or orjson). If
that fails, the slow path splits the chunk into its records and parses each alone, so one bad
record (invalid JSON or UTF-8, ``NaN``, a 2^70 integer, 10,000-deep nesting) is dead-lettered
alone and the good records of the batch are kept. Only :class:`RequestError` (a 400) is raised,
for a body that can never be split into records.

Work per request is linear in the body size and done in **bounded steps**, so the server can
interleave other requests between them (:mod:`ingest.app` yields the event loop between steps):

* parse calls see at most about 2 × :data:`CHUNK_BYTES` (or one record);
* no regular expression backtracks more than a constant per position (repeats are
  possessive) and no scan restarts from an earlier position, whatever the input (unterminated
  strings, many quotes or commas, deep nesting, huge keys);
* records that cannot carry an event are counted, not kept: they are ``None`` in
  :attr:`ParsedBody.records` (extraction counts them as noise), so at most one chunk of
  records exists as Python objects at a time;
* a record larger than ``LOGSHIP_MAX_RECORD_BYTES`` as sent is never parsed (parsing it could
  take tens of bytes of Python objects per byte): it is dead-lettered as ``record_too_large``
  without its content when it could hold an event, else counted as noise.

:func:`parse_records` parses a whole body at once and keeps every record (tests and tools use
it, the server uses :func:`parse_steps`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import orjson
import simdjson

from ingest.event import RejectReason
from ingest.status import RequestError

#: A record of a JSON-array body, parsed lazily by simdjson: its fields become Python objects
#: only when read. Extraction reads two or three fields of each of the ~90% noise records and
#: materialises (``.as_dict()``) only the candidates, which is what makes the sink faster than
#: a plain ``orjson.loads`` of the body.
LazyRecord = simdjson.Object
LazyArray = simdjson.Array

#: JSON arrays are parsed about this many bytes at a time (at most twice this, or one record);
#: NDJSON and text bodies in windows of this size (plus the rest of the last line).
CHUNK_BYTES = 256 * 1024
#: Most materialised records handed to extraction at once (and most noise placeholders).
STEP_RECORDS = 512
_STEP_NOISE = 16384
#: Most bytes one regular-expression call scans (long strings are scanned window by window).
_SCAN_WINDOW = 256 * 1024
#: The lazy (simdjson) reader costs microseconds per record that lacks `message`; below this
#: many bytes per record on average, materialising the chunk with orjson is cheaper.
_LAZY_MIN_RECORD_BYTES = 256
_TICK_TOKENS = 4096  # the record splitter reports progress every this many tokens


class BodyFormat(Enum):
    JSON = "json"  # array of records or one object (Vector json codec, Datadog intake)
    NDJSON = "ndjson"  # one JSON object per line (Vector newline_delimited, Fluent Bit json_lines)
    TEXT = "text"  # each line is one record's message


@dataclass(slots=True)
class BadRecord:
    """A record that could not be parsed; dead-lettered with its reason."""

    reason: str  # a RejectReason
    detail: str
    raw: str


@dataclass(slots=True)
class ParsedBody:
    #: Python values, or — for a JSON array — a lazy simdjson array of LazyRecords. In the
    #: output of :func:`parse_steps`, ``None`` stands for a record that cannot carry an event.
    records: list[Any]
    bad: list[BadRecord] = field(default_factory=list)
    #: Indices of records parsed by the lenient (stdlib) parser: they may hold NaN, integers
    #: beyond 64 bits or lone surrogates, so extraction checks them before writing.
    lenient: set[int] = field(default_factory=set)


# --------------------------------------------------------------------------- what a record may be

# An event-name key (`event`, `evt`, `evt.name`) with one of its first two letters escaped.
_ESCAPED_NAME_KEY_STARTS = (b'"\\u0065', b'"e\\u0076')
# `"ev` in any JSON spelling: a name key, or (inside a string) the `"ev` of an app's JSON log
# line in `message` — its quote escaped as \" or \u0022, either letter as \u00XX.
_EVENT_MARK = re.compile(rb'(?:"|\\u0022)(?:e|\\u0065)(?:v|\\u0076)')


# In a text line (the message is the line itself): a key that JSON-decodes to `event`, `evt`
# or `evt.name` — each letter as itself or \u-escaped, in either case of hex — and its colon.
def _spelled(c: str) -> str:
    hexes = {f"{ord(c):04x}", f"{ord(c):04X}"}
    return "(?:" + "|".join([re.escape(c), *(rf"\\u{h}" for h in sorted(hexes))]) + ")"


_E, _V, _N, _T = map(_spelled, "evnt")
_NAME = "".join(map(_spelled, ".name"))
_TEXT_NAME_KEY = re.compile(f'"{_E}{_V}(?:{_E}{_N}{_T}|{_T}(?:{_NAME})?)"[ \t\r\n]*:')


def may_have_name_keys(body: bytes) -> bool:
    """Could any record of this body carry its event name as a key of its own?

    A key `"event"`, `"evt.name"` or `"evt"` starts with an unescaped `"ev` — or with an
    escaped spelling of it (`"\\u0065vent"`, `"e\\u0076t"`, ...), which every JSON parser reads
    as the same key. Inside JSON strings quotes are escaped, so the `\\"event\\"` of an app's
    JSON log line in `message` is preceded by a backslash — and a real key never is (it
    follows `{`, `,` or whitespace). One substring scan, plus a step per escaped match (about
    one per event in a message); two more only when the body holds `\\u00` escapes at all. A
    string value starting with "ev" is a harmless false positive (the body is then parsed
    fully).

    When a body has no such key, only `message`/`log` strings can carry events and lazy parsing
    is safe (simdjson unescapes keys, so an escaped `message` key is found by name); otherwise
    records are materialised, because key look-ups on lazy records cost microseconds each when
    the key is missing.
    """
    if _unescaped_quote_before(body, b'"ev'):
        return True
    if b"\\u00" not in body:
        return False
    # `"\u0065` may go on with `v` or `\u0076`: either way an `ev` key, or a harmless false
    # positive (a key or value like "e-mail" spelled with escapes).
    return any(_unescaped_quote_before(body, start) for start in _ESCAPED_NAME_KEY_STARTS)


def _unescaped_quote_before(body: bytes, needle: bytes) -> bool:
    """Is `needle` (which starts with a quote) in `body` with that quote not escaped?"""
    i = body.find(needle)
    while i != -1:
        if i == 0 or body[i - 1] != 0x5C:  # 0x5C: backslash
            return True
        i = body.find(needle, i + len(needle))
    return False


def may_hold_event(raw: bytes) -> bool:
    """Could this JSON text hold an event at all? False means: certainly noise.

    Every event needs `"ev` — as the start of a name key, or in the `message`/`log` string
    holding the app's JSON (which extraction only looks at when it contains `"ev`) — in some
    JSON spelling (see :data:`_EVENT_MARK`). Two substring scans at memory speed for almost
    every body; the regex only when `\\u00` escapes are present.
    """
    if b'"ev' in raw:
        return True
    return b"\\u00" in raw and _EVENT_MARK.search(raw) is not None


def _oversized(size: int, limit: int) -> BadRecord:
    # Its content is not kept: it was never parsed, so its `pii` fields cannot be redacted.
    return BadRecord(
        RejectReason.RECORD_TOO_LARGE,
        f"record is {size} bytes, above the limit of {limit} (LOGSHIP_MAX_RECORD_BYTES); "
        "not parsed",
        "",
    )


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


def parse_steps(
    data: bytes,
    fmt: BodyFormat,
    max_record_bytes: int,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[ParsedBody | None]:
    """Split a decompressed body into records, in bounded steps (see the module docstring).

    Yields pieces of the batch (each a :class:`ParsedBody` to extract on its own) or None
    (work done, nothing to hand over yet); raises RequestError only if the body is not
    decodable at all — possibly after some pieces, which the caller then drops.
    """
    chunk_bytes = max(1, min(chunk_bytes, max_record_bytes // 2))
    if fmt is BodyFormat.TEXT:
        yield from _text_steps(data, max_record_bytes, chunk_bytes)
        return
    if fmt is BodyFormat.NDJSON:
        yield from _lines_steps(data, 0, len(data), max_record_bytes, chunk_bytes)
        return
    lo, hi = _strip_bounds(data)
    if lo == hi:
        return
    first = data[lo]
    if first == 0x5B:  # [
        yield from _array_steps(data, lo, hi, max_record_bytes, chunk_bytes)
    elif first == 0x7B:  # {
        yield from _object_steps(data, lo, hi, max_record_bytes, chunk_bytes)
    else:
        _not_a_batch(data[lo:hi])


def _strip_bounds(data: bytes) -> tuple[int, int]:
    """`data.strip()` as bounds, without copying the body."""
    lo = _LEADING_WS.match(data).end()  # type: ignore[union-attr]
    hi = len(data)
    if hi > lo and data[hi - 1] not in _WHITESPACE:
        return lo, hi
    while hi > lo:
        tail = data[max(lo, hi - 65536) : hi]
        kept = len(tail.rstrip())
        hi -= len(tail) - kept
        if kept:
            break
    return lo, hi


_LEADING_WS = re.compile(rb"[ \t\n\r\x0b\x0c]*+")
_WHITESPACE = frozenset(b" \t\n\r\x0b\x0c")


def _not_a_batch(data: bytes) -> None:
    """Raise the 400 of a body that is neither an array nor an object (nor object lines)."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RequestError("invalid_body", f"body is not valid JSON: {exc}") from None
    raise RequestError("invalid_body", f"expected a JSON array or object, got {type(doc).__name__}")


def _object_steps(
    data: bytes, lo: int, hi: int, max_record_bytes: int, chunk_bytes: int
) -> Iterator[ParsedBody | None]:
    """One object (Datadog), or several objects one per line sent without an NDJSON type."""
    size = hi - lo
    if size <= max_record_bytes:
        obj = data[lo:hi] if size < len(data) else data
        try:
            doc = orjson.loads(obj)
        except orjson.JSONDecodeError as exc:
            if b"\n" in obj:
                yield from _lines_steps(data, lo, hi, max_record_bytes, chunk_bytes)
                return
            out = ParsedBody([])
            _parse_one(obj, out, max_record_bytes, str(exc))
            if out.records:
                yield out
                return
            raise RequestError("invalid_body", f"body is not valid JSON: {exc}") from None
        if type(doc) is dict:
            if doc:  # `{}`: the Datadog Agent's connectivity probe
                yield ParsedBody([doc])
            return
        _not_a_batch(obj)  # pragma: no cover - a body starting with { is an object or invalid
    # Too large to be one record: object lines, if its first line is a whole JSON value.
    nl = data.find(b"\n", lo, hi)
    if nl != -1 and nl - lo <= max_record_bytes:
        try:
            orjson.loads(data[lo:nl])
        except orjson.JSONDecodeError:
            pass
        else:
            yield from _lines_steps(data, lo, hi, max_record_bytes, chunk_bytes)
            return
    out = ParsedBody([])
    _parse_one(data[lo:hi], out, max_record_bytes)
    yield out


# ----------------------------------------------------------------- JSON arrays


# Where one object of an array ends and the next begins: the likely place to cut a chunk.
_OBJECT_BOUNDARY = re.compile(rb"\}[ \t\r\n]*+,[ \t\r\n]*+\{")
_CUT_ATTEMPTS = 3


def _array_steps(
    data: bytes, lo: int, hi: int, max_record_bytes: int, chunk_bytes: int
) -> Iterator[ParsedBody | None]:
    """A JSON array `data[lo:hi]`, about `chunk_bytes` of elements at a time.

    Fast path: guess a cut between two elements (a `},{` after `chunk_bytes`) and parse the
    elements before it with one call. If `[` + those bytes + `]` is valid JSON, the cut was a
    real element boundary: the bytes start at an element, and a cut inside a string or a nested
    value cannot close with one `]`. Otherwise (bad elements, or no good cut) the exact splitter
    walks that part element by element. Chunks parsed whole stay at most `2 × chunk_bytes` ≤
    `max_record_bytes`, so any larger element is met by the splitter, which never parses it.
    """
    if data[hi - 1] != 0x5D:  # ]
        raise RequestError("invalid_body", "body is not valid JSON: the array is not closed")
    max_chunk = 2 * chunk_bytes
    view = memoryview(data)
    close = hi - 1  # the array's closing bracket
    pos = lo + 1  # start of the next element (after `[` or a top-level comma)
    while True:
        if close - pos <= max_chunk:  # the rest, up to the closing bracket
            if pos > lo + 1 and not data[pos:close].strip():
                raise RequestError("invalid_body", "body is not valid JSON: trailing comma")
            whole = pos == lo + 1 and lo == 0 and hi == len(data)
            pieces = _chunk_pieces(data if whole else b"".join((b"[", view[pos:close], b"]")))
            if pieces is not None:
                yield from pieces
                return
        else:
            for cut, after in _cuts(data, pos + chunk_bytes, pos + max_chunk):
                pieces = _chunk_pieces(b"".join((b"[", view[pos:cut], b"]")))
                if pieces is not None:
                    yield from pieces
                    pos = after
                    break
                yield None
            else:
                pieces = None
            if pieces is not None:
                continue
        spans, pos, closed = yield from _split_array(data, pos, hi, chunk_bytes)
        yield from _span_steps(data, spans, max_record_bytes)
        if closed:
            return


def _cuts(data: bytes, lo: int, hi: int) -> Iterator[tuple[int, int]]:
    """Candidate cuts in `data[lo:hi]`: (end of the elements before, start of the next)."""
    n = 0
    for m in _OBJECT_BOUNDARY.finditer(data, lo, hi):
        yield m.start() + 1, m.end() - 1
        n += 1
        if n == _CUT_ATTEMPTS:
            return
    if n == 0:  # not an array of objects: try plain commas
        i = data.find(b",", lo, hi)
        while i != -1 and n < _CUT_ATTEMPTS:
            yield i, i + 1
            n += 1
            i = data.find(b",", i + 1, hi)


def _chunk_pieces(buf: bytes) -> list[ParsedBody] | None:
    """`[` elements `]` parsed in one call, as pieces for extraction; None if it is not valid
    JSON (then the elements are split and parsed one by one)."""
    if not may_hold_event(buf):
        try:  # validate and count: every record is noise
            n = len(simdjson.Parser().parse(buf))
        except (ValueError, RuntimeError):  # NaN, >64-bit ints, bad UTF-8, too deep, not JSON
            return None
        return _noise(n)
    if not may_have_name_keys(buf):
        # No record has an event-name key of its own, so only `message`/`log` strings can carry
        # events: parse lazily and let extraction read just those (see LazyRecord).
        try:
            # A new parser per chunk: lazy records keep their parser alive, and a parser may
            # not be reused while any of them exists (creating one costs under a microsecond).
            doc: Any = simdjson.Parser().parse(buf)
        except (ValueError, RuntimeError):
            return None
        if len(doc) * _LAZY_MIN_RECORD_BYTES <= len(buf):
            return [ParsedBody(doc)]  # iterated lazily by extraction
        del doc
    try:
        records = orjson.loads(buf)
    except orjson.JSONDecodeError:
        return None
    return [ParsedBody(records[i : i + STEP_RECORDS]) for i in range(0, len(records), STEP_RECORDS)]


def _noise(n: int) -> list[ParsedBody]:
    """`n` records that cannot carry an event, as pieces for extraction to count."""
    return [ParsedBody([None] * min(_STEP_NOISE, n - i)) for i in range(0, n, _STEP_NOISE)]


def _span_steps(
    data: bytes, spans: list[tuple[int, int]], max_record_bytes: int
) -> Iterator[ParsedBody | None]:
    """Elements found by the splitter: runs of ordinary ones parsed together if they can be,
    else one by one; elements above `max_record_bytes` never parsed."""
    view = memoryview(data)
    run: list[tuple[int, int]] = []
    for span in [*spans, None]:
        if span is not None and span[1] - span[0] <= max_record_bytes:
            run.append(span)
            continue
        if run:
            pieces = _chunk_pieces(b"".join((b"[", view[run[0][0] : run[-1][1]], b"]")))
            if pieces is None:
                yield from _parts_steps([data[a:b] for a, b in run], max_record_bytes)
            else:
                yield from pieces
            run = []
        if span is not None:
            yield from _parts_steps([data[span[0] : span[1]]], max_record_bytes)


def _balanced_group(depth: int) -> bytes:
    """A regex for one `[...]`/`{...}` group without strings, nested at most `depth` deep
    (bracket kinds are not matched here: parsing the element checks them)."""
    group = rb'[\[{][^"\[\]{}]*+[\]}]'
    for _ in range(depth - 1):
        group = rb'[\[{](?:[^"\[\]{}]++|' + group + rb")*+[\]}]"
    return group


_GROUP = _balanced_group(6)
# What the splitter skips in one C call: everything but strings and the brackets or commas
# that matter at the current depth — at the element's own level a comma ends the element,
# deeper it does not. Possessive: a group it cannot take (deeper than 6, or longer than the
# window) stops it where the group starts, after at most 6 levels or one window of looking.
_SKIP_IN_ELEMENT = re.compile(rb'(?:[^"\[\]{},]++|' + _GROUP + rb")*+")
_SKIP_NESTED = re.compile(rb'(?:[^"\[\]{}]++|' + _GROUP + rb")*+")
# The rest of a string after its opening quote, up to (not including) its closing quote. It
# never fails and never backtracks, so a string without an end costs one pass, not one per quote.
_STRING_REST = re.compile(rb'(?:[^"\\]++|\\.)*+', re.DOTALL)
#: Deeper than this, the splitter counts brackets a block at a time (see _split_array).
_BULK_DEPTH = 64
_BULK_BYTES = 4096


def _split_array(
    data: bytes, pos: int, hi: int, want_bytes: float
) -> Generator[None, None, tuple[list[tuple[int, int]], int, bool]]:
    """The exact splitter: walk the elements of the array whose element starts at `data[pos]`,
    without parsing them, until they add up to `want_bytes` or the array closes.

    Returns (element spans, where the next element starts, whether the array closed). C scans
    do the walking — quote-free runs and shallow groups in one regex call per window, strings
    one window at a time, and deep nesting a block at a time (a block without quotes that
    holds fewer closing brackets than the depth above the element's level cannot end the
    element: its brackets are just counted). Python sees only the remaining tokens; it
    yields None every few thousand. Raises the 400 of a malformed array (unterminated string,
    unbalanced or unclosed, empty or trailing element).
    """
    depth = 1
    start = pos
    spans: list[tuple[int, int]] = []
    size = 0
    i = pos
    tokens = 0
    while True:
        tokens += 1
        if tokens % _TICK_TOKENS == 0:
            yield None
        if depth > _BULK_DEPTH:  # a block of at most depth - 2 bytes cannot close the element
            stop = min(hi, i + _BULK_BYTES, i + depth - 2)
            quote = data.find(b'"', i, stop)
            block = data[i : stop if quote == -1 else quote]
            closes = block.count(b"]") + block.count(b"}")
            if block and depth - closes > 1:
                depth += block.count(b"[") + block.count(b"{") - closes
                i += len(block)
                continue
        end = min(hi, i + _SCAN_WINDOW)
        i = (_SKIP_IN_ELEMENT if depth == 1 else _SKIP_NESTED).match(data, i, end).end()  # type: ignore[union-attr]
        if i == end:
            if end == hi:
                raise _malformed("the array is not closed", hi)
            continue
        j = i
        c = data[j]
        i = j + 1
        if c == 0x22:  # "
            i = yield from _string_end(data, i, hi)
        elif c == 0x5B or c == 0x7B:  # [ {
            depth += 1
        elif c == 0x5D or c == 0x7D:  # ] }
            depth -= 1
            if depth:
                continue
            if c != 0x5D or data[i:hi].strip():
                raise _malformed("unbalanced brackets", j)
            span = _stripped(data, start, j)
            if span is not None:
                spans.append(span)
            elif start > pos or data[pos - 1 : pos] == b",":
                raise _malformed("trailing comma", j)
            return spans, i, True
        else:  # a comma between elements (deeper ones are skipped)
            span = _stripped(data, start, j)
            if span is None:
                raise _malformed("empty element", j)
            spans.append(span)
            size += span[1] - span[0]
            start = i
            if size >= want_bytes:
                return spans, start, False


def _string_end(data: bytes, i: int, hi: int) -> Generator[None, None, int]:
    """Index after the closing quote of the string whose content starts at `data[i]`."""
    while True:
        end = min(hi, i + _SCAN_WINDOW)
        j = _STRING_REST.match(data, i, end).end()  # type: ignore[union-attr]
        if j < end and data[j] == 0x22:
            return j + 1
        if end == hi:
            raise _malformed("unterminated string", hi)
        i = j  # the window ended inside the string (perhaps just before an escaped byte)
        yield None


def _stripped(data: bytes, a: int, b: int) -> tuple[int, int] | None:
    """The bounds of `data[a:b]` without surrounding whitespace; None when only whitespace."""
    part = data[a:b]
    kept = part.lstrip()
    if not kept:
        return None
    a += len(part) - len(kept)
    return a, a + len(kept.rstrip())


def _malformed(what: str, at: int) -> RequestError:
    return RequestError("invalid_body", f"body is not valid JSON: {what} at byte {at}")


# ----------------------------------------------------------------- lines


def _lines_steps(
    data: bytes, lo: int, hi: int, max_record_bytes: int, chunk_bytes: int
) -> Iterator[ParsedBody | None]:
    """NDJSON: one JSON record per line of `data[lo:hi]`, a window of lines at a time."""
    for window in _windows(data, lo, hi, chunk_bytes):
        parts = [ln for ln in window.split(b"\n") if ln.strip()]
        if not parts:
            yield None  # a window of blank lines is work too: report it, so the caller paces
            continue
        yield from _parts_steps(parts, max_record_bytes)


def _windows(data: bytes, lo: int, hi: int, size: int) -> Iterator[bytes]:
    """`data[lo:hi]` in pieces of about `size` bytes that end at a newline."""
    pos = lo
    while pos < hi:
        end = hi if hi - pos <= size else data.find(b"\n", pos + size, hi)
        if end == -1:
            end = hi
        yield data[pos:end]
        pos = end + 1


def _parts_steps(parts: list[bytes], max_record_bytes: int) -> Iterator[ParsedBody]:
    """Records parsed one by one, handed over :data:`STEP_RECORDS` at a time."""
    for i in range(0, len(parts), STEP_RECORDS):
        out = ParsedBody([])
        for part in parts[i : i + STEP_RECORDS]:
            _parse_one(part.strip(), out, max_record_bytes)
        yield out


def _parse_one(
    part: bytes, out: ParsedBody, max_record_bytes: int, fast_error: str | None = None
) -> None:
    """Parse one record into `out`: a record (None if it cannot carry an event), a lenient
    record, or a dead letter."""
    if len(part) > max_record_bytes:
        if may_hold_event(part):
            out.bad.append(_oversized(len(part), max_record_bytes))
        else:
            out.records.append(None)
        return
    if fast_error is None:
        try:
            value = orjson.loads(part)
        except orjson.JSONDecodeError as exc:
            fast_error = str(exc)
        else:
            out.records.append(value if may_hold_event(part) else None)
            return
    value, bad = parse_lenient(part, fast_error)
    if bad is not None:
        out.bad.append(bad)
    elif may_hold_event(part):
        out.lenient.add(len(out.records))
        out.records.append(value)
    else:
        out.records.append(None)


def _text_steps(
    data: bytes, max_record_bytes: int, chunk_bytes: int
) -> Iterator[ParsedBody | None]:
    """Text: each line is a record's `message`, which can only carry an event if it is a JSON
    object with an event-name key: lines holding such a key (in any JSON spelling, see
    :data:`_TEXT_NAME_KEY`) become records, the rest are counted as noise unread."""
    for window in _windows(data, 0, len(data), chunk_bytes):
        # Lines end at \n (or \r\n) only, as in NDJSON and Vector's newline framing: not
        # str.splitlines, which also breaks on \f, \x85, U+2028... inside one log line. A
        # window ends at a newline, which is never inside a UTF-8 sequence: decoding window by
        # window is decoding the whole body.
        lines = window.decode("utf-8", "replace").split("\n")
        blank = lines.count("") + sum(map(str.isspace, lines))
        # A name key starts with `"e` or `"\\` (an escape): two C scans rule out most lines.
        named = [ln for ln in lines if '"e' in ln or '"\\' in ln]
        candidates = [ln for ln in named if _TEXT_NAME_KEY.search(ln) is not None]
        noise = len(lines) - blank - len(candidates)
        for i in range(0, len(candidates), STEP_RECORDS):
            out = ParsedBody([])
            for line in candidates[i : i + STEP_RECORDS]:
                message = line.removesuffix("\r")
                if len(message) > max_record_bytes and message.lstrip()[:1] == "{":
                    out.bad.append(_oversized(len(message), max_record_bytes))
                else:
                    out.records.append({"message": message})
            yield out
        yield from _noise(noise)
        yield None  # every window reports its work, even one of blank lines only


# --------------------------------------------------------------------------- whole bodies


def parse_records(data: bytes, fmt: BodyFormat) -> ParsedBody:
    """Split a whole decompressed body into records at once; raise RequestError only if
    nothing is decodable. (The server uses :func:`parse_steps`.)"""
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
        return _parse_parts(_split_or_raise(data))
    if data[:1] == b"{" and b"\n" in data:
        # Several JSON objects, one per line, sent without an NDJSON content type.
        return _parse_lines(data)
    if data[:1] == b"{":
        out = _parse_parts([data])
        if out.records:
            return out
    _not_a_batch(data)
    raise AssertionError("unreachable")  # pragma: no cover


def _parse_text(data: bytes) -> ParsedBody:
    # Lines end at \n (or \r\n) only (see _text_steps).
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
    if "recursion" in fast_error or "depth" in fast_error:
        return None, BadRecord(
            RejectReason.TOO_DEEP, "JSON nesting exceeds the parser limit", _raw(part)
        )
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
        return None, BadRecord(
            RejectReason.TOO_DEEP, "JSON nesting exceeds the parser limit", _raw(part)
        )
    except ValueError as exc:
        reason = RejectReason.INVALID_UTF8 if utf8_error else RejectReason.INVALID_JSON
        return None, BadRecord(reason, utf8_error or f"invalid JSON: {exc}", _raw(part))
    return value, None


def _raw(part: bytes) -> str:
    """What a dead letter keeps of a record that could not be parsed."""
    return part[:4096].decode("utf-8", "replace")


def split_json_array(data: bytes) -> list[bytes] | None:
    """Split a JSON array into the byte slices of its elements without parsing them, in time
    linear in its size. None when the array itself is malformed (unbalanced, unterminated)."""
    try:
        return _split_or_raise(data)
    except RequestError:
        return None


def _split_or_raise(data: bytes) -> list[bytes]:
    lo, hi = _strip_bounds(data)
    if lo == hi or data[lo] != 0x5B:
        raise _malformed("not an array", lo)
    gen = _split_array(data, lo + 1, hi, float("inf"))
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        spans, _, _ = stop.value
    return [data[a:b] for a, b in spans]
