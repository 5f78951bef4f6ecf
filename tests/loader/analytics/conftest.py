"""The scenarios of scenario.py loaded through the real loader into DuckDB and into the Redshift
emulator; a Reader over the result that records every statement and its parameters."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from ingest.event import lake_columns
from ingest.lake import S3Lake
from loader import reports
from loader.analytics import AnalyticsConfig, Reader
from loader.config import LoaderSettings
from loader.server import build_loader
from loader.warehouse import sql
from loader.warehouse.sql import DUCKDB
from tests.conftest import s3_client
from tests.loader.analytics.scenario import OBJECTS
from tests.loader.helpers import (
    ENTITIES,
    gz_lines,
    loader_settings,
    make_loader,
    object_key,
    put_local,
)
from tests.loader.warehouse.test_redshift import ROLE, rs_url


@pytest.fixture(params=["duckdb", "redshift"])
async def loaded(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """The scenarios loaded through the real loader into the backend under test."""
    if request.param == "duckdb":
        settings = loader_settings(tmp_path)
        for i, rows in enumerate(OBJECTS):
            put_local(tmp_path / "lake", object_key(i), rows)
        loader = await make_loader(settings)
    else:
        s3_env = request.getfixturevalue("s3_env")
        db = request.getfixturevalue("redshift_db")
        client = s3_client(request.getfixturevalue("moto_endpoint"))
        for i, rows in enumerate(OBJECTS):
            client.put_object(Bucket=s3_env["BUCKET"], Key=object_key(i), Body=gz_lines(rows))
        settings = loader_settings(tmp_path, lake_url=f"s3://{s3_env['BUCKET']}",
                                   warehouse_url=rs_url(db), redshift_iam_role=ROLE)  # fmt: skip
        lake = S3Lake(settings.lake_url)
        await lake.start()
        loader = build_loader(settings, lake)
    # One object per cycle, so the late 02:00 event really is loaded after the 02:30 one.
    loader.max_objects = 1
    for _ in range(2 * len(OBJECTS)):
        if not (await loader.cycle()).more:
            break
    loader.warehouse.close()
    return settings


class Recorder:
    """A Reader's query function that keeps every (statement, parameters) it ran."""

    def __init__(self, query: Any) -> None:
        self._query = query
        self.calls: list[tuple[str, list[Any]]] = []

    def __call__(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        self.calls.append((statement, list(params)))
        return self._query(statement, params)


def open_reader(settings: LoaderSettings, **cfg: Any) -> tuple[Reader, Any]:
    """A recording Reader over the warehouse of `settings` (analytics settings overridden
    by `cfg`), and the warehouse to close."""
    wh = reports._warehouse(settings)
    base = settings.analytics()
    config = type(base)(**{**base.__dict__, **cfg})
    return Reader(Recorder(wh.query), wh.dialect, wh.schema, config), wh


@pytest.fixture
def reader(loaded: LoaderSettings) -> Iterator[Reader]:
    r, wh = open_reader(loaded)
    try:
        yield r
    finally:
        wh.close()


def memory_reader(rows: list[dict[str, Any]], **cfg: Any) -> Reader:
    """A Reader over an in-memory DuckDB `events` table holding `rows` (helpers.event()
    lines) — for rules that need no loader (time zones, hostile values)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(sql.create_schema(DUCKDB, "logship"))
    con.execute(sql.create_events(DUCKDB, "logship", ENTITIES))
    cols = lake_columns(ENTITIES)
    holes = ", ".join("CAST(? AS JSON)" if c == "properties" else "?" for c in cols)
    for row in rows:
        values = [orjson.dumps(row[c]).decode() if c == "properties" else row[c] for c in cols]
        con.execute(f"INSERT INTO logship.events ({', '.join(cols)}) VALUES ({holes})", values)
    # The delivery spans, by the loader's own statements (as it builds them from `events`).
    con.execute(sql.create_spans(DUCKDB, "logship"))
    con.execute(sql.add_spans("logship", sql.table("logship", sql.EVENTS)))

    def query(statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return con.execute(statement, list(params)).fetchall()

    return Reader(Recorder(query), DUCKDB, "logship", AnalyticsConfig(**cfg))
