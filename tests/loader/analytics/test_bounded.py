"""The analyses read only what they show.

1. On both backends: every statement of the page analyses bounds each read of `events` by
   `occurred_at` parameters, and those lie within the days (or the delivery's window) asked
   plus the horizons — except the look-up of a robot id by its column (the search box), and
   the probe of `delivery_spans` by delivery id.
2. On DuckDB, measured: with 400 days of history generated in the warehouse (1.2 M events in
   time order, as a loader writes them; `delivery_spans` built from them by the loader, as
   when a warehouse from before that table is upgraded), the rows each statement scans
   (DuckDB's profiler; row groups are skipped by their `occurred_at` min/max) are the few row
   groups of the days shown, while the whole-history view scans all of them — so the check
   can fail; the probe of `delivery_spans` reads one row group of it (sorted by bucket), not
   the table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import pytest

from loader import analytics
from loader.analytics import AnalyticsConfig, Reader, create_views
from loader.warehouse import open_warehouse
from loader.warehouse.sql import DUCKDB
from tests.loader.helpers import ENTITIES

#: A robot id's look-up (the search box): the one statement shape allowed to read a whole
#: column of `events`.
LOOKUP = re.compile(
    r"^SELECT MAX\(occurred_at\) FROM \S+ WHERE robot_id = (\?|%s) AND occurred_at <= (\?|%s)$"
)
#: A delivery's recorded bounds: a probe of `delivery_spans` by its bucket and id.
PROBE = re.compile(
    r'^SELECT MIN\(first_at\) AS first_at, MAX\(last_at\) AS last_at FROM "\w+"\."delivery_spans" '
    r"WHERE bucket = (\?|%s) AND delivery_id = (\?|%s)$"
)
BOUND = re.compile(r"\b(?:\w\.)?occurred_at >= (?:\?|%s)")


def _page_calls(r: Reader) -> None:
    """Every page's analyses, for the scenario's days."""
    mar5 = date(2026, 3, 5)
    assert analytics.delivery(r, "D1") is not None
    assert analytics.robot_day(r, "R3", mar5) is not None
    assert analytics.supply_hours(r, mar5, mar5)
    assert analytics.supply_hours(r, date(2026, 3, 1), date(2026, 3, 31))
    assert analytics.downtime_intervals(r, mar5, mar5, "usable")
    assert analytics.deliveries_of_day(r, mar5)
    assert analytics.funnel(r, mar5, mar5)["days"]
    assert analytics.find(r, "R3") is not None


def test_every_read_of_events_is_bounded(reader: Reader) -> None:
    calls = reader.query.calls  # type: ignore[attr-defined]
    calls.clear()
    _page_calls(reader)
    events = f'"{reader.schema}"."events"'
    lookups = probes = 0
    horizon = timedelta(seconds=reader.cfg.state_horizon_s + reader.cfg.delivery_horizon_s)
    lo = datetime(2026, 3, 1, tzinfo=UTC) - horizon
    hi = datetime(2026, 4, 1, tzinfo=UTC) + horizon
    for stmt, params in calls:
        flat = " ".join(stmt.split())
        if LOOKUP.match(flat):
            lookups += 1
            continue
        if PROBE.match(flat):
            probes += 1
            continue
        reads = flat.count(f"FROM {events}") + flat.count(f"JOIN {events}")
        assert reads and len(BOUND.findall(flat)) >= reads, flat
        times = [p for p in params if isinstance(p, datetime)]
        assert times and all(lo <= t <= hi for t in times), (flat, times)
    # The search box's look-ups of "R3": as a delivery (a probe finding nothing), then as a
    # robot (its column). The session's window (D1): a probe, then its window's range.
    assert lookups == 1 and probes == 2
    calls.clear()
    assert analytics.delivery(reader, "D1") is not None
    assert not any(LOOKUP.match(" ".join(stmt.split())) for stmt, _ in calls)
    calls.clear()
    assert analytics.delivery(reader, "D-unknown") is None
    assert [PROBE.match(" ".join(stmt.split())) is not None for stmt, _ in calls] == [True]


# ----------------------------------------------------------------- measured on DuckDB

N_EVENTS = 1_200_000
ROW_GROUP = 122_880  # DuckDB's rows per row group, the unit it skips
DAYS = 400
START = datetime(2025, 1, 1, tzinfo=UTC)
NAMES = ("robot.state_changed", "delivery.created", "delivery.dispatched",
         "delivery.pickup_started", "robot.error", "delivery.dropoff_completed")  # fmt: skip


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB warehouse holding a year of a 20-robot fleet, generated in SQL."""
    path = tmp_path_factory.mktemp("history") / "wh.duckdb"
    wh = open_warehouse(f"duckdb:///{path}", schema="logship", entities=ENTITIES,
                        dedupe_window_s=3600, iam_role="", statement_timeout_s=60,
                        views=partial(create_views, cfg=AnalyticsConfig()))  # fmt: skip
    wh.ensure_schema()
    wh.close()
    step_us = DAYS * 86400 * 1_000_000 // N_EVENTS
    names = ", ".join(f"'{n}'" for n in NAMES)
    con = duckdb.connect(str(path))
    con.execute(f"""
INSERT INTO logship.events (event_id, event_name, event_version, occurred_at, received_at,
                            service, host, delivery_id, robot_id, properties)
SELECT 'e' || i, n, 1, t, t, 'fleet', 'h',
       CASE WHEN n LIKE 'delivery.%' THEN 'D' || (i // 6) END,
       'R' || ((i // 6) % 20),
       CASE WHEN n = 'robot.state_changed'
            THEN json_object('to_state', ['available', 'on_trip', 'error'][1 + (i // 6) % 3],
                             'reason', 'lid_error')
            ELSE json_object('error_code', 'lid_error') END
FROM (SELECT range AS i, [{names}][1 + range % 6] AS n,
             TIMESTAMPTZ '{START.isoformat()}' + to_microseconds(range * {step_us}) AS t
      FROM range({N_EVENTS}))
ORDER BY t""")
    con.execute("DROP TABLE logship.delivery_spans")
    con.close()
    wh.ensure_schema()  # builds delivery_spans from the events, as on an upgrade
    wh.close()
    return path


