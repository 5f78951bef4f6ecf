"""SQL text, for both warehouse dialects, in one place.

Identifiers go through :func:`ident` (the one quoting helper); values always travel as
parameters, except the COPY's manifest URL and IAM role, which Redshift accepts only as literals
— both are ours (never user input) and go through :func:`literal`. No credentials ever appear in
SQL text: COPY authorises with `IAM_ROLE`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def ident(name: str) -> str:
    """Quote an identifier; refuse anything that is not a plain lowercase name."""
    if not _IDENT.match(name) or len(name) > 127:
        raise ValueError(f"not a valid identifier: {name!r}")
    return f'"{name}"'


def literal(value: str) -> str:
    """A SQL string literal for values that must be literals (COPY's source and IAM role)."""
    if "\x00" in value:
        raise ValueError("NUL in a literal")
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


#: Columns of the canonical event before the entity columns, with their types per dialect.
BASE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_id", "VARCHAR(512) NOT NULL"),
    ("event_name", "VARCHAR(256) NOT NULL"),
    ("event_version", "INTEGER"),
    ("occurred_at", "TIMESTAMPTZ NOT NULL"),
    ("received_at", "TIMESTAMPTZ NOT NULL"),
    ("loaded_at", "TIMESTAMPTZ"),
    ("service", "VARCHAR(1024)"),
    ("host", "VARCHAR(1024)"),
)
ENTITY_TYPE = "VARCHAR(1024)"  # ingest cuts entity values at 256 characters (<= 1024 bytes)
LEDGER = "load_ledger"
EVENTS = "events"
STAGE = "logship_stage"
REGISTRY = "event_registry"
#: Longest text a Redshift VARCHAR (and so JSON_PARSE's argument) holds, in bytes.
MAX_VARCHAR_BYTES = 65535


@dataclass(frozen=True)
class Dialect:
    """What differs between Redshift and DuckDB."""

    name: str
    json_type: str  # SUPER | JSON
    now: str  # GETDATE() | now()
    param: str  # %s | ?
    table_suffix: str  # sort key clause (Redshift) or nothing
    json_param: str  # a parameter holding JSON text, as a json_type value

    def params(self, n: int) -> str:
        return ", ".join([self.param] * n)


REDSHIFT = Dialect(
    "redshift",
    "SUPER",
    "GETDATE()",
    "%s",
    " DISTSTYLE AUTO SORTKEY (occurred_at)",
    "JSON_PARSE(%s)",
)
DUCKDB = Dialect("duckdb", "JSON", "now()", "?", "", "CAST(? AS JSON)")


def event_columns(entities: tuple[str, ...]) -> list[str]:
    """Every column of `events`, in table order (entity columns before `properties`)."""
    return [c for c, _ in BASE_COLUMNS] + list(entities) + ["properties"]


def create_schema(d: Dialect, schema: str) -> str:
    return f"CREATE SCHEMA IF NOT EXISTS {ident(schema)}"


def create_events(d: Dialect, schema: str, entities: tuple[str, ...]) -> str:
    cols = [f"{ident(c)} {t}" for c, t in BASE_COLUMNS]
    cols += [f"{ident(e)} {ENTITY_TYPE}" for e in entities]
    cols.append(f"{ident('properties')} {d.json_type}")
    return (
        f"CREATE TABLE IF NOT EXISTS {ident(schema)}.{ident(EVENTS)} (\n  "
        + ",\n  ".join(cols)
        + f"\n){d.table_suffix}"
    )


def create_ledger(d: Dialect, schema: str) -> str:
    # `object_key` is unique: enforced by DuckDB; on Redshift (constraints are informational)
    # the LOCK taken by every load transaction is what keeps it unique.
    return (
        f"CREATE TABLE IF NOT EXISTS {ident(schema)}.{ident(LEDGER)} (\n"
        "  object_key VARCHAR(1024) NOT NULL PRIMARY KEY,\n"
        "  status VARCHAR(16) NOT NULL,\n"
        "  manifest_key VARCHAR(1024),\n"
        "  object_bytes BIGINT,\n"
        "  loaded_at TIMESTAMPTZ NOT NULL,\n"
        "  reason VARCHAR(4096)\n"
        ")"
    )


def existing_columns(d: Dialect) -> str:
    return (
        "SELECT column_name FROM information_schema.columns "
        f"WHERE table_schema = {d.param} AND table_name = {d.param}"
    )


def add_column(d: Dialect, schema: str, column: str) -> str:
    return f"ALTER TABLE {ident(schema)}.{ident(EVENTS)} ADD COLUMN {ident(column)} {ENTITY_TYPE}"


def lock_ledger(schema: str) -> str:
    """Redshift's snapshot isolation would let two loaders both see an object as new; an
    explicit LOCK serialises load transactions (Redshift's recommended pattern)."""
    return f"LOCK {ident(schema)}.{ident(LEDGER)}"


def ledger_lookup(d: Dialect, schema: str, n: int) -> str:
    return (
        f"SELECT object_key FROM {ident(schema)}.{ident(LEDGER)} "
        f"WHERE object_key IN ({d.params(n)})"
    )


def create_stage(d: Dialect, schema: str) -> str:
    return f"CREATE TEMP TABLE {ident(STAGE)} (LIKE {ident(schema)}.{ident(EVENTS)})"


def drop_stage() -> str:
    return f"DROP TABLE IF EXISTS {ident(STAGE)}"


def copy_manifest(manifest_url: str, iam_role: str) -> str:
    return (
        f"COPY {ident(STAGE)} FROM {literal(manifest_url)} IAM_ROLE {literal(iam_role)} "
        "MANIFEST FORMAT AS JSON 'auto' GZIP TIMEFORMAT 'auto'"
    )


