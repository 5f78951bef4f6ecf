"""The scenarios the analyses are tested on (DuckDB and the Redshift emulator), with their
hand-computed expectations.

Supply hours (robot R1, UTC): available 22:00 → error (lid_error) 23:00 → available 01:00 next
day → on_trip 02:00 → available 02:30 → offline (shift_end) two days later at 06:00.
  2026-03-01: usable 1 h, lid_error 1 h          (the error interval crosses midnight)
  2026-03-02: usable 1 + 0.5 + 21.5 = 23 h, lid_error 1 h
  2026-03-03: usable 24 h                          (no event at all that day)
  2026-03-04: usable 6 h                           (the last interval ends at the last event)
The 02:00 event arrives in a later object than the 02:30 one (out of order) and the 02:30 event
is delivered twice (counted once).

Session of D1 (margin 300 s): R2 serves it, then R3 after a swap. Robot events without a
delivery id inside [09:55:00, 10:45:00] belong to it; outside, or of another robot, or carrying
another delivery id, they do not.

Deliveries of 2026-03-07 (flags, N = 2 min): D5 (R5) arrives at the pickup at 12:10, R5 errs
at 12:11:30 (flagged); it arrives at the dropoff at 12:30, R5 errs at 12:40 (not within 2 min);
D5 fails at 12:45. D6 (R6) arrives at the pickup at 12:20, R6 errs at 12:23 (flagged with
N = 3 only); D6 completes at 12:50. D7 is cancelled. HOSTILE_ID is a delivery whose id is
SQL and HTML, created that day too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.loader.helpers import event


def at(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=UTC)


def state(
    ts: str, frm: str, to: str, reason: str | None = None, robot: str = "R1", **kw: Any
) -> dict:
    props = {"robot_id": robot, "from_state": frm, "to_state": to, **kw}
    if reason:
        props["reason"] = reason
    return event("robot.state_changed", occurred=at(ts), **props)


S_ON_TRIP = state("2026-03-02T02:00:00", "available", "on_trip", "dispatched")
S_BACK = state("2026-03-02T02:30:00", "on_trip", "available", "delivery_done")
SUPPLY_OBJECTS = [
    [
        state("2026-03-01T22:00:00", "offline", "available", "shift_start"),
        state("2026-03-01T23:00:00", "available", "error", "lid_error"),
        state("2026-03-02T01:00:00", "error", "available", "pilot_reset"),
        S_BACK,
    ],
    [S_ON_TRIP, S_BACK],  # late and out of order; S_BACK again (a redelivery)
    [state("2026-03-04T06:00:00", "available", "offline", "shift_end")],
]
SUPPLY_EXPECTED = [
    {
        "robot_id": "R1",
        "date": "2026-03-01",
        "usable_hours": 1.0,
        "downtime_hours": {"lid_error": 1.0},
    },
    {
        "robot_id": "R1",
        "date": "2026-03-02",
        "usable_hours": 23.0,
        "downtime_hours": {"lid_error": 1.0},
    },
    {"robot_id": "R1", "date": "2026-03-03", "usable_hours": 24.0, "downtime_hours": {}},
    {"robot_id": "R1", "date": "2026-03-04", "usable_hours": 6.0, "downtime_hours": {}},
]


def ev(name: str, ts: str, **props: Any) -> dict:
    return event(name, occurred=at(ts), **props)


SESSION_IN = [
    state("2026-03-05T09:55:00", "available", "assigned", "dispatched", robot="R2"),
    ev("delivery.created", "2026-03-05T10:00:00", delivery_id="D1", merchant_id="M1"),
    ev("delivery.dispatched", "2026-03-05T10:01:00", delivery_id="D1", robot_id="R2"),
    ev("delivery.pickup_completed", "2026-03-05T10:20:00", delivery_id="D1", robot_id="R2"),
    ev("delivery.dispatched", "2026-03-05T10:25:00", delivery_id="D1", robot_id="R3"),  # swap
    ev("robot.error", "2026-03-05T10:30:00", robot_id="R3", error_code="lid_error"),
    ev("delivery.dropoff_completed", "2026-03-05T10:40:00", delivery_id="D1", robot_id="R3"),
    state("2026-03-05T10:44:00", "on_trip", "available", "delivery_done", robot="R3"),
]
SESSION_OUT = [
    ev("robot.error", "2026-03-05T09:54:59", robot_id="R2", error_code="gps_fault"),  # before
    ev("robot.error", "2026-03-05T10:46:00", robot_id="R3", error_code="gps_fault"),  # after
    ev("robot.error", "2026-03-05T10:10:00", robot_id="R4", error_code="lid_error"),  # other robot
    ev(
        "delivery.dispatched", "2026-03-05T10:15:00", delivery_id="D2", robot_id="R2"
    ),  # other delivery
    ev("delivery.created", "2026-03-05T11:00:00", delivery_id="D3", merchant_id="M1"),  # no robot
]
SESSION_GAPS = [None, 300.0, 60.0, 1140.0, 300.0, 300.0, 600.0, 240.0]


FLAG_DAY = "2026-03-07"
HOSTILE_ID = "D'; DROP TABLE logship.events; --<script>alert(1)</script>"
FLAG_OBJECT = [
    ev("delivery.created", "2026-03-07T12:00:00", delivery_id="D5", merchant_id="M2"),
    ev("delivery.dispatched", "2026-03-07T12:02:00", delivery_id="D5", robot_id="R5"),
    ev("delivery.pickup_started", "2026-03-07T12:10:00", delivery_id="D5", robot_id="R5"),
    ev("robot.error", "2026-03-07T12:11:30", robot_id="R5", error_code="lid_error"),
    ev("delivery.dropoff_started", "2026-03-07T12:30:00", delivery_id="D5", robot_id="R5"),
    ev("robot.error", "2026-03-07T12:40:00", robot_id="R5", error_code="gps_fault"),
    ev("delivery.failed", "2026-03-07T12:45:00", delivery_id="D5", robot_id="R5",
       reason="customer_unreachable"),
    ev("delivery.created", "2026-03-07T12:05:00", delivery_id="D6", merchant_id="M3"),
    ev("delivery.pickup_started", "2026-03-07T12:20:00", delivery_id="D6", robot_id="R6"),
    ev("robot.error", "2026-03-07T12:23:00", robot_id="R6", error_code="lid_error"),
    ev("delivery.dropoff_completed", "2026-03-07T12:50:00", delivery_id="D6", robot_id="R6"),
    ev("delivery.created", "2026-03-07T12:01:00", delivery_id="D7", merchant_id="M2"),
    ev("delivery.cancelled", "2026-03-07T12:02:00", delivery_id="D7", reason="customer"),
    ev("delivery.created", "2026-03-07T13:00:00", delivery_id=HOSTILE_ID,
       merchant_id="<b>M</b>"),
]  # fmt: skip

#: Every object of the scenarios, in load order.
OBJECTS = [*SUPPLY_OBJECTS, SESSION_IN, SESSION_OUT, FLAG_OBJECT]
