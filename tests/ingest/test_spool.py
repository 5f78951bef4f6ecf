"""The spool state machine: group commit, rotation, recovery after a torn write, the cap, and a
real full disk (a tiny tmpfs) — a failed write leaves nothing behind and acknowledges nothing."""

from __future__ import annotations

import asyncio
import errno
import gzip
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ingest.lake.local as lake_module
import ingest.spool as spool_module
from ingest import metrics
from ingest.lake import LocalLake
from ingest.spool import Spool, SpoolWriteError
from ingest.uploader import Uploader

P = "2026-11-23T08"


class Clock:
    """An injected monotonic clock."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make(root: Path, **kw: Any) -> Spool:
    spool = Spool(
        root,
        max_bytes=int(kw.get("max_bytes", 10**9)),
        object_max_bytes=int(kw.get("object_max_bytes", 10**6)),
        object_max_age_s=kw.get("object_max_age_s", 60),
        workers=kw.get("workers"),
        clock=kw.get("clock", time.monotonic),
    )
    spool.open()
    return spool


def crash(spool: Spool) -> None:
    """What kill -9 leaves: files as they are, and the spool's lock released by the kernel."""
    assert spool._lock_fd is not None
    os.close(spool._lock_fd)
    spool._lock_fd = None


def files(root: Path, suffix: str) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.suffix == suffix)


async def test_group_commit_shares_fsyncs(tmp_path: Path) -> None:
    spool = make(tmp_path)
    await asyncio.gather(*(spool.append([("events", P, b'{"n":%d}\n' % i)]) for i in range(200)))
    # 200 concurrent appends to one segment: far fewer fsyncs than requests.
    assert spool.fsyncs < 50
    await spool.close()
    (seg,) = files(tmp_path, ".ready")
    assert sorted(seg.read_bytes().splitlines()) == sorted(b'{"n":%d}' % i for i in range(200))


async def test_segments_split_by_stream_partition_and_size(tmp_path: Path) -> None:
    spool = make(tmp_path, object_max_bytes=100)
    await spool.append([("events", P, b"a" * 60 + b"\n"), ("rejected", P, b"r\n")])
    await spool.append([("events", P, b"b" * 60 + b"\n")])  # exceeds 100: new segment
    await spool.append([("events", "2026-11-23T09", b"c\n")])
    await spool.close()
    names = [p.name.split("~", 1)[1] for p in files(tmp_path, ".ready")]
    sid = spool.spool_id  # the writing spool's id is part of every name
    assert names == [
        f"events~2026-11-23T08~{sid}.ready",
        f"rejected~2026-11-23T08~{sid}.ready",
        f"events~2026-11-23T08~{sid}.ready",
        f"events~2026-11-23T09~{sid}.ready",
    ]
    assert spool.size_bytes == 61 + 2 + 61 + 2


