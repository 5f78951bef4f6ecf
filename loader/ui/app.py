"""The web UI's aiohttp application: wires the settings, the warehouse visits, the render
threads, the middleware and the routes — it owns nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from ingest.logs import register_secrets
from ingest.registry import load_registry
from loader import analytics
from loader.ui import middleware, pages, routes
from loader.ui.config import UiSettings
from loader.ui.fmt import zone
from loader.ui.state import CTX, RENDER, SETTINGS, VISITS
from loader.ui.visits import WarehouseVisits

#: Threads rendering pages and encoding downloads at once.
RENDER_THREADS = 2


def build_app(settings: UiSettings) -> web.Application:
    tokens = settings.ui_token_list()
    register_secrets(*tokens)
    app = web.Application(middlewares=[middleware.guard(tokens)])
    app[SETTINGS] = settings
    app[CTX] = pages.Ctx(zone(settings.timezone), pages.LANE_TITLES, tuple(analytics.LANES))
    app.on_response_prepare.append(middleware.secure_headers)
    app.cleanup_ctx.append(_threads)
    routes.add_routes(app)
    return app


async def _threads(app: web.Application) -> AsyncIterator[None]:
    """The warehouse visits and the render threads live as long as the app; their threads and
    kept connections close with it."""
    settings = app[SETTINGS]
    visits = WarehouseVisits(settings, load_registry(settings.registry_path).entities)
    app[VISITS] = visits
    app[RENDER] = ThreadPoolExecutor(max_workers=RENDER_THREADS,
                                     thread_name_prefix="logship-ui-render")  # fmt: skip
    try:
        yield
    finally:
        app[RENDER].shutdown(wait=True, cancel_futures=True)
        visits.close()