def stage_stats() -> str:
    """Rows, distinct ids, the occurred_at range of the stage, and how many rows hold a time
    outside years 1-9999 (both warehouses store such times; no client reads them back), in
    one scan."""
    # Compared as timestamps, not by EXTRACT(YEAR): DuckDB gives 1 BC the year 1.
    lo = "CAST('0001-01-01 00:00:00+00' AS TIMESTAMPTZ)"
    hi = "CAST('9999-12-31 23:59:59.999999+00' AS TIMESTAMPTZ)"
    outside = " OR ".join(f"{c} < {lo} OR {c} > {hi}" for c in ("occurred_at", "received_at"))
    return (
        "SELECT COUNT(*), COUNT(DISTINCT event_id), MIN(occurred_at), MAX(occurred_at), "
        f"SUM(CASE WHEN {outside} THEN 1 ELSE 0 END) FROM {ident(STAGE)}"
    )


def insert_events(
    d: Dialect, schema: str, entities: tuple[str, ...], *, in_batch_dups: bool
) -> str:
    """Stage → events, skipping ids already loaded within the occurred_at window [lo, hi] (two
    parameters). When the stage repeats an id (`in_batch_dups`), one row per id is kept (first
    received wins) with ROW_NUMBER — a window over the whole stage, so it is only paid for when
    the stage statistics showed repeats (measured: it doubles the insert's cost)."""
    cols = [c for c in event_columns(entities) if c != "loaded_at"]
    collist = ", ".join(ident(c) for c in cols)
    dcols = ", ".join(f"d.{ident(c)}" for c in cols)
    table = f"{ident(schema)}.{ident(EVENTS)}"
    if in_batch_dups:
        source = (
            f"(SELECT {collist}, ROW_NUMBER() OVER (PARTITION BY event_id "
            f"ORDER BY received_at, occurred_at) AS rn FROM {ident(STAGE)}) d"
        )
        keep = "d.rn = 1 AND "
    else:
        source, keep = f"{ident(STAGE)} d", ""
    return (
        f"INSERT INTO {table} ({collist}, {ident('loaded_at')})\n"
        f"SELECT {dcols}, {d.now}\n"
        f"FROM {source}\n"
        f"LEFT JOIN (SELECT event_id FROM {table} "
        f"WHERE occurred_at BETWEEN {d.param} AND {d.param}) e ON e.event_id = d.event_id\n"
        f"WHERE {keep}e.event_id IS NULL"
    )


def insert_ledger(d: Dialect, schema: str, n: int) -> str:
    row = f"({d.param}, {d.param}, {d.param}, {d.param}, {d.now}, {d.param})"
    return (
        f"INSERT INTO {ident(schema)}.{ident(LEDGER)} "
        "(object_key, status, manifest_key, object_bytes, loaded_at, reason) VALUES "
        + ", ".join([row] * n)
    )


# ------------------------------------------------------------------ the registry table
#
# `event_registry` mirrors the registry the loader runs with, one row per event, so analysts
# can join `events` to descriptions, owners and field definitions. Each row carries the
# registry's content hash: the loader compares it at start and rewrites the table (DELETE all
# + INSERT all, one transaction) only when it differs.

REGISTRY_COLUMNS = (
    "event_name", "version", "description", "owner", "fields", "entity_columns",
    "registry_sha256", "updated_at",
)  # fmt: skip


def create_registry(d: Dialect, schema: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {ident(schema)}.{ident(REGISTRY)} (\n"
        "  event_name VARCHAR(256) NOT NULL,\n"
        "  version INTEGER NOT NULL,\n"
        f"  description VARCHAR({MAX_VARCHAR_BYTES}),\n"
        "  owner VARCHAR(512),\n"
        f"  fields {d.json_type},\n"
        f"  entity_columns {d.json_type},\n"
        "  registry_sha256 VARCHAR(64) NOT NULL,\n"
        "  updated_at TIMESTAMPTZ NOT NULL\n"
        ")"
    )


def registry_state(d: Dialect, schema: str) -> str:
    """The content hashes the table holds, with their row counts (one row when in step)."""
    return (
        f"SELECT registry_sha256, COUNT(*) FROM {ident(schema)}.{ident(REGISTRY)} "
        "GROUP BY registry_sha256"
    )


def lock_registry(schema: str) -> str:
    """Two loaders starting together would both rewrite the table; on Redshift the second
    would fail with a serialisation error — the lock makes it wait instead."""
    return f"LOCK {ident(schema)}.{ident(REGISTRY)}"


def delete_registry(d: Dialect, schema: str) -> str:
    # DELETE, not TRUNCATE: Redshift's TRUNCATE commits, which would break the transaction.
    return f"DELETE FROM {ident(schema)}.{ident(REGISTRY)}"


def insert_registry(d: Dialect, schema: str, n: int) -> str:
    """`n` rows of registry_row() values: (name, version, description, owner, fields JSON,
    entity columns JSON, hash); updated_at is the warehouse's clock."""
    p, j = d.param, d.json_param
    row = f"({p}, {p}, {p}, {p}, {j}, {j}, {p}, {d.now})"
    cols = ", ".join(ident(c) for c in REGISTRY_COLUMNS)
    return f"INSERT INTO {ident(schema)}.{ident(REGISTRY)} ({cols}) VALUES " + ", ".join([row] * n)


def load_errors(d: Dialect, n: int) -> str:
    """Redshift's record of why a COPY failed, for the files of a batch."""
    return (
        "SELECT file_name, line_number, column_name, error_message FROM sys_load_error_detail "
        f"WHERE file_name IN ({d.params(n)}) ORDER BY start_time DESC LIMIT 50"
    )
