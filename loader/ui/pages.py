"""The pages, server-rendered from the analyses' answers (the same dicts `/api/…` returns).

Each page is readable without JavaScript and carries its state in its URL (the day, the
window, the reason chosen), so the address bar is the permalink of what is on screen. Every
value passes through :func:`loader.ui.html.html`: ids, properties and reasons come from
senders. Times show in `LOGSHIP_TIMEZONE` with their offset.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from ingest.event import TEXT_MAX_CHARS
from loader.analytics import MAX_RANGE_DAYS
from loader.ui import assets, svg
from loader.ui.fmt import (
    KNOWN_STATES,
    clock,
    clock_offset,
    day_span,
    duration,
    hours,
    offset_s,
    parse_time,
    plural,
    stamp,
    state_class,
    zone_label,
)
from loader.ui.html import Safe, esc, html, join, query, seg
from loader.ui.inputs import Days, is_id, is_text
from loader.ui.problems import Problem

#: The navigation: (key, path, label).
NAV = (("deliveries", "/", "Deliveries"), ("supply", "/supply-hours", "Supply hours"),
       ("funnel", "/funnel", "Funnel"))  # fmt: skip
#: Most error lines in a delivery's "What happened" box (the table has them all).
SUMMARY_ERRORS = 6
#: Most long silences in it (the longest; the timeline shades them all).
SUMMARY_GAPS = 2
#: Most events a delivery's page shows (its table, timeline and summary); the downloads have
#: them all. The page's queries stop one row after it, so a delivery of a chatty robot over
#: weeks costs what 2,000 events cost.
MAX_EVENTS = 2000
#: Longest JSON of one event shown in its row (an event may be megabytes).
MAX_ROW_JSON_CHARS = 8000
#: Longest value of a key property in the table.
MAX_PROP_CHARS = 200
#: Lane titles shown on the timeline and in the event table.
LANE_TITLES = {"dispatch": "Dispatch", "robot": "Robot / fleet", "pilot": "Pilot",
               "server": "Server", "tracker": "Customer tracker", "other": "Other"}  # fmt: skip


@dataclass(frozen=True)
class Ctx:
    """What every page needs besides its data."""

    tz: tzinfo
    lane_titles: dict[str, str]
    lanes: Sequence[str]


# ------------------------------------------------------------------------------- the frame


def layout(ctx: Ctx, title: str, body: Safe, *, nav: str = "", search: str = "",
           header_search: bool = True, shown: Sequence[datetime] = ()) -> Safe:  # fmt: skip
    """The frame of every page; the footer names the zone with its offsets over `shown` (the
    first and last instant on the page; now when empty)."""
    links = join(
        html(
            '<a href="{href}"{cur}>{label}</a>',
            href=href,
            label=label,
            cur=Safe(' aria-current="page"') if key == nav else Safe(""),
        )
        for key, href, label in NAV
    )
    form = search_form(search, big=False) if header_search else Safe("")
    return html(
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        "<title>{title} · logship</title>"
        '<link rel="icon" href="{icon}" type="image/svg+xml">'
        '<link rel="stylesheet" href="{css}"><script src="{js}" defer></script></head>'
        '<body><a class="skip" href="#main">Skip to content</a>'
        '<header class="top"><a class="brand" href="/">logship</a>'
        '<nav aria-label="Pages">{links}</nav>{form}</header>'
        '<main id="main">{body}</main>'
        "<footer>Times in {zone}. Keyboard: <kbd>/</kbd> search, <kbd>j</kbd>/<kbd>k</kbd> "
        "next/previous event, <kbd>Enter</kbd> expand.</footer></body></html>\n",
        title=title, icon=assets.ICON.url, css=assets.CSS.url, js=assets.JS.url, links=links, form=form, body=body,
        zone=zone_label(ctx.tz, shown),
    )  # fmt: skip


def search_form(value: str = "", *, big: bool) -> Safe:
    """The Delivery ID field (`id="q"`: `/` focuses it); it also takes a robot id."""
    return html(
        '<form class="search{cls}" action="/search" method="get" role="search">'
        '<label for="q">Delivery ID</label>'
        '<input id="q" name="q" type="search" value="{value}" maxlength="{max}" required '
        'autocomplete="off" spellcheck="false" placeholder="delivery id or robot id"{focus}>'
        '<button type="submit">Open</button></form>',
        cls=" big" if big else "", value=value, max=TEXT_MAX_CHARS,
        focus=Safe(" autofocus data-focus") if big else Safe(""),
    )  # fmt: skip


def problem_page(ctx: Ctx, p: Problem) -> Safe:
    """A 4xx/5xx page: what happened, in words, and the search to go on from."""
    retry = (html("<p>This page reloads fine in a moment; the loader releases the warehouse "
                  "after each load cycle.</p>") if p.kind.code == "busy" else Safe(""))  # fmt: skip
    body = html(
        '<div class="problem" role="alert"><h1>{title}</h1><p>{detail}</p>{retry}</div>'
        "<h2>Search</h2>{form}",
        title=p.kind.title, detail=p.detail, retry=retry,
        form=search_form(p.search or "", big=True),
    )  # fmt: skip
    return layout(ctx, p.kind.title, body, header_search=False)


def _link_delivery(delivery_id: object) -> Safe:
    """A link to the delivery's page."""
    if is_id(delivery_id):
        return html('<a href="/deliveries/{s}">{id}</a>', s=seg(delivery_id), id=delivery_id)
    return html("<span>{id}</span>", id=delivery_id)  # not an id we open: shown, not linked


