"""The registry as one JSON Schema (2020-12) document: the producer contract, per event.

Each event's schema accepts exactly what ingest accepts as that event's body (the envelope, the
name in any of the places ingest looks for it, the fields in `properties` or in the body itself),
short of ingest's size and depth limits and its coercions (see :mod:`ingest.registry.export`).
"""

from __future__ import annotations

import json
from typing import Any

from ingest.event import (
    EVENT_ID_KEY,
    EVENT_ID_MAX_CHARS,
    EVENT_NAME_KEYS,
    INT64_MAX,
    INT64_MIN,
    TIME_KEYS,
)
from ingest.registry.compile import Registry
from ingest.registry.export.common import field_doc, header
from ingest.registry.spec import EventSpec, FieldSpec

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

#: The optional envelope fields of an event body that ingest reads (:mod:`ingest.event`).
_TIME = {
    "description": "When the event happened: RFC 3339 (UTC if no offset) or epoch seconds/ms. "
    f"The first of {', '.join(TIME_KEYS)} that is set wins; else the log record's time.",
    "anyOf": [{"type": "string", "format": "date-time"}, {"type": "number", "minimum": 0},
              {"type": "null"}],
}  # fmt: skip
ENVELOPE: dict[str, Any] = {
    EVENT_ID_KEY: {
        "description": f"Optional stable id (1-{EVENT_ID_MAX_CHARS} characters): a redelivered "
        "event with the same id is stored once. Without it, ingest derives one from the "
        "event's content.",
        "type": "string",
        "minLength": 1,
        "maxLength": EVENT_ID_MAX_CHARS,
    },
    **dict.fromkeys(TIME_KEYS, _TIME),
}


def _field_schema(fs: FieldSpec) -> dict[str, Any]:
    base: dict[str, Any] = {
        "string": {"type": "string"},
        "integer": {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX},
        "number": {"type": "number"},
        "boolean": {"type": "boolean"},
        "timestamp": {"type": "string", "format": "date-time"},
        "object": {"type": "object"},
        "array": {"type": "array"},
    }[fs.type]
    if fs.enum is not None:
        base["enum"] = list(fs.enum)
    if not fs.required:  # ingest reads null as absent
        base["type"] = [base["type"], "null"]
        if "enum" in base:
            base["enum"].append(None)
    doc = field_doc(fs)
    return ({"description": doc} if doc else {}) | base | ({"x-pii": fs.pii} if fs.pii else {})


def _payload_schema(spec: EventSpec) -> dict[str, Any]:
    kept = "kept" if spec.extra == "allow" else "dropped"
    return {
        "type": "object",
        "required": [f for f, fs in spec.fields.items() if fs.required],
        "properties": {f: _field_schema(fs) for f, fs in spec.fields.items()},
        "additionalProperties": True,
        "$comment": f"Undeclared properties are accepted and {kept} at ingest (extra: {spec.extra}).",
    }


def _name_schema(name: str) -> list[dict[str, Any]]:
    """The event name, in any of the three places ingest looks — first one found wins."""
    event, dotted, nested = EVENT_NAME_KEYS  # "event", "evt.name", "evt" (with a `name`)
    not_str = {"not": {"type": "string"}}
    return [
        {"required": [event], "properties": {event: {"const": name}}},
        {"required": [dotted], "properties": {dotted: {"const": name}, event: not_str}},
        {
            "required": [nested],
            "properties": {
                nested: {"type": "object", "required": ["name"], "properties": {"name": {"const": name}}},
                event: not_str,
                dotted: not_str,
            },
        },
    ]  # fmt: skip


def event_schema(name: str, spec: EventSpec) -> dict[str, Any]:
    """The body of one event. Its fields are read from a `properties` object when the body has
    one (the Segment track shape), else from the body itself — hence the if/then/else."""
    payload = _payload_schema(spec)
    has_properties = {"required": ["properties"], "properties": {"properties": {"type": "object"}}}
    out: dict[str, Any] = {"title": name}
    if spec.description:
        out["description"] = spec.description
    if spec.owner:
        out["x-owner"] = spec.owner
    out |= {
        "x-version": spec.version,
        "type": "object",
        "anyOf": _name_schema(name),
        "properties": dict(ENVELOPE),
        "if": has_properties,
        "then": {"properties": {"properties": payload}},
        "else": payload,
    }
    return out


def json_schema(registry: Registry) -> dict[str, Any]:
    """One document: `$defs` holds one self-contained schema per event (keyed by event name);
    the root accepts a body of any registered event."""
    defs = {n: event_schema(n, ev.spec) for n, ev in registry.events.items()}
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "logship event registry",
        "description": header(registry, "jsonschema")
        + " One schema per event in $defs (validate a body against #/$defs/<event name>);"
        " the root accepts the body of any registered event.",
        "x-entities": list(registry.entities),
        "anyOf": [{"$ref": f"#/$defs/{_pointer(n)}"} for n in defs],
        "$defs": defs,
    }


def _pointer(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def render(registry: Registry) -> str:
    """The JSON Schema document as text, what `logship registry export` prints."""
    return json.dumps(json_schema(registry), indent=2, ensure_ascii=False) + "\n"
