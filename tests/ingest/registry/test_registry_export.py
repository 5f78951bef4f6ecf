"""`logship registry export`: the exports producers build against.

* TypeScript: compiled by the real `tsc --strict` (npm package, installed once per machine into
  a cache): a correct producer compiles, each kind of mistake fails naming the problem, and the
  module's `jsonLogger` — run by node — writes lines ingest accepts.
* Python: the module compiles and imports; its TypedDicts carry the registry (required keys,
  Literal enums, types), a small annotation checker catches wrong samples, and its `event()`
  writes lines ingest accepts.
* JSON Schema (draft 2020-12): valid; good and bad samples of several events; and for a set of
  records the schema's verdict equals the ingest extractor's. Where ingest is deliberately more
  lenient than the contract, the divergence is pinned in a test of its own.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import types
import typing
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from ingest.cli.main import main
from ingest.extract import Extractor, Limits
from ingest.records import ParsedBody
from ingest.registry import Registry, load_registry, parse_registry
from ingest.registry.export import export
from ingest.registry.export.jsonschema import json_schema
from ingest.registry.names import const_name, type_name

REGISTRY = load_registry()
RECEIVED = datetime(2026, 11, 23, 9, 0, 0, tzinfo=UTC)
TYPESCRIPT = "5.6.3"  # pinned: the test checks compiler messages
#: Names and texts that need escaping or renaming in generated code: a field that is a Python
#: keyword, quotes, backslashes and comment ends in descriptions and enum values, events whose
#: type names the modules reserve, a one-event-per-name-style mix.
AWKWARD = parse_registry(
    r'''
version: 1
events:
  events:
    description: 'He said "hi" \ and """ and */ left'
    fields:
      from: {type: string, required: true}
      class: {type: integer}
      mode: {type: string, enum: ['a\b', 'q"', "nl\n", '*/']}
  none: {}
  2fa.sent: {}
