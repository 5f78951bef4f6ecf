"""Reading the warehouse for one request — never in the loader's way.

* **DuckDB**: the file is opened `read_only=True` for each request and closed after it, in a
  worker thread. While the loader holds the file (its write lock, in another process or in
  this one under `logship dev`), opening fails; the request retries with short sleeps for at
  most `LOGSHIP_UI_BUSY_RETRY_S` and then answers 503 "the warehouse is busy" — a clear page,
  never a failure the loader could see.
* **Redshift**: the loader's connection factory (`open_warehouse`) with the UI's own
  statement timeout (`LOGSHIP_UI_STATEMENT_TIMEOUT_S`; on DuckDB the same limit interrupts the
  visit); a few connections are kept between
  requests (connecting costs a TLS handshake). Use a read-only user: README "The web UI".

Blocking drivers run in a small thread pool, so the number of queries in flight is bounded by
its size whatever the number of requests. Every driver error becomes a 503 of the right kind
in :func:`judge`, by type and SQLSTATE, never by the words of its message.
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

logger = logging.getLogger("logship.ui")

T = TypeVar("T")

#: Queries in flight at once (threads of the pool); also the Redshift connections kept.
WORKERS = 4
#: First and longest pause between attempts to open a busy DuckDB file.
_RETRY_FIRST_S = 0.02
_RETRY_MAX_S = 0.25
#: Redshift SQLSTATEs meaning "the analyses' tables or views are not there yet".
_UNDEFINED = ("42P01", "3F000")


class Reader:
    """Runs `fn(warehouse)` for a request in the pool, with the warehouse opened for it."""

    def __init__(self, settings: UiSettings, entities: tuple[str, ...]):
        self.settings = settings
        self.entities = entities
        self.url = settings.warehouse_url.get_secret_value()
        self.pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="logship-ui")
        self._idle: list[Warehouse] = []  # Redshift connections kept between requests
        self._lock = threading.Lock()
        probe = self._new()
        self.dialect = probe.dialect
        self.schema = settings.warehouse_schema

    async def run(self, fn: Callable[[Warehouse], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, self._run, fn)

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
            schema=s.warehouse_schema,
            entities=self.entities,
            dedupe_window_s=s.dedupe_window_s,
            iam_role=s.redshift_iam_role,
            statement_timeout_s=s.ui_statement_timeout_s,
            duckdb_memory_limit=s.duckdb_memory_limit,
            views=None,  # the UI only reads: the loader creates the views
        )

    def _run(self, fn: Callable[[Warehouse], Any]) -> Any:
        wh = self._acquire()
        healthy = False
        # DuckDB has no statement timeout: the visit is interrupted when it takes longer.
        timer = None
        if isinstance(wh, DuckDBWarehouse) and wh.conn is not None:
            timer = threading.Timer(self.settings.ui_statement_timeout_s, wh.conn.interrupt)
            timer.daemon = True
            timer.start()
        try:
            result = fn(wh)
            healthy = True
            return result
        except Problem:
            healthy = True
            raise
        except Exception as exc:
            raise self._problem(exc) from None
        finally:
            if timer is not None:
                timer.cancel()
            self._release(wh, healthy)

    def _acquire(self) -> Warehouse:
        if self.url.startswith("duckdb://"):
            wh = self._new()
            assert isinstance(wh, DuckDBWarehouse)
            self._open_read_only(wh)
            return wh
        with self._lock:
            if self._idle:
                return self._idle.pop()
        wh = self._new()
        try:
            wh.connect()
        except Exception as exc:
            raise self._problem(exc) from None
        return wh

    def _release(self, wh: Warehouse, healthy: bool) -> None:
        if isinstance(wh, DuckDBWarehouse) or not healthy:
            wh.close()  # DuckDB: let the loader have the file back at once
            return
        with self._lock:
            if len(self._idle) < WORKERS:
                self._idle.append(wh)
                return
        wh.close()

    def _open_read_only(self, wh: DuckDBWarehouse) -> None:
        """Open the file read-only, retrying while another connection holds it."""
        if wh.path != ":memory:" and not os.path.exists(wh.path):
            raise Problem(NO_DATA, "The warehouse file does not exist yet: the loader has not "
                                   "loaded anything.")  # fmt: skip
        deadline = time.monotonic() + self.settings.ui_busy_retry_s
        pause = _RETRY_FIRST_S
        while True:
            try:
                conn = duckdb.connect(wh.path, read_only=True,
                                      config={"memory_limit": wh.memory_limit})  # fmt: skip
                conn.execute("SET TimeZone = 'UTC'")
                wh.conn = conn
                return
            except (duckdb.IOException, duckdb.ConnectionException):
                # The loader's write lock (another process: IOException; this process, in
                # `logship dev`: ConnectionException). It is released after each load cycle.
                if time.monotonic() + pause > deadline:
                    metrics.warehouse_unavailable_total.labels(BUSY.code).inc()
                    raise Problem(BUSY, "The loader is writing to the warehouse right now. "
                                        "Try again in a moment.") from None  # fmt: skip
                time.sleep(pause)
                pause = min(pause * 2, _RETRY_MAX_S)

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

    A missing table or view is "nothing loaded yet" (the loader creates them); DuckDB's
    file and connection errors are the loader's hold on the file; anything else — Redshift
    unreachable, a statement timeout, a privilege missing — is "cannot answer", logged."""
    if isinstance(exc, duckdb.CatalogException):
        return NO_DATA
    if isinstance(exc, redshift_connector.Error) and sqlstate(exc)[0] in _UNDEFINED:
        return NO_DATA
    if isinstance(exc, duckdb.IOException | duckdb.ConnectionException):
        return BUSY
    return UNAVAILABLE
