"""Small filesystem helpers shared by the spool, the uploader and the local lake, and the one
place OS errors are named (a bounded set: they become metric labels)."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

#: errno values named in metrics and health reasons; every other errno is "other".
ERRNO_NAMES: dict[int, str] = {
    errno.EMFILE: "EMFILE",
    errno.ENFILE: "ENFILE",
    errno.ENOSPC: "ENOSPC",
    errno.EIO: "EIO",
    errno.EDQUOT: "EDQUOT",
    errno.EROFS: "EROFS",
    errno.EACCES: "EACCES",
}

#: errno values of a remote peer (the lake unreachable), not of this machine's resources.
_NETWORK_ERRNOS = frozenset(
    {
        errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.ETIMEDOUT,
        errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTDOWN, errno.EPIPE,
        errno.EADDRNOTAVAIL,
    }
)  # fmt: skip


def fsync_dir(path: Path) -> None:
    """fsync a directory, so a file created, renamed or linked in it survives a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def os_error_of(exc: BaseException) -> OSError | None:
    """The OSError behind `exc`: itself, or one it wraps (its cause or context, aiohttp's
    ``os_error``, botocore's ``kwargs["error"]``), so an fd exhaustion inside an HTTP client
    is still seen as one."""
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        e = stack.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and isinstance(e.errno, int):
            return e
        kwargs = getattr(e, "kwargs", None)
        wrapped = kwargs.get("error") if isinstance(kwargs, dict) else None
        stack.extend([e.__cause__, e.__context__, getattr(e, "os_error", None), wrapped])
    return None


def errno_name(exc: BaseException) -> str:
    """A bounded label for an OS error: EMFILE, ENFILE, ENOSPC, EIO, EDQUOT, EROFS, EACCES or
    other."""
    err = os_error_of(exc)
    return ERRNO_NAMES.get(err.errno, "other") if err is not None and err.errno else "other"


def is_local_fault(exc: BaseException) -> bool:
    """True when `exc` is (or wraps) an OS error of this machine — fds, disk, I/O — rather than
    the lake being unreachable: that one is this process's to report as not ready."""
    err = os_error_of(exc)
    if err is None or isinstance(err, socket.gaierror):
        return False
    return err.errno not in _NETWORK_ERRNOS
