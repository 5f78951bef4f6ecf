"""Every route of the web UI on DuckDB and on the Redshift emulator: status, headers, the data
shown, JSON equal to the CLI's `--json`, hostile values escaped, bad input a 400/404 page."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from loader import analytics, reports
from loader.ui import UiSettings
from loader.ui.downloads import CSV_COLUMNS
from loader.ui.fmt import duration
from loader.ui.security import CSP
from tests.loader.ui.conftest import serve
from tests.loader.ui.scenario import BAD_SERVICE, DAY, IMG_REASON, SCRIPT

PAGES = [
    "/",
    f"/?date={DAY}",
    "/deliveries/D-1",
    f"/robots/R-1?date={DAY}",
    "/robots/R-2",
    f"/supply-hours?date={DAY}",
    f"/supply-hours?from={DAY}&to={DAY}&reason=lid_error",
    f"/funnel?date={DAY}",
]
APIS = [
    f"/api/deliveries?date={DAY}",
    "/api/deliveries/D-1",
    f"/api/robots/R-1?date={DAY}",
    f"/api/supply-hours?date={DAY}",
    f"/api/funnel?date={DAY}",
]


def cli(fn: Any, *args: Any) -> str:
    out = io.StringIO()
    assert fn(*args, out=out) == 0
    return out.getvalue()


def assert_secure(resp: Any) -> None:
    assert resp.headers["Content-Security-Policy"] == CSP
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert "aiohttp" not in resp.headers.get("Server", "")


async def test_every_page_and_api_answers(client: Any) -> None:
    for path in PAGES:
        resp = await client.get(path)
        body = await resp.text()
        assert resp.status == 200, (path, body[:500])
        assert resp.content_type == "text/html"
        assert_secure(resp)
        assert body.startswith("<!doctype html>")
        assert (
            "<script>" not in body
            and " style=" not in body
            and "onload=" not in body.replace("onload=alert(2)&gt;", "")
        )
        # Nothing from outside the server: every src/href is a path or a fragment.
        for url in re.findall(r'(?:src|href)="([^"]*)"', body):
            assert url.startswith(("/", "#", "?")), (path, url)
    for path in APIS:
        resp = await client.get(path)
        assert resp.status == 200, (path, await resp.text())
        assert resp.content_type == "application/json"
        assert_secure(resp)
        json.loads(await resp.text())
    for path in ("/healthz", "/metrics"):
        resp = await client.get(path)
        assert resp.status == 200
        assert_secure(resp)


async def test_json_equals_the_cli(client: Any, loaded: UiSettings) -> None:
    """The API and the download are the CLI's `--json` byte for byte."""
    session = cli(reports.session, loaded, "D-1", True)
    assert await (await client.get("/api/deliveries/D-1")).text() == session
    download = await client.get("/deliveries/D-1/events.json")
    assert await download.text() == session
    assert download.headers["Content-Disposition"] == 'attachment; filename="D-1.json"'
    supply = cli(reports.supply_hours, loaded, DAY, None, True)
    assert await (await client.get(f"/api/supply-hours?date={DAY}")).text() == supply
    assert await (await client.get(f"/api/supply-hours?from={DAY}&to={DAY}")).text() == supply
    one = cli(reports.supply_hours, loaded, DAY, "R-2", True)
    assert await (await client.get(f"/api/supply-hours?date={DAY}&robot=R-2")).text() == one
    funnel = cli(reports.funnel, loaded, DAY, True)
    assert await (await client.get(f"/api/funnel?date={DAY}")).text() == funnel


