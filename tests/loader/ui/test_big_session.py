"""A delivery no page can show whole: one event every 6 hours for 10 days, its robot sending a
heartbeat every 5 minutes all along (the robot's events without a delivery id belong to the
session's window), and an event of megabyte-sized properties; a second robot takes over and
completes it long after the first MAX_EVENTS events. The page shows the first MAX_EVENTS
events and says so, its facts are of the whole session (the outcome, both robots, every
event and error counted), its size stays bounded, the downloads stream every event (exactly
the CLI's JSON), and the server answers other requests meanwhile."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from loader import reports
from loader.ui import UiSettings
from loader.ui.pages import MAX_EVENTS, MAX_ROW_JSON_CHARS
from tests.loader.helpers import event, load_objects
from tests.loader.ui.conftest import serve, ui_settings

START = datetime(2026, 1, 5, 12, tzinfo=UTC)
DAYS = 10
#: A page of MAX_EVENTS rows stays under this (a row is about a kilobyte and a half).
PAGE_BYTES_BOUND = MAX_EVENTS * 3_000


def _chain() -> list[list[dict[str, Any]]]:
    own = [event("delivery.dispatched", occurred=START + timedelta(hours=6 * i),
                 delivery_id="D-CHAIN", robot_id="R-8") for i in range(4 * DAYS - 1)]  # fmt: skip
    end = START + timedelta(hours=6 * (4 * DAYS - 1))
    own += [event("delivery.cancelled", occurred=START + timedelta(hours=1),
                  delivery_id="D-CHAIN", cancel_reason="customer_left"),  # undone: completed later
            event("robot.error", occurred=end - timedelta(minutes=1), robot_id="R-8"),
            event("delivery.dropoff_completed", occurred=end, delivery_id="D-CHAIN",
                  robot_id="R-9")]  # fmt: skip
    beats = [event("robot.heartbeat", occurred=START + timedelta(minutes=5 * i), robot_id="R-8",
                   battery=50) for i in range(12 * 24 * DAYS)]  # fmt: skip
    huge = event(
        "robot.diagnostics",
        occurred=START + timedelta(seconds=30),
        robot_id="R-8",
        **{f"dump_{k}": "x" * 60_000 for k in range(20)},
    )  # ~1.2 MB of properties
    return [own, beats, [huge]]


@pytest.fixture
async def chain(tmp_path: Path) -> UiSettings:
    settings = ui_settings(tmp_path)
    await load_objects(settings, _chain())
    return settings


async def test_a_huge_session_is_a_bounded_page(chain: UiSettings, aiohttp_client: Any) -> None:
    client = await serve(chain, aiohttp_client)
    out = io.StringIO()
    assert reports.session(chain, "D-CHAIN", True, out=out) == 0
    session = out.getvalue()
    events = json.loads(session)
    assert len(events) > MAX_EVENTS + 500

    page, health = await asyncio.gather(client.get("/deliveries/D-CHAIN"), client.get("/healthz"))
    body = await page.text()
    assert page.status == 200 and health.status == 200
    assert len(body.encode()) < PAGE_BYTES_BOUND
    rows = re.findall(r'<tr id="ev-([^"]+)" class="event', body)
    assert rows == [e["event_id"] for e in events[:MAX_EVENTS]]
    assert f"This delivery has {len(events):,} events" in body
    # The facts are of all of them: the outcome, the robots and the counts come after the cut.
    facts = body.split('<dl class="facts">')[1].split("</dl>")[0]
    assert '<span class="badge completed">' in facts and "R-8" in facts and "R-9" in facts
    assert f"<dt>Events</dt><dd>{len(events):,}</dd>" in facts
    assert "<dt>Errors</dt><dd>1</dd>" in facts
    assert (
        "<strong>Completed</strong> at 2026-01-15 06:00:00 +00:00, after the events shown" in body
    )
    assert "customer_left" not in body.split('id="timeline"')[0]  # not the shown cancellation's
    assert body.count('<circle class="ev') == MAX_EVENTS  # the timeline's marks too
    assert "more characters: the JSON download has the whole event." in body
    assert "x" * (MAX_ROW_JSON_CHARS + 1) not in body

    # the downloads have every event: the JSON exactly the CLI's, streamed in chunks
    download = await client.get("/deliveries/D-CHAIN/events.json")
    assert download.headers.get("Transfer-Encoding") == "chunked"
    assert await download.text() == session
    assert await (await client.get("/api/deliveries/D-CHAIN")).text() == session
    table = await (await client.get("/deliveries/D-CHAIN/events.csv")).text()
    limit = csv.field_size_limit(4_000_000)  # the diagnostics' properties are one cell
    try:
        ids = [r["event_id"] for r in csv.DictReader(io.StringIO(table))]
    finally:
        csv.field_size_limit(limit)
    assert ids == [e["event_id"] for e in events]


async def test_a_session_over_the_download_cap_is_refused_not_cut(
    chain: UiSettings, aiohttp_client: Any
) -> None:
    """A download is the whole session or nothing: over `LOGSHIP_UI_MAX_DOWNLOAD_EVENTS` it is
    a 422 that says why and where to get it; at the cap exactly it is whole."""
    out = io.StringIO()
    assert reports.session(chain, "D-CHAIN", True, out=out) == 0
    n = len(json.loads(out.getvalue()))
    client = await serve(chain.model_copy(update={"ui_max_download_events": n - 1}), aiohttp_client)
    for path in ("/deliveries/D-CHAIN/events.json", "/deliveries/D-CHAIN/events.csv"):
        resp = await client.get(path)
        body = await resp.text()
        assert resp.status == 422, (path, body[:300])
        assert f"more than {n - 1:,} events" in body and "logship session ID --json" in body
    api = await client.get("/api/deliveries/D-CHAIN")
    assert api.status == 422 and (await api.json())["error"] == "too_large"
    assert (await client.get("/deliveries/D-CHAIN")).status == 200  # the page is bounded anyway
    whole = await serve(chain.model_copy(update={"ui_max_download_events": n}), aiohttp_client)
    resp = await whole.get("/api/deliveries/D-CHAIN")
    assert resp.status == 200 and await resp.text() == out.getvalue()
