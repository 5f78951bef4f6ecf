"""Recurring problems are summarised in the log, not repeated per batch."""

from __future__ import annotations

import logging

import pytest

from ingest import logs
from ingest.logs import CountSummary


def test_count_summary_logs_first_at_once_then_once_per_interval(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(logs.time, "monotonic", lambda: now[0])
    summary = CountSummary(logging.getLogger("t"), logging.WARNING, "records rejected", 10.0)
    with caplog.at_level(logging.WARNING, logger="t"):
        summary.add({"a.b:validation": 1})
        for _ in range(50):
            now[0] += 0.1
            summary.add({"a.b:validation": 2, "-:invalid_json": 1})
        now[0] += 5.1  # 10.1 s after the first line
        summary.add({"a.b:validation": 1})
    lines = [r for r in caplog.records if r.getMessage() == "records rejected"]
    assert len(lines) == 2
    assert lines[0].fields["counts"] == {"a.b:validation": 1}
    assert lines[0].fields["since_s"] is None
    # the second line carries everything counted since the first: nothing is dropped
    assert lines[1].fields["counts"] == {"a.b:validation": 101, "-:invalid_json": 50}
    assert lines[1].fields["since_s"] == 10.1
