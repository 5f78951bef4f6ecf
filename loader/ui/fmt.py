"""How times, durations and hours read on the pages.

Times are shown in `LOGSHIP_TIMEZONE` (UTC by default) *with their offset*, so a screenshot
pasted into a ticket still says which zone it meant: `2026-03-05 10:00:05 +00:00`.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo

#: Robot states with a colour of their own (anything else is drawn as `st-other`).
KNOWN_STATES = ("available", "assigned", "on_trip", "charging", "maintenance", "error", "offline")


def zone(name: str) -> tzinfo:
    return UTC if name == "UTC" else zoneinfo.ZoneInfo(name)


def parse_time(text: object) -> datetime | None:
    """An RFC 3339 time of the analyses' answers (`…Z`) as an aware datetime."""
    if not isinstance(text, str) or not text:
        return None
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def stamp(t: datetime | None, tz: tzinfo) -> str:
    """`2026-03-05 10:00:05 +00:00`."""
    if t is None:
        return "—"
    local = t.astimezone(tz)
    return local.strftime("%Y-%m-%d %H:%M:%S ") + offset(local)


def clock(t: datetime | None, tz: tzinfo) -> str:
    """`10:00:05` (the page says the zone once)."""
    return "—" if t is None else t.astimezone(tz).strftime("%H:%M:%S")


def offset(local: datetime) -> str:
    """`+00:00`, `-08:00`."""
    text = local.strftime("%z") or "+0000"
    return f"{text[:3]}:{text[3:5]}"


def clock_offset(t: datetime | None, tz: tzinfo) -> str:
    """`02:00:05 -08:00`: a time of day with the offset it had (the event table's)."""
    if t is None:
        return "—"
    local = t.astimezone(tz)
    return local.strftime("%H:%M:%S ") + offset(local)


def zone_label(tz: tzinfo, shown: Sequence[datetime] = ()) -> str:
    """`UTC (+00:00)`, `America/Los_Angeles (-07:00)`: the zone with the offsets it has at the
    instants `shown` (a page's first and last; now when none) — `(-08:00 / -07:00)` for a day
    the clocks change."""
    instants = list(shown) or [datetime.now(UTC)]
    offsets = dict.fromkeys(offset(t.astimezone(tz)) for t in instants)
    return f"{tz} ({' / '.join(offsets)})"


def day_span(first: date, last: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """The first and the last instant of the days `first`..`last` in `tz` (for
    :func:`zone_label`)."""
    start = datetime.combine(first, time(0), tz)
    end = datetime.combine(last + timedelta(days=1), time(0), tz) - timedelta(microseconds=1)
    return start, end


def duration(seconds: float | None) -> str:
    """`45 s`, `18 min 20 s`, `2 h 05 min`, `3 d 4 h`."""
    if seconds is None:
        return "—"
    s = round(abs(float(seconds)))
    sign = "−" if seconds < 0 else ""
    if s < 60:
        return f"{sign}{s} s"
    if s < 3600:
        return f"{sign}{s // 60} min" + (f" {s % 60:02d} s" if s % 60 else "")
    if s < 86400:
        return f"{sign}{s // 3600} h" + (f" {s % 3600 // 60:02d} min" if s % 3600 // 60 else "")
    return f"{sign}{s // 86400} d" + (f" {s % 86400 // 3600} h" if s % 86400 // 3600 else "")


def offset_s(seconds: float | None) -> str:
    """`+18:20` (minutes:seconds since the session's first event), `+1:02:03`."""
    if seconds is None:
        return ""
    s = round(float(seconds))
    sign = "+" if s >= 0 else "−"
    s = abs(s)
    h, m, sec = s // 3600, s % 3600 // 60, s % 60
    return f"{sign}{h}:{m:02d}:{sec:02d}" if h else f"{sign}{m}:{sec:02d}"


def plural(n: int, word: str) -> str:
    """`1 delivery`, `2 deliveries`, `3 events`."""
    if n == 1:
        return f"1 {word}"
    return f"{n} {word[:-1]}ies" if word.endswith("y") else f"{n} {word}s"


def hours(value: float | None) -> str:
    return "—" if value is None else f"{float(value):.2f} h"


def state_class(state: object) -> str:
    """The CSS class of a robot state: a hostile value never becomes a class name."""
    return f"st-{state}" if state in KNOWN_STATES else "st-other"
