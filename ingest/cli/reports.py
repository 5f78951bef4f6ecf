"""`logship session`, `logship supply-hours`, `logship funnel`: the analyses, read from the
configured warehouse and printed by :mod:`loader.reports`. A report that cannot be made (a bad
date, a warehouse that cannot answer) is exit 1 with its one-line reason."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ingest.config import load_settings
from loader import reports
from loader.config import LoaderSettings


def session(args: argparse.Namespace) -> int:
    return _reported(lambda s: reports.session(s, args.delivery_id, args.json))


def supply_hours(args: argparse.Namespace) -> int:
    return _reported(lambda s: reports.supply_hours(s, args.date, args.robot, args.json))


def funnel(args: argparse.Namespace) -> int:
    return _reported(lambda s: reports.funnel(s, args.date, args.json))


def _reported(report: Callable[[LoaderSettings], int]) -> int:
    try:
        return report(load_settings(LoaderSettings))
    except reports.ReportError as exc:
        print(f"logship: {exc}", file=sys.stderr)
        return 1
