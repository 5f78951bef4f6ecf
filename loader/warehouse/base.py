"""The load logic both warehouses share, over a DB-API connection: the schema, the registry
table, the ledger and the load transaction.

Both drivers are blocking; the loader calls them from a worker thread. A load is, in ONE
transaction: lock the ledger (Redshift), drop objects the ledger already has, write the
manifest, COPY every object into a temporary stage, insert the stage into `events` keeping one
row per `event_id` and skipping ids already loaded, append the stage's deliveries to
`delivery_spans`, insert the ledger rows, commit. The ledger, the events and the spans commit
together or not at all, so each object loads exactly once and every delivery's span holds all
its events.

A backend (:mod:`.redshift`, :mod:`.duckdb`) says how to connect and how to fill the stage;
what differs in SQL is in its :class:`~loader.warehouse.sql.Dialect`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ingest.lake import ObjectInfo
from ingest.logs import log
from ingest.registry import Registry
from loader.errors import DataOutOfRange, LoadFailed, Phase, classify
from loader.warehouse import registry_table, sql

logger = logging.getLogger("logship.loader")

#: Writes the manifest of the final batch to the lake; returns its URL (for COPY).
ManifestWriter = Callable[[list[ObjectInfo]], str]
#: Makes the objects of a batch readable as local gzip files (DuckDB reads files itself).
LocalFiles = Callable[[list[ObjectInfo]], list[str]]
#: The statements creating views over `events` in a schema (the analyses:
#: :func:`loader.analytics.create_views` bound to its config), run by :meth:`ensure_schema`.
Views = Callable[[sql.Dialect, str], list[str]]


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
        *,
        views: Views | None,
        registry: Registry | None = None,
    ):
        self.schema = schema
        self.entities = entities
        self.views = views
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

    def _begin(self, cur: Any) -> None:
        if self.dialect.begin:
            self._run(cur, self.dialect.begin)

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
        registry gained; create `delivery_spans` (built from `events`) when absent; create the
        views; bring `event_registry` in step with the registry.
        Runs in autocommit-like steps outside any load transaction, once per loader start.
        Returns the added columns."""
        d = self.dialect
        cur = self._cursor()
        try:
            for stmt in (
                sql.create_schema(d, self.schema),
                sql.create_events(d, self.schema, self.entities),
                sql.create_ledger(d, self.schema),
                registry_table.create(d, self.schema),
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
            self._ensure_spans(cur)
            for view in self.views(d, self.schema) if self.views else []:
                self._run(cur, view)
            self._commit()
            if self.registry is not None:
                self._sync_registry(cur, self.registry)
            return added
        except BaseException:
            self._rollback()
            raise

    @property
    def keeps_spans(self) -> bool:
        """`delivery_spans` is kept when the registry has the delivery entity."""
        return sql.SPANS_KEY in self.entities

    def _ensure_spans(self, cur: Any) -> None:
        """Create `delivery_spans` when absent — or of another shape than this code's (its
        columns are checked) — and fill it from `events` (a warehouse loaded before the table
        existed), in one transaction holding the ledger's lock: no load can add events between
        the fill and the commit."""
        if not self.keeps_spans:
            return
        d = self.dialect
        self._begin(cur)
        self._lock_ledger(cur)
        cols = self._run(cur, sql.existing_columns(d), [self.schema, sql.SPANS]).fetchall()
        have = {r[0] for r in cols}
        if have == set(sql.SPANS_COLUMNS):
            self._commit()
            return
        t0 = time.perf_counter()
        if have:  # an earlier shape: built again from events
            self._run(cur, sql.drop_spans(self.schema))
        self._run(cur, sql.create_spans(d, self.schema))
        self._run(cur, sql.add_spans(self.schema, sql.table(self.schema, sql.EVENTS)))
        (n,) = self._run(cur, sql.count_spans(self.schema)).fetchone()
        self._spans_in_order(cur, int(n))
        self._commit()
        log(logger, logging.INFO, "delivery spans built from events", deliveries=int(n),
            seconds=round(time.perf_counter() - t0, 3))  # fmt: skip

    def _spans_in_order(self, cur: Any, rows: int) -> None:
        """`delivery_spans` now holds `rows` rows in bucket order (DuckDB remembers it, see
        :meth:`_after_load`)."""

    def _after_load(self) -> None:
        """Called after a load committed (DuckDB puts `delivery_spans` back in order)."""

    # --- the registry table ---------------------------------------------------------------

    def _sync_registry(self, cur: Any, registry: Registry) -> bool:
        """Make `event_registry` hold exactly `registry`'s events; True if it was rewritten.

        In step already (the usual start): one grouped SELECT. Otherwise, in one transaction
        that holds the table's lock: check again (another loader may have just done it), then
        DELETE every row and INSERT every event. Rewriting all rows is the simplest correct
        upsert — removed events disappear, changed ones change — and the table is small. The
        check runs in its own transaction first, so the locked one starts with the lock
        (Redshift takes a transaction's snapshot at its first statement)."""
        rows = registry_table.rows(registry)
        if self._registry_in_step(cur, rows):
            self._commit()
            return False
        self._begin(cur)
        if self.dialect.locks_tables:
            self._run(cur, registry_table.lock(self.schema))
        if self._registry_in_step(cur, rows):
            self._commit()
            return False
        self._run(cur, registry_table.delete(self.dialect, self.schema))
        for i in range(0, len(rows), 200):
            chunk = rows[i : i + 200]
            params = [v for row in chunk for v in row]
            self._run(cur, registry_table.insert(self.dialect, self.schema, len(chunk)), params)
        self._commit()
        log(logger, logging.INFO, "event registry table updated", events=len(rows),
            sha256=registry.content_hash()[:16])  # fmt: skip
        return True

    def _registry_in_step(self, cur: Any, rows: list[tuple[Any, ...]]) -> bool:
        state = self._run(cur, registry_table.state(self.dialect, self.schema)).fetchall()
        want = rows[0][-1] if rows else None
        return [(h, int(n)) for h, n in state] == [(want, len(rows))]

    # --- ledger ---------------------------------------------------------------------------

    def query(
        self, statement: str, params: Sequence[Any] = (), max_rows: int | None = None
    ) -> list[tuple[Any, ...]]:
        """A read-only query (the analyses); rows as tuples, at most `max_rows` when given."""
        cur = self._cursor()
        try:
            res = self._run(cur, statement, list(params))
            rows = res.fetchall() if max_rows is None else res.fetchmany(max_rows)
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
            self._lock_ledger(cur)
            have = self._known(cur, [k for k, *_ in keys_status])
            rows = [r for r in keys_status if r[0] not in have]
            if rows:
                self._insert_ledger(cur, rows, manifest_key)
            self._commit()
        except BaseException:
            self._rollback()
            raise

    def _lock_ledger(self, cur: Any) -> None:
        if self.dialect.locks_tables:
            self._run(cur, sql.lock_ledger(self.schema))

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
            self._lock_ledger(cur)
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
                if self.keeps_spans:
                    self._run(cur, sql.add_spans(self.schema, sql.ident(sql.STAGE)))
            phase = Phase.RECORD
            self._insert_ledger(cur, [(o.key, "loaded", o.size, None) for o in todo],
                                manifest_url)  # fmt: skip
            self._run(cur, sql.drop_stage())
            self._commit()
            out.loaded = [o.key for o in todo]
        except Exception as exc:
            self._rollback()
            self._after_failure(exc)
            raise LoadFailed(phase, exc) from exc
        except BaseException:
            self._rollback()
            raise
        self._after_load()  # the batch is committed: nothing here may fail the load
        return out

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

    def _after_failure(self, exc: Exception) -> None:
        """Called after the rollback of a failed load (DuckDB reopens an invalidated
        database)."""

    def _inserted(self, cur: Any) -> int:
        return max(0, int(cur.rowcount))

    def _stage(
        self, cur: Any, batch: list[ObjectInfo], manifest_url: str, local_files: LocalFiles
    ) -> None:
        raise NotImplementedError

    def load_error_files(self, urls: list[str]) -> list[tuple[str, str]]:
        """(file URL, reason) pairs the warehouse recorded for a failed COPY of `urls`."""
        return []


def _as_utc(v: Any) -> datetime:
    if isinstance(v, datetime):
        return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
    return datetime.fromisoformat(str(v)).astimezone(UTC)
