"""The identifiers generated code uses for an event: a constant and a payload type name.

They live in one place because two consumers must agree on them: the exporters
(:mod:`ingest.registry.export`) write them, and `logship registry check` refuses a registry in
which two events would get the same name — otherwise the TypeScript or Python export would not
compile, and a producer would find out long after the registry change was merged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_SEPARATORS = re.compile(r"[^A-Za-z0-9]+")

#: Names the generated modules define or use themselves; a payload type may not shadow them.
RESERVED_TYPE_NAMES = frozenset(
    {
        # ours, in both languages
        "Events", "EventName", "EventPayloads", "EventRecord", "Logger", "Timestamp",
        # TypeScript globals the module refers to
        "Date", "Record", "JSON", "Array", "String", "Number", "Boolean", "Object",
        # Python names the module imports or uses, and names that are not identifiers there
        "Any", "Final", "Literal", "Mapping", "NotRequired", "Required", "TypedDict", "UTC",
        "TypeError", "None", "True", "False",
    }
)  # fmt: skip


def const_name(event: str) -> str:
    """`delivery.pickup_completed` → `DELIVERY_PICKUP_COMPLETED` (a valid identifier in both
    languages: a leading digit gets an `E_` prefix)."""
    name = _SEPARATORS.sub("_", event).strip("_").upper()
    return f"E_{name}" if not name or name[0].isdigit() else name


def type_name(event: str) -> str:
    """`delivery.pickup_completed` → `DeliveryPickupCompleted`; a name the module needs itself
    (e.g. an event called `events`) gets a `Payload` suffix, a leading digit an `Event` prefix."""
    name = "".join(part[:1].upper() + part[1:] for part in _SEPARATORS.split(event) if part)
    if not name or name[0].isdigit():
        name = f"Event{name}"
    return f"{name}Payload" if name in RESERVED_TYPE_NAMES else name


def collisions(events: Iterable[str]) -> list[str]:
    """One problem per event whose generated constant or type name is already taken by an
    earlier event (in registry order)."""
    problems = []
    consts: dict[str, str] = {}
    types: dict[str, str] = {}
    for event in events:
        clashes: dict[str, list[str]] = {}  # earlier event → what of ours it already has
        for kind, name, seen in (
            ("constant", const_name(event), consts),
            ("type name", type_name(event), types),
        ):
            first = seen.setdefault(name, event)
            if first != event:
                clashes.setdefault(first, []).append(f"{kind} {name}")
        for first, what in clashes.items():
            problems.append(
                f"event {event!r}: generated {' and '.join(what)} already belong to event "
                f"{first!r} (rename one of them)"
            )
    return problems
