"""Fault injection for black-box tests: imported by every Python process started with this
directory on PYTHONPATH, it makes chosen OS calls fail with a chosen errno while a control file
says so — logship itself is not changed or told.

``FAULTINJECT_CONTROL`` names the control file; while it exists, each of its lines
``ERRNO OP[,OP...] PATH_PREFIX`` makes those calls on paths under PATH_PREFIX raise
``OSError(ERRNO)``. OPs: ``open`` (builtins/io/pathlib open), ``os_open``, ``write``
(``os.write``), ``fsync``, ``replace``, ``unlink``, ``link``. For calls on a file descriptor the
path is read from /proc/self/fd. Removing the file ends the fault.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import time

_CONTROL = os.environ.get("FAULTINJECT_CONTROL", "")
_orig = {
    "open": io.open,
    "os_open": os.open,
    "write": os.write,
    "fsync": os.fsync,
    "replace": os.replace,
    "unlink": os.unlink,
    "link": os.link,
}
_rules: list[tuple[int, frozenset[str], str]] = []
_checked_at = 0.0
_CHECK_INTERVAL_S = 0.02


def _load() -> list[tuple[int, frozenset[str], str]]:
    global _rules, _checked_at
    now = time.monotonic()
    if now - _checked_at < _CHECK_INTERVAL_S:
        return _rules
    _checked_at = now
    rules = []
    try:
        with _orig["open"](_CONTROL) as f:
            text = f.read()
    except OSError:
        text = ""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            rules.append((getattr(errno, parts[0]), frozenset(parts[1].split(",")), parts[2]))
    _rules = rules
    return rules


def _path_of(target: object) -> str:
    if isinstance(target, int):
        try:
            return os.readlink(f"/proc/self/fd/{target}")
        except OSError:
            return ""
    try:
        return os.path.abspath(os.fspath(target))  # type: ignore[arg-type]
    except TypeError:
        return ""


def _check(op: str, target: object) -> None:
    rules = _load()
    if not rules:
        return
    path = ""
    for code, ops, prefix in rules:
        if op in ops:
            path = path or _path_of(target)
            if path.startswith(prefix):
                raise OSError(code, f"{os.strerror(code)} (injected)", path)


def _wrap(op: str):  # type: ignore[no-untyped-def]
    original = _orig[op]

    def wrapper(target, *args, **kwargs):  # type: ignore[no-untyped-def]
        _check(op, target)
        return original(target, *args, **kwargs)

    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    return wrapper


if _CONTROL:
    builtins.open = io.open = _wrap("open")  # type: ignore[assignment]
    os.open = _wrap("os_open")  # type: ignore[assignment]
    os.write = _wrap("write")  # type: ignore[assignment]
    os.fsync = _wrap("fsync")  # type: ignore[assignment]
    os.replace = _wrap("replace")  # type: ignore[assignment]
    os.unlink = _wrap("unlink")  # type: ignore[assignment]
    os.link = _wrap("link")  # type: ignore[assignment]
