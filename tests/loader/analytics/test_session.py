"""The delivery session and its page data, on DuckDB and the Redshift emulator: equal to
`logship session --json`, its summary and annotations, the robots' state strip, and the same
session through the BI query and the `delivery_sessions` view."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from ingest.event import iso_utc
from loader import analytics, reports
from loader.analytics.families import error_sql
from loader.analytics.session import session_bi_params, session_bi_sql, summarize_in_warehouse
from loader.warehouse.sql import spans_bucket
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


# ------------------------------------------------ the summary of a session longer than shown

SCENARIO_DELIVERIES = ("D1", "D3", "D5", "D6", "D7", HOSTILE_ID)


def test_the_warehouse_summarizes_as_the_page_does(reader: analytics.Reader) -> None:
    """The summary of a session with more events than the page fetches is computed by the
    warehouse: the same figures as :func:`summarize` over all the events."""
    for did in SCENARIO_DELIVERIES:
        page = analytics.delivery(reader, did)
        assert page is not None, did
        s = page["summary"]
        lo, hi = (datetime.fromisoformat(s[k]) for k in ("window_from", "window_to"))
        got = summarize_in_warehouse(reader, did, lo, hi)
        assert got == {k: v for k, v in s.items() if not k.startswith("window_")}, did
    # Shown: the first 3 of D1's 8 events; the summary is of all 8.
    whole = analytics.delivery(reader, "D1")
    capped = analytics.delivery(reader, "D1", max_events=3)
    assert whole is not None and capped is not None
    assert capped["events"] == whole["events"][:3]
    assert capped["annotations"] == whole["annotations"][:3]
    assert capped["summary"] == whole["summary"] and capped["summary"]["event_count"] == 8
    assert capped["states"] == whole["states"]
    assert analytics.delivery(reader, "D1", max_events=8) == whole


def test_the_error_rule_is_the_same_in_sql() -> None:
    names = ["robot.error", "delivery.failed", "lid_error", "nav_fail", "error_x", "robot.errors",
             "x_error_y", "errorx", "fail", "_error", "error_", "delivery.created", "x%error",
             "lid_erro", "ROBOT.ERROR"]  # fmt: skip
    rows = [event(n, occurred=datetime(2026, 3, 5, 10, i, tzinfo=UTC)) for i, n in enumerate(names)]
    r = memory_reader(rows)
    got = {n: bool(e) for n, e in r.query(
        f"SELECT event_name, {error_sql('event_name')} FROM {r.events}", [])}  # fmt: skip
    assert got == {n: analytics.is_error({"event_name": n}) for n in names}
    assert sum(got.values()) == 7  # the rule can fail: most of these are not errors


# ----------------------------------------------------------------- finding the window

WHOLE_COLUMN = re.compile(r"\"events\" WHERE delivery_id = (\?|%s)$")  # an unbounded look-up


def _ev(name: str, at: datetime, **props: Any) -> dict[str, Any]:
    return event(name, occurred=at, **props)


def _whole_history_ids(r: analytics.Reader, delivery_id: str) -> list[str]:
    """The session's event ids as the BI query finds them (one statement)."""
    stmt = session_bi_sql(r.dialect, r.schema, r.cfg.session_margin_s)
    return [row[0] for row in r.query(stmt, session_bi_params(delivery_id))]


def _statements(r: analytics.Reader) -> list[str]:
    return [" ".join(s.split()) for s, _ in r.query.calls]  # type: ignore[attr-defined]


def test_a_window_from_the_spans_however_spread_the_delivery() -> None:
    """The window is its first to its last event, whatever lies between and however far
    apart — an old delivery, one spread over days, one with an event days from all others —
    from one probe of `delivery_spans` and one bounded read: no read of the whole column."""
    start = datetime(2026, 2, 1, tzinfo=UTC)
    spread = [_ev("delivery.dispatched", start + timedelta(hours=20 * i), delivery_id="DL",
                  robot_id="R6") for i in range(9)]  # fmt: skip
    stray = _ev("delivery.failed", start + timedelta(days=12), delivery_id="DL")
    robot_in = _ev("robot.error", start + timedelta(days=12, minutes=4), robot_id="R6")
    robot_out = _ev("robot.error", start + timedelta(days=12, minutes=6), robot_id="R6")
    old = [_ev("delivery.created", datetime(2025, 6, 1, 9, tzinfo=UTC), delivery_id="DO"),
           _ev("delivery.cancelled", datetime(2025, 6, 1, 9, 5, tzinfo=UTC), delivery_id="DO")]  # fmt: skip
    recent = _ev("robot.error", datetime(2026, 6, 10, tzinfo=UTC), robot_id="R8")
    r = memory_reader([*spread, stray, robot_in, robot_out, *old, recent])
    calls = r.query.calls  # type: ignore[attr-defined]
    for did, want in (("DL", [*spread, stray, robot_in]), ("DO", old)):
        calls.clear()
        got = analytics.session(r, did)
        assert got is not None and [e["event_id"] for e in got] == [e["event_id"] for e in want]
        stmts = _statements(r)
        assert len(stmts) == 3 and "delivery_spans" in stmts[0], stmts
        assert not any(WHOLE_COLUMN.search(s) for s in stmts)
        assert _whole_history_ids(r, did) == [e["event_id"] for e in want]
    page = analytics.delivery(r, "DL")
    assert page is not None and page["summary"]["outcome"] == "failed"
    assert page["summary"]["window_to"] == iso_utc(stray_at(stray) + timedelta(minutes=5))
    calls.clear()
    assert analytics.session(r, "D-nope") is None and len(_statements(r)) == 1


def stray_at(e: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(e["occurred_at"])


def test_bounds_wider_than_the_events_give_the_exact_window() -> None:
    """`delivery_spans` may hold wider bounds than the kept events (a duplicate `event_id`
    the insert skipped still widened them): the window is still the events' own, and an id
    only a skipped duplicate carried is unknown."""
    at = datetime(2026, 3, 5, 10, tzinfo=UTC)
    rows = [_ev("delivery.created", at, delivery_id="D1"),
            _ev("delivery.cancelled", at + timedelta(minutes=10), delivery_id="D1")]  # fmt: skip
    r = memory_reader(rows)
    r.query(f"INSERT INTO {r.spans} VALUES (?, 'D1', ?, ?), (?, 'D-ghost', ?, ?)",
            [spans_bucket("D1"), at - timedelta(days=3), at + timedelta(days=3),
             spans_bucket("D-ghost"), at, at])  # fmt: skip
    page = analytics.delivery(r, "D1")
    assert page is not None
    assert page["summary"]["window_from"] == iso_utc(at - timedelta(minutes=5))
    assert page["summary"]["window_to"] == iso_utc(at + timedelta(minutes=15))
    assert analytics.delivery(r, "D-ghost") is None and analytics.session(r, "D-ghost") is None


def test_a_delivery_at_the_calendar_edges_opens() -> None:
    """The loader takes any time of years 1-9999 from a lake; a session there opens (its
    window clamped to the calendar) instead of overflowing."""
    first = _ev("delivery.created", datetime(1, 1, 1, 0, 1, tzinfo=UTC), delivery_id="D-old")
    last = _ev("delivery.created", datetime(9999, 12, 31, 23, 58, tzinfo=UTC), delivery_id="D-new")
    r = memory_reader([first, last])
    for did, e in (("D-old", first), ("D-new", last)):
        got = analytics.session(r, did)
        assert got is not None and [x["event_id"] for x in got] == [e["event_id"]]
        assert analytics.delivery(r, did) is not None
