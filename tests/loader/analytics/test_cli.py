"""The CLI's reports (`logship session`, `supply-hours`, `funnel`) and the views on DuckDB and on
the Redshift emulator, against the hand-computed expectations of scenario.py."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from loader import reports
from tests.loader.analytics.scenario import (
    SESSION_GAPS,
    SESSION_IN,
    SESSION_OUT,
    SUPPLY_EXPECTED,
)
from tests.loader.helpers import event, loader_settings, object_key, put_local


def run(fn: Any, *args: Any) -> tuple[int, str]:
    out = io.StringIO()
    code = fn(*args, out=out)
    return code, out.getvalue()


def test_supply_hours(loaded: Any) -> None:
    code, text = run(reports.supply_hours, loaded, None, "R1", True)
    assert code == 0
    assert json.loads(text) == SUPPLY_EXPECTED
    code, text = run(reports.supply_hours, loaded, "2026-03-02", None, True)
    assert [i for i in json.loads(text) if i["robot_id"] == "R1"] == [SUPPLY_EXPECTED[1]]
    code, text = run(reports.supply_hours, loaded, None, "R1", False)
    assert "100% of downtime was due to lid_error" in text


def test_delivery_session(loaded: Any) -> None:
    code, text = run(reports.session, loaded, "D1", True)
    assert code == 0
    got = json.loads(text)
    assert [e["event_id"] for e in got] == [e["event_id"] for e in SESSION_IN]
    assert [e["gap_s"] for e in got] == SESSION_GAPS
    first = got[0]
    assert set(first) >= {"event_id", "event_name", "occurred_at", "service", "delivery_id",
                          "robot_id", "properties"}  # fmt: skip
    assert first["occurred_at"] == "2026-03-05T09:55:00.000000Z"
    assert first["properties"]["to_state"] == "assigned"
    code, text = run(reports.session, loaded, "D1", False)
    assert "delivery D1: 8 events" in text and "+1140s" not in text
    assert "dropoff_completed" in text
    # A delivery with no robot: only its own events.
    code, text = run(reports.session, loaded, "D3", True)
    assert [e["event_name"] for e in json.loads(text)] == ["delivery.created"]
    # An unknown delivery id: a message and exit code 1.
    assert run(reports.session, loaded, "D-nope", True)[0] == 1


def test_funnel(loaded: Any) -> None:
    code, text = run(reports.funnel, loaded, "2026-03-05", True)
    assert code == 0
    result = json.loads(text)
    d1 = next(d for d in result["deliveries"] if d["delivery_id"] == "D1")
    assert d1["created_to_dispatched_s"] == 60.0
    assert d1["dispatched_to_pickup_completed_s"] == 1140.0
    assert d1["pickup_completed_to_dropoff_completed_s"] == 1200.0
    (day,) = result["days"]
    assert day["date"] == "2026-03-05" and day["deliveries"] == 2  # D1, D3 (D2 was never created)
    assert day["created_to_dispatched_s"] == {"count": 1, "p50": 60.0, "p90": 60.0}


def test_cli_session_json_and_unknown_id(tmp_path: Path) -> None:
    for i, rows in enumerate([SESSION_IN, SESSION_OUT]):
        put_local(tmp_path / "lake", object_key(i), rows)
    env = {"PATH": "/usr/bin:/bin", "LOGSHIP_LAKE_URL": str(tmp_path / "lake"),
           "LOGSHIP_WAREHOUSE_URL": f"duckdb:///{tmp_path}/wh.duckdb"}  # fmt: skip
    cmd = [sys.executable, "-m", "ingest.cli"]
    assert subprocess.run([*cmd, "load", "--once"], env=env, timeout=120).returncode == 0
    r = subprocess.run([*cmd, "session", "D1", "--json"], env=env, capture_output=True,
                       text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert [e["event_id"] for e in json.loads(r.stdout)] == [e["event_id"] for e in SESSION_IN]
    r = subprocess.run([*cmd, "session", "D-unknown"], env=env, capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    assert r.returncode == 1 and "D-unknown" in r.stderr and "Traceback" not in r.stderr
    empty = dict(env, LOGSHIP_WAREHOUSE_URL=f"duckdb:///{tmp_path}/empty.duckdb")
    r = subprocess.run(
        [*cmd, "supply-hours"], env=empty, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 1 and "cannot query the warehouse" in r.stderr


def test_robot_reliability(loaded: Any) -> None:
    """R3 on 2026-03-05: available from 10:44 until its last event (10:46) = 2 min usable; two
    robot.error events that day (10:30, 10:46) → MTBF 1 min. R1 never errs: MTBF null."""
    wh = reports._warehouse(loaded)
    try:
        rows = wh.query(
            "SELECT robot_id, CAST(day AS VARCHAR), usable_hours, errors, mtbf_hours "
            "FROM logship.robot_reliability_daily WHERE robot_id IN ('R1', 'R3') "
            "ORDER BY robot_id, day"
        )
    finally:
        wh.close()
    r3 = [r for r in rows if r[0] == "R3"]
    assert len(r3) == 1
    _, day, usable, errors, mtbf = r3[0]
    assert str(day)[:10] == "2026-03-05" and int(errors) == 2
    assert abs(float(usable) - 2 / 60) < 1e-9 and abs(float(mtbf) - 1 / 60) < 1e-9
    assert all(r[4] is None and int(r[3]) == 0 for r in rows if r[0] == "R1")


async def test_funnel_daily_view_matches_the_cli(tmp_path: Path) -> None:
    """PERCENTILE_CONT in the view and the CLI's per-day figures agree on a demo day."""
    import orjson as _orjson

    from ingest.demo import generate
    from tests.loader.helpers import make_loader

    rows = []
    for rec in generate(datetime(2026, 3, 6).date(), deliveries=25, seed=3):
        try:
            body = _orjson.loads(rec["message"])
        except _orjson.JSONDecodeError:
            continue
        if isinstance(body, dict) and str(body.get("event", "")).startswith("delivery."):
            props = {k: v for k, v in body.items() if k not in ("event", "event_id", "timestamp")}
            rows.append(event(body["event"], event_id=body["event_id"],
                              occurred=datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00")),
                              **props))  # fmt: skip
    put_local(tmp_path / "lake", object_key(1), rows)
    settings = loader_settings(tmp_path)
    loader = await make_loader(settings)
    await loader.cycle()
    loader.warehouse.close()
    code, text = run(reports.funnel, settings, "2026-03-06", True)
    assert code == 0
    (day,) = json.loads(text)["days"]
    wh = reports._warehouse(settings)
    try:
        view = wh.query("SELECT stage, deliveries, p50_s, p90_s FROM logship.delivery_funnel_daily")
    finally:
        wh.close()
    assert len(view) == 3
    for stage, n, p50, p90 in view:
        cli = day[f"{stage}_s"]
        assert int(n) == cli["count"]
        assert abs(float(p50) - cli["p50"]) < 0.01 and abs(float(p90) - cli["p90"]) < 0.01
