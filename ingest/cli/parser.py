"""The whole `logship` argument tree, and which function runs each command.

Only arguments live here, with light imports: a command's implementation is named by
``"module:function"`` and imported by :func:`ingest.cli.main.main` when that command runs. So
`logship ingest` (and each of its worker processes) never loads the warehouse drivers, and
`logship --help` answers without importing either service.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ingest.registry.export import FORMATS

#: Subcommands whose options are their own: the rest of the command line goes to them unparsed.
PASSTHROUGH = {"demo": "ingest.cli.demo:run"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="logship", description="The logship command line.")
    sub = p.add_subparsers(dest="command", required=True)

    ing = _command(sub, "ingest", "ingest.cli.sink:run", help="run the HTTP sink")
    ing.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)

    load = _command(sub, "load", "ingest.cli.load:run", help="run the loader (lake → warehouse)")
    load.add_argument("--once", action="store_true", help="one cycle, exit 0 if nothing failed")

    _command(sub, "dev", "ingest.cli.dev:run",
             help="ingest, loader and web UI in one process (local, DuckDB)")  # fmt: skip

    ses = _command(sub, "session", "ingest.cli.reports:session",
                   help="the delivery session timeline from the warehouse")  # fmt: skip
    ses.add_argument("delivery_id")
    ses.add_argument("--json", action="store_true", help="a JSON array of events in order")

    sup = _command(sub, "supply-hours", "ingest.cli.reports:supply_hours",
                   help="usable supply hours per robot, downtime by reason")  # fmt: skip
    sup.add_argument("--date", help="YYYY-MM-DD (in LOGSHIP_TIMEZONE)")
    sup.add_argument("--robot")
    sup.add_argument("--json", action="store_true")

    fun = _command(sub, "funnel", "ingest.cli.reports:funnel",
                   help="delivery funnel: stage times, daily p50/p90")  # fmt: skip
    fun.add_argument("--date", help="YYYY-MM-DD: deliveries created that day")
    fun.add_argument("--json", action="store_true")

    _command(sub, "ui", "ingest.cli.ui:run",
             help="the web UI: delivery sessions, robot days, supply hours")  # fmt: skip
    # `logship demo …` is dispatched before parsing (PASSTHROUGH): listed here for --help.
    sub.add_parser("demo", help="send a realistic day of a small fleet to a running sink")

    reg = sub.add_parser("registry", help="event registry tools")
    reg_sub = reg.add_subparsers(dest="registry_command", required=True)
    chk = _command(reg_sub, "check", "ingest.cli.registry:check",
                   help="validate a registry file (default: the configured one)")  # fmt: skip
    chk.add_argument("path", nargs="?", type=Path, default=None)
    exp = _command(reg_sub, "export", "ingest.cli.registry:export",
                   help="the registry as JSON Schema, TypeScript or Python")  # fmt: skip
    exp.add_argument("--format", required=True, choices=FORMATS)
    exp.add_argument("path", nargs="?", type=Path, default=None)
    dif = _command(reg_sub, "diff", "ingest.cli.registry:diff",
                   help="changes between two registries; exit 1 if any is breaking")  # fmt: skip
    dif.add_argument("old", type=Path)
    dif.add_argument("new", type=Path)
    dif.add_argument("--json", action="store_true", help="a JSON array of changes")

    _command(sub, "config", "ingest.cli.configdoc:run",
             help="print the configuration reference (markdown)")  # fmt: skip
    return p


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, target: str, **kw: str
) -> argparse.ArgumentParser:
    cmd = sub.add_parser(name, **kw)
    cmd.set_defaults(target=target)
    return cmd
