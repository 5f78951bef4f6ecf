"""The event registry: one YAML file defining every business event, compiled once at start.

The file format is a contract (DESIGN §4). Loading validates the structure with pydantic and
collects *every* problem, each naming the event and field, so `logship registry check` can print
them all at once. Each event compiles to a pydantic ``TypeAdapter`` over a ``TypedDict``: about
2 µs per validation, and it returns a plain dict, so nothing is converted twice on the hot path.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, NotRequired, Required

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from typing_extensions import TypedDict

EVENT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]*(\.[a-z0-9_]+)*$")
IDENT_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
#: Column names the canonical event already uses; an entity may not shadow them.
RESERVED_COLUMNS = frozenset(
    {"event_id", "event_name", "event_version", "occurred_at", "received_at", "loaded_at",
     "service", "host", "properties"}
)  # fmt: skip
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

FieldType = Literal["string", "integer", "number", "boolean", "timestamp", "object", "array"]


class RegistryError(Exception):
    """The registry is invalid; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("invalid registry:\n  " + "\n  ".join(problems))
        self.problems = problems


class FieldSpec(BaseModel):
    """One declared field of an event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: FieldType
    required: bool = False
    enum: list[str] | None = None
    pii: Literal["drop", "hash"] | None = None
    description: str | None = None


class EventSpec(BaseModel):
    """One event of the registry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    owner: str | None = None
    version: int = Field(default=1, ge=1)
    extra: Literal["ignore", "allow"] = "ignore"
    fields: dict[str, FieldSpec] = {}


class RegistryFile(BaseModel):
    """The whole YAML document."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    entities: list[str] = []
    events: dict[str, EventSpec]

    @field_validator("events", mode="before")
    @classmethod
    def _non_empty(cls, v: Any) -> Any:
        if isinstance(v, dict) and not v:
            raise ValueError("at least one event is required")
        return v


def _utc_iso(value: datetime) -> str:
    """Timestamps are stored as RFC 3339 UTC with microseconds, e.g. 2026-01-02T03:04:05.000006Z."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


def _field_type(spec: FieldSpec) -> Any:
    if spec.enum is not None:
        return Literal[tuple(spec.enum)]
    return _PY_TYPES[spec.type]


def _compile_event(name: str, spec: EventSpec) -> CompiledEvent:
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


def _semantic_problems(doc: RegistryFile) -> list[str]:
    problems = []
    seen_entities: set[str] = set()
    for ent in doc.entities:
        if not IDENT_RE.match(ent) or len(ent) > 63:
            problems.append(f"entities: {ent!r} is not a valid column name ([a-z_][a-z0-9_]*)")
        elif ent in RESERVED_COLUMNS:
            problems.append(f"entities: {ent!r} is reserved for the canonical event")
        elif ent in seen_entities:
            problems.append(f"entities: {ent!r} is listed twice")
        seen_entities.add(ent)
    for name, ev in doc.events.items():
        if not EVENT_NAME_RE.match(name) or len(name) > 127:
            problems.append(f"event {name!r}: name must match [a-z0-9_] words separated by '.'")
        for fname, fs in ev.fields.items():
            where = f"event {name!r} field {fname!r}"
            if not IDENT_RE.match(fname):
                problems.append(f"{where}: name must match [a-z_][a-z0-9_]*")
            if fs.enum is not None and fs.type != "string":
                problems.append(f"{where}: enum is only allowed on type string")
            if fs.enum is not None and (not fs.enum or len(set(fs.enum)) != len(fs.enum)):
                problems.append(f"{where}: enum must be a non-empty list without duplicates")
            if fs.pii and fs.required and fs.pii == "drop":
                problems.append(f"{where}: a required field cannot be pii: drop")
            if fname in seen_entities and fs.type not in ("string", "integer"):
                problems.append(f"{where}: entity columns must be string or integer")
    return problems


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys (a duplicated event would silently win)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,  # type: ignore[arg-type]
)


def _format_loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if len(parts) >= 2 and parts[0] == "events":
        where = f"event {parts[1]!r}"
        if len(parts) >= 4 and parts[2] == "fields":
            where += f" field {parts[3]!r}"
            rest = parts[4:]
        else:
            rest = parts[2:]
        return where + (f" ({'.'.join(rest)})" if rest else "")
    return ".".join(parts) or "document"


def parse_registry(text: str, source: str = "<string>") -> Registry:
    """Parse and compile registry YAML; raises RegistryError listing every problem."""
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise RegistryError([f"{source}: not valid YAML: {exc}"]) from None
    if not isinstance(raw, dict):
        raise RegistryError([f"{source}: expected a mapping with version, entities, events"])
    try:
        doc = RegistryFile.model_validate(raw)
    except ValidationError as exc:
        raise RegistryError(
            [f"{_format_loc(e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)]
        ) from None
    problems = _semantic_problems(doc)
    if problems:
        raise RegistryError(problems)
    events = {name: _compile_event(name, spec) for name, spec in doc.events.items()}
    return Registry(source=source, document=doc, entities=tuple(doc.entities), events=events)


def bundled_registry_text() -> str:
    return resources.files("ingest").joinpath("data/registry.yaml").read_text("utf-8")


def load_registry(path: Path | None = None) -> Registry:
    """Load the registry at `path`, or the bundled one."""
    if path is None:
        return parse_registry(bundled_registry_text(), "bundled registry.yaml")
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise RegistryError([f"{path}: cannot read: {exc.strerror}"]) from None
    return parse_registry(text, str(path))


class PiiHasher:
    """Applies `pii: hash` — HMAC-SHA256 with a secret key, or SHA-256 when no key is set."""

    def __init__(self, key: bytes = b""):
        self._key = key

    def __call__(self, value: Any) -> str:
        data = str(value).encode("utf-8", "surrogatepass")
        if self._key:
            return hmac.new(self._key, data, hashlib.sha256).hexdigest()
        return hashlib.sha256(data).hexdigest()
