"""One day (2026-03-05, UTC) of a three-robot fleet for the web UI tests, with hostile values.

* **D-1** completed with a robot swap: R-1 is dispatched, arrives at pickup at 10:10 and
  reports `lid_error` a minute later (flagged: within 2 min of arrival); a pilot reassigns it
  to R-2, which completes it at 11:10. 10:35 → 10:50 is a 15-minute silence (a long gap). The
  tracker event carries a `<script>` in a property.
* **D-2** failed (`customer_unreachable`) with R-3; **D-3** cancelled; **D-4** open.
* R-3's maintenance reason is an `<img onerror>`; a service name is `"><svg onload>`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.loader.helpers import event

DAY = "2026-03-05"
SCRIPT = '<script>alert("x")</script>'
IMG_REASON = "<img src=x onerror=alert(1)>"
BAD_SERVICE = '"><svg onload=alert(2)>'


def at(hhmm: str) -> datetime:
    return datetime.fromisoformat(f"{DAY}T{hhmm}").replace(tzinfo=UTC)


def ev(name: str, hhmm: str, service: str = "dispatch", **props: Any) -> dict[str, Any]:
    row = event(name, occurred=at(hhmm), **props)
    row["service"] = service
    return row


def state(hhmm: str, robot: str, frm: str, to: str, reason: str | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {"robot_id": robot, "from_state": frm, "to_state": to}
    if reason is not None:
        props["reason"] = reason
    return ev("robot.state_changed", hhmm, "fleet", **props)


STATES = [
    state("08:00:00", "R-1", "offline", "available", "shift_start"),
    state("09:58:00", "R-1", "available", "assigned", "dispatched"),
    state("10:05:00", "R-1", "assigned", "on_trip", "dispatched"),
    state("10:20:00", "R-1", "on_trip", "error", "lid_error"),
    state("10:40:00", "R-1", "error", "available", "pilot_reset"),
    state("18:00:00", "R-1", "available", "offline", "shift_end"),
    state("08:00:00", "R-2", "offline", "available", "shift_start"),
    state("10:24:00", "R-2", "available", "assigned", "dispatched"),
    state("11:12:00", "R-2", "assigned", "available", "delivery_done"),
    state("12:00:00", "R-2", "available", "charging", "battery_low"),
    state("13:00:00", "R-2", "charging", "available", "charged"),
    state("18:00:00", "R-2", "available", "offline", "shift_end"),
    state("08:00:00", "R-3", "offline", "available", "shift_start"),
    state("11:00:00", "R-3", "available", "maintenance", IMG_REASON),
    state("11:30:00", "R-3", "maintenance", "available", "repaired"),
    state("18:00:00", "R-3", "available", "offline", "shift_end"),
]
D1 = [
    ev("delivery.created", "10:00:00", delivery_id="D-1", merchant_id="M-1"),
    ev("delivery.dispatched", "10:01:00", delivery_id="D-1", robot_id="R-1"),
    ev("delivery.pickup_started", "10:10:00", delivery_id="D-1", robot_id="R-1"),
    ev(
        "robot.error", "10:11:00", "fleet", robot_id="R-1", error_code="lid_error", severity="error"
    ),
    ev(
        "pilot_initiated_reassignment",
        "10:22:00",
        "pilot-ui",
        delivery_id="D-1",
        robot_id="R-1",
        new_robot_id="R-2",
        reason="lid_error",
    ),
    ev("delivery.dispatched", "10:25:00", delivery_id="D-1", robot_id="R-2"),
    ev("delivery.pickup_completed", "10:35:00", delivery_id="D-1", robot_id="R-2"),
    ev("delivery.dropoff_started", "10:50:00", delivery_id="D-1", robot_id="R-2"),
    ev("order_tracker_open", "10:52:00", BAD_SERVICE, delivery_id="D-1", note=SCRIPT),
    ev("server_unlock_bot_started", "10:55:00", "server", delivery_id="D-1", robot_id="R-2"),
    ev("delivery.dropoff_completed", "11:10:00", delivery_id="D-1", robot_id="R-2"),
]
OTHERS = [
    ev("delivery.created", "12:00:00", delivery_id="D-2", merchant_id="M-2"),
    ev("delivery.dispatched", "12:02:00", delivery_id="D-2", robot_id="R-3"),
    ev("delivery.pickup_started", "12:15:00", delivery_id="D-2", robot_id="R-3"),
    ev("delivery.pickup_completed", "12:25:00", delivery_id="D-2", robot_id="R-3"),
    ev("delivery.dropoff_started", "12:45:00", delivery_id="D-2", robot_id="R-3"),
    ev(
        "delivery.failed",
        "13:00:00",
        delivery_id="D-2",
        robot_id="R-3",
        reason="customer_unreachable",
    ),
    ev("delivery.created", "14:00:00", delivery_id="D-3", merchant_id="M-1"),
    ev("delivery.cancelled", "14:05:00", delivery_id="D-3", reason="merchant_closed"),
    ev("delivery.created", "15:00:00", delivery_id="D-4", merchant_id="M-2"),
    ev("delivery.dispatched", "15:01:00", delivery_id="D-4", robot_id="R-1"),
]
#: The lake objects, in load order.
OBJECTS = [STATES, D1, OTHERS]