async def test_rotation_by_age_on_the_monotonic_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Age is measured on the monotonic clock: a wall clock stepped back an hour changes
    nothing (the wall-clock version stopped rotating until the clock caught up)."""
    clock = Clock()
    spool = make(tmp_path, object_max_age_s=30, clock=clock)
    await spool.append([("events", P, b"x\n")])
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 3600)  # the wall clock steps back
    clock.t += 10
    await spool.rotate()
    assert spool.ready() == [] and spool.oldest_age_s() == 10
    clock.t += 21
    await spool.rotate()
    assert len(spool.ready()) == 1
    await spool.close()


async def test_recovery_cuts_torn_tail_and_never_reuses_a_sequence(tmp_path: Path) -> None:
    spool = make(tmp_path)
    await spool.append([("events", P, b'{"acked":1}\n')])
    seq_before = spool.ready() or list(spool._open.values())
    # Simulate kill -9 during an unacknowledged write: a partial line after the acked one.
    (seg_path,) = files(tmp_path, ".open")
    with open(seg_path, "ab") as f:
        f.write(b'{"torn":')
    crash(spool)
    spool2 = make(tmp_path)
    (ready,) = spool2.ready()
    assert ready.path.read_bytes() == b'{"acked":1}\n'
    assert ready.seq == seq_before[0].seq
    await spool2.append([("events", P, b"next\n")])
    assert max(s.seq for s in spool2._open.values()) > ready.seq
    assert spool2.spool_id == spool.spool_id
    await spool2.close()


async def test_recovery_drops_empty_open_segment(tmp_path: Path) -> None:
    spool = make(tmp_path)
    await spool.append([("events", P, b"x\n")])
    (seg_path,) = files(tmp_path, ".open")
    seg_path.write_bytes(b"partial-without-newline")
    crash(spool)
    spool2 = make(tmp_path)
    assert spool2.ready() == [] and spool2.size_bytes == 0


async def test_cap(tmp_path: Path) -> None:
    spool = make(tmp_path, max_bytes=100)
    assert spool.has_room(100) and not spool.has_room(101)
    await spool.append([("events", P, b"y" * 79 + b"\n")])
    assert not spool.has_room(21) and spool.has_room(20)
    assert not spool.is_full()
    await spool.append([("events", P, b"z" * 10 + b"\n")])
    assert spool.is_full()  # 91 of 100 bytes: past the 90% readiness watermark
    await spool.close()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB filesystem (tmpfs), so ENOSPC comes from the kernel, not from a mock."""
    mnt = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], check=False)
    if r.returncode != 0:
        pytest.fail("cannot mount a tmpfs (the tests need root to simulate a full disk)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


async def test_full_disk_fails_the_group_and_leaves_no_partial_batch(tiny_disk: Path) -> None:
    spool = make(tiny_disk / "spool")
    await spool.append([("events", P, b'{"ok":1}\n')])
    with pytest.raises(SpoolWriteError, match="No space left"):
        await spool.append([("events", P, b'{"big":"' + b"x" * 200_000 + b'"}\n')])
    # The acknowledged batch is intact, the failed one left nothing behind.
    (seg,) = [s for s in spool._open.values()]
    assert seg.path.read_bytes() == b'{"ok":1}\n'
    assert spool.size_bytes == len(b'{"ok":1}\n')
    # Space comes back: appends work again.
    await spool.append([("events", P, b'{"ok":2}\n')])
    await spool.close()
    (ready,) = spool.ready()
    assert ready.path.read_bytes() == b'{"ok":1}\n{"ok":2}\n'
    assert os.path.exists(ready.path)


async def test_failed_group_is_cut_even_from_a_segment_it_rotated(tiny_disk: Path) -> None:
    """A group that fills a segment (rotation by size) and then fails must not leave its first
    items behind in the rotated segment: they were never acknowledged."""
    spool = make(tiny_disk / "spool", object_max_bytes=100)
    with pytest.raises(SpoolWriteError):
        await spool.append(
            [
                ("events", P, b"A" * 49 + b"\n"),
                ("events", P, b"B" * 59 + b"\n"),
                ("events", P, b"C" * 200_000 + b"\n"),
            ]
        )
    await spool.close()
    content = b"".join(s.path.read_bytes() for s in spool.ready())
    assert content == b""
    assert spool.size_bytes == 0


async def test_uploader_survives_a_failing_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception in a pass (a disk error while rotating) is counted and retried; it does not
    end the uploader task."""
    spool = make(tmp_path / "spool", object_max_age_s=0)
    lake = LocalLake(tmp_path / "lake")
    await lake.start()
    up = Uploader(spool, lake, "w", backoff_max_s=0.05, poll_interval_s=0.01)
    real_rotate = spool.rotate
    calls = {"n": 0}

    async def flaky_rotate(**kw: object) -> None:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise OSError(5, "Input/output error")
        await real_rotate(**kw)  # type: ignore[arg-type]

    monkeypatch.setattr(spool, "rotate", flaky_rotate)
    await spool.append([("events", P, b'{"x":1}\n')])
    task = asyncio.create_task(up.run())
    for _ in range(200):
        if list((tmp_path / "lake").rglob("*.json.gz")):
            break
        await asyncio.sleep(0.02)
    assert not task.done()
    task.cancel()
    assert calls["n"] > 2 and list((tmp_path / "lake").rglob("*.json.gz"))
    await spool.close()


async def test_one_process_per_spool(tmp_path: Path) -> None:
    spool = make(tmp_path)
    with pytest.raises(SpoolWriteError, match="in use by another process"):
        make(tmp_path)
    await spool.close()
    make(tmp_path)  # released on close


async def test_drain_gives_up_on_a_hung_upload_and_keeps_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shutdown flush against an S3 that never answers ends at its budget (the pod's grace
    period is not overrun); the acknowledged data stays in the spool and the next start
    uploads it, once."""
    lake = LocalLake(tmp_path / "lake")
    await lake.start()
    spool = make(tmp_path / "spool")
    await spool.append([("events", P, b'{"x":1}\n')])

    async def hang(key: str, data: bytes) -> bool:
        await asyncio.Event().wait()  # never answers
        return True

    monkeypatch.setattr(lake, "put_new", hang)
    up = Uploader(spool, lake, "w", backoff_max_s=0.05, poll_interval_s=0.01)
    assert await up.drain(0.3) is False
    await spool.close()
    assert not list((tmp_path / "lake").rglob("*.json.gz"))

    monkeypatch.undo()  # S3 is back; the next start flushes what was left
    spool = make(tmp_path / "spool")
    up = Uploader(spool, lake, "w", backoff_max_s=0.05, poll_interval_s=0.01)
    assert await up.drain(30) is True
    await spool.close()
    (obj,) = list((tmp_path / "lake").rglob("*.json.gz"))
    assert gzip.decompress(obj.read_bytes()) == b'{"x":1}\n'


# --------------------------------------------------------------------------- faults heal
#
# Each state transition of the spool, failing at each of its OS steps (OSError injected at the
# os-call level, only for paths under the test's directory), then recovering once the cause is
# gone — with no restart, nothing acknowledged lost, nothing unacknowledged left behind.


class OsFaults:
    """Make chosen OS calls fail with an errno for paths under `root`, a number of times."""

    FD_OPS = {"write", "fsync", "ftruncate"}

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: Path):
        self.root = str(root.resolve())
        self.left: dict[str, tuple[int, int]] = {}  # op -> (errno, failures left)
        self.skip: dict[str, int] = {}
        self.raised: list[str] = []
        for op in ("write", "fsync", "ftruncate", "open", "replace", "unlink", "statvfs"):
            monkeypatch.setattr(os, op, self._wrap(op, getattr(os, op)))
        monkeypatch.setattr(spool_module, "open", self._wrap("builtin_open", open), raising=False)

    def fail(self, op: str, err: int = errno.EIO, times: int = 1) -> None:
        """`op` fails `times` times; "op@k" lets its first k calls through first."""
        op, _, skip = op.partition("@")
        self.skip[op] = int(skip or 0)
        self.left[op] = (err, times)

    def clear(self) -> None:
        self.left.clear()

    def _wrap(self, op: str, original: Any) -> Any:
        def wrapper(target: Any, *args: Any, **kwargs: Any) -> Any:
            err, n = self.left.get(op, (0, 0))
            if n > 0 and self._ours(op, target):
                if self.skip.get(op, 0) > 0:
                    self.skip[op] -= 1
                    return original(target, *args, **kwargs)
                self.left[op] = (err, n - 1)
                self.raised.append(op)
                raise OSError(err, f"{os.strerror(err)} (injected)")
            return original(target, *args, **kwargs)

        return wrapper

    def _ours(self, op: str, target: Any) -> bool:
        if op in self.FD_OPS:
            try:
                target = os.readlink(f"/proc/self/fd/{target}")
            except OSError:
                return False
        return str(Path(os.fspath(target)).absolute()).startswith(self.root)


