"""The warehouse the loader writes to and the analyses read from: Redshift or DuckDB behind
one interface (:class:`Warehouse`), opened from `LOGSHIP_WAREHOUSE_URL` by :func:`open_warehouse`.

`base` is the load logic both share, `redshift` and `duckdb` the backends, `registry_table` the
`event_registry` table, `sql` every statement and what differs between the dialects, `locking`
the lock files that let a DuckDB writer go before the web UI's readers.
"""

from __future__ import annotations

from ingest.registry import Registry
from loader.warehouse.base import LoadOutcome, Views, Warehouse
from loader.warehouse.duckdb import DuckDBWarehouse
from loader.warehouse.redshift import RedshiftWarehouse

__all__ = [
    "DuckDBWarehouse",
    "LoadOutcome",
    "RedshiftWarehouse",
    "Views",
    "Warehouse",
    "open_warehouse",
]


def open_warehouse(
    url: str,
    *,
    schema: str,
    entities: tuple[str, ...],
    dedupe_window_s: float,
    iam_role: str,
    statement_timeout_s: float,
    duckdb_memory_limit: str = "300MB",
    views: Views | None,
    registry: Registry | None = None,
) -> Warehouse:
    """The backend `url` names: `redshift://…` or `duckdb:///path` (`duckdb://` alone: in
    memory). `views` are created with the schema — required, so that a caller that wants none
    (one that only queries, or a test of loading alone) says so with `None`; `registry` is
    mirrored into `event_registry`."""
    common = {
        "schema": schema,
        "entities": entities,
        "dedupe_window_s": dedupe_window_s,
        "views": views,
        "registry": registry,
    }
    if url.startswith("redshift://"):
        return RedshiftWarehouse(url, iam_role, statement_timeout_s, **common)
    if url.startswith("duckdb://"):
        path = url[len("duckdb://") :]
        path = path[1:] if path.startswith("/./") else path  # duckdb:///./var/x → ./var/x
        return DuckDBWarehouse(path or ":memory:", memory_limit=duckdb_memory_limit, **common)
    raise ValueError("LOGSHIP_WAREHOUSE_URL must start with redshift:// or duckdb://")
