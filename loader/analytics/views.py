"""The analyses as SQL views, for BI tools (Sigma, Looker, Grafana) and notebooks: the loader
creates them at start. They read the whole history on every query — the pages and the CLI's
per-day commands use the bounded queries of the other modules, which follow the same rules.

* `robot_state_intervals`: one row per `robot.state_changed`, lasting until the robot's next
  one (`LEAD` over `occurred_at`, so late and out-of-order arrivals land where they belong); the
  last open interval is closed at the robot's last event in the data.
* `supply_hours_daily`: those intervals split at day boundaries (in `LOGSHIP_TIMEZONE`, by
  wall-clock time), summed per robot, day and bucket — `usable` for `LOGSHIP_USABLE_STATES`,
  else the downtime reason (the event's `reason`, else the state name).
* `delivery_funnel`: per delivery the times of created → dispatched → pickup_completed →
  dropoff_completed.
* `delivery_funnel_daily`: per day and stage, the count, p50 and p90 of the stage's duration.
* `robot_reliability_daily`: errors per robot per day and the mean usable hours between them.
* `delivery_sessions`: every delivery's session (`session_delivery_id` + the event's columns
  and `gap_s`), as `logship session` has it; a tool filters it by `session_delivery_id`.

The SQL sticks to what Redshift, DuckDB and PostgreSQL (the emulator) share: `EXTRACT(EPOCH
FROM …)`, `INTERVAL '…'`, `AT TIME ZONE`, `WITH RECURSIVE`, `LEAD`/`LAG`, `PERCENTILE_CONT`.
The few literals (timezone, states, margin) are validated config.
"""

from __future__ import annotations

import itertools

from loader.analytics.base import FUNNEL_STAGES, AnalyticsConfig, table
from loader.analytics.session import SESSION_COLUMNS
from loader.warehouse.sql import EVENTS, Dialect, literal


def view_robot_state_intervals(d: Dialect, schema: str, cfg: AnalyticsConfig) -> str:
    ev = table(schema, EVENTS)
    tz = literal(cfg.timezone)
    return f"""CREATE OR REPLACE VIEW {table(schema, "robot_state_intervals")} AS
SELECT s.robot_id, s.event_id, s.to_state, s.reason,
       s.occurred_at AT TIME ZONE {tz} AS started_at,
       COALESCE(LEAD(s.occurred_at) OVER (PARTITION BY s.robot_id
                                          ORDER BY s.occurred_at, s.event_id),
                l.last_at) AT TIME ZONE {tz} AS ended_at
FROM (SELECT robot_id, event_id, occurred_at,
             {d.json_text("properties", "to_state")} AS to_state,
             {d.json_text("properties", "reason")} AS reason
      FROM {ev} WHERE event_name = 'robot.state_changed' AND robot_id IS NOT NULL) s
JOIN (SELECT robot_id, MAX(occurred_at) AS last_at FROM {ev}
      WHERE robot_id IS NOT NULL GROUP BY robot_id) l ON l.robot_id = s.robot_id"""


def view_supply_hours_daily(d: Dialect, schema: str, cfg: AnalyticsConfig) -> str:
    usable = ", ".join(literal(s) for s in cfg.usable_states)
    iv = table(schema, "robot_state_intervals")
    day = "INTERVAL '1 day'"
    return f"""CREATE OR REPLACE VIEW {table(schema, "supply_hours_daily")} AS
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
    return f"""CREATE OR REPLACE VIEW {table(schema, "delivery_funnel")} AS
SELECT delivery_id,
       {cols}
FROM {table(schema, EVENTS)}
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
            f"FROM {table(schema, 'delivery_funnel')} "
            f"WHERE created_at IS NOT NULL AND {a}_at IS NOT NULL AND {b}_at IS NOT NULL"
        )
    union = "\n  UNION ALL\n  ".join(parts)
    return f"""CREATE OR REPLACE VIEW {table(schema, "delivery_funnel_daily")} AS
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
    return f"""CREATE OR REPLACE VIEW {table(schema, "robot_reliability_daily")} AS
