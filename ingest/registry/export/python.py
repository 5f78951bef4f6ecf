"""The registry as a stdlib-only Python module (>= 3.11): TypedDict payloads and an `event()`
whose overloads let a type checker (mypy --strict) match the payload to the event name."""

from __future__ import annotations

import json
import keyword

from ingest.registry.compile import Registry
from ingest.registry.export.common import field_doc, header
from ingest.registry.names import const_name, type_name
from ingest.registry.spec import EventSpec, FieldSpec

_PY_TYPES = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "timestamp": "Timestamp",
    "object": "dict[str, Any]",
    "array": "list[Any]",
}

# No `from __future__ import annotations` here: Python 3.11 only sees Required/NotRequired in
# evaluated annotations (with string annotations every key would be required at runtime).
_PY_HEAD = """\
import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal, NotRequired, Required, TypedDict, overload

#: RFC 3339 text (e.g. "2026-01-02T03:04:05Z"), or a datetime (`event()` writes it as RFC 3339).
Timestamp = str | datetime
"""

_PY_HELPERS = """\
# One bare JSON line per event on stdout (what the log shipper reads as `message`), whatever
# the application's logging set-up: its own handler, level INFO, not propagated to the root
# logger (whose format would prefix "INFO:events:" and make the line unreadable as JSON).
_log = logging.getLogger("events")
if not _log.handlers:
    _handler = logging.StreamHandler(sys.stdout)
    _handler.setFormatter(logging.Formatter("%(message)s"))
    _log.addHandler(_handler)
    _log.setLevel(logging.INFO)
    _log.propagate = False


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
"""

_PY_EVENT = '''\
def event(name: EventName, payload: {payload}, /) -> None:
    """Log a registry event as one JSON line on the `events` logger, the shape ingest reads."""
    record = {"event": name, "timestamp": datetime.now(UTC), **payload}
    _log.info(json.dumps(record, default=_json_default, separators=(",", ":")))
'''


def _py_str(text: str) -> str:
    """A double-quoted Python string literal (JSON's escapes are Python's, in ASCII)."""
    return json.dumps(text, ensure_ascii=True)


def _py_doc(text: str) -> str:
    """A one-line docstring literal: triple-quoted when that is safe, else escaped."""
    text = " ".join(text.split())
    if '"' in text or "\\" in text or not text.isascii():
        return _py_str(text)
    return f'"""{text}"""'


def _py_type(fs: FieldSpec) -> str:
    typ = f"Literal[{', '.join(_py_str(v) for v in fs.enum)}]" if fs.enum else _PY_TYPES[fs.type]
    return f"Required[{typ}]" if fs.required else f"NotRequired[{typ} | None]"


def _py_comment(text: str, indent: str = "") -> list[str]:
    text = " ".join(text.split())
    return [f"{indent}# {text}"] if text else []


def _py_typeddict(name: str, spec: EventSpec) -> list[str]:
    """Class syntax (readable, one comment per field), or the functional form when a field is
    a Python keyword (a registry field may be called `from`)."""
    cls = type_name(name)
    doc = _py_doc(f"{name}: {spec.description}".rstrip(": "))
    if any(keyword.iskeyword(f) for f in spec.fields):
        items = ", ".join(f"{_py_str(f)}: {_py_type(fs)}" for f, fs in spec.fields.items())
        return [f"{cls} = TypedDict({_py_str(cls)}, {{{items}}})", f"{cls}.__doc__ = {doc}"]
    out = [f"class {cls}(TypedDict):", f"    {doc}"]
    for fname, fs in spec.fields.items():
        out += [*_py_comment(field_doc(fs), "    "), f"    {fname}: {_py_type(fs)}"]
    return out


def render(registry: Registry) -> str:
    """A stdlib-only module for Python >= 3.11: `Events` (Final constants), one TypedDict per
    payload, `EventName`, `EVENT_PAYLOADS` (name → TypedDict) and an `event()` function whose
    overloads let a type checker match the payload to the name."""
    names = list(registry.events)
    out = [_py_doc(header(registry, "python")), "", _PY_HEAD, ""]
    out += ["class Events:", '    """Registry event names: pass these to `event()`."""', ""]
    for name, ev in registry.events.items():
        out += _py_comment(ev.spec.description, "    ")
        out.append(f"    {const_name(name)}: Final = {_py_str(name)}")
    out += ["", ""]
    out += ["EventName = Literal[", *(f"    {_py_str(n)}," for n in names), "]"]
    for name, ev in registry.events.items():
        out += ["", "", *_py_typeddict(name, ev.spec)]
    out += ["", "", "#: Every event name and the TypedDict of its payload."]
    out.append("EVENT_PAYLOADS: Final[dict[str, type]] = {")
    out += [f"    {_py_str(n)}: {type_name(n)}," for n in names]
    out += ["}", "", "", _PY_HELPERS, ""]
    if len(names) > 1:  # a type checker wants at least two overloads
        for n in names:
            out += [
                "@overload",
                f"def event(name: Literal[{_py_str(n)}], payload: {type_name(n)}, /) -> None: ...",
            ]
    payload = "Mapping[str, Any]" if len(names) > 1 else type_name(names[0])
    out.append(_PY_EVENT.replace("{payload}", payload))
    return "\n".join(out)
