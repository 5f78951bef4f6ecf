"""The delivery session: every event carrying the delivery id, plus the events without a
delivery id of the robots that served it inside the delivery's window (its first to its last
event, widened by `session_margin_s`) — what `logship session` prints and the session page
shows.

Two steps, each bounded whatever the history: the window, then the events inside it
(constant `occurred_at` bounds, which Redshift's sort key and DuckDB's row-group statistics
prune by). The window comes from `delivery_spans` (:func:`loader.warehouse.sql.create_spans`,
kept by the loader in each load transaction): one probe by the id's bucket (the table's sort
order: Redshift's zone maps, DuckDB's row-group min/max) gives bounds that hold all of the
delivery's events, and `MIN`/`MAX(occurred_at)` of its own events inside those bounds gives
the exact window — a read as long as the delivery's span, short for any real delivery. An
unknown id is one probe. For BI tools the same statement exists as one query taking the
delivery id only (:func:`session_bi_sql`).

Each event is annotated with its timeline lane and whether it is an error
(:mod:`loader.analytics.families`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from loader.analytics.base import Reader, iso, plausible_id, seconds, table, utc
from loader.analytics.families import OUTCOMES, error_sql, is_error, lane
from loader.analytics.supply import state_intervals
from loader.warehouse.sql import EVENTS, SPANS, SPANS_BUCKET_SQL, Dialect, literal, spans_bucket

#: A gap between consecutive events of a session longer than this is marked as long.
LONG_GAP_S = 300.0

#: The columns of a session row, in `logship session --json` order (then `gap_s`).
SESSION_COLUMNS = ("event_id", "event_name", "occurred_at", "received_at", "service", "host",
                   "delivery_id", "robot_id", "properties")  # fmt: skip


def _margin(margin_s: int) -> str:
    return f"INTERVAL '{int(margin_s)} seconds'"


def _session_where(schema: str, *, lo: str, hi: str, did: str) -> str:
    """Which events of `events e` are the session's: the window, then the delivery's own
    events and its robots' events without a delivery id."""
    ev = table(schema, EVENTS)
    # Robots of the delivery: from its own events, which all lie inside the window.
    robots = (
        f"SELECT o.robot_id FROM {ev} o WHERE o.delivery_id = {did} "
        f"AND o.robot_id IS NOT NULL AND o.occurred_at >= {lo} AND o.occurred_at <= {hi}"
    )
    return f"""e.occurred_at >= {lo} AND e.occurred_at <= {hi}
  AND (e.delivery_id = {did}
       OR (e.delivery_id IS NULL AND e.robot_id IN ({robots})))"""


def session_select(
    d: Dialect, schema: str, *, lo: str, hi: str, did: str, limit: int | None = None
) -> str:
    """The session's events in order, with `gap_s` to the previous one: SQL whose window
    bounds are the expressions `lo`/`hi` (placeholders, or scalar subqueries in the BI form)
    and whose delivery id is `did`; the first `limit` only, when given. Parameters, for
    placeholders: lo, hi, did, did, lo, hi."""
    cols = ", ".join(f"e.{c}" for c in SESSION_COLUMNS[:-1])
    return f"""SELECT {cols}, {d.json_out("e.properties")} AS properties,
       EXTRACT(EPOCH FROM e.occurred_at) - EXTRACT(EPOCH FROM LAG(e.occurred_at) OVER
         (ORDER BY e.occurred_at, e.received_at, e.event_id)) AS gap_s
FROM {table(schema, EVENTS)} e
WHERE {_session_where(schema, lo=lo, hi=hi, did=did)}
ORDER BY e.occurred_at, e.received_at, e.event_id""" + (
        f"\nLIMIT {int(limit)}" if limit is not None else ""
    )


def window_sql(d: Dialect, schema: str) -> str:
    """The delivery's own first and last event time inside its recorded bounds. Parameters:
    the id, the lower and the upper bound."""
    p = d.param
    return (
        f"SELECT MIN(occurred_at), MAX(occurred_at) FROM {table(schema, EVENTS)} "
        f"WHERE delivery_id = {p} AND occurred_at >= {p} AND occurred_at <= {p}"
    )


def bounds_sql(d: Dialect, schema: str, bucket: str | None = None) -> str:
    """The delivery's recorded bounds, one row (NULLs for an unknown id). Parameters: its
    bucket (or the expression `bucket`, computed by the warehouse), then its id."""
    return (
        f"SELECT MIN(first_at) AS first_at, MAX(last_at) AS last_at FROM {table(schema, SPANS)} "
        f"WHERE bucket = {bucket or d.param} AND delivery_id = {d.param}"
    )


