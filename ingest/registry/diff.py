"""`logship registry diff OLD NEW`: every change between two registries, breaking or compatible.

Meant for CI on the registry file: a change is *breaking* when an event that producers log
today would be rejected tomorrow, or when data that consumers (dashboards, the analyses) read
would disappear or change meaning; everything else is *compatible*. Two kinds of reader, one
rule: breaking changes need a coordinated rollout (or a new event name), compatible ones can
ship alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from ingest.registry.compile import Registry
from ingest.registry.spec import EventSpec, FieldSpec


@dataclass(frozen=True, slots=True)
class Change:
    breaking: bool
    what: str  # "event 'x' field 'y': removed"

    def line(self) -> str:
        return f"{'breaking' if self.breaking else 'compatible'}: {self.what}"


def _breaking(what: str) -> Change:
    return Change(True, what)


def _compatible(what: str) -> Change:
    return Change(False, what)


def diff(old: Registry, new: Registry) -> list[Change]:
    """Every change from `old` to `new`: entities first, then events in registry order."""
    changes = _entity_changes(old.entities, new.entities)
    old_ev, new_ev = old.document.events, new.document.events
    for name, spec in old_ev.items():
        if name not in new_ev:
            changes.append(_breaking(f"event {name!r}: removed (producers' events are discarded)"))
        else:
            changes += _event_changes(name, spec, new_ev[name])
    changes += [_compatible(f"event {n!r}: added") for n in new_ev if n not in old_ev]
    return changes


def _entity_changes(old: tuple[str, ...], new: tuple[str, ...]) -> list[Change]:
    """A removed entity leaves its warehouse column unfilled from now on; an added one is a
    new column the loader adds."""
    out = [_breaking(f"entity {e!r}: removed (its column is no longer filled)")
           for e in old if e not in new]  # fmt: skip
    return out + [_compatible(f"entity {e!r}: added") for e in new if e not in old]


def _event_changes(name: str, old: EventSpec, new: EventSpec) -> list[Change]:
    where = f"event {name!r}"
    out = []
    for attr in ("description", "owner", "version"):
        a, b = getattr(old, attr), getattr(new, attr)
        if a != b:
            out.append(_compatible(f"{where}: {attr} changed from {a!r} to {b!r}"))
    if old.extra != new.extra:
        # allow → ignore: undeclared properties consumers read today stop being stored.
        make = _breaking if new.extra == "ignore" else _compatible
        out.append(make(f"{where}: extra changed from {old.extra} to {new.extra}"))
    for fname, fs in old.fields.items():
        fwhere = f"{where} field {fname!r}"
        if fname not in new.fields:
            out.append(_breaking(f"{fwhere}: removed"))
        else:
            out += _field_changes(fwhere, fs, new.fields[fname])
    for fname, fs in new.fields.items():
        if fname not in old.fields:
            fwhere = f"{where} field {fname!r}"
            if fs.required:
                out.append(_breaking(f"{fwhere}: added as required (events without it are rejected)"))  # fmt: skip
            else:
                out.append(_compatible(f"{fwhere}: added (optional)"))
    return out


def _field_changes(where: str, old: FieldSpec, new: FieldSpec) -> list[Change]:
    out = []
    if old.type != new.type:
        out.append(_breaking(f"{where}: type changed from {old.type} to {new.type}"))
    if old.required != new.required:
        if new.required:
            out.append(_breaking(f"{where}: now required (events without it are rejected)"))
        else:
            out.append(_compatible(f"{where}: no longer required"))
    out += _enum_changes(where, old.enum, new.enum)
    if old.pii != new.pii:
        out.append(_pii_change(where, old.pii, new.pii))
    if old.description != new.description:
        out.append(_compatible(f"{where}: description changed"))
    return out


def _enum_changes(where: str, old: list[str] | None, new: list[str] | None) -> list[Change]:
    if old == new:
        return []
    if old is None:
        return [_breaking(f"{where}: enum added ({', '.join(new or [])}): other values are now rejected")]  # fmt: skip
    if new is None:
        return [_compatible(f"{where}: enum removed (any value is accepted)")]
    out = []
    removed = [v for v in old if v not in new]
    added = [v for v in new if v not in old]
    if removed:
        out.append(_breaking(f"{where}: enum values removed: {', '.join(removed)}"))
    if added:
        out.append(_compatible(f"{where}: enum values added: {', '.join(added)}"))
    return out


def _pii_change(where: str, old: str | None, new: str | None) -> Change:
    """What consumers see changes: values start being hashed or dropped, or stored hashes turn
    into raw values (no longer comparable). Only dropping → storing adds data without changing
    any stored value."""
    what = f"{where}: pii changed from {old or 'none'} to {new or 'none'}"
    return _compatible(what) if old == "drop" else _breaking(what)
