"""The deliveries of a day (outcome, robots, the "robot error within N minutes of arrival"
flag, failed and flagged first), the latest day, the search, and the funnel — on DuckDB and the
Redshift emulator, the funnel equal to `logship funnel --json`."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from loader import analytics, reports
from tests.loader.analytics.scenario import HOSTILE_ID

MAR5, MAR7 = date(2026, 3, 5), date(2026, 3, 7)


def test_deliveries_of_a_day(reader: analytics.Reader) -> None:
    day = analytics.deliveries_of_day(reader, MAR7)
    assert [d["delivery_id"] for d in day] == ["D5", "D7", "D6", HOSTILE_ID]
    d5 = day[0]
    assert d5 == {
        "delivery_id": "D5",
        "outcome": "failed",
        "merchant_id": "M2",
        "robots": ["R5"],
        "started_at": "2026-03-07T12:00:00.000000Z",
        "ended_at": "2026-03-07T12:45:00.000000Z",
        "duration_s": 2700.0,
        "event_count": 5,
        "flagged": True,
        "flags": [{"stop": "pickup", "robot_id": "R5", "arrived_at": "2026-03-07T12:10:00.000000Z",
                   "error_at": "2026-03-07T12:11:30.000000Z", "error_code": "lid_error"}],
    }  # fmt: skip
    assert [(d["outcome"], d["flagged"]) for d in day[1:]] == [
        ("cancelled", False), ("completed", False), ("open", False),
    ]  # fmt: skip
    assert day[3]["merchant_id"] == "<b>M</b>" and day[3]["robots"] == []
    # N = 3: R6's error 3 min after arriving flags D6, which moves up.
    three = analytics.deliveries_of_day(reader, MAR7, error_window_min=3)
    assert [(d["delivery_id"], d["flagged"]) for d in three] == [
        ("D5", True), ("D6", True), ("D7", False), (HOSTILE_ID, False),
    ]  # fmt: skip
    ten = analytics.deliveries_of_day(reader, MAR7, error_window_min=10)
    assert [f["stop"] for f in ten[0]["flags"]] == ["pickup", "dropoff"]
    # 2026-03-05: D1 (the swap) and D3; D2 was never created.
    mar5 = analytics.deliveries_of_day(reader, MAR5)
    assert [(d["delivery_id"], d["outcome"], d["robots"], d["event_count"]) for d in mar5] == [
        ("D1", "completed", ["R2", "R3"], 5), ("D3", "open", [], 1),
    ]  # fmt: skip
    assert analytics.deliveries_of_day(reader, date(2026, 3, 6)) == []
    for bad in (-1, 1441, "2", 2.5):
        with pytest.raises(ValueError):
            analytics.deliveries_of_day(reader, MAR7, error_window_min=bad)  # type: ignore[arg-type]


def test_latest_day_and_search(reader: analytics.Reader) -> None:
    at = lambda s: datetime.fromisoformat(s).replace(tzinfo=UTC)  # noqa: E731
    assert analytics.latest_day(reader, now=at("2026-03-09T00:00:00")) == MAR7
    # Times more than a day ahead of now are a sender's clock, not the latest day.
    assert analytics.latest_day(reader, now=at("2026-03-05T12:00:00")) == MAR5
    assert analytics.latest_day(reader, now=at("2026-02-01T00:00:00")) is None
    assert analytics.find(reader, "D1") == {"kind": "delivery", "delivery_id": "D1"}
    assert analytics.find(reader, HOSTILE_ID) == {"kind": "delivery", "delivery_id": HOSTILE_ID}
    assert analytics.find(reader, "R1", now=at("2026-03-09T00:00:00")) == {
        "kind": "robot", "robot_id": "R1", "date": "2026-03-04",
    }  # fmt: skip
    assert analytics.find(reader, "nope") is None


def test_funnel_equals_the_cli(loaded: Any, reader: analytics.Reader) -> None:
    for day in (MAR5, MAR7):
        out = io.StringIO()
        assert reports.funnel(loaded, day.isoformat(), True, out=out) == 0
        assert analytics.funnel(reader, day, day) == json.loads(out.getvalue())
    result = analytics.funnel(reader, MAR5, MAR5)
    stages = {s["stage"]: s for s in analytics.funnel_stages(result)}
    (day,) = result["days"]
    for name, s in stages.items():
        assert {k: s[k] for k in ("count", "p50", "p90")} == day[f"{name}_s"]
        assert sum(b["count"] for b in s["histogram"]) == s["count"]
    assert stages["created_to_dispatched"]["histogram"] == [{"lo_s": 60.0, "hi_s": 60.0,
                                                             "count": 1}]  # fmt: skip
    week = analytics.funnel(reader, date(2026, 3, 1), MAR7)
    assert [(d["date"], d["deliveries"]) for d in week["days"]] == [
        ("2026-03-05", 2), ("2026-03-07", 4),
    ]  # fmt: skip
    assert week["days"][1]["created_to_dispatched_s"] == {"count": 1, "p50": 120.0, "p90": 120.0}


def test_funnel_stage_histogram() -> None:
    result = {"deliveries": [{"created_to_dispatched_s": float(v)} for v in range(0, 101, 10)]}
    (first, *rest) = analytics.funnel_stages(result, bins=5)
    assert [(b["lo_s"], b["hi_s"], b["count"]) for b in first["histogram"]] == [
        (0.0, 20.0, 2), (20.0, 40.0, 2), (40.0, 60.0, 2), (60.0, 80.0, 2), (80.0, 100.0, 3),
    ]  # fmt: skip
    assert (first["count"], first["p50"], first["p90"]) == (11, 50.0, 90.0)
    assert all(s["count"] == 0 and s["histogram"] == [] and s["p50"] is None for s in rest)
    with pytest.raises(ValueError):
        analytics.funnel_stages(result, bins=0)
