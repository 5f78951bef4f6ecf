"""`logship dev`: the sink, the loader and the web UI in one process on the embedded defaults (a
local lake directory and DuckDB), the one-command local pipeline of the README's Quick start."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os

from ingest.cli.output import announce
from ingest.config import IngestSettings, load_settings
from ingest.lake import open_lake
from ingest.logs import setup_logging
from ingest.server import serve
from loader import metrics
from loader.cycle import run_forever
from loader.server import build_loader, http_server, stop_event
from loader.ui import UiSettings, serve_ui


def run(args: argparse.Namespace) -> int:
    # The embedded defaults: a local lake directory and DuckDB, objects every few seconds.
    ingest = load_settings(IngestSettings, **_unset(object_max_age_s=5.0))
    loader = load_settings(UiSettings, **_unset(load_interval_s=2.0))  # the loader's and the UI's
    setup_logging(ingest.log_level)
    return asyncio.run(serve_dev(ingest, loader))


def _unset(**defaults: object) -> dict[str, object]:
    """`defaults` for the fields the environment does not set."""
    return {k: v for k, v in defaults.items() if f"LOGSHIP_{k.upper()}" not in os.environ}


def _redacted(url: str) -> str:
    """A warehouse URL without its credentials, for display."""
    head, sep, rest = url.partition("://")
    return f"{head}{sep}***@{rest.rpartition('@')[2]}" if "@" in rest else url


def banner(lines: list[str]) -> str:
    """What `logship dev` serves, one line each, then how to stop it."""
    return "logship dev: " + "\n  ".join([*lines, "Ctrl-C to stop"])


async def serve_dev(ingest_settings: IngestSettings, loader_settings: UiSettings) -> int:
    """Ingest, loader and web UI in one process, until SIGTERM/SIGINT; then the spool's last
    objects are loaded too, so everything acknowledged is in the warehouse when it exits."""
    stop = stop_event()
    metrics.init_labels()
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    ingest_task = asyncio.create_task(serve(ingest_settings, stop=stop, on_started=started))
    ui_started: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    ui_task = asyncio.create_task(serve_ui(loader_settings, stop, ui_started))
    lake = open_lake(loader_settings.lake_url)
    await lake.start()
    loader = build_loader(loader_settings, lake)
    try:
        port, ui_url = await started, await ui_started
        async with http_server(loader_settings.loader_http_addr) as lport:
            announce(banner([
                f"ingest on http://127.0.0.1:{port}/v1/logs, "
                f"loader metrics on http://127.0.0.1:{lport}/metrics",
                f"lake: {lake.url}",
                f"warehouse: {_redacted(loader_settings.warehouse_url.get_secret_value())}",
                f"web UI on {ui_url}",
            ]))  # fmt: skip
            await run_forever(loader, interval_s=loader_settings.load_interval_s,
                              backoff_max_s=loader_settings.retry_backoff_max_s, stop=stop)  # fmt: skip
        await ingest_task
        await ui_task
        # Ingest flushed its spool on the way out: load that last batch too.
        with contextlib.suppress(Exception):
            while (await loader.cycle()).more:
                pass
        return 0
    finally:
        await asyncio.to_thread(loader.warehouse.close)
        await lake.close()
