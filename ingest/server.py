"""Running the sink: one process, or `LOGSHIP_WORKERS` processes sharing the port.

Shutdown on SIGTERM/SIGINT follows what Kubernetes expects: /readyz turns 503 and new batches
get 503 (senders retry elsewhere) while the listener stays up; in-flight requests finish; then
the spool is flushed to the lake; all bounded by `LOGSHIP_SHUTDOWN_TIMEOUT_S`; exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import multiprocess

from ingest import metrics
from ingest.app import STATE, build_app, wait_idle
from ingest.config import IngestSettings, parse_addr
from ingest.logs import CountSummary, log, register_secrets

logger = logging.getLogger("logship.server")


async def serve(
    settings: IngestSettings,
    *,
    worker_index: int = 0,
    reuse_port: bool = False,
    stop: asyncio.Event | None = None,
    on_started: asyncio.Future[int] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or `stop` is set), then drain and flush."""
    stop = stop or asyncio.Event()
    register_secrets(*settings.tokens(), settings.pii_hash_key.get_secret_value())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # first: a signal during start-up still drains
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    app = build_app(settings, worker_index=worker_index)
    runner = web.AppRunner(
        app,
        keepalive_timeout=settings.keepalive_timeout_s,
        # In-flight requests get what is left of the first half after `wait_idle`; the rest of
        # LOGSHIP_SHUTDOWN_TIMEOUT_S goes to the flush (see `drain_deadline`).
        shutdown_timeout=settings.shutdown_timeout_s / 2,
        access_log=None,
        handle_signals=False,
    )
    await runner.setup()
    host, port = parse_addr(settings.http_addr)
    assert runner.server is not None
    # Our own listener instead of a TCPSite, so every connection passes the limit first.
    limit = ConnectionLimit(runner.server, settings.max_connections)
    listener = await loop.create_server(
        limit, host, port, reuse_port=reuse_port or None, backlog=1024
    )
    bound = listener.sockets[0].getsockname()[1]
    log(logger, logging.INFO, "listening", addr=f"{host}:{bound}", worker=worker_index)
    if on_started is not None and not on_started.done():
        on_started.set_result(bound)

    await stop.wait()

    started = time.monotonic()
    log(logger, logging.INFO, "draining: readyz 503, new batches 503", worker=worker_index)
    app[STATE].draining = True
    app[STATE].drain_deadline = started + settings.shutdown_timeout_s
    await wait_idle(app, settings.shutdown_timeout_s / 2)
    listener.close()
    await runner.cleanup()  # closes the connections, then flushes the spool (app cleanup context)
    limit.refused_log.flush()
    log(logger, logging.INFO, "stopped", worker=worker_index,
        seconds=round(time.monotonic() - started, 3))  # fmt: skip


class ConnectionLimit:
    """The listener's protocol factory: at most `max_connections` client connections open at
    once; a connection beyond that is closed at once, before a byte of it is read.

    aiohttp has no such limit, and each connection is a file descriptor and a parser buffer:
    without it a few hundred clients that never finish their request exhaust the process. A
    refused connection is counted (`logship_ingest_refused_connections_total`) and summarised
    in the log, never logged one by one. Health checks and scrapes count like any client: at
    the limit they are refused too (the open connections still time out and free slots)."""

    def __init__(self, handler_factory: Callable[[], asyncio.Protocol], max_connections: int):
        self.handler_factory = handler_factory
        self.max_connections = max_connections
        self.open = 0
        self.refused_log = CountSummary(
            logger, logging.WARNING,
            f"connections refused: LOGSHIP_MAX_CONNECTIONS ({max_connections}) are open",
        )  # fmt: skip

    def __call__(self) -> asyncio.Protocol:
        return _Limited(self)


class _Limited(asyncio.Protocol):
    """Admits a connection against its :class:`ConnectionLimit`, then hands every event to
    aiohttp's own protocol (the handler); a refused connection never gets one."""

    __slots__ = ("_inner", "_limit")

    def __init__(self, limit: ConnectionLimit):
        self._limit = limit
        self._inner: asyncio.Protocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        limit = self._limit
        if limit.open >= limit.max_connections:
            metrics.refused_connections_total.inc()
            limit.refused_log.add({"refused": 1})
            transport.abort()
            return
        limit.open += 1
        metrics.connections.inc()
        self._inner = limit.handler_factory()
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is None:
            return
        self._limit.open -= 1
        metrics.connections.dec()
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


def run_ingest(settings: IngestSettings, worker_index: int | None = None) -> int:
    """`logship ingest`: one server process, or a supervisor of `workers` processes."""
    if worker_index is not None or settings.workers == 1:
        asyncio.run(
            serve(settings, worker_index=worker_index or 0, reuse_port=worker_index is not None)
        )
        return 0
    return _supervise(settings)


def _supervise(settings: IngestSettings) -> int:
    """Start N workers on one port (SO_REUSEPORT) with a shared metrics directory; restart a
    worker that dies (its spool is recovered and uploaded by its successor); on SIGTERM/SIGINT
    forward the signal and wait for every worker to drain."""
    host, port = parse_addr(settings.http_addr)
    holder = None
    if port == 0:  # pick one free port for all workers: bind (never listen) with SO_REUSEPORT
        holder = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind((host, 0))
        port = holder.getsockname()[1]
    metrics_dir = tempfile.mkdtemp(prefix="logship-metrics-")
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=metrics_dir,
               LOGSHIP_HTTP_ADDR=f"{host}:{port}")  # fmt: skip

    def spawn(i: int) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "ingest.cli", "ingest", "--worker-index", str(i)]
        return subprocess.Popen(cmd, env=env)

    procs = [spawn(i) for i in range(settings.workers)]
    log(logger, logging.INFO, "workers started", workers=len(procs), port=port)
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while any(p.poll() is None for p in procs) or not stopping:
        for i, p in enumerate(procs):
            code = p.poll()
            if code is None or stopping:
                continue
            log(logger, logging.ERROR, "worker died; restarting it", worker=i, code=code)
            multiprocess.mark_process_dead(p.pid, metrics_dir)
            procs[i] = spawn(i)
        time.sleep(0.2)
    # A worker that died of the forwarded signal itself got it before `serve` installed its
    # handler (the first thing it does, before any data is taken): nothing was lost.
    codes = [0 if p.wait() in (-signal.SIGTERM, -signal.SIGINT) else p.wait() for p in procs]
    log(logger, logging.INFO, "workers exited", codes=codes)
    if holder is not None:
        holder.close()
    shutil.rmtree(metrics_dir, ignore_errors=True)
    return max((abs(c) for c in codes), default=0)
