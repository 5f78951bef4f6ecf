"""The drawings, as inline SVG built on the server: the session timeline, a robot's day, the
supply-hours bars and the funnel's distributions.

Every text and title goes through :func:`loader.ui.html.html` like the rest of the page; colours
come from CSS classes (so the light and dark schemes both apply, and no value from the data
becomes a class name: states map onto a fixed set, reasons onto `r0`…`r7` by rank). Each
drawing has a title and description for screen readers, and everything it shows is also in a
table on the same page — the drawing is for the eye, the table for reading and keyboards, so
links inside drawings are left out of the tab order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from loader.ui.fmt import clock, duration, hours, parse_time, plural, state_class
from loader.ui.html import Safe, html, join, seg

WIDTH = 1100
LABEL_W = 150
RIGHT_W = 24
PLOT_W = WIDTH - LABEL_W - RIGHT_W
LANE_H = 30
STRIP_H = 18
#: Tick steps of a time axis, in seconds (the first giving at most 12 ticks is used).
_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
          86400, 2 * 86400, 7 * 86400)  # fmt: skip
#: Reason colour classes; a rank beyond the last shares the last.
REASON_CLASSES = 8


def reason_class(rank: int) -> str:
    return f"r{min(rank, REASON_CLASSES - 1)}"


@dataclass(frozen=True)
class Scale:
    """Time → x inside the plot area."""

    t0: datetime
    t1: datetime

    def x(self, t: datetime) -> float:
        span = (self.t1 - self.t0).total_seconds()
        if span <= 0:
            return LABEL_W + PLOT_W / 2
        frac = (t - self.t0).total_seconds() / span
        return LABEL_W + max(0.0, min(1.0, frac)) * PLOT_W

    def clip(self, a: datetime, b: datetime) -> tuple[float, float] | None:
        lo, hi = max(a, self.t0), min(b, self.t1)
        if hi <= lo:
            return None
        return self.x(lo), self.x(hi)


def _svg(key: str, height: float, title: str, desc: str, body: Safe, width: float = WIDTH) -> Safe:
    """An accessible drawing; `key` (ours, not data) names its title element."""
    return html(
        '<svg class="chart" viewBox="0 0 {w} {h:.0f}" width="{w}" height="{h:.0f}" role="img" '
        'aria-labelledby="{tid}" xmlns="http://www.w3.org/2000/svg">'
        '<title id="{tid}">{title}</title><desc>{desc}</desc>{body}</svg>',
        w=width, h=height, tid=f"svg-{key}", title=title,
        desc=desc, body=body,
    )  # fmt: skip


def _ticks(scale: Scale, tz: tzinfo) -> list[datetime]:
    span = (scale.t1 - scale.t0).total_seconds()
    step = next((s for s in _STEPS if span / s <= 12), _STEPS[-1])
    local0 = scale.t0.astimezone(tz)
    off = local0.utcoffset() or timedelta()
    base = scale.t0.timestamp() + off.total_seconds()
    first = (int(base // step) + 1) * step - off.total_seconds()
    out: list[datetime] = []
    t = first
    end = scale.t1.timestamp()
    while t <= end and len(out) < 40:
        out.append(datetime.fromtimestamp(t, tz))
        t += step
    return out


def _axis(scale: Scale, tz: tzinfo, top: float, bottom: float) -> Safe:
    """Grid lines from `top` to `bottom` and HH:MM labels under `bottom`."""
    span = (scale.t1 - scale.t0).total_seconds()
    parts = []
    for t in _ticks(scale, tz):
        x = scale.x(t)
        label = t.strftime("%H:%M:%S" if span < 300 else "%H:%M")
        if span > 3 * 86400:
            label = t.strftime("%m-%d")
        parts.append(html(
            '<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{a:.0f}" y2="{b:.0f}"/>'
            '<text class="muted" x="{x:.1f}" y="{ty:.0f}" text-anchor="middle">{label}</text>',
            x=x, a=top, b=bottom, ty=bottom + 14, label=label,
        ))  # fmt: skip
    return join(parts)


def _row_label(y: float, text: str, cls: str = "") -> Safe:
    shown = text if len(text) <= 20 else text[:19] + "…"
    return html('<text class="{cls}" x="8" y="{y:.0f}">{shown}<title>{text}</title></text>',
                cls=cls, y=y, shown=shown, text=text)  # fmt: skip


# ------------------------------------------------------------------------ delivery session


def session_timeline(
    events: Sequence[dict[str, Any]],
    annotations: Sequence[dict[str, Any]],
    states: Sequence[dict[str, Any]],
    lanes: Sequence[str],
    lane_titles: dict[str, str],
    robots: Sequence[str],
    tz: tzinfo,
) -> Safe:
    """One lane per source with a dot per event (errors red and larger, each a link to its
    row), long gaps shaded with their length, the time axis, and under it each robot's state
    strip."""
    times = [parse_time(e.get("occurred_at")) for e in events]
    known = [t for t in times if t is not None]
    if not known:
        return Safe("")
    lo, hi = min(known), max(known)
    pad = max((hi - lo) * 0.02, timedelta(seconds=5))
    scale = Scale(lo - pad, hi + pad)
    used = {a.get("lane") for a in annotations}
    shown = [ln for ln in lanes if ln != "other" or "other" in used]
    top = 22.0
    row = {ln: top + i * LANE_H for i, ln in enumerate(shown)}
    lanes_bottom = top + len(shown) * LANE_H
    parts: list[Safe] = []
    for ln in shown:
        y = row[ln]
        parts.append(html('<rect class="lane" x="{x}" y="{y:.0f}" width="{w}" height="{h}"/>',
                          x=LABEL_W, y=y + 2, w=PLOT_W, h=LANE_H - 4))  # fmt: skip
        parts.append(_row_label(y + LANE_H / 2 + 4, lane_titles.get(ln, ln)))
    parts.append(_axis(scale, tz, top, lanes_bottom))
    prev: datetime | None = None
    for t, a in zip(times, annotations, strict=False):
        if t is not None and prev is not None and a.get("long_gap"):
            parts.append(_gap(scale, prev, t, top, lanes_bottom))
        if t is not None:
            prev = t
    marks = sorted(
        zip(events, times, annotations, strict=False), key=lambda m: bool(m[2].get("error"))
    )
    for e, t, a in marks:  # errors drawn last, on top of what shares their moment
        if t is None or a.get("lane") not in row:
            continue
        err = bool(a.get("error"))
        label = f"{clock(t, tz)} {e.get('event_name')}" + (
            f" · {e['robot_id']}" if e.get("robot_id") else ""
        )
        parts.append(html(
            '<a href="#ev-{eid}" tabindex="-1"><circle class="ev{cls}" cx="{x:.1f}" cy="{y:.0f}" '
            'r="{r}"><title>{label}</title></circle></a>',
            eid=seg(e.get("event_id") or ""), cls=" err" if err else "", x=scale.x(t),
            y=row[str(a.get("lane"))] + LANE_H / 2, r=7 if err else 5, label=label,
        ))  # fmt: skip
    y = lanes_bottom + 26
    strip = _state_strips(states, robots, scale, tz, y)
    height = y + strip[1] + 6
    desc = (f"{len(events)} events from {clock(lo, tz)} to {clock(hi, tz)}; "
            f"{sum(1 for a in annotations if a.get('error'))} errors.")  # fmt: skip
    return _svg("session", height, "Timeline of the delivery", desc, join([*parts, strip[0]]))


def _gap(scale: Scale, a: datetime, b: datetime, top: float, bottom: float) -> Safe:
    """A long silence: shaded across the lanes, its length above it when there is room."""
    x1, x2 = scale.x(a), scale.x(b)
    label = duration((b - a).total_seconds())
    text = (html('<text class="gaplabel" x="{cx:.1f}" y="14" text-anchor="middle">{label}</text>',
                 cx=(x1 + x2) / 2, label=label)
            if x2 - x1 >= 7 * len(label) else Safe(""))  # fmt: skip
    return html(
        '<rect class="gap" x="{x:.1f}" y="{y:.0f}" width="{w:.1f}" height="{h:.0f}">'
        "<title>{label} without events</title></rect>{text}",
        x=x1, y=top, w=max(x2 - x1, 1.0), h=bottom - top, label=label, text=text,
    )  # fmt: skip


def _state_strips(
    states: Sequence[dict[str, Any]], robots: Sequence[str], scale: Scale, tz: tzinfo, y0: float
) -> tuple[Safe, float]:
    order = list(robots) + sorted({str(s.get("robot_id")) for s in states} - set(robots))
    by_robot = {r: [s for s in states if str(s.get("robot_id")) == r] for r in order}
    by_robot = {r: v for r, v in by_robot.items() if v}
    if not by_robot:
        return Safe(""), 0.0
    parts = [html('<text class="muted" x="8" y="{y:.0f}">Robot state</text>', y=y0)]
    y = y0 + 8
    for robot, items in by_robot.items():
        parts.append(_row_label(y + STRIP_H - 4, robot))
        for s, span, a, b, reason in _visible_states(items, scale):
            parts.append(html(
                '<rect class="{cls}" x="{x:.1f}" y="{y:.0f}" width="{w:.1f}" height="{h}">'
                "<title>{robot}: {state}{reason}, {a} – {b}</title></rect>",
                cls=state_class(s.get("state")), x=span[0], y=y, w=max(span[1] - span[0], 1.0),
                h=STRIP_H, robot=robot, state=s.get("state"), reason=reason,
                a=clock(a, tz), b=clock(b, tz),
            ))  # fmt: skip
        y += STRIP_H + 4
    return join(parts), y - y0


def _visible_states(
    items: list[dict[str, Any]], scale: Scale
) -> Iterator[tuple[dict[str, Any], tuple[float, float], datetime, datetime, str]]:
    """Each state interval that shows on `scale`: itself, its clipped x span, its times and
    its reason as a title suffix (" (lid_error)", or "")."""
    for s in items:
        a, b = parse_time(s.get("from")), parse_time(s.get("to"))
        span = scale.clip(a, b) if a and b else None
        if span is None or a is None or b is None:
            continue
        yield s, span, a, b, f" ({s['reason']})" if s.get("reason") else ""


# ------------------------------------------------------------------------------ robot day


def robot_day(day: dict[str, Any], start: datetime, end: datetime, tz: tzinfo) -> Safe:
    """The day from midnight to midnight: the state band (coloured by state, reasons in the
    titles), red ticks for errors, and the deliveries served as bars linking to them."""
    scale = Scale(start, end)
    rows = {"state": 10.0, "errors": 10.0 + LANE_H, "deliveries": 10.0 + 2 * LANE_H}
    bottom = 10.0 + 3 * LANE_H
    parts: list[Safe] = [
        _row_label(rows["state"] + 19, "State"),
        _row_label(rows["errors"] + 19, "Errors"),
        _row_label(rows["deliveries"] + 19, "Deliveries"),
        _axis(scale, tz, 6, bottom),
    ]
    for s, span, a, b, reason in _visible_states(day.get("intervals", []), scale):
        parts.append(html(
            '<rect class="{cls}" x="{x:.1f}" y="{y:.0f}" width="{w:.1f}" height="22">'
            "<title>{state}{reason}: {a} – {b}, {h}</title></rect>",
            cls=state_class(s.get("state")), x=span[0], y=rows["state"] + 2,
            w=max(span[1] - span[0], 1.0), state=s.get("state"), reason=reason,
            a=clock(a, tz), b=clock(b, tz), h=hours(s.get("hours")),
        ))  # fmt: skip
    for e in day.get("errors", []):
        t = parse_time(e.get("occurred_at"))
        if t is None:
            continue
        x = scale.x(t)
        parts.append(html(
            '<line class="errtick" x1="{x:.1f}" x2="{x:.1f}" y1="{a:.0f}" y2="{b:.0f}">'
            "<title>{t} {code}</title></line>",
            x=x, a=rows["errors"] + 3, b=rows["errors"] + 25, t=clock(t, tz),
            code=e.get("error_code") or "robot.error",
        ))  # fmt: skip
    for d in day.get("deliveries", []):
        a, b = parse_time(d.get("first_at")), parse_time(d.get("last_at"))
        if a is None or b is None:
            continue
        span = scale.clip(a, b) or ((scale.x(a), scale.x(a)) if start <= a <= end else None)
        if span is None:
            continue
        parts.append(html(
            '<a href="/deliveries/{did}" tabindex="-1"><rect class="dl" x="{x:.1f}" y="{y:.0f}" '
            'width="{w:.1f}" height="22"><title>delivery {id}: {a} – {b}</title></rect></a>',
            did=seg(d.get("delivery_id") or ""), id=d.get("delivery_id"), x=span[0],
            y=rows["deliveries"] + 2, w=max(span[1] - span[0], 3.0), a=clock(a, tz),
            b=clock(b, tz),
        ))  # fmt: skip
    desc = (f"{len(day.get('intervals', []))} state intervals, {len(day.get('errors', []))} "
            f"errors, {len(day.get('deliveries', []))} deliveries.")  # fmt: skip
    return _svg(
        "robot-day", bottom + 22, f"The day of robot {day.get('robot_id')}", desc, join(parts)
    )


# ---------------------------------------------------------------------------- supply hours


@dataclass(frozen=True)
class Bar:
    """One robot's hours: usable, then each downtime bucket."""

    robot_id: str
    usable_hours: float
    downtime_hours: dict[str, float]
    href: str

    @property
    def total(self) -> float:
        return self.usable_hours + sum(self.downtime_hours.values())


