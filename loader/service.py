"""Running the loader: the cycle loop plus /healthz and /metrics on `LOGSHIP_LOADER_HTTP_ADDR`,
and `logship dev` (ingest and loader in one process on the embedded defaults)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from ingest.config import IngestSettings, parse_addr
from ingest.lake import Lake, open_lake
from ingest.logs import log
from ingest.registry import load_registry
from loader import metrics
from loader.config import LoaderSettings
from loader.core import Loader, run_forever
from loader.errors import classify
from loader.warehouse import open_warehouse

logger = logging.getLogger("logship.loader")


def _redacted(url: str) -> str:
    """A warehouse URL without its credentials, for display."""
    head, sep, rest = url.partition("://")
    return f"{head}{sep}***@{rest.rpartition('@')[2]}" if "@" in rest else url


def build_loader(settings: LoaderSettings, lake: Lake) -> Loader:
    registry = load_registry(settings.registry_path)
    url = settings.warehouse_url.get_secret_value()
    if url.startswith("redshift://") and not settings.lake_url.startswith("s3://"):
        raise ValueError("a Redshift warehouse COPYs from S3: LOGSHIP_LAKE_URL must be s3://…")
    warehouse = open_warehouse(
        url,
        schema=settings.warehouse_schema,
        entities=registry.entities,
        dedupe_window_s=settings.dedupe_window_s,
        iam_role=settings.redshift_iam_role,
        statement_timeout_s=settings.statement_timeout_s,
        duckdb_memory_limit=settings.duckdb_memory_limit,
        analytics=settings.analytics(),
        registry=registry,
    )
    return Loader(
        lake,
        warehouse,
        max_objects=settings.load_max_objects,
        max_bytes=settings.load_max_bytes,
        lookback_s=settings.discovery_lookback_s,
        full_scan_interval_s=settings.full_scan_interval_s,
    )


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _metrics(request: web.Request) -> web.Response:
    resp = web.Response(body=generate_latest(REGISTRY))
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


@contextlib.asynccontextmanager
async def http_server(addr: str) -> AsyncIterator[int]:
    """/healthz and /metrics of the loader; yields the bound port."""
    app = web.Application()
    app.router.add_get("/healthz", _health)
    app.router.add_get("/metrics", _metrics)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    host, port = parse_addr(addr)
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield bound
    finally:
        await runner.cleanup()


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def serve_loader(settings: LoaderSettings, *, once: bool = False) -> int:
    stop = _stop_event()
    metrics.init_labels()
    lake = open_lake(settings.lake_url)
    await lake.start()
    loader = build_loader(settings, lake)
    try:
        if once:
            try:
                result = await loader.cycle()
            except Exception as exc:
                kind = classify(exc)
                log(
                    logger,
                    logging.ERROR,
                    "load cycle failed",
                    reason=kind.reason,
                    error=str(exc)[:500],
                )
                return 1
            log(logger, logging.INFO, "load cycle done", pending=result.pending,
                objects=result.loaded_objects, events=result.loaded_events,
                quarantined=result.quarantined, held=result.held)  # fmt: skip
            return 1 if result.held else 0  # a held object has not loaded: not a success
        async with http_server(settings.loader_http_addr) as port:
            log(logger, logging.INFO, "loader running", lake=lake.url, metrics_port=port,
                warehouse="redshift" if "redshift" in type(loader.warehouse).__name__.lower()
                else "duckdb")  # fmt: skip
            await run_forever(loader, interval_s=settings.load_interval_s,
                              backoff_max_s=settings.retry_backoff_max_s, stop=stop)  # fmt: skip
        return 0
    finally:
        await asyncio.to_thread(loader.warehouse.close)
        await lake.close()


def run_loader(settings: LoaderSettings, *, once: bool = False) -> int:
    return asyncio.run(serve_loader(settings, once=once))


async def serve_dev(ingest_settings: IngestSettings, loader_settings: LoaderSettings) -> int:
    """Ingest and loader in one process: the one-command local pipeline."""
    from ingest.server import serve

    stop = _stop_event()
    metrics.init_labels()
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    ingest_task = asyncio.create_task(serve(ingest_settings, stop=stop, on_started=started))
    lake = open_lake(loader_settings.lake_url)
    await lake.start()
    loader = build_loader(loader_settings, lake)
    try:
        port = await started
        async with http_server(loader_settings.loader_http_addr) as lport:
            print(
                f"logship dev: ingest on http://127.0.0.1:{port}/v1/logs, "
                f"loader metrics on http://127.0.0.1:{lport}/metrics\n"
                f"  lake: {lake.url}\n"
                f"  warehouse: {_redacted(loader_settings.warehouse_url.get_secret_value())}\n"
                "  Ctrl-C to stop",
                flush=True,
            )
            await run_forever(loader, interval_s=loader_settings.load_interval_s,
                              backoff_max_s=loader_settings.retry_backoff_max_s, stop=stop)  # fmt: skip
        await ingest_task
        # Ingest flushed its spool on the way out: load that last batch too.
        with contextlib.suppress(Exception):
            while (await loader.cycle()).more:
                pass
        return 0
    finally:
        await asyncio.to_thread(loader.warehouse.close)
        await lake.close()
