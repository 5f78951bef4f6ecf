"""Every Prometheus metric of the loader (the dashboard and alerts use these names).

They live in the loader's own registry, not prometheus_client's process-wide default: the
command line imports both packages, and `logship ingest` must not serve the loader's families
(nor the loader the sink's) just because the other's module was imported.
"""

from __future__ import annotations

import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

#: The loader's /metrics: its own families plus the standard process_*, python_* ones.
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

ERROR_TYPES = (
    "connection", "serialization", "timeout", "resources", "load_error", "io", "lake", "other",
)  # fmt: skip

lag_seconds = Gauge(
    "logship_loader_lag_seconds",
    "Age of the oldest lake object not yet loaded; 0 when caught up",
    registry=REGISTRY,
)
pending_objects = Gauge(
    "logship_loader_pending_objects", "Lake objects found but not yet loaded", registry=REGISTRY
)
loaded_events_total = Counter(
    "logship_loader_loaded_events_total",
    "Events inserted into the warehouse",
    registry=REGISTRY,
)
loaded_objects_total = Counter(
    "logship_loader_loaded_objects_total",
    "Lake objects committed to the load ledger",
    registry=REGISTRY,
)
duplicate_events_total = Counter(
    "logship_loader_duplicate_events_total",
    "Staged events not inserted because their event_id was already loaded (or repeated)",
    registry=REGISTRY,
)
copy_duration_seconds = Histogram(
    "logship_loader_copy_duration_seconds",
    "Duration of the COPY (or read_json) of one batch",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
    registry=REGISTRY,
)
errors_total = Counter(
    "logship_loader_errors_total",
    "Failed load cycles by error type",
    ["error_type"],
    registry=REGISTRY,
)
quarantined_objects_total = Counter(
    "logship_loader_quarantined_objects_total",
    "Lake objects moved to quarantine/",
    registry=REGISTRY,
)
held_objects = Gauge(
    "logship_loader_held_objects",
    "Lake objects that fail alone with an error not shown to be their data: left in the lake, "
    "retried alone later, never quarantined on a guess",
    registry=REGISTRY,
)
last_success_timestamp_seconds = Gauge(
    "logship_loader_last_success_timestamp_seconds",
    "Unix time of the last load cycle that completed without error (the process start "
    "until the first one)",
    registry=REGISTRY,
)


def init_labels() -> None:
    """Every label set at zero, and the last success at start: `time() - last success` then
    measures how long this loader has failed, not 56 years for a loader still in its first
    (possibly long: full listing, 1 GiB COPY) cycle."""
    for t in ERROR_TYPES:
        errors_total.labels(t)
    if last_success_timestamp_seconds._value.get() == 0:
        last_success_timestamp_seconds.set(time.time())


def error_type(reason: str) -> str:
    """Bound the label: map a classifier reason onto ERROR_TYPES."""
    if reason in ERROR_TYPES:
        return reason
    if reason.startswith("os:") or reason in ("permission",):
        return "io"
    if reason[:1].isupper() or reason.isdigit():  # S3 error codes / HTTP statuses
        return "lake"
    return "other"
