"""The UI never fails because of the loader: a DuckDB file locked by another process (a real
lock, held by a real process) is retried briefly, then a clear 503 page; an absent warehouse or
one with nothing loaded is a 503 that says so; the UI's own connection is read-only."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from loader.ui import UiSettings
from loader.ui.problems import UNAVAILABLE, Problem
from loader.ui.reader import Reader
from tests.loader.ui.conftest import serve, ui_settings

#: Holds the DuckDB file open read-write (the loader's lock) until a line arrives on stdin.
HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("BEGIN TRANSACTION")
con.execute("SELECT COUNT(*) FROM logship.events").fetchall()
print("held", flush=True)
sys.stdin.readline()
con.close()
print("released", flush=True)
"""


class Holder:
    """A separate process holding the warehouse's write lock."""

    def __init__(self, path: str):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, path], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "held\n"

    def release(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "released\n"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture
def holder(duck: UiSettings) -> Any:
    holders: list[Holder] = []

    def start() -> Holder:
        h = Holder(duck.warehouse_url.get_secret_value().removeprefix("duckdb://"))
        holders.append(h)
        return h

    yield start
    for h in holders:
        h.stop()


async def test_locked_warehouse_is_a_503_busy_page(duck: UiSettings, holder: Any,
                                                   aiohttp_client: Any) -> None:  # fmt: skip
    client = await serve(duck, aiohttp_client)
    h = holder()
    resp = await client.get("/deliveries/D-1")
    body = await resp.text()
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "2"
    assert "The warehouse is busy" in body and "loader is writing" in body
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
    api = await client.get("/api/deliveries/D-1")
    assert api.status == 503 and (await api.json())["error"] == "busy"
    metrics = await (await client.get("/metrics")).text()
    assert 'logship_ui_warehouse_unavailable_total{reason="busy"}' in metrics
    assert (await client.get("/healthz")).status == 200  # liveness is not the warehouse's
    h.release()
    assert (await client.get("/deliveries/D-1")).status == 200


async def test_a_lock_released_while_retrying_is_waited_for(tmp_path: Path, duck: UiSettings,
                                                            holder: Any,
                                                            aiohttp_client: Any) -> None:  # fmt: skip
    patient = duck.model_copy(update={"ui_busy_retry_s": 60.0})
    client = await serve(patient, aiohttp_client)
    h = holder()
    request = asyncio.create_task(client.get("/deliveries/D-1"))
    await asyncio.sleep(0.3)  # the request is retrying now
    assert not request.done()
    await asyncio.to_thread(h.release)
    resp = await request
    assert resp.status == 200 and "Delivery D-1" in await resp.text()


async def test_no_warehouse_yet(tmp_path: Path, aiohttp_client: Any) -> None:
    client = await serve(ui_settings(tmp_path), aiohttp_client)
    resp = await client.get("/")
    assert resp.status == 503 and "Nothing has been loaded yet" in await resp.text()
    assert not (tmp_path / "wh.duckdb").exists()  # the UI never creates the warehouse
    # a file without the loader's tables: the same answer
    duckdb.connect(str(tmp_path / "wh.duckdb")).close()
    for path in ("/deliveries/D-1", "/supply-hours", "/api/funnel?date=2026-03-05"):
        resp = await client.get(path)
        assert resp.status == 503, path
    assert (await (await client.get("/api/funnel")).json())["error"] == "no_data"


async def test_the_ui_connection_is_read_only(duck: UiSettings) -> None:
    reader = Reader(duck, ("delivery_id", "robot_id", "trip_id", "merchant_id", "pilot_id"))
    try:
        with pytest.raises(Problem) as caught:
            await reader.run(lambda wh: wh.conn.execute("CREATE TABLE logship.sneaky (x INT)"))
        assert caught.value.kind is UNAVAILABLE
    finally:
        reader.close()
    path = duck.warehouse_url.get_secret_value().removeprefix("duckdb://")
    con = duckdb.connect(path, read_only=True)
    try:
        tables = {
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
    finally:
        con.close()
    assert "events" in tables and "sneaky" not in tables


async def test_a_query_that_does_not_end_is_interrupted(duck: UiSettings) -> None:
    """DuckDB has no statement timeout: the UI interrupts a visit after its limit."""
    quick = duck.model_copy(update={"ui_statement_timeout_s": 0.5})
    reader = Reader(quick, ("delivery_id", "robot_id"))
    endless = "SELECT COUNT(*) FROM range(1000000000000) a, range(1000000000000) b"
    try:
        with pytest.raises(Problem) as caught:
            await reader.run(lambda wh: wh.query(endless))
        assert caught.value.kind is UNAVAILABLE
        # the pool is free again: the next visit answers
        assert await reader.run(lambda wh: wh.query("SELECT COUNT(*) FROM logship.events"))
    finally:
        reader.close()
