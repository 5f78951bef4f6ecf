"""`event_registry`: the registry the loader runs with, one row per event, in the warehouse.

Analysts join `events` to descriptions, owners and field definitions through it. Each row
carries the registry's content hash: the loader compares it at start and rewrites the table
(DELETE all + INSERT all, one transaction: see :meth:`Warehouse._sync_registry`) only when it
differs. This module holds the table's SQL and its rows.
"""

from __future__ import annotations

import json
from typing import Any

from ingest.event import EVENT_NAME_VARCHAR_BYTES
from ingest.registry import EventSpec, Registry
from loader.warehouse.sql import MAX_VARCHAR_BYTES, REGISTRY, Dialect, ident, table

COLUMNS = (
    "event_name", "version", "description", "owner", "fields", "entity_columns",
    "registry_sha256", "updated_at",
)  # fmt: skip


def create(d: Dialect, schema: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {table(schema, REGISTRY)} (\n"
        f"  event_name VARCHAR({EVENT_NAME_VARCHAR_BYTES}) NOT NULL,\n"
        "  version INTEGER NOT NULL,\n"
        f"  description VARCHAR({MAX_VARCHAR_BYTES}),\n"
        "  owner VARCHAR(512),\n"
        f"  fields {d.json_type},\n"
        f"  entity_columns {d.json_type},\n"
        "  registry_sha256 VARCHAR(64) NOT NULL,\n"
        "  updated_at TIMESTAMPTZ NOT NULL\n"
        ")"
    )


def state(d: Dialect, schema: str) -> str:
    """The content hashes the table holds, with their row counts (one row when in step)."""
    return (
        f"SELECT registry_sha256, COUNT(*) FROM {table(schema, REGISTRY)} GROUP BY registry_sha256"
    )


def lock(schema: str) -> str:
    """Two loaders starting together would both rewrite the table; on Redshift the second
    would fail with a serialisation error — the lock makes it wait instead."""
    return f"LOCK {table(schema, REGISTRY)}"


def delete(d: Dialect, schema: str) -> str:
    # DELETE, not TRUNCATE: Redshift's TRUNCATE commits, which would break the transaction.
    return f"DELETE FROM {table(schema, REGISTRY)}"


def insert(d: Dialect, schema: str, n: int) -> str:
    """`n` rows of :func:`rows` values: (name, version, description, owner, fields JSON,
    entity columns JSON, hash); updated_at is the warehouse's clock."""
    p, j = d.param, d.json_param
    row = f"({p}, {p}, {p}, {p}, {j}, {j}, {p}, {d.now})"
    cols = ", ".join(ident(c) for c in COLUMNS)
    return f"INSERT INTO {table(schema, REGISTRY)} ({cols}) VALUES " + ", ".join([row] * n)


def rows(registry: Registry) -> list[tuple[Any, ...]]:
    """One row per event, in :func:`insert`'s parameter order (the hash last)."""
    digest = registry.content_hash()
    return [
        (
            name,
            ev.spec.version,
            ev.spec.description or None,
            ev.spec.owner,
            _fields_json(name, ev.spec),
            json.dumps([e for e in registry.entities if e in ev.spec.fields]),
            digest,
        )
        for name, ev in registry.events.items()
    ]


def _fields_json(name: str, spec: EventSpec) -> str:
    """The field definitions as JSON. JSON_PARSE takes a VARCHAR (64 KiB at most): when the
    field descriptions make it longer, they are left out rather than failing the loader."""
    fields = {f: fs.model_dump(exclude_none=True) for f, fs in spec.fields.items()}
    text = json.dumps(fields, ensure_ascii=False)
    if len(text.encode()) > MAX_VARCHAR_BYTES:
        for fs in fields.values():
            fs.pop("description", None)
        text = json.dumps(fields, ensure_ascii=False)
    if len(text.encode()) > MAX_VARCHAR_BYTES:
        raise ValueError(f"event {name!r}: its field definitions exceed 64 KiB of JSON")
    return text
