"""Real processes for the hostile tests: `logship ingest` and `logship load` started as a user
would start them (environment variables only), their stderr kept in a file for assertions.

Every hostile test is black-box: it talks to these processes over loopback sockets and reads
what they leave on disk, in the lake and in the warehouse — never their internals.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.conftest import free_port


@dataclass
class Proc:
    """A running logship process and where its stderr goes."""

    popen: subprocess.Popen[bytes]
    stderr_path: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout_s: float = 30) -> int:
        """SIGTERM and wait; returns the exit code (kills after `timeout_s`)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                return self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
                raise AssertionError(f"did not stop within {timeout_s} s") from None
        return self.popen.returncode


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A clean environment (no LOGSHIP_* inherited) with everything under `tmp_path`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSHIP_")}
    env.update(
        LOGSHIP_SPOOL_DIR=str(tmp_path / "spool"),
        LOGSHIP_LAKE_URL=str(tmp_path / "lake"),
        LOGSHIP_WAREHOUSE_URL=f"duckdb:///{tmp_path / 'warehouse.duckdb'}",
        LOGSHIP_OBJECT_MAX_AGE_S="0.5",
        LOGSHIP_UPLOAD_BACKOFF_MAX_S="0.5",
        LOGSHIP_RETRY_BACKOFF_MAX_S="0.5",
        LOGSHIP_LOAD_INTERVAL_S="0.5",
    )
    env.update(extra)
    return env


def _start(args: list[str], env: dict[str, str], name: str, tmp_path: Path, port: int) -> Proc:
    err = tmp_path / f"{name}-{port}.stderr"
    with open(err, "wb") as f:
        popen = subprocess.Popen(
            [sys.executable, "-m", "ingest.cli", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=f,
        )
    return Proc(popen, err, port)


def wait_http(proc: Proc, path: str = "/healthz", timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise AssertionError(f"process exited early:\n{proc.stderr()[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(proc.url + path, timeout=2).status_code == 200:
                return
        time.sleep(0.05)
    raise AssertionError(f"{path} did not answer 200 within {timeout_s} s")


@contextlib.contextmanager
def _running(command: str, addr_var: str, tmp_path: Path, env: dict[str, str]) -> Iterator[Proc]:
    """`logship COMMAND` with its HTTP address (`addr_var`) on a free loopback port, answering
    /healthz; stopped (SIGTERM) at the end."""
    port = free_port()
    full_env = env_for(tmp_path, **{addr_var: f"127.0.0.1:{port}"}, **env)
    proc = _start([command], full_env, command, tmp_path, port)
    try:
        wait_http(proc)
        yield proc
    finally:
        with contextlib.suppress(AssertionError):
            proc.stop()


def ingest(tmp_path: Path, **env: str) -> contextlib.AbstractContextManager[Proc]:
    """`logship ingest` on a free loopback port; stopped (SIGTERM) at the end."""
    return _running("ingest", "LOGSHIP_HTTP_ADDR", tmp_path, env)


def loader(tmp_path: Path, **env: str) -> contextlib.AbstractContextManager[Proc]:
    """`logship load` with its /healthz on a free port; stopped (SIGTERM) at the end."""
    return _running("load", "LOGSHIP_LOADER_HTTP_ADDR", tmp_path, env)


def wait_until(predicate, timeout_s: float = 30, interval_s: float = 0.1, what: str = "") -> None:  # type: ignore[no-untyped-def]
    """Poll `predicate` until it is true; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what or predicate}")


# --------------------------------------------------------------------------- fault injection
#
# Real faults where the kernel can make them (fd exhaustion with prlimit, a full disk with a
# small tmpfs), injected ones (tests/hostile/faultinject/sitecustomize.py) where it cannot (EIO).

FAULTINJECT_DIR = Path(__file__).parent / "faultinject"


def fault_env(control: Path) -> dict[str, str]:
    """Environment that loads the fault injector into a child, steered by `control`."""
    path = os.environ.get("PYTHONPATH", "")
    return {
        "PYTHONPATH": os.pathsep.join(p for p in (str(FAULTINJECT_DIR), path) if p),
        "FAULTINJECT_CONTROL": str(control),
    }


@contextlib.contextmanager
def injected(control: Path, error: str, ops: str, path: Path) -> Iterator[None]:
    """While inside: the child's `ops` (e.g. "fsync,write") on paths under `path` raise
    OSError(`error`) (e.g. "EIO"). See faultinject/sitecustomize.py."""
    control.write_text(f"{error} {ops} {path.absolute()}\n")
    try:
        yield
    finally:
        control.unlink(missing_ok=True)


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "2m") -> Iterator[Path]:
    """A real small filesystem at `path` (needs root): ENOSPC from the kernel. Fails the test,
    never skips it, when it cannot be mounted."""
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True, check=False)  # fmt: skip
    if r.returncode != 0:
        raise AssertionError(f"cannot mount a tmpfs at {path} (needs root): {r.stderr!r}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill_disk(directory: Path) -> Path:
    """Fill the filesystem of `directory` to 100% with one file; delete it to free the space."""
    filler = directory / "filler.bin"
    with open(filler, "wb", buffering=0) as f:
        for size in (1 << 20, 1 << 16, 1 << 12, 1):  # smaller and smaller, to the last byte
            with contextlib.suppress(OSError):
                while f.write(b"\0" * size):
                    pass
    return filler


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@contextlib.contextmanager
def fd_limit(pid: int, below_open: int = 4) -> Iterator[None]:
    """Real fd exhaustion in a running process: its soft RLIMIT_NOFILE set `below_open` under
    the fds it has open, so every new open/socket/accept fails with EMFILE while the ones it
    has (kept-alive connections, open segments) go on working; restored on exit."""
    import resource

    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (max(1, open_fds(pid) - below_open), hard))
    try:
        yield
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))


def metric_values(text: str, name: str) -> dict[str, float]:
    """Samples of metric `name` in a /metrics body: label string ('' if none) -> value."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            head, _, value = line.rpartition(" ")
            labels = head[len(name) :].strip("{}")
            out[labels] = float(value)
    return out


def spooled_bytes(spool_dir: Path) -> int:
    """Bytes of spool segments on disk (.open and .ready files under `spool_dir`)."""
    total = 0
    for p in spool_dir.rglob("*"):
        if p.suffix in (".open", ".ready"):
            with contextlib.suppress(FileNotFoundError):
                total += p.stat().st_size
    return total
