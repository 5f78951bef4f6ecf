"""The Redshift emulator, exercised with the unmodified `redshift-connector` driver.

Why these tests matter: loader tests trust the emulator to fail where Redshift fails (missing
mandatory files, bad values, secrets in SQL, Redshift-refused SQL) and to keep Redshift's
transaction semantics (COPY rolls back, system tables survive). Each behaviour the loader
relies on is pinned here, plus unit tests of the pure parts (SQL rewriting, COPY parsing,
start-up filtering).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest
import redshift_connector

from tests.support.redshift_emulator import RedshiftEmulator, rewrite_sql
from tests.support.redshift_emulator.protocol import PgClient, PgError
from tests.support.redshift_emulator.rewrite import denied, split_statements
from tests.support.redshift_emulator.s3copy import CopyRefused, parse_copy
from tests.support.redshift_emulator.s3helpers import ndjson_gz, put_manifest, put_object, s3_client
from tests.support.redshift_emulator.startup import filter_startup_params

pytest_plugins = ["tests.support.redshift_emulator.fixtures"]

ROLE = "arn:aws:iam::123456789012:role/loader"
TABLE_DDL = """
CREATE TABLE events (
    event_id   varchar(64) NOT NULL ENCODE zstd DISTKEY,
    amount     bigint ENCODE az64,
    payload    SUPER,
    name       varchar(10),
    event_time timestamptz ENCODE az64
)
DISTSTYLE KEY
COMPOUND SORTKEY (event_time, event_id)
"""


def copy_sql(manifest_url: str, table: str = "events", extra: str = "") -> str:
    return f"""
        COPY {table}
        FROM '{manifest_url}'
        IAM_ROLE '{ROLE}'
        MANIFEST
        FORMAT AS JSON 'auto'
        GZIP
        TIMEFORMAT 'auto'
        ACCEPTINVCHARS TRUNCATECOLUMNS COMPUPDATE OFF STATUPDATE OFF REGION 'us-east-1' {extra}
    """


def event(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"e{i}",
        "amount": i,
        "payload": {"user": {"id": i, "tags": ["a", "b"]}},
        "event_time": "2026-11-23T08:29:53.123456Z",
        **extra,
    }


@pytest.fixture(scope="session")
def s3(moto_s3: str) -> Any:
    return s3_client(moto_s3)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"lake-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def conn(redshift_db: dict[str, Any]) -> Iterator[redshift_connector.Connection]:
    with closing(redshift_connector.connect(**redshift_db)) as connection:
        yield connection


@pytest.fixture
def events(conn: redshift_connector.Connection) -> redshift_connector.Connection:
    """A connection whose database has the `events` table (Redshift DDL)."""
    conn.cursor().execute(TABLE_DDL)
    conn.commit()
    return conn


def lake(s3: Any, bucket: str, files: dict[str, list[dict[str, Any]]], manifest: list[str]) -> str:
    """Upload gzip NDJSON files and a manifest listing `manifest` (file names); return its URL."""
    sizes = {}
    for name, rows in files.items():
        url = f"s3://{bucket}/events/{name}"
        sizes[url] = put_object(s3, url, ndjson_gz(rows))
    url = f"s3://{bucket}/manifests/{uuid.uuid4().hex}.json"
    put_manifest(s3, url, [f"s3://{bucket}/events/{n}" for n in manifest], sizes)
    return url


def rows(conn: redshift_connector.Connection, sql: str) -> list[list[Any]]:
    cursor = conn.cursor()
    cursor.execute(sql)
    return [list(r) for r in cursor.fetchall()]


def load_errors(emulator: RedshiftEmulator, database: str) -> list[dict[str, Any]]:
    """sys_load_error_detail read directly from PostgreSQL (not through the client session)."""
    cols = [
        "query_id",
        "table_name",
        "file_name",
        "line_number",
        "column_name",
        "error_code",
        "error_message",
        "raw_line",
        "raw_field_value",
    ]
    found = emulator.query(
        f"SELECT {', '.join(cols)} FROM sys_load_error_detail ORDER BY start_time", database
    )
    return [dict(zip(cols, r, strict=True)) for r in found]


# --------------------------------------------------------------------------- unit: rewriting


@pytest.mark.parametrize(
    ("redshift", "postgres"),
    [
        ("CREATE TABLE t (a SUPER, b varchar(3))", "CREATE TABLE t (a jsonb, b varchar(3))"),
        ("CREATE TABLE t (a int) DISTSTYLE KEY DISTKEY(a) SORTKEY(a)", "CREATE TABLE t (a int)"),
        ("CREATE TABLE t (a int) COMPOUND SORTKEY (a, b)", "CREATE TABLE t (a int)"),
        (
            "CREATE TABLE t (a int) INTERLEAVED SORTKEY(a,b) DISTSTYLE EVEN",
            "CREATE TABLE t (a int)",
        ),
        (
            "CREATE TABLE t (a int ENCODE az64 DISTKEY SORTKEY, b text ENCODE zstd)",
            "CREATE TABLE t (a int, b text)",
        ),
        ("CREATE TABLE t (a int) DISTSTYLE AUTO SORTKEY AUTO BACKUP NO", "CREATE TABLE t (a int)"),
        ("SELECT GETDATE(), sysdate", "SELECT now(), now()"),
        ("SELECT JSON_PARSE(x) FROM t", "SELECT ((x)::jsonb) FROM t"),
        ("SELECT json_parse(coalesce(a, '{}'))", "SELECT ((coalesce(a, '{}'))::jsonb)"),
        ("SELECT JSON_PARSE(JSON_PARSE('1'))", "SELECT (((('1')::jsonb))::jsonb)"),
        ("SELECT json_serialize(p)", "SELECT ((p)::text)"),
        (
            "id bigint IDENTITY(1,1)",
            "id bigint GENERATED BY DEFAULT AS IDENTITY (START WITH 1 INCREMENT BY 1 MINVALUE 1)",
        ),
        ("x VARCHAR(MAX)", "x varchar(65535)"),
        # Untouched: literals, quoted identifiers, comments, PostgreSQL-compatible statements.
        (
            "INSERT INTO t VALUES ('GETDATE() SUPER sysdate DISTKEY(a)')",
            "INSERT INTO t VALUES ('GETDATE() SUPER sysdate DISTKEY(a)')",
        ),
        ('SELECT "super", "sysdate" FROM t -- SUPER', 'SELECT "super", "sysdate" FROM t -- SUPER'),
        ("SELECT encode(x, 'hex')", "SELECT encode(x, 'hex')"),
        ("LOCK events", "LOCK events"),
        ("SET statement_timeout TO 30000", "SET statement_timeout TO 30000"),
        ("SELECT $$SUPER$$, E'it''s \\' SUPER'", "SELECT $$SUPER$$, E'it''s \\' SUPER'"),
    ],
)
def test_rewrite_rules(redshift: str, postgres: str) -> None:
    assert " ".join(rewrite_sql(redshift).split()) == " ".join(postgres.split())


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE INDEX i ON t (a)",
        "create unique index i on t(a)",
        "INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING",
        "INSERT INTO t VALUES (1) RETURNING a",
        "CREATE TABLE t (id bigserial)",
        "SELECT '{}'::jsonb",
    ],
)
def test_deny_list_refuses_redshift_incompatible_sql(sql: str) -> None:
    assert denied(sql) is not None


@pytest.mark.parametrize(
    "sql",
    ["INSERT INTO t VALUES ('on conflict do nothing; create index')", "SELECT a FROM t", "LOCK t"],
)
def test_deny_list_ignores_literals_and_plain_sql(sql: str) -> None:
    assert denied(sql) is None


def test_split_statements_respects_literals_and_comments() -> None:
    assert split_statements("BEGIN; INSERT INTO t VALUES ('a;b'); -- x;y\n COMMIT;;") == [
        "BEGIN",
        "INSERT INTO t VALUES ('a;b')",
        "-- x;y\n COMMIT",
    ]


# --------------------------------------------------------------------------- unit: COPY / start-up


def test_parse_copy_accepts_the_loader_shape() -> None:
    cmd = parse_copy(copy_sql("s3://b/m.json", table='analytics."Events"', extra="MAXERROR 0"))
    assert cmd is not None
    assert (cmd.table, cmd.table_display, cmd.source, cmd.iam_role) == (
        'analytics."Events"',
        "Events",
        "s3://b/m.json",
        ROLE,
    )
    assert cmd.manifest and cmd.compression == "gzip" and cmd.timeformat == "auto"
    assert {"TRUNCATECOLUMNS"} <= cmd.flags and cmd.region == "us-east-1"
    cmd = parse_copy(
        f"copy t (a, \"B\") from 's3://b/p/' iam_role '{ROLE}' json 'auto ignorecase';"
    )
    assert (
        cmd is not None and cmd.columns == ["a", "B"] and not cmd.manifest and cmd.json_ignorecase
    )
    assert parse_copy("SELECT 'COPY t FROM x'") is None


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        (
            "COPY t FROM 's3://b/k' CREDENTIALS 'aws_access_key_id=A;aws_secret_access_key=B' JSON 'auto'",
            "credentials",
        ),
        (
            f"COPY t FROM 's3://b/k' IAM_ROLE '{ROLE}' ACCESS_KEY_ID 'A' SECRET_ACCESS_KEY 'B' JSON 'auto'",
            "credentials",
        ),
        ("COPY t FROM 's3://b/k' FORMAT JSON 'auto'", "IAM_ROLE"),
        (f"COPY t FROM 's3://b/k' IAM_ROLE '{ROLE}' CSV", "not supported"),
        (f"COPY t FROM 's3://b/k' IAM_ROLE '{ROLE}' JSON 's3://b/jsonpaths.json'", "jsonpaths"),
        ("COPY t FROM STDIN", "STDIN"),
        (f"COPY t FROM 's3://b/k' IAM_ROLE '{ROLE}' JSON 'auto' BOGUS", "BOGUS"),
    ],
)
def test_parse_copy_refusals(sql: str, fragment: str) -> None:
    with pytest.raises(CopyRefused, match=f"(?i){fragment}"):
        parse_copy(sql)


def test_startup_params_unknown_to_postgres_are_dropped() -> None:
    params = {
        "user": "u",
        "database": "d",
        "application_name": "a",
        "client_protocol_version": "2",
        "driver_version": "x",
        "os_version": "y",
        "driver_discovery_version": "1",
        "plugin_name": "p",
        "TimeZone": "UTC",
        "myapp.flag": "1",
    }
    kept, dropped = filter_startup_params(params, ["application_name", "TimeZone"])
    assert set(kept) == {"user", "database", "application_name", "TimeZone", "myapp.flag"}
    assert "client_protocol_version" in dropped and "driver_version" in dropped


# --------------------------------------------------------------------------- driver: basics


def test_connect_and_select_1(conn: redshift_connector.Connection) -> None:
    assert rows(conn, "SELECT 1") == [[1]]
    assert rows(conn, "SELECT current_database()")[0][0].startswith("dev_")


def test_create_table_with_redshift_ddl(events: redshift_connector.Connection) -> None:
    cursor = events.cursor()
    cursor.execute(
        "INSERT INTO events (event_id, payload, event_time) VALUES ('x', JSON_PARSE('{\"a\": 1}'), GETDATE())"
    )
    cursor.execute("SELECT event_id, payload, event_time <= SYSDATE FROM events")
    event_id, payload, not_future = cursor.fetchone()
    assert (event_id, json.loads(payload), not_future) == ("x", {"a": 1}, True)
    assert cursor.description[1][1] == 4000  # reported with Redshift's SUPER type oid


def test_redshift_refused_sql_errors_and_aborts_transaction(
    events: redshift_connector.Connection,
) -> None:
    cursor = events.cursor()
    with pytest.raises(redshift_connector.ProgrammingError, match="indexes"):
        cursor.execute("CREATE INDEX events_amount ON events (amount)")
    with pytest.raises(redshift_connector.ProgrammingError, match="25P02"):
        cursor.execute("SELECT 1")
    events.rollback()
    with pytest.raises(redshift_connector.ProgrammingError, match="ON CONFLICT"):
        cursor.execute("INSERT INTO events (event_id) VALUES ('a') ON CONFLICT DO NOTHING")
    events.rollback()
    cursor.execute("LOCK events")
    cursor.execute("SET statement_timeout TO 30000")
    events.rollback()


# --------------------------------------------------------------------------- driver: COPY


def test_copy_manifest_loads_gzip_ndjson(
    events: redshift_connector.Connection, s3: Any, bucket: str
) -> None:
    manifest = lake(
        s3,
        bucket,
        {"a.json.gz": [event(1), event(2, event_time="2026-11-23 08:29:53+00")]},
        ["a.json.gz"],
    )
    events.cursor().execute(copy_sql(manifest))
    events.commit()
    loaded = rows(
        events, "SELECT event_id, amount, payload, event_time FROM events ORDER BY amount"
    )
    assert [r[:2] for r in loaded] == [["e1", 1], ["e2", 2]]
    assert json.loads(loaded[0][2]) == {"user": {"id": 1, "tags": ["a", "b"]}}
    assert loaded[0][3].isoformat() == "2026-11-23T08:29:53.123456+00:00"
    assert loaded[1][3].isoformat() == "2026-11-23T08:29:53+00:00"
    assert rows(events, "SELECT pg_last_copy_count()") == [[2]]


def test_rollback_after_copy_leaves_no_rows(
    events: redshift_connector.Connection, s3: Any, bucket: str
) -> None:
    manifest = lake(s3, bucket, {"a.json.gz": [event(1), event(2)]}, ["a.json.gz"])
    cursor = events.cursor()
    cursor.execute(copy_sql(manifest))
    assert rows(events, "SELECT count(*) FROM events") == [[2]]
    events.rollback()
    assert rows(events, "SELECT count(*) FROM events") == [[0]]


def test_copy_in_autocommit_mode_commits(
    events: redshift_connector.Connection, redshift_db: dict[str, Any], s3: Any, bucket: str
) -> None:
    manifest = lake(s3, bucket, {"a.json.gz": [event(1)]}, ["a.json.gz"])
    events.autocommit = True
    events.cursor().execute(copy_sql(manifest))
    with closing(redshift_connector.connect(**redshift_db)) as other:
        assert rows(other, "SELECT count(*) FROM events") == [[1]]


def test_file_listed_twice_loads_twice(
    events: redshift_connector.Connection, s3: Any, bucket: str
) -> None:
    manifest = lake(
        s3,
        bucket,
        {"a.json.gz": [event(1)], "b.json.gz": [event(2)]},
        ["a.json.gz", "b.json.gz", "a.json.gz"],
    )
    events.cursor().execute(copy_sql(manifest))
    assert rows(events, "SELECT event_id, count(*) FROM events GROUP BY 1 ORDER BY 1") == [
        ["e1", 2],
        ["e2", 1],
    ]


def test_uppercase_keys_do_not_match_and_unknown_keys_are_ignored(
    events: redshift_connector.Connection, s3: Any, bucket: str
) -> None:
    record = {
        "event_id": "e1",
        "Amount": 5,
        "NAME": "upper",
        "unknown": 1,
        "event_time": "2026-11-23T08:29:53Z",
    }
    manifest = lake(s3, bucket, {"a.json.gz": [record]}, ["a.json.gz"])
    events.cursor().execute(copy_sql(manifest))
    assert rows(events, "SELECT event_id, amount, name, payload FROM events") == [
        ["e1", None, None, None]
    ]


def test_missing_mandatory_file_fails_and_is_recorded(
    events: redshift_connector.Connection,
    redshift_emulator: RedshiftEmulator,
    redshift_db: dict[str, Any],
    s3: Any,
    bucket: str,
) -> None:
    manifest = lake(s3, bucket, {"a.json.gz": [event(1)]}, ["a.json.gz", "gone.json.gz"])
    missing = f"s3://{bucket}/events/gone.json.gz"
    with pytest.raises(redshift_connector.ProgrammingError) as failure:
        events.cursor().execute(copy_sql(manifest))
    assert "Load into table 'events' failed" in str(failure.value) and missing in str(failure.value)
    events.rollback()
    assert rows(events, "SELECT count(*) FROM events") == [[0]]
    # Survives the rollback, visible through the client too (as in Redshift).
    assert rows(events, "SELECT file_name FROM sys_load_error_detail") == [[missing]]
    assert rows(
        events, "SELECT filename, err_code FROM stl_load_errors WHERE query = pg_last_copy_id()"
    ) == [[missing, 5]]
    (error,) = load_errors(redshift_emulator, redshift_db["database"])
    assert error["table_name"] == "events" and missing in error["error_message"]


def test_missing_optional_file_is_skipped(
    events: redshift_connector.Connection, s3: Any, bucket: str
) -> None:
    put_object(s3, f"s3://{bucket}/events/a.json.gz", ndjson_gz([event(1)]))
    manifest = f"s3://{bucket}/m.json"
    put_manifest(
        s3,
        manifest,
        [f"s3://{bucket}/events/a.json.gz", (f"s3://{bucket}/events/nope.json.gz", False)],
    )
    events.cursor().execute(copy_sql(manifest))
    assert rows(events, "SELECT count(*) FROM events") == [[1]]


def test_bad_bigint_fails_whole_copy_with_readable_detail(
    events: redshift_connector.Connection,
    redshift_emulator: RedshiftEmulator,
    redshift_db: dict[str, Any],
    s3: Any,
    bucket: str,
) -> None:
    manifest = lake(
        s3, bucket, {"a.json.gz": [event(1), event(2), event(3, amount="abc")]}, ["a.json.gz"]
    )
    cursor = events.cursor()
    with pytest.raises(redshift_connector.ProgrammingError, match="sys_load_error_detail"):
        cursor.execute(copy_sql(manifest))
    # The backend transaction really is aborted: PostgreSQL semantics until ROLLBACK.
    with pytest.raises(redshift_connector.ProgrammingError, match="25P02"):
        cursor.execute("SELECT 1")
    events.rollback()
    assert rows(events, "SELECT count(*) FROM events") == [[0]]
    (error,) = load_errors(redshift_emulator, redshift_db["database"])
    assert error["file_name"] == f"s3://{bucket}/events/a.json.gz"
    assert (
        error["line_number"],
        error["column_name"],
        error["raw_field_value"],
        error["error_code"],
    ) == ("3", "amount", "abc", "1207")
    assert "Invalid digit" in error["error_message"] and '"abc"' in error["raw_line"]


def test_bad_timestamp_and_nested_value_into_varchar_fail(
    events: redshift_connector.Connection, s3: Any, bucket: str
) -> None:
    for bad in (
        {"event_time": "not a time"},
        {"name": {"nested": True}},
        {"name": "far too long for ten"},
    ):
        manifest = lake(s3, bucket, {"a.json.gz": [{"event_id": "e1", **bad}]}, ["a.json.gz"])
        with pytest.raises(redshift_connector.ProgrammingError, match="Load into table"):
            events.cursor().execute(copy_sql(manifest).replace("TRUNCATECOLUMNS", ""))
        events.rollback()


def test_iso_timestamps_need_timeformat_auto(
    events: redshift_connector.Connection, s3: Any, bucket: str
) -> None:
    manifest = lake(s3, bucket, {"a.json.gz": [event(1)]}, ["a.json.gz"])
    with pytest.raises(redshift_connector.ProgrammingError, match="Invalid timestamp format"):
        events.cursor().execute(copy_sql(manifest).replace("TIMEFORMAT 'auto'", ""))
    events.rollback()
    manifest = lake(
        s3, bucket, {"b.json.gz": [event(2, event_time="2026-11-23 08:29:53.5+01")]}, ["b.json.gz"]
    )
    events.cursor().execute(copy_sql(manifest).replace("TIMEFORMAT 'auto'", ""))
    assert rows(events, "SELECT event_time::text FROM events") == [["2026-11-23 07:29:53.5+00"]]


def test_record_over_4mb_fails(events: redshift_connector.Connection, s3: Any, bucket: str) -> None:
    manifest = lake(
        s3,
        bucket,
        {"a.json.gz": [event(1, payload={"blob": "x" * (4 * 1024 * 1024)})]},
        ["a.json.gz"],
    )
    with pytest.raises(redshift_connector.ProgrammingError, match="Load into table"):
        events.cursor().execute(copy_sql(manifest))
    events.rollback()


def test_concatenated_json_objects_are_accepted(
    events: redshift_connector.Connection, s3: Any, bucket: str
) -> None:
    body = gzip.compress(b'{"event_id": "a"}{"event_id": "b"}  {"event_id":\n "c"}\n\n')
    put_object(s3, f"s3://{bucket}/x.gz", body)
    put_manifest(s3, f"s3://{bucket}/m.json", [f"s3://{bucket}/x.gz"])
    events.cursor().execute(copy_sql(f"s3://{bucket}/m.json"))
    assert rows(events, "SELECT event_id FROM events ORDER BY 1") == [["a"], ["b"], ["c"]]


def test_copy_into_temp_staging_table_with_column_list_and_prefix(
    conn: redshift_connector.Connection, s3: Any, bucket: str
) -> None:
    for name, rows_ in {
        "p/1.gz": [{"event_id": "a", "amount": 1}],
        "p/2.gz": [{"event_id": "b"}],
    }.items():
        put_object(s3, f"s3://{bucket}/{name}", ndjson_gz(rows_))
    cursor = conn.cursor()
    cursor.execute(
        "CREATE TEMP TABLE stage (id BIGINT IDENTITY(1,1), event_id varchar(8), amount bigint, loaded_at timestamp DEFAULT GETDATE())"
    )
    cursor.execute(
        f"COPY stage (event_id, amount) FROM 's3://{bucket}/p/' IAM_ROLE '{ROLE}' FORMAT JSON 'auto' GZIP"
    )
    loaded = rows(conn, "SELECT id, event_id, amount, loaded_at IS NOT NULL FROM stage ORDER BY id")
    assert loaded == [[1, "a", 1, True], [2, "b", None, True]]
    with pytest.raises(redshift_connector.ProgrammingError, match="does not exist"):
        cursor.execute(
            f"COPY nope FROM 's3://{bucket}/p/' IAM_ROLE '{ROLE}' FORMAT JSON 'auto' GZIP"
        )
    conn.rollback()


def test_copy_with_credentials_is_refused(events: redshift_connector.Connection) -> None:
    sql = "COPY events FROM 's3://b/m.json' CREDENTIALS 'aws_access_key_id=AKIA;aws_secret_access_key=s' MANIFEST JSON 'auto'"
    with pytest.raises(redshift_connector.ProgrammingError, match="credentials"):
        events.cursor().execute(sql)
    events.rollback()


def test_statements_are_recorded_before_rewriting(
    events: redshift_connector.Connection, redshift_emulator: RedshiftEmulator, s3: Any, bucket: str
) -> None:
    assert TABLE_DDL in redshift_emulator.statements  # as sent: SUPER, DISTKEY and all
    manifest = lake(s3, bucket, {"a.json.gz": [event(1)]}, ["a.json.gz"])
    redshift_emulator.clear_statements()
    sql = copy_sql(manifest)
    for _ in range(2):  # the second run reuses the driver's cached prepared statement
        events.cursor().execute(sql)
        events.commit()
    assert rows(events, "SELECT count(*) FROM events") == [[2]]
    copies = [s for s in redshift_emulator.statements if s.lstrip().upper().startswith("COPY")]
    assert copies == [sql, sql]


def test_simple_query_protocol_copy(
    redshift_emulator: RedshiftEmulator, redshift_db: dict[str, Any], s3: Any, bucket: str
) -> None:
    manifest = lake(s3, bucket, {"a.json.gz": [event(1), event(2)]}, ["a.json.gz"])

    async def scenario() -> tuple[list[list[str | None]], str]:
        client = await PgClient.connect(
            redshift_emulator.host, redshift_emulator.port, "awsuser", redshift_db["database"]
        )
        async with client:
            await client.query(TABLE_DDL)
            await client.query(copy_sql(manifest))
            count = await client.query("SELECT count(*) FROM events")
            try:
                await client.query(copy_sql(manifest.replace(".json", "-missing.json")))
            except PgError as exc:
                return count, exc.message
        raise AssertionError("COPY of a missing manifest did not fail")

    count, message = asyncio.run(scenario())
    assert count == [["2"]] and "Load into table 'events' failed" in message


def test_copy_is_fast_enough(events: redshift_connector.Connection, s3: Any, bucket: str) -> None:
    manifest = lake(
        s3,
        bucket,
        {f"{i}.json.gz": [event(i * 10_000 + j) for j in range(10_000)] for i in range(2)},
        ["0.json.gz", "1.json.gz"],
    )
    started = time.monotonic()
    events.cursor().execute(copy_sql(manifest))
    elapsed = time.monotonic() - started
    assert rows(events, "SELECT count(*) FROM events") == [[20_000]]
    assert elapsed < 10, f"20k rows took {elapsed:.1f}s"


# --------------------------------------------------------------------------- outage


def test_stop_and_start_simulate_an_outage(
    redshift_emulator: RedshiftEmulator, redshift_db: dict[str, Any]
) -> None:
    port = redshift_emulator.port
    live = redshift_connector.connect(**redshift_db)
    assert rows(live, "SELECT 1") == [[1]]
    redshift_emulator.stop()
    try:
        with pytest.raises(redshift_connector.InterfaceError):
            rows(live, "SELECT 1")
        with pytest.raises(redshift_connector.InterfaceError):
            redshift_connector.connect(**redshift_db)
    finally:
        redshift_emulator.start()
    assert redshift_emulator.port == port
    with closing(redshift_connector.connect(**redshift_db)) as again:
        assert rows(again, "SELECT 1") == [[1]]
