"""The event registry: one YAML file defining every business event, compiled once at start.

The file format is a contract (DESIGN §4). Loading validates the structure with pydantic and
collects *every* problem, each naming the event and field, so `logship registry check` can print
them all at once. Each event compiles to a pydantic ``TypeAdapter`` over a ``TypedDict``: about
2 µs per validation, and it returns a plain dict, so nothing is converted twice on the hot path.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
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
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)
from typing_extensions import TypedDict

from ingest.registry_names import collisions

EVENT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]*(\.[a-z0-9_]+)*$")
IDENT_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
#: Column names the canonical event already uses; an entity may not shadow them.
RESERVED_COLUMNS = frozenset(
    {"event_id", "event_name", "event_version", "occurred_at", "received_at", "loaded_at",
     "service", "host", "properties"}
)  # fmt: skip
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Descriptions are documentation, but they also land in the warehouse's `event_registry`
#: table (Redshift VARCHAR): bounded so that a registry that passes `check` always loads.
MAX_DESCRIPTION = 4096
#: A field name is a key of `properties` (SUPER): at most a Redshift identifier's 127 bytes.
MAX_FIELD_NAME = 127
#: Field names that would be read as the event's envelope instead of as a property.
RESERVED_FIELDS = frozenset({"event", "evt", "properties"})

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
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)


class EventSpec(BaseModel):
    """One event of the registry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = Field(default="", max_length=MAX_DESCRIPTION)
    owner: str | None = Field(default=None, max_length=128)
    version: int = Field(default=1, ge=1, le=2**31 - 1)  # an INTEGER column in the warehouse
    extra: Literal["ignore", "allow"] = "ignore"
    fields: dict[str, FieldSpec] = {}


def _at_least_one_event(v: Any) -> Any:
    if isinstance(v, dict) and not v:
        raise ValueError("at least one event is required")
    return v


class RegistryFile(BaseModel):
    """The whole YAML document."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    entities: list[str] = []
    events: Annotated[dict[str, EventSpec], BeforeValidator(_at_least_one_event)]


def _utc_iso(value: datetime) -> str:
    """Timestamps are stored as RFC 3339 UTC with microseconds, e.g. 2026-01-02T03:04:05.000006Z,
    rendered from the parsed fields (`strftime("%Y")` would write year 5 as "5", not "0005").
    A value an offset pushes off the calendar (0001-01-01T00:00+01:00) is a validation error,
    not an OverflowError escaping pydantic."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        v = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("timestamp is outside the calendar once converted to UTC") from None
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
        f".{v.microsecond:06d}Z"
    )


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


# ---------------------------------------------------------------------- loading and checking
#
# `parse_registry` collects every problem before it fails: YAML duplicates, the structure of the
# document and of each event on its own (one broken event does not hide the others), then the
# rules pydantic cannot express. `logship registry check` prints them one per line.


def _entity_problems(entities: list[str]) -> list[str]:
    problems = []
    seen: set[str] = set()
    for ent in entities:
        if not IDENT_RE.match(ent) or len(ent) > 63:
            problems.append(
                f"entities: {ent!r} is not a valid column name ([a-z_][a-z0-9_]*, at most 63)"
            )
        elif ent in RESERVED_COLUMNS:
            problems.append(f"entities: {ent!r} is reserved for the canonical event")
        elif ent in seen:
            problems.append(f"entities: {ent!r} is listed twice")
        seen.add(ent)
    return problems


def _field_problems(event: str, fname: str, fs: FieldSpec, entities: set[str]) -> list[str]:
    where = f"event {event!r} field {fname!r}"
    problems = []
    if not IDENT_RE.match(fname) or len(fname) > MAX_FIELD_NAME:
        problems.append(f"{where}: name must match [a-z_][a-z0-9_]*, at most {MAX_FIELD_NAME}")
    elif fname in RESERVED_FIELDS:
        problems.append(f"{where}: the name is reserved for the event envelope")
    if fs.enum is not None and fs.type != "string":
        problems.append(f"{where}: enum is only allowed on type string (this field is {fs.type})")
    if fs.enum is not None and (not fs.enum or len(set(fs.enum)) != len(fs.enum)):
        problems.append(f"{where}: enum must be a non-empty list without duplicates")
    if fs.pii == "drop" and fs.required:
        problems.append(f"{where}: a required field cannot be pii: drop")
    if fname in entities and fs.type not in ("string", "integer"):
        problems.append(f"{where}: entity columns must be string or integer (this is {fs.type})")
    return problems


def _semantic_problems(entities: list[str], events: dict[str, EventSpec]) -> list[str]:
    """The rules pydantic cannot express, over the entities and events that are well formed."""
    problems = _entity_problems(entities)
    ent_set = set(entities)
    for name, ev in events.items():
        if not EVENT_NAME_RE.match(name) or len(name) > 127:
            problems.append(f"event {name!r}: name must match [a-z0-9_] words separated by '.'")
        for fname, fs in ev.fields.items():
            problems += _field_problems(name, fname, fs, ent_set)
    return problems + collisions(n for n in events if EVENT_NAME_RE.match(n))


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


