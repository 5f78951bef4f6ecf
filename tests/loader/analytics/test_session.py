"""The delivery session and its page data, on DuckDB and the Redshift emulator: equal to
`logship session --json`, its summary and annotations, the robots' state strip, and the same
session through the BI query and the `delivery_sessions` view."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ingest.event import iso_utc
from loader import analytics, reports
from loader.analytics.session import RECENT_DAYS, session_bi_params, session_bi_sql
from tests.loader.analytics.conftest import memory_reader
from tests.loader.analytics.scenario import HOSTILE_ID, SESSION_GAPS, SESSION_IN
from tests.loader.helpers import event


def _cli_json(settings: Any, delivery_id: str) -> list[dict[str, Any]]:
    out = io.StringIO()
    assert reports.session(settings, delivery_id, True, out=out) == 0
    return json.loads(out.getvalue())


def test_session_equals_the_cli(loaded: Any, reader: analytics.Reader) -> None:
    got = analytics.session(reader, "D1")
    assert got == _cli_json(loaded, "D1")
    assert [e["event_id"] for e in got] == [e["event_id"] for e in SESSION_IN]
    assert [e["gap_s"] for e in got] == SESSION_GAPS
    assert got[0]["occurred_at"] == "2026-03-05T09:55:00.000000Z"
    # A delivery id that is SQL and HTML is a value like any other.
    (created,) = analytics.session(reader, HOSTILE_ID)
    assert created["delivery_id"] == HOSTILE_ID and created == _cli_json(loaded, HOSTILE_ID)[0]
    assert analytics.session(reader, "D-nope") is None


def test_delivery_page_data(reader: analytics.Reader) -> None:
    page = analytics.delivery(reader, "D1")
    assert page is not None
    assert page["events"] == analytics.session(reader, "D1")
    assert page["summary"] == {
        "delivery_id": "D1",
        "outcome": "completed",
        "merchant_id": "M1",
        "robots": ["R2", "R3"],  # the swap shows both, in the order they served it
        "swapped": True,
        "started_at": "2026-03-05T10:00:00.000000Z",
        "ended_at": "2026-03-05T10:40:00.000000Z",
        "duration_s": 2400.0,
        "event_count": 8,
        "error_count": 1,
        "window_from": "2026-03-05T09:55:00.000000Z",
        "window_to": "2026-03-05T10:45:00.000000Z",
    }
    notes = page["annotations"]
    assert [n["event_id"] for n in notes] == [e["event_id"] for e in SESSION_IN]
    assert [n["offset_s"] for n in notes] == [0, 300, 360, 1500, 1800, 2100, 2700, 2940]
    assert [n["error"] for n in notes] == [False] * 5 + [True] + [False] * 2
    assert [n["long_gap"] for n in notes] == [False, False, False, True] + [False] * 2 + [
        True,
        False,
    ]
    assert {n["lane"] for n in notes} == {"dispatch"}  # the test events' service
    # The state strip: R2 assigned from 09:55 until its last event (10:20); R3 available
    # from 10:44, clipped to the window's end.
    assert [(s["robot_id"], s["state"], s["bucket"], s["from"], s["to"]) for s in page["states"]] == [
        ("R2", "assigned", "usable", "2026-03-05T09:55:00.000000Z", "2026-03-05T10:20:00.000000Z"),
        ("R3", "available", "usable", "2026-03-05T10:44:00.000000Z", "2026-03-05T10:45:00.000000Z"),
    ]  # fmt: skip
    d3 = analytics.delivery(reader, "D3")
    assert d3 is not None and d3["summary"]["outcome"] == "open" and d3["states"] == []
    assert d3["summary"]["robots"] == [] and d3["summary"]["duration_s"] == 0.0
    assert analytics.delivery(reader, "D-nope") is None


def test_bi_query_and_view_match_the_session(reader: analytics.Reader) -> None:
    """What a BI tool runs (the one-statement query with its delivery id, and the view
    filtered by `session_delivery_id`) is the session `logship session` prints."""
    want = [(e["event_id"], e["gap_s"]) for e in analytics.session(reader, "D1")]
    d = reader.dialect
    rows = reader.query(
        session_bi_sql(d, reader.schema, reader.cfg.session_margin_s), session_bi_params("D1")
    )
    assert [(r[0], None if r[9] is None else round(float(r[9]), 6)) for r in rows] == want
    rows = reader.query(
        f"SELECT event_id, gap_s FROM {reader.schema}.delivery_sessions "
        f"WHERE session_delivery_id = {d.param} ORDER BY occurred_at, received_at, event_id",
        ["D1"],
    )
    assert [(r[0], None if r[1] is None else round(float(r[1]), 6)) for r in rows] == want


# ------------------------------------------------------- finding the window, recent first

LATEST_AT = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)  # the latest event of the data below
EDGE = LATEST_AT - timedelta(days=RECENT_DAYS[0])  # where the first search range begins
WHOLE_COLUMN = re.compile(r"WHERE delivery_id = (\?|%s)$")  # the unbounded look-up


def _ev(name: str, at: datetime, **props: Any) -> dict[str, Any]:
    return event(name, occurred=at, **props)


def _straddling(start: datetime, delivery_id: str, robot: str) -> list[dict[str, Any]]:
    """A delivery from start - 40 min to start + 45 min, its robot's own events inside its
    window and one just outside it (the window is widened by the 300 s margin)."""
    m = lambda n: start + timedelta(minutes=n)  # noqa: E731
    return [
        _ev("robot.error", m(-46), robot_id=robot),  # before the window: not in the session
        _ev("delivery.created", m(-40), delivery_id=delivery_id),
        _ev("robot.state_changed", m(-36), robot_id=robot, to_state="assigned"),
        _ev("delivery.dispatched", m(-30), delivery_id=delivery_id, robot_id=robot),
        _ev("delivery.pickup_completed", m(20), delivery_id=delivery_id, robot_id=robot),
        _ev("robot.error", m(30), robot_id=robot),
        _ev("delivery.dropoff_completed", m(45), delivery_id=delivery_id, robot_id=robot),
    ]


def _whole_history_ids(r: analytics.Reader, delivery_id: str) -> list[str]:
    """The session's event ids as the BI query finds them: its window from the whole
    history (`MIN`/`MAX` over every event of the delivery)."""
    stmt = session_bi_sql(r.dialect, r.schema, r.cfg.session_margin_s)
    return [row[0] for row in r.query(stmt, session_bi_params(delivery_id))]


def _statements(r: analytics.Reader) -> list[str]:
    return [" ".join(s.split()) for s, _ in r.query.calls]  # type: ignore[attr-defined]


def test_a_delivery_straddling_the_recent_edge_gets_its_whole_session() -> None:
    """Found in the last 2 days by its later events, widened to its earlier ones before the
    edge — not by reading the whole `delivery_id` column."""
    rows = [*_straddling(EDGE, "DS", "R7"), _ev("robot.error", LATEST_AT, robot_id="R8")]
    want = [e["event_id"] for e in rows[1:-1]]
    r = memory_reader(rows)
    got = analytics.session(r, "DS")
    assert got is not None and [e["event_id"] for e in got] == want
    assert got[0]["occurred_at"] == iso_utc(EDGE - timedelta(minutes=40))
    assert _whole_history_ids(r, "DS") == want
    calls = r.query.calls  # type: ignore[attr-defined]
    calls.clear()
    page = analytics.delivery(r, "DS")
    assert page is not None and page["events"] == got
    assert page["summary"]["window_from"] == iso_utc(EDGE - timedelta(minutes=45))
    stmts = _statements(r)
    assert not any(WHOLE_COLUMN.search(s) for s in stmts)
    assert any(s.endswith("AND occurred_at <= ?") for s in stmts)  # the widening
    # A day named (the UI's ?date=) is searched first: no look-up of the latest event.
    for day in (EDGE.date(), (EDGE - timedelta(days=1)).date()):
        calls.clear()
        assert analytics.session(r, "DS", day=day) == got
        assert not any(s.startswith("SELECT MAX(occurred_at) FROM") for s in _statements(r))
    # A wrong day costs the searches after it, not the result.
    assert analytics.session(r, "DS", day=date(2026, 1, 1)) == got
    assert analytics.delivery(r, "DS", day=date(2026, 1, 1)) == page


def test_an_old_delivery_straddling_its_days_edge_and_a_long_one() -> None:
    """Older than the last 31 days: found by the day named even when it straddles that
    range's edge; without a day, or spread over more days than the widenings reach, from
    the whole column — the same session either way."""
    day = date(2026, 3, 10)
    edge = datetime(2026, 3, 9, tzinfo=UTC)  # the day's range: [day - 1 day, day + 2 days]
    old = _straddling(edge, "DO", "R5")
    long_start = datetime(2026, 2, 1, tzinfo=UTC)
    long = [_ev("delivery.dispatched", long_start + timedelta(hours=20 * i), delivery_id="DL",
                robot_id="R6") for i in range(9)]  # fmt: skip
    r = memory_reader([*old, *long, _ev("robot.error", LATEST_AT, robot_id="R8")])
    calls = r.query.calls  # type: ignore[attr-defined]
    want = [e["event_id"] for e in old[1:]]
    assert _whole_history_ids(r, "DO") == want
    for hint, whole_column in ((day, False), (None, True)):
        calls.clear()
        got = analytics.session(r, "DO", day=hint)
        assert got is not None and [e["event_id"] for e in got] == want
        assert any(WHOLE_COLUMN.search(s) for s in _statements(r)) is whole_column
    calls.clear()
    last_day = (long_start + timedelta(hours=160)).date()
    got = analytics.session(r, "DL", day=last_day)
    assert got is not None and [e["event_id"] for e in got] == [e["event_id"] for e in long]
    assert any(WHOLE_COLUMN.search(s) for s in _statements(r))  # 7 days > 4 widenings
    assert analytics.session(r, "D-nope", day=day) is None
