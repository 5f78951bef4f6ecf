"""Poison isolated by object, whatever the error; transient errors never quarantine — the real
Loader on DuckDB over a local lake (and moto S3 for the streaming quarantine).

Faults the warehouse does not produce on demand (fd exhaustion inside DuckDB's reader, an
unclassified DuckDB error on one object) are injected as the real DuckDB exception types,
raised by the statement that reads the objects — with the messages that once fooled the
classifier."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

import loader.cycle
from ingest.lake import LocalLake, S3Lake
from loader import metrics
from loader.errors import LoadFailed, classify, verdict
from loader.server import build_loader
from loader.warehouse import DuckDBWarehouse
from tests.conftest import s3_client
from tests.loader.helpers import (
    event,
    gz_lines,
    loader_settings,
    make_loader,
    object_key,
    put_local,
    q,
)
from tests.loader.poison import POISONS, TOLERATED


def goods(lake: Path, first: int, n: int, writer: str = "w0-good") -> list[str]:
    """`n` good one-event objects; returns their delivery ids."""
    ids = []
    for i in range(first, first + n):
        ids.append(f"G-{i}")
        put_local(lake, object_key(i, writer=writer), [event(delivery_id=ids[-1], robot_id="R")])
    return ids


async def drain(loader: Any, cycles: int = 30, *, held_too: bool = False) -> list[Any]:
    """Cycle like run_forever while work is left (and, with `held_too`, while objects are
    held: their delay must be 0); the results."""
    results = []
    for _ in range(cycles):
        try:
            results.append(await loader.cycle())
        except LoadFailed:
            continue  # run_forever backs off and retries
        if not results[-1].more and not (held_too and results[-1].held):
            break
    return results


def delivery_ids(tmp_path: Path) -> set[str]:
    return {r[0] for r in q(tmp_path, "SELECT delivery_id FROM logship.events")}


def quarantined(tmp_path: Path) -> set[str]:
    return {
        r[0]
        for r in q(
            tmp_path, "SELECT object_key FROM logship.load_ledger WHERE status = 'quarantined'"
        )
    }


def fail_stage(
    monkeypatch: pytest.MonkeyPatch, when: Callable[[list[str]], bool], exc: Callable[[], Exception]
) -> list[list[str]]:
    """Make DuckDB's read of the objects raise `exc()` whenever `when(files)`; returns the list
    of file lists every read was asked for."""
    calls: list[list[str]] = []
    real = DuckDBWarehouse._run

    def run(self: DuckDBWarehouse, cur: Any, statement: str, params: Any = None) -> Any:
        if statement.startswith("CREATE TEMP TABLE") and params:
            files = list(params[0])
            calls.append(files)
            if when(files):
                raise exc()
        return real(self, cur, statement, params)

    monkeypatch.setattr(DuckDBWarehouse, "_run", run)
    return calls


def emfile_in_duckdb() -> Exception:
    # The very message that once made a good object look like bad input (".json" in it).
    return duckdb.IOException(
        'IO Error: Cannot open file "/lake/events/dt=2026-01-01/w0-1.json.gz": Too many open files'
    )


# ----------------------------------------------------------------------------- poison


async def test_every_kind_of_poison_is_quarantined_alone_and_the_rest_loads(tmp_path: Path) -> None:
    """Oldest first, poison interleaved with good objects: every poison object ends in
    quarantine/ with a reason, every good and tolerated event loads, in few cycles."""
    lake = tmp_path / "lake"
    n = 0
    poison_keys: dict[str, str] = {}
    want = set()
    for name, make in POISONS.items():
        poison_keys[object_key(n, writer=f"p-{name}")] = name
        put_local(lake, object_key(n, writer=f"p-{name}"), make())
        want |= set(goods(lake, n + 1, 1))
        n += 2
    tolerated_events = 0
    for name, make in TOLERATED.items():
        data, events = make()
        put_local(lake, object_key(n, writer=f"t-{name}"), data)
        tolerated_events += events
        n += 1
    ld = await make_loader(loader_settings(tmp_path, load_max_objects=10))
    results = await drain(ld)
    assert not results[-1].more and results[-1].held == 0
    assert quarantined(tmp_path) == set(poison_keys)
    loaded = delivery_ids(tmp_path)
    assert want <= loaded
    assert not any(d.startswith("P-") for d in loaded), "an event of a poison object loaded"
    assert sum(d.startswith("T-") for d in loaded) == tolerated_events
    for key in poison_keys:
        assert not (lake / key).exists() and (lake / "quarantine" / key).exists()
        note = orjson.loads((lake / "quarantine" / f"{key}.reason.json").read_bytes())
        assert note["key"] == key and note["reason"]
    total = len(POISONS) * 2 + len(TOLERATED)
    assert q(tmp_path, "SELECT COUNT(*) FROM logship.load_ledger") == [(total,)]


@pytest.mark.parametrize("name", ["null-event-id", "occurred-at-year-99999", "received-at-year-99999",
                                  "missing-received-at", "occurred-at-year-0"])  # fmt: skip
async def test_a_lone_poison_object_is_quarantined_not_retried_forever(
    tmp_path: Path, name: str
) -> None:
    """The object alone in the lake (no good object to compare with): a data error by type
    is enough — it is quarantined in the first cycle, and the next object loads."""
    lake = tmp_path / "lake"
    key = object_key(1, writer="p-alone")
    put_local(lake, key, POISONS[name]())
    ld = await make_loader(loader_settings(tmp_path))
    result = await ld.cycle()
    assert (result.quarantined, result.held, result.more) == (1, 0, False)
    assert quarantined(tmp_path) == {key}
    goods(lake, 2, 1)
    assert (await ld.cycle()).loaded_events == 1


async def test_named_broken_gzip_costs_no_bisection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A truncated gzip among 20 objects is named by the file check: one failed read, then
    the rest in one more — no halving."""
    lake = tmp_path / "lake"
    goods(lake, 0, 19)
    put_local(lake, object_key(50, writer="p-trunc"), POISONS["truncated-gzip"]())
    calls = fail_stage(monkeypatch, lambda files: False, emfile_in_duckdb)
    ld = await make_loader(loader_settings(tmp_path))
    result = await ld.cycle()
    assert (result.loaded_objects, result.quarantined) == (19, 1)
    assert len(calls) == 2