def _link_robot(robot_id: object, day: str | None = None) -> Safe:
    if is_id(robot_id):
        return html('<a href="/robots/{s}{q}">{id}</a>', s=seg(robot_id), q=query(date=day),
                    id=robot_id)  # fmt: skip
    return html("<span>{id}</span>", id=robot_id)


def _local_day(text: object, tz: tzinfo) -> str | None:
    """The day, in the page's zone, of an RFC 3339 time (a robot's day is a local day)."""
    t = parse_time(text)
    return t.astimezone(tz).date().isoformat() if t else None


def _badge(outcome: object) -> Safe:
    cls = outcome if outcome in ("completed", "failed", "cancelled", "open") else "open"
    return html('<span class="badge {cls}">{text}</span>', cls=cls, text=outcome or "open")


def _day_pager(path: str, day: date, **params: object) -> Safe:
    prev, nxt = day - timedelta(days=1), day + timedelta(days=1)
    return html(
        '<p class="pager"><a href="{p}{pq}" rel="prev">← {pd}</a>'
        '<strong>{d}</strong><a href="{p}{nq}" rel="next">{nd} →</a></p>',
        p=path, pq=query(date=prev.isoformat(), **params), pd=prev.isoformat(),
        d=day.isoformat(), nq=query(date=nxt.isoformat(), **params), nd=nxt.isoformat(),
    )  # fmt: skip


def _empty(text: str) -> Safe:
    return html('<p class="muted">{text}</p>', text=text)


# ---------------------------------------------------------------------------- GET /


def index(ctx: Ctx, day: date | None, window_min: int, rows: list[dict[str, Any]]) -> Safe:
    parts = [
        html("<h1>Find a delivery</h1>"),
        search_form(big=True),
        html('<p class="hint">Type a delivery id to see every event of it (dispatch, robot, '
             "pilot, server, tracker) in one view; a robot id opens that robot's day.</p>"),
    ]  # fmt: skip
    if day is None:
        parts.append(_empty("No deliveries in the warehouse yet."))
        return layout(ctx, "Deliveries", join(parts), nav="deliveries", header_search=False)
    parts.append(html(
        "<h2>Deliveries created on {day}</h2>"
        '<form class="inline" action="/" method="get">'
        '<label for="date">Day</label><input id="date" name="date" type="date" value="{day}">'
        '<label for="window_min">flag a robot error within</label>'
        '<input id="window_min" name="window_min" type="number" min="0" max="1440" step="1" '
        'value="{w}"><span>min of arrival at pickup or dropoff</span>'
        '<button type="submit">Show</button></form>{pager}',
        day=day.isoformat(), w=window_min,
        pager=_day_pager("/", day, window_min=window_min),
    ))  # fmt: skip
    parts.append(deliveries_table(ctx, rows, window_min))
    return layout(ctx, f"Deliveries of {day.isoformat()}", join(parts), nav="deliveries",
                  header_search=False, shown=day_span(day, day, ctx.tz))  # fmt: skip


