"""The deliveries of a day, the latest day with data, and what a searched id is.

A delivery belongs to the day (in `LOGSHIP_TIMEZONE`) of its first `delivery.created`. It is
*flagged* when a `robot.error` of the robot that arrived came within ±N minutes of its arrival
at the pickup (`delivery.pickup_started`) or the dropoff (`delivery.dropoff_started`) — the
question "deliveries where a robot error occurred within 2 minutes of arrival".

Bounded: the day's creations, and the events of those deliveries (and robot errors) within
`delivery_horizon_s` of the day. The search box's delivery look-up is the session's
(:func:`loader.analytics.session.delivery_span`: one probe of `delivery_spans`); a robot id
is looked up in its column.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import UTC, date, datetime, timedelta
from typing import Any

from loader.analytics.base import (
    Reader,
    check_day,
    day_bounds,
    day_of,
    iso,
    plausible_id,
    seconds,
    utc,
)
from loader.analytics.families import OUTCOMES
from loader.analytics.session import delivery_span

#: Arrival events and the stop they mean.
ARRIVALS = {"delivery.pickup_started": "pickup", "delivery.dropoff_started": "dropoff"}
#: How far back :func:`latest_day` looks first, then further (days); the last step is all.
_LATEST_STEPS_D = (2, 31, 366)


def _day_deliveries_sql(r: Reader) -> str:
    """Per delivery created in [lo, hi), event name and robot: count, first and last time,
    merchant (of `delivery.created`). Parameters: lo, hi, the events' range (two)."""
    p, d = r.dialect.param, r.dialect
    merchant = d.json_text("e.properties", "merchant_id")
    return f"""WITH c AS (
  SELECT delivery_id FROM {r.events}
  WHERE event_name = 'delivery.created' AND delivery_id IS NOT NULL
    AND occurred_at >= {p} AND occurred_at < {p}
  GROUP BY delivery_id
)
SELECT e.delivery_id, e.event_name, e.robot_id, COUNT(*), MIN(e.occurred_at),
       MAX(e.occurred_at),
       MIN(CASE WHEN e.event_name = 'delivery.created' THEN {merchant} END)
FROM {r.events} e JOIN c ON c.delivery_id = e.delivery_id
WHERE e.occurred_at >= {p} AND e.occurred_at < {p}
GROUP BY e.delivery_id, e.event_name, e.robot_id"""


def _arrivals_sql(r: Reader) -> str:
    p = r.dialect.param
    return f"""WITH c AS (
  SELECT delivery_id FROM {r.events}
  WHERE event_name = 'delivery.created' AND delivery_id IS NOT NULL
    AND occurred_at >= {p} AND occurred_at < {p}
  GROUP BY delivery_id
)
SELECT e.delivery_id, e.event_name, e.robot_id, e.occurred_at
FROM {r.events} e JOIN c ON c.delivery_id = e.delivery_id
WHERE e.event_name IN ('delivery.pickup_started', 'delivery.dropoff_started')
  AND e.robot_id IS NOT NULL AND e.occurred_at >= {p} AND e.occurred_at < {p}"""


def _errors_sql(r: Reader) -> str:
    p, d = r.dialect.param, r.dialect
    return (
        f"SELECT robot_id, occurred_at, {d.json_text('properties', 'error_code')} "
        f"FROM {r.events} WHERE event_name = 'robot.error' AND robot_id IS NOT NULL "
        f"AND occurred_at >= {p} AND occurred_at <= {p} ORDER BY occurred_at"
    )


