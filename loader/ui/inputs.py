"""What a request may ask for: ids, dates, date ranges, the flag window — parsed once, here.

Anything else is a :class:`~loader.ui.problems.Problem` (400) before any query runs. An id is
any text the warehouse can hold as one (ingest keeps ids up to `TEXT_MAX_CHARS` characters):
spaces, slashes and any script are fine — ids only ever travel to the warehouse as parameters,
into URLs percent-encoded (:func:`loader.ui.html.seg`) and into pages escaped. Refused: the
empty id, one longer than the warehouse holds, control characters (which nothing shows), and
`.` / `..` (which a URL cannot carry as a path segment).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from ingest.event import TEXT_MAX_CHARS
from loader.analytics import MAX_RANGE_DAYS
from loader.analytics.base import storable
from loader.ui.problems import BAD_INPUT, Problem

#: C0 controls, DEL and C1 controls: never part of an id or a reason the UI passes on.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


def is_id(value: object) -> bool:
    """Whether `value` is an id the UI opens (and links to)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= TEXT_MAX_CHARS
        and bool(value.strip())
        and value not in (".", "..")
        and not _CONTROL.search(value)
        and storable(value)
    )


def parse_id(value: str | None, what: str) -> str:
    """An id from a URL path, as it is (a stored id may start or end with a space)."""
    text = value or ""
    if not text.strip():
        raise Problem(BAD_INPUT, f"Enter a {what}.")
    if len(text) > TEXT_MAX_CHARS:
        raise Problem(BAD_INPUT, f"A {what} is at most {TEXT_MAX_CHARS} characters; this one has "
                                 f"{len(text)}.")  # fmt: skip
    if not is_id(text):
        raise Problem(BAD_INPUT, f"A {what} has no control characters and is not “.” or “..”.")
    return text


def is_text(value: object) -> bool:
    """Free text the UI passes on (a downtime reason): 1 to `TEXT_MAX_CHARS` characters, no
    control characters."""
    return (isinstance(value, str) and 0 < len(value) <= TEXT_MAX_CHARS
            and not _CONTROL.search(value) and storable(value))  # fmt: skip


def parse_text(value: str, what: str) -> str:
    """A value that is only ever a SQL parameter and escaped text (a downtime reason comes
    from senders: `<img …>` is a reason like any other)."""
    if not is_text(value):
        raise Problem(BAD_INPUT, f"A {what} is 1 to {TEXT_MAX_CHARS} characters without control "
                                 "characters.")  # fmt: skip
    return value


def parse_date(value: str | None, name: str = "date") -> date | None:
    """`YYYY-MM-DD` or absent (None)."""
    if value is None or value == "":
        return None
    if len(value) != 10 or not DATE_RE.fullmatch(value):
        raise Problem(BAD_INPUT, f"`{name}` must be a date written YYYY-MM-DD.")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Problem(BAD_INPUT, f"`{name}` is not a calendar date.") from None


@dataclass(frozen=True)
class Days:
    """An inclusive range of days (`first == last` for one day)."""

    first: date
    last: date

    @property
    def count(self) -> int:
        return (self.last - self.first).days + 1


def parse_days(query: dict[str, str], default: date | None) -> Days | None:
    """`date=` or `from=`&`to=` (at most :data:`MAX_RANGE_DAYS` days); None when neither is given
    and there is no default (no data yet)."""
    one = parse_date(query.get("date"))
    lo, hi = parse_date(query.get("from"), "from"), parse_date(query.get("to"), "to")
    if one is not None and (lo or hi):
        raise Problem(BAD_INPUT, "Give either `date` or `from` and `to`, not both.")
    if one is not None:
        return Days(one, one)
    if lo or hi:
        lo, hi = lo or hi, hi or lo
        assert lo is not None and hi is not None
        if hi < lo:
            raise Problem(BAD_INPUT, "`to` is before `from`.")
        if (hi - lo).days + 1 > MAX_RANGE_DAYS:
            raise Problem(BAD_INPUT, f"At most {MAX_RANGE_DAYS} days at once.")
        return Days(lo, hi)
    return None if default is None else Days(default, default)


def parse_window_min(value: str | None, default: int) -> int:
    """The flag window: whole minutes, 0 to 1440 (a day)."""
    if value is None or value == "":
        return default
    if not value.isascii() or not value.isdigit() or len(value) > 4:
        raise Problem(BAD_INPUT, "`window_min` must be a whole number of minutes.")
    minutes = int(value)
    if minutes > 24 * 60:
        raise Problem(BAD_INPUT, "`window_min` is at most 1440 (a day).")
    return minutes
