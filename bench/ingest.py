"""Ingest throughput: a real `logship ingest` process driven from a separate load process.

Bodies are Vector-shaped (`http` sink, json codec, gzip): batches of 1,000 `kubernetes_logs`
records of ~400 B, 10% of them registry events. Acknowledgements are real: every 200 means
fsynced to the spool, and the uploader gzips and writes lake objects meanwhile.

The baseline, measured in the same run on the same bodies, is what any sink must at least do:
decompress and JSON-parse each body in-process (no HTTP, no extraction, no fsync).

    python bench/ingest.py [--duration-s 15] [--concurrency 16] [--workers 1,2]

Prints one line per run and a final JSON object with the figures and the ratio to baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import multiprocessing as mp
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import orjson

RECORDS_PER_BATCH = 1000
EVENT_SHARE = 0.10


def _record(i: int, rnd: random.Random) -> dict:
    ts = f"2026-11-23T08:{i % 60:02d}:{rnd.randrange(60):02d}.{rnd.randrange(10**9):09d}Z"
    if rnd.random() < EVENT_SHARE:
        d, r = f"D-{rnd.randrange(10**6)}", f"R-{rnd.randrange(500)}"
        body = rnd.choice(
            [
                {"event": "delivery.pickup_completed", "delivery_id": d, "robot_id": r},
                {
                    "event": "robot.state_changed",
                    "robot_id": r,
                    "from_state": "available",
                    "to_state": "on_trip",
                    "reason": "dispatched",
                },
                {
                    "event": "robot.error",
                    "robot_id": r,
                    "error_code": "lid_error",
                    "severity": "error",
                },
            ]
        )
        body["event_id"] = uuid.UUID(int=rnd.getrandbits(128)).hex
        message = orjson.dumps(body).decode()
    else:
        message = (
            f"{ts} INFO request_id={uuid.UUID(int=rnd.getrandbits(128)).hex} "
            f"GET /api/v1/robots/R-{rnd.randrange(500)}/telemetry 200 {rnd.randrange(900)}ms "
            "upstream=fleet-gateway"
        )
    return {
        "file": "/var/log/pods/prod_dispatch-7d9f-abcde_1/dispatch/0.log",
        "kubernetes": {
            "container_name": "dispatch",
            "pod_labels": {"app": "dispatch"},
            "pod_name": "dispatch-7d9f-abcde",
            "pod_namespace": "prod",
        },
        "message": message,
        "source_type": "kubernetes_logs",
        "stream": "stdout",
        "timestamp": ts,
    }


def make_bodies(n: int, seed: int = 7) -> list[bytes]:
    rnd = random.Random(seed)
    return [
        gzip.compress(orjson.dumps([_record(i, rnd) for i in range(RECORDS_PER_BATCH)]), 6)
        for _ in range(n)
    ]


def baseline(bodies: list[bytes], min_s: float = 3.0) -> float:
    """Records/s of gzip-decompress + orjson.loads in-process, on one core."""
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < min_s:
        for b in bodies:
            n += len(orjson.loads(gzip.decompress(b)))
    return n / (time.perf_counter() - t0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _load_process(
    port: int, bodies: list[bytes], duration_s: float, conc: int, q: mp.Queue
) -> None:
    """Runs in its own process: `conc` connections posting bodies for `duration_s`."""

    async def main() -> tuple[int, int, list[float]]:
        lat: list[float] = []
        ok = errors = 0
        url = f"http://127.0.0.1:{port}/v1/logs"
        headers = {
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "User-Agent": "Vector/0.58.0 (bench)",
            "Accept-Encoding": "identity",
        }
        deadline = time.perf_counter() + duration_s
        conn = aiohttp.TCPConnector(limit=conc)
        async with aiohttp.ClientSession(connector=conn) as s:

            async def worker(k: int) -> None:
                nonlocal ok, errors
                i = k
                while time.perf_counter() < deadline:
                    body = bodies[i % len(bodies)]
                    i += conc
                    t = time.perf_counter()
                    async with s.post(url, data=body, headers=headers) as r:
                        await r.read()
                        if r.status == 200:
                            ok += 1
                            lat.append(time.perf_counter() - t)
                        else:
                            errors += 1

            await asyncio.gather(*(worker(k) for k in range(conc)))
        return ok, errors, lat

    t0 = time.perf_counter()
    ok, errors, lat = asyncio.run(main())
    q.put((ok, errors, lat, time.perf_counter() - t0))


def _peak_rss_mib(pid: int) -> float:
    """VmHWM of `pid` and its children (the workers), in MiB."""
    pids = [pid]
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        pids += [int(p) for p in out.split()]
    except FileNotFoundError:
        pass
    peak = 0.0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except OSError:
            pass
    return peak


def run_server_bench(
    bodies: list[bytes], workers: int, duration_s: float, conc: int
) -> dict[str, float]:
    port = _free_port()
    tmp = Path(tempfile.mkdtemp(prefix="logship-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSHIP_")}
    env.update(
        LOGSHIP_HTTP_ADDR=f"127.0.0.1:{port}",
        LOGSHIP_SPOOL_DIR=str(tmp / "spool"),
        LOGSHIP_LAKE_URL=str(tmp / "lake"),
        LOGSHIP_WORKERS=str(workers),
        LOGSHIP_OBJECT_MAX_AGE_S="5",
        LOGSHIP_LOG_LEVEL="WARNING",
    )
    proc = subprocess.Popen([sys.executable, "-m", "ingest.cli", "ingest"], env=env)
    try:
        deadline = time.time() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("server did not start") from None
                time.sleep(0.1)
        time.sleep(0.5 * workers)
        q: mp.Queue = mp.Queue()
        load = mp.get_context("fork").Process(
            target=_load_process, args=(port, bodies, duration_s, conc, q)
        )
        load.start()
        ok, errors, lat, elapsed = q.get()
        load.join()
        rss = _peak_rss_mib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    lat.sort()
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else float("nan")  # noqa: E731
    return {
        "workers": workers,
        "records_per_s": ok * RECORDS_PER_BATCH / elapsed,
        "batches_ok": ok,
        "errors": errors,
        "p50_ack_ms": pct(0.50),
        "p99_ack_ms": pct(0.99),
        "peak_rss_mib": rss,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration-s", type=float, default=15)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--bodies", type=int, default=40)
    args = ap.parse_args()

    bodies = make_bodies(args.bodies)
    raw = sum(len(gzip.decompress(b)) for b in bodies) / (len(bodies) * RECORDS_PER_BATCH)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        f"bodies: {len(bodies)} x {RECORDS_PER_BATCH} records, {raw:.0f} B/record, "
        f"{sum(map(len, bodies)) / len(bodies) / 1024:.0f} KiB gzip per batch"
    )
    results = []
    bases = []
    for w in [int(x) for x in args.workers.split(",")]:
        # This machine's speed drifts by tens of percent over minutes (a shared VM), so the
        # baseline is taken right before and right after each run and averaged.
        before = baseline(bodies)
        r = run_server_bench(bodies, w, args.duration_s, args.concurrency)
        base = (before + baseline(bodies)) / 2
        bases.append(base)
        print(
            f"baseline (gunzip + orjson.loads in-process, around this run): {base:,.0f} records/s"
        )
        r["baseline_records_per_s"] = base
        r["ratio_to_baseline"] = r["records_per_s"] / base
        results.append(r)
        print(
            f"logship ingest, {w} worker(s), {args.concurrency} connections: "
            f"{r['records_per_s']:,.0f} records/s ({r['ratio_to_baseline']:.2f}x baseline), "
            f"ack p50 {r['p50_ack_ms']:.1f} ms, p99 {r['p99_ack_ms']:.1f} ms, "
            f"peak RSS {r['peak_rss_mib']:.0f} MiB, errors {r['errors']}"
        )
    print(json.dumps({"baseline_records_per_s": sum(bases) / len(bases), "runs": results}))


if __name__ == "__main__":
    main()