def supply_bars(bars: Sequence[Bar], bucket_rank: dict[str, int]) -> Safe:
    """A stacked horizontal bar per robot (usable first, then the downtime buckets in the
    fleet's order of hours); each bar links to the robot's day."""
    if not bars:
        return Safe("")
    top = max(b.total for b in bars) or 1.0
    scale_w = PLOT_W - 230
    parts: list[Safe] = []
    y = 6.0
    for b in bars:
        segments = [("usable", "usable", b.usable_hours)] + [
            (k, reason_class(bucket_rank.get(k, REASON_CLASSES)), v)
            for k, v in sorted(b.downtime_hours.items(), key=lambda kv: bucket_rank.get(kv[0], 99))
        ]
        x = float(LABEL_W)
        rects = []
        for name, cls, h in segments:
            if h <= 0:
                continue
            w = h / top * scale_w
            rects.append(html(
                '<rect class="{cls}" x="{x:.1f}" y="{y:.0f}" width="{w:.1f}" height="18">'
                "<title>{robot}: {name} {h}</title></rect>",
                cls=cls, x=x, y=y, w=max(w, 0.5), robot=b.robot_id, name=name, h=hours(h),
            ))  # fmt: skip
            x += w
        down = sum(b.downtime_hours.values())
        parts.append(html(
            '<a href="{href}" tabindex="-1">{label}{rects}</a>'
            '<text class="muted" x="{tx:.1f}" y="{ty:.0f}">{u} usable · {d} down</text>',
            href=Safe(b.href), label=_row_label(y + 14, b.robot_id), rects=join(rects),
            tx=LABEL_W + scale_w + 8, ty=y + 14, u=hours(b.usable_hours), d=hours(down),
        ))  # fmt: skip
        y += 24
    desc = f"Usable and downtime hours of {len(bars)} robots."
    return _svg("supply", y + 4, "Supply hours per robot", desc, join(parts))


