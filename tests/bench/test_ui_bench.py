"""The UI benchmark (`bench/ui.py`) at a toy size: it builds the loader's warehouse from the
demo fleet in SQL, serves the real UI on it, times every page at two history sizes and prints
one JSON line. The full run (10 M → 30 M events) is by hand; see the README's "Benchmarks".

No timed assertions: this checks that the bench runs, that its history is what it claims
(unique ids, the fleet's events, a longer history after the growth) and that its figures are
complete.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = ("session", "robot_day", "supply_day", "supply_31d", "session_unknown")


@pytest.mark.timeout(180)
def test_ui_bench_toy_size(tmp_path: Path) -> None:
    kept = tmp_path / "warehouse.duckdb"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSHIP_")}
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "ui.py"), "--events", "3000", "--grow-to", "6000",
         "--robots", "3", "--templates", "2", "--requests", "2", "--warmup", "1",
         "--keep", str(kept)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=170,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])

    small, grown = result["runs"]
    assert small["events"] >= 3000 and grown["events"] >= 6000
    assert grown["days"] > small["days"]
    for run in (small, grown):
        for page in PAGES:
            r = run["pages"][page]
            assert 0 < r["p50_ms"] <= r["p95_ms"] <= r["max_ms"], (page, r)
            assert r["touched"]["statements"] >= 1, page
            # An unknown id is one probe of delivery_spans' index (DuckDB may count 0 rows).
            assert r["touched"]["rows_scanned"] > 0 or page == "session_unknown", page
    assert {p: grown["pages"][p]["probe"] for p in PAGES} == {
        p: small["pages"][p]["probe"] for p in PAGES
    }  # the same requests at both sizes
    assert set(result["p95_ratio"]) == set(PAGES)
    assert set(result["targets_met"]) == {"session", "robot_day", "supply_day"}

    con = duckdb.connect(str(kept), read_only=True)
    try:
        names = {
            r[0] for r in con.execute('SELECT DISTINCT event_name FROM logship."events"').fetchall()
        }
        assert {"delivery.created", "delivery.dispatched", "delivery.pickup_started",
                "delivery.dropoff_completed", "robot.state_changed", "robot.error"} <= names  # fmt: skip
        total, ids = con.execute(
            'SELECT count(*), count(DISTINCT event_id) FROM logship."events"'
        ).fetchone()
        assert total == grown["events"] == ids
        created, deliveries = con.execute(
            'SELECT count(*), count(DISTINCT delivery_id) FROM logship."events" '
            "WHERE event_name = 'delivery.created'"
        ).fetchone()
        assert created == deliveries > 0  # every day's deliveries have their own ids
        # The views the loader creates are there and read the generated events.
        assert con.execute("SELECT count(*) FROM logship.supply_hours_daily").fetchone()[0] > 0
    finally:
        con.close()
