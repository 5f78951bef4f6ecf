"""Running the web UI: bind `LOGSHIP_UI_HTTP_ADDR`, serve until told to stop, shut down
gracefully (requests in flight finish, then the warehouse visits' and render threads close)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from aiohttp import web

from ingest.config import parse_addr
from ingest.logs import log
from loader.ui.app import build_app
from loader.ui.config import UiSettings

logger = logging.getLogger("logship.ui")

#: How long requests in flight may take to finish at shutdown.
SHUTDOWN_TIMEOUT_S = 10.0
#: The HTTP server's limits: a request line up to 64 KiB reaches the routes, so an absurd id
#: (10 kB pasted into the search) gets the UI's own 400 page rather than the parser's bare one.
SERVER_KWARGS: dict[str, Any] = {"max_line_size": 64 * 1024}


def url_of(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
    return f"http://{'[' + shown + ']' if ':' in shown else shown}:{port}/"


async def serve_ui(
    settings: UiSettings,
    stop: asyncio.Event,
    on_started: asyncio.Future[str] | None = None,
) -> int:
    """Serve until `stop` is set; `on_started` gets the URL once the port is bound (or the
    error when it cannot be: a port in use, a bad address)."""
    try:
        return await _serve(settings, stop, on_started)
    except Exception as exc:
        if on_started is not None and not on_started.done():
            on_started.set_exception(exc)
        raise
    finally:
        if on_started is not None and not on_started.done():
            on_started.cancel()  # cancelled before it started


async def _serve(
    settings: UiSettings, stop: asyncio.Event, on_started: asyncio.Future[str] | None
) -> int:
    app = build_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           shutdown_timeout=SHUTDOWN_TIMEOUT_S, **SERVER_KWARGS)  # fmt: skip
    await runner.setup()
    try:
        host, port = parse_addr(settings.ui_http_addr)
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        url = url_of(host, bound)
        warehouse = settings.warehouse_url.get_secret_value().partition("://")[0]
        log(logger, logging.INFO, "web UI running", url=url, warehouse=warehouse,
            auth="tokens" if settings.ui_token_list() else "none")  # fmt: skip
        if on_started is not None and not on_started.done():
            on_started.set_result(url)
        await stop.wait()
        return 0
    finally:
        await runner.cleanup()


def run_ui(settings: UiSettings) -> int:
    """`logship ui`: print the URL, serve until SIGTERM or Ctrl-C."""

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        started: asyncio.Future[str] = loop.create_future()
        task = asyncio.create_task(serve_ui(settings, stop, started))
        try:
            url = await started
        except Exception:
            return await task  # raises what stopped it from starting
        print(f"logship ui: {url}  (Ctrl-C to stop)", flush=True)
        return await task

    return asyncio.run(main())
