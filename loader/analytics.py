"""The analyses the data exists for, as SQL models in both dialects (created by the loader as
views) and the queries behind `logship session`, `logship supply-hours` and `logship funnel`.

* `robot_state_intervals`: one row per `robot.state_changed`, lasting until the robot's next
  one (`LEAD` over `occurred_at`, so late and out-of-order arrivals land where they belong); the
  last open interval is closed at the robot's last event in the data.
* `supply_hours_daily`: those intervals split at day boundaries (in `LOGSHIP_TIMEZONE`), summed
  per robot, day and bucket — `usable` for `LOGSHIP_USABLE_STATES`, else the downtime reason
  (the event's `reason`, else the state name).
* `delivery_funnel_daily`: per day and stage, the count, p50 and p90 of the stage's duration.
* `robot_reliability_daily`: errors per robot per day and the mean usable hours between them.
* `delivery_funnel`: per delivery the times of created → dispatched → pickup_completed →
  dropoff_completed.
* the delivery session: every event carrying the delivery id, plus the events without a
  delivery id of the robots that served it, inside the delivery's window widened by
  `LOGSHIP_SESSION_MARGIN_S`.

The SQL sticks to what Redshift, DuckDB and PostgreSQL (the emulator) share: `EXTRACT(EPOCH
FROM …)`, `INTERVAL '…'`, `AT TIME ZONE`, `WITH RECURSIVE`, `LEAD`/`LAG`, `PERCENTILE_CONT`.
Values travel as parameters; the few literals (timezone, states, margin) are validated config.
"""

from __future__ import annotations

import itertools
import zoneinfo
from dataclasses import dataclass
from datetime import date
from typing import Any

from loader import sql
from loader.sql import Dialect, ident, literal

FUNNEL_STAGES = ("created", "dispatched", "pickup_completed", "dropoff_completed")


@dataclass(frozen=True)
class AnalyticsConfig:
    usable_states: tuple[str, ...] = ("available", "assigned", "on_trip")
    timezone: str = "UTC"
    session_margin_s: int = 300

    def __post_init__(self) -> None:
        zoneinfo.ZoneInfo(self.timezone)  # raises for an unknown zone
        for s in self.usable_states:
            ident(s)  # plain lowercase words only


def json_text(d: Dialect, column: str, key: str) -> str:
    """A top-level string property of a SUPER/JSON column."""
    ident(key)
    if d.name == "redshift":
        return f"JSON_EXTRACT_PATH_TEXT(JSON_SERIALIZE({column}), {literal(key)})"
    return f"json_extract_string({column}, {literal('$.' + key)})"


def json_out(d: Dialect, column: str) -> str:
    """The whole SUPER/JSON column as JSON text."""
    return f"JSON_SERIALIZE({column})" if d.name == "redshift" else f"CAST({column} AS VARCHAR)"


def _t(schema: str, name: str) -> str:
    return f"{ident(schema)}.{ident(name)}"


def view_robot_state_intervals(d: Dialect, schema: str, cfg: AnalyticsConfig) -> str:
    ev = _t(schema, sql.EVENTS)
    tz = literal(cfg.timezone)
    return f"""CREATE OR REPLACE VIEW {_t(schema, "robot_state_intervals")} AS
SELECT s.robot_id, s.event_id, s.to_state, s.reason,
       s.occurred_at AT TIME ZONE {tz} AS started_at,
       COALESCE(LEAD(s.occurred_at) OVER (PARTITION BY s.robot_id
                                          ORDER BY s.occurred_at, s.event_id),
                l.last_at) AT TIME ZONE {tz} AS ended_at
FROM (SELECT robot_id, event_id, occurred_at,
             {json_text(d, "properties", "to_state")} AS to_state,
             {json_text(d, "properties", "reason")} AS reason
      FROM {ev} WHERE event_name = 'robot.state_changed' AND robot_id IS NOT NULL) s
JOIN (SELECT robot_id, MAX(occurred_at) AS last_at FROM {ev}
      WHERE robot_id IS NOT NULL GROUP BY robot_id) l ON l.robot_id = s.robot_id"""


