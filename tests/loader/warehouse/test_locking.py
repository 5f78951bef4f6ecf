"""Writers first on a DuckDB file, with real processes and real locks: a waiting writer lets the
readers inside finish and keeps new ones out; the writers of one process share their hold; a
writer that waits too long gives up with a transient error and lets go of everything."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from loader.errors import classify
from loader.warehouse import DuckDBWarehouse
from loader.warehouse.locking import ReadHold, WriteHold, lock_paths

#: A reader in its own process: gets in (or says "busy"), opens the file read-only, and
#: waits for a line on stdin before leaving.
READER = """
import sys, duckdb
from loader.warehouse.locking import ReadHold
hold = ReadHold.enter(sys.argv[1])
if hold is None:
    print("busy", flush=True)
    sys.exit(0)
con = duckdb.connect(sys.argv[1], read_only=True)
print("in", con.execute("SELECT COUNT(*) FROM t").fetchone()[0], flush=True)
sys.stdin.readline()
con.close()
hold.release()
print("out", flush=True)
"""
ROOT = Path(__file__).resolve().parents[3]


def reader(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", READER, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)  # fmt: skip


def warehouse(path: Path) -> DuckDBWarehouse:
    return DuckDBWarehouse(str(path), schema="logship", entities=("delivery_id",),
                           dedupe_window_s=0, views=None)  # fmt: skip


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "wh.duckdb"
    wh = warehouse(path)
    wh.connect()
    wh.conn.execute("CREATE TABLE t AS SELECT 7 AS x")
    wh.close()
    return path


async def _until_the_writer_holds_intent(path: Path, writer: asyncio.Task[None]) -> None:
    """Wait until a reader is turned away (the writer took `intent`); a guard, not a timing."""
    deadline = time.monotonic() + 60
    while (probe := ReadHold.enter(str(path))) is not None:
        probe.release()
        assert not writer.done() and time.monotonic() < deadline
        await asyncio.sleep(0.01)


async def test_a_waiting_writer_goes_before_new_readers(db: Path) -> None:
    first = reader(db)
    try:
        assert first.stdout is not None and first.stdin is not None
        assert first.stdout.readline() == "in 1\n"
        wh = warehouse(db)
        writing = asyncio.create_task(asyncio.to_thread(wh.connect))
        await _until_the_writer_holds_intent(db, writing)
        assert not writing.done()  # it waits for the reader inside...
        late = reader(db)  # ...and a reader coming now is turned away
        assert late.communicate(timeout=60)[0] == "busy\n"
        first.stdin.write("go\n")
        first.stdin.flush()
        assert first.stdout.readline() == "out\n"
        await writing  # the reader left: the writer has the file
        assert wh.query("SELECT x FROM t") == [(7,)]
        assert ReadHold.enter(str(db)) is None  # still writing
        wh.close()
        after = ReadHold.enter(str(db))
        assert after is not None
        after.release()
    finally:
        first.kill()
        first.wait(timeout=30)


def test_the_writers_of_one_process_share_their_hold(db: Path) -> None:
    a, b = warehouse(db), warehouse(db)
    a.connect()
    b.connect()  # does not wait for `a`: DuckDB lets one process open a file twice
    assert a.query("SELECT x FROM t") == b.query("SELECT x FROM t") == [(7,)]
    a.close()
    assert ReadHold.enter(str(db)) is None  # `b` still has it open
    b.close()
    hold = ReadHold.enter(str(db))
    assert hold is not None
    hold.release()


def test_a_writer_that_waits_too_long_gives_up_and_lets_go(db: Path) -> None:
    inside = ReadHold.enter(str(db))
    assert inside is not None
    try:
        with pytest.raises(TimeoutError) as caught:
            WriteHold(str(db), wait_s=0.2)
        assert classify(caught.value).transient  # the loader retries the cycle
        other = ReadHold.enter(str(db))  # it let go of `intent`: readers get in again
        assert other is not None
        other.release()
    finally:
        inside.release()
    WriteHold(str(db), wait_s=0.2).release()


def test_the_lock_files_sit_beside_the_database(db: Path) -> None:
    assert [Path(p).name for p in lock_paths(str(db))] == ["wh.duckdb.intent.lock",
                                                           "wh.duckdb.main.lock"]  # fmt: skip
    assert all(Path(p).exists() for p in lock_paths(str(db)))
    duckdb.connect(str(db), read_only=True).close()  # the database itself is untouched
