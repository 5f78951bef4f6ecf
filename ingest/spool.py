"""Stage 4: the durable spool — a batch is acknowledged only once it is here, fsynced.

Layout of one spool directory (one per worker process)::

    spool.json                                            {"spool_id": "...", "next_seq": N}
    000000000042~events~2026-11-23T08~1a2b3c4d.open       being appended to
    000000000041~rejected~2026-11-23T08~1a2b3c4d.ready    closed, waiting for upload

A segment holds NDJSON lines of one *stream* (events or rejected) and one partition hour, so
it becomes exactly one lake object. Its name carries the id of the spool that **wrote** it (the
*origin*; names without one, written by older versions, belong to the directory's own spool).
Sequence numbers come from ``spool.json`` and are never reused by a spool, so
``<writer>-<origin>-<seq>`` names a lake object uniquely and *deterministically*: after a crash
between upload and delete, the re-upload targets the same key and finds the same bytes there.
A segment that moved to another spool (by hand, a restored snapshot, an adopted spool of a
removed worker) keeps its origin, hence its key.

**Group commit.** All file work happens on one I/O thread. Concurrent ``append`` calls queue
their lines; the thread writes everything queued, fsyncs each touched file once, and resolves
every waiting request together, so 16 concurrent requests share one fsync instead of paying 16.

**Faults heal.** Every state transition is a sequence of steps that each remember their own
success — a new segment's name synced, a failed group still to be cut out, a segment renamed
but its directory not yet synced, an uploaded segment not yet unlinked — so after any OS error
(EMFILE, ENOSPC, EIO, …) the next attempt resumes where the last one stopped. The rotation pass
retries what is pending; a failed write is retried by the next batch, or by a probe when no
batch comes (readiness is 503 meanwhile, so none may). Each error is counted in
``logship_ingest_io_errors_total{stage,error}`` and held as a *fault* until the step succeeds:
:meth:`Spool.fault_reason` is what ``/readyz`` reports.

**Crash recovery.** ``kill -9`` can leave a torn last line only from a batch that was never
acknowledged: on start every ``.open`` segment is cut back to its last newline and closed.
A failed write (disk full) truncates the touched segments back to where the batch began and
fails every request of the group, so no half-batch is ever left behind an acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson

from ingest import metrics
from ingest.fsutil import errno_name, fsync_dir
from ingest.lake import keys
from ingest.logs import log

logger = logging.getLogger("logship.spool")

_STATE = "spool.json"
_WORKER_DIR = re.compile(r"worker-(\d+)")
#: The most free space a write probe asks for before it tries (a failed group may be larger).
_PROBE_MAX_BYTES = 1024 * 1024
_T = TypeVar("_T")


@dataclass(eq=False, slots=True)
class Segment:
    """One spool file: a future lake object."""

    seq: int
    stream: str
    partition: str  # "YYYY-MM-DDTHH" of received_at (UTC)
    path: Path
    origin: str = ""  # id of the spool that wrote it; "" = the holding spool's own
    size: int = 0
    created_mono_s: float = field(default_factory=time.monotonic)
    fd: int | None = None
    named: bool = False  # its current name is synced in its directory
    recovered: bool = False  # found .open at start: its torn tail is still to be cut
    truncate_to_size: bool = False  # a failed group's bytes are still to be cut off
    uploaded: bool = False  # in the lake: only its unlink is left

    @property
    def dt(self) -> str:
        return keys.partition_day(self.partition)

    @property
    def hour(self) -> str:
        return keys.partition_hour(self.partition)

    @property
    def ident(self) -> str:
        """Stable across the .open → .ready rename, unique among every spool's files."""
        return str(self.path.with_suffix(""))

    @classmethod
    def parse(cls, path: Path, origin: str = "") -> Segment | None:
        """A segment from its file name: ``seq~stream~partition[~origin].open|.ready``."""
        if path.suffix not in (".open", ".ready"):
            return None
        parts = path.stem.split("~")
        if len(parts) == 4 and parts[3].isalnum():
            origin = parts[3]
        elif len(parts) != 3:
            return None
        try:
            return cls(int(parts[0]), parts[1], parts[2], path, origin=origin)
        except ValueError:
            return None


