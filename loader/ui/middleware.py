"""What every request goes through, around its route: the token check, the answer for a
:class:`~loader.ui.problems.Problem` (or aiohttp's own 404/405), the security headers, the
metrics.

The middleware, in order: start the clock; check the token (unless the path is open); run the
route; turn a Problem into its page or JSON answer (an unexpected exception is logged and is a
500 page); count the answer under its route template. The security headers are put on every
answer as it is prepared (:func:`secure_headers`, the app's `on_response_prepare`), so a
streamed download carries them too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from ingest.logs import log
from loader.ui import metrics, pages, security
from loader.ui.downloads import dumps
from loader.ui.problems import METHOD_NOT_ALLOWED, NOT_FOUND, UNAUTHORIZED, Kind, Problem
from loader.ui.state import CTX

logger = logging.getLogger("logship.ui")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

INTERNAL = Kind(500, "internal", "Something went wrong")


def guard(tokens: list[str]) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
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
            resp = answer(request, p)
        except web.HTTPException as exc:
            resp = answer(request, _from_http(exc))
        except ConnectionResetError:
            raise  # the client left during a streamed download: nothing to answer
        except Exception:
            logger.exception("unexpected error in a UI route")  # a bug: never bad input
            resp = answer(request, Problem(INTERNAL, "The UI's log has the details."))
        route = _route_of(request)
        seconds = time.perf_counter() - started
        metrics.observe(route, resp.status, seconds)
        log(logger, logging.DEBUG, "ui request", route=route, status=resp.status,
            duration_ms=round(seconds * 1000, 1))  # fmt: skip
        return resp

    return middleware


async def secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: the security headers on every answer, streamed ones too."""
    security.apply_headers(response)


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else metrics.UNMATCHED


def _from_http(exc: web.HTTPException) -> Problem:
    if exc.status == 404:
        return Problem(NOT_FOUND, "There is no page at this address.")
    if exc.status == 405:
        return Problem(METHOD_NOT_ALLOWED, "This address only answers GET.")
    return Problem(Kind(exc.status, "http", exc.reason or "Request refused"),
                   "The request could not be served.")  # fmt: skip


def answer(request: web.Request, p: Problem) -> web.Response:
    """The page (or, under `/api/`, the JSON object) for `p`, with Retry-After and the sign-in
    challenge where they belong."""
    if request.path.startswith("/api/"):
        resp = web.Response(text=dumps({"error": p.kind.code, "detail": p.detail}),
                            status=p.kind.status, content_type="application/json",
                            charset="utf-8")  # fmt: skip
    else:
        page = pages.problem_page(request.app[CTX], p)
        resp = web.Response(text=page, status=p.kind.status, content_type="text/html",
                            charset="utf-8")  # fmt: skip
    if p.kind.retry_after_s is not None:
        resp.headers["Retry-After"] = str(p.kind.retry_after_s)
    if p.kind is UNAUTHORIZED:
        resp.headers["WWW-Authenticate"] = security.CHALLENGE
    return resp
