"""Lake objects as ingest writes them, and small warehouse helpers for the loader tests."""

from __future__ import annotations

import gzip
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson

from ingest.lake import LocalLake, open_lake
from loader.config import LoaderSettings
from loader.cycle import Loader
from loader.server import build_loader
from tests.conftest import s3_client

ENTITIES = ("delivery_id", "robot_id", "trip_id", "merchant_id", "pilot_id")


def event(
    name: str = "delivery.pickup_completed",
    *,
    event_id: str | None = None,
    occurred: datetime | None = None,
    **props: Any,
) -> dict[str, Any]:
    """A canonical event line, as ingest writes it."""
    occurred = occurred or datetime.now(UTC) - timedelta(minutes=5)
    row: dict[str, Any] = {
        "event_id": event_id or uuid.uuid4().hex,
        "event_name": name,
        "event_version": 1,
        "occurred_at": occurred.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "received_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "service": "dispatch",
        "host": "node-1",
    }
    for ent in ENTITIES:
        row[ent] = props.get(ent)
    row["properties"] = props
    return row


def object_key(n: int, when: datetime | None = None, writer: str = "w0-abcd") -> str:
    when = when or datetime.now(UTC)
    return f"events/dt={when:%Y-%m-%d}/hour={when:%H}/{writer}-{n:012d}.json.gz"


def gz_lines(rows: list[dict[str, Any]]) -> bytes:
    return gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in rows))


def put_local(root: Path, key: str, rows: list[dict[str, Any]] | bytes) -> None:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(rows if isinstance(rows, bytes) else gz_lines(rows))


def loader_settings(tmp_path: Path, **kw: Any) -> LoaderSettings:
    values: dict[str, Any] = {
        "lake_url": str(tmp_path / "lake"),
        "warehouse_url": f"duckdb:///{tmp_path}/wh.duckdb",
        "loader_http_addr": "127.0.0.1:0",
        "load_interval_s": 0.2,
        "retry_backoff_max_s": 0.5,
    }
    values.update(kw)
    return LoaderSettings(**values)


async def make_loader(settings: LoaderSettings) -> Loader:
    lake = open_lake(settings.lake_url)
    await lake.start()
    return build_loader(settings, lake)


async def load_objects(
    settings: LoaderSettings, objects: list[list[dict[str, Any]]], **s3: str
) -> None:
    """Every object through the real loader, one per cycle (as the scenarios expect): put in
    the settings' lake (a directory, or S3 at `endpoint`/`bucket`), then loaded."""
    if settings.lake_url.startswith("s3://"):
        client = s3_client(s3["endpoint"])
        for i, rows in enumerate(objects):
            client.put_object(Bucket=s3["bucket"], Key=object_key(i), Body=gz_lines(rows))
    else:
        for i, rows in enumerate(objects):
            put_local(Path(settings.lake_url), object_key(i), rows)
    loader = await make_loader(settings)
    loader.max_objects = 1
    for _ in range(2 * len(objects) + 2):
        if not (await loader.cycle()).more:
            break
    loader.warehouse.close()


def local_lake(tmp_path: Path) -> LocalLake:
    return LocalLake(tmp_path / "lake")


def registry_with_site(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A registry that gained the entity `site_id`, and a row carrying it (schema migration)."""
    reg = tmp_path / "reg.yaml"
    reg.write_text(
        "version: 1\nentities: [delivery_id, robot_id, trip_id, merchant_id, pilot_id, site_id]\n"
        "events:\n  delivery.pickup_completed:\n    fields:\n"
        "      delivery_id: {type: string, required: true}\n      site_id: {type: string}\n"
    )
    row = event(delivery_id="D-2", robot_id="R", site_id="S-7")
    row["site_id"] = "S-7"
    return reg, row


def q(tmp_path: Path, sql: str) -> list[tuple]:
    """Read the DuckDB warehouse of `loader_settings(tmp_path)` back (read-only)."""
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()
