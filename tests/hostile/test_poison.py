"""Poison in the lake, fd exhaustion, a huge bad object — against real `logship load` processes.

* Every kind of poison object (null event_id, missing or absurd times, year 99999, non-JSON
  lines, broken or absent gzip, wrong types, …), oldest first among good objects: exactly the
  poison is quarantined, with reasons; every good event loads; the loader keeps running and
  catches up with what arrives later. On DuckDB, and on the Redshift emulator.
* EMFILE inflicted on the loader (prlimit, as root) while DuckDB reads good objects: nothing
  is quarantined, everything loads once the limit is back.
* A 200 MiB poison object in an S3 lake: quarantined without the loader's peak RSS coming
  anywhere near the object's size (streamed download, server-side copy).

Black-box: the tests only write lake objects, signal the processes and read back the lake,
the warehouse and the processes' stderr and /proc.
"""

from __future__ import annotations

import contextlib
import os
import random
import resource
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import orjson

from tests.conftest import s3_client
from tests.hostile.procs import loader, wait_until
from tests.loader.helpers import event, gz_lines, object_key
from tests.loader.poison import POISONS, TOLERATED, TOLERATED_BY_BOTH

ROLE = "arn:aws:iam::123456789012:role/logship-loader"
FAST = {"LOGSHIP_LOAD_INTERVAL_S": "0.3", "LOGSHIP_RETRY_BACKOFF_MAX_S": "0.5"}


class Lake:
    """Objects written oldest first (one writer, increasing sequence numbers: key order is age
    order); remembers which are good, poison or tolerated."""

    def __init__(self, put: Any):
        self._put = put
        self.n = 0
        self.poison: dict[str, str] = {}  # key -> kind
        self.good_ids: set[str] = set()
        self.tolerated_events = 0
        self.keys: list[str] = []

    def add(self, data: bytes) -> str:
        key = object_key(self.n)
        self.n += 1
        self._put(key, data)
        self.keys.append(key)
        return key

    def good(self, count: int = 1, events: int = 1) -> None:
        for _ in range(count):
            delivery = f"G-{self.n}"
            self.good_ids.add(delivery)
            self.add(gz_lines([event(delivery_id=delivery, robot_id="R") for _ in range(events)]))

    def add_poison(self, kind: str) -> None:
        self.poison[self.add(POISONS[kind]())] = kind

    def add_tolerated(self, kind: str) -> None:
        data, events = TOLERATED[kind]()
        self.add(data)
        self.tolerated_events += events


def local_put(root: Path):  # type: ignore[no-untyped-def]
    def put(key: str, data: bytes) -> None:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(".tmp-" + path.name)
        tmp.write_bytes(data)
        tmp.rename(path)  # as the lake writes: never half an object

    return put


def duck(tmp_path: Path, sql: str) -> list[tuple[Any, ...]] | None:
    """Read the loader's DuckDB file, or None while the loader holds it."""
    try:
        con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    except duckdb.Error:
        return None
    try:
        return con.execute(sql).fetchall()
    except duckdb.CatalogException:
        return None  # the schema is not there yet
    finally:
        con.close()


def ledger_count(tmp_path: Path) -> int:
    rows = duck(tmp_path, "SELECT COUNT(*) FROM logship.load_ledger")
    return rows[0][0] if rows else -1


def assert_outcome(lake: Lake, ledger: dict[str, tuple[str, str | None]], ids: list[str]) -> None:
    """Exactly the poison quarantined (with reasons), everything else loaded; the events."""
    assert set(ledger) == set(lake.keys)
    quarantined = {k for k, (status, _) in ledger.items() if status == "quarantined"}
    assert quarantined == set(lake.poison), {
        lake.poison.get(k, k) for k in quarantined ^ set(lake.poison)
    }
    assert all(reason for k, (status, reason) in ledger.items() if status == "quarantined")
    assert lake.good_ids <= set(ids)
    assert not [d for d in ids if d.startswith("P-")], "an event of a poison object loaded"
    assert sum(d.startswith("T-") for d in ids) == lake.tolerated_events


# ------------------------------------------------------------------------------- DuckDB