async def test_supply_page_totals_and_headline_equal_the_cli(
    client: Any, loaded: UiSettings
) -> None:
    text = cli(reports.supply_hours, loaded, DAY, None, False)
    headline = text.strip().splitlines()[-1]
    assert headline.endswith("of downtime was due to battery_low")
    items = json.loads(cli(reports.supply_hours, loaded, DAY, None, True))
    usable = sum(i["usable_hours"] for i in items)
    down = sum(sum(i["downtime_hours"].values()) for i in items)
    body = await (await client.get(f"/supply-hours?date={DAY}")).text()
    assert f'<p class="headline">{headline}</p>' in body
    assert f"<dd>{usable:.2f} h</dd>" in body and f"<dd>{down:.2f} h</dd>" in body
    # each bar links to that robot's day
    for robot in ("R-1", "R-2", "R-3"):
        assert f'<a href="/robots/{robot}?date={DAY}" tabindex="-1">' in body
    # choosing a reason lists its intervals and the deliveries they touched
    body = await (await client.get(f"/supply-hours?date={DAY}&reason=lid_error")).text()
    section = body.split('id="intervals"')[1]
    assert "R-1" in section and 'href="/deliveries/D-1"' in section
    assert "10:20:00" in section and "0.33 h" in section


async def test_delivery_page_shows_the_swap_and_every_event_in_order(
    client: Any, loaded: UiSettings
) -> None:
    events = json.loads(cli(reports.session, loaded, "D-1", True))
    body = await (await client.get("/deliveries/D-1")).text()
    assert "<h1>Delivery D-1</h1>" in body
    facts = body.split('<dl class="facts">')[1].split("</dl>")[0]
    assert 'href="/robots/R-1?date=2026-03-05">R-1</a> → <a' in facts and ">swap<" in facts
    assert ">completed<" in facts and "M-1" in facts and "1 h 10 min" in facts
    rows = re.findall(r'<tr id="ev-([^"]+)" class="event', body)
    assert rows == [e["event_id"] for e in events]
    # the error row is marked, the long gap before dropoff_started too
    error = next(e for e in events if e["event_name"] == "robot.error")
    assert f'<tr id="ev-{error["event_id"]}" class="event error"' in body
    assert "No events for <strong>15 min</strong>" in body
    # the timeline: one lane per source, errors drawn red
    svg = body.split('<svg class="chart"')[1].split("</svg>")[0]
    for lane in ("Dispatch", "Robot / fleet", "Pilot", "Server", "Customer tracker"):
        assert f">{lane}<title>" in svg
    assert svg.count('class="ev err"') == 1
    assert "Robot state" in svg and 'class="st-error"' in svg
    # every row expands to its full JSON
    pre = re.findall(r'<pre id="json-(\d+)">', body)
    assert len(pre) == len(events)


async def test_csv_download(client: Any, loaded: UiSettings) -> None:
    resp = await client.get("/deliveries/D-1/events.csv")
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="D-1.csv"'
    assert_secure(resp)  # streamed: the headers are set as it is prepared
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    events = json.loads(cli(reports.session, loaded, "D-1", True))
    assert [r["event_id"] for r in rows] == [e["event_id"] for e in events]
    assert list(rows[0]) == list(CSV_COLUMNS)
    # a service that a spreadsheet would run as a formula starts with ' (BAD_SERVICE is text)
    assert {r["service"] for r in rows} >= {"dispatch", "fleet", BAD_SERVICE}


async def test_index_lists_the_day_failed_and_flagged_first(client: Any) -> None:
    body = await (await client.get("/")).text()  # default: the latest day with data
    assert '<input id="q" name="q" type="search"' in body and "autofocus" in body
    assert '<label for="q">Delivery ID</label>' in body
    order = re.findall(r'<a href="/deliveries/(D-\d)">', body)
    assert order == ["D-2", "D-1", "D-3", "D-4"]
    assert "R-1 lid_error 1 min after pickup arrival" in body
    api = json.loads(await (await client.get(f"/api/deliveries?date={DAY}")).text())
    assert api["date"] == DAY and api["window_min"] == 2
    assert [d["delivery_id"] for d in api["deliveries"]] == order
    # a narrower window drops the flag: the error came 1 minute after arrival
    resp = await client.get(f"/?date={DAY}&window_min=0")
    assert resp.status == 200 and "<strong>0 flagged</strong>" in await resp.text()
    assert 'class="badge flag"' not in await resp.text()


