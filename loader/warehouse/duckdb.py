"""DuckDB, the embedded default: the same table shape, ledger and exactly-once load, with the
stage read from local gzip files by `read_json`."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from ingest.lake import ObjectInfo
from ingest.logs import log
from loader.errors import ObjectsUnreadable, classify, gzip_problem
from loader.warehouse import sql
from loader.warehouse.base import LocalFiles, Warehouse
from loader.warehouse.locking import WriteHold

logger = logging.getLogger("logship.loader")

#: How many objects :meth:`DuckDBWarehouse._check_files` remembers as intact.
_INTACT_REMEMBERED = 10_000
#: `delivery_spans` is rewritten in bucket order once the rows appended after its sorted part
#: outnumber this, or an eighth of that part (a probe reads one row group of the sorted part
#: and all of the rest; each rewrite reads the table once).
SPANS_TAIL_ROWS = 250_000
#: After a failed rewrite, the loads to wait before the next try (doubling, up to the max).
_SPANS_RETRY_LOADS, _SPANS_RETRY_MAX_LOADS = 1, 64
_COMMENT = re.compile(r"[0-9]{1,18}")


class DuckDBWarehouse(Warehouse):
    """The embedded default: the same table shape, ledger and exactly-once load, in DuckDB.

    The database file is opened for each operation and closed after, so other processes
    (`logship session`, a notebook) can open it between load cycles; while it is open, the
    web UI's readers wait (:mod:`loader.warehouse.locking`).
    """

    dialect = sql.DUCKDB

    def __init__(self, path: str, memory_limit: str = "300MB", **kw: Any):
        super().__init__(**kw)
        self.path = path
        self.memory_limit = memory_limit
        self._intact: dict[tuple[str, int], None] = {}  # (key, size) read as complete gzip
        self._hold: WriteHold | None = None  # writers first: see loader/warehouse/locking.py
        self._spans_wait, self._spans_backoff = 0, _SPANS_RETRY_LOADS  # loads before a rewrite

    def connect(self) -> None:
        """Open the file read-write, after the readers inside have left (:class:`WriteHold`;
        new readers wait until :meth:`close`)."""
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._hold = WriteHold(self.path)
        try:
            self.conn = duckdb.connect(
                self.path,
                config={
                    "memory_limit": self.memory_limit,
                    # Row order within a load does not matter; keeping it costs memory and time.
                    "preserve_insertion_order": False,
                },
            )
            self.conn.execute(sql.utc_session())
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        super().close()
        if self._hold is not None:
            self._hold.release()  # after the file is closed: readers may open it now
            self._hold = None

    def _cursor(self) -> Any:
        if self.conn is None:
            self.connect()
        return self.conn

    def _run(self, cur: Any, statement: str, params: Sequence[Any] | None = None) -> Any:
        return cur.execute(statement, list(params) if params else None)

    def _inserted(self, cur: Any) -> int:
        row = cur.fetchone()
        return int(row[0]) if row else 0

    def _stage(
        self, cur: Any, batch: list[ObjectInfo], manifest_url: str, local_files: LocalFiles
    ) -> None:
        files = local_files(batch)
        self._run(cur, sql.drop_stage())
        try:
            self._run(cur, sql.read_json_stage(self.dialect, self.entities), [files])
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

    def _spans_in_order(self, cur: Any, rows: int) -> None:
        # The table's comment is where the size of its sorted part is kept: it commits with it.
        self._run(cur, f"COMMENT ON TABLE {sql.table(self.schema, sql.SPANS)} IS '{int(rows)}'")

    def _after_load(self) -> None:
        """Rewrite `delivery_spans` in bucket order when its unsorted tail has grown (see
        :data:`SPANS_TAIL_ROWS`), in its own transaction after the load's: a failure here is
        logged and the next load tries again — the load itself has committed."""
        if not self.keeps_spans:
            return
        if self._spans_wait > 0:  # backing off after a failed rewrite
            self._spans_wait -= 1
            return
        try:
            self._compact_spans()
            self._spans_backoff = _SPANS_RETRY_LOADS
        except Exception as exc:
            self._rollback()
            self._after_failure(exc)  # an invalidated database is reopened by the next load
            self._spans_wait = self._spans_backoff
            self._spans_backoff = min(2 * self._spans_backoff, _SPANS_RETRY_MAX_LOADS)
            log(logger, logging.WARNING, "delivery_spans not rewritten; tried again later",
                error=f"{type(exc).__name__}: {exc}"[:500], loads_to_wait=self._spans_wait)  # fmt: skip

    def _compact_spans(self) -> None:
        cur = self._cursor()
        ((rows,),) = self._run(cur, sql.count_spans(self.schema)).fetchall()
        comment = self._run(
            cur,
            "SELECT comment FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
            [self.schema, sql.SPANS],
        ).fetchall()
        text = str(comment[0][0] or "") if comment else ""
        in_order = int(text) if _COMMENT.fullmatch(text) else 0  # not ours: all unsorted
        if int(rows) - in_order <= max(SPANS_TAIL_ROWS, in_order // 8):
            return
        t0 = time.perf_counter()
        self._begin(cur)
        for stmt in sql.compact_spans(self.schema):
            self._run(cur, stmt)
        ((n,),) = self._run(cur, sql.count_spans(self.schema)).fetchall()
        self._spans_in_order(cur, int(n))
        self._commit()
        log(logger, logging.INFO, "delivery_spans rewritten in order", rows_before=int(rows),
            rows=int(n), seconds=round(time.perf_counter() - t0, 3))  # fmt: skip

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
