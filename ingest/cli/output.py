"""Printing for a reader that may stop early: `logship session D-1 | head -1` has what it
wanted when `head` exits, so the closed pipe is the end of the output, not an error."""

from __future__ import annotations

import os
import sys


def drop_stdout() -> None:
    """Point stdout at /dev/null: what is still buffered for a closed pipe would otherwise
    fail again when Python flushes it at exit ("Exception ignored … BrokenPipeError")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def flush_stdout() -> None:
    """Write out what is printed; a reader that has gone away gets nothing more."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        drop_stdout()


def announce(text: str) -> None:
    """Print `text` now, for a process that goes on running after it (`logship dev`): a reader
    that has gone away loses the rest of stdout, and the process carries on."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        drop_stdout()