@pytest.fixture
def faults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OsFaults:
    return OsFaults(monkeypatch, tmp_path)


def content(spool: Spool) -> bytes:
    segs = [*spool.ready(), *spool._open.values(), *spool._closing]
    return b"".join(sorted(s.path.read_bytes() for s in segs))


def io_errors(stage: str, error: str) -> float:
    return metrics.io_errors_total.labels(stage, error)._value.get()


@pytest.mark.parametrize(
    ("op", "err", "stage"),
    [
        ("builtin_open", errno.EMFILE, "spool_state"),  # the state save of a new segment
        ("replace", errno.EIO, "spool_state"),
        ("open", errno.EMFILE, "spool_dir_fsync"),  # fsync_dir opens the directory
        ("open@1", errno.EMFILE, "spool_open"),  # the second os.open: the segment file itself
        ("write", errno.ENOSPC, "spool_write"),
        ("fsync", errno.EIO, "spool_state"),
    ],
)
async def test_a_failed_first_write_is_refused_then_heals(
    tmp_path: Path, faults: OsFaults, op: str, err: int, stage: str
) -> None:
    spool = make(tmp_path / "spool")
    before = io_errors(stage, metrics_name(err))
    faults.fail(op, err)
    with pytest.raises(SpoolWriteError):
        await spool.append([("events", P, b'{"lost":1}\n')])
    assert spool.fault_reason() == f"spool_write_failed: {metrics_name(err)}"
    assert io_errors(stage, metrics_name(err)) == before + 1
    assert spool.size_bytes == 0
    await spool.append([("events", P, b'{"ok":1}\n')])  # the cause is gone: it works again
    assert spool.fault_reason() is None
    await spool.close()
    assert content(spool) == b'{"ok":1}\n' and spool.size_bytes == len(b'{"ok":1}\n')
    seqs = [s.seq for s in spool.ready()]
    assert len(set(seqs)) == len(seqs)


