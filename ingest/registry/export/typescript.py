"""The registry as a TypeScript module: `logger.event(Events.X, payload)` compiles only with X's
payload — an unknown event, a missing required field or a wrong type is a compile error."""

from __future__ import annotations

import json

from ingest.registry.compile import Registry
from ingest.registry.export.common import field_doc, header
from ingest.registry.names import const_name, type_name
from ingest.registry.spec import FieldSpec

_TS_TYPES = {
    "string": "string",
    "integer": "number",
    "number": "number",
    "boolean": "boolean",
    "timestamp": "Timestamp",
    "object": "Record<string, unknown>",
    "array": "unknown[]",
}

_TS_FOOTER = """\
/** The event names of the registry. */
export type EventName = keyof EventPayloads;

/** The JSON body ingest reads: the name, an optional time and id, and the payload. */
export type EventRecord<N extends EventName> = EventPayloads[N] & {
  event: N;
  timestamp?: Timestamp;
  event_id?: string;
};

/** A typed logger: `logger.event(Events.X, payload)` only compiles with X's payload. */
export interface Logger {
  event<N extends EventName>(name: N, payload: EventPayloads[N]): void;
}

/** A Logger writing one JSON line per event through `write` (e.g. `(l) => console.log(l)`). */
export function jsonLogger(write: (line: string) => void): Logger {
  return {
    event<N extends EventName>(name: N, payload: EventPayloads[N]): void {
      const record = { event: name, timestamp: new Date().toISOString(), ...payload };
      write(JSON.stringify(record));
    },
  };
}
"""


def _ts_doc(text: str, indent: str = "") -> list[str]:
    text = " ".join(text.split()).replace("*/", "*\\/")
    return [f"{indent}/** {text} */"] if text else []


def _ts_field(fname: str, fs: FieldSpec) -> list[str]:
    typ = " | ".join(json.dumps(v) for v in fs.enum) if fs.enum else _TS_TYPES[fs.type]
    decl = f"  {fname}: {typ};" if fs.required else f"  {fname}?: {typ} | null;"
    return [*_ts_doc(field_doc(fs), "  "), decl]


def render(registry: Registry) -> str:
    """A module: `Events` (as const), one interface per payload, `EventPayloads` (name →
    payload), `EventName`, `EventRecord`, `Logger` and a small `jsonLogger`. Strict-mode clean,
    no imports, no globals beyond ES5's."""
    out = [f"// {header(registry, 'typescript')}", ""]
    out += ["/** Registry event names: pass these to `logger.event`. */", "export const Events = {"]
    for name, ev in registry.events.items():
        out += [*_ts_doc(ev.spec.description, "  "), f"  {const_name(name)}: {json.dumps(name)},"]
    out += ["} as const;", ""]
    out += [
        "/** RFC 3339 text (e.g. 2026-01-02T03:04:05Z), or a Date (JSON.stringify writes it as"
        " RFC 3339). */",
        "export type Timestamp = string | Date;",
        "",
    ]
    for name, ev in registry.events.items():
        owner = f" (owner: {ev.spec.owner})" if ev.spec.owner else ""
        out += _ts_doc(f"{name}: {ev.spec.description}{owner}".rstrip(": "))
        out.append(f"export interface {type_name(name)} {{")
        for fname, fs in ev.spec.fields.items():
            out += _ts_field(fname, fs)
        out += ["}", ""]
    out.append("/** Every event name and the payload it takes. */")
    out.append("export interface EventPayloads {")
    out += [f"  {json.dumps(n)}: {type_name(n)};" for n in registry.events]
    out += ["}", "", _TS_FOOTER]
    return "\n".join(out)