def session_bi_sql(d: Dialect, schema: str, margin_s: int) -> str:
    """The session as ONE statement for BI tools (Grafana, Sigma, Looker): the same columns
    and order as `logship session --json`, every use of the delivery id a `d.param`
    placeholder (a tool substitutes its `delivery_id` variable there, quoted). Its bounds and
    window come from CTEs read through uncorrelated scalar subqueries (which Redshift plans
    before the scan), so only the delivery's bounds and then its window are read."""
    m = _margin(margin_s)
    ev, k = table(schema, EVENTS), d.param
    return (
        f"WITH b AS ({bounds_sql(d, schema, SPANS_BUCKET_SQL.format(column=k))}),\n"
        f"win AS (SELECT MIN(occurred_at) - {m} AS lo, MAX(occurred_at) + {m} AS hi FROM {ev} "
        f"WHERE delivery_id = {k} AND occurred_at >= (SELECT first_at FROM b) "
        "AND occurred_at <= (SELECT last_at FROM b))\n"
        + session_select(d, schema, lo="(SELECT lo FROM win)", hi="(SELECT hi FROM win)", did=k)
    )


def session_bi_params(delivery_id: str) -> list[str]:
    """The parameters of :func:`session_bi_sql`, in order."""
    return [delivery_id] * 5


Span = tuple[datetime, datetime]


def delivery_span(r: Reader, delivery_id: str) -> Span | None:
    """The delivery's first and last event time, or None for an unknown delivery: its
    recorded bounds, then its own events inside them (see the module's docstring)."""
    if not plausible_id(delivery_id):
        return None
    ((lo, hi),) = r.query(bounds_sql(r.dialect, r.schema), [spans_bucket(delivery_id), delivery_id])
    if lo is None:
        return None
    ((first, last),) = r.query(window_sql(r.dialect, r.schema), [delivery_id, lo, hi])
    return None if first is None else (utc(first), utc(last))


def _window(r: Reader, delivery_id: str) -> Span | None:
    span = delivery_span(r, delivery_id)
    if span is None:
        return None
    margin = timedelta(seconds=r.cfg.session_margin_s)
    # Clamped to the calendar: a lake may hold times at its very edges (the loader takes them).
    lo = span[0] - margin if span[0] - _FIRST > margin else _FIRST
    hi = span[1] + margin if _LAST - span[1] > margin else _LAST
    return lo, hi


#: The first and last instants a window may reach.
_FIRST = datetime(1, 1, 1, tzinfo=UTC)
_LAST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


def session(r: Reader, delivery_id: str, limit: int | None = None) -> list[dict[str, Any]] | None:
    """Exactly what `logship session ID --json` prints (its first `limit` events, when given:
    the statement stops there); None for an unknown delivery."""
    win = _window(r, delivery_id)
    if win is None:
        return None
    return _session_events(r, delivery_id, *win, limit)


def _session_events(
    r: Reader, delivery_id: str, lo: datetime, hi: datetime, limit: int | None = None
) -> list[dict[str, Any]]:
    p = r.dialect.param
    stmt = session_select(r.dialect, r.schema, lo=p, hi=p, did=p, limit=limit)
    rows = r.query(stmt, [lo, hi, delivery_id, delivery_id, lo, hi])
    return [
        {"event_id": eid, "event_name": name, "occurred_at": iso(occurred),
         "received_at": iso(received), "service": service, "host": host,
         "delivery_id": did, "robot_id": rid,
         "properties": orjson.loads(props) if props else {},
         "gap_s": None if gap is None else round(float(gap), 6)}
        for eid, name, occurred, received, service, host, did, rid, props, gap in rows
    ]  # fmt: skip


def delivery(r: Reader, delivery_id: str, max_events: int | None = None) -> dict[str, Any] | None:
    """The session page: a summary, the session's events (exactly :func:`session`; its first
    `max_events` when given), one annotation per event (same order) and the state strip of
    its robots over the window. The summary is of the whole session either way: when there
    are more events than `max_events`, it is computed by the warehouse
    (:func:`summarize_in_warehouse`), and `event_count` says how many there are."""
    win = _window(r, delivery_id)
    if win is None:
        return None
    lo, hi = win
    limit = None if max_events is None else max_events + 1
    events = _session_events(r, delivery_id, lo, hi, limit)
    if max_events is not None and len(events) > max_events:
        events = events[:max_events]
        summary = summarize_in_warehouse(r, delivery_id, lo, hi)
    else:
        summary = summarize(delivery_id, events)
    summary["window_from"], summary["window_to"] = iso(lo), iso(hi)
    annotations = annotate(events)
    states = state_intervals(r, lo, hi, summary["robots"]) if summary["robots"] else []
    return {"summary": summary, "events": events, "annotations": annotations, "states": states}