def view_supply_hours_daily(d: Dialect, schema: str, cfg: AnalyticsConfig) -> str:
    usable = ", ".join(literal(s) for s in cfg.usable_states)
    iv = _t(schema, "robot_state_intervals")
    day = "INTERVAL '1 day'"
    return f"""CREATE OR REPLACE VIEW {_t(schema, "supply_hours_daily")} AS
WITH RECURSIVE bounds (lo, hi) AS (
  SELECT MIN(DATE_TRUNC('day', started_at)), MAX(DATE_TRUNC('day', ended_at)) FROM {iv}
), days (day) AS (
  SELECT lo FROM bounds
  UNION ALL
  SELECT days.day + {day} FROM days, bounds WHERE days.day < bounds.hi
)
SELECT i.robot_id, CAST(days.day AS DATE) AS day,
       CASE WHEN i.to_state IN ({usable}) THEN 'usable'
            ELSE COALESCE(i.reason, i.to_state) END AS bucket,
       SUM(EXTRACT(EPOCH FROM LEAST(i.ended_at, days.day + {day}))
           - EXTRACT(EPOCH FROM GREATEST(i.started_at, days.day))) / 3600.0 AS hours
FROM {iv} i JOIN days ON i.started_at < days.day + {day} AND i.ended_at > days.day
WHERE i.ended_at > i.started_at
GROUP BY 1, 2, 3"""


def view_delivery_funnel(d: Dialect, schema: str) -> str:
    cols = ",\n       ".join(
        f"MIN(CASE WHEN event_name = 'delivery.{s}' THEN occurred_at END) AS {s}_at"
        for s in FUNNEL_STAGES
    )
    names = ", ".join(literal(f"delivery.{s}") for s in FUNNEL_STAGES)
    return f"""CREATE OR REPLACE VIEW {_t(schema, "delivery_funnel")} AS
SELECT delivery_id,
       {cols}
FROM {_t(schema, sql.EVENTS)}
WHERE delivery_id IS NOT NULL AND event_name IN ({names})
GROUP BY delivery_id"""


def view_delivery_funnel_daily(d: Dialect, schema: str, cfg: AnalyticsConfig) -> str:
    """Per day (of `created_at`) and stage: deliveries, p50 and p90 of the stage's duration."""
    tz = literal(cfg.timezone)
    parts = []
    for a, b in itertools.pairwise(FUNNEL_STAGES):
        parts.append(
            f"SELECT created_at, '{a}_to_{b}' AS stage, "
            f"EXTRACT(EPOCH FROM {b}_at) - EXTRACT(EPOCH FROM {a}_at) AS seconds "
            f"FROM {_t(schema, 'delivery_funnel')} "
            f"WHERE created_at IS NOT NULL AND {a}_at IS NOT NULL AND {b}_at IS NOT NULL"
        )
    union = "\n  UNION ALL\n  ".join(parts)
    return f"""CREATE OR REPLACE VIEW {_t(schema, "delivery_funnel_daily")} AS
SELECT CAST(created_at AT TIME ZONE {tz} AS DATE) AS day, stage, COUNT(*) AS deliveries,
       PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY seconds) AS p50_s,
       PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY seconds) AS p90_s
FROM (
  {union}
) s
GROUP BY CAST(created_at AT TIME ZONE {tz} AS DATE), stage"""


def view_robot_reliability_daily(d: Dialect, schema: str, cfg: AnalyticsConfig) -> str:
    """Errors per robot per day, and the mean usable hours between them (MTBF)."""
    tz = literal(cfg.timezone)
    return f"""CREATE OR REPLACE VIEW {_t(schema, "robot_reliability_daily")} AS
SELECT u.robot_id, u.day, u.usable_hours, COALESCE(e.errors, 0) AS errors,
       CASE WHEN COALESCE(e.errors, 0) > 0 THEN u.usable_hours / e.errors END AS mtbf_hours
FROM (SELECT robot_id, day, SUM(CASE WHEN bucket = 'usable' THEN hours ELSE 0 END) AS usable_hours
      FROM {_t(schema, "supply_hours_daily")} GROUP BY robot_id, day) u
LEFT JOIN (SELECT robot_id, CAST(occurred_at AT TIME ZONE {tz} AS DATE) AS day, COUNT(*) AS errors
           FROM {_t(schema, sql.EVENTS)}
           WHERE event_name = 'robot.error' AND robot_id IS NOT NULL
           GROUP BY robot_id, CAST(occurred_at AT TIME ZONE {tz} AS DATE)) e
  ON e.robot_id = u.robot_id AND e.day = u.day"""


def create_views(d: Dialect, schema: str, cfg: AnalyticsConfig) -> list[str]:
    return [
        view_robot_state_intervals(d, schema, cfg),
        view_supply_hours_daily(d, schema, cfg),
        view_delivery_funnel(d, schema),
        view_delivery_funnel_daily(d, schema, cfg),
        view_robot_reliability_daily(d, schema, cfg),
    ]


# ------------------------------------------------------------------------------- queries


