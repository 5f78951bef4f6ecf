"""The delivery session: every event carrying the delivery id, plus the events without a
delivery id of the robots that served it inside the delivery's window (its first to its last
event, widened by `session_margin_s`) — what `logship session` prints and the session page
shows.

Two steps, each bounded: the window (`MIN`/`MAX(occurred_at)` of the delivery's own events),
then the events inside that window (constant `occurred_at` bounds, which Redshift's sort key
and DuckDB's row-group statistics prune by). For BI tools the same statement exists as one
query taking the delivery id only (:func:`session_bi_sql`).

Finding the window is the one look-up by `delivery_id`, a column no sort order helps with
(ids are random), so it searches where a delivery is likely first: in the day the caller
names, if any (`?date=` on the UI's delivery routes), then in the last 2 days and the last 31 days of
the data (ending at its latest event, or a day ahead of now if a sender's clock ran ahead),
and only then in the whole history. A hit is then widened by `delivery_horizon_s` on both
sides until no more of the delivery's events lie that close outside it, so a delivery that
straddles a range's edge still gets its complete window. Cost: a recent delivery (or one
named with its day) costs a few milliseconds, whatever the history; an old or unknown id pays
one read of the whole `delivery_id` column (plus the misses, a few milliseconds). The found
window is the one the whole history gives unless the delivery has events more than
`delivery_horizon_s` away from all its others. (The BI form, one statement, always looks its
window up in the whole history.)

Each event is annotated with its timeline lane and whether it is an error
(:mod:`loader.analytics.families`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from loader.analytics.base import (
    Reader,
    check_day,
    day_bounds,
    iso,
    plausible_id,
    seconds,
    table,
    utc,
)
from loader.analytics.families import OUTCOMES, is_error, lane
from loader.analytics.supply import state_intervals
from loader.warehouse.sql import EVENTS, Dialect

#: A gap between consecutive events of a session longer than this is marked as long.
LONG_GAP_S = 300.0

#: Where the window look-up searches before the whole history: the last N days of the data.
RECENT_DAYS = (2, 31)
#: How many times a found window is widened (a delivery spanning more than this many
#: horizons is read from the whole history instead).
MAX_WIDENINGS = 4

#: The columns of a session row, in `logship session --json` order (then `gap_s`).
SESSION_COLUMNS = ("event_id", "event_name", "occurred_at", "received_at", "service", "host",
                   "delivery_id", "robot_id", "properties")  # fmt: skip


def _margin(margin_s: int) -> str:
    return f"INTERVAL '{int(margin_s)} seconds'"


def session_select(d: Dialect, schema: str, *, lo: str, hi: str, did: str) -> str:
    """The session's events in order, with `gap_s` to the previous one: SQL whose window
    bounds are the expressions `lo`/`hi` (placeholders, or scalar subqueries in the BI form)
    and whose delivery id is `did`."""
    ev = table(schema, EVENTS)
    cols = ", ".join(f"e.{c}" for c in SESSION_COLUMNS[:-1])
    # Robots of the delivery: from its own events, which all lie inside the window.
    robots = (
        f"SELECT o.robot_id FROM {ev} o WHERE o.delivery_id = {did} "
        f"AND o.robot_id IS NOT NULL AND o.occurred_at >= {lo} AND o.occurred_at <= {hi}"
    )
    return f"""SELECT {cols}, {d.json_out("e.properties")} AS properties,
       EXTRACT(EPOCH FROM e.occurred_at) - EXTRACT(EPOCH FROM LAG(e.occurred_at) OVER
         (ORDER BY e.occurred_at, e.received_at, e.event_id)) AS gap_s
FROM {ev} e
WHERE e.occurred_at >= {lo} AND e.occurred_at <= {hi}
  AND (e.delivery_id = {did}
       OR (e.delivery_id IS NULL AND e.robot_id IN ({robots})))
ORDER BY e.occurred_at, e.received_at, e.event_id"""


def window_sql(d: Dialect, schema: str, lower: bool = False, upper: bool = False) -> str:
    """The delivery's own first and last event time. Parameters: the id, then the lower
    (`occurred_at >=`) and the upper (`<=`) bound when asked for."""
    p = d.param
    return (
        f"SELECT MIN(occurred_at), MAX(occurred_at) FROM {table(schema, EVENTS)} "
        f"WHERE delivery_id = {p}"
        + (f" AND occurred_at >= {p}" if lower else "")
        + (f" AND occurred_at <= {p}" if upper else "")
    )


def session_bi_sql(d: Dialect, schema: str, margin_s: int) -> str:
    """The session as ONE statement for BI tools (Grafana, Sigma, Looker): the same columns
    and order as `logship session --json`, every use of the delivery id a `d.param`
    placeholder (a tool substitutes its `delivery_id` variable there, quoted). Its window
    comes from a CTE, read through uncorrelated scalar subqueries (which Redshift plans
    before the scan), so beyond the id look-up only the delivery's window is read."""
    m = _margin(margin_s)
    return (
        f"WITH win AS (SELECT MIN(occurred_at) - {m} AS lo, MAX(occurred_at) + {m} AS hi "
        f"FROM {table(schema, EVENTS)} WHERE delivery_id = {d.param})\n"
        + session_select(
            d, schema, lo="(SELECT lo FROM win)", hi="(SELECT hi FROM win)", did=d.param
        )
    )


def session_bi_params(delivery_id: str) -> list[str]:
    """The parameters of :func:`session_bi_sql`, in order."""
    return [delivery_id] * 3


Span = tuple[datetime, datetime]


