"""SQL text, for both warehouse dialects, in one place.

Identifiers go through :func:`ident` (the one quoting helper); values always travel as
parameters, except the COPY's manifest URL and IAM role, which Redshift accepts only as literals
— both are ours (never user input) and go through :func:`literal`. No credentials ever appear in
SQL text: COPY authorises with `IAM_ROLE`.

Whatever differs between Redshift and DuckDB is a field of :class:`Dialect`; the statements
below and the analyses (:mod:`loader.analytics`) read it from there and never test the
dialect's name. The columns of `events` come from the canonical event (:mod:`ingest.event`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ingest.event import MAX_STRING_BYTES, Column, entity_column, table_columns

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def ident(name: str) -> str:
    """Quote an identifier; refuse anything that is not a plain lowercase name."""
    if not _IDENT.match(name) or len(name) > 127:
        raise ValueError(f"not a valid identifier: {name!r}")
    return f'"{name}"'


def table(schema: str, name: str) -> str:
    """A quoted `schema.name`."""
    return f"{ident(schema)}.{ident(name)}"


def literal(value: str) -> str:
    """A SQL string literal for values that must be literals (COPY's source and IAM role)."""
    if "\x00" in value:
        raise ValueError("NUL in a literal")
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


LEDGER = "load_ledger"
EVENTS = "events"
STAGE = "logship_stage"
REGISTRY = "event_registry"
#: Per delivery, bounds of its events' `occurred_at`: how a session finds its window without
#: reading the whole `delivery_id` column (see :func:`create_spans`).
SPANS = "delivery_spans"
#: The entity column :data:`SPANS` is kept for; without it in the registry there is none.
SPANS_KEY = "delivery_id"
#: The bucket of a delivery id, the sort key of :data:`SPANS`: the first 8 hex digits of its
#: MD5, in SQL (`{column}`) and in Python (:func:`spans_bucket`), the same on every dialect.
SPANS_BUCKET_SQL = "LEFT(MD5({column}), 8)"
#: The columns of :data:`SPANS`, in table order.
SPANS_COLUMNS = ("bucket", SPANS_KEY, "first_at", "last_at")
#: Longest text a Redshift VARCHAR (and so JSON_PARSE's argument) holds, in bytes: the same
#: bound as a string inside SUPER.
MAX_VARCHAR_BYTES = MAX_STRING_BYTES


@dataclass(frozen=True)
class Dialect:
    """What differs between Redshift and DuckDB: every dialect-specific fragment of SQL."""

    name: str  # for logs and messages only: SQL is built from the fields below
    json_type: str  # SUPER | JSON
    now: str  # GETDATE() | now()
    param: str  # %s | ?
    #: A table's sort key clause (Redshift) or nothing: `{column}`.
    sort_key_sql: str
    json_param: str  # a parameter holding JSON text, as a json_type value
    #: A top-level property of a json_type column as text: `{column}`, `{key}` (a literal of
    #: `json_path_prefix` + the key's name).
    json_text_sql: str
    json_path_prefix: str
    #: A whole json_type column as JSON text: `{column}`.
    json_out_sql: str
    #: The statement that opens a transaction; empty when the driver opens one by itself
    #: (redshift-connector with autocommit off does, at the first statement).
    begin: str
    #: Load and registry transactions LOCK their table first. Redshift's snapshot isolation
    #: would otherwise let two loaders both see an object as new (or both rewrite the registry
    #: table, the second failing); in DuckDB the ledger's primary key makes a racing commit
    #: fail instead (transient: it is retried).
    locks_tables: bool

    def params(self, n: int) -> str:
        return ", ".join([self.param] * n)

    def json_text(self, column: str, key: str) -> str:
        """A top-level string property `key` of the json_type `column`, as text."""
        ident(key)  # plain lowercase names only
        return self.json_text_sql.format(column=column, key=literal(self.json_path_prefix + key))

    def sort_key(self, column: str) -> str:
        """What follows a CREATE TABLE's column list to keep the table sorted by `column`."""
        return self.sort_key_sql.format(column=ident(column))

    def json_out(self, column: str) -> str:
        """The whole json_type `column` as JSON text."""
        return self.json_out_sql.format(column=column)


REDSHIFT = Dialect(
    name="redshift",
    json_type="SUPER",
    now="GETDATE()",
    param="%s",
    sort_key_sql=" DISTSTYLE AUTO SORTKEY ({column})",
    json_param="JSON_PARSE(%s)",
    json_text_sql="JSON_EXTRACT_PATH_TEXT(JSON_SERIALIZE({column}), {key})",
    json_path_prefix="",
    json_out_sql="JSON_SERIALIZE({column})",
    begin="",
    locks_tables=True,
)
DUCKDB = Dialect(
    name="duckdb",
    json_type="JSON",
    now="now()",
    param="?",
    sort_key_sql="",
    json_param="CAST(? AS JSON)",
    json_text_sql="json_extract_string({column}, {key})",
    json_path_prefix="$.",
    json_out_sql="CAST({column} AS VARCHAR)",
    begin="BEGIN TRANSACTION",
    locks_tables=False,
)

# ------------------------------------------------------------------ the columns of `events`

#: Column types of the table (the same DDL on both warehouses; DuckDB ignores VARCHAR widths).
_TABLE_TYPES = {"integer": "INTEGER", "timestamp": "TIMESTAMPTZ"}
#: Column types DuckDB's read_json reads a lake line's keys as.
_READ_JSON_TYPES = {"text": "VARCHAR", "integer": "INTEGER", "timestamp": "TIMESTAMPTZ",
                    "json": "JSON"}  # fmt: skip


def column_type(d: Dialect, c: Column) -> str:
    """`c`'s type in the table: `VARCHAR(bytes)` for text, the dialect's JSON type for json."""
    if c.kind == "text":
        t = f"VARCHAR({c.varchar_bytes})"
    elif c.kind == "json":
        t = d.json_type
    else:
        t = _TABLE_TYPES[c.kind]
    return t + " NOT NULL" if c.required else t


# ------------------------------------------------------------------ statements


def create_schema(d: Dialect, schema: str) -> str:
    return f"CREATE SCHEMA IF NOT EXISTS {ident(schema)}"


def create_events(d: Dialect, schema: str, entities: tuple[str, ...]) -> str:
    cols = [f"{ident(c.name)} {column_type(d, c)}" for c in table_columns(entities)]
    return (
        f"CREATE TABLE IF NOT EXISTS {table(schema, EVENTS)} (\n  "
        + ",\n  ".join(cols)
        + f"\n){d.sort_key('occurred_at')}"
    )


def spans_bucket(delivery_id: str) -> str:
    """:data:`SPANS_BUCKET_SQL` of `delivery_id`, computed here (the probe's parameter)."""
    return hashlib.md5(delivery_id.encode("utf-8")).hexdigest()[:8]


def create_spans(d: Dialect, schema: str) -> str:
    """Rows of (bucket, delivery id, first_at, last_at) whose bounds together hold the
    `occurred_at` of every event carrying that id: each load transaction appends the spans of
    its whole stage (:func:`add_spans`) — so bounds can be wider than the events that were kept
    (a duplicate `event_id` the insert skipped still counts), never narrower — and a reader
    takes MIN/MAX over a delivery's rows, then the exact first and last event from `events`
    inside them. Sorted by the bucket, an MD5 prefix of the id: Redshift's sort key and zone
    maps, and on DuckDB the row groups' min/max once the table is rewritten in order
    (:func:`compact_spans`), find a delivery's rows without reading the table. No index: an
    index on DuckDB must stay in memory, and grows with the deliveries."""
    key = column_type(d, entity_column(SPANS_KEY)).replace(" NOT NULL", "")
    return (
        f"CREATE TABLE IF NOT EXISTS {table(schema, SPANS)} (\n"
        "  bucket VARCHAR(8) NOT NULL,\n"
        f"  {ident(SPANS_KEY)} {key} NOT NULL,\n"
        "  first_at TIMESTAMPTZ NOT NULL,\n"
        "  last_at TIMESTAMPTZ NOT NULL\n"
        f"){d.sort_key('bucket')}"
    )


def create_ledger(d: Dialect, schema: str) -> str:
    # `object_key` is unique: enforced by DuckDB; on Redshift (constraints are informational)
    # the LOCK taken by every load transaction is what keeps it unique.
    return (
        f"CREATE TABLE IF NOT EXISTS {table(schema, LEDGER)} (\n"
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
    """The column of an entity the registry gained."""
    typ = column_type(d, entity_column(column))
    return f"ALTER TABLE {table(schema, EVENTS)} ADD COLUMN {ident(column)} {typ}"


def lock_ledger(schema: str) -> str:
    """Redshift's snapshot isolation would let two loaders both see an object as new; an
    explicit LOCK serialises load transactions (Redshift's recommended pattern)."""
    return f"LOCK {table(schema, LEDGER)}"


def ledger_lookup(d: Dialect, schema: str, n: int) -> str:
    return f"SELECT object_key FROM {table(schema, LEDGER)} WHERE object_key IN ({d.params(n)})"


def statement_timeout(ms: int) -> str:
    """Redshift's session setting: a hung COPY cannot hang the loader."""
    return f"SET statement_timeout TO {int(ms)}"


def utc_session() -> str:
    """DuckDB's session setting: TIMESTAMPTZ values are read and shown in UTC."""
    return "SET TimeZone = 'UTC'"


def create_stage(d: Dialect, schema: str) -> str:
    return f"CREATE TEMP TABLE {ident(STAGE)} (LIKE {table(schema, EVENTS)})"


def drop_stage() -> str:
    return f"DROP TABLE IF EXISTS {ident(STAGE)}"


def copy_manifest(manifest_url: str, iam_role: str) -> str:
    """Redshift: the stage from every object of the manifest, in one COPY."""
    return (
        f"COPY {ident(STAGE)} FROM {literal(manifest_url)} IAM_ROLE {literal(iam_role)} "
        "MANIFEST FORMAT AS JSON 'auto' GZIP TIMEFORMAT 'auto'"
    )


def read_json_stage(d: Dialect, entities: tuple[str, ...]) -> str:
    """DuckDB: the stage from local gzip files (one parameter: the list of paths), each key
    of a lake line read as its column's type."""
    spec = ", ".join(
        f"{literal(c.name)}: {literal(_READ_JSON_TYPES[c.kind])}"
        for c in table_columns(entities)
        if c.in_lake
    )
    return (
        f"CREATE TEMP TABLE {ident(STAGE)} AS SELECT * FROM read_json("
        f"{d.param}, format = 'newline_delimited', compression = 'gzip', "
        f"columns = {{{spec}}})"
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
    cols = [c.name for c in table_columns(entities) if c.in_lake]
    collist = ", ".join(ident(c) for c in cols)
    dcols = ", ".join(f"d.{ident(c)}" for c in cols)
    events = table(schema, EVENTS)
    if in_batch_dups:
        source = (
            f"(SELECT {collist}, ROW_NUMBER() OVER (PARTITION BY event_id "
            f"ORDER BY received_at, occurred_at) AS rn FROM {ident(STAGE)}) d"
        )
        keep = "d.rn = 1 AND "
    else:
        source, keep = f"{ident(STAGE)} d", ""
    return (
        f"INSERT INTO {events} ({collist}, {ident('loaded_at')})\n"
        f"SELECT {dcols}, {d.now}\n"
        f"FROM {source}\n"
        f"LEFT JOIN (SELECT event_id FROM {events} "
        f"WHERE occurred_at BETWEEN {d.param} AND {d.param}) e ON e.event_id = d.event_id\n"
        f"WHERE {keep}e.event_id IS NULL"
    )


def add_spans(schema: str, source: str) -> str:
    """Append the spans of `source`'s rows with a delivery id (the stage; `events` when the
    table is built), one row per delivery, in bucket order: one INSERT whose cost follows the
    rows of `source`, whatever the table holds."""
    k = ident(SPANS_KEY)
    bucket = SPANS_BUCKET_SQL.format(column=k)
    return (
        f"INSERT INTO {table(schema, SPANS)} (bucket, {k}, first_at, last_at) "
        f"SELECT {bucket}, {k}, MIN(occurred_at), MAX(occurred_at) FROM {source} "
        f"WHERE {k} IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2"
    )


def count_spans(schema: str) -> str:
    return f"SELECT COUNT(*) FROM {table(schema, SPANS)}"


def drop_spans(schema: str) -> str:
    return f"DROP TABLE {table(schema, SPANS)}"


def compact_spans(schema: str) -> list[str]:
    """DuckDB: rewrite `delivery_spans` with one row per delivery, in bucket order (its row
    groups' min/max then find a bucket in one row group), in one transaction."""
    k, spans, tmp = ident(SPANS_KEY), table(schema, SPANS), ident("logship_spans")
    return [
        f"CREATE TEMP TABLE {tmp} AS SELECT bucket, {k}, MIN(first_at) AS first_at, "
        f"MAX(last_at) AS last_at FROM {spans} GROUP BY bucket, {k}",
        f"DELETE FROM {spans}",
        f"INSERT INTO {spans} SELECT * FROM {tmp} ORDER BY bucket, {k}",
        f"DROP TABLE {tmp}",
    ]


def insert_ledger(d: Dialect, schema: str, n: int) -> str:
    row = f"({d.param}, {d.param}, {d.param}, {d.param}, {d.now}, {d.param})"
    return (
        f"INSERT INTO {table(schema, LEDGER)} "
        "(object_key, status, manifest_key, object_bytes, loaded_at, reason) VALUES "
        + ", ".join([row] * n)
    )


def load_errors(d: Dialect, n: int) -> str:
    """Redshift's record of why a COPY failed, for the files of a batch."""
    return (
        "SELECT file_name, line_number, column_name, error_message FROM sys_load_error_detail "
        f"WHERE file_name IN ({d.params(n)}) ORDER BY start_time DESC LIMIT 50"
    )
