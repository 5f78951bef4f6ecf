"""`logship session`, `logship supply-hours`, `logship funnel`: read LOGSHIP_WAREHOUSE_URL and
print a readable table, or JSON with `--json`. An unknown delivery id is a message and exit
code 1, never a traceback.

Every value in the warehouse came from a sender, so the tables print it through
:func:`terminal_safe`: an event name or a reason holding `ESC ]0;…BEL` or `ESC [2J` shows as
text and never drives the terminal. `--json` is exact JSON and ASCII (`json.dumps` escapes
every control and non-ASCII character as `\\uXXXX`), so it never carries them raw either."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

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
        schema=settings.warehouse_schema,
        entities=load_registry(settings.registry_path).entities,
        dedupe_window_s=settings.dedupe_window_s,
        iam_role=settings.redshift_iam_role,
        statement_timeout_s=settings.statement_timeout_s,
        duckdb_memory_limit=settings.duckdb_memory_limit,
        analytics=settings.analytics(),
    )


class ReportError(Exception):
    """The warehouse could not answer (unreachable, nothing loaded yet); a one-line message."""


def _rows(settings: LoaderSettings, statement: str, params: list[Any]) -> list[tuple[Any, ...]]:
    url = settings.warehouse_url.get_secret_value()
    register_secrets(*secrets_from_env({"LOGSHIP_WAREHOUSE_URL": url}))
    wh = _warehouse(settings)
    try:
        return wh.query(statement, params)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        first = terminal_safe(redact(first))  # a driver's message may quote values or the DSN
        raise ReportError(f"cannot query the warehouse ({type(wh).__name__}): {first}") from None
    finally:
        wh.close()


def session(
    settings: LoaderSettings, delivery_id: str, as_json: bool, out: TextIO = sys.stdout
) -> int:
    d = _warehouse(settings).dialect
    stmt = analytics.session_query(d, settings.warehouse_schema, settings.analytics())
    rows = _rows(settings, stmt, [delivery_id])
    if not rows:
        print(f"logship: no events for delivery '{terminal_safe(delivery_id)}' in the warehouse",
              file=sys.stderr)  # fmt: skip
        return 1
    events = []
    for eid, name, occurred, received, service, host, did, rid, props, gap in rows:
        events.append(
            {"event_id": eid, "event_name": name, "occurred_at": _iso(occurred),
             "received_at": _iso(received), "service": service, "host": host,
             "delivery_id": did, "robot_id": rid,
             "properties": orjson.loads(props) if props else {},
             "gap_s": None if gap is None else round(float(gap), 6)}
        )  # fmt: skip
    if as_json:
        out.write(json.dumps(events, indent=2) + "\n")
        return 0
    first = rows[0][2]
    out.write(f"delivery {terminal_safe(delivery_id)}: {len(events)} events, "
              f"{_iso(first)} → {_iso(rows[-1][2])}\n")  # fmt: skip
    out.write(
        f"{'time (UTC)':<27} {'+offset':>9} {'gap':>8}  {'service':<12} {'robot':<10} event\n"
    )
    for e, row in zip(events, rows, strict=True):
        offset = (row[2] - first).total_seconds()
        gap = "" if e["gap_s"] is None else f"{e['gap_s']:.0f}s"
        keys = " ".join(f"{k}={terminal_safe(e['properties'][k])}" for k in _KEY_PROPS
                        if e["properties"].get(k))  # fmt: skip
        service, robot = terminal_safe(e["service"] or "-"), terminal_safe(e["robot_id"] or "-")
        out.write(f"{e['occurred_at']:<27} {offset:>8.0f}s {gap:>8}  {service:<12} "
                  f"{robot:<10} {terminal_safe(e['event_name'])} {keys}\n")  # fmt: skip
    return 0


def supply_hours(settings: LoaderSettings, day: str | None, robot: str | None, as_json: bool,
                 out: TextIO = sys.stdout) -> int:  # fmt: skip
    d = _warehouse(settings).dialect
    params: list[Any] = []
    if day:
        params.append(analytics.parse_day(day))
    if robot:
        params.append(robot)
    stmt = analytics.supply_query(d, settings.warehouse_schema, bool(day), bool(robot))
    items = analytics.shape_supply(_rows(settings, stmt, params))
    if as_json:
        out.write(json.dumps(items, indent=2) + "\n")
        return 0
    if not items:
        out.write("no robot.state_changed data for that selection\n")
        return 0
    out.write(f"{'robot':<10} {'date':<10} {'usable h':>9} {'down h':>8}  downtime by reason\n")
    totals: dict[str, float] = {}
    for it in items:
        down = sum(it["downtime_hours"].values())
        reasons = ", ".join(f"{terminal_safe(k)} {v:.2f}" for k, v in
                            sorted(it["downtime_hours"].items(), key=lambda kv: -kv[1]))  # fmt: skip
        robot, day = terminal_safe(it["robot_id"]), terminal_safe(it["date"])
        out.write(f"{robot:<10} {day:<10} {it['usable_hours']:>9.2f} {down:>8.2f}  {reasons}\n")
        for k, v in it["downtime_hours"].items():
            totals[k] = totals.get(k, 0.0) + v
    all_down = sum(totals.values())
    if all_down:
        top, hours = max(totals.items(), key=lambda kv: kv[1])
        out.write(f"{hours / all_down:.0%} of downtime was due to {terminal_safe(top)}\n")
    return 0


def funnel(
    settings: LoaderSettings, day: str | None, as_json: bool, out: TextIO = sys.stdout
) -> int:
    d = _warehouse(settings).dialect
    params = [analytics.parse_day(day)] if day else []
    result = analytics.shape_funnel(
        _rows(settings, analytics.funnel_query(d, settings.warehouse_schema, bool(day)), params)
    )
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


def _iso(v: Any) -> str | None:
    """Warehouse timestamps as RFC 3339 UTC (naive values are UTC)."""
    if v is None:
        return None
    if isinstance(v, datetime):
        if v.utcoffset() is not None:
            v = v.astimezone(UTC).replace(tzinfo=None)
        return v.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return str(v)
