"""`logship demo`: generate the day, send it to a running sink, print what it holds and where
to look next (the swap delivery's session, the day's supply hours)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime

from ingest.demo.day import DEFAULT_NOISE_RATIO, generate
from ingest.demo.figures import describe
from ingest.demo.fleet import DEFAULT_DELIVERIES, DEFAULT_ROBOTS, DEFAULT_SEED
from ingest.demo.sender import DemoError, send

DEFAULT_URL = "http://127.0.0.1:8080/v1/logs"
TOKEN_ENV = "LOGSHIP_DEMO_TOKEN"


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="logship demo",
        description="Send a simulated day of a delivery-robot fleet to a running logship sink.",
    )
    p.add_argument("--url", default=DEFAULT_URL, help=f"the sink's logs route ({DEFAULT_URL})")
    p.add_argument("--date", type=_parse_date, default=None,
                   help="the UTC day to simulate, YYYY-MM-DD (default: today UTC)")  # fmt: skip
    p.add_argument("--robots", type=int, default=DEFAULT_ROBOTS)
    p.add_argument("--deliveries", type=int, default=DEFAULT_DELIVERIES)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--noise-ratio", type=float, default=DEFAULT_NOISE_RATIO,
                   help="share of records that are ordinary log lines (default 0.9)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--token", default=None,
                   help=f"bearer token for LOGSHIP_AUTH_TOKENS (default: ${TOKEN_ENV})")  # fmt: skip
    return p


def main(argv: Sequence[str] | None = None, *, usable_states: Collection[str]) -> int:
    """`logship demo ARGV`; `usable_states` are the states the printed usable hours count."""
    p = build_parser()
    args = p.parse_args(argv)
    if args.robots < 1:
        p.error("--robots must be at least 1")
    if args.deliveries < 0:
        p.error("--deliveries must not be negative")
    if not 0 <= args.noise_ratio < 1:
        p.error("--noise-ratio must be in [0, 1)")
    if args.batch_size < 1:
        p.error("--batch-size must be at least 1")
    day = args.date or datetime.now(UTC).date()
    token = args.token or os.environ.get(TOKEN_ENV) or None

    records = generate(day, args.robots, args.deliveries, args.seed, args.noise_ratio)
    info = describe(records, usable_states)
    try:
        totals = asyncio.run(send(args.url, records, args.batch_size, token))
    except DemoError as exc:
        print(f"logship demo: {exc}", file=sys.stderr)
        print("logship demo: is `logship dev` (or `logship ingest`) running there?",
              file=sys.stderr)  # fmt: skip
        return 1
    print(
        f"logship demo: {day}, {info['robots']} robots, {info['deliveries']} deliveries "
        f"({info['completed']} completed, {info['failed']} failed, {info['cancelled']} "
        f"cancelled): sent {len(records)} records ({info['events']} events, {info['noise']} "
        f"noise) in {totals['batches']} batches -> accepted {totals['accepted']}, "
        f"discarded {totals['discarded']}, rejected {totals['rejected']}"
    )
    downtime = ", ".join(f"{k} {v:.1f} h" for k, v in info["downtime_hours"].items())
    print(f"fleet: {info['usable_hours']:.1f} usable robot-hours; downtime: {downtime or 'none'}")
    for delivery_id, robots in info["swaps"].items():
        print(f"robot swap on {delivery_id} ({' -> '.join(robots)}): "
              f"logship session {delivery_id}")  # fmt: skip
    print(f"supply hours: logship supply-hours --date {day}")
    if totals["rejected"]:
        print(f"logship demo: {totals['rejected']} events were rejected (a different registry?); "
              "see the lake's rejected/ objects", file=sys.stderr)  # fmt: skip
        return 1
    return 0
