"""What a request may ask for: ids, dates, date ranges, the flag window — parsed once, here.

Anything else is a :class:`~loader.ui.problems.Problem` (400) before any query runs. Ids only
ever travel to the warehouse as parameters; the grammar below keeps what cannot be an id we
show (`../`, `<script>`, 10 kB of text, control characters) out of URLs and pages altogether.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from loader.ui.problems import BAD_INPUT, Problem

#: Longest id the warehouse holds (entity columns are VARCHAR(256)).
MAX_ID_CHARS = 256
#: An id the UI opens: letters, digits and `- _ . : @ + ~ =`, not starting with a dot.
ID_RE = re.compile(rf"[A-Za-z0-9_:@+~=-][A-Za-z0-9._:@+~=-]{{0,{MAX_ID_CHARS - 1}}}")
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: Longest range of days one page shows.
MAX_DAYS = 31


def is_id(value: object) -> bool:
    return isinstance(value, str) and ID_RE.fullmatch(value) is not None


def parse_id(value: str | None, what: str) -> str:
    text = (value or "").strip()
    if not text:
        raise Problem(BAD_INPUT, f"Enter a {what}.")
    if len(text) > MAX_ID_CHARS:
        raise Problem(BAD_INPUT, f"A {what} is at most {MAX_ID_CHARS} characters; this one has "
                                 f"{len(text)}.")  # fmt: skip
    if not is_id(text):
        raise Problem(BAD_INPUT, f"A {what} has only letters, digits and - _ . : @ + ~ = "
                                 "(and does not start with a dot).")  # fmt: skip
    return text


#: Free text the UI passes on (a downtime reason): no controls, at most this long.
_TEXT_RE = re.compile(rf"[^\x00-\x1f\x7f-\x9f]{{1,{MAX_ID_CHARS}}}")


def is_text(value: object) -> bool:
    return isinstance(value, str) and _TEXT_RE.fullmatch(value) is not None


def parse_text(value: str, what: str) -> str:
    """A value that is only ever a SQL parameter and escaped text (a downtime reason comes
    from senders: `<img …>` is a reason like any other)."""
    if not is_text(value):
        raise Problem(BAD_INPUT, f"A {what} is 1 to {MAX_ID_CHARS} characters without control "
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

    def shift(self, days: int) -> Days:
        step = timedelta(days=days)
        return Days(self.first + step, self.last + step)


def parse_days(query: dict[str, str], default: date | None) -> Days | None:
    """`date=` or `from=`&`to=` (at most :data:`MAX_DAYS` days); None when neither is given
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
        if (hi - lo).days + 1 > MAX_DAYS:
            raise Problem(BAD_INPUT, f"At most {MAX_DAYS} days at once.")
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
