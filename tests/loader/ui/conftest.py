"""The scenario loaded by the real loader into DuckDB or the Redshift emulator, and a test
client of the UI over it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from ingest.lake import S3Lake
from loader.server import build_loader
from loader.ui import UiSettings, build_app
from loader.ui.server import SERVER_KWARGS
from tests.conftest import s3_client
from tests.loader.helpers import gz_lines, make_loader, object_key, put_local
from tests.loader.ui.scenario import OBJECTS
from tests.loader.warehouse.test_redshift import ROLE, rs_url


def ui_settings(tmp_path: Path, **kw: Any) -> UiSettings:
    values: dict[str, Any] = {
        "lake_url": str(tmp_path / "lake"),
        "warehouse_url": f"duckdb:///{tmp_path}/wh.duckdb",
        "loader_http_addr": "127.0.0.1:0",
        "ui_http_addr": "127.0.0.1:0",
        "load_interval_s": 0.2,
        "retry_backoff_max_s": 0.5,
        "ui_busy_retry_s": 0.3,
    }
    values.update(kw)
    return UiSettings(**values)


async def load(settings: UiSettings, objects: list[list[dict[str, Any]]], **s3: Any) -> None:
    """Every object through the real loader, one per cycle."""
    if settings.lake_url.startswith("s3://"):
        client = s3_client(s3["endpoint"])
        for i, rows in enumerate(objects):
            client.put_object(Bucket=s3["bucket"], Key=object_key(i), Body=gz_lines(rows))
        lake = S3Lake(settings.lake_url)
        await lake.start()
        loader = build_loader(settings, lake)
    else:
        for i, rows in enumerate(objects):
            put_local(Path(settings.lake_url), object_key(i), rows)
        loader = await make_loader(settings)
    loader.max_objects = 1
    for _ in range(len(objects) + 2):
        if not (await loader.cycle()).more:
            break
    loader.warehouse.close()


@pytest.fixture(params=["duckdb", "redshift"])
async def loaded(request: pytest.FixtureRequest, tmp_path: Path) -> UiSettings:
    """The scenario in the backend under test; the UI's settings for it."""
    if request.param == "duckdb":
        settings = ui_settings(tmp_path)
        await load(settings, OBJECTS)
        return settings
    s3_env = request.getfixturevalue("s3_env")
    db = request.getfixturevalue("redshift_db")
    settings = ui_settings(tmp_path, lake_url=f"s3://{s3_env['BUCKET']}",
                           warehouse_url=rs_url(db), redshift_iam_role=ROLE)  # fmt: skip
    await load(settings, OBJECTS, endpoint=request.getfixturevalue("moto_endpoint"),
               bucket=s3_env["BUCKET"])  # fmt: skip
    return settings


@pytest.fixture
async def client(loaded: UiSettings, aiohttp_client: Any) -> Any:
    return await serve(loaded, aiohttp_client)


async def serve(settings: UiSettings, aiohttp_client: Any) -> Any:
    """A test client of the UI, with the server limits `logship ui` runs with."""
    server = TestServer(build_app(settings))
    await server.start_server(**SERVER_KWARGS)
    return await aiohttp_client(server)


@pytest.fixture
async def duck(tmp_path: Path) -> UiSettings:
    """The scenario in DuckDB only (tests of DuckDB-specific behaviour)."""
    settings = ui_settings(tmp_path)
    await load(settings, OBJECTS)
    return settings
