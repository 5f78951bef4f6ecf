"""Where a robot's day page leads: the nearest earlier and later day with an event of the robot,
looked for within :data:`~loader.analytics.MAX_RANGE_DAYS` either side (two bounded queries on
the `occurred_at` sort key), so *previous* and *next* never open an empty day — and say so
when there is none that close.
"""

from __future__ import annotations

from datetime import date, timedelta

from loader.analytics import MAX_RANGE_DAYS, Reader
from loader.analytics.base import check_day, day_bounds, day_of, utc


def nearest_days(r: Reader, robot_id: str, day: date) -> tuple[date | None, date | None]:
    """The closest day before `day` and after it with an event of `robot_id` (None: none
    within MAX_RANGE_DAYS days)."""
    lo, hi = day_bounds(r.cfg, day, day)
    reach = timedelta(days=MAX_RANGE_DAYS)
    p = r.dialect.param
    where = f"FROM {r.events} WHERE robot_id = {p} AND occurred_at >= {p} AND occurred_at < {p}"
    ((before,),) = r.query(f"SELECT MAX(occurred_at) {where}", [robot_id, lo - reach, lo])
    ((after,),) = r.query(f"SELECT MIN(occurred_at) {where}", [robot_id, hi, hi + reach])
    return _day(r, before), _day(r, after)


def _day(r: Reader, instant: object) -> date | None:
    if instant is None:
        return None
    found = day_of(r.cfg, utc(instant))
    try:
        check_day(found)
    except ValueError:
        return None
    return found
