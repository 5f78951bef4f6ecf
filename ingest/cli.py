"""The `logship` command line (DESIGN §8)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ingest.config import ConfigError, IngestSettings, load_settings
from ingest.logs import setup_logging
from ingest.registry import RegistryError, load_registry


def _cmd_ingest(args: argparse.Namespace) -> int:
    from ingest.server import run_ingest

    settings = load_settings(IngestSettings)
    setup_logging(settings.log_level)
    load_registry(settings.registry_path)  # fail fast, before any socket is opened
    return run_ingest(settings, args.worker_index)


def _cmd_registry_check(args: argparse.Namespace) -> int:
    path = args.path
    if path is None:
        path = load_settings(IngestSettings).registry_path
    reg = load_registry(path)
    print(f"ok: {reg.source}: {len(reg.events)} events, entities: {', '.join(reg.entities)}")
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from ingest.configdoc import markdown_table

    print(markdown_table())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="logship", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    ing = sub.add_parser("ingest", help="run the HTTP sink")
    ing.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    ing.set_defaults(func=_cmd_ingest)

    reg = sub.add_parser("registry", help="event registry tools")
    reg_sub = reg.add_subparsers(dest="registry_command", required=True)
    chk = reg_sub.add_parser("check", help="validate a registry file")
    chk.add_argument("path", nargs="?", type=Path, default=None)
    chk.set_defaults(func=_cmd_registry_check)

    cfg = sub.add_parser("config", help="print the configuration reference (markdown)")
    cfg.set_defaults(func=_cmd_config)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"logship: {exc}", file=sys.stderr)
        return 2
    except RegistryError as exc:
        print(f"logship: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
