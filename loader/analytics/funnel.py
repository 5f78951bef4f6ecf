"""The delivery funnel: per delivery the times of created → dispatched → pickup_completed →
dropoff_completed and the durations between them; per day (of `created`, in
`LOGSHIP_TIMEZONE`) the count, p50 and p90 of each stage; per stage its distribution.

Bounded: the deliveries created in the days asked, and their stage events within
`delivery_horizon_s` of those days.
"""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from typing import Any

from loader.analytics.base import (
    FUNNEL_STAGES,
    AnalyticsConfig,
    Reader,
    check_range,
    day_bounds,
    day_of,
    iso,
    utc,
)
from loader.warehouse.sql import literal

STAGES = tuple(f"{a}_to_{b}" for a, b in itertools.pairwise(FUNNEL_STAGES))


def funnel_sql(r: Reader) -> str:
    """Per delivery created in [lo, hi): the first time of each stage. Parameters: lo, hi
    (creation), the stage events' range (two), then lo, hi again (the delivery's first
    `delivery.created` — the view's `created_at` — lies in the days asked)."""
    p = r.dialect.param
    names = ", ".join(literal(f"delivery.{s}") for s in FUNNEL_STAGES)
    cols = ",\n       ".join(
        f"MIN(CASE WHEN e.event_name = 'delivery.{s}' THEN e.occurred_at END) AS {s}_at"
        for s in FUNNEL_STAGES
    )
    return f"""WITH c AS (
  SELECT delivery_id FROM {r.events}
  WHERE event_name = 'delivery.created' AND delivery_id IS NOT NULL
    AND occurred_at >= {p} AND occurred_at < {p}
  GROUP BY delivery_id
)
SELECT e.delivery_id,
       {cols}
FROM {r.events} e JOIN c ON c.delivery_id = e.delivery_id
WHERE e.event_name IN ({names}) AND e.occurred_at >= {p} AND e.occurred_at < {p}
GROUP BY e.delivery_id
HAVING MIN(CASE WHEN e.event_name = 'delivery.created' THEN e.occurred_at END) >= {p}
   AND MIN(CASE WHEN e.event_name = 'delivery.created' THEN e.occurred_at END) < {p}
ORDER BY created_at, e.delivery_id"""


def funnel(r: Reader, from_day: date, to_day: date) -> dict[str, Any]:
    """Exactly `logship funnel --date D --json` for from_day = to_day = D."""
    check_range(from_day, to_day)
    lo, hi = day_bounds(r.cfg, from_day, to_day)
    h = timedelta(seconds=r.cfg.delivery_horizon_s)
    rows = r.query(funnel_sql(r), [lo, hi, lo - h, hi + h, lo, hi])
    return shape_funnel(rows, r.cfg)


def shape_funnel(rows: list[tuple[Any, ...]], cfg: AnalyticsConfig) -> dict[str, Any]:
    """Rows (delivery, created, dispatched, pickup_completed, dropoff_completed times) → per
    delivery the stage times and durations; per day the count and p50/p90 per stage."""
    deliveries = []
    per_day: dict[str, dict[str, list[float]]] = {}
    for delivery_id, *times in rows:
        stamps = {s: None if t is None else utc(t)
                  for s, t in zip(FUNNEL_STAGES, times, strict=True)}  # fmt: skip
        durations = {}
        for a, b in itertools.pairwise(FUNNEL_STAGES):
            ta, tb = stamps[a], stamps[b]
            if ta is not None and tb is not None:
                durations[f"{a}_to_{b}_s"] = (tb - ta).total_seconds()
        deliveries.append(
            {"delivery_id": delivery_id,
             **{f"{s}_at": iso(t) for s, t in stamps.items()}, **durations}
        )  # fmt: skip
        if stamps["created"] is not None:
            bucket = per_day.setdefault(day_of(cfg, stamps["created"]).isoformat(), {})
            bucket.setdefault("deliveries", []).append(1.0)
            for k, v in durations.items():
                bucket.setdefault(k, []).append(v)
    days = []
    for day, values in sorted(per_day.items()):
        entry: dict[str, Any] = {"date": day, "deliveries": len(values.pop("deliveries"))}
        for k, vs in values.items():
            entry[k] = {"count": len(vs), "p50": percentile(vs, 0.5), "p90": percentile(vs, 0.9)}
        days.append(entry)
    return {"deliveries": deliveries, "days": days}


def funnel_stages(result: dict[str, Any], bins: int = 10) -> list[dict[str, Any]]:
    """Per stage of a :func:`funnel` result: count, p50, p90 (over all its deliveries — for
    one day, the day's figures) and a histogram of `bins` equal-width buckets
    `{lo_s, hi_s, count}` (the last bucket includes its upper edge)."""
    if not 1 <= bins <= 200:
        raise ValueError("bins must be 1..200")
    out = []
    for stage in STAGES:
        values = [d[f"{stage}_s"] for d in result["deliveries"] if f"{stage}_s" in d]
        entry: dict[str, Any] = {"stage": stage, "count": len(values), "p50": None, "p90": None,
                                 "histogram": []}  # fmt: skip
        if values:
            entry["p50"], entry["p90"] = percentile(values, 0.5), percentile(values, 0.9)
            entry["histogram"] = histogram(values, bins)
        out.append(entry)
    return out


def histogram(values: list[float], bins: int) -> list[dict[str, Any]]:
    lo, hi = min(values), max(values)
    if hi == lo:
        return [{"lo_s": lo, "hi_s": hi, "count": len(values)}]
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(int((v - lo) / width), bins - 1)] += 1
    return [{"lo_s": round(lo + i * width, 3), "hi_s": round(lo + (i + 1) * width, 3),
             "count": n} for i, n in enumerate(counts)]  # fmt: skip


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, like PERCENTILE_CONT."""
    v = sorted(values)
    pos = (len(v) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return round(v[lo] + (v[hi] - v[lo]) * (pos - lo), 3)
