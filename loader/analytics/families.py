"""What kind of event an event is, by its name and service: the timeline lane it belongs to,
whether it is an error, and which lifecycle events end a delivery."""

from __future__ import annotations

from typing import Any

#: Lanes of the timeline, top to bottom.
LANES = ("dispatch", "robot", "pilot", "server", "tracker", "other")
#: Terminal lifecycle events and the outcome they mean (the latest one wins).
OUTCOMES = {
    "delivery.dropoff_completed": "completed",
    "delivery.failed": "failed",
    "delivery.cancelled": "cancelled",
}
#: A service name containing the key (case-insensitive) → lane.
_SERVICE_LANES = (
    ("dispatch", "dispatch"), ("fleet", "robot"), ("robot", "robot"), ("pilot", "pilot"),
    ("tracker", "tracker"), ("customer", "tracker"), ("server", "server"),
)  # fmt: skip
#: An event name's prefix → lane, when the service names none.
_FAMILY_LANES = (
    ("delivery.", "dispatch"), ("robot.", "robot"), ("node_", "robot"), ("pilot_", "pilot"),
    ("server_", "server"), ("deliveries_", "server"), ("order_", "tracker"),
    ("page_", "tracker"), ("button_", "tracker"), ("app_", "tracker"),
)  # fmt: skip


def lane(event: dict[str, Any]) -> str:
    """The timeline lane of an event: its service when that names a source (dispatch,
    fleet/robot, pilot, tracker/customer, server), else its family (`delivery.*` dispatch,
    `robot.*`/`node_*` robot, `pilot_*` pilot, `server_*`/`deliveries_*` server, `order_*`,
    `page_*`, `button_*`, `app_*` tracker), else "other"."""
    service = str(event.get("service") or "").lower()
    for key, name in _SERVICE_LANES:
        if key in service:
            return name
    event_name = str(event.get("event_name") or "")
    for prefix, name in _FAMILY_LANES:
        if event_name.startswith(prefix):
            return name
    return "other"


def is_error(event: dict[str, Any]) -> bool:
    """`robot.error`, `delivery.failed`, and events named as errors or failures
    (`…_error`, `…_fail`, `error_…`)."""
    name = str(event.get("event_name") or "")
    return (
        name in ("robot.error", "delivery.failed")
        or name.endswith(("_error", "_fail"))
        or name.startswith("error_")
    )