def annotate(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One annotation per session event, in order: its offset from the first event, its
    timeline lane, whether it is an error, whether a long gap precedes it."""
    first = utc(events[0]["occurred_at"]) if events else None
    return [
        {"event_id": e["event_id"], "offset_s": seconds(first, utc(e["occurred_at"])),
         "lane": lane(e), "error": is_error(e),
         "long_gap": e["gap_s"] is not None and e["gap_s"] > LONG_GAP_S}
        for e in events
    ]  # fmt: skip


def summarize(delivery_id: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """Outcome, merchant, robots (in the order they served it), start, end and counts, from
    the session's events."""
    own = [e for e in events if e["delivery_id"] == delivery_id]
    outcome, ended = "open", None
    for e in own:  # in time order: the latest terminal event wins
        if e["event_name"] in OUTCOMES:
            outcome, ended = OUTCOMES[e["event_name"]], e["occurred_at"]
    robots: list[str] = []
    for e in own:
        if e["robot_id"] is not None and e["robot_id"] not in robots:
            robots.append(e["robot_id"])
    merchant = _merchant(e["properties"] for e in own)
    started = own[0]["occurred_at"] if own else None
    return _summary(delivery_id, outcome, merchant, robots, started, ended or
                    (own[-1]["occurred_at"] if own else None), len(events),
                    sum(1 for e in events if is_error(e)))  # fmt: skip


def _merchant(properties: Iterable[dict[str, Any]]) -> str | None:
    """The first string `merchant_id` among the own events' properties, in time order."""
    return next((p["merchant_id"] for p in properties
                 if isinstance(p.get("merchant_id"), str)), None)  # fmt: skip


def _summary(did: str, outcome: str, merchant: str | None, robots: list[str],
             started: str | None, ended: str | None, n: int, errors: int) -> dict[str, Any]:  # fmt: skip
    return {
        "delivery_id": did,
        "outcome": outcome,
        "merchant_id": merchant,
        "robots": robots,
        "swapped": len(robots) > 1,
        "started_at": started,
        "ended_at": ended,
        "duration_s": seconds(utc(started), utc(ended)) if started and ended else None,
        "event_count": n,
        "error_count": errors,
    }


#: How many robots, and events carrying a `merchant_id`, the warehouse's summary reads.
SUMMARY_MAX_ROBOTS = 100
SUMMARY_MAX_MERCHANTS = 20


def summarize_in_warehouse(
    r: Reader, delivery_id: str, lo: datetime, hi: datetime
) -> dict[str, Any]:
    """:func:`summarize` of the session in the window [lo, hi], computed by the warehouse —
    for a session with more events than are fetched. The same rules, in a few bounded
    statements: counts over the session, then over the delivery's own events its latest
    terminal event, its first and last event, its robots in the order they served it (the
    first :data:`SUMMARY_MAX_ROBOTS`) and its merchant (among the first
    :data:`SUMMARY_MAX_MERCHANTS` events carrying one)."""
    d, ev, p = r.dialect, r.events, r.dialect.param
    where = _session_where(r.schema, lo=p, hi=p, did=p)
    ((n, errors),) = r.query(
        f"SELECT COUNT(*), SUM(CASE WHEN {error_sql('e.event_name')} THEN 1 ELSE 0 END) "
        f"FROM {ev} e WHERE {where}",
        [lo, hi, delivery_id, delivery_id, lo, hi],
    )
    own = f"FROM {ev} WHERE delivery_id = {p} AND occurred_at >= {p} AND occurred_at <= {p}"
    args = [delivery_id, lo, hi]
    order = "occurred_at, received_at, event_id"
    ((first, last),) = r.query(f"SELECT MIN(occurred_at), MAX(occurred_at) {own}", args)
    names = ", ".join(literal(x) for x in OUTCOMES)
    terminal = r.query(
        f"SELECT event_name, occurred_at {own} AND event_name IN ({names}) "
        "ORDER BY occurred_at DESC, received_at DESC, event_id DESC LIMIT 1",
        args,
    )
    robots = r.query(
        f"SELECT robot_id FROM (SELECT robot_id, ROW_NUMBER() OVER (ORDER BY {order}) AS rn "
        f"{own} AND robot_id IS NOT NULL) x GROUP BY robot_id ORDER BY MIN(rn) "
        f"LIMIT {SUMMARY_MAX_ROBOTS}",
        args,
    )
    merchants = r.query(
        f"SELECT {d.json_out('properties')} {own} "
        f"AND {d.json_text('properties', 'merchant_id')} IS NOT NULL "
        f"ORDER BY {order} LIMIT {SUMMARY_MAX_MERCHANTS}",
        args,
    )
    outcome, ended = (OUTCOMES[terminal[0][0]], iso(terminal[0][1])) if terminal else ("open", None)
    return _summary(delivery_id, outcome, _merchant(orjson.loads(m) for (m,) in merchants),
                    [rid for (rid,) in robots], iso(first) if first else None,
                    ended or (iso(last) if last else None), int(n or 0), int(errors or 0))  # fmt: skip
