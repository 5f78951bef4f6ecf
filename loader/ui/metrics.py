"""Every Prometheus metric of the web UI, in its own registry (`GET /metrics` serves it alone,
so in `logship dev` the UI's numbers are not mixed with the loader's).

The `route` label is the route's template (`/deliveries/{delivery_id}`), never the raw path:
ids come from users and would make the label set unbounded. A request no route matched is
counted as `unmatched`.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from loader.ui.problems import WAREHOUSE_KINDS

UNMATCHED = "unmatched"

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)

requests_total = Counter(
    "logship_ui_requests_total",
    "HTTP requests of the web UI by route template and status code",
    ["route", "status"],
    registry=REGISTRY,
)
request_duration_seconds = Histogram(
    "logship_ui_request_duration_seconds",
    "Time from request start to response, by route template",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
warehouse_unavailable_total = Counter(
    "logship_ui_warehouse_unavailable_total",
    "Requests answered 503 by reason: busy (the loader waited for or wrote the DuckDB file "
    "for longer than LOGSHIP_UI_BUSY_RETRY_S), no_data (nothing loaded yet), unavailable (an "
    "error, or a file that is not a DuckDB database)",
    ["reason"],
    registry=REGISTRY,
)
for _kind in WAREHOUSE_KINDS:
    warehouse_unavailable_total.labels(_kind.code)


def observe(route: str, status: int, seconds: float) -> None:
    requests_total.labels(route, str(status)).inc()
    request_duration_seconds.labels(route).observe(seconds)


def exposition() -> tuple[bytes, str]:
    """The text exposition and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