class Profiled:
    """A DuckDB query function that keeps each statement's rows scanned (the profiler's
    `total_rows_scanned`)."""

    def __init__(self, path: Path, out: Path) -> None:
        self.con = duckdb.connect(str(path), read_only=True)
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute("PRAGMA enable_profiling = 'json'")
        self.con.execute(f"SET profiling_output = '{out}'")
        self.out = out
        self.scanned: list[tuple[str, int]] = []

    def __call__(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        self.out.unlink(missing_ok=True)
        rows = self.con.execute(statement, list(params)).fetchall()
        # No profile: DuckDB answered from statistics (MAX(occurred_at)), scanning nothing.
        profile = json.loads(self.out.read_text()) if self.out.exists() else None
        scanned = profile["query"]["total_rows_scanned"] if profile else 0
        self.scanned.append((" ".join(statement.split()), scanned))
        return rows


@pytest.fixture
def profiled(history: Path, tmp_path: Path) -> Iterator[tuple[Reader, Profiled]]:
    q = Profiled(history, tmp_path / "profile.json")
    try:
        yield Reader(q, DUCKDB, "logship", AnalyticsConfig()), q
    finally:
        q.con.close()


def test_rows_scanned_grow_with_what_is_shown_not_with_the_history(
    profiled: tuple[Reader, Profiled],
) -> None:
    r, q = profiled
    day = (START + timedelta(days=200)).date()
    did = "D" + str(200 * N_EVENTS // DAYS // 6 + 1)  # a delivery of that day
    assert analytics.delivery(r, did) is not None
    assert analytics.robot_day(r, "R3", day) is not None
    assert analytics.supply_hours(r, day, day)
    assert analytics.downtime_intervals(r, day, day, "lid_error")
    assert analytics.deliveries_of_day(r, day)
    assert analytics.funnel(r, day, day)["days"]
    one_day = list(q.scanned)
    q.scanned.clear()
    assert analytics.supply_hours(r, day, day + timedelta(days=30))
    month = list(q.scanned)
    q.scanned.clear()
    r.query("SELECT * FROM logship.supply_hours_daily WHERE day = ?", [day])
    (control,) = q.scanned

    assert control[1] >= N_EVENTS  # the view reads the whole history (twice, in fact)
    # DuckDB skips whole row groups: one holds ~41 days here, the history ~10 of them. A day
    # ± the 7-day state horizon (15 days) lies in at most 2, a month ± it (45 days) in 3.
    # The probe reads one row group of delivery_spans (sorted by bucket), not the table.
    ((spans,),) = r.query("SELECT COUNT(*) FROM logship.delivery_spans", [])
    assert spans > ROW_GROUP
    probes = [rows for stmt, rows in one_day if PROBE.match(stmt)]
    assert probes and all(rows <= ROW_GROUP for rows in probes), one_day
    for stmt, rows in one_day:
        if not PROBE.match(stmt):
            assert rows <= 2 * ROW_GROUP * stmt.count('"events"'), (stmt, rows)
    for stmt, rows in month:
        assert rows <= 3 * ROW_GROUP * stmt.count('"events"'), (stmt, rows)
