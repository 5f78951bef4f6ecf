"""Poison isolated by object on Redshift (the emulator: real PostgreSQL behind the wire
protocol, COPY from moto S3), through the unmodified redshift-connector driver."""

from __future__ import annotations

from typing import Any

from loader.warehouse import RedshiftWarehouse
from tests.loader.helpers import event, object_key
from tests.loader.poison import POISONS, TOLERATED, TOLERATED_BY_BOTH
from tests.loader.warehouse import test_redshift as rs
from tests.loader.warehouse.test_redshift import loader_for, put, query

env = rs.env  # the fixture: S3 bucket on moto + a fresh emulator database

#: Refused by Redshift's COPY, or by the loader's range check after it.
REDSHIFT_POISONS = [
    "null-event-id",
    "missing-received-at",
    "occurred-at-year-99999",
    "received-at-year-99999",
    "occurred-at-year-0",
    "non-json-line",
    "truncated-gzip",
    "not-gzip",
    "event-version-not-a-number",
    "nul-bytes",
]


def lake_keys(env: dict[str, Any]) -> set[str]:
    return {o["Key"] for o in env["s3"].list_objects_v2(Bucket=env["bucket"]).get("Contents", [])}


async def drain(loader: Any) -> None:
    for _ in range(30):
        if not (await loader.cycle()).more:
            return


async def _poison_run(env: dict[str, Any], redshift_emulator: Any, loader: Any) -> set[str]:
    poison: set[str] = set()
    want: set[str] = set()
    n = 0
    for name in REDSHIFT_POISONS:
        key = object_key(n, writer=f"p-{name}")
        put(env, key, POISONS[name]())
        poison.add(key)
        put(env, object_key(n + 1), [event(delivery_id=f"G-{n}", robot_id="R")])
        want.add(f"G-{n}")
        n += 2
    tolerated = 0
    for name in TOLERATED_BY_BOTH:
        data, events = TOLERATED[name]()
        put(env, object_key(n, writer=f"t-{name}"), data)
        tolerated += events
        n += 1
    redshift_emulator.clear_statements()
    await drain(loader)
    got = [r[0] for r in query(redshift_emulator, env, "SELECT delivery_id FROM logship.events")]
    assert want <= set(got) and not any(d.startswith("P-") for d in got)
    assert sum(d.startswith("T-") for d in got) == tolerated
    rows = query(
        redshift_emulator,
        env,
        "SELECT object_key, reason FROM logship.load_ledger WHERE status = 'quarantined'",
    )
    assert {k for k, _ in rows} == poison and all(reason for _, reason in rows)
    keys = lake_keys(env)
    assert not poison & keys
    assert {f"quarantine/{k}" for k in poison} | {
        f"quarantine/{k}.reason.json" for k in poison
    } <= keys
    return poison


async def test_poison_objects_are_quarantined_and_the_rest_loads(
    env: dict[str, Any], redshift_emulator: Any
) -> None:
    """Redshift names most bad files in SYS_LOAD_ERROR_DETAIL (quarantined at once); a year
    99999 loads into Redshift's stage and is refused by the loader's range check."""
    loader = await loader_for(env, load_max_objects=10)
    await _poison_run(env, redshift_emulator, loader)


async def test_unnamed_load_errors_are_bisected_to_their_objects(
    env: dict[str, Any], redshift_emulator: Any, monkeypatch: Any
) -> None:
    """When the load-error record names nothing (not readable by the loader's user, say),
    bisection finds the objects: each one failing alone twice with a load error."""
    monkeypatch.setattr(RedshiftWarehouse, "load_error_files", lambda self, urls: [])
    loader = await loader_for(env, load_max_objects=10)
    await _poison_run(env, redshift_emulator, loader)
    copies = sum(s.strip().upper().startswith("COPY") for s in redshift_emulator.statements)
    assert copies < 20 * len(REDSHIFT_POISONS)  # bounded: log2(batch) + 2 per poison object
