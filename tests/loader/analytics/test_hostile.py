"""Hostile ids reach the warehouse only as parameters (or, when no stored id can be like them,
not at all): a 10 kB id, SQL, HTML, NUL, a lone surrogate, a path — on DuckDB and the Redshift
emulator. Each is "not found", nothing fails, the table is intact; a stored id holding SQL and
HTML is found like any other (tests/loader/analytics/test_session.py)."""

from __future__ import annotations

from datetime import date

from loader import analytics

SQLISH = ("'; DROP TABLE logship.events; --", "D1' OR '1'='1", "<script>alert(1)</script>",
          "../../etc/passwd", "R1%", "D_")  # fmt: skip
IMPOSSIBLE = ("x" * 10240, "D1\x00", "D\ud800", "")  # never stored: no query at all


def _count(reader: analytics.Reader) -> int:
    return int(reader.query(f"SELECT COUNT(*) FROM {reader.events}", [])[0][0])


def test_hostile_ids_are_parameters(reader: analytics.Reader) -> None:
    before = _count(reader)
    day = date(2026, 3, 5)
    calls = reader.query.calls  # type: ignore[attr-defined]
    for value in SQLISH + IMPOSSIBLE:
        calls.clear()
        assert analytics.session(reader, value) is None
        assert analytics.delivery(reader, value) is None
        assert analytics.find(reader, value) is None
        assert analytics.robot_day(reader, value, day) is None
        assert analytics.supply_hours(reader, day, day, value) == []
        if value != IMPOSSIBLE[0]:  # (a reason may be longer than an id: below)
            assert analytics.downtime_intervals(reader, day, day, value) == []
        if value in SQLISH:  # sent as a parameter, never in the SQL text
            assert all(value not in stmt for stmt, _ in calls)
            assert any(value in params for _, params in calls)
        else:  # the 10 kB id is never sent; the rest could not be stored (nor sent)
            assert not any(value in params for _, params in calls)
    # The 10 kB value as a downtime reason (a reason may be longer than an id) is a parameter.
    calls.clear()
    assert analytics.downtime_intervals(reader, day, day, "x" * 10240) == []
    assert any("x" * 10240 in params for _, params in calls)
    assert _count(reader) == before
