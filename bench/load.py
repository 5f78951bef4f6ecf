"""Loader throughput into DuckDB, beside DuckDB's own `read_json` of the same files.

Builds a local lake of `--objects` gzip NDJSON objects holding `--events` canonical events in
all (defaults: 200 objects, 1,000,000 events), then, in the same run:

* baseline: `CREATE TABLE … AS SELECT * FROM read_json([all files], …)` into a fresh DuckDB file —
  the fastest way DuckDB itself can ingest these files, with no ledger, dedupe or transaction;
* logship: `logship load` cycles (ledger lock, manifest, stage, dedupe by event_id, insert,
  delivery spans, ledger rows, commit — exactly once) until the lake is loaded, into another
  fresh file. A delivery lasts 40 minutes (objects) and has `--events-per-delivery` events
  (default 20, as the demo fleet's; `1` is the worst case for `delivery_spans`).

Prints events/s of both, the ratio, the loader's peak RSS (it runs in a child process), and
for Redshift the statements and round trips of one cycle (counted from the emulator's log in
`tests/loader/warehouse/test_redshift.py`: 11 statements besides BEGIN and COMMIT, 1 COPY,
whatever the object count).

    python bench/load.py [--objects 200] [--events 1000000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import orjson

ENTITIES = ("delivery_id", "robot_id", "trip_id", "merchant_id", "pilot_id")


#: Minutes a delivery lasts in the bench's lake: its events fall in that many objects.
DELIVERY_MINUTES = 40


def build_lake(
    root: Path, n_objects: int, n_events: int, events_per_delivery: float, seed: int = 11
) -> list[Path]:
    """One object a minute; a delivery lasts DELIVERY_MINUTES and has `events_per_delivery`
    events on average, so about `per / events_per_delivery` deliveries start each minute."""
    rnd = random.Random(seed)
    per = n_events // n_objects
    starts = max(1, round(per / events_per_delivery))  # deliveries starting per minute
    start = datetime(2026, 11, 23, tzinfo=UTC)
    paths = []
    for i in range(n_objects):
        when = start + timedelta(minutes=i)
        rows = []
        for _ in range(per):
            occurred = when - timedelta(seconds=rnd.randrange(600))
            k = i * starts + rnd.randrange(DELIVERY_MINUTES * starts)  # one of those active
            d, r = f"D-{k}", f"R-{rnd.randrange(500)}"
            rows.append(
                orjson.dumps(
                    {
                        "event_id": uuid.UUID(int=rnd.getrandbits(128)).hex,
                        "event_name": "delivery.pickup_completed",
                        "event_version": 1,
                        "occurred_at": occurred.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        "received_at": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        "service": "dispatch",
                        "host": "node-1",
                        "delivery_id": d,
                        "robot_id": r,
                        "trip_id": None,
                        "merchant_id": "M-5",
                        "pilot_id": None,
                        "properties": {"delivery_id": d, "robot_id": r, "merchant_id": "M-5"},
                    }
                )
            )
        key = f"events/dt={when:%Y-%m-%d}/hour={when:%H}/bench-0000-{i:012d}.json.gz"
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(b"\n".join(rows) + b"\n", 6))
        paths.append(path)
    return paths


def baseline(paths: list[Path], db: Path) -> float:
    cols = {"event_id": "VARCHAR", "event_name": "VARCHAR", "event_version": "INTEGER",
            "occurred_at": "TIMESTAMPTZ", "received_at": "TIMESTAMPTZ", "service": "VARCHAR",
            "host": "VARCHAR", **{e: "VARCHAR" for e in ENTITIES}, "properties": "JSON"}  # fmt: skip
    spec = "{" + ", ".join(f"'{c}': '{t}'" for c, t in cols.items()) + "}"
    con = duckdb.connect(str(db))
    t0 = time.perf_counter()
    con.execute(
        "CREATE TABLE events AS SELECT * FROM read_json(?, format='newline_delimited', "
        f"compression='gzip', columns={spec})",
        [[str(p) for p in paths]],
    )
    elapsed = time.perf_counter() - t0
    n = con.execute("SELECT count(*) FROM events").fetchone()[0]
    con.close()
    return n / elapsed


_CHILD = """
import asyncio, json, resource, sys, time
from ingest.lake import open_lake
from loader.config import LoaderSettings
from loader.server import build_loader

async def main():
    settings = LoaderSettings()
    lake = open_lake(settings.lake_url)
    await lake.start()
    loader = build_loader(settings, lake)
    await asyncio.to_thread(loader.warehouse.ensure_schema)  # start-up is not timed
    sys.stdout.write("ready\\n"); sys.stdout.flush()
    if sys.stdin.readline().strip() != "go":
        return
    t0 = time.perf_counter()
    events = cycles = 0
    while True:
        r = await loader.cycle()
        events += r.loaded_events
        cycles += 1
        if not r.more:
            break
    elapsed = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"events": events, "seconds": elapsed, "cycles": cycles, "rss_mib": rss}))

asyncio.run(main())
"""


def run_loader(lake: Path, db: Path, max_objects: int) -> dict:
    """The loader in a child process (its RSS is its own); only the load cycles are timed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSHIP_")}
    env.update(
        LOGSHIP_LAKE_URL=str(lake),
        LOGSHIP_WAREHOUSE_URL=f"duckdb:///{db}",
        LOGSHIP_LOAD_MAX_OBJECTS=str(max_objects),
        LOGSHIP_LOG_LEVEL="WARNING",
    )
    proc = subprocess.Popen([sys.executable, "-c", _CHILD], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.stdin.write("go\n")
    proc.stdin.flush()
    out = json.loads(proc.stdout.readline())
    proc.wait()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--objects", type=int, default=200)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--max-objects", type=int, default=500, help="LOGSHIP_LOAD_MAX_OBJECTS")
    ap.add_argument("--events-per-delivery", type=float, default=20,
                    help="mean events of a delivery (the demo fleet: about 19); 1 is the worst "
                         "case for delivery_spans, a new delivery for nearly every event")  # fmt: skip
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="logship-bench-load-"))
    try:
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, duckdb {duckdb.__version__}"
        )
        t0 = time.perf_counter()
        paths = build_lake(tmp / "lake", args.objects, args.events, args.events_per_delivery)
        size = sum(p.stat().st_size for p in paths)
        print(f"lake: {len(paths)} objects, {args.events:,} events, {size / 2**20:.0f} MiB gzip, "
              f"{args.events_per_delivery:g} events a delivery "
              f"(built in {time.perf_counter() - t0:.0f} s)")  # fmt: skip
        base = baseline(paths, tmp / "baseline.duckdb")
        print(f"baseline (DuckDB read_json into a plain table): {base:,.0f} events/s")
        r = run_loader(tmp / "lake", tmp / "loader.duckdb", args.max_objects)
        n, rate, rss = r["events"], r["events"] / r["seconds"], r["rss_mib"]
        assert n == args.events // args.objects * args.objects, n
        print(f"logship load (exactly-once: ledger, manifest, dedupe; {r['cycles']} cycle(s)): "
              f"{rate:,.0f} events/s ({rate / base:.2f}x baseline), peak RSS {rss:.0f} MiB")  # fmt: skip
        print(json.dumps({"baseline_events_per_s": base, "loader_events_per_s": rate,
                          "ratio_to_baseline": rate / base, "events": n,
                          "events_per_delivery": args.events_per_delivery,
                          "loader_peak_rss_mib": rss}))  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