async def test_search_opens_the_delivery_or_the_robots_day(client: Any) -> None:
    resp = await client.get("/search?q=D-1", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/deliveries/D-1"
    resp = await client.get("/search?q=+R-3+", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == f"/robots/R-3?date={DAY}"
    resp = await client.get("/search?q=D-404")
    body = await resp.text()
    assert resp.status == 404 and "D-404" in body and 'value="D-404"' in body


async def test_robot_day(client: Any) -> None:
    body = await (await client.get(f"/robots/R-1?date={DAY}")).text()
    assert "<h1>Robot R-1</h1>" in body
    # R-1 has events on this day only: previous and next say so instead of opening empty days
    pager = body.split('<p class="pager">')[1].split("</p>")[0]
    assert 'data-absent="earlier"' in pager and 'data-absent="later"' in pager
    assert 'rel="prev"' not in pager and 'rel="next"' not in pager
    assert 'href="/deliveries/D-1"' in body
    assert 'href="/deliveries/D-4"' in body
    assert "lid_error" in body and 'class="st-error"' in body
    api = json.loads(await (await client.get(f"/api/robots/R-1?date={DAY}")).text())
    assert api["robot_id"] == "R-1" and api["date"] == DAY
    assert f"<dd>{api['usable_hours']:.2f} h</dd>" in body
    # no date: the robot's latest day
    assert "<h1>Robot R-2</h1>" in await (await client.get("/robots/R-2")).text()
    resp = await client.get("/robots/R-1?date=2020-01-01")
    assert resp.status == 404 and "no events on 2020-01-01" in await resp.text()


async def test_funnel(client: Any, loaded: UiSettings) -> None:
    """Per stage the page's count, p50 and p90 are the CLI's `--json` figures (as durations)."""
    result = json.loads(cli(reports.funnel, loaded, DAY, True))
    body = await (await client.get(f"/funnel?date={DAY}")).text()
    (day,) = result["days"]
    assert f"<strong>{day['deliveries']}</strong> deliveries created" in body
    stages = analytics.funnel_stages(result)
    assert len(stages) == sum(1 for v in day.values() if isinstance(v, dict)) > 0
    for i, st in enumerate(stages):
        assert st["p50"] is not None and st["p90"] is not None
        row = (f'<tr><td><a href="#stage-{i}">{st["stage"]}</a></td>'
               f'<td class="num">{st["count"]}</td><td class="num">{duration(st["p50"])}</td>'
               f'<td class="num">{duration(st["p90"])}</td></tr>')  # fmt: skip
        assert row in body, row
        assert f'<title id="svg-stage-{i}">' in body


async def test_hostile_values_are_escaped(client: Any) -> None:
    body = await (await client.get("/deliveries/D-1")).text()
    assert SCRIPT not in body and "<svg onload" not in body
    assert "&lt;script&gt;alert(\\&quot;x\\&quot;)&lt;/script&gt;" in body  # the JSON, as text
    assert "&quot;&gt;&lt;svg onload=alert(2)&gt;" in body  # the service
    for path in (f"/supply-hours?date={DAY}", f"/robots/R-3?date={DAY}"):
        body = await (await client.get(path)).text()
        assert IMG_REASON not in body and "&lt;img src=x onerror=alert(1)&gt;" in body
    # a hostile reason is chosen like any other (a parameter), shown as text
    resp = await client.get("/supply-hours", params={"date": DAY, "reason": IMG_REASON})
    body = await resp.text()
    assert resp.status == 200 and IMG_REASON not in body
    assert "Intervals: &lt;img src=x onerror=alert(1)&gt;" in body
    assert BAD_SERVICE not in body


BAD = [
    ("/?date=2026-13-01", 400),
    ("/?date=yesterday", 400),
    ("/?date=2026-03-05T00:00", 400),
    ("/?window_min=lots", 400),
    ("/?window_min=nan", 400),
    ("/?window_min=-1", 400),
    ("/supply-hours?date=2026-02-30", 400),
    ("/supply-hours?from=2026-03-01&to=2026-04-15", 400),
    ("/supply-hours?from=2026-03-05&to=2026-03-01", 400),
    ("/supply-hours?date=2026-03-05&from=2026-03-01", 400),
    ("/funnel?date=05/03/2026", 400),
    ("/robots/R-1?date=%3Cscript%3E", 400),
    ("/deliveries/" + "D" * 10_000, 400),
    ("/deliveries/%3Cscript%3Ealert(1)%3C%2Fscript%3E", 404),  # any text is an id: not found
    ("/deliveries/..%2F..%2Fetc%2Fpasswd", 404),
    ("/deliveries/../../etc/passwd", 404),
    ("/deliveries/D-1%00", 400),
    ("/deliveries/D%0A1", 400),
    ("/deliveries/D%C2%851", 400),  # a C1 control
    ("/search?q=", 400),
    ("/search?q=%3Cscript%3E", 404),
    ("/deliveries/D-nope", 404),
    ("/robots/R-nope", 404),
    ("/nowhere", 404),
    ("/static/app.css", 404),
    ("/static/..%2F..%2Fconfig.py", 404),
    ("/api/deliveries/D-nope", 404),
    ("/api/deliveries/%3Cscript%3E", 404),
    ("/api/deliveries/a%1Bb", 400),
    ("/api/supply-hours?date=nope", 400),
    ("/api/robots/R-1?date=2026-99-99", 400),
]


async def test_bad_input_is_a_page_not_a_500(client: Any) -> None:
    for path, status in BAD:
        resp = await client.get(path)
        body = await resp.text()
        assert resp.status == status, (path, body[:400])
        assert_secure(resp)
        if path.startswith("/api/"):
            assert json.loads(body)["error"] in ("bad_input", "not_found"), path
        else:  # the page says what was wrong and offers the search
            assert '<form class="search big" action="/search"' in body, path
            assert "<script>" not in body, path


async def test_unknown_delivery_page_says_so_and_offers_the_search(client: Any) -> None:
    resp = await client.get("/deliveries/D-nope")
    body = await resp.text()
    assert resp.status == 404
    assert "No delivery with the id “D-nope” is in the warehouse" in body
    assert 'value="D-nope"' in body


async def test_method_not_allowed(client: Any) -> None:
    resp = await client.post("/deliveries/D-1", data=b"x")
    assert resp.status == 405
    assert_secure(resp)


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of a metrics exposition (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_count_route_templates(client: Any) -> None:
    route = "/deliveries/{delivery_id}"
    before = await (await client.get("/metrics")).text()
    await client.get("/deliveries/D-1")
    await client.get("/deliveries/D-nope")
    await client.get("/nowhere/" + "x" * 50)
    text = await (await client.get("/metrics")).text()
    for status in ("200", "404"):
        counted = sample(text, "logship_ui_requests_total", route=route, status=status)
        assert counted - sample(before, "logship_ui_requests_total", route=route,
                                status=status) == 1  # fmt: skip
    assert sample(text, "logship_ui_requests_total", route="unmatched", status="404") >= 1
    seen = sample(text, "logship_ui_request_duration_seconds_count", route=route)
    assert seen - sample(before, "logship_ui_request_duration_seconds_count", route=route) == 2
    assert "D-nope" not in text and "xxxxx" not in text


async def test_times_show_in_the_configured_zone_with_their_offset(
    duck: UiSettings, aiohttp_client: Any
) -> None:
    client = await serve(duck.model_copy(update={"timezone": "America/Los_Angeles"}),
                         aiohttp_client)  # fmt: skip
    body = await (await client.get("/deliveries/D-1")).text()
    assert "<dd>2026-03-05 02:00:00 -08:00</dd>" in body  # 10:00 UTC
    assert "Times in America/Los_Angeles (-08:00)." in body  # the offset of the day shown
    assert '<time datetime="2026-03-05T10:00:00.000000Z">02:00:00 -08:00</time>' in body