def deliveries_table(ctx: Ctx, rows: list[dict[str, Any]], window_min: int) -> Safe:
    if not rows:
        return _empty("No delivery was created that day.")
    counts: dict[str, int] = {}
    for r in rows:
        counts[str(r.get("outcome"))] = counts.get(str(r.get("outcome")), 0) + 1
    flagged = sum(1 for r in rows if r.get("flagged"))
    tally = ", ".join(f"{counts[k]} {k}" for k in ("completed", "failed", "cancelled", "open")
                      if counts.get(k))  # fmt: skip
    head = html(
        '<p><strong>{n}</strong>: {tally}. <strong>{f} flagged</strong> '
        "(a robot error within {w} min of arriving at pickup or dropoff). Failed and flagged "
        "first.</p>",
        n=plural(len(rows), "delivery"), tally=tally, f=flagged, w=window_min,
    )  # fmt: skip
    body = []
    for r in rows:
        flags = join(
            (html("<div>{robot} {code} {rel} {stop} arrival</div>", robot=f.get("robot_id"),
                  code=f.get("error_code") or "robot.error", stop=f.get("stop"),
                  rel=_relative(parse_time(f.get("arrived_at")), parse_time(f.get("error_at")))))
            for f in r.get("flags") or []
        )  # fmt: skip
        robots = join((_link_robot(x, _local_day(r.get("started_at"), ctx.tz))
                       for x in r.get("robots") or []), ", ")  # fmt: skip
        body.append(html(
            '<tr class="{cls}"><td>{link}</td><td>{badge}</td><td>{flag}{flags}</td>'
            '<td class="time">{start}</td><td class="num">{dur}</td><td>{robots}</td>'
            '<td>{merchant}</td><td class="num">{n}</td></tr>',
            cls="flagged" if r.get("flagged") else "", link=_link_delivery(r.get("delivery_id")),
            badge=_badge(r.get("outcome")),
            flag=html('<span class="badge flag">flagged</span>') if r.get("flagged") else Safe(""),
            flags=flags, start=clock(parse_time(r.get("started_at")), ctx.tz),
            dur=duration(r.get("duration_s")), robots=robots, merchant=r.get("merchant_id") or "—",
            n=r.get("event_count"),
        ))  # fmt: skip
    return html(
        '{head}<div class="scroll"><table><thead><tr><th scope="col">Delivery</th>'
        '<th scope="col">Outcome</th><th scope="col">Flag</th><th scope="col">Started</th>'
        '<th scope="col" class="num">Duration</th><th scope="col">Robots</th>'
        '<th scope="col">Merchant</th><th scope="col" class="num">Events</th></tr></thead>'
        "<tbody>{body}</tbody></table></div>",
        head=head, body=join(body),
    )  # fmt: skip


def _relative(arrived: datetime | None, error: datetime | None) -> str:
    if arrived is None or error is None:
        return "near"
    s = (error - arrived).total_seconds()
    return f"{duration(abs(s))} {'after' if s >= 0 else 'before'}"


# ------------------------------------------------------------------- GET /deliveries/{id}


def delivery(ctx: Ctx, data: dict[str, Any]) -> Safe:
    """The session page. Given the first :data:`MAX_EVENTS` of more events (the summary
    counts them all), it shows those and says that the downloads have them all."""
    s = data["summary"]
    events: list[dict[str, Any]] = data["events"][:MAX_EVENTS]
    notes: list[dict[str, Any]] = data["annotations"][:MAX_EVENTS]
    more = int(s.get("event_count") or 0) > len(events)
    did = str(s.get("delivery_id"))
    started = parse_time(s.get("started_at"))
    day = started.astimezone(ctx.tz).date().isoformat() if started else None
    robots = list(s.get("robots") or [])
    robot_links = join((_link_robot(r, day) for r in robots), " → ")
    facts = html(
        '<dl class="facts"><div><dt>Outcome</dt><dd>{badge}</dd></div>'
        "<div><dt>Merchant</dt><dd>{merchant}</dd></div>"
        "<div><dt>Robot{plural}</dt><dd>{robots}{swap}</dd></div>"
        "<div><dt>Started</dt><dd>{start}</dd></div>"
        "<div><dt>Duration</dt><dd>{dur}</dd></div>"
        "<div><dt>Events</dt><dd>{n}</dd></div>"
        "<div><dt>Errors</dt><dd>{errors}</dd></div></dl>",
        badge=_badge(s.get("outcome")), merchant=s.get("merchant_id") or "—",
        plural="s" if len(robots) > 1 else "", robots=robot_links or "—",
        swap=Safe(" <span class=\"badge cancelled\">swap</span>") if s.get("swapped") else Safe(""),
        start=stamp(started, ctx.tz), dur=duration(s.get("duration_s")),
        n=f"{s.get('event_count'):,}", errors=f"{s.get('error_count'):,}",
    )  # fmt: skip
    cut = (html('<p class="note" role="note">This delivery has {all} events: the timeline and '
                "the table show its first {n}, to {last}. The facts are of all of them; the "
                "JSON and CSV downloads have them all.</p>", all=f"{s.get('event_count'):,}",
                n=f"{len(events):,}", last=stamp(parse_time(events[-1].get("occurred_at")), ctx.tz))
           if more and events else Safe(""))  # fmt: skip
    timeline = svg.session_timeline(events, notes, data.get("states") or [], ctx.lanes,
                                    ctx.lane_titles, robots, ctx.tz)  # fmt: skip
    legend = join([
        svg.legend([("sw-ev", "event"), ("sw-err", "error"), ("sw-gap", "long gap")], "Events"),
        _state_legend(data.get("states") or []),
    ])  # fmt: skip
    body = html(
        '<p class="muted"><a href="/{q}">Deliveries of {day}</a></p>'
        "<h1>Delivery {did}</h1>{cut}{facts}{what}"
        '<h2 id="timeline">Timeline</h2>{timeline}{legend}'
        '<h2 id="events">Events ({n})</h2>'
        '<p class="downloads">Download: <a href="/deliveries/{sid}/events.json" download>JSON</a>'
        '<a href="/deliveries/{sid}/events.csv" download>CSV</a>'
        '<a href="/api/deliveries/{sid}">API</a></p>{table}',
        q=query(date=day), day=day or "the latest day", did=did, cut=cut, facts=facts,
        what=what_happened(ctx, s, events, notes), timeline=timeline, legend=legend,
        n=f"first {len(events):,}" if more else len(events), sid=seg(did),
        table=event_table(ctx, events, notes),
    )  # fmt: skip
    times = [t for t in (parse_time(e.get("occurred_at")) for e in (events[:1] + events[-1:])) if t]
    return layout(ctx, f"Delivery {did}", body, nav="deliveries", search=did, shown=times)