# ---------------------------------------------------------------------------------- funnel


def histogram(stage: dict[str, Any], key: str, width: int = 560, height: int = 140) -> Safe:
    """A stage's distribution of durations, with p50 and p90 marked."""
    bins = stage.get("histogram") or []
    if not bins:
        return Safe("")
    lo, hi = float(bins[0]["lo_s"]), float(bins[-1]["hi_s"])
    most = max(int(b["count"]) for b in bins) or 1
    left, plot_w, base = 50.0, width - 100.0, height - 24.0

    def x(v: float) -> float:
        return left + (0.5 if hi <= lo else (v - lo) / (hi - lo)) * plot_w

    parts = []
    for b in bins:
        x1, x2 = x(float(b["lo_s"])), x(float(b["hi_s"]))
        if hi <= lo:
            x1, x2 = left, left + plot_w
        h = int(b["count"]) / most * (base - 34)
        parts.append(html(
            '<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}">'
            "<title>{a} – {b}: {n}</title></rect>",
            x=x1 + 0.5, y=base - h, w=max(x2 - x1 - 1, 1.0), h=h, a=duration(b["lo_s"]),
            b=duration(b["hi_s"]), n=plural(int(b["count"]), "delivery"),
        ))  # fmt: skip
    for key_, y in (("p50", 12), ("p90", 26)):
        v = stage.get(key_)
        if v is None:
            continue
        px = x(float(v))
        parts.append(html(
            '<line class="errtick" x1="{x:.1f}" x2="{x:.1f}" y1="{y1}" y2="{b:.0f}"/>'
            '<text x="{x:.1f}" y="{y}" text-anchor="middle">{key} {v}</text>',
            x=px, y1=y + 3, b=base, y=y, key=key_, v=duration(v),
        ))  # fmt: skip
    parts.append(html(
        '<line class="grid" x1="{l}" x2="{r}" y1="{b:.0f}" y2="{b:.0f}"/>'
        '<text class="muted" x="{l}" y="{ty:.0f}" text-anchor="middle">{lo}</text>'
        '<text class="muted" x="{r}" y="{ty:.0f}" text-anchor="middle">{hi}</text>',
        l=left, r=left + plot_w, b=base, ty=base + 16, lo=duration(lo), hi=duration(hi),
    ))  # fmt: skip
    desc = f"{plural(int(stage.get('count') or 0), 'delivery')} between {duration(lo)} and {duration(hi)}."
    return _svg(
        key, height, f"Distribution of {stage.get('stage')}", desc, join(parts), width=width
    )


def legend(items: Sequence[tuple[str, str]], title: str = "") -> Safe:
    """A legend: (css class, label) pairs after an optional title."""
    head = html('<li class="muted">{t}:</li>', t=title) if title else Safe("")
    return html('<ul class="legend">{head}{items}</ul>', head=head, items=join(
        html('<li><span class="sw {cls}" aria-hidden="true"></span>{label}</li>', cls=c,
             label=label) for c, label in items
    ))  # fmt: skip
