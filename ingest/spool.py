"""Stage 3: the durable spool — a batch is acknowledged only once it is here, fsynced.

Layout of one spool directory (one per worker process)::

    spool.json                                   {"spool_id": "...", "next_seq": N}
    000000000042~events~2026-11-23T08.open       being appended to
    000000000041~rejected~2026-11-23T08.ready    closed, waiting for upload

A segment holds NDJSON lines of one *stream* (events or rejected) and one partition hour, so
it becomes exactly one lake object. Sequence numbers come from ``spool.json`` and are never
reused, so ``<writer>-<spool_id>-<seq>`` names a lake object uniquely and *deterministically*:
after a crash between upload and delete, the re-upload targets the same key and is a no-op.

**Group commit.** All file work happens on one I/O thread. Concurrent ``append`` calls queue
their lines; the thread writes everything queued, fsyncs each touched file once, and resolves
every waiting request together, so 16 concurrent requests share one fsync instead of paying 16.

**Crash recovery.** ``kill -9`` can leave a torn last line only from a batch that was never
acknowledged: on start every ``.open`` segment is cut back to its last newline and closed.
A failed write (disk full) truncates the touched segments back to where the batch began and
fails every request of the group, so no half-batch is ever left behind an acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ingest.fsutil import fsync_dir

STREAMS = ("events", "rejected")
_STATE = "spool.json"


@dataclass(slots=True)
class Segment:
    """One spool file: a future lake object."""

    seq: int
    stream: str
    partition: str  # "YYYY-MM-DDTHH" of received_at (UTC)
    path: Path
    size: int = 0
    created_wall_s: float = field(default_factory=time.time)
    fd: int | None = None

    @property
    def dt(self) -> str:
        return self.partition[:10]

    @property
    def hour(self) -> str:
        return self.partition[11:13]

    @classmethod
    def parse(cls, path: Path) -> Segment | None:
        try:
            seq, stream, partition = path.stem.split("~")
            return cls(int(seq), stream, partition, path)
        except ValueError:
            return None


class SpoolWriteError(Exception):
    """Writing or syncing the spool failed (disk full, I/O error); the batch is not durable."""


class Spool:
    """Append-only, fsynced, capped local storage of accepted batches."""

    def __init__(
        self, root: Path, *, max_bytes: int, object_max_bytes: int, object_max_age_s: float
    ):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.object_max_bytes = object_max_bytes
        self.object_max_age_s = object_max_age_s
        self.spool_id = ""
        self._next_seq = 0
        self._open: dict[tuple[str, str], Segment] = {}
        self._lock_fd: int | None = None
        self._full: list[Segment] = []  # rotated by size within the current group
        self._ready: dict[int, Segment] = {}
        self._size = 0
        self._pending: list[tuple[list[tuple[str, str, bytes]], asyncio.Future[None]]] = []
        self._pending_bytes = 0
        self._flushing = False
        self._flush_task: asyncio.Task[None] | None = None
        self._io = ThreadPoolExecutor(1, thread_name_prefix="spool-io")
        self.fsyncs = 0  # for tests and the benchmark: how well group commit groups

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        """Create or recover the spool directory (blocking; call before serving)."""
        self.root.mkdir(parents=True, exist_ok=True)
        # One process per spool: two writers would reuse sequence numbers, and put-if-absent
        # would then take a new segment for an old one already uploaded.
        self._lock_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise SpoolWriteError(f"spool {self.root} is in use by another process") from None
        state_path = self.root / _STATE
        state = {}
        if state_path.exists():
            state = orjson.loads(state_path.read_bytes())
        self.spool_id = state.get("spool_id") or secrets.token_hex(4)
        self._next_seq = int(state.get("next_seq", 0))
        for tmp in self.root.glob("*.tmp"):
            tmp.unlink()
        for path in sorted(self.root.iterdir()):
            seg = Segment.parse(path)
            if seg is None:
                continue
            self._next_seq = max(self._next_seq, seg.seq + 1)
            if path.suffix == ".open":
                seg = self._recover_open(seg)
            if seg is None:
                continue
            seg.size = seg.path.stat().st_size
            seg.created_wall_s = seg.path.stat().st_mtime
            self._ready[seg.seq] = seg
            self._size += seg.size
        self._save_state()

    def _recover_open(self, seg: Segment) -> Segment | None:
        """Cut a torn tail (an unacknowledged partial batch) and close the segment."""
        with open(seg.path, "r+b") as f:
            data_end = f.seek(0, os.SEEK_END)
            keep = _last_newline_end(f, data_end)
            if keep != data_end:
                f.truncate(keep)
                f.flush()
                os.fsync(f.fileno())
        if keep == 0:
            seg.path.unlink()
            return None
        ready = seg.path.with_suffix(".ready")
        os.replace(seg.path, ready)
        fsync_dir(self.root)
        seg.path = ready
        return seg

    async def close(self) -> None:
        """Close open segments (they become ready) and stop the I/O thread."""
        await self.rotate(force=True)
        await asyncio.to_thread(self._io.shutdown, wait=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    # ------------------------------------------------------------------ state for probes/metrics

    @property
    def size_bytes(self) -> int:
        return self._size

    def has_room(self, nbytes: int) -> bool:
        return self._size + self._pending_bytes + nbytes <= self.max_bytes

    def is_full(self) -> bool:
        """Above 90% of the cap: readiness turns 503 before requests start to bounce, so a load
        balancer moves senders to another replica while this one still has headroom."""
        return self._size + self._pending_bytes >= self.max_bytes * 0.9

    def oldest_age_s(self, now: float | None = None) -> float:
        segs = [*self._ready.values(), *self._open.values()]
        if not segs:
            return 0.0
        return max(0.0, (now or time.time()) - min(s.created_wall_s for s in segs))

    def ready(self) -> list[Segment]:
        """Closed segments waiting for upload, oldest first."""
        return [self._ready[k] for k in sorted(self._ready)]

    # ------------------------------------------------------------------ append (group commit)

    async def append(self, items: list[tuple[str, str, bytes]]) -> None:
        """Durably append `(stream, partition, ndjson_bytes)` items; returns once fsynced."""
        items = [it for it in items if it[2]]
        if not items:
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._pending.append((items, fut))
        self._pending_bytes += sum(len(it[2]) for it in items)
        if not self._flushing:
            self._flushing = True
            self._flush_task = loop.create_task(self._flush_loop())
        await asyncio.shield(fut)

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                group, self._pending = self._pending, []
                nbytes = self._pending_bytes
                self._pending_bytes = 0
                error: BaseException | None = None
                try:
                    await loop.run_in_executor(self._io, self._write_group, [g[0] for g in group])
                    self._size += nbytes
                except BaseException as exc:  # resolve every waiter, whatever happened
                    error = exc
                for _, fut in group:
                    if fut.done():
                        continue
                    if error is None:
                        fut.set_result(None)
                    else:
                        fut.set_exception(SpoolWriteError(str(error)))
        finally:
            self._flushing = False

    def _write_group(self, groups: list[list[tuple[str, str, bytes]]]) -> None:
        """I/O thread: write every queued item, then fsync each touched segment once."""
        touched: dict[int, tuple[Segment, int]] = {}  # seq -> (segment, size before the group)
        try:
            for items in groups:
                for stream, partition, data in items:
                    seg = self._segment_for(stream, partition, len(data))
                    if seg.seq not in touched:
                        touched[seg.seq] = (seg, seg.size)
                    _write_all(seg.fd, data)  # type: ignore[arg-type]
                    seg.size += len(data)
            for seg, _ in touched.values():
                if seg.fd is not None:
                    os.fsync(seg.fd)
                    self.fsyncs += 1
        except BaseException:
            self._undo(touched)
            raise
        finally:
            while self._full:  # after success or undo, the content is final: close them
                self._close_segment(self._full[-1])
                self._full.pop()

    def _undo(self, touched: dict[int, tuple[Segment, int]]) -> None:
        """Cut touched segments back to their size before the failed group."""
        for seg, before in touched.values():
            seg.size = before
            if seg.fd is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(seg.fd, before)
                    os.fsync(seg.fd)

    def _segment_for(self, stream: str, partition: str, nbytes: int) -> Segment:
        key = (stream, partition)
        seg = self._open.get(key)
        if seg is not None and seg.size and seg.size + nbytes > self.object_max_bytes:
            # Full: it is closed only after this group is durable (see _write_group), so a
            # failed group can still be cut out of it.
            del self._open[key]
            self._full.append(seg)
            seg = None
        if seg is None:
            seg = self._new_segment(stream, partition)
        return seg

    def _new_segment(self, stream: str, partition: str) -> Segment:
        seq = self._next_seq
        self._next_seq += 1
        self._save_state()
        path = self.root / f"{seq:012d}~{stream}~{partition}.open"
        seg = Segment(seq, stream, partition, path)
        seg.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        fsync_dir(self.root)  # the new name itself must survive a crash
        self._open[(stream, partition)] = seg
        return seg

    def _close_segment(self, seg: Segment) -> None:
        if seg.fd is not None:
            os.fsync(seg.fd)
        ready = seg.path.with_suffix(".ready")
        os.replace(seg.path, ready)  # if this fails, the segment stays open and intact
        fsync_dir(self.root)
        if seg.fd is not None:
            os.close(seg.fd)
            seg.fd = None
        seg.path = ready
        if self._open.get((seg.stream, seg.partition)) is seg:
            del self._open[(seg.stream, seg.partition)]
        self._ready[seg.seq] = seg

    def _save_state(self) -> None:
        tmp = self.root / (_STATE + ".tmp")
        data = orjson.dumps({"spool_id": self.spool_id, "next_seq": self._next_seq})
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.root / _STATE)
        fsync_dir(self.root)

    # ------------------------------------------------------------------ rotation and removal

    async def rotate(self, *, force: bool = False, now: float | None = None) -> None:
        """Close open segments older than the object age limit (all of them when `force`).
        Chosen and closed on the I/O thread, so a segment never closes under a write."""
        now = now or time.time()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._io, self._close_due, force, now)

    def _close_due(self, force: bool, now: float) -> None:
        while self._full:  # left by a group whose rotation failed (disk error)
            self._close_segment(self._full[-1])
            self._full.pop()
        for seg in list(self._open.values()):
            if force or now - seg.created_wall_s >= self.object_max_age_s:
                self._close_segment(seg)

    async def remove(self, seg: Segment) -> None:
        """Forget an uploaded segment."""
        if self._ready.pop(seg.seq, None) is not None:
            self._size -= seg.size
        loop = asyncio.get_running_loop()
        await asyncio.shield(loop.run_in_executor(self._io, _unlink, seg.path))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _last_newline_end(f, end: int) -> int:  # type: ignore[no-untyped-def]
    """Offset just past the last b"\\n" in the file (0 if none), reading backwards in blocks."""
    pos = end
    block = 64 * 1024
    while pos > 0:
        start = max(0, pos - block)
        f.seek(start)
        chunk = f.read(pos - start)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return start + i + 1
        pos = start
    return 0
