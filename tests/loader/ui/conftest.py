"""The scenario loaded by the real loader into DuckDB or the Redshift emulator, and a test
client of the UI over it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from loader.ui import UiSettings, build_app
from loader.ui.server import SERVER_KWARGS
from tests.loader.helpers import load_objects
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


@pytest.fixture(params=["duckdb", "redshift"])
async def loaded(request: pytest.FixtureRequest, tmp_path: Path) -> UiSettings:
    """The scenario in the backend under test; the UI's settings for it."""
    if request.param == "duckdb":
        settings = ui_settings(tmp_path)
        await load_objects(settings, OBJECTS)
        return settings
    s3_env = request.getfixturevalue("s3_env")
    db = request.getfixturevalue("redshift_db")
    settings = ui_settings(tmp_path, lake_url=f"s3://{s3_env['BUCKET']}",
                           warehouse_url=rs_url(db), redshift_iam_role=ROLE)  # fmt: skip
    await load_objects(settings, OBJECTS, endpoint=request.getfixturevalue("moto_endpoint"),
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
    await load_objects(settings, OBJECTS)
    return settings
