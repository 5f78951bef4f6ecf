"""The web UI's aiohttp application: wires settings, the warehouse reader, the routes and one
middleware — it owns nothing else.

The middleware, in order: start the clock; check the token (unless the path is open); run the
route; turn a :class:`~loader.ui.problems.Problem` (or aiohttp's own 404/405) into its page
or JSON answer; put the security headers on every answer; count it under its route template.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from ingest.logs import log, register_secrets
from ingest.registry import load_registry
from loader import analytics
from loader.ui import metrics, pages, routes, security
from loader.ui.config import UiSettings
from loader.ui.fmt import zone
from loader.ui.problems import METHOD_NOT_ALLOWED, NOT_FOUND, UNAUTHORIZED, Kind, Problem
from loader.ui.reader import Reader

logger = logging.getLogger("logship.ui")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(settings: UiSettings) -> web.Application:
    tokens = settings.ui_token_list()
    register_secrets(*tokens)
    app = web.Application(middlewares=[_guard(tokens)])
    app[routes.SETTINGS] = settings
    app[routes.CTX] = pages.Ctx(zone(settings.timezone), routes.LANE_TITLES,
                                tuple(analytics.LANES))  # fmt: skip
    app.cleanup_ctx.append(_reader)
    routes.add_routes(app)
    return app


async def _reader(app: web.Application) -> AsyncIterator[None]:
    """The warehouse reader lives as long as the app; its threads and kept connections close
    with it."""
    settings = app[routes.SETTINGS]
    reader = Reader(settings, load_registry(settings.registry_path).entities)
    app[routes.READER] = reader
    try:
        yield
    finally:
        reader.close()


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else metrics.UNMATCHED


def _guard(tokens: list[str]) -> Middleware:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            if (
                tokens
                and not security.is_open(request.path)
                and not security.authorized(request.headers.get("Authorization"), tokens)
            ):
                raise Problem(UNAUTHORIZED, "This UI needs a token: sign in with any user name "
                                            "and the token as password, or send "
                                            "`Authorization: Bearer <token>`.")  # fmt: skip
            resp = await handler(request)
        except Problem as p:
            resp = _problem(request, p)
        except web.HTTPException as exc:
            resp = _problem(request, _from_http(exc))
        except Exception:
            logger.exception("unexpected error in a UI route")  # a bug: never bad input
            resp = _problem(request, Problem(Kind(500, "internal", "Something went wrong"),
                                             "The UI's log has the details."))  # fmt: skip
        security.apply_headers(resp)
        route = _route_of(request)
        seconds = time.perf_counter() - started
        metrics.observe(route, resp.status, seconds)
        log(logger, logging.DEBUG, "ui request", route=route, status=resp.status,
            duration_ms=round(seconds * 1000, 1))  # fmt: skip
        return resp

    return guard


def _from_http(exc: web.HTTPException) -> Problem:
    if exc.status == 404:
        return Problem(NOT_FOUND, "There is no page at this address.")
    if exc.status == 405:
        return Problem(METHOD_NOT_ALLOWED, "This address only answers GET.")
    return Problem(Kind(exc.status, "http", exc.reason or "Request refused"),
                   "The request could not be served.")  # fmt: skip


def _problem(request: web.Request, p: Problem) -> web.Response:
    if request.path.startswith("/api/"):
        resp = web.Response(text=routes.dumps({"error": p.kind.code, "detail": p.detail}),
                            status=p.kind.status, content_type="application/json",
                            charset="utf-8")  # fmt: skip
    else:
        page = pages.problem_page(request.app[routes.CTX], p)
        resp = web.Response(text=page, status=p.kind.status, content_type="text/html",
                            charset="utf-8")  # fmt: skip
    if p.kind.retry_after_s is not None:
        resp.headers["Retry-After"] = str(p.kind.retry_after_s)
    if p.kind is UNAUTHORIZED:
        resp.headers["WWW-Authenticate"] = security.CHALLENGE
    return resp
