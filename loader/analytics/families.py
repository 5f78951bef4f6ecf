"""What kind of event an event is, by its name and service: the timeline lane it belongs to,
whether it is an error, and which lifecycle events end a delivery."""

from __future__ import annotations

from typing import Any

from loader.warehouse.sql import literal

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


#: What makes an event an error, by its name: these names, these endings, these beginnings.
_ERROR_NAMES = ("robot.error", "delivery.failed")
_ERROR_SUFFIXES = ("_error", "_fail")
_ERROR_PREFIXES = ("error_",)


def is_error(event: dict[str, Any]) -> bool:
    """`robot.error`, `delivery.failed`, and events named as errors or failures
    (`…_error`, `…_fail`, `error_…`)."""
    name = str(event.get("event_name") or "")
    return (
        name in _ERROR_NAMES or name.endswith(_ERROR_SUFFIXES) or name.startswith(_ERROR_PREFIXES)
    )


def error_sql(column: str) -> str:
    """:func:`is_error` as a SQL condition on the event name `column` (for counts over more
    events than are fetched). LEFT/RIGHT, not LIKE: `_` is no wildcard here."""
    conds = [f"{column} IN ({', '.join(literal(n) for n in _ERROR_NAMES)})"]
    conds += [f"RIGHT({column}, {len(x)}) = {literal(x)}" for x in _ERROR_SUFFIXES]
    conds += [f"LEFT({column}, {len(x)}) = {literal(x)}" for x in _ERROR_PREFIXES]
    return "(" + " OR ".join(conds) + ")"