def _pydantic_problems(exc: ValidationError, prefix: tuple[Any, ...] = ()) -> list[str]:
    """One line per pydantic problem, located by event and field, showing the offending values
    (`unknown type 'float'` is more useful than the list of allowed types alone). Errors of
    several items of one list (`enum: [1, 2]`) are one problem, so one line."""
    grouped: dict[tuple[tuple[Any, ...], str], list[Any]] = {}
    for e in exc.errors(include_url=False):
        loc = prefix + tuple(e["loc"])
        if loc and isinstance(loc[-1], int):
            loc = loc[:-1]
        msg = e["msg"]
        if "enum" in loc and e["type"] == "string_type":
            msg = "enum values must be strings"
        values = grouped.setdefault((loc, msg), [])
        if e["type"] not in ("missing", "extra_forbidden"):
            values.append(e.get("input"))
    problems = []
    for (loc, msg), values in grouped.items():
        shown = [repr(v) for v in values if isinstance(v, str | int | float | bool | type(None))]
        if shown:
            msg += f" (got {', '.join(shown)})"
        if "enum" in loc and any(isinstance(v, bool) for v in values):
            msg += "; quote them: YAML reads yes/no/on/off/true/false as booleans"
        problems.append(f"{_format_loc(loc)}: {msg}")
    return problems


class _Top(BaseModel):
    """The document with its events still raw: each event is validated on its own."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1]
    entities: list[str] = []
    events: Annotated[dict[str, Any], BeforeValidator(_at_least_one_event)]


def _structure(raw: dict[Any, Any]) -> tuple[list[str], list[str], dict[str, EventSpec]]:
    """(problems, well-formed entities, well-formed events) of the parsed YAML."""
    problems: list[str] = []
    try:
        _Top.model_validate(raw)
    except ValidationError as exc:
        problems += _pydantic_problems(exc)
    ents = raw.get("entities")
    entities = [e for e in ents if isinstance(e, str)] if isinstance(ents, list) else []
    events: dict[str, EventSpec] = {}
    raw_events = raw.get("events")
    for name, ev in (raw_events if isinstance(raw_events, dict) else {}).items():
        if not isinstance(name, str):
            continue  # reported by _Top
        try:
            events[name] = EventSpec.model_validate(ev)
        except ValidationError as exc:
            problems += _pydantic_problems(exc, ("events", name))
            events[name] = _salvage(ev)
    return problems, entities, events


def _salvage(ev: Any) -> EventSpec:
    """The well-formed fields of a broken event, so that the rules beyond structure still run
    on them (an unknown key in an event must not hide a bad enum in one of its fields)."""
    fields = {}
    raw_fields = ev.get("fields") if isinstance(ev, dict) else None
    for fname, fs in (raw_fields if isinstance(raw_fields, dict) else {}).items():
        with contextlib.suppress(ValidationError):  # already reported
            fields[str(fname)] = FieldSpec.model_validate(fs)
    return EventSpec.model_construct(fields=fields)


def _yaml_problem(exc: yaml.YAMLError, source: str) -> str:
    """A YAML error on one line (PyYAML's own text spans several, with a source excerpt)."""
    if isinstance(exc, yaml.MarkedYAMLError):
        what = ", ".join(p for p in (exc.context, exc.problem) if p)
        mark = exc.problem_mark or exc.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return f"{source}: not valid YAML: {what}{at}"
    return f"{source}: not valid YAML: {' '.join(str(exc).split())}"


def _duplicate_keys(root: yaml.Node | None) -> list[str]:
    """Every key that appears twice in one mapping, located by event and field.

    PyYAML silently keeps the last of two equal keys, so a copy-pasted event would replace
    the first without a word. The composed node tree still holds both; walking it reports all
    duplicates at once (merge keys `<<` are YAML's own way to combine mappings: skipped)."""
    problems = []
    stack: list[tuple[yaml.Node, tuple[str, ...]]] = [(root, ())] if root is not None else []
    visited: set[int] = set()
    while stack:
        node, path = stack.pop()
        if id(node) in visited:  # an alias of a node already walked
            continue
        visited.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, (*path, str(i))) for i, child in enumerate(node.value))
            continue
        if not isinstance(node, yaml.MappingNode):
            continue
        lines: dict[str, list[int]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            lines.setdefault(key_node.value, []).append(key_node.start_mark.line + 1)
            stack.append((value_node, (*path, key_node.value)))
        for key, at in lines.items():
            if len(at) > 1:
                problems.append(_duplicate_problem(path, key, at))
    return sorted(problems)


def _duplicate_problem(path: tuple[str, ...], key: str, lines: list[int]) -> str:
    at = "lines " + ", ".join(map(str, lines))
    if path == ("events",):
        return f"event {key!r}: duplicate key {key!r}: the event is defined twice ({at})"
    if len(path) == 3 and path[0] == "events" and path[2] == "fields":
        return (
            f"event {path[1]!r} field {key!r}: duplicate key {key!r}: "
            f"the field is declared twice ({at})"
        )
    return f"{_format_loc((*path, key))}: duplicate key {key!r} ({at})"


def _load_yaml(text: str, source: str) -> tuple[Any, list[str]]:
    """The YAML document (the last of duplicate keys wins) and its duplicate-key problems."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        dups = _duplicate_keys(node)
        return (loader.construct_document(node) if node is not None else None), dups
    except yaml.YAMLError as exc:
        raise RegistryError([_yaml_problem(exc, source)]) from None
    finally:
        loader.dispose()


def parse_registry(text: str, source: str = "<string>") -> Registry:
    """Parse and compile registry YAML; raises RegistryError listing every problem."""
    raw, problems = _load_yaml(text, source)
    if not isinstance(raw, dict):
        raise RegistryError([f"{source}: expected a mapping with version, entities, events"])
    structural, entities, events = _structure(raw)
    problems += structural + _semantic_problems(entities, events)
    if problems:
        raise RegistryError(problems)
    doc = RegistryFile(version=1, entities=entities, events=events)
    compiled = {name: _compile_event(name, spec) for name, spec in doc.events.items()}
    return Registry(source=source, document=doc, entities=tuple(doc.entities), events=compiled)


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
