"""Supply hours, a robot's day and downtime intervals on DuckDB and the Redshift emulator:
hand-computed figures, equal to the CLI, equal to the `supply_hours_daily` view day by day,
and bounded by the state horizon."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from loader import analytics, reports
from tests.loader.analytics.conftest import memory_reader, open_reader
from tests.loader.analytics.scenario import SUPPLY_EXPECTED
from tests.loader.helpers import event

DAYS = [date(2026, 3, 1) + timedelta(days=i) for i in range(7)]


def _view_items(r: analytics.Reader) -> list[dict[str, Any]]:
    stmt = analytics.supply_view_sql(r.dialect, r.schema, robot=False)
    return analytics.shape_supply(r.query(stmt, []))


def test_supply_hours_equal_the_view_the_cli_and_the_expectation(
    loaded: Any, reader: analytics.Reader
) -> None:
    assert analytics.supply_hours(reader, DAYS[0], DAYS[3], "R1") == SUPPLY_EXPECTED
    view = _view_items(reader)
    for day in DAYS:
        got = analytics.supply_hours(reader, day, day)
        assert sorted(got, key=lambda i: i["robot_id"]) == sorted(
            (i for i in view if i["date"] == day.isoformat()), key=lambda i: i["robot_id"]
        ), day
        out = io.StringIO()
        assert reports.supply_hours(loaded, day.isoformat(), None, True, out=out) == 0
        assert json.loads(out.getvalue()) == got
    week = analytics.supply_hours(reader, DAYS[0], DAYS[-1])
    assert sorted(week, key=lambda i: (i["robot_id"], i["date"])) == sorted(
        view, key=lambda i: (i["robot_id"], i["date"])
    )


def test_ranges_are_checked(reader: analytics.Reader) -> None:
    with pytest.raises(ValueError, match="31 days"):
        analytics.supply_hours(reader, date(2026, 1, 1), date(2026, 2, 1))
    with pytest.raises(ValueError, match="ends before"):
        analytics.supply_hours(reader, DAYS[1], DAYS[0])
    with pytest.raises(ValueError):
        analytics.downtime_intervals(reader, date(1969, 12, 31), date(1970, 1, 1), "x")
    assert analytics.supply_hours(reader, date(2026, 1, 1), date(2026, 1, 31)) == []


def test_the_state_horizon_bounds_what_is_read(loaded: Any) -> None:
    """R1's 2026-03-03 is usable only through its 02:30 change the day before and its next
    event the day after. With a one-hour horizon neither is read, so the day is empty —
    the query did not look further back; with the default (7 days) it is 24 h."""
    short, wh = open_reader(loaded, state_horizon_s=3600)
    try:
        assert analytics.supply_hours(short, DAYS[2], DAYS[2], "R1") == []
        times = [p for _, params in short.query.calls for p in params if isinstance(p, datetime)]
        lo = datetime.fromisoformat("2026-03-03T00:00:00+00:00")
        assert times and min(times) == lo - timedelta(hours=1)
        assert max(times) == lo + timedelta(days=1, hours=1)
    finally:
        wh.close()
    full, wh = open_reader(loaded)
    try:
        (item,) = analytics.supply_hours(full, DAYS[2], DAYS[2], "R1")
        assert item["usable_hours"] == 24.0
    finally:
        wh.close()


def test_supply_totals_and_headline() -> None:
    totals = analytics.supply_totals(SUPPLY_EXPECTED)
    assert totals["usable_hours"] == 54.0 and totals["downtime_hours"] == {"lid_error": 2.0}
    assert totals["headline"] == {"reason": "lid_error", "share": 1.0, "hours": 2.0,
                                  "text": "100% of downtime was due to lid_error"}  # fmt: skip
    mixed = [{"usable_hours": 1.0, "downtime_hours": {"lid_error": 3.0, "gps_fault": 1.0}}]
    assert analytics.supply_totals(mixed)["headline"]["text"] == (
        "75% of downtime was due to lid_error"
    )
    assert analytics.supply_totals([])["headline"] is None


def test_robot_day(reader: analytics.Reader) -> None:
    day = analytics.robot_day(reader, "R1", DAYS[1])
    assert day is not None
    assert [(i["state"], i["reason"], i["bucket"], i["from"][11:16], i["to"][11:16], i["hours"])
            for i in day["intervals"]] == [
        ("error", "lid_error", "lid_error", "00:00", "01:00", 1.0),
        ("available", "pilot_reset", "usable", "01:00", "02:00", 1.0),
        ("on_trip", "dispatched", "usable", "02:00", "02:30", 0.5),
        ("available", "delivery_done", "usable", "02:30", "00:00", 21.5),
    ]  # fmt: skip
    assert day["intervals"][-1]["to"] == "2026-03-03T00:00:00.000000Z"  # clipped to the day
    assert (day["usable_hours"], day["downtime_hours"]) == (23.0, {"lid_error": 1.0})
    assert (day["prev_date"], day["next_date"]) == ("2026-03-01", "2026-03-03")
    assert day["errors"] == [] and day["deliveries"] == []
    (row,) = analytics.supply_hours(reader, DAYS[1], DAYS[1], "R1")
    assert (row["usable_hours"], row["downtime_hours"]) == (23.0, {"lid_error": 1.0})

    r3 = analytics.robot_day(reader, "R3", DAYS[4])
    assert r3 is not None
    assert [(e["occurred_at"][11:19], e["error_code"]) for e in r3["errors"]] == [
        ("10:30:00", "lid_error"),
        ("10:46:00", "gps_fault"),
    ]
    assert r3["deliveries"] == [{"delivery_id": "D1", "first_at": "2026-03-05T10:25:00.000000Z",
                                 "last_at": "2026-03-05T10:40:00.000000Z"}]  # fmt: skip
    assert r3["usable_hours"] == round(2 / 60, 6) and r3["downtime_hours"] == {}
    assert analytics.robot_day(reader, "R3", DAYS[0]) is None  # nothing that day
    assert analytics.robot_day(reader, "R-nope", DAYS[4]) is None


def test_downtime_intervals(reader: analytics.Reader) -> None:
    (lid,) = analytics.downtime_intervals(reader, DAYS[0], DAYS[1], "lid_error")
    assert (lid["robot_id"], lid["from"], lid["to"], lid["hours"], lid["deliveries"]) == (
        "R1", "2026-03-01T23:00:00.000000Z", "2026-03-02T01:00:00.000000Z", 2.0, [],
    )  # fmt: skip
    usable = analytics.downtime_intervals(reader, DAYS[4], DAYS[4], "usable")
    assert [(i["robot_id"], i["deliveries"]) for i in usable] == [("R2", ["D1", "D2"]), ("R3", [])]
    # The intervals of a bucket add up to its supply hours.
    for bucket in ("lid_error", "usable"):
        hours = sum(
            i["hours"] for i in analytics.downtime_intervals(reader, DAYS[0], DAYS[-1], bucket)
        )
        totals = analytics.supply_totals(analytics.supply_hours(reader, DAYS[0], DAYS[-1]))
        want = totals["usable_hours"] if bucket == "usable" else totals["downtime_hours"][bucket]
        assert abs(hours - want) < 1e-5
    assert analytics.downtime_intervals(reader, DAYS[0], DAYS[-1], "<script>") == []


def test_days_are_split_at_local_midnight_by_elapsed_time() -> None:
    """In America/Los_Angeles, 2026-03-08 (clocks go forward) has 23 hours, 2026-11-01 (back)
    25: a robot available throughout is usable that long, its day starting at local
    midnight (08:00Z, then 07:00Z)."""
    rows = [
        event("robot.state_changed", occurred=datetime(2026, 3, 7, 20, tzinfo=UTC),
              robot_id="R9", to_state="available"),
        event("robot.error", occurred=datetime(2026, 3, 9, 20, tzinfo=UTC), robot_id="R9"),
        event("robot.state_changed", occurred=datetime(2026, 10, 31, 20, tzinfo=UTC),
              robot_id="R9", to_state="charging", reason="battery_low"),
        event("robot.error", occurred=datetime(2026, 11, 2, 20, tzinfo=UTC), robot_id="R9"),
    ]  # fmt: skip
    r = memory_reader(rows, timezone="America/Los_Angeles")
    (spring,) = analytics.supply_hours(r, date(2026, 3, 8), date(2026, 3, 8))
    assert spring["usable_hours"] == 23.0
    (autumn,) = analytics.supply_hours(r, date(2026, 11, 1), date(2026, 11, 1))
    assert autumn["downtime_hours"] == {"battery_low": 25.0}
    day = analytics.robot_day(r, "R9", date(2026, 3, 8))
    assert day is not None
    assert [(i["from"], i["to"]) for i in day["intervals"]] == [
        ("2026-03-08T08:00:00.000000Z", "2026-03-09T07:00:00.000000Z")
    ]
