"""The warehouse backends: Redshift (redshift-connector) and DuckDB, with one load transaction.

Both are blocking drivers; the loader calls them from a worker thread. A load is, in ONE
transaction: lock the ledger (Redshift), drop objects the ledger already has, write the
manifest, COPY every object into a temporary stage, insert the stage into `events` keeping one
row per `event_id` and skipping ids already loaded, insert the ledger rows, commit. The ledger
and the events commit together or not at all, so each object loads exactly once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from ingest.lake import ObjectInfo
from ingest.logs import log
from ingest.registry import EventSpec, Registry
from loader import sql
from loader.analytics import AnalyticsConfig, create_views
from loader.errors import (
    DataOutOfRange,
    LoadFailed,
    ObjectsUnreadable,
    Phase,
    classify,
    gzip_problem,
)

logger = logging.getLogger("logship.loader")

#: How many objects :meth:`DuckDBWarehouse._check_files` remembers as intact.
_INTACT_REMEMBERED = 10_000

#: Writes the manifest of the final batch to the lake; returns its URL (for COPY).
ManifestWriter = Callable[[list[ObjectInfo]], str]
#: Makes the objects of a batch readable as local gzip files (DuckDB reads files itself).
LocalFiles = Callable[[list[ObjectInfo]], list[str]]


@dataclass
class LoadOutcome:
    loaded: list[str] = field(default_factory=list)  # object keys committed to the ledger
    skipped: list[str] = field(default_factory=list)  # already in the ledger
    staged_rows: int = 0
    inserted_rows: int = 0
    copy_seconds: float = 0.0

    @property
    def duplicates(self) -> int:
        return self.staged_rows - self.inserted_rows


class Warehouse:
    """Dialect-independent load logic over a DB-API connection."""

    dialect: sql.Dialect

    def __init__(
        self,
        schema: str,
        entities: tuple[str, ...],
        dedupe_window_s: float,
        analytics: AnalyticsConfig | None = None,
        registry: Registry | None = None,
    ):
        self.schema = schema
        self.entities = entities
        self.analytics = analytics or AnalyticsConfig()
        self.registry = registry  # mirrored into `event_registry` when given
        self.dedupe_window = timedelta(seconds=dedupe_window_s)
        self.conn: Any = None

    # --- connection -----------------------------------------------------------------------

    def connect(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):  # closing a dead connection is no news
                self.conn.close()
            self.conn = None

    def _cursor(self) -> Any:
        if self.conn is None:
            self.connect()
        return self.conn.cursor()

    def _run(self, cur: Any, statement: str, params: Sequence[Any] | None = None) -> Any:
        if params:
            cur.execute(statement, list(params))
        else:
            cur.execute(statement)
        return cur

    def _commit(self) -> None:
        self.conn.commit()

    def release(self) -> None:
        """Called after each cycle; a server connection is kept."""

    def _rollback(self) -> None:
        if self.conn is None:
            return
        try:
            self.conn.rollback()
        except Exception as exc:
            if classify(exc).transient:
                self.close()  # the connection is gone; the next call reconnects

    # --- schema ---------------------------------------------------------------------------

    def ensure_schema(self) -> list[str]:
        """Create schema, events, ledger and registry table when absent; add entity columns the
        registry gained; bring `event_registry` in step with the registry. Runs in
        autocommit-like steps outside any load transaction, once per loader start. Returns the
        added columns."""
        d = self.dialect
        cur = self._cursor()
        try:
            for stmt in (
                sql.create_schema(d, self.schema),
                sql.create_events(d, self.schema, self.entities),
                sql.create_ledger(d, self.schema),
                sql.create_registry(d, self.schema),
            ):
                self._run(cur, stmt)
            self._commit()
            present = {
                r[0]
                for r in self._run(
                    cur, sql.existing_columns(d), [self.schema, sql.EVENTS]
                ).fetchall()
            }
            added = [e for e in self.entities if e not in present]
            for col in added:
                self._run(cur, sql.add_column(d, self.schema, col))
                self._commit()
            for view in create_views(d, self.schema, self.analytics):
                self._run(cur, view)
            self._commit()
            if self.registry is not None:
                self._sync_registry(cur, self.registry)
            return added
        except BaseException:
            self._rollback()
            raise

    # --- the registry table ---------------------------------------------------------------

    def _sync_registry(self, cur: Any, registry: Registry) -> bool:
        """Make `event_registry` hold exactly `registry`'s events; True if it was rewritten.

        In step already (the usual start): one grouped SELECT. Otherwise, in one transaction
        that holds the table's lock: check again (another loader may have just done it), then
        DELETE every row and INSERT every event. Rewriting all rows is the simplest correct
        upsert — removed events disappear, changed ones change — and the table is small. The
        check runs in its own transaction first, so the locked one starts with the lock
        (Redshift takes a transaction's snapshot at its first statement)."""
        rows = registry_rows(registry)
        if self._registry_in_step(cur, rows):
            self._commit()
            return False
        self._begin(cur)
        self._lock_registry(cur)
        if self._registry_in_step(cur, rows):
            self._commit()
            return False
        self._run(cur, sql.delete_registry(self.dialect, self.schema))
        for i in range(0, len(rows), 200):
            chunk = rows[i : i + 200]
            params = [v for row in chunk for v in row]
            self._run(cur, sql.insert_registry(self.dialect, self.schema, len(chunk)), params)
        self._commit()
        log(logger, logging.INFO, "event registry table updated", events=len(rows),
            sha256=registry.content_hash()[:16])  # fmt: skip
        return True

    def _registry_in_step(self, cur: Any, rows: list[tuple[Any, ...]]) -> bool:
        state = self._run(cur, sql.registry_state(self.dialect, self.schema)).fetchall()
        want = rows[0][-1] if rows else None
        return [(h, int(n)) for h, n in state] == [(want, len(rows))]

    def _lock_registry(self, cur: Any) -> None:
        pass  # DuckDB: a racing writer fails its commit (transient) and retries

    # --- ledger ---------------------------------------------------------------------------

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A read-only query (the analyses); rows as tuples."""
        cur = self._cursor()
        try:
            rows = self._run(cur, statement, list(params)).fetchall()
            self._commit()
            return [tuple(r) for r in rows]
        except BaseException:
            self._rollback()
            raise

    def loaded_among(self, keys: list[str]) -> set[str]:
        """Which of `keys` the ledger has (loaded or quarantined), in chunks of 500."""
        found: set[str] = set()
        cur = self._cursor()
        try:
            for i in range(0, len(keys), 500):
                found |= self._known(cur, keys[i : i + 500])
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return found

    def record(
        self, keys_status: list[tuple[str, str, int, str | None]], manifest_key: str | None
    ) -> None:
        """Ledger rows outside a load (quarantined objects): (key, status, bytes, reason)."""
        cur = self._cursor()
        try:
            self._lock(cur)
            have = self._known(cur, [k for k, *_ in keys_status])
            rows = [r for r in keys_status if r[0] not in have]
            if rows:
                self._insert_ledger(cur, rows, manifest_key)
            self._commit()
        except BaseException:
            self._rollback()
            raise

    def _lock(self, cur: Any) -> None:
        pass  # DuckDB: the ledger's primary key makes a racing commit fail instead

    def _known(self, cur: Any, keys: list[str]) -> set[str]:
        if not keys:
            return set()
        rows = self._run(
            cur, sql.ledger_lookup(self.dialect, self.schema, len(keys)), keys
        ).fetchall()
        return {r[0] for r in rows}

    def _insert_ledger(
        self, cur: Any, rows: list[tuple[str, str, int, str | None]], manifest_key: str | None
    ) -> None:
        params: list[Any] = []
        for key, status, nbytes, reason in rows:
            params += [key, status, manifest_key, nbytes, reason]
        self._run(cur, sql.insert_ledger(self.dialect, self.schema, len(rows)), params)

    # --- the load transaction -------------------------------------------------------------

    def load(
        self, batch: list[ObjectInfo], write_manifest: ManifestWriter, local_files: LocalFiles
    ) -> LoadOutcome:
        """Load `batch` in one transaction. Any failure is raised as :class:`LoadFailed`
        carrying the phase it happened in: what the loader does about it depends on which
        statement failed (reading the objects, or the ledger), not on the message."""
        out = LoadOutcome()
        phase = Phase.PREPARE
        try:
            self._check_config()
            cur = self._cursor()
            self._begin(cur)
            self._lock(cur)
            have = self._known(cur, [o.key for o in batch])
            out.skipped = [o.key for o in batch if o.key in have]
            todo = [o for o in batch if o.key not in have]
            if not todo:
                self._rollback()
                return out
            manifest_url = write_manifest(todo)
            phase = Phase.STAGE
            t0 = time.perf_counter()
            self._stage(cur, todo, manifest_url, local_files)
            out.copy_seconds = time.perf_counter() - t0
            phase = Phase.INSERT
            count, distinct, lo, hi, out_of_range = self._run(cur, sql.stage_stats()).fetchone()
            if out_of_range:
                raise DataOutOfRange(
                    f"{int(out_of_range)} event(s) with occurred_at or received_at outside "
                    "years 1-9999"
                )
            out.staged_rows = int(count or 0)
            if out.staged_rows:
                lo_w, hi_w = self._window(lo, hi)
                repeats = int(distinct) < out.staged_rows
                insert = sql.insert_events(
                    self.dialect, self.schema, self.entities, in_batch_dups=repeats
                )
                self._run(cur, insert, [lo_w, hi_w])
                out.inserted_rows = self._inserted(cur)
            phase = Phase.RECORD
            self._insert_ledger(cur, [(o.key, "loaded", o.size, None) for o in todo],
                                manifest_url)  # fmt: skip
            self._run(cur, sql.drop_stage())
            self._commit()
            out.loaded = [o.key for o in todo]
            return out
        except Exception as exc:
            self._rollback()
            self._after_failure(exc)
            raise LoadFailed(phase, exc) from exc
        except BaseException:
            self._rollback()
            raise

    def _check_config(self) -> None:
        """Refuse a load the configuration cannot run, before touching any object."""

    def _window(self, lo: Any, hi: Any) -> tuple[datetime, datetime]:
        """The occurred_at range of the dedupe check, clamped so that data at the edges of
        the calendar (ingest refuses it, but a lake may hold anything) cannot overflow."""
        floor = datetime(1, 1, 2, tzinfo=UTC)
        ceil = datetime(9999, 12, 30, tzinfo=UTC)
        # None: every occurred_at is null (the insert's NOT NULL then names the data error).
        lo = floor if lo is None else _as_utc(lo)
        hi = ceil if hi is None else _as_utc(hi)
        lo_w = lo - self.dedupe_window if lo - floor > self.dedupe_window else floor
        hi_w = hi + self.dedupe_window if ceil - hi > self.dedupe_window else ceil
        return lo_w, hi_w

    def _begin(self, cur: Any) -> None:
        pass

    def _after_failure(self, exc: Exception) -> None:
        """Called after the rollback of a failed load."""

    def _inserted(self, cur: Any) -> int:
        return max(0, int(cur.rowcount))

    def _stage(
        self, cur: Any, batch: list[ObjectInfo], manifest_url: str, local_files: LocalFiles
    ) -> None:
        raise NotImplementedError

    def load_error_files(self, urls: list[str]) -> list[tuple[str, str]]:
        """(file URL, reason) pairs the warehouse recorded for a failed COPY of `urls`."""
        return []


# ------------------------------------------------------------------------------- Redshift


class RedshiftWarehouse(Warehouse):
    """Amazon Redshift through the blocking `redshift-connector` driver."""

    dialect = sql.REDSHIFT

    def __init__(self, url: str, iam_role: str, statement_timeout_s: float, **kw: Any):
        super().__init__(**kw)
        self.connect_kwargs = redshift_connect_kwargs(url)
        self.iam_role = iam_role
        self.statement_timeout_ms = int(statement_timeout_s * 1000)
        self.statements: list[str] = []  # the last load's statements, for tests and logs

    def connect(self) -> None:
        import redshift_connector

        self.conn = redshift_connector.connect(**self.connect_kwargs)
        self.conn.autocommit = False
        cur = self.conn.cursor()
        cur.execute(f"SET statement_timeout TO {self.statement_timeout_ms}")
        self.conn.commit()

    def _lock(self, cur: Any) -> None:
        self._run(cur, sql.lock_ledger(self.schema))

    def _lock_registry(self, cur: Any) -> None:
        self._run(cur, sql.lock_registry(self.schema))

    def _check_config(self) -> None:
        if not self.iam_role:
            raise ValueError("LOGSHIP_REDSHIFT_IAM_ROLE is required to COPY into Redshift")

    def _stage(
        self, cur: Any, batch: list[ObjectInfo], manifest_url: str, local_files: LocalFiles
    ) -> None:
        self._run(cur, sql.drop_stage())
        self._run(cur, sql.create_stage(self.dialect, self.schema))
        self._run(cur, sql.copy_manifest(manifest_url, self.iam_role))

    def load_error_files(self, urls: list[str]) -> list[tuple[str, str]]:
        if not urls:
            return []
        cur = self._cursor()
        try:
            rows = self._run(cur, sql.load_errors(self.dialect, len(urls)), urls).fetchall()
            self._commit()
        except Exception:
            self._rollback()
            return []
        out: dict[str, str] = {}
        for file_name, line, column, message in rows:
            url = str(file_name).strip()
            out.setdefault(
                url, f"line {line}, column {str(column).strip()}: {str(message).strip()}"
            )
        return list(out.items())


def redshift_connect_kwargs(url: str) -> dict[str, Any]:
    """`redshift://user:pw@host:port/db?iam=true&…` → `redshift_connector.connect` kwargs.

    Query options map to the driver's own: `ssl`, `iam`, `cluster_identifier`, `db_user`,
    `region`, `serverless_work_group`, `serverless_acct_id`, `profile`, `timeout`.
    """
    u = urllib.parse.urlsplit(url)
    kw: dict[str, Any] = {
        "host": u.hostname,
        "port": u.port or 5439,
        "database": (u.path or "/dev").lstrip("/") or "dev",
    }
    if u.username:
        kw["user"] = urllib.parse.unquote(u.username)
    if u.password:
        kw["password"] = urllib.parse.unquote(u.password)
    for key, value in urllib.parse.parse_qsl(u.query):
        if value.lower() in ("true", "false"):
            kw[key] = value.lower() == "true"
        elif value.isdigit():
            kw[key] = int(value)
        else:
            kw[key] = value
    return kw


# --------------------------------------------------------------------------------- DuckDB


class DuckDBWarehouse(Warehouse):
    """The embedded default: the same table shape, ledger and exactly-once load, in DuckDB.

    The database file is opened for each operation and closed after, so other processes
    (`logship session`, a notebook) can open it between load cycles.
    """

    dialect = sql.DUCKDB

    def __init__(self, path: str, memory_limit: str = "300MB", **kw: Any):
        super().__init__(**kw)
        self.path = path
        self.memory_limit = memory_limit
        self._intact: dict[tuple[str, int], None] = {}  # (key, size) read as complete gzip

    def connect(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = duckdb.connect(
            self.path,
            config={
                "memory_limit": self.memory_limit,
                # Row order within a load does not matter; keeping it costs memory and time.
                "preserve_insertion_order": False,
            },
        )
        self.conn.execute("SET TimeZone = 'UTC'")

    def _cursor(self) -> Any:
        if self.conn is None:
            self.connect()
        return self.conn

    def _run(self, cur: Any, statement: str, params: Sequence[Any] | None = None) -> Any:
        return cur.execute(statement, list(params) if params else None)

    def _begin(self, cur: Any) -> None:
        cur.execute("BEGIN TRANSACTION")

    def _commit(self) -> None:
        self.conn.commit()

    def _inserted(self, cur: Any) -> int:
        row = cur.fetchone()
        return int(row[0]) if row else 0

    def _stage(
        self, cur: Any, batch: list[ObjectInfo], manifest_url: str, local_files: LocalFiles
    ) -> None:
        files = local_files(batch)
        cols = {"event_id": "VARCHAR", "event_name": "VARCHAR", "event_version": "INTEGER",
                "occurred_at": "TIMESTAMPTZ", "received_at": "TIMESTAMPTZ",
                "service": "VARCHAR", "host": "VARCHAR"}  # fmt: skip
        cols |= {e: "VARCHAR" for e in self.entities}
        cols["properties"] = "JSON"
        spec = "{" + ", ".join(f"{sql.literal(c)}: {sql.literal(t)}" for c, t in cols.items()) + "}"
        self._run(cur, sql.drop_stage())
        try:
            self._run(
                cur,
                f"CREATE TEMP TABLE {sql.ident(sql.STAGE)} AS SELECT * FROM read_json("
                f"{self.dialect.param}, format = 'newline_delimited', compression = 'gzip', "
                f"columns = {spec})",
                [files],
            )
        except duckdb.IOException:
            # DuckDB reports a broken gzip stream and an OS failure (EMFILE, EIO, a vanished
            # file) with the same type: look at the files themselves to tell them apart.
            self._check_files(batch, files)
            raise  # every file is a readable, complete gzip stream: not proven to be the data

    def _check_files(self, batch: list[ObjectInfo], files: list[str]) -> None:
        """Raise what the batch's files show: an OSError of the OS (EMFILE, EIO: transient by
        errno), or :class:`ObjectsUnreadable` naming the objects gone from the lake or not a
        complete gzip stream. Returns when every file reads as a complete gzip stream."""
        bad: dict[str, str] = {}
        gone: set[str] = set()
        for obj, path in zip(batch, files, strict=True):
            try:
                os.close(os.open(path, os.O_RDONLY))
            except FileNotFoundError:
                gone.add(obj.key)
        for obj, path in zip(batch, files, strict=True):
            if obj.key in gone or (obj.key, obj.size) in self._intact:
                continue
            try:
                problem = gzip_problem(path)
            except FileNotFoundError:
                gone.add(obj.key)
                continue
            if problem:
                bad[obj.key] = problem
            else:
                self._remember_intact(obj)
        if bad or gone:
            raise ObjectsUnreadable(bad, gone)

    def _remember_intact(self, obj: ObjectInfo) -> None:
        """Lake objects never change: a key checked intact need not be read again when the
        isolation retries it (bounded: the oldest are forgotten first)."""
        self._intact[(obj.key, obj.size)] = None
        while len(self._intact) > _INTACT_REMEMBERED:
            del self._intact[next(iter(self._intact))]

    def _after_failure(self, exc: Exception) -> None:
        if isinstance(exc, duckdb.FatalException | duckdb.InternalException):
            # DuckDB invalidates a database after a fatal or internal error: reopen it.
            self._drop_connection()

    def _rollback(self) -> None:
        if self.conn is None:
            return
        try:
            self.conn.rollback()
        except duckdb.TransactionException:
            pass  # no transaction was active (it failed before BEGIN, or already rolled back)
        except Exception as exc:
            if classify(exc).transient:
                self._drop_connection()

    def _drop_connection(self) -> None:
        if self.path != ":memory:":  # an in-memory database lives only in its connection
            self.close()

    def release(self) -> None:
        self._drop_connection()  # let other processes open the file between cycles


def registry_rows(registry: Registry) -> list[tuple[Any, ...]]:
    """One `event_registry` row per event, in sql.insert_registry's parameter order."""
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
    if len(text.encode()) > sql.MAX_VARCHAR_BYTES:
        for fs in fields.values():
            fs.pop("description", None)
        text = json.dumps(fields, ensure_ascii=False)
    if len(text.encode()) > sql.MAX_VARCHAR_BYTES:
        raise ValueError(f"event {name!r}: its field definitions exceed 64 KiB of JSON")
    return text


def _as_utc(v: Any) -> datetime:
    if isinstance(v, datetime):
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
    return datetime.fromisoformat(str(v)).astimezone(UTC)


def open_warehouse(
    url: str,
    *,
    schema: str,
    entities: tuple[str, ...],
    dedupe_window_s: float,
    iam_role: str,
    statement_timeout_s: float,
    duckdb_memory_limit: str = "300MB",
    analytics: AnalyticsConfig | None = None,
    registry: Registry | None = None,
) -> Warehouse:
    common = {
        "schema": schema,
        "entities": entities,
        "dedupe_window_s": dedupe_window_s,
        "analytics": analytics,
        "registry": registry,
    }
    if url.startswith("redshift://"):
        return RedshiftWarehouse(url, iam_role, statement_timeout_s, **common)
    if url.startswith("duckdb://"):
        path = url[len("duckdb://") :]
        path = path[1:] if path.startswith("/./") else path  # duckdb:///./var/x → ./var/x
        return DuckDBWarehouse(path or ":memory:", memory_limit=duckdb_memory_limit, **common)
    raise ValueError("LOGSHIP_WAREHOUSE_URL must start with redshift:// or duckdb://")
