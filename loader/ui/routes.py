"""The UI's routes: parse the request (:mod:`loader.ui.inputs`), ask the analyses
(:mod:`loader.analytics` — the same functions the CLI uses, so a page and `logship … --json`
cannot disagree), answer with a page (:mod:`loader.ui.pages`) or the same data as JSON.

| route | answer |
|---|---|
| `GET /` | search, and the deliveries of a day (`?date=`, `?window_min=`) |
| `GET /search?q=` | 303 to the delivery, else the robot's latest day; 404 page if neither |
| `GET /deliveries/{delivery_id}` | the delivery session (`?date=`: its day, searched first) |
| `GET /deliveries/{delivery_id}/events.json` | download: exactly `logship session ID --json` |
| `GET /deliveries/{delivery_id}/events.csv` | download: the event table as CSV |
| `GET /robots/{robot_id}?date=` | a robot's day (default: its latest day) |
| `GET /supply-hours?date=` or `?from=&to=` (`&reason=`) | supply hours, downtime by reason |
| `GET /funnel?date=` | per stage count, p50, p90 and distribution |
| `GET /api/deliveries?date=&window_min=` | `{date, window_min, deliveries: […]}` |
| `GET /api/deliveries/{delivery_id}` | exactly `logship session ID --json` |
| `GET /api/robots/{robot_id}?date=` | the robot's day |
| `GET /api/supply-hours?date=` or `?from=&to=` (`&robot=`) | exactly `logship supply-hours --date D --json` |
| `GET /api/funnel?date=` | exactly `logship funnel --date D --json` |
| `GET /healthz`, `GET /metrics` | liveness; `logship_ui_*` metrics |

Every query of a request runs in one read-only visit of the warehouse (:mod:`loader.ui.reader`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar

from aiohttp import web

from loader import analytics
from loader.ui import assets, metrics, pages
from loader.ui.config import UiSettings
from loader.ui.html import query, seg
from loader.ui.inputs import Days, parse_date, parse_days, parse_id, parse_text, parse_window_min
from loader.ui.problems import BAD_INPUT, NOT_FOUND, Problem
from loader.ui.reader import Reader
from loader.warehouse import Warehouse

SETTINGS = web.AppKey("settings", UiSettings)
READER = web.AppKey("reader", Reader)
CTX = web.AppKey("ctx", pages.Ctx)

T = TypeVar("T")

#: Lane titles shown on the timeline and in the event table.
LANE_TITLES = {"dispatch": "Dispatch", "robot": "Robot / fleet", "pilot": "Pilot",
               "server": "Server", "tracker": "Customer tracker", "other": "Other"}  # fmt: skip
#: Columns of the CSV download, in order (properties as one JSON column).
CSV_COLUMNS = ("occurred_at", "offset_s", "gap_s", "lane", "service", "host", "robot_id",
               "delivery_id", "event_name", "event_id", "received_at", "properties")  # fmt: skip


async def _ask(request: web.Request, fn: Callable[[analytics.Reader], T]) -> T:
    """`fn` with the analyses' reader over one read-only visit of the warehouse. A ValueError
    of the analyses (a bad argument that got past the inputs) is a 400."""
    cfg = request.app[SETTINGS].analytics()

    def visit(wh: Warehouse) -> T:
        try:
            return fn(analytics.Reader.of(wh, cfg))
        except ValueError as exc:
            raise Problem(BAD_INPUT, str(exc)[:300]) from None

    return await request.app[READER].run(visit)


def _html(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


def dumps(data: Any) -> str:
    """JSON exactly as the CLI's `--json` prints it (indented, ASCII, a final newline)."""
    return json.dumps(data, indent=2) + "\n"


