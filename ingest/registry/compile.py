"""The compiler: a checked registry document → a validator per event, built once at start.

Each event compiles to a pydantic ``TypeAdapter`` over a ``TypedDict``: about 2 µs per
validation, and it returns a plain dict, so nothing is converted twice on the hot path.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired, Required

from pydantic import AfterValidator, ConfigDict, Field, TypeAdapter
from typing_extensions import TypedDict

from ingest.event import INT64_MAX, INT64_MIN, iso_utc
from ingest.registry.spec import EventSpec, FieldSpec, RegistryFile


def _utc_iso(value: datetime) -> str:
    """Timestamps are stored in the canonical event's form (:func:`ingest.event.iso_utc`). A
    value an offset pushes off the calendar (0001-01-01T00:00+01:00) is a validation error,
    not an OverflowError escaping pydantic."""
    try:
        return iso_utc(value)
    except OverflowError:
        raise ValueError("timestamp is outside the calendar once converted to UTC") from None


_Timestamp = Annotated[datetime, AfterValidator(_utc_iso)]
_Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
_PY_TYPES: dict[str, Any] = {
    "string": str,
    "integer": _Int64,
    "number": float,
    "boolean": bool,
    "timestamp": _Timestamp,
    "object": dict[str, Any],
    "array": list[Any],
}


@dataclass(frozen=True, slots=True)
class CompiledEvent:
    """An event ready for the hot path: its validator and the PII fields to treat."""

    name: str
    spec: EventSpec
    adapter: TypeAdapter[Any]
    drop_fields: tuple[str, ...]
    hash_fields: tuple[str, ...]
    #: Can properties nest at all (object/array fields, or undeclared fields kept)? If not, the
    #: depth check is skipped: validation already guarantees flat scalars.
    may_nest: bool

    @property
    def version(self) -> int:
        return self.spec.version


@dataclass(frozen=True)
class Registry:
    """The compiled registry."""

    source: str
    document: RegistryFile
    entities: tuple[str, ...]
    events: dict[str, CompiledEvent] = field(default_factory=dict)

    def get(self, name: str) -> CompiledEvent | None:
        return self.events.get(name)

    def content_hash(self) -> str:
        """SHA-256 of what the registry means — not of its text, so comments, formatting and
        key order do not count. The warehouse rewrites its `event_registry` table only when
        this changes, which keeps a normal loader start to one cheap query."""
        doc = self.document.model_dump(mode="json")
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _field_type(spec: FieldSpec) -> Any:
    if spec.enum is not None:
        return Literal[tuple(spec.enum)]
    return _PY_TYPES[spec.type]


def compile_event(name: str, spec: EventSpec) -> CompiledEvent:
    """One event's validator: declared fields typed, undeclared ones dropped or kept."""
    keys: dict[str, Any] = {}
    for fname, fspec in spec.fields.items():
        typ = _field_type(fspec)
        keys[fname] = Required[typ] if fspec.required else NotRequired[typ | None]
    td = TypedDict(f"Event_{re.sub(r'[^A-Za-z0-9_]', '_', name)}", keys, total=False)  # type: ignore[operator]
    td.__pydantic_config__ = ConfigDict(  # type: ignore[attr-defined]
        extra=spec.extra,
        coerce_numbers_to_str=True,  # ids logged as numbers (robot_id: 123) are still ids
        allow_inf_nan=False,
        str_max_length=1024 * 1024,
    )
    return CompiledEvent(
        name=name,
        spec=spec,
        adapter=TypeAdapter(td),
        drop_fields=tuple(f for f, s in spec.fields.items() if s.pii == "drop"),
        hash_fields=tuple(f for f, s in spec.fields.items() if s.pii == "hash"),
        may_nest=spec.extra == "allow"
        or any(f.type in ("object", "array") for f in spec.fields.values()),
    )


def compile_registry(doc: RegistryFile, source: str) -> Registry:
    """The registry of a document that passed :func:`ingest.registry.check.check`."""
    events = {name: compile_event(name, spec) for name, spec in doc.events.items()}
    return Registry(source=source, document=doc, entities=tuple(doc.entities), events=events)
