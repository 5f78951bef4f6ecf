"""Writers first on a DuckDB file: a stream of readers (the web UI) never starves the loader.

DuckDB lets a file be open read-write by one process or read-only by any number, never both.
Readers that each open the file for a moment still overlap under steady traffic, so the file
would never be free for the loader's read-write open. Two advisory `flock` files beside the
database give a waiting writer the right of way:

* ``<db>.intent.lock`` — a writer holds it **exclusively** from before it opens the database
  until after it has closed it. A reader takes it **shared, without waiting**, only to get in,
  and lets go at once: a reader that cannot get it knows a writer is waiting or writing, and
  backs off (the UI retries briefly, then answers 503 "the warehouse is busy").
* ``<db>.main.lock`` — held by whoever has the database open: exclusively by a writer, shared
  by each reader. A writer that holds `intent` waits here only for the readers already inside,
  and those are bounded (the UI interrupts a visit after `LOGSHIP_UI_STATEMENT_TIMEOUT_S`).

    writer: intent EX → main EX → open read-write … close → let go of main, then intent
    reader: intent SH (no wait) → main SH → let go of intent → open read-only … close → main

A reader can hold `main` only after passing `intent`, and a writer holds `main` only while it
holds `intent`, so a reader's `main` never waits. `flock` locks belong to an open file
description, so two opens in one process conflict like two processes: `logship dev` (sink,
loader and UI in one process) is covered too. The writers of one process share one hold,
counted (DuckDB lets one process open a file read-write several times).

Programs outside logship (the `duckdb` shell, a notebook) know nothing of these files (the
web UI takes DuckDB's own lock conflict with one as "busy" too). A writer waits at most :data:`WRITE_WAIT_S`, then raises
:class:`TimeoutError` (transient: the loader retries the cycle).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from dataclasses import dataclass, field

#: Longest a writer waits for the readers inside (and for another writer) before giving up.
WRITE_WAIT_S = 120.0
#: First and longest pause between a waiting writer's attempts.
_PAUSE_FIRST_S = 0.002
_PAUSE_MAX_S = 0.05


def lock_paths(db_path: str) -> tuple[str, str]:
    """The `intent` and `main` lock files of the database at `db_path` (beside the file a
    symbolic link points to: every name of one database finds the same locks)."""
    real = os.path.realpath(db_path)
    return f"{real}.intent.lock", f"{real}.main.lock"


def _open(path: str) -> int:
    """A file descriptor to lock (`flock` needs no write access: a read-only open will do)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)


def _try(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


# ----------------------------------------------------------------------------- writers


@dataclass
class _Shared:
    """The writers' hold on one database in this process."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    count: int = 0
    fds: tuple[int, int] | None = None


_HOLDS: dict[str, _Shared] = {}
_HOLDS_LOCK = threading.Lock()


def _take(db_path: str, wait_s: float) -> tuple[int, int]:
    deadline = time.monotonic() + wait_s
    fds: list[int] = []
    try:
        for path in lock_paths(db_path):
            fd = _open(path)
            fds.append(fd)
            pause = _PAUSE_FIRST_S
            while not _try(fd, fcntl.LOCK_EX):
                if time.monotonic() + pause > deadline:
                    raise TimeoutError(
                        f"the DuckDB warehouse stayed in use for {wait_s:g} s (readers or "
                        f"another writer hold {os.path.basename(path)})"
                    )
                time.sleep(pause)
                pause = min(pause * 2, _PAUSE_MAX_S)
    except BaseException:
        for fd in reversed(fds):
            os.close(fd)  # closing lets go of the lock
        raise
    return fds[0], fds[1]


class WriteHold:
    """The right to open the database read-write: `intent` and `main`, exclusively (shared
    with the other writers of this process). Blocks until the readers inside have left; raises
    TimeoutError after `wait_s`. :meth:`release` after closing the database."""

    def __init__(self, db_path: str, wait_s: float = WRITE_WAIT_S):
        key = os.path.realpath(db_path)
        with _HOLDS_LOCK:
            self._shared = _HOLDS.setdefault(key, _Shared())
        with self._shared.lock:
            if self._shared.count == 0:
                self._shared.fds = _take(key, wait_s)
            self._shared.count += 1
        self._held = True

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        with self._shared.lock:
            self._shared.count -= 1
            if self._shared.count == 0 and self._shared.fds is not None:
                intent, main = self._shared.fds
                self._shared.fds = None
                os.close(main)  # main first: a reader past `intent` never waits for it
                os.close(intent)


# ----------------------------------------------------------------------------- readers


class ReadHold:
    """A reader inside: `main`, shared, until :meth:`release` (after closing the database)."""

    def __init__(self, fd: int):
        self._fd: int | None = fd

    @classmethod
    def enter(cls, db_path: str) -> ReadHold | None:
        """Get in without waiting, or None: a writer is waiting or writing (back off and try
        again). Raises OSError when the lock files cannot be opened."""
        intent_path, main_path = lock_paths(db_path)
        intent = _open(intent_path)
        try:
            if not _try(intent, fcntl.LOCK_SH):
                return None
            main = _open(main_path)
            if not _try(main, fcntl.LOCK_SH):  # cannot happen while we hold `intent`
                os.close(main)
                return None
            return cls(main)
        finally:
            os.close(intent)  # let go of `intent` at once: a writer may queue behind us now

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
