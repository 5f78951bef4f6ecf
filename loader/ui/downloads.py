"""The session's events as a download — JSON exactly as `logship session ID --json` prints it,
or the event table as CSV — streamed in chunks encoded off the event loop, so a delivery of a
hundred thousand events neither holds the whole text in memory nor stalls other requests.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aiohttp import web

from loader.ui.state import RENDER

#: Events per chunk of a download.
CHUNK_EVENTS = 500
#: Columns of the CSV download, in order (properties as one JSON column).
CSV_COLUMNS = ("occurred_at", "offset_s", "gap_s", "lane", "service", "host", "robot_id",
               "delivery_id", "event_name", "event_id", "received_at", "properties")  # fmt: skip
#: What a spreadsheet would run as a formula at the start of a cell.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def dumps(data: Any) -> str:
    """JSON exactly as the CLI's `--json` prints it (indented, ASCII, a final newline)."""
    return json.dumps(data, indent=2) + "\n"


def json_response(data: Any) -> web.Response:
    """A small answer of `/api/…`, as the CLI prints it."""
    return web.Response(text=dumps(data), content_type="application/json", charset="utf-8")


def filename(ident: str, ext: str) -> str:
    """A download's file name: the id's ASCII letters, digits and `-_.` only (it goes into a
    header), the rest as `_`."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in ident)
    return safe[:100] + ext


async def send_json(
    request: web.Request, events: Sequence[dict[str, Any]], *, name: str | None = None
) -> web.StreamResponse:
    """`events` streamed as the bytes of `dumps(events)`; an attachment when `name` is given."""
    chunks = [(_json_chunk, events[i : i + CHUNK_EVENTS], i == 0)
              for i in range(0, len(events), CHUNK_EVENTS)]  # fmt: skip
    tail = b"\n]\n" if events else b"[]\n"
    return await _stream(request, "application/json", name, chunks, tail)


async def send_csv(
    request: web.Request,
    events: Sequence[dict[str, Any]],
    notes: Sequence[dict[str, Any]],
    *,
    name: str,
) -> web.StreamResponse:
    """The event table as CSV (a header, then a row per event with its offset and lane)."""
    chunks = [(_csv_chunk, list(zip(events[i : i + CHUNK_EVENTS], notes[i : i + CHUNK_EVENTS],
                                    strict=False)), i == 0)
              for i in range(0, max(len(events), 1), CHUNK_EVENTS)]  # fmt: skip
    return await _stream(request, "text/csv", name, chunks, b"")


Chunk = tuple[Callable[[Any, bool], bytes], Any, bool]


async def _stream(
    request: web.Request, content_type: str, name: str | None, chunks: Iterable[Chunk],
    tail: bytes,
) -> web.StreamResponse:  # fmt: skip
    resp = web.StreamResponse()
    resp.content_type = content_type
    resp.charset = "utf-8"
    if name is not None:
        resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    await resp.prepare(request)
    loop = asyncio.get_running_loop()
    pool = request.app[RENDER]
    for encode, part, first in chunks:
        await resp.write(await loop.run_in_executor(pool, encode, part, first))
    if tail:
        await resp.write(tail)
    await resp.write_eof()
    return resp


def _json_chunk(events: Sequence[dict[str, Any]], first: bool) -> bytes:
    """Items of the indented list `json.dumps(all, indent=2)` writes: each on a new line,
    indented by one level (JSON strings hold no raw newline, so indenting lines is exact)."""
    items = ",".join("\n  " + json.dumps(e, indent=2).replace("\n", "\n  ") for e in events)
    return (("[" if first else ",") + items).encode("ascii")


def _csv_chunk(rows: Sequence[tuple[dict[str, Any], dict[str, Any]]], first: bool) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    if first:
        w.writerow(CSV_COLUMNS)
    for e, note in rows:
        row = {**e, "offset_s": note.get("offset_s"), "lane": note.get("lane"),
               "properties": json.dumps(e.get("properties") or {})}  # fmt: skip
        w.writerow([csv_cell(row.get(c)) for c in CSV_COLUMNS])
    return out.getvalue().encode("utf-8")


def csv_cell(value: Any) -> str:
    """A CSV cell that a spreadsheet shows as text: a value starting with `= + - @` (or a tab
    or CR) would be run as a formula, so it gets a leading `'` — a number (`-1`) stays."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_STARTS) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
