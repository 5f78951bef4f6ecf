"""The loader's metrics at start."""

from __future__ import annotations

import time

from loader import metrics


def test_last_success_starts_at_process_start_not_epoch() -> None:
    """`time() - last success` (the LoaderNotSucceeding alert) must measure how long this
    loader has failed — not ~56 years while its first cycle is still running."""
    metrics.last_success_timestamp_seconds.set(0)
    before = time.time()
    metrics.init_labels()
    assert metrics.last_success_timestamp_seconds._value.get() >= before
    metrics.last_success_timestamp_seconds.set(123.0)  # a real success is never overwritten
    metrics.init_labels()
    assert metrics.last_success_timestamp_seconds._value.get() == 123.0
