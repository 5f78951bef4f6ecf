"""What a request may ask for, parsed once: anything else is a 400 before any query."""

from __future__ import annotations

from datetime import date

import pytest

from loader.analytics import MAX_RANGE_DAYS
from loader.ui.inputs import (
    Days,
    is_id,
    parse_date,
    parse_days,
    parse_id,
    parse_text,
    parse_window_min,
)
from loader.ui.problems import BAD_INPUT, Problem


@pytest.mark.parametrize("good", ["D-1", "R-12", "0f8a5c2e-1b3c-4d5e-8f90-123456789abc",
                                  "merchant:42", "a_b.c@d+e~f=g", "x" * 256, "D 9/x", "Dé-1",
                                  "D-js\u2028x", "<script>", "../etc/passwd", ".hidden",
                                  " padded ", "D\\1", "配送-7", "D-1\u202e"])  # fmt: skip
def test_ids_are_any_text_the_warehouse_holds(good: str) -> None:
    """Ingest stores any string up to 256 characters as an id: the UI opens each as it is."""
    assert parse_id(good, "delivery id") == good and is_id(good)


@pytest.mark.parametrize("bad", ["", "   ", "x" * 257, "D" * 10_000, ".", "..", "D-1\x00",
                                 "a\nb", "a\tb", "D\x1b[31m", "D\x85", "D\ud800"])  # fmt: skip
def test_bad_ids(bad: str) -> None:
    with pytest.raises(Problem) as caught:
        parse_id(bad, "delivery id")
    assert caught.value.kind is BAD_INPUT
    assert not is_id(bad)


def test_free_text_is_bounded_and_without_controls() -> None:
    assert parse_text("<img src=x onerror=alert(1)>", "reason") == "<img src=x onerror=alert(1)>"
    for bad in ("", "x" * 257, "a\x1bb", "a\nb"):
        with pytest.raises(Problem):
            parse_text(bad, "reason")


def test_dates() -> None:
    assert parse_date("2026-03-05") == date(2026, 3, 5)
    assert parse_date(None) is None and parse_date("") is None
    for bad in ("2026-3-5", "2026-02-30", "20260305", "2026-03-05T00:00", "٢٠٢٦-٠٣-٠٥", "x" * 10):
        with pytest.raises(Problem):
            parse_date(bad)


def test_day_ranges() -> None:
    d = date(2026, 3, 5)
    assert parse_days({}, d) == Days(d, d)
    assert parse_days({}, None) is None
    assert parse_days({"date": "2026-03-01"}, d) == Days(date(2026, 3, 1), date(2026, 3, 1))
    got = parse_days({"from": "2026-03-01", "to": "2026-03-31"}, d)
    assert got is not None and got.count == MAX_RANGE_DAYS
    assert parse_days({"from": "2026-03-01"}, d) == Days(date(2026, 3, 1), date(2026, 3, 1))
    for bad in ({"from": "2026-03-01", "to": "2026-04-01"}, {"from": "2026-03-02", "to": "2026-03-01"},
                {"date": "2026-03-01", "to": "2026-03-02"}):  # fmt: skip
        with pytest.raises(Problem):
            parse_days(bad, d)


def test_window() -> None:
    assert parse_window_min(None, 2) == 2 and parse_window_min("5", 2) == 5
    assert parse_window_min("1440", 2) == 1440 and parse_window_min("0", 2) == 0
    for bad in ("-1", "1441", "1.5", "nan", "inf", "two", "٣", "00001"):
        with pytest.raises(Problem):
            parse_window_min(bad, 2)