def _state_legend(intervals: Sequence[dict[str, Any]]) -> Safe:
    states = sorted({str(x.get("state")) for x in intervals})
    items = [(state_class(st), st) for st in states if st in KNOWN_STATES]
    if any(st not in KNOWN_STATES for st in states):
        items.append(("st-other", "other"))
    return svg.legend(items, "Robot states") if items else Safe("")


def what_happened(
    ctx: Ctx, s: dict[str, Any], events: list[dict[str, Any]], notes: list[dict[str, Any]]
) -> Safe:
    """The few lines a PM reads first: the outcome and its reason, the swap, the errors, the
    long silences — each with its offset and a link to its row."""
    lines: list[Safe] = []
    outcome = s.get("outcome")
    end = next((e for e in reversed(events) if e.get("event_name") in
                ("delivery.failed", "delivery.cancelled", "delivery.dropoff_completed")), None)  # fmt: skip
    if end is not None and end.get("occurred_at") != s.get("ended_at"):
        end = None  # the terminal event that decided the outcome is after the events shown
    by_id = {str(e.get("event_id")): (e, n) for e, n in zip(events, notes, strict=False)}

    def at(e: dict[str, Any]) -> Safe:
        n = by_id.get(str(e.get("event_id")), (e, {}))[1]
        return html('<a href="#ev-{id}">{off}</a>', id=seg(e.get("event_id") or ""),
                    off=offset_s(n.get("offset_s")) or "row")  # fmt: skip

    if end is not None:
        props = end.get("properties") or {}
        reason = props.get("reason") or props.get("cancel_reason") or props.get("failure_reason")
        lines.append(html("<li><strong>{what}</strong>{why} at {at}.</li>",
                          what=str(outcome or "").capitalize() or "Ended",
                          why=html(": {r}", r=reason) if reason else Safe(""), at=at(end)))  # fmt: skip
    elif outcome and outcome != "open":  # it ended after the events shown
        lines.append(html("<li><strong>{what}</strong> at {t}, after the events shown here "
                          "(the downloads have every event).</li>",
                          what=str(outcome).capitalize(),
                          t=stamp(parse_time(s.get("ended_at")), ctx.tz)))  # fmt: skip
    else:
        lines.append(html("<li><strong>Open</strong>: no completion, failure or cancellation "
                          "in the warehouse yet.</li>"))  # fmt: skip
    robots = list(s.get("robots") or [])
    if s.get("swapped") and len(robots) > 1:
        first_of = {}
        for e in events:
            r = e.get("robot_id")
            if r in robots and r not in first_of and e.get("delivery_id"):
                first_of[r] = e
        later = [first_of[r] for r in robots[1:] if r in first_of]
        why = next((e for e in events if (e.get("properties") or {}).get("new_robot_id")), None)
        lines.append(html("<li><strong>Robot swap</strong>: {chain}{at}{why}.</li>",
                          chain=join(robots, " → "),
                          at=join([Safe(" at "), at(later[0])]) if later else Safe(""),
                          why=html(", after {name} at {at}{r}", name=why.get("event_name"),
                                   at=at(why), r=_reason(why)) if why else Safe("")))  # fmt: skip
    errors = [e for e, n in zip(events, notes, strict=False) if n.get("error") and e is not end]
    for e in errors[:SUMMARY_ERRORS]:
        props = e.get("properties") or {}
        what = props.get("error_code") or props.get("reason") or ""
        lines.append(html('<li class="err">{at} <strong>{name}</strong> {what}{robot}</li>',
                          at=at(e), name=e.get("event_name"), what=what,
                          robot=html(" on {r}", r=e["robot_id"]) if e.get("robot_id") else Safe("")))  # fmt: skip
    if len(errors) > SUMMARY_ERRORS:
        lines.append(html("<li>… and {n} more errors in the table.</li>",
                          n=len(errors) - SUMMARY_ERRORS))  # fmt: skip
    gaps = [e for e, n in zip(events, notes, strict=False) if n.get("long_gap") and e.get("gap_s")]
    for e in sorted(gaps, key=lambda e: -float(e["gap_s"]))[:SUMMARY_GAPS]:
        lines.append(html("<li>No events for <strong>{d}</strong> before {at} ({name}).</li>",
                          d=duration(e.get("gap_s")), at=at(e), name=e.get("event_name")))  # fmt: skip
    bad = outcome in ("failed", "cancelled") or bool(errors)
    return html('<section class="summary{cls}" aria-labelledby="what"><h2 id="what">What '
                "happened</h2><ul>{lines}</ul></section>", cls=" bad" if bad else "",
                lines=join(lines))  # fmt: skip