def _json(data: Any, *, filename: str | None = None) -> web.Response:
    resp = web.Response(text=dumps(data), content_type="application/json", charset="utf-8")
    if filename:
        resp.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return resp


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def _filename(ident: str, ext: str) -> str:
    """A download's file name: the id's safe characters only (it goes into a header)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in ident)[:100] + ext


# ------------------------------------------------------------------------------- pages


async def index(request: web.Request) -> web.Response:
    window = _window(request)
    chosen = parse_date(request.query.get("date"))

    def fetch(r: analytics.Reader) -> tuple[date | None, list[dict[str, Any]]]:
        day = chosen or analytics.latest_day(r)
        return day, ([] if day is None else analytics.deliveries_of_day(r, day, window))

    day, rows = await _ask(request, fetch)
    return _html(pages.index(request.app[CTX], day, window, rows))


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
    day = _day_hint(request)
    data = await _ask(request, lambda r: analytics.delivery(r, did, day))
    if data is None:
        raise _no_delivery(did)
    return _html(pages.delivery(request.app[CTX], data))


async def delivery_json(request: web.Request) -> web.Response:
    did = parse_id(request.match_info["delivery_id"], "delivery id")
    day = _day_hint(request)
    events = await _ask(request, lambda r: analytics.session(r, did, day))
    if events is None:
        raise _no_delivery(did)
    return _json(events, filename=_filename(did, ".json"))


async def delivery_csv(request: web.Request) -> web.Response:
    did = parse_id(request.match_info["delivery_id"], "delivery id")
    day = _day_hint(request)
    data = await _ask(request, lambda r: analytics.delivery(r, did, day))
    if data is None:
        raise _no_delivery(did)
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(CSV_COLUMNS)
    for e, a in zip(data["events"], data["annotations"], strict=False):
        row = {**e, "offset_s": a.get("offset_s"), "lane": a.get("lane"),
               "properties": json.dumps(e.get("properties") or {})}  # fmt: skip
        w.writerow([_csv_cell(row.get(c)) for c in CSV_COLUMNS])
    resp = web.Response(text=out.getvalue(), content_type="text/csv", charset="utf-8")
    resp.headers["Content-Disposition"] = f'attachment; filename="{_filename(did, ".csv")}"'
    return resp


def _csv_cell(value: Any) -> str:
    """A CSV cell that a spreadsheet shows as text: a value starting with `= + - @` (or a tab
    or CR) would be run as a formula, so it gets a leading `'`."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _day_hint(request: web.Request) -> date | None:
    """`?date=` on a delivery's routes: the day it is on, searched first (any day gives the
    same page; the deliveries of a day, a robot's day and the downtime intervals know it)."""
    return parse_date(request.query.get("date"))


def _no_delivery(did: str) -> Problem:
    return Problem(NOT_FOUND, f"No delivery with the id “{did}” is in the warehouse. Check the "
                              "id, or search for a robot id instead.", search=did)  # fmt: skip


async def robot(request: web.Request) -> web.Response:
    return _html(pages.robot(request.app[CTX], await _robot_day(request)))


async def _robot_day(request: web.Request) -> dict[str, Any]:
    rid = parse_id(request.match_info["robot_id"], "robot id")
    chosen = parse_date(request.query.get("date"))

    def fetch(r: analytics.Reader) -> dict[str, Any] | None:
        day = chosen
        if day is None:
            found = analytics.find(r, rid)
            if not found or found.get("kind") != "robot":
                return None
            day = date.fromisoformat(found["date"])
        return analytics.robot_day(r, rid, day)

    data = await _ask(request, fetch)
    if data is None:
        when = f" on {chosen.isoformat()}" if chosen else ""
        raise Problem(NOT_FOUND, f"Robot “{rid}” has no events{when} in the warehouse.",
                      search=rid)  # fmt: skip
    return data


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
    return _html(pages.supply(request.app[CTX], days, items, totals, reason, intervals))


async def funnel(request: web.Request) -> web.Response:
    def fetch(r: analytics.Reader) -> tuple[Days | None, dict[str, Any]]:
        days = _days(request, r)
        if days is None:
            return None, {"deliveries": [], "days": []}
        return days, analytics.funnel(r, days.first, days.last)

    days, result = await _ask(request, fetch)
    stages = analytics.funnel_stages(result) if days is not None else []
    return _html(pages.funnel(request.app[CTX], days, result, stages))


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

    return _json(await _ask(request, fetch))


async def api_delivery(request: web.Request) -> web.Response:
    did = parse_id(request.match_info["delivery_id"], "delivery id")
    day = _day_hint(request)
    events = await _ask(request, lambda r: analytics.session(r, did, day))
    if events is None:
        raise _no_delivery(did)
    return _json(events)


async def api_robot(request: web.Request) -> web.Response:
    return _json(await _robot_day(request))


async def api_supply(request: web.Request) -> web.Response:
    robot_id = request.query.get("robot")
    if robot_id is not None:
        robot_id = parse_id(robot_id, "robot id")

    def fetch(r: analytics.Reader) -> list[dict[str, Any]]:
        days = _days(request, r)
        return [] if days is None else analytics.supply_hours(r, days.first, days.last, robot_id)

    return _json(await _ask(request, fetch))


async def api_funnel(request: web.Request) -> web.Response:
    def fetch(r: analytics.Reader) -> dict[str, Any]:
        days = _days(request, r)
        return ({"deliveries": [], "days": []} if days is None
                else analytics.funnel(r, days.first, days.last))  # fmt: skip

    return _json(await _ask(request, fetch))


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