def metrics_name(err: int) -> str:
    return errno.errorcode[err]


async def test_dir_fsync_of_a_new_segment_fails_then_is_retried(
    tmp_path: Path, faults: OsFaults
) -> None:
    """A new segment whose name could not be synced is kept (empty, name not durable) and its
    directory is synced before anything in it is acknowledged."""
    spool = make(tmp_path / "spool")
    await spool.append([("events", P, b"a\n")])  # the segment exists: now the next partition
    real_fsync_dir_calls = []
    orig = spool_module.fsync_dir

    def failing_fsync_dir(path: Path) -> None:
        real_fsync_dir_calls.append(path)
        if len(real_fsync_dir_calls) <= 2:  # the state save's and the new segment's
            raise OSError(errno.EMFILE, "Too many open files (injected)")
        orig(path)

    spool_module.fsync_dir = failing_fsync_dir  # type: ignore[assignment]
    try:
        with pytest.raises(SpoolWriteError):
            await spool.append([("events", "2026-11-23T09", b"b\n")])
        await spool.append([("events", "2026-11-23T09", b"c\n")])
    finally:
        spool_module.fsync_dir = orig  # type: ignore[assignment]
    assert spool.fault_reason() is None
    await spool.close()
    assert content(spool) == b"a\nc\n"