def _reason(e: dict[str, Any]) -> str:
    reason = (e.get("properties") or {}).get("reason")
    return f" ({reason})" if reason else ""


def event_table(ctx: Ctx, events: list[dict[str, Any]], notes: list[dict[str, Any]]) -> Safe:
    rows = []
    for i, (e, n) in enumerate(zip(events, notes, strict=False)):
        eid = str(e.get("event_id") or "")
        t = parse_time(e.get("occurred_at"))
        raw = e.get("properties")
        props: dict[str, Any] = raw if isinstance(raw, dict) else {}
        keys = join((html("<span>{k}=<strong>{v}</strong></span>", k=k, v=v)
                     for k, v in key_props(props)), " ")  # fmt: skip
        cls = " ".join(c for c in ("event", "error" if n.get("error") else "",
                                   "longgap" if n.get("long_gap") else "") if c)  # fmt: skip
        gap = e.get("gap_s")
        rows.append(html(
            '<tr id="ev-{eid}" class="{cls}" tabindex="0">'
            '<td class="time"><a href="#ev-{seid}" title="{full} — link to this event">'
            '<time datetime="{iso}">{clock}</time></a></td>'
            '<td class="num">{off}</td><td class="num">{gap}</td><td>{lane}<br><span '
            'class="muted">{service}</span></td><td>{robot}</td>'
            '<td><details><summary>{name}</summary><pre id="json-{i}">{json}</pre>'
            '<button type="button" class="copy" data-copy="json-{i}">Copy</button></details>'
            '</td><td class="props">{keys}</td></tr>',
            eid=eid, cls=cls, iso=e.get("occurred_at") or "", full=stamp(t, ctx.tz),
            clock=clock_offset(t, ctx.tz), off=offset_s(n.get("offset_s")),
            gap="" if gap is None else duration(gap),
            lane=ctx.lane_titles.get(str(n.get("lane")), n.get("lane")),
            service=e.get("service") or "—",
            robot=_link_robot(e["robot_id"], t.astimezone(ctx.tz).date().isoformat() if t else None)
            if e.get("robot_id") else "—",
            name=e.get("event_name"), i=i, json=_row_json(e),
            seid=seg(eid), keys=keys,
        ))  # fmt: skip
    return html(
        '<div class="scroll"><table class="events"><thead><tr><th scope="col">Time</th>'
        '<th scope="col" class="num">+offset</th><th scope="col" class="num">Gap</th>'
        '<th scope="col">Source</th><th scope="col">Robot</th><th scope="col">Event</th>'
        '<th scope="col">Key properties</th></tr></thead><tbody>{rows}</tbody></table></div>',
        rows=join(rows),
    )  # fmt: skip


def _row_json(event: dict[str, Any]) -> str:
    """An event's JSON for its row, cut at :data:`MAX_ROW_JSON_CHARS` (saying so)."""
    text = json.dumps(event, indent=2)
    if len(text) <= MAX_ROW_JSON_CHARS:
        return text
    rest = len(text) - MAX_ROW_JSON_CHARS
    return (
        f"{text[:MAX_ROW_JSON_CHARS]}\n… {rest:,} more characters: the JSON download has "
        "the whole event."
    )


#: Properties worth a column in the event table, first found first.
KEY_PROPS = ("to_state", "from_state", "reason", "error_code", "severity", "message",
             "merchant_id", "pilot_id", "new_robot_id", "step", "attempt_id",
             "attempt_status", "unlock_method")  # fmt: skip