def deliveries_of_day(r: Reader, day: date, error_window_min: int = 2) -> list[dict[str, Any]]:
    """The deliveries created on `day`: outcome (completed / failed / cancelled / open),
    merchant, robots, start, end, duration, event count and the flags. Failed first, then
    flagged, then by start."""
    check_day(day)
    if type(error_window_min) is not int or not 0 <= error_window_min <= 1440:
        raise ValueError("error_window_min must be a whole number of minutes, 0..1440")
    lo, hi = day_bounds(r.cfg, day, day)
    h = timedelta(seconds=r.cfg.delivery_horizon_s)
    found: dict[str, dict[str, Any]] = {}
    for did, name, robot, n, first, last, merchant in r.query(
        _day_deliveries_sql(r), [lo, hi, lo - h, hi + h]
    ):
        first, last = utc(first), utc(last)
        item = found.setdefault(did, {"n": 0, "first": first, "last": last, "created": None,
                                      "merchant": None, "robots": {}, "terminal": None})  # fmt: skip
        item["n"] += n
        item["first"], item["last"] = min(item["first"], first), max(item["last"], last)
        if name == "delivery.created":
            item["created"] = first if item["created"] is None else min(item["created"], first)
            item["merchant"] = item["merchant"] or merchant
        if robot is not None:
            item["robots"][robot] = min(item["robots"].get(robot, first), first)
        if name in OUTCOMES and (item["terminal"] is None or last >= item["terminal"][0]):
            item["terminal"] = (last, OUTCOMES[name])
    # The view's rule: the first `delivery.created` lies in the day.
    found = {k: v for k, v in found.items() if v["created"] is not None and lo <= v["created"]}
    flags = _flags(r, found, lo, hi, h, timedelta(minutes=error_window_min))
    out = []
    for did, it in found.items():
        ended = it["terminal"][0] if it["terminal"] else it["last"]
        out.append({
            "delivery_id": did,
            "outcome": it["terminal"][1] if it["terminal"] else "open",
            "merchant_id": it["merchant"],
            "robots": sorted(it["robots"], key=lambda k: (it["robots"][k], k)),
            "started_at": iso(it["first"]),
            "ended_at": iso(ended),
            "duration_s": seconds(it["first"], ended),
            "event_count": it["n"],
            "flagged": bool(flags.get(did)),
            "flags": flags.get(did, []),
        })  # fmt: skip
    out.sort(key=lambda x: (x["outcome"] != "failed", not x["flagged"], x["started_at"],
                            x["delivery_id"]))  # fmt: skip
    return out


def _flags(
    r: Reader,
    found: dict[str, Any],
    lo: datetime,
    hi: datetime,
    h: timedelta,
    window: timedelta,
) -> dict[str, list[dict[str, Any]]]:
    """Per delivery of the day [lo, hi): the robot errors within `window` of an arrival."""
    if not found:
        return {}
    arrivals = [
        (did, ARRIVALS[name], robot, utc(at))
        for did, name, robot, at in r.query(_arrivals_sql(r), [lo, hi, lo - h, hi + h])
        if did in found
    ]
    if not arrivals:
        return {}
    first = min(a[3] for a in arrivals) - window
    last = max(a[3] for a in arrivals) + window
    times: dict[str, list[datetime]] = {}  # per robot, in time order (the query's)
    codes: dict[str, list[Any]] = {}
    for robot, at, code in r.query(_errors_sql(r), [first, last]):
        times.setdefault(robot, []).append(utc(at))
        codes.setdefault(robot, []).append(code)
    out: dict[str, list[dict[str, Any]]] = {}
    for did, stop, robot, arrived in sorted(arrivals, key=lambda a: (a[0], a[3])):
        near = times.get(robot, [])
        i, end = bisect_left(near, arrived - window), bisect_right(near, arrived + window)
        for at, code in zip(near[i:end], codes.get(robot, [])[i:end], strict=True):
            out.setdefault(did, []).append({"stop": stop, "robot_id": robot,
                                            "arrived_at": iso(arrived), "error_at": iso(at),
                                            "error_code": code})  # fmt: skip
    return out


def latest_day(r: Reader, now: datetime | None = None) -> date | None:
    """The latest day with a `delivery.created` (else with any event), ignoring times more
    than a day ahead of `now` (a sender's clock in 2199 is not "the latest day"). Looks back
    2 days, then 31, then 366, then everything — so a live warehouse reads only its last
    days."""
    now = (now or datetime.now(UTC)) + timedelta(days=1)
    p = r.dialect.param
    for where in ("event_name = 'delivery.created' AND ", ""):
        for back in (*_LATEST_STEPS_D, None):
            bound = "" if back is None else f" AND occurred_at >= {p}"
            params: list[Any] = [now] if back is None else [now, now - timedelta(days=back)]
            ((last,),) = r.query(
                f"SELECT MAX(occurred_at) FROM {r.events} WHERE {where}occurred_at <= {p}{bound}",
                params,
            )
            if last is not None:
                return day_of(r.cfg, utc(last))
    return None


def find(r: Reader, text: str, now: datetime | None = None) -> dict[str, Any] | None:
    """What the search box's text names: a delivery (`{"kind": "delivery", "delivery_id"}`),
    else a robot with its latest day (`{"kind": "robot", "robot_id", "date"}`), else None."""
    if not plausible_id(text):
        return None
    if delivery_span(r, text) is not None:
        return {"kind": "delivery", "delivery_id": text}
    p = r.dialect.param
    ahead = (now or datetime.now(UTC)) + timedelta(days=1)
    ((last,),) = r.query(
        f"SELECT MAX(occurred_at) FROM {r.events} WHERE robot_id = {p} AND occurred_at <= {p}",
        [text, ahead],
    )
    if last is None:
        return None
    return {"kind": "robot", "robot_id": text, "date": day_of(r.cfg, utc(last)).isoformat()}
