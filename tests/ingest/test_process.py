"""The real `logship ingest` process: kill -9 after acknowledgements then restart (every
acknowledged event reaches the lake), SIGTERM drain (flush, exit 0), several workers on one port,
and a start refused on bad configuration with a message naming the variable."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest

from tests.conftest import free_port, read_lake_local, read_lake_s3
from tests.payloads import noise_record, pickup, vector_record


def start_ingest(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ingest.cli", "ingest"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"ingest exited early: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                async with s.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("ingest did not become healthy")


def base_env(tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSHIP_")}
    env.update(
        LOGSHIP_HTTP_ADDR=f"127.0.0.1:{port}",
        LOGSHIP_SPOOL_DIR=str(tmp_path / "spool"),
        LOGSHIP_LAKE_URL=str(tmp_path / "lake"),
        LOGSHIP_OBJECT_MAX_AGE_S="0.5",
        LOGSHIP_UPLOAD_BACKOFF_MAX_S="0.5",
    )
    env.update(extra)
    return env


async def send_batches(port: int, n: int, acked: list[str], tag: str, concurrency: int = 8) -> None:
    """Send `n` batches; record the event ids of every acknowledged one. Errors are expected
    once the server is killed."""
    sem = asyncio.Semaphore(concurrency)
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as s:

        async def one(i: int) -> None:
            batch = [pickup(delivery_id=f"{tag}-{i}-{j}") for j in range(20)]
            records = [vector_record(e) for e in batch] + [noise_record(k) for k in range(20)]
            async with sem:
                try:
                    async with s.post(f"http://127.0.0.1:{port}/v1/logs", json=records) as r:
                        if r.status == 200:
                            acked.extend(e["event_id"] for e in batch)
                except (TimeoutError, aiohttp.ClientError):
                    pass

        await asyncio.gather(*(one(i) for i in range(n)))


async def wait_for_lake(read: Any, want: set[str], timeout_s: float = 30) -> set[str]:
    deadline = time.monotonic() + timeout_s
    got: set[str] = set()
    while time.monotonic() < deadline:
        got = {r["event_id"] for r in read()}
        if want <= got:
            return got
        await asyncio.sleep(0.2)
    return got


async def test_kill_9_then_restart_delivers_every_acknowledged_event(
    tmp_path: Path, s3_env: dict[str, str], moto_endpoint: str
) -> None:
    port = free_port()
    bucket = s3_env["BUCKET"]
    env = base_env(tmp_path, port, LOGSHIP_LAKE_URL=f"s3://{bucket}/k9",
                   LOGSHIP_OBJECT_MAX_AGE_S="3600")  # fmt: skip
    proc = start_ingest(env)
    await wait_healthy(port, proc)
    acked: list[str] = []
    sender = asyncio.create_task(send_batches(port, 400, acked, "k9"))
    while len(acked) < 2000 and not sender.done():
        await asyncio.sleep(0.01)
    proc.send_signal(signal.SIGKILL)  # mid-stream, with requests in flight
    proc.wait()
    await sender
    assert len(acked) >= 2000
    # Nothing can have been uploaded (objects rotate after an hour): all of it is in the spool.
    assert read_lake_s3(moto_endpoint, bucket, "k9/events/") == []

    env["LOGSHIP_OBJECT_MAX_AGE_S"] = "0.5"
    proc = start_ingest(env)
    try:
        await wait_healthy(port, proc)
        got = await wait_for_lake(
            lambda: read_lake_s3(moto_endpoint, bucket, "k9/events/"), set(acked)
        )
        assert set(acked) <= got, f"lost {len(set(acked) - got)} acknowledged events"
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


async def test_sigterm_drains_flushes_and_exits_zero(tmp_path: Path) -> None:
    port = free_port()
    env = base_env(tmp_path, port, LOGSHIP_OBJECT_MAX_AGE_S="3600")
    proc = start_ingest(env)
    await wait_healthy(port, proc)
    acked: list[str] = []
    await send_batches(port, 20, acked, "term")
    assert len(acked) == 20 * 20
    assert read_lake_local(tmp_path / "lake") == []  # still in the spool
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    rows = read_lake_local(tmp_path / "lake")
    assert sorted(r["event_id"] for r in rows) == sorted(acked)
    leftover = [p for p in (tmp_path / "spool").rglob("*") if p.suffix in (".open", ".ready")]
    assert leftover == []


async def test_two_workers_share_the_port_and_metrics(tmp_path: Path) -> None:
    port = free_port()
    env = base_env(tmp_path, port, LOGSHIP_WORKERS="2")
    proc = start_ingest(env)
    try:
        await wait_healthy(port, proc)
        acked: list[str] = []
        await send_batches(port, 40, acked, "w2")
        assert len(acked) == 40 * 20
        got = await wait_for_lake(lambda: read_lake_local(tmp_path / "lake"), set(acked))
        assert set(acked) <= got
        assert sorted(p.name for p in (tmp_path / "spool").iterdir()) == ["worker-0", "worker-1"]
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/metrics") as r:
            text = await r.text()
        # Aggregated over both workers, whichever one answered the scrape.
        line = next(
            ln for ln in text.splitlines()
            if ln.startswith('logship_ingest_accepted_events_total{event="delivery.pickup_completed"}')
        )  # fmt: skip
        assert float(line.split()[-1]) == 40 * 20

        # A worker killed with SIGKILL is replaced; the service keeps taking data meanwhile.
        children = psutil.Process(proc.pid).children()
        assert len(children) == 2
        children[0].kill()
        more: list[str] = []
        await send_batches(port, 20, more, "w2b")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            alive = [c for c in psutil.Process(proc.pid).children() if c.is_running()]
            if len(alive) == 2 and children[0].pid not in {c.pid for c in alive}:
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("the killed worker was not restarted")
        await send_batches(port, 20, more, "w2c")
        got = await wait_for_lake(lambda: read_lake_local(tmp_path / "lake"), set(acked + more))
        assert set(acked + more) <= got
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("LOGSHIP_SPOOL_MAX_BYTES", "lots"),
        ("LOGSHIP_HTTP_ADDR", "nohostport"),
        ("LOGSHIP_WORKERS", "0"),
    ],
)
def test_bad_config_fails_start_naming_the_variable(tmp_path: Path, var: str, value: str) -> None:
    env = base_env(tmp_path, free_port(), **{var: value})
    r = subprocess.run([sys.executable, "-m", "ingest.cli", "ingest"], env=env,
                       capture_output=True, timeout=60)  # fmt: skip
    assert r.returncode == 2
    assert var in r.stderr.decode()


def test_broken_registry_fails_start_naming_event_and_field(tmp_path: Path) -> None:
    reg = tmp_path / "reg.yaml"
    reg.write_text("version: 1\nevents:\n  robot.moved:\n    fields:\n      speed: {type: float}\n")
    env = base_env(tmp_path, free_port(), LOGSHIP_REGISTRY_PATH=str(reg))
    r = subprocess.run([sys.executable, "-m", "ingest.cli", "ingest"], env=env,
                       capture_output=True, timeout=60)  # fmt: skip
    assert r.returncode == 1
    err = r.stderr.decode()
    assert "robot.moved" in err and "speed" in err