'''
)


def ingest_accepts(record: dict[str, Any], registry: Registry = REGISTRY) -> bool:
    """The extractor's verdict on one record: accepted as a registry event, or not."""
    out = Extractor(registry, Limits(1 << 20, 64)).extract(ParsedBody([record]), RECEIVED)
    assert sum(out.accepted.values()) + sum(out.rejects.values()) + sum(out.discarded.values())
    return sum(out.accepted.values()) == 1


# ------------------------------------------------------------------------------ TypeScript


def _cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "logship-tests"


@pytest.fixture(scope="session")
def tsc() -> Path:
    """The `tsc` of typescript@TYPESCRIPT, installed with npm into a per-machine cache on first
    use and reused after. No npm or no registry is a failure, not a skip."""
    cache = _cache_root() / f"typescript-{TYPESCRIPT}"
    binary = cache / "node_modules" / ".bin" / "tsc"
    if not binary.exists():
        npm, node = shutil.which("npm"), shutil.which("node")
        assert npm and node, "node and npm are needed to test the TypeScript export"
        tmp = cache.with_name(f"{cache.name}.tmp-{uuid.uuid4().hex[:8]}")
        r = subprocess.run(
            [npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(tmp),
             f"typescript@{TYPESCRIPT}"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert r.returncode == 0, f"npm install typescript@{TYPESCRIPT} failed:\n{r.stderr}"
        try:
            tmp.rename(cache)
        except OSError:  # another test process installed it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.strip() == f"Version {TYPESCRIPT}", version
    return binary


TS_FLAGS = ["--strict", "--target", "es2020", "--lib", "es2020", "--skipLibCheck", "--module", "commonjs",
            "--exactOptionalPropertyTypes", "--noUnusedLocals"]  # fmt: skip

TS_GOOD = """\
import { Events, EventName, EventPayloads, EventRecord, Logger, jsonLogger } from "./events";

const lines: string[] = [];
const logger: Logger = jsonLogger((line) => { lines.push(line); });

logger.event(Events.DELIVERY_PICKUP_COMPLETED, { delivery_id: "D-1", robot_id: "R-1" });
logger.event(Events.DELIVERY_PICKUP_COMPLETED, { delivery_id: "D-1", robot_id: "R-1", trip_id: null });
logger.event(Events.ROBOT_STATE_CHANGED, { robot_id: "R-1", to_state: "charging", from_state: "available" });
logger.event(Events.DELIVERY_CREATED, { delivery_id: "D-1", merchant_id: "M-1", quoted_eta: new Date(0) });
logger.event(Events.DELIVERY_CREATED, { delivery_id: "D-2", merchant_id: "M-1", quoted_eta: "2026-01-02T03:04:05Z" });
logger.event("order_tracker_rating_submit", { delivery_id: "D-1", rating: 5 });
logger.event(Events.ROBOT_ERROR, { robot_id: "R-1", error_code: "E42", severity: "critical" });

// A producer's own logger implementing the interface, and the record type.
class Collecting implements Logger {
  readonly records: EventRecord<EventName>[] = [];
  event<N extends EventName>(name: N, payload: EventPayloads[N]): void {
    this.records.push({ ...payload, event: name } as EventRecord<EventName>);
  }
}
new Collecting().event(Events.DELIVERY_FAILED, { delivery_id: "D-3", reason: "blocked" });

const record: EventRecord<"robot.state_changed"> = { event: "robot.state_changed", robot_id: "R", to_state: "offline" };
export const produced: readonly string[] = lines;
export const example = record;
"""

#: name → (body after `const logger: Logger = …;`, what tsc must say about it)
TS_BAD = {
    "wrong_type": (
        'logger.event(Events.DELIVERY_PICKUP_COMPLETED, { delivery_id: 42, robot_id: "R-1" });',
        "Type 'number' is not assignable to type 'string'",
    ),
    "missing_required": (
        'logger.event(Events.DELIVERY_PICKUP_COMPLETED, { delivery_id: "D-1" });',
        "Property 'robot_id' is missing",
    ),
    "unknown_event_name": (
        'logger.event("delivery.teleported", { delivery_id: "D-1" });',
        '"delivery.teleported"',
    ),
    "unknown_constant": (
        'logger.event(Events.DELIVERY_TELEPORTED, { delivery_id: "D-1" });',
        "Property 'DELIVERY_TELEPORTED' does not exist",
    ),
    "enum_violation": (
        'logger.event(Events.ROBOT_STATE_CHANGED, { robot_id: "R-1", to_state: "flying" });',
        "Type '\"flying\"' is not assignable",
    ),
    "undeclared_field": (
        'logger.event(Events.DELIVERY_PICKUP_COMPLETED, { delivery_id: "D", robot_id: "R", robto_id: "R" });',
        "'robto_id' does not exist in type 'DeliveryPickupCompleted'",
    ),
    "payload_of_another_event": (
        'logger.event(Events.ROBOT_STATE_CHANGED, { delivery_id: "D-1", robot_id: "R-1" });',
        "'to_state' is missing in type '{ delivery_id: string; robot_id: string; }'",
    ),
    "null_for_required": (
        'logger.event(Events.DELIVERY_PICKUP_COMPLETED, { delivery_id: null, robot_id: "R-1" });',
        "Type 'null' is not assignable to type 'string'",
    ),
}
TS_BAD_HEAD = 'import { Events, Logger, jsonLogger } from "./events";\n' \
              "const logger: Logger = jsonLogger(() => undefined);\n"  # fmt: skip


@pytest.fixture(scope="module")
def ts_project(tsc: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The export plus the good and the bad producers, type-checked in one `tsc` run (a run
    costs ~1 s); errors grouped by file."""
    root = tmp_path_factory.mktemp("ts")
    (root / "events.ts").write_text(export(REGISTRY, "typescript"))
    (root / "awkward.ts").write_text(export(AWKWARD, "typescript"))
    (root / "good.ts").write_text(TS_GOOD)
    for name, (body, _) in TS_BAD.items():
        (root / f"bad_{name}.ts").write_text(TS_BAD_HEAD + body + "\n")
    files = sorted(p.name for p in root.glob("*.ts"))
    r = subprocess.run([str(tsc), *TS_FLAGS, "--noEmit", *files], cwd=root,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    errors: dict[str, list[str]] = {}
    for line in r.stdout.splitlines():
        m = re.match(r"^([\w.]+\.ts)\(\d+,\d+\): error (.*)", line)
        if m:
            errors.setdefault(m.group(1), []).append(m.group(2))
        elif errors and line.startswith(" "):  # continuation of the previous message
            last = list(errors)[-1]
            errors[last][-1] += " " + line.strip()
    return {"root": root, "errors": errors, "returncode": r.returncode, "output": r.stdout}


def test_typescript_export_and_a_correct_producer_compile_strict(ts_project: dict) -> None:
    errors = ts_project["errors"]
    assert "events.ts" not in errors, ts_project["output"]
    assert "awkward.ts" not in errors, ts_project["output"]
    assert "good.ts" not in errors, ts_project["output"]
    assert ts_project["returncode"] != 0  # the bad files did fail: tsc really checked


@pytest.mark.parametrize("case", sorted(TS_BAD))
def test_typescript_rejects_a_wrong_producer(ts_project: dict, case: str) -> None:
    errors = ts_project["errors"].get(f"bad_{case}.ts")
    assert errors, f"bad_{case}.ts compiled, but must not:\n{ts_project['output']}"
    assert any(TS_BAD[case][1] in e for e in errors), errors


def test_typescript_module_shape() -> None:
    ts = export(REGISTRY, "typescript")
    assert 'DELIVERY_PICKUP_COMPLETED: "delivery.pickup_completed",' in ts
    assert "} as const;" in ts
    assert '"delivery.pickup_completed": DeliveryPickupCompleted;' in ts
    assert "export type EventName = keyof EventPayloads;" in ts
    assert "event<N extends EventName>(name: N, payload: EventPayloads[N]): void;" in ts
    for name in REGISTRY.events:  # every event has a constant, an interface and an entry
        assert f"  {const_name(name)}: {json.dumps(name)}," in ts
        assert f"export interface {type_name(name)} {{" in ts
        assert f"  {json.dumps(name)}: {type_name(name)};" in ts


def test_typescript_json_logger_writes_what_ingest_accepts(tsc: Path, tmp_path: Path) -> None:
    """Compile the good producer to JavaScript, run it with node, feed its lines to ingest."""
    (tmp_path / "events.ts").write_text(export(REGISTRY, "typescript"))
    (tmp_path / "good.ts").write_text(TS_GOOD)
    (tmp_path / "run.ts").write_text(
        'import { produced } from "./good";\nfor (const l of produced) { JSON.parse(l); }\n'
        "declare const process: { stdout: { write(s: string): void } };\n"
        "process.stdout.write(JSON.stringify(produced));\n"
    )
    r = subprocess.run([str(tsc), *TS_FLAGS, "--outDir", "out", "run.ts"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stdout
    node = shutil.which("node")
    assert node
    run = subprocess.run([node, "out/run.js"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = json.loads(run.stdout)
    assert len(lines) == 7
    records = [json.loads(line) for line in lines]
    assert records[0]["event"] == "delivery.pickup_completed" and "timestamp" in records[0]
    assert records[3]["quoted_eta"] == "1970-01-01T00:00:00.000Z"  # a Date, as RFC 3339
    assert all(ingest_accepts(rec) for rec in records), records


# ------------------------------------------------------------------------------ Python


@pytest.fixture
def load_module(tmp_path: Path) -> Iterator[Any]:
    """Import generated Python source as a fresh module (removed from sys.modules after)."""
    names: list[str] = []

    def load(source: str) -> types.ModuleType:
        name = f"logship_events_{uuid.uuid4().hex[:8]}"
        path = tmp_path / f"{name}.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        names.append(name)
        spec.loader.exec_module(module)
        return module

    yield load
    for name in names:
        sys.modules.pop(name, None)


_PY_BASE = {"str": str, "int": int, "float": (int, float), "bool": bool}


def payload_problems(td: Any, payload: dict[str, Any]) -> list[str]:
    """A small checker of a payload against the generated TypedDict's annotations: required
    keys, unknown keys, Literal values and base types (what a type checker would say)."""
    hints = typing.get_type_hints(td, include_extras=True)
    problems = [f"missing {k}" for k in sorted(td.__required_keys__) if k not in payload]
    for key, value in payload.items():
        if key not in hints:
            problems.append(f"unknown {key}")
            continue
        wrapper = typing.get_origin(hints[key])
        (inner,) = typing.get_args(hints[key])
        assert wrapper in (typing.Required, typing.NotRequired)
        union = typing.get_origin(inner) in (typing.Union, types.UnionType)
        allowed = typing.get_args(inner) if union else (inner,)
        if not any(_matches(value, t) for t in allowed):
            problems.append(f"wrong {key}")
    return problems


def _matches(value: Any, t: Any) -> bool:
    if t is type(None):
        return value is None
    if typing.get_origin(t) is typing.Literal:
        return value in typing.get_args(t)
    if t is datetime:
        return isinstance(value, datetime)
    if typing.get_origin(t) in (dict, list):
        return isinstance(value, typing.get_origin(t))
    if isinstance(value, bool) and t is not bool:
        return False  # a type checker accepts bool for int; the registry does not mean it
    return isinstance(value, t)


def test_python_export_compiles_and_carries_the_registry(load_module: Any) -> None:
    source = export(REGISTRY, "python")
    compile(source, "events.py", "exec")
    mod = load_module(source)
    assert mod.Events.DELIVERY_PICKUP_COMPLETED == "delivery.pickup_completed"
    assert set(typing.get_args(mod.EventName)) == set(REGISTRY.events)
    assert set(mod.EVENT_PAYLOADS) == set(REGISTRY.events)
    for name, ev in REGISTRY.events.items():
        assert getattr(mod.Events, const_name(name)) == name
        td = mod.EVENT_PAYLOADS[name]
        assert td is getattr(mod, type_name(name))
        fields = ev.spec.fields
        assert td.__required_keys__ == {f for f, fs in fields.items() if fs.required}, name
        assert td.__optional_keys__ == {f for f, fs in fields.items() if not fs.required}, name
        hints = typing.get_type_hints(td, include_extras=True)
        for fname, fs in fields.items():
            if fs.enum:
                (inner,) = typing.get_args(hints[fname])
                lit = typing.get_args(inner)[0] if not fs.required else inner
                assert list(typing.get_args(lit)) == fs.enum, (name, fname)
    # One overload per event, matching the name to its payload type.
    overloads = typing.get_overloads(mod.event)
    assert len(overloads) == len(REGISTRY.events)
    for fn in overloads:
        hints = typing.get_type_hints(fn)
        (name,) = typing.get_args(hints["name"])
        assert hints["payload"] is mod.EVENT_PAYLOADS[name]


@pytest.mark.parametrize(
    ("event", "payload", "problems"),
    [
        ("delivery.pickup_completed", {"delivery_id": "D", "robot_id": "R"}, []),
        ("delivery.pickup_completed", {"delivery_id": "D", "robot_id": "R", "trip_id": None}, []),
        ("delivery.pickup_completed", {"delivery_id": "D"}, ["missing robot_id"]),
        ("delivery.pickup_completed", {"delivery_id": 7, "robot_id": "R"}, ["wrong delivery_id"]),
        ("delivery.pickup_completed", {"delivery_id": None, "robot_id": "R"}, ["wrong delivery_id"]),
        ("delivery.pickup_completed", {"delivery_id": "D", "robot_id": "R", "robto": 1}, ["unknown robto"]),
        ("robot.state_changed", {"robot_id": "R", "to_state": "flying"}, ["wrong to_state"]),
        ("robot.state_changed", {"robot_id": "R", "to_state": "charging"}, []),
        ("robot.error", {"robot_id": "R", "error_code": "E", "severity": "fatal"}, ["wrong severity"]),
        ("order_tracker_rating_submit", {"rating": "five"}, ["wrong rating"]),
        ("order_tracker_rating_submit", {"rating": 5}, []),
        ("delivery.created", {"delivery_id": "D", "merchant_id": "M", "quoted_eta": 5}, ["wrong quoted_eta"]),
        ("delivery.created", {"delivery_id": "D", "merchant_id": "M", "quoted_eta": datetime.now(UTC)}, []),
    ],
)  # fmt: skip
def test_python_typeddicts_catch_wrong_payloads(
    load_module: Any, event: str, payload: dict, problems: list[str]
) -> None:
    mod = load_module(export(REGISTRY, "python"))
    assert payload_problems(mod.EVENT_PAYLOADS[event], payload) == problems


def test_python_event_function_prints_what_ingest_accepts(tmp_path: Path) -> None:
    """In a producer that never configured logging (Python's default: WARNING and up, and a
    root format that would prefix "INFO:events:"), every event is one bare JSON line."""
    (tmp_path / "events.py").write_text(export(REGISTRY, "python"))
    (tmp_path / "producer.py").write_text(
        textwrap.dedent("""
        from datetime import UTC, datetime
        from events import Events, event
        eta = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        event(Events.DELIVERY_CREATED, {"delivery_id": "D-1", "merchant_id": "M-1", "quoted_eta": eta})
        event(Events.ROBOT_STATE_CHANGED, {"robot_id": "R-1", "to_state": "offline"})
    """)
    )
    run = subprocess.run([sys.executable, "producer.py"], cwd=tmp_path, capture_output=True,
                         text=True, check=True, timeout=60)  # fmt: skip
    lines = run.stdout.splitlines()
    assert len(lines) == 2, (run.stdout, run.stderr)
    first = json.loads(lines[0])
    assert first["event"] == "delivery.created" and first["quoted_eta"] == "2026-01-02T03:04:05Z"
    # As Vector ships it: the JSON line is the record's message.
    out = Extractor(REGISTRY, Limits(1 << 20, 64)).extract(
        ParsedBody([{"message": line, "timestamp": "2026-11-23T09:00:00Z"} for line in lines]),
        RECEIVED,
    )
    assert out.accepted == {"delivery.created": 1, "robot.state_changed": 1}


GOOD_PY_PRODUCER = """
from events import Events, event
event(Events.ROBOT_STATE_CHANGED, {"robot_id": "R-7", "to_state": "charging"})
event(Events.DELIVERY_PICKUP_COMPLETED, {"delivery_id": "D-1", "robot_id": "R-7"})
event("robot.state_changed", {"robot_id": "R-7", "to_state": "available", "reason": None})
"""

BAD_PY_PRODUCERS = {
    "bad enum value": 'event(Events.ROBOT_STATE_CHANGED, {"robot_id": "R-7", "to_state": "flying"})',
    "missing required field": 'event(Events.DELIVERY_PICKUP_COMPLETED, {"delivery_id": "D-1"})',
    "wrong type": 'event(Events.DELIVERY_PICKUP_COMPLETED, {"delivery_id": 1, "robot_id": "R"})',
    "unknown event": 'event("robot.flew_away", {"robot_id": "R-7"})',
    "misspelt field": 'event(Events.DELIVERY_PICKUP_COMPLETED, {"delivery_id": "D", "robto_id": "R"})',
}  # fmt: skip


def _mypy(tmp_path: Path, producer: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "events.py").write_text(export(REGISTRY, "python"))
    (tmp_path / "producer.py").write_text(producer)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "events.py", "producer.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_python_export_and_a_correct_producer_pass_mypy_strict(tmp_path: Path) -> None:
    run = _mypy(tmp_path, GOOD_PY_PRODUCER)
    assert run.returncode == 0, run.stdout + run.stderr


def test_mypy_rejects_every_wrong_python_producer(tmp_path: Path) -> None:
    """One mypy run over all the bad calls (mypy is slow to start): each line must error."""
    lines = list(BAD_PY_PRODUCERS.values())
    run = _mypy(tmp_path, "from events import Events, event\n" + "\n".join(lines) + "\n")
    assert run.returncode == 1, run.stdout + run.stderr
    flagged = {int(m) for m in re.findall(r"^producer\.py:(\d+): error", run.stdout, re.M)}
    for lineno, case in enumerate(BAD_PY_PRODUCERS, start=2):
        assert lineno in flagged, f"{case}: not flagged\n{run.stdout}"


def test_python_export_of_awkward_names(load_module: Any) -> None:
    """A field that is a Python keyword (functional TypedDict), quotes and backslashes in a
    description and in enum values, reserved and digit-first type names."""
    mod = load_module(export(AWKWARD, "python"))
    td = mod.EventsPayload
    assert td.__required_keys__ == {"from"} and td.__optional_keys__ == {"class", "mode"}
    assert td.__doc__ == 'events: He said "hi" \\ and """ and */ left'
    mode = typing.get_args(typing.get_type_hints(td, include_extras=True)["mode"])[0]
    assert typing.get_args(typing.get_args(mode)[0]) == ("a\\b", 'q"', "nl\n", "*/")
    assert (mod.Events.EVENTS, mod.Events.NONE, mod.Events.E_2FA_SENT) == (
        "events",
        "none",
        "2fa.sent",
    )
    payloads = mod.EVENT_PAYLOADS
    assert payloads == {
        "events": td,
        "none": mod.NonePayload,
        "2fa.sent": mod.Event2faSent,
    }


# ------------------------------------------------------------------------------ JSON Schema


#: Every field type, required and optional enums, PII, `extra: allow`.
ALL_TYPES = parse_registry("""
version: 1
entities: [robot_id]
events:
  t.all:
    description: Every type.
    owner: test
    fields:
      robot_id: {type: string, required: true}
      s: {type: string, enum: [a, b]}
      i: {type: integer}
      n: {type: number}
      b: {type: boolean}
      ts: {type: timestamp}
      o: {type: object}
      arr: {type: array}
      secret: {type: string, pii: drop}
  t.open:
    extra: allow
    fields:
      mode: {type: string, required: true, enum: [x, y]}
""")


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    # `format: date-time` is only checked with a format checker that knows RFC 3339.
    assert not Draft202012Validator.FORMAT_CHECKER.conforms("yesterday", "date-time"), (
        "jsonschema cannot check date-time here: install rfc3339-validator"
    )
    return json.loads(export(REGISTRY, "jsonschema"))


def validator(schema: dict[str, Any], event: str | None = None) -> Draft202012Validator:
    """The whole registry (any event), or one event's self-contained schema."""
    target = schema if event is None else schema["$defs"][event]
    return Draft202012Validator(target, format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_json_schema_is_valid_draft_2020_12(schema: dict[str, Any]) -> None:
    """Against the 2020-12 meta-schema: a registry using every feature, and the bundled one's
    root with a few events (jsonschema's meta-validation costs ~0.1 s per event schema; every
    event schema comes from the same function, and all are exercised by samples below)."""
    Draft202012Validator.check_schema(json_schema(ALL_TYPES))
    few = ["robot.state_changed", "robot.error", "delivery.created"]
    Draft202012Validator.check_schema(
        schema | {"$defs": {n: schema["$defs"][n] for n in few},
                  "anyOf": [{"$ref": f"#/$defs/{n}"} for n in few]}
    )  # fmt: skip
    with pytest.raises(SchemaError):  # the check does check
        Draft202012Validator.check_schema(schema["$defs"]["robot.error"] | {"type": "objekt"})


def test_json_schema_document_layout(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["$defs"]) == set(REGISTRY.events)
    assert len(schema["anyOf"]) == len(REGISTRY.events)
    sc = schema["$defs"]["robot.state_changed"]
    assert sc["x-owner"] == "fleet"
    assert sc["anyOf"][0]["properties"]["event"] == {"const": "robot.state_changed"}
    payload = sc["else"]
    assert payload["required"] == ["robot_id", "to_state"]
    assert payload["properties"]["to_state"]["enum"][:2] == ["available", "assigned"]
    assert payload["properties"]["customer_phone"]["x-pii"] == "hash"
    assert payload["additionalProperties"] is True
    assert sc["then"]["properties"]["properties"] == payload
    assert schema["$defs"]["delivery.created"]["else"]["properties"]["quoted_eta"]["format"] == (
        "date-time"
    )
    assert "$ref" not in json.dumps(schema["$defs"])  # each event schema stands alone


def _ok(**kw: Any) -> dict[str, Any]:
    return {"event": "delivery.pickup_completed", "delivery_id": "D-1", "robot_id": "R-1", **kw}


GOOD = [
    _ok(),
    _ok(trip_id=None, merchant_id="M-1", undeclared="kept or dropped, never rejected"),
    _ok(timestamp="2026-11-23T08:30:00.123Z", event_id="evt-1"),
    _ok(timestamp=1795000000123),
    _ok(time="2026-11-23T08:30:00+01:00"),
    {"evt.name": "delivery.pickup_completed", "delivery_id": "D-1", "robot_id": "R-1"},
    {"evt": {"name": "delivery.pickup_completed"}, "delivery_id": "D-1", "robot_id": "R-1"},
    {"event": "delivery.pickup_completed", "properties": {"delivery_id": "D-1", "robot_id": "R"}},
    {"event": "robot.state_changed", "robot_id": "R-1", "to_state": "charging"},
    {"event": "robot.state_changed", "robot_id": "R-1", "to_state": "error", "from_state": None},
    {"event": "robot.error", "robot_id": "R-1", "error_code": "E1", "severity": "warning"},
    {"event": "delivery.created", "delivery_id": "D", "merchant_id": "M",
     "quoted_eta": "2026-11-23T09:30:00Z"},
    {"event": "order_tracker_rating_submit", "rating": 4, "delivery_id": "D"},
    {"event": "order_tracker_rating_submit"},
]  # fmt: skip

BAD = [
    {"event": "delivery.pickup_completed", "delivery_id": "D-1"},  # required missing
    _ok(robot_id=None),  # null for a required field
    _ok(delivery_id=True),  # wrong type
    _ok(delivery_id={"id": "D-1"}),  # wrong type
    _ok(timestamp="yesterday"),  # envelope time unreadable
    _ok(timestamp=True),
    {"event": "delivery.pickup_completed", "properties": {"delivery_id": "D-1"},
     "robot_id": "R-1"},  # properties present: fields are read from there only
    {"event": "robot.state_changed", "robot_id": "R-1", "to_state": "flying"},  # enum
    {"event": "robot.state_changed", "robot_id": "R-1"},  # required enum field missing
    {"event": "robot.error", "robot_id": "R-1", "error_code": "E1", "severity": "fatal"},
    {"event": "delivery.created", "delivery_id": "D", "merchant_id": "M",
     "quoted_eta": "next tuesday"},  # timestamp field
    {"event": "order_tracker_rating_submit", "rating": "five"},
    {"event": "order_tracker_rating_submit", "rating": 4.5},
    {"event": "delivery.teleported", "delivery_id": "D-1"},  # not a registry event
]  # fmt: skip


@pytest.mark.parametrize("record", GOOD, ids=lambda r: json.dumps(r)[:60])
def test_json_schema_accepts_good_events(schema: dict[str, Any], record: dict) -> None:
    v = validator(schema)
    assert not list(v.iter_errors(record)), [e.message for e in v.iter_errors(record)]
    name = record.get("event") or record.get("evt.name") or record["evt"]["name"]
    assert validator(schema, name).is_valid(record)


@pytest.mark.parametrize("record", BAD, ids=lambda r: json.dumps(r)[:60])
def test_json_schema_rejects_bad_events(schema: dict[str, Any], record: dict) -> None:
    assert not validator(schema).is_valid(record)


@pytest.mark.parametrize(
    ("record", "needle"),
    [
        ({"event": "robot.state_changed", "robot_id": "R"}, "'to_state' is a required property"),
        ({"event": "robot.state_changed", "robot_id": "R", "to_state": "flying"},
         "'flying' is not one of"),
        ({"event": "delivery.created", "delivery_id": "D", "merchant_id": "M",
          "quoted_eta": "next tuesday"}, "is not a 'date-time'"),
    ],
)  # fmt: skip
def test_json_schema_errors_name_the_problem(
    schema: dict[str, Any], record: dict, needle: str
) -> None:
    errors = [e.message for e in validator(schema, record["event"]).iter_errors(record)]
    assert any(needle in m for m in errors), errors


@pytest.mark.parametrize("record", GOOD + BAD, ids=lambda r: json.dumps(r)[:60])
def test_json_schema_verdict_equals_the_extractors(schema: dict[str, Any], record: dict) -> None:
    assert validator(schema).is_valid(record) == ingest_accepts(record)


def test_every_event_minimal_and_full_samples_agree(schema: dict[str, Any]) -> None:
    """For every event of the bundled registry: a body with just its required fields, and one
    with all fields, is valid and accepted; dropping any required field is invalid and
    rejected."""
    values = {"string": "x-1", "integer": 7, "number": 1.5, "boolean": True,
              "timestamp": "2026-01-02T03:04:05Z", "object": {"k": [1]}, "array": [1, "a"]}  # fmt: skip
    for name, ev in REGISTRY.events.items():
        v = validator(schema, name)
        fields = ev.spec.fields
        full = {f: fs.enum[-1] if fs.enum else values[fs.type] for f, fs in fields.items()}
        minimal = {f: x for f, x in full.items() if fields[f].required}
        for body in ({"event": name, **minimal}, {"event": name, **full}):
            assert v.is_valid(body) and ingest_accepts(body), body
        for f in minimal:
            body = {"event": name, **{k: x for k, x in minimal.items() if k != f}}
            assert not v.is_valid(body) and not ingest_accepts(body), body


@pytest.mark.parametrize(
    ("record", "why"),
    [
        (_ok(robot_id=123), "ids logged as numbers are still ids (coerced to text)"),
        (_ok(event_id=12345), "an unusable event_id is ignored (a content hash is used)"),
        (_ok(timestamp="2026-11-23T08:30:00"), "a time without offset is read as UTC"),
        (_ok(timestamp="1795000000"), "epoch seconds as text"),
        ({"event": "order_tracker_rating_submit", "rating": "4"}, "numeric text for an integer"),
        ({"event": "delivery.created", "delivery_id": "D", "merchant_id": "M",
          "quoted_eta": 1795000000}, "epoch seconds for a timestamp field"),
    ],
)  # fmt: skip
def test_ingest_is_more_lenient_than_the_contract_here(
    schema: dict[str, Any], record: dict, why: str
) -> None:
    """Pinned divergences (documented in the README): ingest accepts these non-canonical
    forms; the schema — what producers should send — does not."""
    assert ingest_accepts(record), why
    assert not validator(schema).is_valid(record), why


def test_schema_accepts_times_ingest_refuses_as_out_of_range(schema: dict[str, Any]) -> None:
    """The one divergence the other way: ingest refuses event times outside 1970-2200 (they are
    defaults like 0001-01-01, not times), which `format: date-time` cannot express."""
    record = _ok(timestamp="2300-01-01T00:00:00Z")
    assert validator(schema).is_valid(record) and not ingest_accepts(record)


def _all(**kw: Any) -> dict[str, Any]:
    return {"event": "t.all", "robot_id": "R-1", **kw}


ALL_TYPES_SAMPLES = [
    (_all(), True),
    (_all(s="a", i=-(2**63), n=1, b=False, ts="2026-01-01T00:00:00Z", o={}, arr=[], secret="x"), True),
    (_all(s=None, i=None, n=None, b=None, ts=None, o=None, arr=None), True),
    (_all(s="c"), False),
    (_all(i=2**63), False),
    (_all(i=1.5), False),
    (_all(n="abc"), False),
    (_all(b=5), False),
    (_all(o=[1]), False),
    (_all(arr={"a": 1}), False),
    (_all(ts="soon"), False),
    ({"event": "t.all"}, False),
    ({"event": "t.open", "mode": "x", "anything": {"nested": [1]}}, True),
    ({"event": "t.open", "mode": "z"}, False),
    ({"event": "t.open", "properties": {"mode": "y", "more": 1}}, True),
]  # fmt: skip


@pytest.mark.parametrize(("record", "valid"), ALL_TYPES_SAMPLES, ids=lambda r: json.dumps(r)[:50])
def test_every_field_type_schema_verdict_equals_the_extractors(record: dict, valid: bool) -> None:
    v = Draft202012Validator(
        json_schema(ALL_TYPES), format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    assert v.is_valid(record) == valid
    assert ingest_accepts(record, ALL_TYPES) == valid


def test_extra_allow_event_keeps_undeclared_fields_and_schema_says_so() -> None:
    reg = parse_registry(
        "version: 1\nevents:\n  a.b:\n    extra: allow\n    fields:\n"
        "      x: {type: string, required: true}\n"
    )
    doc = json_schema(reg)
    assert "kept" in doc["$defs"]["a.b"]["else"]["$comment"]
    record = {"event": "a.b", "x": "1", "y": {"z": 2}}
    assert Draft202012Validator(doc).is_valid(record) and ingest_accepts(record, reg)


# ------------------------------------------------------------------------------ the command


@pytest.mark.parametrize("fmt", ["jsonschema", "typescript", "python"])
def test_cli_export_prints_to_stdout(
    fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = tmp_path / "r.yaml"
    reg.write_text("version: 1\nevents:\n  a.b:\n    fields:\n      x: {type: string}\n")
    assert main(["registry", "export", "--format", fmt, str(reg)]) == 0
    out = capsys.readouterr().out
    assert out == export(load_registry(reg), fmt)
    assert "a.b" in out and "delivery.created" not in out


def test_cli_export_defaults_to_the_configured_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["registry", "export", "--format", "python"]) == 0
    assert "DELIVERY_PICKUP_COMPLETED" in capsys.readouterr().out
    reg = tmp_path / "r.yaml"
    reg.write_text("version: 1\nevents:\n  only.this: {}\n")
    monkeypatch.setenv("LOGSHIP_REGISTRY_PATH", str(reg))
    assert main(["registry", "export", "--format", "typescript"]) == 0
    out = capsys.readouterr().out
    assert "ONLY_THIS" in out and "DELIVERY_PICKUP_COMPLETED" not in out


def test_cli_export_needs_a_known_format(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ei:
        main(["registry", "export", "--format", "avro"])
    assert ei.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