def session_query(d: Dialect, schema: str, cfg: AnalyticsConfig) -> str:
    """One parameter: the delivery id. No rows for an unknown id."""
    ev = _t(schema, sql.EVENTS)
    margin = f"INTERVAL '{int(cfg.session_margin_s)} seconds'"
    return f"""WITH own AS (
  SELECT * FROM {ev} WHERE delivery_id = {d.param}
), win AS (
  SELECT MIN(occurred_at) - {margin} AS lo, MAX(occurred_at) + {margin} AS hi FROM own
), s AS (
  SELECT * FROM own
  UNION ALL
  SELECT e.* FROM {ev} e, win
  WHERE e.delivery_id IS NULL AND e.occurred_at BETWEEN win.lo AND win.hi
    AND e.robot_id IN (SELECT DISTINCT robot_id FROM own WHERE robot_id IS NOT NULL)
)
SELECT event_id, event_name, occurred_at, received_at, service, host, delivery_id, robot_id,
       {json_out(d, "properties")} AS properties,
       EXTRACT(EPOCH FROM occurred_at) - EXTRACT(EPOCH FROM LAG(occurred_at) OVER
         (ORDER BY occurred_at, received_at, event_id)) AS gap_s
FROM s
ORDER BY occurred_at, received_at, event_id"""


def supply_query(d: Dialect, schema: str, day: bool, robot: bool) -> str:
    where = []
    if day:
        where.append(f"day = {d.param}")
    if robot:
        where.append(f"robot_id = {d.param}")
    cond = (" WHERE " + " AND ".join(where)) if where else ""
    return (
        f"SELECT robot_id, day, bucket, hours FROM {_t(schema, 'supply_hours_daily')}{cond} "
        "ORDER BY robot_id, day, bucket"
    )


def funnel_query(d: Dialect, schema: str, day: bool) -> str:
    cond = f" WHERE CAST(created_at AS DATE) = {d.param}" if day else ""
    return (
        f"SELECT delivery_id, {', '.join(f'{s}_at' for s in FUNNEL_STAGES)} "
        f"FROM {_t(schema, 'delivery_funnel')}{cond} ORDER BY created_at, delivery_id"
    )


def shape_supply(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Rows (robot, day, bucket, hours) → [{robot_id, date, usable_hours, downtime_hours}]."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for robot, day, bucket, hours in rows:
        key = (robot, _day(day))
        item = out.setdefault(
            key, {"robot_id": robot, "date": key[1], "usable_hours": 0.0, "downtime_hours": {}}
        )
        h = round(float(hours), 6)
        if bucket == "usable":
            item["usable_hours"] = round(item["usable_hours"] + h, 6)
        else:
            item["downtime_hours"][bucket] = round(item["downtime_hours"].get(bucket, 0.0) + h, 6)
    return list(out.values())


def shape_funnel(rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """Per delivery the stage times and durations; per day the count and p50/p90 per stage."""
    deliveries = []
    per_day: dict[str, dict[str, list[float]]] = {}
    for delivery_id, *times in rows:
        stamps = dict(zip(FUNNEL_STAGES, times, strict=True))
        durations = {}
        for a, b in itertools.pairwise(FUNNEL_STAGES):
            if stamps[a] is not None and stamps[b] is not None:
                durations[f"{a}_to_{b}_s"] = (stamps[b] - stamps[a]).total_seconds()
        deliveries.append(
            {"delivery_id": delivery_id,
             **{f"{s}_at": _iso(t) for s, t in stamps.items()}, **durations}
        )  # fmt: skip
        if stamps["created"] is not None:
            bucket = per_day.setdefault(_day(stamps["created"]), {})
            bucket.setdefault("deliveries", []).append(1.0)
            for k, v in durations.items():
                bucket.setdefault(k, []).append(v)
    days = []
    for day, values in sorted(per_day.items()):
        entry: dict[str, Any] = {"date": day, "deliveries": len(values.pop("deliveries"))}
        for k, v in values.items():
            entry[k] = {"count": len(v), "p50": _pct(v, 0.5), "p90": _pct(v, 0.9)}
        days.append(entry)
    return {"deliveries": deliveries, "days": days}


def _pct(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, like PERCENTILE_CONT."""
    v = sorted(values)
    pos = (len(v) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return round(v[lo] + (v[hi] - v[lo]) * (pos - lo), 3)


def _day(v: Any) -> str:
    return v.isoformat()[:10] if hasattr(v, "isoformat") else str(v)[:10]


def _iso(v: Any) -> str | None:
    return None if v is None else v.isoformat()


def parse_day(text: str) -> date:
    return date.fromisoformat(text)
