"""The loader through the unmodified `redshift-connector` driver against the Redshift emulator
(real PostgreSQL behind a wire-protocol proxy that executes manifest COPY from moto S3).

Load, reload no-op, duplicates across objects, the exact statements of a cycle (one COPY),
racing loaders, SIGKILL mid-transaction, poison and missing objects, warehouse down, and a
schema migration."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ingest.lake import S3Lake
from loader import metrics
from loader.errors import classify
from loader.server import build_loader
from tests.conftest import s3_client
from tests.loader.helpers import event, gz_lines, loader_settings, object_key, registry_with_site

ROLE = "arn:aws:iam::123456789012:role/logship-loader"


def rs_url(kw: dict[str, Any]) -> str:
    return (
        f"redshift://{kw['user']}:{kw['password']}@{kw['host']}:{kw['port']}/{kw['database']}"
        "?ssl=false&timeout=30"
    )


@pytest.fixture
def env(
    tmp_path: Path, s3_env: dict[str, str], moto_endpoint: str, redshift_db: dict[str, Any]
) -> dict[str, Any]:
    bucket = s3_env["BUCKET"]
    return {
        "bucket": bucket,
        "s3": s3_client(moto_endpoint),
        "db": redshift_db,
        "settings": loader_settings(
            tmp_path,
            lake_url=f"s3://{bucket}",
            warehouse_url=rs_url(redshift_db),
            redshift_iam_role=ROLE,
        ),
    }


def put(env: dict[str, Any], key: str, rows: list[dict[str, Any]] | bytes) -> None:
    body = rows if isinstance(rows, bytes) else gz_lines(rows)
    env["s3"].put_object(Bucket=env["bucket"], Key=key, Body=body)


async def loader_for(env: dict[str, Any], **overrides: Any) -> Any:
    settings = env["settings"].model_copy(update=overrides)
    lake = S3Lake(settings.lake_url)
    await lake.start()
    return build_loader(settings, lake)


def query(emulator: Any, env: dict[str, Any], sql: str) -> list[tuple]:
    """Read the warehouse back through the real driver."""
    import redshift_connector

    with redshift_connector.connect(**env["db"]) as conn:
        cur = conn.cursor()
        cur.execute(sql)
        return [tuple(r) for r in cur.fetchall()]


async def test_load_reload_duplicates_and_exact_statements(
    env: dict[str, Any], redshift_emulator: Any
) -> None:
    dup = event(event_id="dup-1", delivery_id="D-dup", robot_id="R")
    loader = await loader_for(env)
    await loader.cycle()  # creates the schema; the lake is empty
    for i in range(5):
        put(
            env,
            object_key(i),
            [event(delivery_id=f"D-{i}-{j}", robot_id="R") for j in range(4)] + [dup],
        )
    redshift_emulator.clear_statements()
    result = await loader.cycle()
    assert (result.loaded_objects, result.loaded_events, result.duplicates) == (5, 21, 4)

    stmts = [s.strip() for s in redshift_emulator.statements]
    load = [s.split()[0].upper() for s in stmts if not s.lower().startswith(("begin", "commit"))]
    assert load == [
        "SELECT",  # ledger diff (discovery)
        "LOCK",
        "SELECT",  # ledger re-check under the lock
        "DROP",
        "CREATE",
        "COPY",
        "SELECT",  # stage stats
        "INSERT",  # events
        "INSERT",  # delivery_spans: the stage's deliveries
        "INSERT",  # ledger
        "DROP",
    ]
    (copy,) = [s for s in stmts if s.upper().startswith("COPY")]
    assert f"IAM_ROLE '{ROLE}'" in copy and "MANIFEST" in copy and "GZIP" in copy
    assert env["db"]["password"] not in " ".join(stmts)  # no credentials in SQL text
    assert "ACCESS_KEY" not in copy.upper() and "CREDENTIALS" not in copy.upper()

    rows = query(
        redshift_emulator, env, "SELECT count(*), count(DISTINCT event_id) FROM logship.events"
    )
    assert rows == [(21, 21)]
    # Reload: a second cycle and a fresh loader load nothing more.
    assert (await loader.cycle()).loaded_objects == 0
    fresh = await loader_for(env)
    assert (await fresh.cycle()).loaded_events == 0
    assert query(redshift_emulator, env, "SELECT count(*) FROM logship.events") == [(21,)]
    # The same event again in a later object: still once.
    put(env, object_key(9), [dup])
    assert (await fresh.cycle()).loaded_events == 0
    assert query(
        redshift_emulator, env, "SELECT count(*) FROM logship.events WHERE event_id='dup-1'"
    ) == [(1,)]


async def test_one_copy_per_cycle_whatever_the_object_count(
    env: dict[str, Any], redshift_emulator: Any
) -> None:
    for i in range(40):
        put(env, object_key(i), [event(delivery_id=f"D-{i}", robot_id="R")])
    loader = await loader_for(env)
    redshift_emulator.clear_statements()
    assert (await loader.cycle()).loaded_objects == 40
    assert sum(s.strip().upper().startswith("COPY") for s in redshift_emulator.statements) == 1


async def test_two_loaders_racing_load_each_object_once(
    env: dict[str, Any], redshift_emulator: Any
) -> None:
    for i in range(12):
        put(env, object_key(i), [event(delivery_id=f"D-{i}-{j}", robot_id="R") for j in range(3)])
    a = await loader_for(env, load_max_objects=4)
    b = await loader_for(env, load_max_objects=4)
    await asyncio.to_thread(a.warehouse.ensure_schema)

    async def drain(loader: Any) -> None:
        for _ in range(30):
            if not (await loader.cycle()).more:
                return

    await asyncio.gather(drain(a), drain(b))
    assert query(
        redshift_emulator, env, "SELECT count(*), count(DISTINCT event_id) FROM logship.events"
    ) == [(36, 36)]
    assert query(
        redshift_emulator,
        env,
        "SELECT count(*), count(DISTINCT object_key) FROM logship.load_ledger",
    ) == [(12, 12)]


async def test_poison_object_quarantined_from_load_error_detail(
    env: dict[str, Any], redshift_emulator: Any
) -> None:
    for i in range(4):
        put(env, object_key(i), [event(delivery_id=f"D-{i}", robot_id="R")])
    bad = event(delivery_id="D-bad", robot_id="R")
    bad["event_version"] = "not-a-number"
    poison = object_key(2, writer="w9-poison")
    put(env, poison, [bad])
    before = metrics.quarantined_objects_total._value.get()
    loader = await loader_for(env)
    redshift_emulator.clear_statements()
    for _ in range(4):
        if not (await loader.cycle()).more:
            break
    assert metrics.quarantined_objects_total._value.get() - before == 1
    assert query(redshift_emulator, env, "SELECT count(*) FROM logship.events") == [(4,)]
    keys = [o["Key"] for o in env["s3"].list_objects_v2(Bucket=env["bucket"])["Contents"]]
    assert f"quarantine/{poison}" in keys and f"quarantine/{poison}.reason.json" in keys
    assert poison not in keys
    note = env["s3"].get_object(Bucket=env["bucket"], Key=f"quarantine/{poison}.reason.json")
    assert b"event_version" in note["Body"].read()  # the reason Redshift recorded
    status = query(
        redshift_emulator,
        env,
        "SELECT status FROM logship.load_ledger WHERE object_key = '" + poison + "'",
    )
    assert status == [("quarantined",)]
    # The load error named the file: no bisection, so only two COPYs (the failed one, the rest).
    assert sum(s.strip().upper().startswith("COPY") for s in redshift_emulator.statements) == 2


class VanishingLake(S3Lake):
    """An S3 lake from which one object disappears after listing (a lifecycle rule, an operator)
    — right when the manifest is written, so the COPY meets a missing mandatory file."""

    victim = ""

    async def put(self, key: str, data: bytes) -> None:
        if key.startswith("manifests/") and self.victim:
            await self.delete(self.victim)
            self.victim = ""
        await super().put(key, data)


async def test_missing_mandatory_file_fails_the_copy_and_the_rest_loads(
    env: dict[str, Any], redshift_emulator: Any
) -> None:
    for i in range(3):
        put(env, object_key(i), [event(delivery_id=f"D-{i}", robot_id="R")])
    settings = env["settings"]
    lake = VanishingLake(settings.lake_url)
    await lake.start()
    lake.victim = object_key(1)
    loader = build_loader(settings, lake)
    for _ in range(4):
        if not (await loader.cycle()).more:
            break
    got = query(redshift_emulator, env, "SELECT delivery_id FROM logship.events ORDER BY 1")
    assert got == [("D-0",), ("D-2",)]
    assert query(redshift_emulator, env, "SELECT count(*) FROM logship.load_ledger") == [(2,)]
    assert any("mandatory" in m.lower() or "missing" in m.lower() or "not exist" in m.lower()
               for (m,) in query(redshift_emulator, env, "SELECT error_message FROM sys_load_error_detail"))  # fmt: skip


async def test_warehouse_down_retries_lag_grows_then_recovers(
    env: dict[str, Any], redshift_emulator: Any
) -> None:
    loader = await loader_for(env)
    await loader.cycle()  # schema in place, caught up
    put(env, object_key(1), [event(delivery_id="D-late", robot_id="R")])
    redshift_emulator.stop()  # drops the loader's idle connection: it must reconnect itself
    try:
        with pytest.raises(Exception) as ei:
            await loader.cycle()
        assert classify(ei.value).transient
        assert metrics.pending_objects._value.get() == 1
        assert metrics.lag_seconds._value.get() >= 0
        await asyncio.sleep(1.1)
        with pytest.raises(Exception) as again:
            await loader.cycle()
        assert classify(again.value).transient
        assert metrics.lag_seconds._value.get() >= 1.0  # the lag grows while it is down
    finally:
        redshift_emulator.start()
    result = await loader.cycle()
    assert result.loaded_events == 1
    assert metrics.lag_seconds._value.get() == 0


async def test_s3_unreadable_for_copy_is_transient_and_quarantines_nothing(
    env: dict[str, Any], redshift_emulator: Any
) -> None:
    """Redshift's S3 reads failing (its own S3 path down) is a query-level S3ServiceException,
    not a load error: the loader retries the cycle and must not quarantine good objects."""
    import boto3
    from botocore.config import Config

    loader = await loader_for(env)
    put(env, object_key(1), [event(delivery_id="D-1", robot_id="R")])
    quarantined_before = metrics.quarantined_objects_total._value.get()
    healthy = redshift_emulator.s3
    redshift_emulator.s3 = boto3.client(
        "s3", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )  # fmt: skip
    try:
        with pytest.raises(Exception) as ei:
            await loader.cycle()
        assert "S3ServiceException" in str(ei.value)
        assert classify(ei.value) == classify(ei.value).__class__(True, "lake")
    finally:
        redshift_emulator.s3 = healthy
    assert metrics.quarantined_objects_total._value.get() == quarantined_before
    result = await loader.cycle()
    assert result.loaded_events == 1 and result.quarantined == 0
    assert query(redshift_emulator, env, "SELECT count(*) FROM sys_load_error_detail") == [(0,)]


async def test_new_entity_column_migrates(
    env: dict[str, Any], redshift_emulator: Any, tmp_path: Path
) -> None:
    put(env, object_key(1), [event(delivery_id="D-1", robot_id="R")])
    await (await loader_for(env)).cycle()
    reg, row = registry_with_site(tmp_path)
    put(env, object_key(2), [row])
    loader = await loader_for(env, registry_path=reg)
    redshift_emulator.clear_statements()
    await loader.cycle()
    alters = [s for s in redshift_emulator.statements if s.upper().startswith("ALTER TABLE")]
    assert len(alters) == 1 and '"site_id"' in alters[0]
    got = query(
        redshift_emulator, env, "SELECT delivery_id, site_id FROM logship.events ORDER BY 1"
    )
    assert got == [("D-1", None), ("D-2", "S-7")]


async def test_sigkill_mid_transaction_then_restart_loads_everything_once(
    env: dict[str, Any], redshift_emulator: Any
) -> None:
    n_objects, per_object = 60, 300
    for i in range(n_objects):
        put(
            env,
            object_key(i),
            [event(delivery_id=f"D-{i}-{j}", robot_id="R") for j in range(per_object)],
        )
    s = env["settings"]
    proc_env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSHIP_")}
    proc_env.update(
        LOGSHIP_LAKE_URL=s.lake_url,
        LOGSHIP_WAREHOUSE_URL=s.warehouse_url.get_secret_value(),
        LOGSHIP_REDSHIFT_IAM_ROLE=ROLE,
        LOGSHIP_LOADER_HTTP_ADDR="127.0.0.1:0",
    )
    redshift_emulator.clear_statements()
    proc = subprocess.Popen([sys.executable, "-m", "ingest.cli", "load"], env=proc_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not any(x.strip().upper().startswith("COPY") for x in redshift_emulator.statements):
            assert time.monotonic() < deadline, "the loader never reached its COPY"
            assert proc.poll() is None
            await asyncio.sleep(0.005)
        proc.send_signal(signal.SIGKILL)  # inside the load transaction
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    loader = await loader_for(env)
    for _ in range(10):
        if not (await loader.cycle()).more:
            break
    total = n_objects * per_object
    assert query(
        redshift_emulator, env, "SELECT count(*), count(DISTINCT event_id) FROM logship.events"
    ) == [(total, total)]
    assert query(redshift_emulator, env, "SELECT count(*) FROM logship.load_ledger") == [
        (n_objects,)
    ]
