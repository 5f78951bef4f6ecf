"""The problem collector behind `logship registry check`: every problem of a registry file at
once, each naming the event and field, one per line.

:func:`check` collects before it fails: YAML errors and duplicate keys, the structure of the
document and of each event on its own (one broken event does not hide the others), then the
rules pydantic cannot express (names, reserved words, enums, entity types, generated-name
collisions).
"""

from __future__ import annotations

import contextlib
from typing import Any

import yaml
from pydantic import ValidationError

from ingest.event import EVENT_NAME_MAX_CHARS, EVENT_NAME_RE, RESERVED_COLUMNS, RESERVED_FIELDS
from ingest.registry.names import collisions
from ingest.registry.spec import (
    IDENT_RE,
    MAX_ENTITY_NAME_CHARS,
    MAX_FIELD_NAME_BYTES,
    EventSpec,
    FieldSpec,
    RawRegistryFile,
    RegistryFile,
)


class RegistryError(Exception):
    """The registry is invalid; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("invalid registry:\n  " + "\n  ".join(problems))
        self.problems = problems


def check(text: str, source: str = "<string>") -> RegistryFile:
    """The document of registry YAML `text`; raises RegistryError listing every problem."""
    raw, problems = _load_yaml(text, source)
    if not isinstance(raw, dict):
        raise RegistryError([f"{source}: expected a mapping with version, entities, events"])
    structural, entities, events = _structure(raw)
    problems += structural + _semantic_problems(entities, events)
    if problems:
        raise RegistryError(problems)
    return RegistryFile(version=1, entities=entities, events=events)


def _entity_problems(entities: list[str]) -> list[str]:
    problems = []
    seen: set[str] = set()
    for ent in entities:
        if not IDENT_RE.match(ent) or len(ent) > MAX_ENTITY_NAME_CHARS:
            problems.append(
                f"entities: {ent!r} is not a valid column name ([a-z_][a-z0-9_]*, at most {MAX_ENTITY_NAME_CHARS})"
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
    if not IDENT_RE.match(fname) or len(fname) > MAX_FIELD_NAME_BYTES:
        problems.append(
            f"{where}: name must match [a-z_][a-z0-9_]*, at most {MAX_FIELD_NAME_BYTES}"
        )
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
        if not EVENT_NAME_RE.match(name) or len(name) > EVENT_NAME_MAX_CHARS:
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


def _structure(raw: dict[Any, Any]) -> tuple[list[str], list[str], dict[str, EventSpec]]:
    """(problems, well-formed entities, well-formed events) of the parsed YAML."""
    problems: list[str] = []
    try:
        RawRegistryFile.model_validate(raw)
    except ValidationError as exc:
        problems += _pydantic_problems(exc)
    ents = raw.get("entities")
    entities = [e for e in ents if isinstance(e, str)] if isinstance(ents, list) else []
    events: dict[str, EventSpec] = {}
    raw_events = raw.get("events")
    for name, ev in (raw_events if isinstance(raw_events, dict) else {}).items():
        if not isinstance(name, str):
            continue  # reported by RawRegistryFile
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