async def test_fsync_failure_cuts_the_group_and_a_failed_cut_is_done_later(
    tmp_path: Path, faults: OsFaults
) -> None:
    """EIO on the group's fsync: 503; the undo's own truncate fails too, so the cut is
    remembered and done before the next write — no unacknowledged line survives."""
    spool = make(tmp_path / "spool")
    await spool.append([("events", P, b'{"acked":1}\n')])
    faults.fail("fsync", errno.EIO)
    faults.fail("ftruncate", errno.EIO)
    with pytest.raises(SpoolWriteError):
        await spool.append([("events", P, b'{"never-acked":1}\n')])
    (seg,) = spool._open.values()
    assert seg.truncate_to_size  # the cut is pending
    await spool.append([("events", P, b'{"acked":2}\n')])
    assert seg.path.read_bytes() == b'{"acked":1}\n{"acked":2}\n'
    await spool.close()


async def test_a_write_fault_heals_by_probe_without_traffic(
    tmp_path: Path, faults: OsFaults
) -> None:
    """/readyz is 503 while writes fail, so no batch may come to show they work again: the
    rotation pass probes, and clears the fault once the cause is gone."""
    spool = make(tmp_path / "spool")
    faults.fail("write", errno.ENOSPC)
    with pytest.raises(SpoolWriteError):
        await spool.append([("events", P, b"x\n")])
    faults.fail("fsync", errno.EIO)  # the cause is still there at the first probe
    with pytest.raises(OSError):
        await spool.rotate()
    assert spool.fault_reason() == "spool_write_failed: EIO"
    await spool.rotate()  # gone now
    assert spool.fault_reason() is None
    await spool.close()


@pytest.mark.parametrize("step", ["replace", "dir_fsync"])
async def test_rotation_failing_at_each_step_is_retried(
    tmp_path: Path, faults: OsFaults, step: str
) -> None:
    """The rename to .ready failing, or done with its directory fsync failing (EMFILE): the
    segment is remembered as it is — never written again, renamed at most once — and the next
    pass finishes the job. Rotations of later segments keep working."""
    clock = Clock()
    spool = make(tmp_path / "spool", object_max_age_s=1, clock=clock)
    await spool.append([("events", P, b"a\n")])
    clock.t += 2
    if step == "replace":
        faults.fail("replace", errno.EIO)
    else:
        faults.fail("open", errno.EMFILE)  # fsync_dir opens the directory
    with pytest.raises(OSError):
        await spool.rotate()
    assert spool.fault_reason() is not None
    assert spool.fault_reason().startswith("spool_rotate_failed: ")  # type: ignore[union-attr]
    if step == "dir_fsync":
        # Renamed: ready for upload at once; only the directory sync is still to do.
        (seg,) = spool.ready()
        assert seg.path.suffix == ".ready" and seg.path.exists() and seg.fd is None
    await spool.append([("events", P, b"b\n")])  # a new segment, not the closing one
    faults.clear()
    await spool.rotate()
    assert spool.fault_reason() is None
    assert [s.path.suffix for s in spool.ready()] == [".ready"]
    clock.t += 2
    await spool.rotate()  # later rotations work
    assert sorted(s.path.read_bytes() for s in spool.ready()) == [b"a\n", b"b\n"]
    assert files(spool.root, ".open") == []
    await spool.close()


async def test_a_failed_unlink_is_retried_without_a_second_upload(
    tmp_path: Path, faults: OsFaults
) -> None:
    lake = LocalLake(tmp_path / "lake")
    await lake.start()
    spool = make(tmp_path / "spool")
    await spool.append([("events", P, b'{"x":1}\n')])
    up = Uploader(spool, lake, "w", backoff_max_s=0.05, poll_interval_s=0.01)
    puts: list[str] = []
    real_put = lake.put_new

    async def counting_put(key: str, data: bytes) -> bool:
        puts.append(key)
        return await real_put(key, data)

    lake.put_new = counting_put  # type: ignore[method-assign]
    faults.root = str(spool.root.resolve())  # not the lake's own temp files
    faults.fail("unlink", errno.EROFS)
    assert await up.pass_once(force_rotate=True) is False
    assert up.stalled_reason() is not None
    assert up.stalled_reason().startswith("spool_remove_failed: EROFS")  # type: ignore[union-attr]
    (seg,) = spool.ready()
    assert seg.uploaded and seg.path.exists()
    assert await up.pass_once() is True
    assert len(puts) == 1 and spool.ready() == [] and not seg.path.exists()
    assert spool.size_bytes == 0 and up.stalled_reason() is None
    await spool.close()


