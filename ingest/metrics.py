"""Every Prometheus metric of the ingest server (the dashboard and alerts use these names).

Counters are incremented once per *batch* with the batch's count (an ``.inc()`` per record costs
about a microsecond). Label values are bounded: routes and codes are ours, event names come
from the registry, reasons from :data:`REJECT_REASONS` / :data:`DISCARD_REASONS`.

With ``LOGSHIP_WORKERS > 1`` the processes share ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics``
aggregates all of them (gauges: spool size summed, oldest age max over live workers).
"""

from __future__ import annotations

import os
from array import array
from bisect import bisect_left
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from ingest.event import DISCARD_REASONS, REJECT_REASONS, RejectReason
from ingest.fsutil import ERRNO_NAMES
from ingest.status import DECISIONS

if TYPE_CHECKING:  # a type only: the metrics module must not load the extractor
    from ingest.extract import Batch

ROUTES = ("/v1/logs", "/api/v2/logs", "/v1/input")
requests_total = Counter(
    "logship_ingest_requests_total", "HTTP requests by route and status code", ["route", "code"]
)
received_records_total = Counter(
    "logship_ingest_received_records_total", "Records received in batches", ["route"]
)
received_bytes_total = Counter(
    "logship_ingest_received_bytes_total", "Request body bytes received (as sent)", ["route"]
)
accepted_events_total = Counter(
    "logship_ingest_accepted_events_total", "Registry events accepted and spooled", ["event"]
)
discarded_records_total = Counter(
    "logship_ingest_discarded_records_total",
    "Records intentionally dropped (no event name, or a name not in the registry)",
    ["reason"],
)
rejected_events_total = Counter(
    "logship_ingest_rejected_events_total",
    "Records rejected and dead-lettered, by event (empty when unknown) and reason",
    ["event", "reason"],
)
request_duration_seconds = Histogram(
    "logship_ingest_request_duration_seconds",
    "Time from request start to response (for 2xx: until the batch is durable)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
spool_size_bytes = Gauge(
    "logship_ingest_spool_size_bytes",
    "Bytes in the local spool not yet uploaded to the lake",
    multiprocess_mode="livesum",
)
spool_max_bytes = Gauge(
    "logship_ingest_spool_max_bytes",
    "Cap of the spool (LOGSHIP_SPOOL_MAX_BYTES, summed over live workers): at it, 503",
    multiprocess_mode="livesum",
)
spool_oldest_age_seconds = Gauge(
    "logship_ingest_spool_oldest_age_seconds",
    "Age of the oldest spooled data not yet uploaded; 0 when empty",
    multiprocess_mode="livemax",
)
uploaded_objects_total = Counter("logship_ingest_uploaded_objects_total", "Lake objects uploaded")
upload_errors_total = Counter(
    "logship_ingest_upload_errors_total", "Failed lake upload attempts (each is retried)"
)
refused_requests_total = Counter(
    "logship_ingest_refused_requests_total",
    "Requests answered with an error, by route and reason (the `error` of the response body)",
    ["route", "reason"],
)
inflight_bytes = Gauge(
    "logship_ingest_inflight_bytes",
    "Bytes held by the requests being worked on (as sent, decompressed, and their output "
    "until spooled), against LOGSHIP_MAX_INFLIGHT_BYTES",
    multiprocess_mode="livesum",
)
#: Every step of the spool and the upload path that counts its OS errors (``stage`` label).
IO_STAGES = (
    "spool_open", "spool_write", "spool_fsync", "spool_truncate", "spool_rename",
    "spool_dir_fsync", "spool_state", "spool_unlink", "spool_recover", "spool_probe",
    "upload_read", "upload_lake",
)  # fmt: skip
io_errors_total = Counter(
    "logship_ingest_io_errors_total",
    "OS errors of the spool and the upload path, by stage and errno name (each is retried)",
    ["stage", "error"],
)
stalled = Gauge(
    "logship_ingest_stalled",
    "1 while the spool or the uploader cannot make progress (then /readyz is 503), else 0",
    multiprocess_mode="livemax",
)
connections = Gauge(
    "logship_ingest_connections",
    "Client connections open now",
    multiprocess_mode="livesum",
)
refused_connections_total = Counter(
    "logship_ingest_refused_connections_total",
    "Connections closed at once because LOGSHIP_MAX_CONNECTIONS were open",
)
event_delay_seconds = Histogram(
    "logship_ingest_event_delay_seconds",
    "received_at minus occurred_at of accepted events",
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400),
)


def observe_many(histogram: Histogram, values: list[float]) -> None:
    """Observe a batch of values with one bucket update each, not one ``observe()`` (a lock and
    a bucket search) per value. Equivalent to ``for v in values: histogram.observe(v)``; a test
    holds it to that, as it uses the client's bucket internals."""
    if not values:
        return
    bounds = histogram._upper_bounds
    counts = [0] * len(bounds)
    for v in values:
        counts[bisect_left(bounds, v)] += 1
    for i, n in enumerate(counts):
        if n:
            histogram._buckets[i].inc(n)
    histogram._sum.inc(sum(values))


def count_batch(route: str, sent_bytes: int, batch: Batch) -> None:
    """Count one spooled batch: what was received, accepted, discarded and rejected."""
    received_records_total.labels(route).inc(batch.nrecords)
    received_bytes_total.labels(route).inc(sent_bytes)
    for name, n in batch.accepted.items():
        accepted_events_total.labels(name).inc(n)
    for reason, n in batch.discarded.items():
        discarded_records_total.labels(reason).inc(n)
    for (name, reason), n in batch.rejects.items():
        rejected_events_total.labels(name, reason).inc(n)
    delays_s = array("d", (d if d > 0 else 0.0 for d in batch.delays_s))
    observe_many(event_delay_seconds, delays_s)  # type: ignore[arg-type]


def init_labels(events: Iterable[str]) -> None:
    """Create the bounded label sets at zero so rates and alerts work from the first scrape."""
    for route in ROUTES:
        received_records_total.labels(route)
        received_bytes_total.labels(route)
        for code in ("200", "202", "400", "401", "408", "413", "415", "503"):
            requests_total.labels(route, code)
        for reason in DECISIONS:
            refused_requests_total.labels(route, reason)
    for stage in IO_STAGES:
        for error in (*ERRNO_NAMES.values(), "other"):
            io_errors_total.labels(stage, error)
    stalled.set(0)
    for reason in DISCARD_REASONS:
        discarded_records_total.labels(reason)
    for reason in REJECT_REASONS:
        rejected_events_total.labels("", reason)
    for ev in events:
        accepted_events_total.labels(ev)
        rejected_events_total.labels(ev, RejectReason.VALIDATION)


def exposition() -> tuple[bytes, str]:
    """The /metrics body: this process's registry, or every worker's in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
