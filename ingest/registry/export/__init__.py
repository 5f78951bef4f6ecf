"""`logship registry export`: the registry as JSON Schema, TypeScript and Python for producers.

The point is to catch a wrong event where it is written, not in the dead-letter prefix days
later: a producer that logs `logger.event(Events.X, payload)` through the generated types gets
a compile error for an unknown event, a missing required field or a wrong type.

Every exporter describes the same thing — the *event body* a producer logs (the JSON line, or
the record itself; docs/architecture.md#record-to-event) — and they agree with each other:

* fields: `required` fields must be present and non-null; optional ones may be absent or null
  (ingest treats null as absent). `timestamp` is RFC 3339 text; `enum` is a closed set.
* undeclared fields are accepted by ingest (dropped, or kept with `extra: allow`), so the JSON
  Schema allows them; the typed exports leave them out, so a typo in a field name is caught.

The JSON Schema is the producer contract, not a copy of every leniency of ingest: anything it
accepts, ingest accepts (short of ingest's size and depth limits and its 1970-2200 range for
event times); ingest additionally coerces a few non-canonical values (numbers for string ids,
numeric strings for numbers, epoch numbers for timestamps, …) — see the README.
"""

from __future__ import annotations

from collections.abc import Callable

from ingest.registry.compile import Registry
from ingest.registry.export import jsonschema, python, typescript

#: Each format `logship registry export --format` takes, and its renderer.
_RENDERERS: dict[str, Callable[[Registry], str]] = {
    "jsonschema": jsonschema.render,
    "typescript": typescript.render,
    "python": python.render,
}
FORMATS = tuple(_RENDERERS)


def export(registry: Registry, fmt: str) -> str:
    """The registry in `fmt` (one of FORMATS), as the text `logship registry export` prints."""
    return _RENDERERS[fmt](registry)
