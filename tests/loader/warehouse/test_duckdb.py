"""The loader on DuckDB (the embedded default), over a local lake and over moto S3: load,
reload is a no-op, duplicates across objects land once, racing loaders, poison objects,
schema migration, and the `logship load --once` command."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from loader import metrics
from tests.conftest import s3_client
from tests.loader.helpers import (
    event,
    gz_lines,
    loader_settings,
    make_loader,
    object_key,
    put_local,
    q,
    registry_with_site,
)


async def test_load_reload_and_ledger(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    rows = [[event(delivery_id=f"D-{i}-{j}", robot_id="R-1") for j in range(10)] for i in range(3)]
    for i, r in enumerate(rows):
        put_local(lake, object_key(i), r)
    loader = await make_loader(loader_settings(tmp_path))
    result = await loader.cycle()
    assert (result.pending, result.loaded_objects, result.loaded_events) == (3, 3, 30)
    got = q(tmp_path, "SELECT event_id, delivery_id, robot_id, properties FROM logship.events")
    want = {r["event_id"]: r for batch in rows for r in batch}
    assert {g[0] for g in got} == set(want)
    for eid, delivery, robot, props in got:
        assert (delivery, robot) == (want[eid]["delivery_id"], "R-1")
        assert orjson.loads(props) == want[eid]["properties"]
    ledger = q(tmp_path, "SELECT object_key, status, manifest_key FROM logship.load_ledger")
    assert sorted(k for k, *_ in ledger) == sorted(object_key(i) for i in range(3))
    assert all(s == "loaded" for _, s, _ in ledger)
    (manifest_url,) = {m for *_, m in ledger}
    manifest = orjson.loads(Path(manifest_url).read_bytes())
    assert all(e["mandatory"] for e in manifest["entries"]) and len(manifest["entries"]) == 3

    # A second cycle, and a fresh loader with no memory: nothing more is loaded.
    assert (await loader.cycle()).loaded_objects == 0
    fresh = await make_loader(loader_settings(tmp_path))
    assert (await fresh.cycle()).loaded_events == 0
    assert q(tmp_path, "SELECT COUNT(*) FROM logship.events") == [(30,)]


async def test_same_event_in_two_objects_lands_once(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    dup = event(event_id="same-id", delivery_id="D-1", robot_id="R-1")
    put_local(lake, object_key(1), [dup, event(delivery_id="D-2", robot_id="R")])
    put_local(lake, object_key(2), [dup, dup])
    before = metrics.duplicate_events_total._value.get()
    loader = await make_loader(loader_settings(tmp_path))
    result = await loader.cycle()
    assert result.loaded_events == 2 and result.duplicates == 2
    assert metrics.duplicate_events_total._value.get() - before == 2
    # Redelivered later in another object (a sender retry after a lost 200): still once.
    put_local(lake, object_key(3), [dup])
    assert (await loader.cycle()).loaded_events == 0
    assert q(tmp_path, "SELECT COUNT(*) FROM logship.events WHERE event_id = 'same-id'") == [(1,)]


async def test_batches_are_bounded_and_oldest_first(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    old = datetime.now(UTC) - timedelta(hours=5)
    put_local(lake, object_key(9), [event(delivery_id="D-new", robot_id="R")])
    put_local(lake, object_key(1, old), [event(delivery_id="D-old", robot_id="R")])
    put_local(lake, object_key(2, old), [event(delivery_id="D-old2", robot_id="R")])
    loader = await make_loader(loader_settings(tmp_path, load_max_objects=2))
    r1 = await loader.cycle()
    assert r1.loaded_objects == 2 and r1.more
    assert {r[0] for r in q(tmp_path, "SELECT delivery_id FROM logship.events")} == {
        "D-old",
        "D-old2",
    }
    r2 = await loader.cycle()
    assert r2.loaded_objects == 1 and not r2.more
    assert metrics.lag_seconds._value.get() == 0
    assert metrics.pending_objects._value.get() == 0


async def test_two_loaders_racing_load_each_object_once(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    for i in range(20):
        put_local(
            lake, object_key(i), [event(delivery_id=f"D-{i}-{j}", robot_id="R") for j in range(5)]
        )
    a = await make_loader(loader_settings(tmp_path, load_max_objects=3))
    b = await make_loader(loader_settings(tmp_path, load_max_objects=3))
    await a.cycle()  # create the schema before the race

    async def drain(loader: Any) -> None:
        for _ in range(40):
            try:
                if not (await loader.cycle()).more:
                    return
            except Exception as exc:  # a conflict with the other loader: retry, like run_forever
                from loader.errors import classify

                assert classify(exc).transient, exc
                await asyncio.sleep(0.05)

    await asyncio.gather(drain(a), drain(b))
    assert q(tmp_path, "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM logship.events") == [
        (100, 100)
    ]
    assert q(tmp_path, "SELECT COUNT(*) FROM logship.load_ledger") == [(20,)]


async def test_poison_object_is_quarantined_and_the_rest_loads(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    good = [event(delivery_id=f"D-{i}", robot_id="R") for i in range(6)]
    for i, row in enumerate(good):
        put_local(lake, object_key(i), [row])
    bad = event(delivery_id="D-bad", robot_id="R")
    bad["occurred_at"] = "not a time"
    put_local(lake, object_key(3, writer="w9-poison"), [bad])
    put_local(lake, object_key(4, writer="w9-garbage"), b"this is not gzip at all")
    before = metrics.quarantined_objects_total._value.get()
    loader = await make_loader(loader_settings(tmp_path))
    for _ in range(5):
        if not (await loader.cycle()).more:
            break
    assert metrics.quarantined_objects_total._value.get() - before == 2
    loaded = {r[0] for r in q(tmp_path, "SELECT delivery_id FROM logship.events")}
    assert loaded == {r["delivery_id"] for r in good}
    for writer in ("w9-poison", "w9-garbage"):
        key = next(k for k in [object_key(3, writer=writer), object_key(4, writer=writer)]
                   if (lake / "quarantine" / k).exists())  # fmt: skip
        assert not (lake / key).exists()
        note = orjson.loads((lake / "quarantine" / f"{key}.reason.json").read_bytes())
        assert note["key"] == key and note["reason"]
    statuses = q(tmp_path, "SELECT status, COUNT(*) FROM logship.load_ledger GROUP BY 1 ORDER BY 1")
    assert statuses == [("loaded", 6), ("quarantined", 2)]


async def test_new_entity_column_migrates_the_table(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    put_local(lake, object_key(1), [event(delivery_id="D-1", robot_id="R")])
    loader = await make_loader(loader_settings(tmp_path))
    await loader.cycle()
    reg, row = registry_with_site(tmp_path)
    put_local(lake, object_key(2), [row])
    loader2 = await make_loader(loader_settings(tmp_path, registry_path=reg))
    await loader2.cycle()
    assert q(tmp_path, "SELECT delivery_id, site_id FROM logship.events ORDER BY 1") == [
        ("D-1", None),
        ("D-2", "S-7"),
    ]


async def test_duckdb_reads_an_s3_lake(
    tmp_path: Path, s3_env: dict[str, str], moto_endpoint: str
) -> None:
    bucket = s3_env["BUCKET"]
    rows = [event(delivery_id=f"D-s3-{i}", robot_id="R") for i in range(4)]
    s3_client(moto_endpoint).put_object(
        Bucket=bucket, Key=f"pre/{object_key(1)}", Body=gz_lines(rows)
    )
    loader = await make_loader(loader_settings(tmp_path, lake_url=f"s3://{bucket}/pre"))
    assert (await loader.cycle()).loaded_events == 4
    manifests = s3_client(moto_endpoint).list_objects_v2(Bucket=bucket, Prefix="pre/manifests/")
    assert manifests["KeyCount"] == 1
    await loader.lake.close()


def test_cli_load_once(tmp_path: Path) -> None:
    put_local(tmp_path / "lake", object_key(1), [event(delivery_id="D-cli", robot_id="R")])
    env = {
        "PATH": "/usr/bin:/bin",
        "LOGSHIP_LAKE_URL": str(tmp_path / "lake"),
        "LOGSHIP_WAREHOUSE_URL": f"duckdb:///{tmp_path}/wh.duckdb",
    }
    r = subprocess.run([sys.executable, "-m", "ingest.cli", "load", "--once"], env=env,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert q(tmp_path, "SELECT delivery_id FROM logship.events") == [("D-cli",)]
    bad = dict(env, LOGSHIP_WAREHOUSE_URL="postgres://x")
    r = subprocess.run([sys.executable, "-m", "ingest.cli", "load", "--once"], env=bad,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2 and "LOGSHIP_WAREHOUSE_URL" in r.stderr
    assert "postgres://x" not in r.stderr  # the URL may hold a password: never echoed


async def test_missing_file_is_skipped_and_the_rest_loads(tmp_path: Path) -> None:
    """DuckDB's counterpart of Redshift's missing mandatory file: an object listed, then gone."""
    from ingest.lake import LocalLake

    lake_dir = tmp_path / "lake"
    for i in range(3):
        put_local(lake_dir, object_key(i), [event(delivery_id=f"D-{i}", robot_id="R")])

    class Vanishing(LocalLake):
        victim = object_key(1)

        async def put(self, key: str, data: bytes) -> None:
            if key.startswith("manifests/") and self.victim:
                (lake_dir / self.victim).unlink()
                self.victim = ""
            await super().put(key, data)

    from loader.server import build_loader

    lake = Vanishing(lake_dir)
    await lake.start()
    loader = build_loader(loader_settings(tmp_path), lake)
    for _ in range(4):
        if not (await loader.cycle()).more:
            break
    assert q(tmp_path, "SELECT delivery_id FROM logship.events ORDER BY 1") == [("D-0",), ("D-2",)]


async def test_warehouse_locked_by_another_process_is_transient(tmp_path: Path) -> None:
    from loader.errors import classify

    put_local(tmp_path / "lake", object_key(1), [event(delivery_id="D-1", robot_id="R")])
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb,sys,time; c=duckdb.connect(sys.argv[1]); print('ok', flush=True); time.sleep(60)",
         str(tmp_path / "wh.duckdb")],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"ok"
        loader = await make_loader(loader_settings(tmp_path))
        with pytest.raises(Exception) as ei:
            await loader.cycle()
        assert classify(ei.value).transient, ei.value
    finally:
        holder.kill()
        holder.wait()
    assert (await loader.cycle()).loaded_events == 1


async def test_sigkill_during_load_then_restart_loads_everything_once(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    n_objects, per = 40, 2000
    for i in range(n_objects):
        put_local(
            lake, object_key(i), [event(delivery_id=f"D-{i}-{j}", robot_id="R") for j in range(per)]
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSHIP_")}
    env.update(LOGSHIP_LAKE_URL=str(lake), LOGSHIP_WAREHOUSE_URL=f"duckdb:///{tmp_path}/wh.duckdb",
               LOGSHIP_LOADER_HTTP_ADDR="127.0.0.1:0", LOGSHIP_LOAD_MAX_OBJECTS="20")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "ingest.cli", "load"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    # The manifest is written inside the load transaction, before the stage is read: kill then.
    manifests = lake / "manifests"
    deadline = time.monotonic() + 60
    while not (manifests.exists() and any(manifests.rglob("*.json"))):
        assert time.monotonic() < deadline and proc.poll() is None
        await asyncio.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "wh.duckdb").exists() or q(
        tmp_path, "SELECT COUNT(*) FROM logship.load_ledger"
    ) == [(0,)], "the killed transaction must not have committed anything"
    loader = await make_loader(loader_settings(tmp_path))
    for _ in range(10):
        if not (await loader.cycle()).more:
            break
    total = n_objects * per
    assert q(tmp_path, "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM logship.events") == [
        (total, total)
    ]
    assert q(tmp_path, "SELECT COUNT(*) FROM logship.load_ledger") == [(n_objects,)]


async def test_calendar_edge_dates_do_not_stall_the_loader(tmp_path: Path) -> None:
    """A lake object holding year-1 or year-9999 times (not from our ingest, which refuses
    them) still loads: the dedupe window is clamped, not overflowed."""
    rows = [event(delivery_id="D-old", robot_id="R"), event(delivery_id="D-new", robot_id="R")]
    rows[0]["occurred_at"] = "0001-01-01T00:00:00.000000Z"
    rows[1]["occurred_at"] = "9999-12-31T00:00:00.000000Z"
    put_local(tmp_path / "lake", object_key(1), rows)
    loader = await make_loader(loader_settings(tmp_path))
    assert (await loader.cycle()).loaded_events == 2
