"""Days, ranges and ids as the analyses accept them: a bad one is a ValueError (the UI's 400,
the CLI's one-line message), never a query."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path

import pytest

from loader import reports
from loader.analytics import AnalyticsConfig, parse_day
from loader.analytics.base import check_range, day_bounds, plausible_id
from tests.loader.helpers import loader_settings


def test_parse_day() -> None:
    assert parse_day("2026-03-05") == date(2026, 3, 5)
    for bad in ("2026-3-5", "2026-02-30", "20260305", "../etc", "<script>", "9999-12-31",
                "1969-12-31", "2026-03-05T00:00", "x" * 10240, ""):  # fmt: skip
        with pytest.raises(ValueError):
            parse_day(bad)


def test_ranges() -> None:
    check_range(date(2026, 1, 1), date(2026, 1, 31))  # 31 days
    with pytest.raises(ValueError):
        check_range(date(2026, 1, 1), date(2026, 2, 1))
    with pytest.raises(ValueError):
        check_range(date(2026, 1, 2), date(2026, 1, 1))
    lo, hi = day_bounds(AnalyticsConfig(timezone="Europe/Zurich"), date(2026, 7, 1),
                        date(2026, 7, 1))  # fmt: skip
    assert (lo.isoformat(), hi.isoformat()) == ("2026-06-30T22:00:00+00:00",
                                                 "2026-07-01T22:00:00+00:00")  # fmt: skip


def test_plausible_ids() -> None:
    assert plausible_id("D-1") and plausible_id("'; drop") and plausible_id("x" * 256)
    for bad in ("", "x" * 257, "a\x00", "\ud800"):
        assert not plausible_id(bad)


def test_config_is_checked() -> None:
    with pytest.raises(ValueError):
        AnalyticsConfig(state_horizon_s=-1)
    with pytest.raises(ValueError):
        AnalyticsConfig(usable_states=("Available; drop",))


def test_cli_bad_date_is_a_message(tmp_path: Path) -> None:
    settings = loader_settings(tmp_path)
    for fn in (lambda: reports.supply_hours(settings, "2026-02-30", None, True, out=io.StringIO()),
               lambda: reports.funnel(settings, "yesterday", True, out=io.StringIO())):  # fmt: skip
        with pytest.raises(reports.ReportError, match="date"):
            fn()