class SpoolWriteError(Exception):
    """Writing or syncing the spool failed (disk full, I/O error); the batch is not durable."""


@dataclass(frozen=True, slots=True)
class Fault:
    """A spool operation failing since `since_mono_s`, with the bounded name of its error."""

    error: str
    since_mono_s: float


#: Fault classes, in the order /readyz reports them.
FAULTS = ("spool_write", "spool_rotate", "spool_state", "spool_remove")


class Spool:
    """Append-only, fsynced, capped local storage of accepted batches."""

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int,
        object_max_bytes: int,
        object_max_age_s: float,
        workers: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.object_max_bytes = object_max_bytes
        self.object_max_age_s = object_max_age_s
        self.workers = workers  # when set, adopt the spools of removed workers (see open)
        self._clock = clock
        self.spool_id = ""
        self._next_seq = 0
        self._open: dict[tuple[str, str], Segment] = {}
        self._closing: list[Segment] = []  # to close: rotated, recovered, or a close that failed
        self._ready: dict[str, Segment] = {}
        self._lock_fds: list[int] = []
        self._lock_fd: int | None = None
        self._dirty_dirs: set[Path] = set()  # a name changed in it since its last fsync
        self._state_dirty = True
        self._faults: dict[str, Fault] = {}
        self._failed_group_bytes = 0
        self._size = 0
        self._size_lock = threading.Lock()  # sizes change on the I/O thread and the event loop
        self._pending: list[tuple[list[tuple[str, str, bytes]], asyncio.Future[None]]] = []
        self._pending_bytes = 0
        self._writing_bytes = 0  # the group on the I/O thread now: counted against the cap too
        self._flushing = False
        self._flush_task: asyncio.Task[None] | None = None
        self._io = ThreadPoolExecutor(1, thread_name_prefix="spool-io")
        self.fsyncs = 0  # for tests and the benchmark: how well group commit groups

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        """Create or recover the spool directory (blocking; call before serving). Start does
        not need free space: what cannot be written now (the state file, a recovered segment's
        rename) is a fault, retried by every rotation pass until it succeeds."""
        self.root.mkdir(parents=True, exist_ok=True)
        # One process per spool: two writers would reuse sequence numbers.
        self._lock_fd = _try_lock(self.root)
        if self._lock_fd is None:
            raise SpoolWriteError(f"spool {self.root} is in use by another process")
        self._lock_fds.append(self._lock_fd)
        state = _read_state(self.root)
        self.spool_id = str(state.get("spool_id") or secrets.token_hex(4))
        self._next_seq = int(state.get("next_seq", 0))
        self._load_dir(self.root, self.spool_id)
        for orphan in self._orphans():
            self._adopt(orphan)
        with contextlib.suppress(OSError):  # a full disk: a fault, retried by rotate()
            self._save_state()
        with contextlib.suppress(OSError):
            self._close_pending()

    def _load_dir(self, root: Path, origin: str) -> None:
        """Register the segments of `root`; names without an origin belong to `origin`."""
        for tmp in root.glob("*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()
        now_wall_s, now_s = time.time(), self._clock()
        for path in sorted(root.iterdir()):
            seg = Segment.parse(path, origin)
            if seg is None:
                continue
            if seg.origin == self.spool_id:
                self._next_seq = max(self._next_seq, seg.seq + 1)
            st = path.stat()
            seg.size = st.st_size
            # Age on the monotonic clock, from the wall-clock mtime converted once.
            seg.created_mono_s = now_s - max(0.0, now_wall_s - st.st_mtime)
            seg.named = True
            self._add_size(seg.size)
            if path.suffix == ".open":
                seg.recovered = True
                self._closing.append(seg)
            else:
                self._ready[seg.ident] = seg

    def _orphans(self) -> list[Path]:
        """Spools of removed workers this one adopts: ``worker-N`` beside it with
        N >= workers, spread over the workers by N mod workers."""
        m = _WORKER_DIR.fullmatch(self.root.name)
        if self.workers is None or m is None:
            return []
        index = int(m.group(1))
        out = []
        for d in sorted(self.root.parent.iterdir()):
            n = _WORKER_DIR.fullmatch(d.name)
            number = int(n.group(1)) if n else -1
            if number >= self.workers and number % self.workers == index and d.is_dir():
                out.append(d)
        return out

    def _adopt(self, root: Path) -> None:
        """Take over a removed worker's spool: its lock (so never one still in use), and its
        segments, uploaded under their origin's keys. Its state file stays: a worker with that
        index later resumes its sequence."""
        fd = _try_lock(root)
        if fd is None:
            log(logger, logging.WARNING, "spool of a removed worker is in use; not adopted",
                spool=str(root))  # fmt: skip
            return
        self._lock_fds.append(fd)
        try:
            origin = str(_read_state(root).get("spool_id") or "")
        except OSError:
            origin = ""
        before = len(self._ready) + len(self._closing)
        self._load_dir(root, origin or self.spool_id)
        log(logger, logging.WARNING, "adopted the spool of a removed worker", spool=str(root),
            spool_id=origin, segments=len(self._ready) + len(self._closing) - before)  # fmt: skip

    async def close(self) -> None:
        """Close open segments (they become ready) and stop the I/O thread. What cannot be
        closed now stays ``.open`` and is recovered at the next start."""
        try:
            await self.rotate(force=True)
        except OSError as exc:
            log(logger, logging.WARNING, "spool not fully closed; recovered at next start",
                error=errno_name(exc))  # fmt: skip
        await asyncio.to_thread(self._io.shutdown, wait=True)
        for seg in [*self._open.values(), *self._closing]:
            if seg.fd is not None:
                with contextlib.suppress(OSError):
                    os.close(seg.fd)
                seg.fd = None
        for fd in self._lock_fds:
            with contextlib.suppress(OSError):
                os.close(fd)  # releases the flock
        self._lock_fds.clear()
        self._lock_fd = None

    # ------------------------------------------------------------------ state for probes/metrics

    @property
    def size_bytes(self) -> int:
        return self._size

    def _add_size(self, delta: int) -> None:
        with self._size_lock:
            self._size += delta

    def has_room(self, nbytes: int) -> bool:
        """Whether `nbytes` more fit under the cap, counting what is queued and being written:
        so the spool never exceeds its cap, whatever the concurrency."""
        return self._size + self._pending_bytes + self._writing_bytes + nbytes <= self.max_bytes

    def is_full(self) -> bool:
        """Above 90% of the cap: readiness turns 503 before requests start to bounce, so a load
        balancer moves senders to another replica while this one still has headroom."""
        used = self._size + self._pending_bytes + self._writing_bytes
        return used >= self.max_bytes * 0.9

    def oldest_age_s(self, now: float | None = None) -> float:
        segs = [*self._ready.values(), *self._open.values(), *self._closing]
        if not segs:
            return 0.0
        return max(0.0, (now or self._clock()) - min(s.created_mono_s for s in segs))

    def ready(self) -> list[Segment]:
        """Closed segments waiting for upload, oldest first."""
        segs = list(self._ready.values())  # one C-level copy: safe against the I/O thread
        return sorted(segs, key=lambda s: (s.created_mono_s, s.seq))

    def faults(self) -> dict[str, Fault]:
        return dict(self._faults)

    def fault_reason(self, now: float | None = None) -> str | None:
        """Why the spool cannot make progress now (None when it can), e.g.
        ``spool_write_failed: ENOSPC`` or ``spool_rotate_failed: EMFILE for 12 s``."""
        faults = dict(self._faults)
        now = now or self._clock()
        for name in FAULTS:
            f = faults.get(name)
            if f is not None:
                if name == "spool_write":
                    return f"spool_write_failed: {f.error}"
                return f"{name}_failed: {f.error} for {int(now - f.since_mono_s)} s"
        return None

    def _fault(self, name: str, exc: BaseException) -> None:
        err = errno_name(exc)
        old = self._faults.get(name)
        if old is None or old.error != err:
            self._faults[name] = Fault(err, old.since_mono_s if old else self._clock())
            log(logger, logging.ERROR, "spool operation failing; retried until it works",
                fault=name, error=err, detail=str(exc)[:300])  # fmt: skip

    def _healed(self, name: str) -> None:
        f = self._faults.pop(name, None)
        if f is not None:
            log(logger, logging.WARNING, "spool operation works again", fault=name,
                error=f.error, seconds=round(self._clock() - f.since_mono_s, 1))  # fmt: skip

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
                nbytes, self._pending_bytes = self._pending_bytes, 0
                self._writing_bytes = nbytes
                error: BaseException | None = None
                try:
                    await loop.run_in_executor(self._io, self._write_group, [g[0] for g in group])
                    self._add_size(nbytes)
                except BaseException as exc:  # resolve every waiter, whatever happened
                    error = exc
                finally:
                    self._writing_bytes = 0
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
        touched: dict[str, tuple[Segment, int]] = {}  # ident -> (segment, size before the group)
        try:
            for items in groups:
                for stream, partition, data in items:
                    seg = self._segment_for(stream, partition, len(data))
                    if seg.ident not in touched:
                        self._cut_failed_group(seg)  # a previous group's leftovers first
                        touched[seg.ident] = (seg, seg.size)
                    _step("spool_write", _write_all, seg.fd, data)
                    seg.size += len(data)
            for seg, _ in touched.values():
                if not seg.named:  # a new segment's name must survive a crash before the ack
                    self._sync_dir(seg.path.parent)
                    seg.named = True
                _step("spool_fsync", os.fsync, seg.fd)
                self.fsyncs += 1
        except BaseException as exc:
            self._failed_group_bytes = sum(len(d) for items in groups for _, _, d in items)
            self._fault("spool_write", exc)
            self._undo(touched)
            raise
        else:
            self._healed("spool_write")
        finally:
            # After success or undo the content is final: close what rotated by size. A close
            # that fails does not fail the (durable) group: the rotation pass retries it.
            with contextlib.suppress(OSError):
                self._close_pending()

    def _undo(self, touched: dict[str, tuple[Segment, int]]) -> None:
        """Cut touched segments back to their size before the failed group; a cut that fails
        now is remembered and done before the segment is written or closed again."""
        for seg, before in touched.values():
            seg.size = before
            seg.truncate_to_size = True
            with contextlib.suppress(OSError):
                self._cut_failed_group(seg)

    def _cut_failed_group(self, seg: Segment) -> None:
        if seg.truncate_to_size and seg.fd is not None:
            _step("spool_truncate", os.ftruncate, seg.fd, seg.size)
            _step("spool_fsync", os.fsync, seg.fd)
        seg.truncate_to_size = False

    def _segment_for(self, stream: str, partition: str, nbytes: int) -> Segment:
        key = (stream, partition)
        seg = self._open.get(key)
        if seg is not None and seg.size and seg.size + nbytes > self.object_max_bytes:
            # Full: it is closed only after this group is durable (see _write_group), so a
            # failed group can still be cut out of it.
            del self._open[key]
            self._closing.append(seg)
            seg = None
        if seg is None:
            seg = self._new_segment(stream, partition)
        return seg

    def _new_segment(self, stream: str, partition: str) -> Segment:
        seq = self._next_seq
        self._next_seq += 1  # consumed even if what follows fails: a sequence is never reused
        self._state_dirty = True
        self._save_state()
        path = self.root / f"{seq:012d}~{stream}~{partition}~{self.spool_id}.open"
        self._dirty_dirs.add(self.root)
        fd = _step("spool_open", os.open, path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        seg = Segment(seq, stream, partition, path, origin=self.spool_id, fd=fd)
        seg.created_mono_s = self._clock()
        self._open[key_of(seg)] = seg
        return seg

    def _save_state(self) -> None:
        try:
            _step("spool_state", _write_state, self.root, self.spool_id, self._next_seq)
            self._dirty_dirs.add(self.root)
            self._sync_dir(self.root)
        except OSError as exc:
            self._fault("spool_state", exc)
            raise
        self._state_dirty = False
        self._healed("spool_state")

    def _sync_dir(self, path: Path) -> None:
        if path in self._dirty_dirs:
            _step("spool_dir_fsync", fsync_dir, path)
            self._dirty_dirs.discard(path)

    # ------------------------------------------------------------------ rotation and removal

    async def rotate(self, *, force: bool = False, now: float | None = None) -> None:
        """Close open segments older than the object age limit (all of them when `force`), and
        retry whatever an earlier error left pending. Chosen and closed on the I/O thread, so
        a segment never closes under a write. Raises the first OSError, after trying all."""
        now = now if now is not None else self._clock()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._io, self._close_due, force, now)

    def _close_due(self, force: bool, now: float) -> None:
        for key, seg in list(self._open.items()):
            if force or now - seg.created_mono_s >= self.object_max_age_s:
                del self._open[key]  # from now on no write goes to it
                self._closing.append(seg)
        errors: list[OSError] = []
        for retry in (self._retry_state, self._probe_write, self._close_pending):
            try:
                retry()
            except OSError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def _retry_state(self) -> None:
        if self._state_dirty:
            self._save_state()

    def _probe_write(self) -> None:
        """While writes fail and no batch comes to try again (readiness keeps senders away),
        the rotation pass tries one: free space for the failed group, then a state save, which
        creates, writes, fsyncs and renames a file like a group does."""
        if "spool_write" not in self._faults:
            return
        try:
            st = _step("spool_probe", os.statvfs, self.root)
            need = min(self._failed_group_bytes, _PROBE_MAX_BYTES)
            if st.f_bavail * st.f_frsize < need:
                raise OSError(errno.ENOSPC, f"{need} bytes not free yet")
            self._save_state()
        except OSError as exc:
            self._fault("spool_write", exc)
            raise
        self._healed("spool_write")

    def _close_pending(self) -> None:
        """Close every segment waiting for it, then sync the directories that changed."""
        errors: list[OSError] = []
        for seg in list(self._closing):
            try:
                self._close_segment(seg)
            except OSError as exc:
                errors.append(exc)
        for d in list(self._dirty_dirs):
            try:
                self._sync_dir(d)
            except OSError as exc:
                errors.append(exc)
        if errors:
            self._fault("spool_rotate", errors[0])
            raise errors[0]
        self._healed("spool_rotate")

    def _close_segment(self, seg: Segment) -> None:
        """Idempotent: every step is remembered on the segment, so a retry after an error
        continues where it stopped. Once renamed the segment is ready (uploading it before its
        directory is synced is safe: a crash brings back either name, and the re-upload finds
        the same bytes under the same key); the directory sync is retried by the caller."""
        if seg.recovered:
            kept = _cut_torn_tail(seg)
            self._add_size(kept - seg.size)
            seg.size, seg.recovered = kept, False
        self._cut_failed_group(seg)
        if seg.size == 0:  # nothing durable in it (a failed first group, or a torn line only)
            self._dirty_dirs.add(seg.path.parent)
            _close_fd(seg)
            _step("spool_unlink", _unlink, seg.path)
            self._closing = [s for s in self._closing if s is not seg]
            return
        if seg.path.suffix == ".open":
            ready = seg.path.with_suffix(".ready")
            self._dirty_dirs.add(seg.path.parent)
            try:
                _step("spool_rename", os.replace, seg.path, ready)
            except FileNotFoundError:
                if not ready.exists():  # deleted by hand: nothing is left to upload
                    self._drop_missing(seg)
                    return
            seg.path = ready
            seg.named = False
        _close_fd(seg)
        self._ready[seg.ident] = seg
        self._closing = [s for s in self._closing if s is not seg]

    async def remove(self, seg: Segment) -> None:
        """Forget an uploaded segment. If the unlink fails the segment stays, marked uploaded,
        so the next pass retries only the unlink."""
        seg.uploaded = True
        loop = asyncio.get_running_loop()
        await asyncio.shield(loop.run_in_executor(self._io, self._unlink_segment, seg))
        if self._ready.pop(seg.ident, None) is not None:
            self._add_size(-seg.size)

    def _unlink_segment(self, seg: Segment) -> None:
        self._dirty_dirs.add(seg.path.parent)
        try:
            _step("spool_unlink", _unlink, seg.path)
        except OSError as exc:
            self._fault("spool_remove", exc)
            raise
        self._healed("spool_remove")

    def forget(self, seg: Segment) -> None:
        """Drop a ready segment whose file is gone (deleted by hand): nothing is left to upload."""
        if self._ready.pop(seg.ident, None) is not None:
            self._add_size(-seg.size)
            log(logger, logging.ERROR, "spool segment vanished before upload", path=str(seg.path))

    def _drop_missing(self, seg: Segment) -> None:
        _close_fd(seg)
        self._closing = [s for s in self._closing if s is not seg]
        self._add_size(-seg.size)
        log(logger, logging.ERROR, "spool segment vanished before upload", path=str(seg.path))


def key_of(seg: Segment) -> tuple[str, str]:
    return (seg.stream, seg.partition)


def _step(stage: str, fn: Callable[..., _T], *args: Any) -> _T:
    """Run one OS step; count its error by stage and errno name, and re-raise it."""
    try:
        return fn(*args)
    except OSError as exc:
        metrics.io_errors_total.labels(stage, errno_name(exc)).inc()
        raise


def _try_lock(root: Path) -> int | None:
    """An exclusive flock on the directory `root`, or None if another process holds it."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _read_state(root: Path) -> dict[str, Any]:
    """The spool's state file; an unreadable one (torn by a power loss) is logged and replaced:
    a fresh spool id keeps the keys of what follows unique."""
    path = root / _STATE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    try:
        state = orjson.loads(data)
    except orjson.JSONDecodeError:
        log(logger, logging.ERROR, "spool state unreadable; starting a new spool id",
            spool=str(root))  # fmt: skip
        return {}
    return state if isinstance(state, dict) else {}


def _write_state(root: Path, spool_id: str, next_seq: int) -> None:
    tmp = root / (_STATE + ".tmp")
    with open(tmp, "wb") as f:
        f.write(orjson.dumps({"spool_id": spool_id, "next_seq": next_seq}))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, root / _STATE)


def _cut_torn_tail(seg: Segment) -> int:
    """Cut a torn tail (an unacknowledged partial batch) off a recovered segment; its size."""
    with _step("spool_recover", open, seg.path, "r+b") as f:
        data_end = f.seek(0, os.SEEK_END)
        keep = _last_newline_end(f, data_end)
        if keep != data_end:
            _step("spool_recover", f.truncate, keep)
            f.flush()
            _step("spool_recover", os.fsync, f.fileno())
    return keep


def _close_fd(seg: Segment) -> None:
    if seg.fd is not None:
        with contextlib.suppress(OSError):  # the fd is released whatever close() reports
            os.close(seg.fd)
        seg.fd = None


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
