"""`logship`: parse the command line, run the command, map its errors to exit codes.

Exit codes: 0 done (also when the reader of stdout stopped early: `logship … | head -1`),
1 the command failed (an invalid registry, a warehouse that cannot answer, a breaking registry
change), 2 a configuration or usage error, 130 interrupted."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ingest.cli.output import drop_stdout, flush_stdout
from ingest.cli.parser import PASSTHROUGH, build_parser
from ingest.config import ConfigError
from ingest.registry import RegistryError


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = _run(list(sys.argv[1:] if argv is None else argv))
        flush_stdout()  # a reader gone early shows here, not at interpreter exit
        return code
    except BrokenPipeError:  # `logship session X | head -1`: the reader has what it wanted
        drop_stdout()
        return 0
    except SystemExit:  # argparse, after --help's text (0) or a usage error (2)
        flush_stdout()
        raise
    except KeyboardInterrupt:
        return 130


def _run(argv: list[str]) -> int:
    if argv[:1] and argv[0] in PASSTHROUGH:
        return int(_resolve(PASSTHROUGH[argv[0]])(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    try:
        return int(_resolve(args.target)(args) or 0)
    except ConfigError as exc:
        print(f"logship: {exc}", file=sys.stderr)
        return 2
    except RegistryError as exc:
        print(f"logship: {exc}", file=sys.stderr)
        return 1


def _resolve(target: str) -> Callable[..., Any]:
    """`"module:function"` → the function; the module (and what it imports) loads only now."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)
