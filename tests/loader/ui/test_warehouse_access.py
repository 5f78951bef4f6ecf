"""The UI never fails because of the loader, and never stands in its way.

With real processes and real DuckDB locks: the loader (a real `logship load`, or a loader in
the UI's own process as under `logship dev`) keeps loading while the UI is flooded, and the UI
answers 200 or 503 busy, never a 500. A writer holding the file is retried briefly, then a
clear 503 page; a file that is not a DuckDB database, an absent one and an in-memory
`duckdb://` are 503s that say which; the UI's own connection is read-only."""

from __future__ import annotations

import asyncio
import collections
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from loader.ui import UiSettings
from loader.ui.problems import UNAVAILABLE, Problem
from loader.ui.visits import WarehouseVisits
from tests.loader.helpers import make_loader, object_key, put_local
from tests.loader.ui.conftest import serve, ui_settings
from tests.loader.ui.scenario import DAY, OBJECTS, ev

#: Holds the DuckDB file open read-write until a line arrives on stdin: `loader` through the
#: loader's DuckDBWarehouse (the lock files first), `foreign` as a program outside logship.
HOLDER = """
import sys, duckdb
from loader.warehouse import DuckDBWarehouse
path, how = sys.argv[1], sys.argv[2]
if how == "loader":
    wh = DuckDBWarehouse(path, schema="logship", entities=("delivery_id",), dedupe_window_s=0,
                         views=None)
    wh.connect()
    con = wh.conn
else:
    con = duckdb.connect(path)
con.execute("BEGIN TRANSACTION")
con.execute("SELECT COUNT(*) FROM logship.events").fetchall()
print("held", flush=True)
sys.stdin.readline()
con.close()
if how == "loader":
    wh.close()
print("released", flush=True)
"""
#: Loads into the warehouse while the UI is flooded: so many `logship load --once` runs.
LOADS = 4
#: What the flood asks for, each by several clients at once.
FLOOD_PATHS = ("/deliveries/D-1", "/", f"/supply-hours?date={DAY}", f"/api/funnel?date={DAY}")
CLIENTS_PER_PATH = 2
#: A bound on the flood (it stops when the loads are done).
MAX_REQUESTS_PER_CLIENT = 3000
BUSY = "The warehouse is busy"


class Holder:
    """A separate process holding the warehouse's write lock."""

    def __init__(self, path: str, how: str):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, path, how],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=Path(__file__).resolve().parents[3])  # fmt: skip
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


def db_path(settings: UiSettings) -> str:
    return settings.warehouse_url.get_secret_value().removeprefix("duckdb://")


@pytest.fixture
def holder(duck: UiSettings) -> Any:
    holders: list[Holder] = []

    def start(how: str = "loader") -> Holder:
        h = Holder(db_path(duck), how)
        holders.append(h)
        return h

    yield start
    for h in holders:
        h.stop()


@pytest.mark.parametrize(
    ("how", "says"),
    [("loader", "The loader is writing"), ("foreign", "Another program holds the warehouse")],
)
async def test_a_held_warehouse_is_a_503_busy_page(
    duck: UiSettings, holder: Any, aiohttp_client: Any, how: str, says: str
) -> None:
    client = await serve(duck, aiohttp_client)
    h = holder(how)
    resp = await client.get("/deliveries/D-1")
    body = await resp.text()
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "2"
    assert BUSY in body and says in body
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
    api = await client.get("/api/deliveries/D-1")
    assert api.status == 503 and (await api.json())["error"] == "busy"
    metrics = await (await client.get("/metrics")).text()
    assert 'logship_ui_warehouse_unavailable_total{reason="busy"}' in metrics
    assert (await client.get("/healthz")).status == 200  # liveness is not the warehouse's
    h.release()
    assert (await client.get("/deliveries/D-1")).status == 200


async def test_a_lock_released_while_retrying_is_waited_for(
    duck: UiSettings, holder: Any, aiohttp_client: Any
) -> None:
    patient = duck.model_copy(update={"ui_busy_retry_s": 60.0})
    client = await serve(patient, aiohttp_client)
    h = holder()
    request = asyncio.create_task(client.get("/deliveries/D-1"))
    await asyncio.sleep(0.3)  # the request is retrying now
    assert not request.done()
    await asyncio.to_thread(h.release)
    resp = await request
    assert resp.status == 200 and "Delivery D-1" in await resp.text()


def _more_objects(settings: UiSettings) -> list[str]:
    """LOADS objects the loader has not seen, one delivery each; their delivery ids."""
    ids = [f"D-F{i}" for i in range(LOADS)]
    for i, did in enumerate(ids):
        put_local(Path(settings.lake_url), object_key(len(OBJECTS) + i),
                  [ev("delivery.created", f"15:{i:02d}:00", delivery_id=did)])  # fmt: skip
    return ids


async def _flood(client: Any, done: asyncio.Event) -> collections.Counter[int]:
    """Clients asking for FLOOD_PATHS back to back until `done`: the statuses answered (every
    503 must be the busy page)."""
    statuses: collections.Counter[int] = collections.Counter()

    async def one(path: str) -> None:
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            if done.is_set():
                return
            resp = await client.get(path)
            body = await resp.text()
            statuses[resp.status] += 1
            assert resp.status in (200, 503), (path, resp.status, body[:300])
            assert resp.status == 200 or BUSY in body or '"busy"' in body, body[:300]

    await asyncio.gather(*(one(p) for p in FLOOD_PATHS for _ in range(CLIENTS_PER_PATH)))
    return statuses


