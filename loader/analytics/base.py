"""What every analysis shares: its settings, the :class:`Reader` it queries through, days as
time ranges, and the text form of times.

Cost is bounded by what is shown: a query names the `occurred_at` range it needs (Redshift's
sort key; DuckDB prunes row groups by the same column's min/max), computed here from the days
asked plus a horizon on either side — never the whole history. The one exception is the
look-up of a robot id by the search box (`robot_id = ?`), which reads that one column; a
delivery's window comes from one probe of `delivery_spans` by its bucket
(:mod:`loader.analytics.session`).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from ingest.event import MAX_STRING_BYTES, MAX_YEAR, MIN_YEAR, TEXT_MAX_CHARS, iso_utc
from loader.warehouse.sql import EVENTS, SPANS, Dialect, ident, table

#: `robot.state_changed` states that count as usable supply (the default of
#: `LOGSHIP_USABLE_STATES`; everything else is downtime, bucketed by the change's reason).
USABLE_STATES: tuple[str, ...] = ("available", "assigned", "on_trip")
#: The delivery lifecycle the funnel measures, in order (event `delivery.<stage>`).
FUNNEL_STAGES = ("created", "dispatched", "pickup_completed", "dropoff_completed")
#: The longest range of days one call of a ranged analysis covers.
MAX_RANGE_DAYS = 31


@dataclass(frozen=True)
class AnalyticsConfig:
    """The settings of the analyses (`LoaderSettings.analytics()` builds it from the env)."""

    usable_states: tuple[str, ...] = USABLE_STATES
    """States that count as usable supply hours."""

    timezone: str = "UTC"
    """IANA zone whose midnights split days (supply hours, funnel, a robot's day)."""

    session_margin_s: int = 300
    """A session includes its robots' events this long before its first and after its last
    event."""

    state_horizon_s: int = 7 * 86400
    """How far before the first day asked a robot's last state change is looked for, and how
    far after the last day its next event: a state that lasts longer with no change (and no
    event of the robot after it) is not carried into the days asked."""

    delivery_horizon_s: int = 86400
    """How long after the day it was created a delivery's stage events are looked for (and
    before it, for clocks that disagree): the deliveries of a day, the funnel."""

    def __post_init__(self) -> None:
        zoneinfo.ZoneInfo(self.timezone)  # raises for an unknown zone
        for s in self.usable_states:
            ident(s)  # plain lowercase words only
        for n in (self.session_margin_s, self.state_horizon_s, self.delivery_horizon_s):
            if int(n) != n or n < 0:
                raise ValueError(f"not a number of seconds: {n!r}")

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


Rows = list[tuple[Any, ...]]


@dataclass(frozen=True)
class Reader:
    """Where an analysis reads: a query function (statement, parameters → rows as tuples) of a
    warehouse connection, its dialect and schema, and the settings. The web UI builds one over
    its read-only connection, the CLI over a :class:`~loader.warehouse.Warehouse`."""

    query: Callable[[str, Sequence[Any]], Rows]
    dialect: Dialect
    schema: str
    cfg: AnalyticsConfig

    @classmethod
    def of(cls, warehouse: Any, cfg: AnalyticsConfig) -> Reader:
        """A reader over a Warehouse (`query`, `dialect`, `schema`)."""
        return cls(warehouse.query, warehouse.dialect, warehouse.schema, cfg)

    @property
    def events(self) -> str:
        """The quoted `schema.events` table."""
        return table(self.schema, EVENTS)

    @property
    def spans(self) -> str:
        """The quoted `schema.delivery_spans` table."""
        return table(self.schema, SPANS)


# ------------------------------------------------------------------------------ ids


def plausible_id(value: str) -> bool:
    """Whether `value` could be an entity id in the warehouse at all: ingest cuts ids at
    TEXT_MAX_CHARS characters. Anything else is "not found" without a query (a 10 kB id
    never reaches the warehouse)."""
    return bool(value) and len(value) <= TEXT_MAX_CHARS and storable(value)


def storable(value: str) -> bool:
    """Whether `value` could be a stored string (an id, a reason): ingest never stores U+0000,
    unpaired surrogates or strings above MAX_STRING_BYTES — and a driver could not send them."""
    if not isinstance(value, str) or "\x00" in value:
        return False
    try:
        return len(value.encode("utf-8")) <= MAX_STRING_BYTES
    except UnicodeEncodeError:
        return False


# ------------------------------------------------------------------------------ days


def parse_day(text: str) -> date:
    """`YYYY-MM-DD` → date; ValueError for anything else or a year ingest never stores."""
    shown = repr(text[:40]) if isinstance(text, str) else type(text).__name__
    try:
        if not isinstance(text, str) or len(text) != 10:
            raise ValueError
        day = date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a date (YYYY-MM-DD): {shown}") from None
    check_day(day)
    return day


def check_day(day: date) -> None:
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise ValueError(f"no data can exist on {day.isoformat()} (years {MIN_YEAR}-{MAX_YEAR})")


def check_range(from_day: date, to_day: date, max_days: int = MAX_RANGE_DAYS) -> None:
    check_day(from_day)
    check_day(to_day)
    if to_day < from_day:
        raise ValueError(f"the range ends before it starts: {from_day} .. {to_day}")
    if (to_day - from_day).days + 1 > max_days:
        raise ValueError(f"at most {max_days} days at once: {from_day} .. {to_day}")


def midnight(cfg: AnalyticsConfig, day: date) -> datetime:
    """The instant (UTC) at which `day` starts in the configured zone."""
    return datetime.combine(day, time(), cfg.tz).astimezone(UTC)


def day_bounds(cfg: AnalyticsConfig, from_day: date, to_day: date) -> tuple[datetime, datetime]:
    """[start of from_day, start of the day after to_day) as UTC instants."""
    return midnight(cfg, from_day), midnight(cfg, to_day + timedelta(days=1))


def days_between(from_day: date, to_day: date) -> list[date]:
    return [from_day + timedelta(days=i) for i in range((to_day - from_day).days + 1)]


def day_of(cfg: AnalyticsConfig, instant: datetime) -> date:
    return utc(instant).astimezone(cfg.tz).date()


# ------------------------------------------------------------------------------ times


def utc(v: Any) -> datetime:
    """A driver's timestamp as an aware UTC datetime (naive values are UTC)."""
    if not isinstance(v, datetime):
        v = datetime.fromisoformat(str(v))
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


def iso(v: Any) -> str | None:
    """A warehouse timestamp as text (`ingest.event.iso_utc`); None stays None."""
    if v is None:
        return None
    return iso_utc(utc(v)) if isinstance(v, datetime) else str(v)


def seconds(a: datetime, b: datetime) -> float:
    """b - a in seconds, to the microsecond."""
    return round((b - a).total_seconds(), 6)
