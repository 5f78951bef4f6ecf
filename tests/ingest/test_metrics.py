"""metrics.observe_many must equal one observe() per value (it uses the client's internals)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from ingest.metrics import observe_many


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