def _loaded(settings: UiSettings, ids: list[str]) -> set[str]:
    con = duckdb.connect(db_path(settings), read_only=True)
    try:
        rows = con.execute("SELECT DISTINCT delivery_id FROM logship.events").fetchall()
    finally:
        con.close()
    return {r[0] for r in rows} & set(ids)


async def test_a_loader_process_keeps_loading_while_the_ui_is_flooded(
    duck: UiSettings, aiohttp_client: Any
) -> None:
    """Each `logship load --once` (one cycle, exit 1 if it fails) succeeds while eight clients
    ask the UI for pages back to back: the waiting loader goes first."""
    client = await serve(duck, aiohttp_client)
    ids = _more_objects(duck)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSHIP_")}
    env.update(LOGSHIP_LAKE_URL=duck.lake_url, LOGSHIP_LOAD_MAX_OBJECTS="1",
               LOGSHIP_WAREHOUSE_URL=duck.warehouse_url.get_secret_value())  # fmt: skip
    done = asyncio.Event()

    async def load() -> list[tuple[int, bytes]]:
        runs = []
        try:
            for _ in range(LOADS):
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "ingest.cli", "load", "--once", env=env,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
                _, err = await proc.communicate()
                runs.append((proc.returncode, err[-2000:]))
        finally:
            done.set()
        return runs

    runs, statuses = await asyncio.gather(load(), _flood(client, done))
    assert all(code == 0 for code, _ in runs), runs
    assert _loaded(duck, ids) == set(ids)
    assert statuses[200] > 0 and set(statuses) <= {200, 503}


async def test_a_loader_in_the_same_process_keeps_loading_while_the_ui_is_flooded(
    duck: UiSettings, aiohttp_client: Any
) -> None:
    """`logship dev`'s shape: the loader's cycles and the UI's visits in one process (flock
    locks of two opens conflict there too) — no cycle fails."""
    client = await serve(duck, aiohttp_client)
    ids = _more_objects(duck)
    loader = await make_loader(duck)
    loader.max_objects = 1
    done = asyncio.Event()

    async def load() -> int:
        loaded = 0
        try:
            for _ in range(LOADS):
                loaded += (await loader.cycle()).loaded_objects  # raises if the cycle failed
        finally:
            done.set()
            loader.warehouse.close()
        return loaded

    loaded, statuses = await asyncio.gather(load(), _flood(client, done))
    assert loaded == LOADS and _loaded(duck, ids) == set(ids)
    assert statuses[200] > 0 and set(statuses) <= {200, 503}


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


@pytest.mark.parametrize("content", [b"", b"not a database" * 100])
async def test_a_file_that_is_not_a_duckdb_database_is_unavailable_not_busy(
    tmp_path: Path, aiohttp_client: Any, content: bytes
) -> None:
    (tmp_path / "wh.duckdb").write_bytes(content)
    client = await serve(ui_settings(tmp_path), aiohttp_client)
    resp = await client.get("/deliveries/D-1")
    body = await resp.text()
    assert resp.status == 503 and resp.headers["Retry-After"] == "10"
    assert "Warehouse unavailable: LOGSHIP_WAREHOUSE_URL names a file that is not a DuckDB " \
           "database." in body and BUSY not in body  # fmt: skip
    api = await client.get("/api/deliveries/D-1")
    assert api.status == 503 and (await api.json())["error"] == "unavailable"


async def test_an_in_memory_duckdb_is_a_clear_503(tmp_path: Path, aiohttp_client: Any) -> None:
    client = await serve(ui_settings(tmp_path, warehouse_url="duckdb://"), aiohttp_client)
    for path in ("/", "/deliveries/D-1", "/api/funnel"):
        resp = await client.get(path)
        assert resp.status == 503, path
        assert "in-memory" in await resp.text()


async def test_the_ui_connection_is_read_only(duck: UiSettings) -> None:
    visits = WarehouseVisits(duck, ("delivery_id", "robot_id", "trip_id", "merchant_id",
                                    "pilot_id"))  # fmt: skip
    try:
        with pytest.raises(Problem) as caught:
            await visits.run(lambda wh: wh.conn.execute("CREATE TABLE logship.sneaky (x INT)"))
        assert caught.value.kind is UNAVAILABLE
    finally:
        visits.close()
    con = duckdb.connect(db_path(duck), read_only=True)
    try:
        tables = {
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
    finally:
        con.close()
    assert "events" in tables and "sneaky" not in tables


async def test_a_query_that_does_not_end_is_interrupted(duck: UiSettings) -> None:
    """DuckDB has no statement timeout: the UI interrupts a visit after its limit (so a writer
    waiting for the visit to leave waits a bounded time)."""
    quick = duck.model_copy(update={"ui_statement_timeout_s": 0.5})
    visits = WarehouseVisits(quick, ("delivery_id", "robot_id"))
    endless = "SELECT COUNT(*) FROM range(1000000000000) a, range(1000000000000) b"
    try:
        with pytest.raises(Problem) as caught:
            await visits.run(lambda wh: wh.query(endless))
        assert caught.value.kind is UNAVAILABLE
        # the worker is free again: the next visit answers
        assert await visits.run(lambda wh: wh.query("SELECT COUNT(*) FROM logship.events"))
    finally:
        visits.close()
