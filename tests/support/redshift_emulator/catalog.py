"""Redshift system objects the loader reads back: `sys_load_error_detail`, `stl_load_errors`,
`pg_last_copy_id()`, `pg_last_copy_count()`.

Why tables written from a *separate* autocommit connection: in Redshift these system tables
survive the rollback of the failed COPY's transaction, which is exactly when a loader reads
them. They live in `public` (on every default search_path; PostgreSQL reserves `pg_*` schema
names) and are installed into `template1`, so every database created for a test has them; a
database created otherwise gets them on first use.
"""

from __future__ import annotations

from .protocol import PgClient
from .s3copy import LoadError

CATALOG_DDL = """
BEGIN;
SELECT pg_advisory_xact_lock(72061992);
CREATE SCHEMA IF NOT EXISTS redshift_emulator;
CREATE TABLE IF NOT EXISTS public.sys_load_error_detail (
    user_id int,
    query_id bigint,
    transaction_id bigint,
    session_id int,
    database text,
    table_id bigint,
    table_name text,
    start_time timestamptz DEFAULT now(),
    file_name text,
    line_number bigint,
    column_name text,
    column_type text,
    column_length text,
    position int,
    error_code int,
    error_message text,
    raw_line text,
    raw_field_value text
);
CREATE OR REPLACE VIEW public.stl_load_errors AS
SELECT user_id AS userid, 0 AS slice, table_id AS tbl, start_time AS starttime,
       session_id AS session, query_id AS query, file_name AS filename, line_number,
       column_name AS colname, column_type AS type, column_length AS col_length, position,
       raw_line, raw_field_value, error_code AS err_code, error_message AS err_reason,
       false AS is_partial, 0::bigint AS start_offset, NULL::bigint AS copy_job_id
FROM public.sys_load_error_detail;
CREATE TABLE IF NOT EXISTS redshift_emulator.copy_sessions (
    pid int PRIMARY KEY,
    last_copy_id bigint NOT NULL,
    last_copy_count bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE FUNCTION public.pg_last_copy_id() RETURNS bigint LANGUAGE sql STABLE AS
$f$ SELECT coalesce((SELECT last_copy_id FROM redshift_emulator.copy_sessions
                     WHERE pid = pg_backend_pid()), -1) $f$;
CREATE OR REPLACE FUNCTION public.pg_last_copy_count() RETURNS bigint LANGUAGE sql STABLE AS
$f$ SELECT coalesce((SELECT last_copy_count FROM redshift_emulator.copy_sessions
                     WHERE pid = pg_backend_pid()), -1) $f$;
-- Redshift's JSON_EXTRACT_PATH_TEXT takes a VARCHAR holding JSON (e.g. JSON_SERIALIZE(super)).
CREATE OR REPLACE FUNCTION public.json_extract_path_text(text, VARIADIC text[]) RETURNS text
LANGUAGE sql IMMUTABLE AS $f$ SELECT pg_catalog.json_extract_path_text($1::json, VARIADIC $2) $f$;
GRANT USAGE ON SCHEMA redshift_emulator TO PUBLIC;
GRANT SELECT ON public.sys_load_error_detail, public.stl_load_errors,
                redshift_emulator.copy_sessions TO PUBLIC;
COMMIT;
"""

INSERT_ERROR_SQL = """
INSERT INTO public.sys_load_error_detail
    (user_id, query_id, session_id, database, table_id, table_name, start_time, file_name,
     line_number, column_name, column_type, column_length, position, error_code, error_message,
     raw_line, raw_field_value)
VALUES ((SELECT oid::int FROM pg_roles WHERE rolname = $1), $2::bigint, $3::int, current_database(),
        $4::bigint, $5, $6::timestamptz, $7, $8::bigint, $9, $10, $11, $12::int, $13::int, $14, $15, $16)
"""

UPSERT_SESSION_SQL = """
INSERT INTO redshift_emulator.copy_sessions (pid, last_copy_id, last_copy_count)
VALUES ($1::int, $2::bigint, $3::bigint)
ON CONFLICT (pid) DO UPDATE SET last_copy_id = excluded.last_copy_id,
    last_copy_count = excluded.last_copy_count, updated_at = now()
"""


async def install(client: PgClient) -> None:
    """Create the system objects in the connected database (idempotent, concurrency-safe)."""
    await client.query(CATALOG_DDL)


async def has_catalog(client: PgClient) -> bool:
    rows = await client.query("SELECT to_regproc('public.pg_last_copy_id') IS NOT NULL")
    return rows[0][0] == "t"


async def record_load_error(
    client: PgClient,
    *,
    user: str,
    query_id: int,
    session_pid: int | None,
    table_id: int | None,
    table_name: str,
    start_time: str,
    error: LoadError,
) -> None:
    length = ""
    if error.column_type and "(" in error.column_type:
        length = error.column_type[error.column_type.index("(") + 1 : -1]
    # Redshift records every load error, whatever bytes the bad line held; PostgreSQL text
    # cannot hold NUL, so it is dropped from the recorded copies (raw_line is a sample anyway).
    text = {
        name: getattr(error, name).replace("\x00", "")
        for name in ("file_name", "column_name", "column_type", "error_message", "raw_line",
                     "raw_field_value")
    }  # fmt: skip
    await client.execute(
        INSERT_ERROR_SQL,
        [
            user,
            str(query_id),
            None if session_pid is None else str(session_pid),
            None if table_id is None else str(table_id),
            table_name,
            start_time,
            text["file_name"],
            str(error.line_number),
            text["column_name"],
            text["column_type"],
            length,
            str(error.position),
            str(error.error_code),
            text["error_message"],
            text["raw_line"],
            text["raw_field_value"],
        ],
    )


async def record_copy(client: PgClient, session_pid: int, query_id: int, rows: int) -> None:
    """What `pg_last_copy_id()` / `pg_last_copy_count()` report in that session."""
    await client.execute(UPSERT_SESSION_SQL, [str(session_pid), str(query_id), str(rows)])


async def forget_session(client: PgClient, session_pid: int) -> None:
    await client.execute(
        "DELETE FROM redshift_emulator.copy_sessions WHERE pid = $1::int", [str(session_pid)]
    )
