"""The `logship` command line (DESIGN §8)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ingest.config import ConfigError, IngestSettings, load_settings
from ingest.logs import setup_logging
from ingest.registry import Registry, RegistryError, load_registry


def _cmd_ingest(args: argparse.Namespace) -> int:
    from ingest.server import run_ingest

    settings = load_settings(IngestSettings)
    setup_logging(settings.log_level)
    load_registry(settings.registry_path)  # fail fast, before any socket is opened
    return run_ingest(settings, args.worker_index)


def _cmd_load(args: argparse.Namespace) -> int:
    from loader.config import LoaderSettings
    from loader.service import run_loader

    settings = load_settings(LoaderSettings)
    setup_logging(settings.log_level)
    return run_loader(settings, once=args.once)


def _cmd_dev(args: argparse.Namespace) -> int:
    import asyncio

    from loader.config import LoaderSettings
    from loader.service import serve_dev

    # The embedded defaults: a local lake directory and DuckDB, objects every few seconds.
    ingest = load_settings(IngestSettings, **_dev_defaults(IngestSettings, object_max_age_s=5.0))
    loader = load_settings(LoaderSettings, **_dev_defaults(LoaderSettings, load_interval_s=2.0))
    setup_logging(ingest.log_level)
    return asyncio.run(serve_dev(ingest, loader))


def _dev_defaults(cls: type, **defaults: object) -> dict[str, object]:
    """`defaults` for the fields the environment does not set."""
    import os

    return {k: v for k, v in defaults.items() if f"LOGSHIP_{k.upper()}" not in os.environ}


def _loader_settings():  # type: ignore[no-untyped-def]
    from loader.config import LoaderSettings

    return load_settings(LoaderSettings)


def _cmd_session(args: argparse.Namespace) -> int:
    from loader.reports import session

    return session(_loader_settings(), args.delivery_id, args.json)


def _cmd_supply(args: argparse.Namespace) -> int:
    from loader.reports import supply_hours

    return supply_hours(_loader_settings(), args.date, args.robot, args.json)


def _cmd_funnel(args: argparse.Namespace) -> int:
    from loader.reports import funnel

    return funnel(_loader_settings(), args.date, args.json)


def _configured_registry(path: Path | None) -> Registry:
    """The registry at `path`, else the configured one (LOGSHIP_REGISTRY_PATH or bundled)."""
    return load_registry(path if path is not None else load_settings(IngestSettings).registry_path)


def _cmd_registry_check(args: argparse.Namespace) -> int:
    """Exit 1 with one line per problem on stderr (every problem, not just the first)."""
    try:
        reg = _configured_registry(args.path)
    except RegistryError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    print(f"ok: {reg.source}: {len(reg.events)} events, entities: {', '.join(reg.entities)}")
    return 0


def _cmd_registry_export(args: argparse.Namespace) -> int:
    from ingest.registry_export import export

    sys.stdout.write(export(_configured_registry(args.path), args.format))
    return 0


def _cmd_registry_diff(args: argparse.Namespace) -> int:
    """Exit 0 when every change is compatible, 1 when any is breaking, 2 when a registry
    cannot be loaded (so CI can tell a breaking change from a broken file)."""
    import json

    from ingest.registry_diff import diff

    try:
        old, new = load_registry(args.old), load_registry(args.new)
    except RegistryError as exc:
        print(f"logship: {exc}", file=sys.stderr)
        return 2
    changes = diff(old, new)
    breaking = sum(c.breaking for c in changes)
    if args.json:
        rows = [{"breaking": c.breaking, "change": c.what} for c in changes]
        print(json.dumps(rows, indent=2))
    else:
        for c in changes:
            print(c.line())
    print(f"{len(changes)} changes: {breaking} breaking, {len(changes) - breaking} compatible",
          file=sys.stderr)  # fmt: skip
    return 1 if breaking else 0


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

    load = sub.add_parser("load", help="run the loader (lake → warehouse)")
    load.add_argument("--once", action="store_true", help="one cycle, exit 0 if nothing failed")
    load.set_defaults(func=_cmd_load)

    dev = sub.add_parser("dev", help="ingest + loader in one process (local lake, DuckDB)")
    dev.set_defaults(func=_cmd_dev)

    ses = sub.add_parser("session", help="the delivery session timeline from the warehouse")
    ses.add_argument("delivery_id")
    ses.add_argument("--json", action="store_true", help="a JSON array of events in order")
    ses.set_defaults(func=_cmd_session)

    sup = sub.add_parser("supply-hours", help="usable supply hours per robot, downtime by reason")
    sup.add_argument("--date", help="YYYY-MM-DD (in LOGSHIP_TIMEZONE)")
    sup.add_argument("--robot")
    sup.add_argument("--json", action="store_true")
    sup.set_defaults(func=_cmd_supply)

    fun = sub.add_parser("funnel", help="delivery funnel: stage times, daily p50/p90")
    fun.add_argument("--date", help="YYYY-MM-DD: deliveries created that day")
    fun.add_argument("--json", action="store_true")
    fun.set_defaults(func=_cmd_funnel)

    # `logship demo …` is dispatched before parsing (see main): its options are its own.
    sub.add_parser("demo", help="send a realistic day of a small fleet to a running sink")

    reg = sub.add_parser("registry", help="event registry tools")
    reg_sub = reg.add_subparsers(dest="registry_command", required=True)
    chk = reg_sub.add_parser("check", help="validate a registry file (default: the configured one)")
    chk.add_argument("path", nargs="?", type=Path, default=None)
    chk.set_defaults(func=_cmd_registry_check)
    exp = reg_sub.add_parser("export", help="the registry as JSON Schema, TypeScript or Python")
    exp.add_argument("--format", required=True, choices=("jsonschema", "typescript", "python"))
    exp.add_argument("path", nargs="?", type=Path, default=None)
    exp.set_defaults(func=_cmd_registry_export)
    dif = reg_sub.add_parser(
        "diff", help="changes between two registries; exit 1 if any is breaking"
    )
    dif.add_argument("old", type=Path)
    dif.add_argument("new", type=Path)
    dif.add_argument("--json", action="store_true", help="a JSON array of changes")
    dif.set_defaults(func=_cmd_registry_diff)

    cfg = sub.add_parser("config", help="print the configuration reference (markdown)")
    cfg.set_defaults(func=_cmd_config)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:
        from ingest.demo import main as demo_main

        return demo_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a reader gone early shows here, below, not at interpreter exit
        return code
    except BrokenPipeError:  # `logship session X | head -1`: the reader has what it wanted
        _drop_stdout()
        return 0
    except ConfigError as exc:
        print(f"logship: {exc}", file=sys.stderr)
        return 2
    except RegistryError as exc:
        print(f"logship: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        from loader.reports import ReportError

        if isinstance(exc, ReportError):
            print(f"logship: {exc}", file=sys.stderr)
            return 1
        raise
    except KeyboardInterrupt:
        return 130


def _drop_stdout() -> None:
    """Point stdout at /dev/null: what is still buffered for a closed pipe would otherwise
    fail again when Python flushes it at exit ("Exception ignored … BrokenPipeError")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
