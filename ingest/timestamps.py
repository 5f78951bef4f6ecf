"""A sender's time value → (epoch seconds, canonical text), or a reject.

Senders write times in every shape: RFC 3339 with any offset and fraction, ISO 8601 basic and
week dates, epoch seconds, milliseconds, microseconds or nanoseconds, as numbers or strings.
Each is read into a datetime and rendered by :func:`ingest.event.iso_utc`, never echoed, so a
lake line only ever holds the canonical form; what cannot be read, or lies outside
1970..2199 (defaults such as Go's zero time, 9999-12-31 sentinels), is ``invalid_timestamp``.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from ingest.event import MAX_YEAR, MIN_YEAR, Reject, RejectReason, iso_utc

Stamp = tuple[float, str]  # (epoch seconds, canonical RFC 3339 text)

_FRACTION = re.compile(r"([.,][0-9]{6})[0-9]+")
#: The common timestamp shape, `YYYY-MM-DDTHH:MM:SS[.digits]Z`, ASCII digits only.
_FAST_UTC = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}:[0-9]{2})(\.[0-9]+)?[Zz]"
)
_EPOCH = datetime(1970, 1, 1)
#: MIN_YEAR..MAX_YEAR as epoch seconds: [1970-01-01, 2200-01-01).
_MIN_TS, _MAX_TS = 0.0, 7258118400.0
_INVALID = RejectReason.INVALID_TIMESTAMP


def parse_timestamp(v: Any) -> Stamp | None:
    """RFC 3339 / ISO 8601 text or epoch seconds/milliseconds/µs/ns → (epoch seconds, canonical
    UTC text), the text rendered from the parsed numbers whatever shape the input had.

    Returns None when `v` is absent; raises Reject when it is present but unreadable (including
    any non-ASCII character: `str.isdigit` and `float` accept other scripts' digits) or outside
    1970–2200 — on every path, text, epoch numbers and epoch strings alike.
    """
    if v is None:
        return None
    t = type(v)
    if t is str:
        return _from_text(v)
    if t is int or t is float:
        return _from_epoch(v)
    if t is bool:
        raise Reject(_INVALID, f"timestamp {v!r} is not a time")
    raise Reject(_INVALID, f"timestamp of type {t.__name__} is not a time")


def _from_text(v: str) -> Stamp:
    if not v.isascii():
        raise Reject(_INVALID, f"timestamp {v[:64]!r} has non-ASCII characters")
    s = v.strip()
    fast = _fast_utc(s)
    if fast is not None:
        return fast
    if s.replace(".", "", 1).isdigit():  # ASCII digits only: checked above
        return _from_epoch(float(s))
    try:
        dt = datetime.fromisoformat(_FRACTION.sub(r"\1", s))
        dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    except ValueError:
        raise Reject(_INVALID, f"timestamp {v[:64]!r} is not RFC 3339") from None
    except OverflowError:  # an offset pushing 0001-01-01 or 9999-12-31 off the calendar
        raise Reject(_INVALID, f"timestamp {v[:64]!r} is out of range") from None
    if not MIN_YEAR <= dt.year <= MAX_YEAR:
        raise Reject(_INVALID, f"timestamp {v[:64]!r} is outside 1970-2200")
    return dt.timestamp(), iso_utc(dt)


def _fast_utc(s: str) -> Stamp | None:
    """The common shape, `YYYY-MM-DDTHH:MM:SS[.digits]Z` (Vector, most loggers), cheaply: the
    shape is matched exactly (ASCII digits, no week or ordinal dates), the fields parsed into a
    datetime (which checks the calendar) and the text rendered from it. None when `s` has
    another shape: then the general parser decides."""
    m = _FAST_UTC.fullmatch(s)
    if m is None:
        return None
    date, clock, frac = m.groups()
    try:  # at most 6 fraction digits: microseconds, the rest cut as before
        dt = datetime.fromisoformat(f"{date}T{clock}{frac[:7]}" if frac else f"{date}T{clock}")
    except ValueError:  # 2026-02-30, 25:00, a leap second
        raise Reject(_INVALID, f"timestamp {s[:64]!r} is not a valid time") from None
    if not MIN_YEAR <= dt.year <= MAX_YEAR:
        raise Reject(_INVALID, f"timestamp {s[:64]!r} is outside 1970-2200")
    return (dt - _EPOCH).total_seconds(), iso_utc(dt)


def _from_epoch(x: int | float) -> Stamp:
    try:
        x = float(x)
    except OverflowError:  # an integer beyond any float
        raise Reject(_INVALID, "timestamp is out of range") from None
    if not math.isfinite(x):
        raise Reject(_INVALID, "timestamp is not finite")
    ax = abs(x)
    if ax >= 1e17:
        x /= 1e9  # nanoseconds
    elif ax >= 1e14:
        x /= 1e6  # microseconds
    elif ax >= 1e11:
        x /= 1e3  # milliseconds
    if not _MIN_TS <= x < _MAX_TS:
        raise Reject(_INVALID, f"timestamp {x!r} is outside 1970-2200")
    dt = datetime.fromtimestamp(x, UTC)
    if dt.year > MAX_YEAR:  # rounded up to the microsecond, onto 2200-01-01
        raise Reject(_INVALID, f"timestamp {x!r} is outside 1970-2200")
    return x, iso_utc(dt)
