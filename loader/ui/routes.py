"""The UI's routes: parse the request (:mod:`loader.ui.inputs`), ask the analyses
(:mod:`loader.analytics` — the same functions the CLI uses, so a page and `logship … --json`
cannot disagree), answer with a page (:mod:`loader.ui.pages`) or the same data as JSON.

| route | answer |
|---|---|
| `GET /` | search, and the deliveries of a day (`?date=`, `?window_min=`) |
| `GET /search?q=` | 303 to the delivery, else the robot's latest day; 404 page if neither |
| `GET /deliveries/{delivery_id}` | the delivery session, its first `pages.MAX_EVENTS` events |
| `GET /deliveries/{delivery_id}/events.json` | download, streamed: exactly `logship session ID --json` (422 over `ui_max_download_events`) |
| `GET /deliveries/{delivery_id}/events.csv` | download: the event table as CSV (the same bound) |
| `GET /robots/{robot_id}?date=` | a robot's day (default: its latest day), the nearest days with data |
| `GET /supply-hours?date=` or `?from=&to=` (`&reason=`) | supply hours, downtime by reason |
| `GET /funnel?date=` | per stage count, p50, p90 and distribution |
| `GET /api/deliveries?date=&window_min=` | `{date, window_min, deliveries: […]}` |
| `GET /api/deliveries/{delivery_id}` | exactly `logship session ID --json` (the downloads' bound) |
| `GET /api/robots/{robot_id}?date=` | the robot's day |
| `GET /api/supply-hours?date=` or `?from=&to=` (`&robot=`) | exactly `logship supply-hours --date D --json` |
| `GET /api/funnel?date=` | exactly `logship funnel --date D --json` |
| `GET /healthz`, `GET /metrics` | liveness; `logship_ui_*` metrics |

Every query of a request runs in one read-only visit of the warehouse (:mod:`loader.ui.visits`);
pages are rendered and downloads encoded off the event loop (:data:`~loader.ui.state.RENDER`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar

from aiohttp import web

from loader import analytics
from loader.ui import assets, metrics, pages
from loader.ui.downloads import filename, json_response, send_csv, send_json
from loader.ui.html import query, seg
from loader.ui.inputs import Days, parse_date, parse_days, parse_id, parse_text, parse_window_min
from loader.ui.neighbours import nearest_days
from loader.ui.problems import BAD_INPUT, NOT_FOUND, TOO_LARGE, Problem
from loader.ui.state import CTX, RENDER, SETTINGS, VISITS
from loader.warehouse import Warehouse

T = TypeVar("T")


async def _ask(
    request: web.Request, fn: Callable[[analytics.Reader], T], *, max_rows: int | None = None
) -> T:
    """`fn` with the analyses' reader over one read-only visit of the warehouse (each
    statement's rows cut at `max_rows` when given). A ValueError of the analyses (a bad
    argument that got past the inputs) is a 400."""
    cfg = request.app[SETTINGS].analytics()

    def visit(wh: Warehouse) -> T:
        query_fn = functools.partial(wh.query, max_rows=max_rows)
        try:
            return fn(analytics.Reader(query_fn, wh.dialect, wh.schema, cfg))
        except ValueError as exc:
            raise Problem(BAD_INPUT, str(exc)[:300]) from None

    return await request.app[VISITS].run(visit)


async def _page(request: web.Request, render: Callable[..., str], *args: Any) -> web.Response:
    """`render(ctx, *args)` in the render threads — a big page never stalls the event loop
    (in `logship dev` the sink shares it)."""
    loop = asyncio.get_running_loop()
    body = await loop.run_in_executor(request.app[RENDER], render, request.app[CTX], *args)
    return web.Response(text=body, content_type="text/html", charset="utf-8")


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


# ------------------------------------------------------------------------------- pages


async def index(request: web.Request) -> web.Response:
    window = _window(request)
    chosen = parse_date(request.query.get("date"))

    def fetch(r: analytics.Reader) -> tuple[date | None, list[dict[str, Any]]]:
        day = chosen or analytics.latest_day(r)
        return day, ([] if day is None else analytics.deliveries_of_day(r, day, window))

    day, rows = await _ask(request, fetch)
    return await _page(request, pages.index, day, window, rows)


async def search(request: web.Request) -> web.Response:
    text = request.query.get("q", "").strip()
    q = parse_id(text, "delivery or robot id")
    found = await _ask(request, lambda r: analytics.find(r, q))
    if found is None:
        raise Problem(NOT_FOUND, f"There is no delivery and no robot with the id “{q}” in the "
                                 "warehouse.", search=q)  # fmt: skip
    if found.get("kind") == "delivery":
        return _see_other(f"/deliveries/{seg(found['delivery_id'])}")
    return _see_other(f"/robots/{seg(found['robot_id'])}{query(date=found.get('date'))}")


async def delivery(request: web.Request) -> web.Response:
    did = parse_id(request.match_info["delivery_id"], "delivery id")
    # The page shows the first MAX_EVENTS events (and a summary of all): no statement
    # returns more rows than one after that.
    data = await _ask(request, lambda r: analytics.delivery(r, did, pages.MAX_EVENTS),
                      max_rows=pages.MAX_EVENTS + 1)  # fmt: skip
    if data is None:
        raise _no_delivery(did)
    return await _page(request, pages.delivery, data)


async def delivery_json(request: web.Request) -> web.StreamResponse:
    did = parse_id(request.match_info["delivery_id"], "delivery id")
    events = await _session(request, did)
    return await send_json(request, events, name=filename(did, ".json"))


async def delivery_csv(request: web.Request) -> web.StreamResponse:
    did = parse_id(request.match_info["delivery_id"], "delivery id")
    events = await _session(request, did)
    loop = asyncio.get_running_loop()  # a long session's annotations: off the event loop
    notes = await loop.run_in_executor(request.app[RENDER], analytics.annotate, events)
    return await send_csv(request, events, notes, name=filename(did, ".csv"))


async def _session(request: web.Request, did: str) -> list[dict[str, Any]]:
    """The whole session for a download: the statement stops one row after the cap (in SQL:
    a driver may read every row a statement returns), and a session longer than the cap is
    refused rather than cut (a download is all of it)."""
    cap = request.app[SETTINGS].ui_max_download_events
    events = await _ask(request, lambda r: analytics.session(r, did, limit=cap + 1))
    if events is None:
        raise _no_delivery(did)
    _check_size(did, events, cap)
    return events


def _check_size(did: str, events: list[dict[str, Any]], cap: int) -> None:
    if len(events) > cap:
        raise Problem(TOO_LARGE, f"The delivery “{did}” has more than {cap:,} events, more than "
                                 "this server builds into one download "
                                 "(LOGSHIP_UI_MAX_DOWNLOAD_EVENTS). Use `logship session ID "
                                 "--json`, or the warehouse's delivery_sessions view.",
                      search=did)  # fmt: skip


def _no_delivery(did: str) -> Problem:
    return Problem(NOT_FOUND, f"No delivery with the id “{did}” is in the warehouse. Check the "
                              "id, or search for a robot id instead.", search=did)  # fmt: skip


async def robot(request: web.Request) -> web.Response:
    data, nearby = await _robot_day(request, with_nearby=True)
    return await _page(request, pages.robot, data, nearby)


async def _robot_day(
    request: web.Request, *, with_nearby: bool = False
) -> tuple[dict[str, Any], tuple[date | None, date | None]]:
    """The robot's day (`?date=`, default its latest) and, for the page, the nearest days
    before and after it with an event of the robot."""
    rid = parse_id(request.match_info["robot_id"], "robot id")
    chosen = parse_date(request.query.get("date"))

    def fetch(r: analytics.Reader) -> tuple[dict[str, Any] | None, Any]:
        day = chosen
        if day is None:
            found = analytics.find(r, rid)
            if not found or found.get("kind") != "robot":
                return None, (None, None)
            day = date.fromisoformat(found["date"])
        data = analytics.robot_day(r, rid, day)
        nearby = nearest_days(r, rid, day) if data is not None and with_nearby else (None, None)
        return data, nearby

    data, nearby = await _ask(request, fetch)
    if data is None:
        when = f" on {chosen.isoformat()}" if chosen else ""
        raise Problem(NOT_FOUND, f"Robot “{rid}” has no events{when} in the warehouse.",
                      search=rid)  # fmt: skip
    return data, nearby


async def supply(request: web.Request) -> web.Response:
    reason = request.query.get("reason")
    if reason is not None:
        reason = parse_text(reason, "downtime reason")

    def fetch(r: analytics.Reader) -> tuple[Days | None, list[dict[str, Any]], Any]:
        days = _days(request, r)
        if days is None:
            return None, [], None
        items = analytics.supply_hours(r, days.first, days.last)
        intervals = (analytics.downtime_intervals(r, days.first, days.last, reason)
                     if reason is not None else None)  # fmt: skip
        return days, items, intervals

    days, items, intervals = await _ask(request, fetch)
    totals = analytics.supply_totals(items)
    return await _page(request, pages.supply, days, items, totals, reason, intervals)


async def funnel(request: web.Request) -> web.Response:
    def fetch(r: analytics.Reader) -> tuple[Days | None, dict[str, Any]]:
        days = _days(request, r)
        if days is None:
            return None, {"deliveries": [], "days": []}
        return days, analytics.funnel(r, days.first, days.last)

    days, result = await _ask(request, fetch)
    stages = analytics.funnel_stages(result) if days is not None else []
    return await _page(request, pages.funnel, days, result, stages)


def _days(request: web.Request, r: analytics.Reader) -> Days | None:
    """The days asked for; without any, the latest day with data (a query, so it runs inside
    the request's visit of the warehouse)."""
    asked = parse_days(dict(request.query), None)
    if asked is not None:
        return asked
    latest = analytics.latest_day(r)
    return None if latest is None else Days(latest, latest)


def _window(request: web.Request) -> int:
    default = request.app[SETTINGS].ui_flag_window_min
    return parse_window_min(request.query.get("window_min"), default)


# ------------------------------------------------------------------------------ JSON API


async def api_deliveries(request: web.Request) -> web.Response:
    window = _window(request)
    chosen = parse_date(request.query.get("date"))

    def fetch(r: analytics.Reader) -> dict[str, Any]:
        day = chosen or analytics.latest_day(r)
        rows = [] if day is None else analytics.deliveries_of_day(r, day, window)
        return {"date": day and day.isoformat(), "window_min": window, "deliveries": rows}

    return json_response(await _ask(request, fetch))


async def api_delivery(request: web.Request) -> web.StreamResponse:
    did = parse_id(request.match_info["delivery_id"], "delivery id")
    return await send_json(request, await _session(request, did))


async def api_robot(request: web.Request) -> web.Response:
    return json_response((await _robot_day(request))[0])


async def api_supply(request: web.Request) -> web.Response:
    robot_id = request.query.get("robot")
    if robot_id is not None:
        robot_id = parse_id(robot_id, "robot id")

    def fetch(r: analytics.Reader) -> list[dict[str, Any]]:
        days = _days(request, r)
        return [] if days is None else analytics.supply_hours(r, days.first, days.last, robot_id)

    return json_response(await _ask(request, fetch))


async def api_funnel(request: web.Request) -> web.Response:
    def fetch(r: analytics.Reader) -> dict[str, Any]:
        days = _days(request, r)
        return ({"deliveries": [], "days": []} if days is None
                else analytics.funnel(r, days.first, days.last))  # fmt: skip

    return json_response(await _ask(request, fetch))


# --------------------------------------------------------------------- health, metrics, files


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process serves requests (the warehouse is not asked: a busy or absent
    warehouse is a page's 503, not a reason to restart the UI)."""
    return web.json_response({"status": "ok"})


async def metrics_route(request: web.Request) -> web.Response:
    body, content_type = metrics.exposition()
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = content_type
    return resp


async def static(request: web.Request) -> web.Response:
    asset = assets.BY_URL.get(request.path)
    if asset is None:
        raise Problem(NOT_FOUND, "There is no such file.")
    resp = web.Response(body=asset.body)
    resp.headers["Content-Type"] = asset.content_type
    resp.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return resp


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", index)
    r.add_get("/search", search)
    r.add_get("/deliveries/{delivery_id}", delivery)
    r.add_get("/deliveries/{delivery_id}/events.json", delivery_json)
    r.add_get("/deliveries/{delivery_id}/events.csv", delivery_csv)
    r.add_get("/robots/{robot_id}", robot)
    r.add_get("/supply-hours", supply)
    r.add_get("/funnel", funnel)
    r.add_get("/api/deliveries", api_deliveries)
    r.add_get("/api/deliveries/{delivery_id}", api_delivery)
    r.add_get("/api/robots/{robot_id}", api_robot)
    r.add_get("/api/supply-hours", api_supply)
    r.add_get("/api/funnel", api_funnel)
    r.add_get("/healthz", healthz)
    r.add_get("/metrics", metrics_route)
    r.add_get("/static/{name}", static)