def _span(r: Reader, delivery_id: str, lo: datetime | None, hi: datetime | None) -> Span | None:
    """First and last event time of the delivery in [lo, hi] (None: unbounded)."""
    bounds = [b for b in (lo, hi) if b is not None]
    stmt = window_sql(r.dialect, r.schema, lower=lo is not None, upper=hi is not None)
    ((first, last),) = r.query(stmt, [delivery_id, *bounds])
    return None if first is None else (utc(first), utc(last))


def _ranges(r: Reader, day: date | None) -> Iterator[tuple[datetime, datetime | None]]:
    """Where to look before the whole history, in order: the day named ±
    `delivery_horizon_s`, then the last days of the data (:data:`RECENT_DAYS`; no upper
    bound). The latest event is only asked for when the day does not hold the delivery."""
    if day is not None:
        check_day(day)
        lo, hi = day_bounds(r.cfg, day, day)
        h = timedelta(seconds=r.cfg.delivery_horizon_s)
        yield lo - h, hi + h
    # DuckDB answers this from its row groups' statistics; Redshift reads its sort key.
    ((latest,),) = r.query(f"SELECT MAX(occurred_at) FROM {r.events}", [])
    if latest is not None:
        end = min(utc(latest), datetime.now(UTC) + timedelta(days=1))  # not a sender's 2199
        for n in RECENT_DAYS:
            yield end - timedelta(days=n), None


def delivery_span(r: Reader, delivery_id: str, day: date | None = None) -> Span | None:
    """The delivery's first and last event time, or None for an unknown delivery: searched
    in `day` (a hint), then in the last days of the data, then in the whole history (see the
    module's docstring). A hit is widened by `delivery_horizon_s` until that finds no more."""
    if not plausible_id(delivery_id):
        return None
    h = timedelta(seconds=r.cfg.delivery_horizon_s)
    for lo, hi in _ranges(r, day):
        span = _span(r, delivery_id, lo, hi)
        widenings = 0
        while span is not None:
            # Once [lo, hi] reaches h beyond the span, every event that close has been seen.
            want_lo, want_hi = span[0] - h, span[1] + h
            if lo <= want_lo and (hi is None or want_hi <= hi):
                return span
            if widenings == MAX_WIDENINGS:
                break
            lo, hi, widenings = want_lo, want_hi, widenings + 1
            span = _span(r, delivery_id, lo, hi) or span
        if span is not None:
            break  # spread too wide: ask the whole history
    return _span(r, delivery_id, None, None)


def _window(r: Reader, delivery_id: str, day: date | None) -> Span | None:
    span = delivery_span(r, delivery_id, day)
    if span is None:
        return None
    margin = timedelta(seconds=r.cfg.session_margin_s)
    return span[0] - margin, span[1] + margin


def session(r: Reader, delivery_id: str, day: date | None = None) -> list[dict[str, Any]] | None:
    """Exactly what `logship session ID --json` prints; None for an unknown delivery. `day`:
    the day the delivery is thought to be on, searched first (a hint: any day gives the same
    result)."""
    win = _window(r, delivery_id, day)
    if win is None:
        return None
    return _session_events(r, delivery_id, *win)


def _session_events(
    r: Reader, delivery_id: str, lo: datetime, hi: datetime
) -> list[dict[str, Any]]:
    p = r.dialect.param
    stmt = session_select(r.dialect, r.schema, lo=p, hi=p, did=p)
    rows = r.query(stmt, [lo, hi, delivery_id, delivery_id, lo, hi])
    return [
        {"event_id": eid, "event_name": name, "occurred_at": iso(occurred),
         "received_at": iso(received), "service": service, "host": host,
         "delivery_id": did, "robot_id": rid,
         "properties": orjson.loads(props) if props else {},
         "gap_s": None if gap is None else round(float(gap), 6)}
        for eid, name, occurred, received, service, host, did, rid, props, gap in rows
    ]  # fmt: skip


def delivery(r: Reader, delivery_id: str, day: date | None = None) -> dict[str, Any] | None:
    """The session page: a summary, the session's events (exactly :func:`session`), one
    annotation per event (same order) and the state strip of its robots over the window.
    `day`: as for :func:`session`."""
    win = _window(r, delivery_id, day)
    if win is None:
        return None
    lo, hi = win
    events = _session_events(r, delivery_id, lo, hi)
    summary = summarize(delivery_id, events)
    summary["window_from"], summary["window_to"] = iso(lo), iso(hi)
    first = utc(events[0]["occurred_at"]) if events else lo
    annotations = [
        {"event_id": e["event_id"], "offset_s": seconds(first, utc(e["occurred_at"])),
         "lane": lane(e), "error": is_error(e),
         "long_gap": e["gap_s"] is not None and e["gap_s"] > LONG_GAP_S}
        for e in events
    ]  # fmt: skip
    states = state_intervals(r, lo, hi, summary["robots"]) if summary["robots"] else []
    return {"summary": summary, "events": events, "annotations": annotations, "states": states}


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
    merchant = next((e["properties"].get("merchant_id") for e in own
                     if isinstance(e["properties"].get("merchant_id"), str)), None)  # fmt: skip
    started = own[0]["occurred_at"] if own else None
    ended = ended or (own[-1]["occurred_at"] if own else None)
    return {
        "delivery_id": delivery_id,
        "outcome": outcome,
        "merchant_id": merchant,
        "robots": robots,
        "swapped": len(robots) > 1,
        "started_at": started,
        "ended_at": ended,
        "duration_s": seconds(utc(started), utc(ended)) if started and ended else None,
        "event_count": len(events),
        "error_count": sum(1 for e in events if is_error(e)),
    }