def key_props(properties: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for k in KEY_PROPS:
        v = properties.get(k)
        if v not in (None, ""):
            text = v if isinstance(v, str) else json.dumps(v)
            out.append((k, text if len(text) <= MAX_PROP_CHARS else text[:MAX_PROP_CHARS] + "…"))
    return out


# ------------------------------------------------------------------------ GET /robots/{id}


def robot(ctx: Ctx, data: dict[str, Any], nearby: tuple[date | None, date | None]) -> Safe:
    """A robot's day; `nearby`: the nearest days before and after with an event of the robot
    (None: none within MAX_RANGE_DAYS — the pager says so instead of linking)."""
    rid = str(data.get("robot_id"))
    day = date.fromisoformat(str(data.get("date")))
    start = datetime.combine(day, time(0), ctx.tz)
    end = datetime.combine(day + timedelta(days=1), time(0), ctx.tz)
    down = data.get("downtime_hours") or {}
    ranked = sorted(down.items(), key=lambda kv: -kv[1])
    facts = html(
        '<dl class="facts"><div><dt>Usable</dt><dd>{u}</dd></div>'
        "<div><dt>Downtime</dt><dd>{d}</dd></div>{reasons}"
        "<div><dt>Errors</dt><dd>{e}</dd></div><div><dt>Deliveries</dt><dd>{n}</dd></div></dl>",
        u=hours(data.get("usable_hours")), d=hours(sum(down.values())),
        reasons=join(html("<div><dt>{k}</dt><dd>{v}</dd></div>", k=k, v=hours(v))
                     for k, v in ranked),
        e=len(data.get("errors") or []), n=len(data.get("deliveries") or []),
    )  # fmt: skip
    pager = html(
        '<p class="pager">{prev}<strong>{d}</strong>{next}'
        '<a href="/supply-hours{sq}">fleet supply hours of {d}</a></p>',
        prev=_robot_day_link(rid, nearby[0], "← ", "", "earlier"),
        next=_robot_day_link(rid, nearby[1], "", " →", "later"), d=day.isoformat(),
        sq=query(date=day.isoformat()),
    )  # fmt: skip
    legend = join([
        _state_legend(data.get("intervals") or []),
        svg.legend([("sw-err", "robot error"), ("sw-ev", "delivery served")], "Marks"),
    ])  # fmt: skip
    intervals = join(
        html('<tr><td class="time">{a}</td><td class="time">{b}</td><td class="num">{h}</td>'
             '<td><span class="sw {cls}" aria-hidden="true"></span>{state}</td><td>{reason}</td>'
             "<td>{bucket}</td></tr>",
             a=clock(parse_time(x.get("from")), ctx.tz), b=clock(parse_time(x.get("to")), ctx.tz),
             h=hours(x.get("hours")), cls=state_class(x.get("state")), state=x.get("state"),
             reason=x.get("reason") or "—", bucket=x.get("bucket") or "—")
        for x in data.get("intervals") or []
    )  # fmt: skip
    errors = join(
        html('<tr class="error"><td class="time">{t}</td><td>{code}</td><td>{sev}</td>'
             "<td>{dl}</td></tr>",
             t=clock(parse_time(x.get("occurred_at")), ctx.tz), code=x.get("error_code") or "—",
             sev=x.get("severity") or "—",
             dl=_link_delivery(x["delivery_id"])
             if x.get("delivery_id") else "—")
        for x in data.get("errors") or []
    )  # fmt: skip
    served = join(
        html('<tr><td>{link}</td><td class="time">{a}</td><td class="time">{b}</td></tr>',
             link=_link_delivery(x.get("delivery_id")),
             a=clock(parse_time(x.get("first_at")), ctx.tz),
             b=clock(parse_time(x.get("last_at")), ctx.tz))
        for x in data.get("deliveries") or []
    )  # fmt: skip
    body = html(
        "<h1>Robot {rid}</h1>{pager}{facts}<h2>The day</h2>{chart}{legend}"
        "<h2>States</h2>{itable}<h2>Errors</h2>{etable}<h2>Deliveries served</h2>{dtable}",
        rid=rid, pager=pager, facts=facts, chart=svg.robot_day(data, start, end, ctx.tz),
        legend=legend,
        itable=_table(("From", "To", "Hours", "State", "Reason", "Counted as"), intervals, ("Hours",))
        if data.get("intervals") else _empty("No state changes known for this day."),
        etable=_table(("Time", "Error code", "Severity", "Delivery"), errors)
        if data.get("errors") else _empty("No errors."),
        dtable=_table(("Delivery", "First event", "Last event"), served)
        if data.get("deliveries") else _empty("No deliveries."),
    )  # fmt: skip
    return layout(ctx, f"Robot {rid} on {day.isoformat()}", body, search=rid,
                  shown=day_span(day, day, ctx.tz))  # fmt: skip


def _robot_day_link(rid: str, day: date | None, before: str, after: str, side: str) -> Safe:
    if day is None:
        return html('<span class="muted" data-absent="{side}">{b}no {side} day with events '
                    "in {n} days{a}</span>", side=side, b=before, a=after, n=MAX_RANGE_DAYS)  # fmt: skip
    return html('<a href="/robots/{s}{q}" rel="{rel}">{b}{d}{a}</a>', s=seg(rid),
                q=query(date=day.isoformat()), rel="prev" if side == "earlier" else "next",
                b=before, d=day.isoformat(), a=after)  # fmt: skip


def _table(headers: Sequence[str], rows: Safe, num: Sequence[str] = ()) -> Safe:
    """A table; the `num` headers are right-aligned like their cells."""
    head = join(html('<th scope="col"{cls}>{h}</th>', h=h,
                     cls=Safe(' class="num"') if h in num else Safe("")) for h in headers)  # fmt: skip
    return html('<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{rows}'
                "</tbody></table></div>", head=head, rows=rows)  # fmt: skip


# ----------------------------------------------------------------------- GET /supply-hours


def supply(
    ctx: Ctx, days: Days | None, items: list[dict[str, Any]], totals: dict[str, Any],
    reason: str | None, intervals: list[dict[str, Any]] | None,
) -> Safe:  # fmt: skip
    parts = [html("<h1>Supply hours</h1>")]
    if days is None:
        parts.append(_empty("No robot.state_changed data in the warehouse yet."))
        return layout(ctx, "Supply hours", join(parts), nav="supply")
    one = days.count == 1
    parts.append(html(
        '<form class="inline" action="/supply-hours" method="get">'
        '<label for="from">From</label><input id="from" name="from" type="date" value="{a}">'
        '<label for="to">to</label><input id="to" name="to" type="date" value="{b}">'
        '<button type="submit">Show</button><span class="hint">at most {n} days</span></form>',
        a=days.first.isoformat(), b=days.last.isoformat(), n=MAX_RANGE_DAYS,
    ))  # fmt: skip
    if one:
        parts.append(_day_pager("/supply-hours", days.first))
    else:
        parts.append(html("<p><strong>{a} to {b}</strong> ({n} days)</p>",
                          a=days.first.isoformat(), b=days.last.isoformat(), n=days.count))  # fmt: skip
    if not items:
        parts.append(_empty("No robot.state_changed data for these days."))
        return layout(ctx, "Supply hours", join(parts), nav="supply",
                      shown=day_span(days.first, days.last, ctx.tz))  # fmt: skip
    head = totals.get("headline")
    down = totals.get("downtime_hours") or {}
    all_down = sum(down.values())
    parts.append(html('<p class="headline">{text}</p>',
                      text=head.get("text") if head else "No downtime."))  # fmt: skip
    rank = {k: i for i, (k, _) in enumerate(sorted(down.items(), key=lambda kv: -kv[1]))}
    span_q = {"date": days.first.isoformat()} if one else {
        "from": days.first.isoformat(), "to": days.last.isoformat()}  # fmt: skip
    reason_rows = join(
        html('<tr{cur}><td><span class="sw {cls}" aria-hidden="true"></span>{link}</td>'
             '<td class="num">{h}</td><td class="num">{share:.0%}</td></tr>',
             cur=Safe(' aria-current="true"') if k == reason else Safe(""),
             cls=svg.reason_class(rank[k]), h=hours(v), share=v / all_down if all_down else 0,
             link=html('<a href="/supply-hours{q}#intervals">{k}</a>',
                       q=query(**span_q, reason=k), k=k) if is_text(k) else esc(k))
        for k, v in sorted(down.items(), key=lambda kv: -kv[1])
    )  # fmt: skip
    parts.append(html(
        '<dl class="facts"><div><dt>Usable</dt><dd>{u}</dd></div>'
        "<div><dt>Downtime</dt><dd>{d}</dd></div><div><dt>Robots</dt><dd>{r}</dd></div></dl>",
        u=hours(totals.get("usable_hours")), d=hours(all_down),
        r=len({i.get("robot_id") for i in items}),
    ))  # fmt: skip
    bars = _bars(items, days)
    parts.append(html("<h2>Per robot</h2>{chart}{legend}",
                      chart=svg.supply_bars(bars, rank),
                      legend=svg.legend([("usable", "usable")] + [
                          (svg.reason_class(rank[k]), k) for k in rank])))  # fmt: skip
    parts.append(html("<h2>Downtime by reason</h2>"
                      '<p class="hint">Choose a reason to list its intervals and the '
                      "deliveries they touched.</p>{t}",
                      t=_table(("Reason", "Hours", "Share"), reason_rows, ("Hours", "Share"))))  # fmt: skip
    robot_rows = join(
        html('<tr><td>{link}</td><td class="num">{u}</td><td class="num">{d}</td><td>{why}</td></tr>',
             link=_link_robot(b.robot_id, days.first.isoformat()), u=hours(b.usable_hours),
             d=hours(sum(b.downtime_hours.values())),
             why=", ".join(f"{k} {v:.2f} h" for k, v in
                           sorted(b.downtime_hours.items(), key=lambda kv: -kv[1])) or "—")
        for b in bars
    )  # fmt: skip
    parts.append(html("<h2>Robots</h2>{t}",
                      t=_table(("Robot", "Usable", "Downtime", "Downtime by reason"),
                               robot_rows, ("Usable", "Downtime"))))  # fmt: skip
    if reason is not None:
        parts.append(reason_intervals(ctx, reason, intervals or []))
    return layout(ctx, "Supply hours", join(parts), nav="supply",
                  shown=day_span(days.first, days.last, ctx.tz))  # fmt: skip


def _bars(items: list[dict[str, Any]], days: Days) -> list[svg.Bar]:
    per: dict[str, dict[str, Any]] = {}
    for it in items:
        rid = str(it.get("robot_id"))
        b = per.setdefault(rid, {"usable": 0.0, "down": {}})
        b["usable"] += float(it.get("usable_hours") or 0)
        for k, v in (it.get("downtime_hours") or {}).items():
            b["down"][k] = b["down"].get(k, 0.0) + float(v)
    out = []
    for rid, b in per.items():
        href = f"/robots/{seg(rid)}{query(date=days.first.isoformat())}" if is_id(rid) else "#"
        out.append(svg.Bar(rid, b["usable"], b["down"], href))
    return out


def reason_intervals(ctx: Ctx, reason: str, intervals: list[dict[str, Any]]) -> Safe:
    rows = join(
        html('<tr><td>{robot}</td><td class="time">{a}</td><td class="time">{b}</td>'
             '<td class="num">{h}</td><td>{state}</td><td>{dls}</td></tr>',
             robot=_link_robot(x.get("robot_id"), _local_day(x.get("from"), ctx.tz)),
             a=stamp(parse_time(x.get("from")), ctx.tz), b=stamp(parse_time(x.get("to")), ctx.tz),
             h=hours(x.get("hours")), state=x.get("state"),
             dls=join((_link_delivery(d)
                       for d in x.get("deliveries") or []), ", ") or "—")
        for x in intervals
    )  # fmt: skip
    table = (_table(("Robot", "From", "To", "Hours", "State", "Deliveries touched"), rows, ("Hours",))
             if intervals else _empty("No intervals with this reason in these days."))  # fmt: skip
    return html('<h2 id="intervals">Intervals: {r}</h2>{t}', r=reason, t=table)


# ------------------------------------------------------------------------------ GET /funnel


def funnel(
    ctx: Ctx, days: Days | None, result: dict[str, Any], stages: list[dict[str, Any]]
) -> Safe:
    parts = [html("<h1>Delivery funnel</h1>")]
    if days is None:
        parts.append(_empty("No deliveries in the warehouse yet."))
        return layout(ctx, "Funnel", join(parts), nav="funnel")
    parts.append(html(
        '<form class="inline" action="/funnel" method="get">'
        '<label for="date">Day</label><input id="date" name="date" type="date" value="{d}">'
        '<button type="submit">Show</button></form>{pager}',
        d=days.first.isoformat(), pager=_day_pager("/funnel", days.first),
    ))  # fmt: skip
    total = sum(int(d.get("deliveries") or 0) for d in result.get("days") or [])
    parts.append(html("<p><strong>{n}</strong> deliveries created (by the day of "
                      "<code>delivery.created</code>).</p>", n=total))  # fmt: skip
    if not stages:
        parts.append(_empty("No delivery reached a second stage."))
        return layout(ctx, "Funnel", join(parts), nav="funnel",
                      shown=day_span(days.first, days.last, ctx.tz))  # fmt: skip
    rows = join(
        html('<tr><td><a href="#stage-{i}">{stage}</a></td><td class="num">{n}</td>'
             '<td class="num">{p50}</td><td class="num">{p90}</td></tr>',
             i=i, stage=st.get("stage"), n=st.get("count"), p50=duration(st.get("p50")),
             p90=duration(st.get("p90")))
        for i, st in enumerate(stages)
    )  # fmt: skip
    parts.append(_table(("Stage", "Deliveries", "p50", "p90"), rows, ("Deliveries", "p50", "p90")))
    for i, st in enumerate(stages):
        parts.append(html('<h2 id="stage-{i}">{stage}</h2><p class="muted">{n} · '
                          "p50 {p50} · p90 {p90}</p>{chart}",
                          i=i, stage=st.get("stage"), n=plural(int(st.get("count") or 0), "delivery"),
                          p50=duration(st.get("p50")), p90=duration(st.get("p90")),
                          chart=svg.histogram(st, f"stage-{i}")))  # fmt: skip
    return layout(ctx, f"Funnel of {days.first.isoformat()}", join(parts), nav="funnel",
                  shown=day_span(days.first, days.last, ctx.tz))  # fmt: skip
