"""The web UI's typed application state (`web.AppKey`): set up by :mod:`loader.ui.app`, read
by the routes and the middleware."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from loader.ui.config import UiSettings
from loader.ui.pages import Ctx
from loader.ui.visits import WarehouseVisits

SETTINGS = web.AppKey("settings", UiSettings)
#: The warehouse, one read-only visit per request.
VISITS = web.AppKey("visits", WarehouseVisits)
#: What every page needs besides its data (the time zone, the lanes).
CTX = web.AppKey("ctx", Ctx)
#: Threads that render pages and encode downloads, off the event loop.
RENDER = web.AppKey("render", ThreadPoolExecutor)
