"""Supply hours: how long each robot was usable, and why it was not — per day, for a robot's
day, and as the downtime intervals behind a reason.

A robot's state is that of its latest `robot.state_changed`; each lasts until the robot's next
one, and the last one until the robot's last event in the data (the same rule as the
`robot_state_intervals` view). Hours are split at midnight in `LOGSHIP_TIMEZONE` (elapsed time:
a day of a DST change has 23 or 25 hours). Bucket: `usable` for a usable state, else the
change's `reason`, else the state's name.

Bounded: the intervals of days [lo, hi) come from the state changes in [lo - h, hi + h) with
h = `state_horizon_s` — each robot's last change before the first day, the changes during the
days, and the next event after them. Only a state unchanged for longer than h, with no event of
the robot after it for as long, is lost (the view, which reads everything, would carry it).

Two statements: a narrow one over [lo - h, hi + h) reads no `properties` — per robot, its last
change before lo, its first change at or after hi — and narrows the range the intervals need
to [the earliest of those last changes, the latest of those first changes] (to hi + h for a
robot with no change after hi: its state lasts until its last event). The intervals statement
then parses `properties` only in that range (typically the days asked and the nights around
them, not 7 days either side), and gives the same rows: an earlier change of a robot ends
before its last change before lo, a later one starts after its first change after hi.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from loader.analytics.base import (
    Reader,
    check_day,
    check_range,
    day_bounds,
    days_between,
    iso,
    plausible_id,
    seconds,
    storable,
    utc,
)
from loader.analytics.families import is_error
from loader.warehouse.sql import literal

USABLE = "usable"


@dataclass(frozen=True)
class Interval:
    robot_id: str
    state: str | None
    reason: str | None
    bucket: str
    start: datetime  # clipped to the range asked
    end: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"robot_id": self.robot_id, "state": self.state, "reason": self.reason,
                "bucket": self.bucket, "from": iso(self.start), "to": iso(self.end),
                "hours": round(seconds(self.start, self.end) / 3600, 6)}  # fmt: skip


def _range_sql(r: Reader, robots: int) -> str:
    """Per robot changing state in [lo - h, hi + h): its last change before lo, its first at
    or after hi, and whether it changed before hi at all. Narrow columns only. Parameters:
    lo, hi, hi, lo - h, hi + h, `robots` ids."""
    p = r.dialect.param
    only = f" AND robot_id IN ({r.dialect.params(robots)})" if robots else ""
    return f"""SELECT robot_id, MAX(CASE WHEN occurred_at < {p} THEN occurred_at END),
       MIN(CASE WHEN occurred_at >= {p} THEN occurred_at END),
       COUNT(CASE WHEN occurred_at < {p} THEN 1 END)
FROM {r.events}
WHERE event_name = 'robot.state_changed' AND robot_id IS NOT NULL
  AND occurred_at >= {p} AND occurred_at < {p}{only}
