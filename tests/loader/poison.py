"""Lake objects the warehouse must refuse (poison) and odd ones it must load (tolerated), as a
foreign writer, a bug or an attacker with lake access could leave them. Shared by the loader's
unit tests, the hostile tests and the fuzz seeds.

Every poison object also holds good-looking events (delivery_id "P-…"): none of them may ever
reach the warehouse, since a poison object is refused whole. Tolerated objects' events have
delivery_id "T-…". Two are tolerated by DuckDB only (Redshift refuses a UTF-8 BOM and a record
over 4 MB): :data:`TOLERATED_BY_BOTH` lists the others.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from typing import Any

import orjson

from tests.loader.helpers import event


def _row(prefix: str = "P", **overrides: Any) -> dict[str, Any]:
    row = event(delivery_id=f"{prefix}-{os.urandom(4).hex()}", robot_id="R")
    row.update(overrides)
    return row


def _ok(**overrides: Any) -> dict[str, Any]:
    return _row("T", **overrides)


def _lines(*rows: dict[str, Any] | bytes) -> bytes:
    return b"".join(r if isinstance(r, bytes) else orjson.dumps(r) + b"\n" for r in rows)


def _gz(*rows: dict[str, Any] | bytes) -> bytes:
    return gzip.compress(_lines(*rows))


def _without(key: str) -> dict[str, Any]:
    row = _row()
    del row[key]
    return row


def _duplicate_key() -> bytes:
    good = orjson.dumps(_row())
    return gzip.compress(b'{"event_id":null,' + good[1:] + b"\n")


def _truncated() -> bytes:
    data = _gz(*(_row() for _ in range(50)))
    return data[: len(data) // 2]


#: name → object bytes; each must end quarantined, with none of its events loaded.
POISONS: dict[str, Callable[[], bytes]] = {
    "null-event-id": lambda: _gz(_row(), _row(event_id=None), _row()),
    "missing-event-id": lambda: _gz(_row(), _without("event_id")),
    "missing-received-at": lambda: _gz(_without("received_at"), _row()),
    "null-occurred-at": lambda: _gz(_row(occurred_at=None)),
    "null-event-name": lambda: _gz(_row(), _row(event_name=None)),
    "received-at-not-a-time": lambda: _gz(_row(received_at="yesterday")),
    "occurred-at-year-99999": lambda: _gz(_row(), _row(occurred_at="99999-01-01T00:00:00.000000Z")),
    "received-at-year-99999": lambda: _gz(_row(received_at="99999-06-01T00:00:00.000000Z")),
    "occurred-at-year-0": lambda: _gz(_row(occurred_at="0000-01-01T00:00:00.000000Z")),
    "event-version-not-a-number": lambda: _gz(_row(event_version="v1")),
    "event-version-overflow": lambda: _gz(_row(event_version=2**40)),
    "non-json-line": lambda: _gz(_row(), b"{this is not json\n", _row()),
    "json-array-line": lambda: _gz(_row(), b"[1, 2, 3]\n"),
    "json-number-line": lambda: _gz(b"42\n"),
    "duplicate-keys": _duplicate_key,
    "invalid-utf8": lambda: gzip.compress(orjson.dumps(_row()).replace(b'"dispatch"', b'"d\xff"')),
    "nul-bytes": lambda: gzip.compress(b"\x00" * 64 + b"\n"),
    "truncated-gzip": _truncated,
    "not-gzip": lambda: _lines(_row()),
    "zstd-not-gzip": lambda: b"\x28\xb5\x2f\xfd" + bytes(32),
    "empty-object": lambda: b"",
    "gzip-then-garbage": lambda: _gz(_row()) + b"trailing garbage",
}

#: name → (object bytes, events it loads); odd but valid: each must load.
TOLERATED: dict[str, Callable[[], tuple[bytes, int]]] = {
    "zero-byte-gzip": lambda: (gzip.compress(b""), 0),
    "utf8-bom": lambda: (gzip.compress(b"\xef\xbb\xbf" + _lines(_ok(), _ok())), 2),
    "crlf-lines": lambda: (gzip.compress(_lines(_ok()).replace(b"\n", b"\r\n")), 1),
    "blank-lines": lambda: (gzip.compress(b"\n\n" + _lines(_ok()) + b"\n\n"), 1),
    "two-gzip-members": lambda: (_gz(_ok()) + _gz(_ok()), 2),
    "properties-a-string": lambda: (_gz(_ok(properties="not json {")), 1),
    "event-id-a-number": lambda: (_gz(_ok(event_id=int.from_bytes(os.urandom(6)))), 1),
    "huge-line": lambda: (_gz(_ok(properties={"blob": "x" * (5 << 20)})), 1),
    "calendar-edges": lambda: (
        _gz(
            _ok(occurred_at="0001-01-01T00:00:00.000000Z"),
            _ok(occurred_at="9999-12-31T23:59:59.999999Z"),
        ),
        2,
    ),
}

#: Tolerated by both warehouses.
TOLERATED_BY_BOTH = sorted(set(TOLERATED) - {"utf8-bom", "huge-line"})
