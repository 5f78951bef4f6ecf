"""`logship dev` as the README runs it: one process, embedded defaults, curl a batch, rows in
DuckDB; SIGTERM stops it cleanly with everything acknowledged loaded."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import duckdb

from tests.conftest import free_port
from tests.payloads import pickup, vector_record

ROOT = Path(__file__).resolve().parents[3]


def rows(db: Path) -> list[tuple]:
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error:
        return []  # the loader holds the file during a cycle, or it does not exist yet
    try:
        return con.execute(
            "SELECT delivery_id, event_name FROM logship.events ORDER BY occurred_at"
        ).fetchall()
    except duckdb.Error:
        return []
    finally:
        con.close()


async def send_example_until_up(
    s: aiohttp.ClientSession, port: int, proc: subprocess.Popen[bytes]
) -> dict:
    """POST the README's example batch to a starting `logship dev` until it answers (failing
    if the process dies or 30 s pass); the acknowledgement's JSON."""
    body = (ROOT / "examples" / "vector-batch.json").read_bytes()
    deadline = time.monotonic() + 30
    while True:
        try:
            async with s.post(f"http://127.0.0.1:{port}/v1/logs", data=body,
                              headers={"Content-Type": "application/json"}) as r:  # fmt: skip
                assert r.status == 200
                return await r.json()
        except aiohttp.ClientConnectionError:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "logship dev did not start"
            await asyncio.sleep(0.2)


async def test_logship_dev_end_to_end(tmp_path: Path) -> None:
    port, lport = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSHIP_")}
    env.update(LOGSHIP_HTTP_ADDR=f"127.0.0.1:{port}", LOGSHIP_LOADER_HTTP_ADDR=f"127.0.0.1:{lport}")
    env.update(LOGSHIP_UI_HTTP_ADDR="127.0.0.1:0")  # dev also starts the web UI
    proc = subprocess.Popen([sys.executable, "-m", "ingest.cli", "dev"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    db = tmp_path / "var" / "warehouse.duckdb"
    try:
        async with aiohttp.ClientSession() as s:
            ack = await send_example_until_up(s, port, proc)
            assert ack == {"accepted": 3, "discarded": 2, "rejected": 1}
            deadline = time.monotonic() + 60
            while len(rows(db)) < 3:
                assert time.monotonic() < deadline, "events never reached DuckDB"
                await asyncio.sleep(0.5)
            assert rows(db) == [
                ("D-1001", "delivery.dispatched"),
                (None, "robot.state_changed"),
                ("D-1001", "delivery.pickup_completed"),
            ]
            async with s.get(f"http://127.0.0.1:{lport}/metrics") as r:
                assert "logship_loader_loaded_events_total 3.0" in await r.text()
            # A last batch right before SIGTERM is flushed and loaded on the way out.
            last = pickup(delivery_id="D-last")
            async with s.post(f"http://127.0.0.1:{port}/v1/logs", json=[vector_record(last)]) as r:
                assert r.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, proc.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
        assert ("D-last", "delivery.pickup_completed") in rows(db)
    finally:
        if proc.poll() is None:
            proc.kill()
