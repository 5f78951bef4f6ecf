"""The spool state machine: group commit, rotation, recovery after a torn write, the cap, and a
real full disk (a tiny tmpfs) — a failed write leaves nothing behind and acknowledges nothing."""

from __future__ import annotations

import asyncio
import gzip
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.spool import Spool, SpoolWriteError

P = "2026-11-23T08"


def make(root: Path, **kw: float) -> Spool:
    spool = Spool(
        root,
        max_bytes=int(kw.get("max_bytes", 10**9)),
        object_max_bytes=int(kw.get("object_max_bytes", 10**6)),
        object_max_age_s=kw.get("object_max_age_s", 60),
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
    assert names == [
        "events~2026-11-23T08.ready",
        "rejected~2026-11-23T08.ready",
        "events~2026-11-23T08.ready",
        "events~2026-11-23T09.ready",
    ]
    assert spool.size_bytes == 61 + 2 + 61 + 2


async def test_rotation_by_age(tmp_path: Path) -> None:
    spool = make(tmp_path, object_max_age_s=30)
    await spool.append([("events", P, b"x\n")])
    await spool.rotate(now=__import__("time").time() + 10)
    assert spool.ready() == []
    await spool.rotate(now=__import__("time").time() + 31)
    assert len(spool.ready()) == 1


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
    from ingest.lake import LocalLake
    from ingest.uploader import Uploader

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
    from ingest.lake import LocalLake
    from ingest.uploader import Uploader

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
