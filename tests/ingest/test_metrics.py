"""metrics.observe_many must equal one observe() per value (it uses the client's internals);
every I/O stage label is initialised."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from ingest.metrics import IO_STAGES, observe_many


def _exposition(registry: CollectorRegistry) -> list[str]:
    return [ln for ln in generate_latest(registry).decode().splitlines() if "_created" not in ln]


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), max_size=50))
def test_observe_many_equals_observe(values: list[float]) -> None:
    r1, r2 = CollectorRegistry(), CollectorRegistry()
    buckets = (0.1, 1, 5, 60)
    h1 = Histogram("d", "d", registry=r1, buckets=buckets)
    h2 = Histogram("d", "d", registry=r2, buckets=buckets)
    for v in values:
        h1.observe(v)
    observe_many(h2, values)
    assert _exposition(r1) == _exposition(r2)


def test_every_io_stage_the_spool_and_uploader_count_is_initialised() -> None:
    """`io_errors_total{stage}` is initialised from IO_STAGES; a step named anywhere else would
    appear only after its first error (and the dashboard would not know it)."""
    root = Path(__file__).resolve().parents[2] / "ingest"
    used: set[str] = set()
    for name in ("spool.py", "uploader.py"):
        text = (root / name).read_text()
        used |= set(re.findall(r'_step\(\s*"(\w+)"', text))
        used |= set(re.findall(r'_failed\(\s*\w+,\s*"(\w+)"', text))
    assert len(used) >= 10
    assert used <= set(IO_STAGES), used - set(IO_STAGES)
