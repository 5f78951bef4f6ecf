"""Visiting the warehouse for one request — never in the loader's way.

* **DuckDB**: the file is opened `read_only=True` for each request and closed after it, one
  visit at a time per UI process, in a worker thread. A visit first *gets in* through
  :class:`~loader.warehouse.locking.ReadHold`: when the loader is waiting for the file or
  writing to it, the visit does not start; the request retries with short pauses for at most
  `LOGSHIP_UI_BUSY_RETRY_S` and then answers 503 "the warehouse is busy". The loader's wait is
  bounded in turn: a visit is interrupted after `LOGSHIP_UI_STATEMENT_TIMEOUT_S`. A program
  outside logship holding the file (DuckDB's own lock) is "busy" the same way; a file that is
  not a DuckDB database, or an in-memory `duckdb://`, is "unavailable" and says why.
* **Redshift**: the loader's connection factory (`open_warehouse`) with the UI's own
  statement timeout; a few connections are kept between requests (connecting costs a TLS
  handshake). Use a read-only user: README "The web UI".

Why one DuckDB visit at a time: the visit after a failed open reads the file's first bytes
to tell "not a database" from a lock conflict, and closing any descriptor of a file drops
every POSIX lock this process holds on it — DuckDB's own included. With one visit at a time
(and the loader kept out by the lock files) there is none to drop.

Every driver error becomes a 503 of the right kind in :func:`judge`, by type and SQLSTATE,
never by the words of its message.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import duckdb
import redshift_connector

from ingest.logs import log, redact
from loader.errors import sqlstate
from loader.ui import metrics
from loader.ui.config import UiSettings
from loader.ui.problems import BUSY, NO_DATA, UNAVAILABLE, Kind, Problem
from loader.warehouse import DuckDBWarehouse, Warehouse, open_warehouse
from loader.warehouse.locking import ReadHold

logger = logging.getLogger("logship.ui")

T = TypeVar("T")

#: Redshift queries in flight at once (threads of the pool), also the connections kept.
REDSHIFT_WORKERS = 4
#: First and longest pause between attempts to get into a busy DuckDB file.
_RETRY_FIRST_S = 0.02
_RETRY_MAX_S = 0.25
#: Redshift SQLSTATEs meaning "the analyses' tables or views are not there yet".
_UNDEFINED = ("42P01", "3F000")
#: Where a DuckDB database file says what it is (bytes 8–11).
_DUCKDB_MAGIC = (8, b"DUCK")


class _Busy(Exception):
    """The visit could not start yet (the loader first, or another program's lock)."""


class WarehouseVisits:
    """Runs `fn(warehouse)` for a request in a worker thread, the warehouse opened for it."""

    def __init__(self, settings: UiSettings, entities: tuple[str, ...]):
        self.settings = settings
        self.entities = entities
        self.url = settings.warehouse_url.get_secret_value()
        self.duckdb = self.url.startswith("duckdb://")
        workers = 1 if self.duckdb else REDSHIFT_WORKERS
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="logship-ui-db")
        self._idle: list[Warehouse] = []  # Redshift connections kept between requests
        self._lock = threading.Lock()

    async def run(self, fn: Callable[[Warehouse], T]) -> T:
        loop = asyncio.get_running_loop()
        if not self.duckdb:
            return await loop.run_in_executor(self.pool, self._redshift_visit, fn)
        deadline = time.monotonic() + self.settings.ui_busy_retry_s
        pause = _RETRY_FIRST_S
        while True:
            try:
                return await loop.run_in_executor(self.pool, self._duckdb_visit, fn)
            except _Busy as busy:
                if time.monotonic() + pause > deadline:
                    metrics.warehouse_unavailable_total.labels(BUSY.code).inc()
                    raise Problem(BUSY, str(busy)) from None
            await asyncio.sleep(pause)  # between attempts the worker serves other requests
            pause = min(pause * 2, _RETRY_MAX_S)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            idle, self._idle = self._idle, []
        for wh in idle:
            wh.close()

    # --- in the worker thread -----------------------------------------------------------

    def _new(self) -> Warehouse:
        s = self.settings
        return open_warehouse(
            self.url,
            **{**s.warehouse_options(), "statement_timeout_s": s.ui_statement_timeout_s},
            entities=self.entities,
            views=None,  # the UI only reads: the loader creates the views
        )

    def _call(self, fn: Callable[[Warehouse], Any], wh: Warehouse) -> Any:
        """`fn(wh)`; a driver error as the Problem :func:`judge` says."""
        try:
            return fn(wh)
        except Problem:
            raise
        except Exception as exc:
            raise self._problem(exc) from None

    def _duckdb_visit(self, fn: Callable[[Warehouse], Any]) -> Any:
        wh = self._new()
        assert isinstance(wh, DuckDBWarehouse)
        path = wh.path
        if path == ":memory:":
            raise self._unavailable("LOGSHIP_WAREHOUSE_URL is duckdb:// — an in-memory "
                                    "database, private to the process that opened it. Point "
                                    "the UI at the loader's file: duckdb:///path/to/file.")  # fmt: skip
        if not os.path.exists(path):
            metrics.warehouse_unavailable_total.labels(NO_DATA.code).inc()
            log(logger, logging.WARNING, "no DuckDB file at the warehouse path", path=path)
            raise Problem(NO_DATA, "There is no DuckDB file at LOGSHIP_WAREHOUSE_URL yet: the "
                                   "loader has not loaded anything, or the UI is pointed at "
                                   "another path than the loader.")  # fmt: skip
        try:
            hold = ReadHold.enter(path)
        except OSError as exc:
            raise self._unavailable(f"the warehouse's lock files cannot be opened "
                                    f"({exc.strerror or type(exc).__name__}).") from None  # fmt: skip
        if hold is None:
            raise _Busy("The loader is writing to the warehouse right now. Try again in a moment.")
        try:
            wh.conn = self._open_read_only(wh)
            # DuckDB has no statement timeout: the visit is interrupted when it takes longer.
            timer = threading.Timer(self.settings.ui_statement_timeout_s, wh.conn.interrupt)
            timer.daemon = True
            timer.start()
            try:
                return self._call(fn, wh)
            finally:
                timer.cancel()
        finally:
            wh.close()
            hold.release()  # after the file is closed: the loader may open it now

    def _open_read_only(self, wh: DuckDBWarehouse) -> Any:
        try:
            conn = duckdb.connect(wh.path, read_only=True, config={"memory_limit": wh.memory_limit})
        except duckdb.ConnectionException:
            # This process holds the file read-write outside the lock files (not the loader).
            raise _Busy("Another connection of this process holds the warehouse file.") from None
        except duckdb.Error as exc:
            raise self._open_failed(wh.path, exc) from None
        try:
            conn.execute("SET TimeZone = 'UTC'")
        except BaseException as exc:
            conn.close()
            if isinstance(exc, duckdb.Error):
                raise self._problem(exc) from None
            raise
        return conn

    def _open_failed(self, path: str, exc: duckdb.Error) -> Exception:
        """Why DuckDB could not open a file that exists, while we are let in: not a DuckDB
        database (or unreadable) is "unavailable"; a database file is held by a program
        outside logship (its own lock): "busy", retried."""
        offset, magic = _DUCKDB_MAGIC
        try:
            with open(path, "rb") as f:
                head = f.read(offset + len(magic))
        except OSError as err:
            return self._unavailable(f"the warehouse file cannot be read ({err.strerror}).")
        if head[offset:] != magic:
            return self._unavailable("LOGSHIP_WAREHOUSE_URL names a file that is not a DuckDB "
                                     "database.")  # fmt: skip
        if isinstance(exc, duckdb.IOException):
            return _Busy("Another program holds the warehouse file open for writing. Try "
                         "again in a moment.")  # fmt: skip
        return self._unavailable(f"DuckDB cannot open the file ({type(exc).__name__}).")

    def _redshift_visit(self, fn: Callable[[Warehouse], Any]) -> Any:
        wh = self._acquire()
        kept = False
        try:
            result = fn(wh)
            kept = True
            return result
        except Problem:
            kept = True  # a bad argument: the connection is fine
            raise
        except Exception as exc:
            raise self._problem(exc) from None
        finally:
            self._release(wh, kept)

    def _acquire(self) -> Warehouse:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        wh = self._new()
        try:
            wh.connect()
        except Exception as exc:
            wh.close()
            raise self._problem(exc) from None
        return wh

    def _release(self, wh: Warehouse, healthy: bool) -> None:
        if healthy:
            with self._lock:
                if len(self._idle) < REDSHIFT_WORKERS:
                    self._idle.append(wh)
                    return
        wh.close()

    def _unavailable(self, why: str) -> Problem:
        metrics.warehouse_unavailable_total.labels(UNAVAILABLE.code).inc()
        log(logger, logging.WARNING, "warehouse unavailable", reason=why)
        return Problem(UNAVAILABLE, f"Warehouse unavailable: {why}")

    def _problem(self, exc: Exception) -> Problem:
        kind = judge(exc)
        metrics.warehouse_unavailable_total.labels(kind.code).inc()
        log(logger, logging.WARNING, "warehouse query failed", kind=kind.title,
            error_type=type(exc).__name__, error=redact(str(exc))[:300])  # fmt: skip
        detail = {
            NO_DATA: "The warehouse has no events yet (the loader creates its tables and "
            "views on its first start).",
            BUSY: "The warehouse is busy. Try again in a moment.",
        }.get(kind, "The warehouse did not answer this page's query; the UI's log has the "
                    "reason. Try again in a moment.")  # fmt: skip
        return Problem(kind, detail)


def judge(exc: BaseException) -> Kind:
    """Which 503 a warehouse error is: by type and SQLSTATE (the one place that decides).

    A missing table or view is "nothing loaded yet" (the loader creates them); anything else —
    Redshift unreachable, a statement timeout, a privilege missing, an interrupted DuckDB
    visit — is "cannot answer", logged. (Whether the loader holds a DuckDB file is decided
    before the visit, by the lock files — never from an error.)"""
    if isinstance(exc, duckdb.CatalogException):
        return NO_DATA
    if isinstance(exc, redshift_connector.Error) and sqlstate(exc)[0] in _UNDEFINED:
        return NO_DATA
    return UNAVAILABLE
