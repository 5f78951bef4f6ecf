"""Running the loader: the cycle loop plus /healthz and /metrics on `LOGSHIP_LOADER_HTTP_ADDR`.

:func:`build_loader` wires the settings into a :class:`~loader.cycle.Loader`: the registry's
entities, the warehouse backend, and the analyses' views it creates with its schema."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from functools import partial

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ingest.config import parse_addr
from ingest.lake import Lake, open_lake
from ingest.logs import log
from ingest.registry import load_registry
from loader import metrics
from loader.analytics import create_views
from loader.config import LoaderSettings
from loader.cycle import Loader, run_forever
from loader.errors import classify
from loader.warehouse import open_warehouse

logger = logging.getLogger("logship.loader")


def build_loader(settings: LoaderSettings, lake: Lake) -> Loader:
    registry = load_registry(settings.registry_path)
    url = settings.warehouse_url.get_secret_value()
    if url.startswith("redshift://") and not settings.lake_url.startswith("s3://"):
        raise ValueError("a Redshift warehouse COPYs from S3: LOGSHIP_LAKE_URL must be s3://…")
    warehouse = open_warehouse(
        url,
        **settings.warehouse_options(),
        entities=registry.entities,
        views=partial(create_views, cfg=settings.analytics()),
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
    resp = web.Response(body=generate_latest(metrics.REGISTRY))
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


def stop_event() -> asyncio.Event:
    """Set on SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def serve_loader(settings: LoaderSettings, *, once: bool = False) -> int:
    stop = stop_event()
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
                warehouse=loader.warehouse.dialect.name)  # fmt: skip
            await run_forever(loader, interval_s=settings.load_interval_s,
                              backoff_max_s=settings.retry_backoff_max_s, stop=stop)  # fmt: skip
        return 0
    finally:
        await asyncio.to_thread(loader.warehouse.close)
        await lake.close()


def run_loader(settings: LoaderSettings, *, once: bool = False) -> int:
    return asyncio.run(serve_loader(settings, once=once))