GROUP BY robot_id"""


def _changes_range(
    r: Reader, lo: datetime, hi: datetime, ids: list[str]
) -> tuple[datetime, datetime] | None:
    """The [start, end) of state changes (and events) the intervals overlapping [lo, hi)
    depend on (the module's docstring); None when no robot has a state then."""
    h = timedelta(seconds=r.cfg.state_horizon_s)
    rows = r.query(_range_sql(r, len(ids)), [lo, hi, hi, lo - h, hi + h, *ids])
    shown = [(before, after) for _, before, after, n in rows if n]  # a change before hi
    if not shown:
        return None
    start = min((utc(b) for b, _ in shown if b is not None), default=lo)
    if any(a is None for _, a in shown):
        return start, hi + h  # that robot's state lasts until its last event up to hi + h
    return start, max(utc(a) for _, a in shown) + timedelta(microseconds=1)


def _intervals_cte(r: Reader, robots: int) -> str:
    """`WITH … i AS (…)`: the state intervals of the changes in [start, end), with their
    bucket. Parameters: start, end, `robots` ids, and the same again."""
    d, ev, p = r.dialect, r.events, r.dialect.param
    only = f" AND robot_id IN ({d.params(robots)})" if robots else ""
    usable = ", ".join(literal(x) for x in r.cfg.usable_states)
    return f"""WITH s AS (
  SELECT robot_id, event_id, occurred_at,
         {d.json_text("properties", "to_state")} AS to_state,
         {d.json_text("properties", "reason")} AS reason
  FROM {ev}
  WHERE event_name = 'robot.state_changed' AND robot_id IS NOT NULL
    AND occurred_at >= {p} AND occurred_at < {p}{only}
), l AS (
  SELECT robot_id, MAX(occurred_at) AS last_at FROM {ev}
  WHERE robot_id IS NOT NULL AND occurred_at >= {p} AND occurred_at < {p}{only}
  GROUP BY robot_id
), i AS (
  SELECT s.robot_id, s.event_id, s.to_state, s.reason,
         CASE WHEN s.to_state IN ({usable}) THEN '{USABLE}'
              ELSE COALESCE(s.reason, s.to_state, 'unknown') END AS bucket,
         s.occurred_at AS started_at,
         COALESCE(LEAD(s.occurred_at) OVER (PARTITION BY s.robot_id
                                            ORDER BY s.occurred_at, s.event_id),
                  l.last_at) AS ended_at
  FROM s JOIN l ON l.robot_id = s.robot_id
)"""


def intervals_sql(r: Reader, robots: int, bucket: bool = False) -> str:
    """State intervals overlapping [lo, hi). Parameters: those of the CTE, lo, hi, then the
    bucket when `bucket`."""
    p = r.dialect.param
    only = f" AND bucket = {p}" if bucket else ""
    return f"""{_intervals_cte(r, robots)}
SELECT robot_id, to_state, reason, bucket, started_at, ended_at FROM i
WHERE ended_at > {p} AND started_at < {p} AND ended_at > started_at{only}
ORDER BY robot_id, started_at, event_id"""


def supply_sql(r: Reader, robots: int, days: int) -> str:
    """Hours per robot, day and bucket: the intervals cut at the days' bounds, summed.
    Parameters: those of the CTE, then (index, start, end) of each day."""
    p = r.dialect.param
    bounds = "\n  UNION ALL ".join(
        [f"SELECT CAST({p} AS INTEGER) AS n, CAST({p} AS TIMESTAMPTZ) AS lo, "
         f"CAST({p} AS TIMESTAMPTZ) AS hi"] * days
    )  # fmt: skip
    return f"""{_intervals_cte(r, robots)}, d AS (
  {bounds}
)
SELECT i.robot_id, d.n, i.bucket,
       SUM(EXTRACT(EPOCH FROM LEAST(i.ended_at, d.hi))
           - EXTRACT(EPOCH FROM GREATEST(i.started_at, d.lo))) / 3600.0 AS hours
FROM i JOIN d ON i.started_at < d.hi AND i.ended_at > d.lo
WHERE i.ended_at > i.started_at
GROUP BY i.robot_id, d.n, i.bucket"""


def _robots(robots: list[str] | None) -> list[str] | None:
    """The plausible ids of `robots` (None: every robot); [] when none is."""
    return None if robots is None else [x for x in robots if plausible_id(x)]


def _cte_params(span: tuple[datetime, datetime], ids: list[str]) -> list[Any]:
    return [*span, *ids, *span, *ids]


def _intervals(
    r: Reader,
    lo: datetime,
    hi: datetime,
    robots: list[str] | None = None,
    bucket: str | None = None,
) -> list[Interval]:
    """Every state interval overlapping [lo, hi) (of `robots`, of `bucket`), clipped to it."""
    ids = _robots(robots)
    if ids == []:
        return []
    span = _changes_range(r, lo, hi, ids or [])
    if span is None:
        return []
    params = [*_cte_params(span, ids or []), lo, hi]
    if bucket is not None:
        params.append(bucket)
    stmt = intervals_sql(r, len(ids or []), bucket is not None)
    return [
        Interval(robot, state, reason, b, max(utc(started), lo), min(utc(ended), hi))
        for robot, state, reason, b, started, ended in r.query(stmt, params)
    ]


def state_intervals(
    r: Reader, lo: datetime, hi: datetime, robots: list[str] | None = None
) -> list[dict[str, Any]]:
    """The state strip: intervals of `robots` (all when None) overlapping [lo, hi)."""
    return [iv.as_dict() for iv in _intervals(r, lo, hi, robots)]


def supply_hours(
    r: Reader, from_day: date, to_day: date, robot_id: str | None = None
) -> list[dict[str, Any]]:
    """Per robot and day: usable hours and downtime hours by bucket — exactly
    `logship supply-hours --date D [--robot R] --json` for from_day = to_day = D."""
    check_range(from_day, to_day)
    ids = _robots(None if robot_id is None else [robot_id])
    if ids == []:
        return []
    lo, hi = day_bounds(r.cfg, from_day, to_day)
    span = _changes_range(r, lo, hi, ids or [])
    if span is None:
        return []
    days = days_between(from_day, to_day)
    params = _cte_params(span, ids or [])
    for n, day in enumerate(days):
        params += [n, *day_bounds(r.cfg, day, day)]
    rows = r.query(supply_sql(r, len(ids or []), len(days)), params)
    return shape_supply(sorted((robot, days[n].isoformat(), b, h) for robot, n, b, h in rows))


def shape_supply(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Rows (robot, day, bucket, hours) → [{robot_id, date, usable_hours, downtime_hours}]."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for robot, day, bucket, hours in rows:
        key = (robot, _day(day))
        item = out.setdefault(
            key, {"robot_id": robot, "date": key[1], "usable_hours": 0.0, "downtime_hours": {}}
        )
        h = round(float(hours), 6)
        if bucket == USABLE:
            item["usable_hours"] = round(item["usable_hours"] + h, 6)
        else:
            item["downtime_hours"][bucket] = round(item["downtime_hours"].get(bucket, 0.0) + h, 6)
    return list(out.values())


def supply_totals(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Fleet totals of :func:`supply_hours` items and the headline ("72% of downtime was due
    to lid_error"; plain text — escape it for where it goes). The CLI prints the same."""
    usable = 0.0
    down: dict[str, float] = {}
    for it in items:
        usable += it["usable_hours"]
        for k, v in it["downtime_hours"].items():
            down[k] = down.get(k, 0.0) + v
    headline = None
    all_down = sum(down.values())
    if all_down:
        top, hours = max(down.items(), key=lambda kv: kv[1])
        share = hours / all_down
        headline = {"reason": top, "share": share, "hours": round(hours, 6),
                    "text": f"{share:.0%} of downtime was due to {top}"}  # fmt: skip
    return {
        "usable_hours": round(usable, 6),
        "downtime_hours": {k: round(v, 6) for k, v in sorted(down.items(), key=lambda kv: -kv[1])},
        "headline": headline,
    }


def robot_day(r: Reader, robot_id: str, day: date) -> dict[str, Any] | None:
    """A robot's day: its state intervals (clipped to the day), errors, the deliveries it
    served, usable and downtime hours (equal to its row of :func:`supply_hours`). None when
    the robot has no state and no event that day."""
    check_day(day)
    if not plausible_id(robot_id):
        return None
    lo, hi = day_bounds(r.cfg, day, day)
    ivs = _intervals(r, lo, hi, [robot_id])
    d, p = r.dialect, r.dialect.param
    rows = r.query(
        f"SELECT event_id, event_name, occurred_at, delivery_id, "
        f"{d.json_text('properties', 'error_code')}, {d.json_text('properties', 'severity')} "
        f"FROM {r.events} WHERE robot_id = {p} AND occurred_at >= {p} AND occurred_at < {p} "
        "AND event_name <> 'robot.state_changed' ORDER BY occurred_at, event_id",
        [robot_id, lo, hi],
    )
    if not ivs and not rows:
        return None
    errors: list[dict[str, Any]] = []
    served: dict[str, dict[str, Any]] = {}
    for eid, name, occurred, did, code, severity in rows:
        if is_error({"event_name": name}):
            errors.append({"event_id": eid, "event_name": name, "occurred_at": iso(occurred),
                           "error_code": code, "severity": severity, "delivery_id": did})  # fmt: skip
        if did is not None:
            span = served.setdefault(did, {"delivery_id": did, "first_at": iso(occurred)})
            span["last_at"] = iso(occurred)
    (totals,) = _hours(ivs, day) or [{"usable_hours": 0.0, "downtime_hours": {}}]
    return {
        "robot_id": robot_id,
        "date": day.isoformat(),
        "prev_date": _shift(day, -1),
        "next_date": _shift(day, 1),
        "intervals": [iv.as_dict() for iv in ivs],
        "errors": errors,
        "deliveries": list(served.values()),
        "usable_hours": totals["usable_hours"],
        "downtime_hours": totals["downtime_hours"],
    }


def _hours(ivs: list[Interval], day: date) -> list[dict[str, Any]]:
    """One robot's :func:`supply_hours` of `day` from its intervals already read and clipped
    to the day — the same arithmetic as :func:`supply_sql` (epoch seconds as floats, summed
    per bucket, / 3600), without running the intervals again."""
    sums: dict[tuple[str, str], float] = {}
    for iv in ivs:
        key = (iv.robot_id, iv.bucket)
        sums[key] = sums.get(key, 0.0) + (iv.end.timestamp() - iv.start.timestamp())
    return shape_supply(
        sorted((rid, day.isoformat(), b, s / 3600.0) for (rid, b), s in sums.items())
    )


def downtime_intervals(
    r: Reader, from_day: date, to_day: date, bucket: str
) -> list[dict[str, Any]]:
    """The intervals of `bucket` (a downtime reason, or `usable`) in the days asked, clipped
    to them, each with the deliveries it touched (a delivery whose events on that robot
    overlap the interval)."""
    check_range(from_day, to_day)
    if not bucket or not storable(bucket):
        return []
    lo, hi = day_bounds(r.cfg, from_day, to_day)
    chosen = _intervals(r, lo, hi, bucket=bucket)
    if not chosen:
        return []
    p = r.dialect.param
    spans: dict[str, list[tuple[datetime, datetime, str]]] = defaultdict(list)
    for robot, did, first, last in r.query(
        f"SELECT robot_id, delivery_id, MIN(occurred_at), MAX(occurred_at) FROM {r.events} "
        f"WHERE robot_id IS NOT NULL AND delivery_id IS NOT NULL "
        f"AND occurred_at >= {p} AND occurred_at < {p} GROUP BY robot_id, delivery_id",
        [lo, hi],
    ):
        spans[robot].append((utc(first), utc(last), did))
    out = []
    for iv in chosen:
        touched = sorted({did for a, b, did in spans.get(iv.robot_id, ())
                          if a < iv.end and b >= iv.start})  # fmt: skip
        out.append({**iv.as_dict(), "deliveries": touched})
    return out


def _shift(day: date, n: int) -> str | None:
    try:
        other = day + timedelta(days=n)
        check_day(other)
    except (OverflowError, ValueError):
        return None
    return other.isoformat()


def _day(v: Any) -> str:
    return v.isoformat()[:10] if hasattr(v, "isoformat") else str(v)[:10]