def test_every_kind_of_poison_is_quarantined_and_the_loader_catches_up(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    lake = Lake(local_put(root))
    kinds = list(POISONS)
    with loader(tmp_path, LOGSHIP_LOAD_MAX_OBJECTS="12", **FAST) as proc:
        for kind in kinds[: len(kinds) // 2]:  # half before the loader has seen anything
            lake.add_poison(kind)
            lake.good()
        wait_until(lambda: ledger_count(tmp_path) == len(lake.keys), 30, 0.2, "the first half")
        for kind in kinds[len(kinds) // 2 :]:
            lake.add_poison(kind)
            lake.good()
        for kind in TOLERATED:
            lake.add_tolerated(kind)
        lake.good(5)
        wait_until(
            lambda: ledger_count(tmp_path) == len(lake.keys), 30, 0.2, "every object decided"
        )
        assert proc.alive()
        assert proc.stop() == 0
    rows = duck(tmp_path, "SELECT object_key, status, reason FROM logship.load_ledger")
    assert rows is not None
    ids = [r[0] for r in duck(tmp_path, "SELECT delivery_id FROM logship.events") or []]
    assert_outcome(lake, {k: (s, r) for k, s, r in rows}, ids)
    for key in lake.poison:
        assert not (root / key).exists()
        note = orjson.loads((root / "quarantine" / f"{key}.reason.json").read_bytes())
        assert note["key"] == key and note["reason"]
    assert "Traceback" not in proc.stderr()


def test_fd_exhaustion_while_duckdb_reads_good_objects_quarantines_nothing(tmp_path: Path) -> None:
    """Whenever the loader has a lake object open (DuckDB is reading: seen in /proc/PID/fd),
    its fd limit drops to that fd's number — no fd left for the next file, or one (enough for
    a single open, not for DuckDB's parallel read) — for a few ms, for ~4 s while it loads
    60 good objects of 2,000 events; then it is restored. Nothing may be quarantined, and
    everything loads."""
    root = tmp_path / "lake"
    lake = Lake(local_put(root))
    with loader(tmp_path, LOGSHIP_LOAD_MAX_OBJECTS="10", **FAST) as proc:
        pid = proc.popen.pid
        original = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        stop = threading.Event()
        clamps = {"n": 0}

        def reading_lake() -> int | None:
            """The lowest fd the loader has on a lake object, if any (fds are handed out
            lowest first: a limit at that number leaves no fd for the next file)."""
            lake_fds = []
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(str(root / "events")):
                        lake_fds.append(int(fd))
            return min(lake_fds) if lake_fds else None

        def clamp() -> None:
            rnd = random.Random(7)
            while not stop.is_set():
                with contextlib.suppress(OSError):
                    lowest = reading_lake()
                    if lowest is None:
                        time.sleep(0.0005)
                        continue
                    limit = lowest + rnd.choice([0, 0, 1])
                    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, original[1]))
                    clamps["n"] += 1
                    time.sleep(rnd.uniform(0.002, 0.02))
                    resource.prlimit(pid, resource.RLIMIT_NOFILE, original)
                    time.sleep(rnd.uniform(0.0, 0.01))

        clamper = threading.Thread(target=clamp, daemon=True)
        try:
            clamper.start()
            for _ in range(3):
                lake.good(20, events=2000)
                time.sleep(1.2)
        finally:
            stop.set()
            clamper.join(5)
            resource.prlimit(pid, resource.RLIMIT_NOFILE, original)
        assert clamps["n"] > 5, "the loader was never caught reading"
        wait_until(lambda: ledger_count(tmp_path) == len(lake.keys), 30, 0.2, "all loaded")
        assert proc.alive()
        assert proc.stop() == 0
    assert "Too many open files" in proc.stderr(), "the fault never reached the loader"
    assert duck(tmp_path, "SELECT status, COUNT(*) FROM logship.load_ledger GROUP BY 1") == [
        ("loaded", len(lake.keys))
    ]
    ids = {r[0] for r in duck(tmp_path, "SELECT delivery_id FROM logship.events") or []}
    assert ids == lake.good_ids
    assert not (root / "quarantine").exists()


# ------------------------------------------------------------------------------- S3 lakes

#: The big poison, and how much it may raise the loader's peak RSS.
BIG_OBJECT_BYTES = 200 * 1024 * 1024
RSS_GROWTH_BOUND_BYTES = 48 * 1024 * 1024


def vm_hwm_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_big_poison_in_an_s3_lake_is_quarantined_without_reading_it_into_memory(
    tmp_path: Path, s3_env: dict[str, str], moto_endpoint: str
) -> None:
    """200 MiB that is not gzip, among good objects, in a moto S3 lake loaded into DuckDB:
    streamed to a file for DuckDB (checked there by its header), moved to quarantine/ with a
    server-side copy. The loader's peak RSS (VmHWM, after it has loaded small objects) grows
    by a small fraction of the object's size."""
    bucket = s3_env["BUCKET"]
    s3 = s3_client(moto_endpoint)
    lake = Lake(lambda key, data: s3.put_object(Bucket=bucket, Key=key, Body=data))
    lake.good(2)
    with loader(tmp_path, LOGSHIP_LAKE_URL=f"s3://{bucket}", **FAST) as proc:
        wait_until(lambda: ledger_count(tmp_path) == len(lake.keys), 30, 0.2, "the small ones")
        before = vm_hwm_bytes(proc.popen.pid)
        big = lake.add(b"X" + os.urandom(BIG_OBJECT_BYTES - 1))
        lake.poison[big] = "not gzip, 200 MiB"
        lake.good(2)
        wait_until(lambda: ledger_count(tmp_path) == len(lake.keys), 40, 0.2, "all decided")
        after = vm_hwm_bytes(proc.popen.pid)
        assert proc.stop() == 0
    print(f"loader peak RSS {before / 2**20:.0f} MiB, {after / 2**20:.0f} MiB after the "
          f"{BIG_OBJECT_BYTES >> 20} MiB poison")  # fmt: skip
    assert after - before < RSS_GROWTH_BOUND_BYTES, f"{(after - before) / 2**20:.0f} MiB more"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert big not in keys and {f"quarantine/{big}", f"quarantine/{big}.reason.json"} <= keys
    head = s3.head_object(Bucket=bucket, Key=f"quarantine/{big}")
    assert head["ContentLength"] == BIG_OBJECT_BYTES
    rows = duck(tmp_path, "SELECT object_key, status, reason FROM logship.load_ledger")
    ids = [r[0] for r in duck(tmp_path, "SELECT delivery_id FROM logship.events") or []]
    assert rows is not None
    assert_outcome(lake, {k: (s, r) for k, s, r in rows}, ids)


#: Poison both warehouses refuse (the Redshift emulator reads JSON as Redshift does).
REDSHIFT_POISONS = ["null-event-id", "occurred-at-year-99999", "received-at-year-99999",
                    "missing-received-at", "non-json-line", "truncated-gzip", "not-gzip",
                    "event-version-not-a-number"]  # fmt: skip


def test_poison_on_redshift_is_quarantined_and_the_rest_loads(
    tmp_path: Path,
    s3_env: dict[str, str],
    moto_endpoint: str,
    redshift_db: dict[str, Any],
    redshift_emulator: Any,
) -> None:
    import redshift_connector

    bucket = s3_env["BUCKET"]
    s3 = s3_client(moto_endpoint)
    lake = Lake(lambda key, data: s3.put_object(Bucket=bucket, Key=key, Body=data))
    for kind in REDSHIFT_POISONS:
        lake.add_poison(kind)
        lake.good()
    for kind in TOLERATED_BY_BOTH:
        lake.add_tolerated(kind)
    db = redshift_db
    url = (
        f"redshift://{db['user']}:{db['password']}@{db['host']}:{db['port']}/{db['database']}"
        "?ssl=false&timeout=30"
    )

    def query(sql: str) -> list[tuple[Any, ...]] | None:
        try:
            with redshift_connector.connect(**db) as conn:
                cur = conn.cursor()
                cur.execute(sql)
                return [tuple(r) for r in cur.fetchall()]
        except redshift_connector.Error:
            return None  # the schema is not there yet

    def decided() -> int:
        rows = query("SELECT COUNT(*) FROM logship.load_ledger")
        return rows[0][0] if rows else -1

    env = {"LOGSHIP_LAKE_URL": f"s3://{bucket}", "LOGSHIP_WAREHOUSE_URL": url,
           "LOGSHIP_REDSHIFT_IAM_ROLE": ROLE, "LOGSHIP_LOAD_MAX_OBJECTS": "8"}  # fmt: skip
    with loader(tmp_path, **env, **FAST) as proc:
        wait_until(lambda: decided() == len(lake.keys), 40, 0.3, "every object decided")
        lake.good(3)  # and it keeps going
        wait_until(lambda: decided() == len(lake.keys), 20, 0.3, "the late objects")
        assert proc.stop() == 0
    rows = query("SELECT object_key, status, reason FROM logship.load_ledger")
    ids = [r[0] for r in query("SELECT delivery_id FROM logship.events") or []]
    assert rows is not None
    assert_outcome(lake, {k: (s, r) for k, s, r in rows}, ids)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert not set(lake.poison) & keys
    assert {f"quarantine/{k}.reason.json" for k in lake.poison} <= keys