async def test_start_on_a_full_disk_serves_and_saves_the_state_later(
    tmp_path: Path, faults: OsFaults
) -> None:
    """A state save that fails at start (ENOSPC) does not abort start: the segments held are
    registered for upload, and the save is retried by the rotation pass."""
    spool = make(tmp_path / "spool")
    await spool.append([("events", P, b"held\n")])
    await spool.close()
    faults.fail("write", errno.ENOSPC)
    faults.fail("builtin_open", errno.ENOSPC)
    spool = make(tmp_path / "spool")
    assert spool.fault_reason() is not None
    assert spool.fault_reason().startswith("spool_state_failed: ENOSPC")  # type: ignore[union-attr]
    assert [s.path.read_bytes() for s in spool.ready()] == [b"held\n"]
    await spool.rotate()
    assert spool.fault_reason() is None
    await spool.close()


@pytest.mark.parametrize("op", ["builtin_open@1", "replace@1"])  # after the state save
async def test_recovery_failing_at_start_is_retried(
    tmp_path: Path, faults: OsFaults, op: str
) -> None:
    """A crashed spool whose recovery fails (cutting the torn tail, or the rename) still
    starts; the recovery is finished by the next pass, the torn tail is never uploaded."""
    spool = make(tmp_path / "spool")
    await spool.append([("events", P, b'{"acked":1}\n')])
    (seg_path,) = files(spool.root, ".open")
    with open(seg_path, "ab") as f:
        f.write(b'{"torn":')
    crash(spool)
    faults.fail(op, errno.EIO)
    spool = make(tmp_path / "spool")
    assert spool.ready() == [] and spool.fault_reason() is not None
    await spool.rotate()
    (ready,) = spool.ready()
    assert ready.path.read_bytes() == b'{"acked":1}\n'
    assert spool.size_bytes == len(b'{"acked":1}\n')
    assert spool.fault_reason() is None
    await spool.close()


async def test_cap_counts_the_group_being_written(tmp_path: Path) -> None:
    """While a group is on the I/O thread it counts against the cap: senders arriving
    meanwhile are refused instead of overshooting (the spool reached 1.96x its cap)."""
    spool = make(tmp_path / "spool", max_bytes=1000)
    gate = __import__("threading").Event()
    real = spool._write_group

    def slow_write_group(groups: Any) -> None:
        gate.wait(5)
        real(groups)

    spool._write_group = slow_write_group  # type: ignore[method-assign]
    first = asyncio.create_task(spool.append([("events", P, b"x" * 599 + b"\n")]))
    await asyncio.sleep(0.05)  # the group is on the I/O thread now
    assert not spool.has_room(600)
    assert spool.has_room(400)
    gate.set()
    await first
    assert not spool.has_room(600) and spool.size_bytes == 600
    await spool.close()


async def test_cap_holds_under_concurrent_senders(tmp_path: Path) -> None:
    """Many senders checking room and appending as ingest does: never above the cap."""
    spool = make(tmp_path / "spool", max_bytes=50_000)
    peak = 0
    line = b"y" * 999 + b"\n"

    async def sender() -> None:
        nonlocal peak
        for _ in range(40):
            if spool.has_room(len(line)):
                await spool.append([("events", P, line)])
            peak = max(peak, spool.size_bytes)
            await asyncio.sleep(0)

    await asyncio.gather(*(sender() for _ in range(32)))
    assert peak <= 50_000 and spool.size_bytes == 50_000
    await spool.close()


