"""What a day of demo records holds, read back from the records: the figures the warehouse
should show for it once loaded (`logship demo` prints them)."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import orjson

from ingest.registry import load_registry

_H = 3600.0


def describe(records: Sequence[dict[str, Any]], usable_states: Collection[str]) -> dict[str, Any]:
    """What a list of demo records contains, read back from the records themselves.

    Returns counts (``events``, ``noise``, ``by_event``), the deliveries' outcomes, the robot
    swaps (``{delivery_id: [robot ids in dispatch order]}``), and per-robot state time as the
    warehouse computes it (``usable_hours``; ``downtime_hours`` by reason: an interval's bucket is
    the reason of the change that started it, from shift start to shift end). Which states
    count as usable is a setting of the analyses, so the caller says (`logship demo`: the
    loader's default)."""
    names = set(load_registry().events)
    bodies = []
    noise = 0
    for rec in records:
        msg = rec.get("message")
        body = None
        if isinstance(msg, str) and msg.startswith("{"):
            try:
                body = orjson.loads(msg)
            except orjson.JSONDecodeError:
                body = None
        if isinstance(body, dict) and body.get("event") in names:
            bodies.append(body)
        else:
            noise += 1
    by_event = Counter(b["event"] for b in bodies)
    dispatched: dict[str, list[str]] = defaultdict(list)
    for b in bodies:
        if b["event"] == "delivery.dispatched":
            dispatched[b["delivery_id"]].append(b["robot_id"])
    usable = 0.0
    downtime: Counter[str] = Counter()
    intervals: dict[str, list[tuple[float, str, str]]] = defaultdict(list)
    for b in bodies:
        if b["event"] == "robot.state_changed":
            t = datetime.fromisoformat(b["timestamp"].replace("Z", "+00:00")).timestamp()
            intervals[b["robot_id"]].append((t, b["to_state"], b.get("reason") or b["to_state"]))
    for changes in intervals.values():
        changes.sort()
        for (t0, state, reason), (t1, _, _) in itertools.pairwise(changes):
            if state in usable_states:
                usable += t1 - t0
            else:
                downtime[reason] += t1 - t0
    return {
        "events": len(bodies),
        "noise": noise,
        "by_event": dict(sorted(by_event.items())),
        "robots": len(intervals),
        "deliveries": by_event["delivery.created"],
        "completed": by_event["delivery.dropoff_completed"],
        "failed": by_event["delivery.failed"],
        "cancelled": by_event["delivery.cancelled"],
        "swaps": {k: v for k, v in dispatched.items() if len(v) > 1},
        "usable_hours": round(usable / _H, 2),
        "downtime_hours": {k: round(v / _H, 2) for k, v in downtime.most_common()},
    }
