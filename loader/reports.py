"""`logship session`, `logship supply-hours`, `logship funnel`: read LOGSHIP_WAREHOUSE_URL and
print a readable table, or JSON with `--json`. An unknown delivery id is a message and exit
code 1, never a traceback.

Every value in the warehouse came from a sender, so the tables print it through
:func:`terminal_safe`: an event name or a reason holding `ESC ]0;…BEL` or `ESC [2J` shows as
text and never drives the terminal. `--json` is exact JSON and ASCII (`json.dumps` escapes
every control and non-ASCII character as `\\uXXXX`), so it never carries them raw either."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any, TextIO

from ingest.logs import redact, register_secrets, secrets_from_env
from ingest.registry import load_registry
from loader import analytics
from loader.config import LoaderSettings
from loader.warehouse import Warehouse, open_warehouse

#: Properties worth showing in the timeline, first found first.
_KEY_PROPS = ("to_state", "from_state", "reason", "error_code", "severity", "merchant_id",
              "pilot_id", "new_robot_id", "step")  # fmt: skip


#: What a terminal acts on instead of showing: C0 controls (tab and newline too: a value must
#: not break the table's lines), DEL, C1 controls (8-bit CSI/OSC), line and paragraph
#: separators, and the bidirectional marks, embeddings, overrides and isolates that reorder
#: what is shown after them.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def terminal_safe(value: object) -> str:
    """`value` as text with every character a terminal would act on written as an escape
    (`\\x1b`, `\\r`, `\\u202e`), so it reads as what it is."""
    return _UNSAFE.sub(_escape, str(value))


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    if c in _NAMED:
        return _NAMED[c]
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def _warehouse(settings: LoaderSettings) -> Warehouse:
    return open_warehouse(
        settings.warehouse_url.get_secret_value(),
        **settings.warehouse_options(),
        entities=load_registry(settings.registry_path).entities,
        views=None,  # the reports only read: the loader creates the views
    )


class ReportError(Exception):
    """The warehouse could not answer (unreachable, nothing loaded yet), or the command's
    arguments were not usable; a one-line message."""


@contextlib.contextmanager
def _reading(settings: LoaderSettings) -> Iterator[analytics.Reader]:
    """A :class:`~loader.analytics.Reader` over the configured warehouse, closed after. A
    failing query becomes a one-line ReportError (the DSN redacted), an argument the analyses
    refuse (ValueError) one saying why."""
    url = settings.warehouse_url.get_secret_value()
    register_secrets(*secrets_from_env({"LOGSHIP_WAREHOUSE_URL": url}))
    wh = _warehouse(settings)

    def query(statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            return wh.query(statement, params)
        except Exception as exc:
            text = str(exc).strip()
            first = text.splitlines()[0][:300] if text else type(exc).__name__
            first = terminal_safe(redact(first))  # a driver's message may quote values or the DSN
            raise ReportError(
                f"cannot query the warehouse ({type(wh).__name__}): {first}"
            ) from None

    try:
        yield analytics.Reader(query, wh.dialect, wh.schema, settings.analytics())
    except ValueError as exc:
        raise ReportError(terminal_safe(str(exc))) from None
    finally:
        wh.close()


def _day(text: str) -> date:
    try:
        return analytics.parse_day(text)
    except ValueError as exc:
        raise ReportError(terminal_safe(str(exc))) from None


def session(
    settings: LoaderSettings, delivery_id: str, as_json: bool, out: TextIO = sys.stdout
) -> int:
    with _reading(settings) as r:
        events = analytics.session(r, delivery_id)
    if not events:
        print(f"logship: no events for delivery '{terminal_safe(delivery_id)}' in the warehouse",
              file=sys.stderr)  # fmt: skip
        return 1
    if as_json:
        out.write(json.dumps(events, indent=2) + "\n")
        return 0
    first = _time(events[0]["occurred_at"])
    out.write(f"delivery {terminal_safe(delivery_id)}: {len(events)} events, "
              f"{events[0]['occurred_at']} → {events[-1]['occurred_at']}\n")  # fmt: skip
    out.write(
        f"{'time (UTC)':<27} {'+offset':>9} {'gap':>8}  {'service':<12} {'robot':<10} event\n"
    )
    for e in events:
        offset = (_time(e["occurred_at"]) - first).total_seconds()
        gap = "" if e["gap_s"] is None else f"{e['gap_s']:.0f}s"
        keys = " ".join(f"{k}={terminal_safe(e['properties'][k])}" for k in _KEY_PROPS
                        if e["properties"].get(k))  # fmt: skip
        service, robot = terminal_safe(e["service"] or "-"), terminal_safe(e["robot_id"] or "-")
        out.write(f"{e['occurred_at']:<27} {offset:>8.0f}s {gap:>8}  {service:<12} "
                  f"{robot:<10} {terminal_safe(e['event_name'])} {keys}\n")  # fmt: skip
    return 0


def supply_hours(settings: LoaderSettings, day: str | None, robot: str | None, as_json: bool,
                 out: TextIO = sys.stdout) -> int:  # fmt: skip
    """One day: the bounded analysis (the same the web UI shows). No --date: every day in
    the warehouse, through the `supply_hours_daily` view."""
    when = _day(day) if day else None
    with _reading(settings) as r:
        if when is not None:
            items = analytics.supply_hours(r, when, when, robot)
        else:
            stmt = analytics.supply_view_sql(r.dialect, r.schema, robot is not None)
            items = analytics.shape_supply(r.query(stmt, [robot] if robot is not None else []))
    if as_json:
        out.write(json.dumps(items, indent=2) + "\n")
        return 0
    if not items:
        out.write("no robot.state_changed data for that selection\n")
        return 0
    out.write(f"{'robot':<10} {'date':<10} {'usable h':>9} {'down h':>8}  downtime by reason\n")
    for it in items:
        down = sum(it["downtime_hours"].values())
        reasons = ", ".join(f"{terminal_safe(k)} {v:.2f}" for k, v in
                            sorted(it["downtime_hours"].items(), key=lambda kv: -kv[1]))  # fmt: skip
        rid, date_ = terminal_safe(it["robot_id"]), terminal_safe(it["date"])
        out.write(f"{rid:<10} {date_:<10} {it['usable_hours']:>9.2f} {down:>8.2f}  {reasons}\n")
    headline = analytics.supply_totals(items)["headline"]
    if headline:
        out.write(f"{headline['share']:.0%} of downtime was due to "
                  f"{terminal_safe(headline['reason'])}\n")  # fmt: skip
    return 0


def funnel(
    settings: LoaderSettings, day: str | None, as_json: bool, out: TextIO = sys.stdout
) -> int:
    """One day: the bounded analysis (the web UI's). No --date: every delivery, through the
    `delivery_funnel` view."""
    when = _day(day) if day else None
    with _reading(settings) as r:
        if when is not None:
            result = analytics.funnel(r, when, when)
        else:
            rows = r.query(analytics.funnel_view_sql(r.dialect, r.schema), [])
            result = analytics.shape_funnel(rows, r.cfg)
    if as_json:
        out.write(json.dumps(result, indent=2) + "\n")
        return 0
    for dd in result["days"]:
        out.write(f"{terminal_safe(dd['date'])}: {dd['deliveries']} deliveries\n")
        for k, v in dd.items():
            if isinstance(v, dict):
                out.write(f"  {terminal_safe(k):<40} n={v['count']:<5} p50 {v['p50']:>8.0f}s  "
                          f"p90 {v['p90']:>8.0f}s\n")  # fmt: skip
    return 0


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
