"""Beyond the plain scenario: ids of any stored text open (links percent-encoded), CSV cells a
spreadsheet would run are neutralised, a robot's day leads to the nearest days with data, and
days, links and offsets follow `LOGSHIP_TIMEZONE`."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from loader import reports
from loader.ui import UiSettings
from loader.ui.html import seg
from tests.loader.helpers import event, load_objects
from tests.loader.ui.conftest import serve, ui_settings
from tests.loader.ui.scenario import DAY, OBJECTS, ev

#: Delivery ids a sender may use: ingest stores any text up to 256 characters.
ODD_IDS = ["D 9/x", "Dé-1", "D-js\u2028x", "D%41?#&", "=1+1", " padded "]
FORMULA = '=HYPERLINK("http://evil","x")'


def _on(day: str, hhmm: str, **props: Any) -> dict[str, Any]:
    row = event("robot.heartbeat", occurred=datetime.fromisoformat(f"{day}T{hhmm}:00+00:00"),
                **props)  # fmt: skip
    row["service"] = "fleet"
    return row


def _extra() -> list[dict[str, Any]]:
    rows = [ev("delivery.created", f"16:{i:02d}:00", delivery_id=did, merchant_id="M-9")
            for i, did in enumerate(ODD_IDS)]  # fmt: skip
    cells = ev("delivery.dispatched", "16:30:00", FORMULA, delivery_id="=1+1", robot_id="@R",
               note="+1+cmd")  # fmt: skip
    cells["host"] = "-2+3"
    plain = ev("delivery.pickup_started", "16:31:00", delivery_id="=1+1", robot_id="@R")
    plain["host"] = "-1"  # a number stays a number
    tab = ev("delivery.pickup_completed", "16:32:00", "\tTAB", delivery_id="=1+1", robot_id="@R")
    # R-1 on other days: 4 days before, 3 after (2026-03-08: the US clocks change)
    near = [_on("2026-03-01", "12:00", robot_id="R-1"), _on("2026-03-08", "12:00", robot_id="R-1")]
    return [*rows, cells, plain, tab, *near]


@pytest.fixture
async def more(tmp_path: Path) -> UiSettings:
    settings = ui_settings(tmp_path)
    await load_objects(settings, [*OBJECTS, _extra()])
    return settings


def cli_session(settings: UiSettings, did: str) -> str:
    out = io.StringIO()
    assert reports.session(settings, did, True, out=out) == 0
    return out.getvalue()


async def test_any_stored_id_opens_from_its_link(more: UiSettings, aiohttp_client: Any) -> None:
    client = await serve(more, aiohttp_client)
    index = await (await client.get(f"/?date={DAY}")).text()
    for did in ODD_IDS:
        href = f"/deliveries/{seg(did)}"
        linked = href.replace("&", "&amp;")
        assert f'<a href="{linked}">' in index, did  # linked, not a span
        resp = await client.get(href)
        body = await resp.text()
        assert resp.status == 200, (did, body[:300])
        assert re.search(r"<h1>Delivery [^<]+</h1>", body)
        api = await client.get(f"/api/deliveries/{seg(did)}")
        assert await api.text() == cli_session(more, did), did
        found = await client.get("/search", params={"q": did.strip()}, allow_redirects=False)
        if did == did.strip():
            assert found.status == 303 and found.headers["Location"] == href
    # the file name of a download keeps only what a header can carry
    resp = await client.get(f"/deliveries/{seg('Dé-1')}/events.json")
    assert resp.headers["Content-Disposition"] == 'attachment; filename="D_-1.json"'


async def test_csv_cells_a_spreadsheet_would_run_start_with_a_quote(
    more: UiSettings, aiohttp_client: Any
) -> None:
    client = await serve(more, aiohttp_client)
    resp = await client.get(f"/deliveries/{seg('=1+1')}/events.csv")
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    by_name = {r["event_name"]: r for r in rows}
    cells = by_name["delivery.dispatched"]
    assert cells["service"] == "'" + FORMULA
    assert cells["host"] == "'-2+3"
    assert cells["delivery_id"] == "'=1+1" and cells["robot_id"] == "'@R"
    assert json.loads(cells["properties"])["note"] == "+1+cmd"  # inside the JSON: text already
    assert by_name["delivery.pickup_started"]["host"] == "-1"
    assert by_name["delivery.pickup_completed"]["service"] == "'\tTAB"
    assert all(not r["offset_s"].startswith("'") for r in rows)


async def test_a_robots_day_leads_to_the_nearest_days_with_events(
    more: UiSettings, aiohttp_client: Any
) -> None:
    client = await serve(more, aiohttp_client)
    body = await (await client.get(f"/robots/R-1?date={DAY}")).text()
    pager = body.split('<p class="pager">')[1].split("</p>")[0]
    prev = re.search(r'<a href="([^"]+)" rel="prev">← 2026-03-01</a>', pager)
    nxt = re.search(r'<a href="([^"]+)" rel="next">2026-03-08 →</a>', pager)
    assert prev and nxt, pager
    for link in (prev.group(1), nxt.group(1)):
        resp = await client.get(link.replace("&amp;", "&"))
        assert resp.status == 200, link
    # the first day of R-1 has nothing earlier; its last nothing later
    first = await (await client.get("/robots/R-1?date=2026-03-01")).text()
    assert 'data-absent="earlier"' in first and 'rel="next">2026-03-05 →' in first
    last = await (await client.get("/robots/R-1?date=2026-03-08")).text()
    assert 'rel="prev">← 2026-03-05' in last and 'data-absent="later"' in last


async def test_days_and_links_follow_the_configured_zone(
    more: UiSettings, aiohttp_client: Any
) -> None:
    """At UTC+14, D-1 (10:00 UTC on the 5th) starts on the 6th: its robots' links open the 6th,
    and so do the robots of the downtime intervals."""
    client = await serve(more.model_copy(update={"timezone": "Pacific/Kiritimati"}),
                         aiohttp_client)  # fmt: skip
    body = await (await client.get("/?date=2026-03-06")).text()
    assert 'href="/deliveries/D-1"' in body
    assert 'href="/robots/R-1?date=2026-03-06"' in body
    assert 'href="/robots/R-1?date=2026-03-05"' not in body
    body = await (await client.get("/supply-hours?date=2026-03-06&reason=lid_error")).text()
    section = body.split('id="intervals"')[1]
    assert 'href="/robots/R-1?date=2026-03-06"' in section
    assert "Times in Pacific/Kiritimati (+14:00)." in body


async def test_the_footer_names_the_offsets_of_the_day_shown(
    more: UiSettings, aiohttp_client: Any
) -> None:
    la = more.model_copy(update={"timezone": "America/Los_Angeles"})
    client = await serve(la, aiohttp_client)
    body = await (await client.get("/robots/R-1?date=2026-03-08")).text()
    assert "Times in America/Los_Angeles (-08:00 / -07:00)." in body  # the clocks change
    body = await (await client.get(f"/robots/R-1?date={DAY}")).text()
    assert "Times in America/Los_Angeles (-08:00)." in body