# ----------------------------------------------------------------- transient: never quarantined


async def test_emfile_in_duckdb_on_good_objects_quarantines_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB failing to open a good file (EMFILE, the file's name in the message) a few
    times: the files read fine, so nothing is quarantined; the batch loads (an object that
    failed alone twice is held a moment, then loads)."""
    monkeypatch.setattr(loader.cycle, "HOLD_BASE_S", 0.0)
    lake = tmp_path / "lake"
    want = set(goods(lake, 0, 12))
    failures = iter(range(5))
    fail_stage(monkeypatch, lambda files: next(failures, None) is not None, emfile_in_duckdb)
    before = metrics.quarantined_objects_total._value.get()
    ld = await make_loader(loader_settings(tmp_path))
    await drain(ld, held_too=True)
    assert delivery_ids(tmp_path) == want
    assert quarantined(tmp_path) == set()
    assert metrics.quarantined_objects_total._value.get() == before


async def test_emfile_on_every_read_fails_the_cycle_and_holds_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every read failing is the environment's: the cycle fails (the run loop backs off),
    nothing is quarantined or held; once it passes, everything loads."""
    lake = tmp_path / "lake"
    want = set(goods(lake, 0, 8))
    broken = {"on": True}
    fail_stage(monkeypatch, lambda files: broken["on"], emfile_in_duckdb)
    ld = await make_loader(loader_settings(tmp_path))
    with pytest.raises(Exception) as ei:
        await ld.cycle()
    assert not classify(ei.value).reason.startswith("load")
    assert ld._held == {} and quarantined(tmp_path) == set()
    broken["on"] = False
    await drain(ld)
    assert delivery_ids(tmp_path) == want


async def test_os_error_while_checking_the_files_is_transient(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB's IOException, then EMFILE when the loader opens the files itself: transient by
    errno, the cycle is retried; nothing quarantined."""
    lake = tmp_path / "lake"
    want = set(goods(lake, 0, 4))
    broken = {"on": True}
    fail_stage(monkeypatch, lambda files: broken["on"], emfile_in_duckdb)
    import loader.warehouse.duckdb as wh

    real_open = wh.os.open

    def open_(path: Any, flags: int, *a: Any) -> int:
        if broken["on"] and str(path).endswith(".json.gz"):
            raise OSError(errno.EMFILE, "Too many open files", str(path))
        return real_open(path, flags, *a)

    monkeypatch.setattr(wh.os, "open", open_)
    ld = await make_loader(loader_settings(tmp_path))
    with pytest.raises(Exception) as ei:
        await ld.cycle()
    assert verdict(ei.value).transient and not verdict(ei.value).isolate
    assert quarantined(tmp_path) == set()
    broken["on"] = False
    await drain(ld)
    assert delivery_ids(tmp_path) == want


async def test_ledger_conflict_is_transient_and_isolates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ConstraintException on the ledger (a racing loader's row) is not the data's: the
    same exception type as a null event_id, told apart by the statement that raised it."""
    lake = tmp_path / "lake"
    goods(lake, 0, 3)
    real = DuckDBWarehouse._run
    raised = []

    def run(self: DuckDBWarehouse, cur: Any, statement: str, params: Any = None) -> Any:
        if statement.startswith('INSERT INTO "logship"."load_ledger"') and not raised:
            raised.append(statement)
            raise duckdb.ConstraintException("Constraint Error: duplicate key")
        return real(self, cur, statement, params)

    monkeypatch.setattr(DuckDBWarehouse, "_run", run)
    ld = await make_loader(loader_settings(tmp_path))
    with pytest.raises(Exception) as ei:
        await ld.cycle()
    assert classify(ei.value).transient
    assert (await ld.cycle()).loaded_objects == 3 and quarantined(tmp_path) == set()


async def test_configuration_error_isolates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error no object's contents can cause (the schema gone) is not bisected."""
    lake = tmp_path / "lake"
    goods(lake, 0, 8)
    calls = fail_stage(
        monkeypatch,
        lambda files: True,
        lambda: duckdb.CatalogException("Table with name events does not exist!"),
    )
    ld = await make_loader(loader_settings(tmp_path))
    with pytest.raises(LoadFailed):
        await ld.cycle()
    assert len(calls) == 1 and ld._held == {} and quarantined(tmp_path) == set()


# ------------------------------------------------------------------------ held, not quarantined


async def test_unclassified_failure_of_one_object_holds_it_and_the_rest_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One object failing alone with an error that is not a data error (an internal error of
    DuckDB, say) is held: not quarantined on a guess, not blocking the objects behind it,
    retried alone later, and the lag keeps showing it until it loads."""
    monkeypatch.setattr(loader.cycle, "HOLD_BASE_S", 0.0)
    lake = tmp_path / "lake"
    victim = object_key(0, writer="a-victim")  # sorts first: the oldest object
    put_local(lake, victim, [event(delivery_id="G-victim", robot_id="R")])
    want = set(goods(lake, 1, 9))
    broken = {"on": True}
    fail_stage(
        monkeypatch,
        lambda files: broken["on"] and any(f.endswith(victim.rsplit("/", 1)[1]) for f in files),
        lambda: duckdb.InternalException("INTERNAL Error: something odd"),
    )
    ld = await make_loader(loader_settings(tmp_path))
    first = await ld.cycle()
    assert (first.loaded_objects, first.quarantined, first.held) == (9, 0, 1)
    assert delivery_ids(tmp_path) == want
    assert metrics.held_objects._value.get() == 1
    assert metrics.pending_objects._value.get() == 1 and metrics.lag_seconds._value.get() >= 0
    assert not first.more  # no busy loop on a held object
    again = await ld.cycle()  # retried alone (delay 0 here): still failing, still held
    assert (again.loaded_objects, again.held, ld._held[victim].failures) == (0, 1, 2)
    broken["on"] = False
    assert (await ld.cycle()).loaded_objects == 1
    assert delivery_ids(tmp_path) == want | {"G-victim"}
    assert ld._held == {} and metrics.held_objects._value.get() == 0
    assert quarantined(tmp_path) == set()


async def test_unclassified_failure_of_everything_fails_the_cycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same error on every object proves nothing about any of them (an IAM role that
    cannot read the lake, a warehouse failing every COPY): after the batch, one object alone
    fails alike, and the cycle fails — 2 reads, not a bisection of the batch — holding
    nothing (holding would only delay recovery)."""
    lake = tmp_path / "lake"
    goods(lake, 0, 50)
    calls = fail_stage(monkeypatch, lambda files: True, lambda: duckdb.InternalException("X"))
    ld = await make_loader(loader_settings(tmp_path))
    with pytest.raises(LoadFailed):
        await ld.cycle()
    assert len(calls) == 2 and len(calls[1]) == 1
    assert ld._held == {} and quarantined(tmp_path) == set()


async def test_a_control_that_happens_to_be_the_suspect_is_not_picked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loader.cycle, "HOLD_BASE_S", 60.0)
    lake = tmp_path / "lake"
    want = set(goods(lake, 0, 5))
    victim = object_key(99, writer="z-victim")  # sorts last: the newest, the first control
    put_local(lake, victim, [event(delivery_id="G-victim", robot_id="R")])
    fail_stage(
        monkeypatch,
        lambda files: any(f.endswith(victim.rsplit("/", 1)[1]) for f in files),
        lambda: duckdb.InternalException("X"),
    )
    ld = await make_loader(loader_settings(tmp_path))
    with pytest.raises(LoadFailed):
        await ld.cycle()
    result = await ld.cycle()
    assert (result.loaded_objects, result.held, result.more) == (5, 1, False)
    assert delivery_ids(tmp_path) == want


async def test_our_own_surprise_on_odd_data_holds_instead_of_wedging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Python error of the loader itself while reading a batch (as the year-99999
    ValueError once was) is isolated like any other: the other objects load."""
    monkeypatch.setattr(loader.cycle, "HOLD_BASE_S", 60.0)
    lake = tmp_path / "lake"
    victim = object_key(0, writer="a-victim")
    put_local(lake, victim, [event(delivery_id="G-victim", robot_id="R")])
    want = set(goods(lake, 1, 5))
    fail_stage(
        monkeypatch,
        lambda files: any(f.endswith(victim.rsplit("/", 1)[1]) for f in files),
        lambda: ValueError("Invalid isoformat string"),
    )
    ld = await make_loader(loader_settings(tmp_path))
    result = await ld.cycle()
    assert (result.loaded_objects, result.held, result.more) == (5, 1, False)
    assert delivery_ids(tmp_path) == want and quarantined(tmp_path) == set()
    assert (await ld.cycle()).loaded_objects == 0  # held: not retried before its delay


# ------------------------------------------------------------------------ streaming quarantine


class NoWholeReads(LocalLake):
    """A local lake that refuses to read an object whole."""

    async def get(self, key: str) -> bytes:
        raise AssertionError(f"read whole into memory: {key}")


async def test_quarantine_streams_never_reading_the_object_whole(tmp_path: Path) -> None:
    lake_dir = tmp_path / "lake"
    goods(lake_dir, 0, 3)
    key = object_key(9, writer="p-x")
    put_local(lake_dir, key, POISONS["non-json-line"]())
    data = (lake_dir / key).read_bytes()
    lake = NoWholeReads(lake_dir)
    await lake.start()
    ld = build_loader(loader_settings(tmp_path), lake)
    result = await ld.cycle()
    assert (result.loaded_objects, result.quarantined) == (3, 1)
    assert (lake_dir / "quarantine" / key).read_bytes() == data


class CountingS3(S3Lake):
    gets = 0
    copies: list[tuple[str, str]] = []
    fail_copies = 0

    async def get(self, key: str) -> bytes:
        if not key.startswith("manifests/"):
            type(self).gets += 1
        return await super().get(key)

    async def copy_new(self, src: str, dst: str) -> bool:
        if type(self).fail_copies:
            type(self).fail_copies -= 1
            from botocore.exceptions import ClientError

            raise ClientError(
                {"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}},
                "CopyObject",
            )
        type(self).copies.append((src, dst))
        return await super().copy_new(src, dst)


async def test_s3_lake_downloads_to_files_and_quarantines_server_side(
    tmp_path: Path, s3_env: dict[str, str], moto_endpoint: str
) -> None:
    """DuckDB over an S3 lake: objects stream to temporary files (`Lake.download`), the poison
    is moved with a server-side copy (`Lake.copy_new`) — no object is ever `get` whole. A
    quarantine that fails (no permission on quarantine/) holds the object, the rest loads,
    and the next attempt quarantines it."""
    bucket = s3_env["BUCKET"]
    s3 = s3_client(moto_endpoint)
    rows = [event(delivery_id=f"G-{i}", robot_id="R") for i in range(4)]
    for i, row in enumerate(rows):
        s3.put_object(Bucket=bucket, Key=object_key(i), Body=gz_lines([row]))
    poison = object_key(2, writer="w0-abcd-p")
    body = POISONS["null-event-id"]()
    s3.put_object(Bucket=bucket, Key=poison, Body=body)
    CountingS3.gets, CountingS3.copies, CountingS3.fail_copies = 0, [], 1
    lake = CountingS3(f"s3://{bucket}")
    await lake.start()
    try:
        import loader.cycle as cycle

        ld = build_loader(loader_settings(tmp_path, lake_url=f"s3://{bucket}"), lake)
        first = await ld.cycle()
        assert (first.loaded_objects, first.quarantined, first.held) == (4, 0, 1)
        ld._held[poison].until_s = 0  # its delay is over
        second = await ld.cycle()
        assert (second.quarantined, second.held) == (1, 0)
        assert CountingS3.gets == 0
        assert CountingS3.copies == [(poison, f"quarantine/{poison}")]
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
        assert poison not in keys and f"quarantine/{poison}.reason.json" in keys
        moved = s3.get_object(Bucket=bucket, Key=f"quarantine/{poison}")["Body"].read()
        assert moved == body
        assert delivery_ids(tmp_path) == {r["delivery_id"] for r in rows}
        assert not list(Path(cycle.tempfile.gettempdir()).glob("logship-load-*"))
    finally:
        await lake.close()


async def test_in_memory_duckdb_survives_between_cycles(tmp_path: Path) -> None:
    """`duckdb://` with no path is an in-memory database: releasing it after a cycle (as a
    file is) would drop every table."""
    goods(tmp_path / "lake", 0, 2)
    ld = await make_loader(loader_settings(tmp_path, warehouse_url="duckdb://"))
    assert (await ld.cycle()).loaded_objects == 2
    assert (await ld.cycle()).loaded_objects == 0  # the ledger is still there
    assert ld.warehouse.query("SELECT COUNT(*) FROM logship.events") == [(2,)]


async def test_held_objects_never_starve_the_queue_behind_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However many objects are held and due for a retry, a retry never takes two cycles in a
    row while other objects wait: new objects load on the next cycle (a review found the queue
    stalled forever once enough held objects were always due)."""
    monkeypatch.setattr(loader.cycle, "HOLD_BASE_S", 0.0)  # every held object is always due
    lake = tmp_path / "lake"
    victims = [object_key(i, writer="a-victim") for i in range(3)]  # sort first: the oldest
    for i, key in enumerate(victims):
        put_local(lake, key, [event(delivery_id=f"V-{i}", robot_id="R")])
    names = tuple(v.rsplit("/", 1)[1] for v in victims)
    fail_stage(
        monkeypatch,
        lambda files: any(f.endswith(names) for f in files),
        lambda: duckdb.InternalException("INTERNAL Error: something odd"),
    )
    goods(lake, 1, 3)  # something loads beside them, so the victims are held, not the cycle
    ld = await make_loader(loader_settings(tmp_path))
    await drain(ld)
    assert set(ld._held) == set(victims)
    for round_ in range(3):  # new objects keep arriving behind the held ones
        want = set(goods(lake, 100 + 10 * round_, 2, writer=f"z{round_}-good"))
        results = [await ld.cycle() for _ in range(2)]
        assert want <= delivery_ids(tmp_path), (round_, results)
    assert set(ld._held) == set(victims) and quarantined(tmp_path) == set()


async def test_an_earlier_quarantine_copy_is_kept_beside_the_new_one(tmp_path: Path) -> None:
    """An object re-queued by copying (not moving) it back, poison again: the copy already in
    quarantine/ is not overwritten and the new bytes are not lost either — both are kept, and
    the object still leaves events/ with its ledger row."""
    lake = tmp_path / "lake"
    key = object_key(1, writer="p-again")
    put_local(lake, key, POISONS["null-event-id"]())
    poison = (lake / key).read_bytes()
    earlier = lake / "quarantine" / key
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"the copy of an earlier quarantine")
    ld = await make_loader(loader_settings(tmp_path))
    result = await ld.cycle()
    assert (result.quarantined, result.held) == (1, 0)
    assert quarantined(tmp_path) == {key}
    assert earlier.read_bytes() == b"the copy of an earlier quarantine"
    again = [p for p in earlier.parent.iterdir() if p.name.startswith(earlier.name + ".2")]
    assert len(again) == 1 and again[0].read_bytes() == poison
    assert not (lake / key).exists()