SELECT u.robot_id, u.day, u.usable_hours, COALESCE(e.errors, 0) AS errors,
       CASE WHEN COALESCE(e.errors, 0) > 0 THEN u.usable_hours / e.errors END AS mtbf_hours
FROM (SELECT robot_id, day, SUM(CASE WHEN bucket = 'usable' THEN hours ELSE 0 END) AS usable_hours
      FROM {table(schema, "supply_hours_daily")} GROUP BY robot_id, day) u
LEFT JOIN (SELECT robot_id, CAST(occurred_at AT TIME ZONE {tz} AS DATE) AS day, COUNT(*) AS errors
           FROM {table(schema, EVENTS)}
           WHERE event_name = 'robot.error' AND robot_id IS NOT NULL
           GROUP BY robot_id, CAST(occurred_at AT TIME ZONE {tz} AS DATE)) e
  ON e.robot_id = u.robot_id AND e.day = u.day"""


def view_delivery_sessions(d: Dialect, schema: str, cfg: AnalyticsConfig) -> str:
    """Every delivery's session: its own events, and its robots' events without a delivery id
    inside its window (± `session_margin_s`). Filter by `session_delivery_id`."""
    ev = table(schema, EVENTS)
    m = f"INTERVAL '{int(cfg.session_margin_s)} seconds'"
    cols = ", ".join(f"e.{c}" for c in SESSION_COLUMNS)
    out = ", ".join(f"s.{c}" for c in SESSION_COLUMNS)
    return f"""CREATE OR REPLACE VIEW {table(schema, "delivery_sessions")} AS
WITH win AS (
  SELECT delivery_id, MIN(occurred_at) - {m} AS lo, MAX(occurred_at) + {m} AS hi
  FROM {ev} WHERE delivery_id IS NOT NULL GROUP BY delivery_id
), bots AS (
  SELECT DISTINCT delivery_id, robot_id FROM {ev}
  WHERE delivery_id IS NOT NULL AND robot_id IS NOT NULL
), s AS (
  SELECT e.delivery_id AS session_delivery_id, {cols}
  FROM {ev} e WHERE e.delivery_id IS NOT NULL
  UNION ALL
  SELECT b.delivery_id AS session_delivery_id, {cols}
  FROM bots b JOIN win w ON w.delivery_id = b.delivery_id
  JOIN {ev} e ON e.robot_id = b.robot_id AND e.delivery_id IS NULL
   AND e.occurred_at BETWEEN w.lo AND w.hi
)
SELECT s.session_delivery_id, {out},
       EXTRACT(EPOCH FROM s.occurred_at) - EXTRACT(EPOCH FROM LAG(s.occurred_at) OVER
         (PARTITION BY s.session_delivery_id
          ORDER BY s.occurred_at, s.received_at, s.event_id)) AS gap_s
FROM s"""


def create_views(d: Dialect, schema: str, cfg: AnalyticsConfig) -> list[str]:
    return [
        view_robot_state_intervals(d, schema, cfg),
        view_supply_hours_daily(d, schema, cfg),
        view_delivery_funnel(d, schema),
        view_delivery_funnel_daily(d, schema, cfg),
        view_robot_reliability_daily(d, schema, cfg),
        view_delivery_sessions(d, schema, cfg),
    ]


# ----------------------------------------------- whole-history reads (the CLI without --date)


def supply_view_sql(d: Dialect, schema: str, robot: bool) -> str:
    """Every day of `supply_hours_daily` (optionally of one robot: one parameter)."""
    cond = f" WHERE robot_id = {d.param}" if robot else ""
    return (
        f"SELECT robot_id, day, bucket, hours FROM {table(schema, 'supply_hours_daily')}{cond} "
        "ORDER BY robot_id, day, bucket"
    )


def funnel_view_sql(d: Dialect, schema: str) -> str:
    """Every delivery of `delivery_funnel`, in creation order."""
    return (
        f"SELECT delivery_id, {', '.join(f'{s}_at' for s in FUNNEL_STAGES)} "
        f"FROM {table(schema, 'delivery_funnel')} ORDER BY created_at, delivery_id"
    )