async def test_recovered_segment_age_comes_from_its_mtime(tmp_path: Path) -> None:
    spool = make(tmp_path / "spool")
    await spool.append([("events", P, b"x\n")])
    (path,) = files(spool.root, ".open")
    crash(spool)
    os.utime(path, (time.time() - 100, time.time() - 100))
    spool = make(tmp_path / "spool")
    assert 99 <= spool.oldest_age_s() <= 110
    await spool.close()


async def test_old_format_names_are_read_as_the_spools_own(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    root.mkdir()
    (root / "spool.json").write_bytes(b'{"spool_id": "0ld1d000", "next_seq": 3}')
    (root / f"000000000002~events~{P}.ready").write_bytes(b"old\n")
    (root / f"000000000007~events~{P}~feed0001.ready").write_bytes(b"moved\n")
    spool = make(root)
    by_origin = {s.origin: s.seq for s in spool.ready()}
    assert by_origin == {"0ld1d000": 2, "feed0001": 7}
    assert spool._next_seq == 3  # a foreign segment's sequence is not this spool's
    await spool.close()


async def test_adopts_the_spools_of_removed_workers(tmp_path: Path) -> None:
    """workers=1: worker-0 takes over worker-1's and worker-2's spools (their locks too), but
    never one still in use; their segments keep their origin."""
    w1 = make(tmp_path / "worker-1")
    await w1.append([("events", P, b"from-1\n")])
    crash(w1)  # left behind, with an .open segment
    w2 = make(tmp_path / "worker-2")  # still running: not adopted
    await w2.append([("events", P, b"from-2\n")])
    w0 = make(tmp_path / "worker-0", workers=1)
    (seg,) = w0.ready()
    assert seg.origin == w1.spool_id and seg.path.read_bytes() == b"from-1\n"
    assert seg.path.parent == tmp_path / "worker-1"
    with pytest.raises(SpoolWriteError, match="in use"):
        make(tmp_path / "worker-1")
    await w2.close()
    await w0.close()
    w1b = make(tmp_path / "worker-1")  # released on close; its sequence resumes
    assert w1b.spool_id == w1.spool_id and w1b._next_seq == w1._next_seq
    await w1b.close()


async def test_workers_unset_adopts_nothing(tmp_path: Path) -> None:
    w1 = make(tmp_path / "worker-1")
    await w1.append([("events", P, b"x\n")])
    crash(w1)
    w0 = make(tmp_path / "worker-0")
    assert w0.ready() == []
    await w0.close()


async def test_uploader_reports_stalled_and_gauge(tmp_path: Path, faults: OsFaults) -> None:
    """A local OS error on the upload path (the local lake's disk) makes the uploader report
    itself stalled, with the errno, until a pass works; io_errors_total counts it."""
    lake = LocalLake(tmp_path / "lake")
    await lake.start()
    spool = make(tmp_path / "spool")
    await spool.append([("events", P, b'{"x":1}\n')])
    up = Uploader(spool, lake, "w", backoff_max_s=0.05, poll_interval_s=0.01)
    before = io_errors("upload_lake", "EIO")
    monkey = pytest.MonkeyPatch()
    monkey.setattr(lake_module, "open", faults._wrap("lake_open", open), raising=False)
    faults.fail("lake_open", errno.EIO, times=1)
    try:
        assert await up.pass_once(force_rotate=True) is False
    finally:
        monkey.undo()
    assert up.stalled_reason() == "upload_failing: EIO for 0 s"
    up.update_gauges()
    assert metrics.stalled._value.get() == 1
    assert io_errors("upload_lake", "EIO") == before + 1
    assert spool.size_bytes > 0  # the data stays
    assert await up.pass_once() is True
    up.update_gauges()
    assert up.stalled_reason() is None and metrics.stalled._value.get() == 0
    (obj,) = list((tmp_path / "lake").rglob("*.json.gz"))
    assert gzip.decompress(obj.read_bytes()) == b'{"x":1}\n'
    await spool.close()
