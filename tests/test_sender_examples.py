"""The sender configurations in examples/ work against a real logship.

Each test reads its example file, derives the request that sender would make from it (path,
method, Content-Type, Content-Encoding, auth header with the token taken from the environment,
a body in that sender's shape — the rules are those of the senders' sources: Vector 0.58
`src/sinks/http` and `src/sinks/datadog/logs`, the Datadog Agent's `comp/logs/agent/config` and
`comp/logs-library/client/http`, Fluent Bit's `plugins/out_http`), sends it to a running app
that checks tokens, and asserts it is accepted — and refused with the wrong token."""

from __future__ import annotations

import gzip
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
import yaml
from aiohttp.test_utils import TestClient

from ingest.app import STATE, build_app
from ingest.config import IngestSettings, parse_addr
from tests.conftest import make_settings
from tests.ingest.test_senders import VECTOR_UA, lake_rows
from tests.payloads import TS, encode, noise_record, pickup, vector_record

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TOKEN = "example-token-5f0c2a9d"
GOOD = {"LOGSHIP_TOKEN": TOKEN, "DD_LOGS_CONFIG_API_KEY": TOKEN}
WRONG = {"LOGSHIP_TOKEN": "not-the-token", "DD_LOGS_CONFIG_API_KEY": "not-the-token"}
INGEST_PORT = parse_addr(IngestSettings.model_fields["http_addr"].default)[1]


def rfc3339_ms(ts: str) -> int:
    """Vector's RFC 3339 timestamp (nanoseconds) as the integer milliseconds Datadog takes."""
    whole, _, frac = ts.rstrip("Z").partition(".")
    secs = int(datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp())
    return secs * 1000 + int((frac + "000")[:3])


TS_MS = rfc3339_ms(TS)


@dataclass
class Request:
    method: str
    url: str  # as the sender would build it; the test client only uses its path
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.url).path


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path) -> TestClient:
    return await aiohttp_client(build_app(make_settings(tmp_path, auth_tokens=TOKEN)))


def load(rel: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / rel).read_text())


def expand_env(value: str, env: Mapping[str, str]) -> str:
    """`${VAR}` / `$VAR` interpolation as Vector and Fluent Bit do it; an unset variable fails."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        assert name in env, f"the example needs ${name}, which the test does not provide"
        return env[name]

    out = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", sub, value)
    assert "$" not in out, value
    return out


def events(tag: str) -> list[dict[str, Any]]:
    return [pickup(delivery_id=f"D-example-{tag}-{i}") for i in range(2)]


async def send(client: TestClient, req: Request) -> Any:
    return await client.request(req.method, req.path, data=req.body, headers=req.headers)


def check_target(url: str) -> None:
    """Every example points at logship's ingest Service on the default ingest port."""
    parts = urlsplit(url)
    assert parts.scheme == "http", url  # in-cluster plain HTTP (no TLS on the Service)
    assert parts.hostname == "logship-ingest.logship.svc", url
    assert parts.port == INGEST_PORT, url


async def assert_refused_with(client: TestClient, wrong: Request, tmp_path: Path) -> None:
    before = len(await lake_rows(client, tmp_path))
    resp = await send(client, wrong)
    assert resp.status == 401, await resp.text()  # the contract: 401, dropped, not retried
    assert len(await lake_rows(client, tmp_path)) == before  # nothing kept


# ---------------------------------------------------------------------------- Vector


def vector_sink(cfg: dict[str, Any], type_: str) -> dict[str, Any]:
    (sink,) = [s for s in cfg["sinks"].values() if s["type"] == type_]
    return sink


def vector_source_types(cfg: dict[str, Any], inputs: list[str]) -> set[str]:
    """The source types a component's inputs lead back to, through transforms."""
    found: set[str] = set()
    for name in inputs:
        if name in cfg.get("sources", {}):
            found.add(cfg["sources"][name]["type"])
        else:
            found |= vector_source_types(cfg, cfg["transforms"][name]["inputs"])
    return found


def vector_compression(sink: dict[str, Any], default: str) -> str | None:
    """The Content-Encoding of Vector's `compression` option (src/sinks/util/buffer/compression.rs)."""
    c = sink.get("compression", default)
    algorithm = c["algorithm"] if isinstance(c, dict) else c
    return {"none": None, "gzip": "gzip", "zlib": "deflate", "zstd": "zstd",
            "snappy": "snappy"}[algorithm]  # fmt: skip


def vector_http_request(
    sink: dict[str, Any], env: Mapping[str, str], records: list[Any]
) -> Request:
    """What Vector's http sink sends for one batch (src/sinks/http/{config,encoder,service}.rs)."""
    codec = sink["encoding"]["codec"]
    assert codec == "json", "the example sends JSON records"
    framing = sink.get("framing") or {"method": "character_delimited"}  # the json codec's default
    encoded = [orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in records]
    if framing["method"] == "character_delimited":
        assert framing.get("character_delimited", {"delimiter": ","})["delimiter"] == ","
        body, ctype = b"[" + b",".join(encoded) + b"]", "application/json"
    elif framing["method"] == "newline_delimited":
        body, ctype = b"\n".join(encoded), "application/x-ndjson"
    else:
        raise AssertionError(f"framing {framing} does not make a JSON batch")
    headers = {"Content-Type": ctype, "Accept-Encoding": "identity", "User-Agent": VECTOR_UA}
    encoding = vector_compression(sink, "none")
    if encoding:
        headers["Content-Encoding"] = encoding
    auth = sink.get("auth")
    assert auth and auth["strategy"] == "bearer", "logship needs a bearer token"
    headers["Authorization"] = f"Bearer {expand_env(auth['token'], env)}"
    for k, v in (sink.get("request") or {}).get("headers", {}).items():
        headers[k] = expand_env(v, env)
    return Request(
        sink.get("method", "post").upper(), sink["uri"], headers, encode(body, encoding or "")
    )


def assert_vector_delivery_settings(
    cfg: dict[str, Any], sink: dict[str, Any], server: IngestSettings
) -> None:
    # A batch (measured uncompressed by Vector) always fits logship's limits: a 413 is dropped.
    max_bytes = sink["batch"]["max_bytes"]
    assert 0 < max_bytes < server.max_body_bytes and max_bytes < server.max_decompressed_bytes
    assert 0 < sink["batch"]["timeout_secs"] <= 5
    assert sink["acknowledgements"]["enabled"] is True
    request = sink["request"]
    assert request["timeout_secs"] >= 30  # a 2xx waits for logship's fsync
    assert request["retry_attempts"] >= 10_000  # 503 (spool full, draining) is retried, not dropped
    assert request["retry_max_duration_secs"] <= 60
    assert sink.get("retry_strategy", {"type": "default"})["type"] == "default"  # retries 429/5xx
    buffer = sink["buffer"]
    assert buffer["type"] == "disk" and buffer["when_full"] == "block"
    assert buffer["max_size"] >= 268435488  # Vector refuses a smaller disk buffer
    assert cfg["data_dir"]  # disk buffers need the global data_dir
    assert vector_source_types(cfg, sink["inputs"]) == {"kubernetes_logs"}


async def test_vector_http_sink_example(client: TestClient, tmp_path: Path) -> None:
    cfg = load("vector/http-sink.yaml")
    sink = vector_sink(cfg, "http")
    assert_vector_delivery_settings(cfg, sink, client.app[STATE].settings)
    check_target(sink["uri"])
    assert urlsplit(sink["uri"]).path == "/v1/logs"

    # The healthcheck: HEAD on healthcheck.uri with the sink's auth; only a 200 is healthy.
    hc = sink["healthcheck"]
    assert hc["enabled"] is True
    check_target(hc["uri"])
    resp = await client.head(urlsplit(hc["uri"]).path,
                             headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
    assert resp.status == 200

    evs = events("vector-http")
    records = [vector_record(e) for e in evs] + [noise_record(i) for i in range(2)]
    req = vector_http_request(sink, GOOD, records)
    assert (req.method, req.headers["Content-Type"]) == ("POST", "application/json")
    assert req.headers["Content-Encoding"] == "gzip"
    assert orjson.loads(gzip.decompress(req.body))[0]["source_type"] == "kubernetes_logs"
    resp = await send(client, req)
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"accepted": 2, "discarded": 2, "rejected": 0}
    rows = await lake_rows(client, tmp_path)
    assert sorted(r["event_id"] for r in rows) == sorted(e["event_id"] for e in evs)
    assert {r["service"] for r in rows} == {"dispatch"}  # kubernetes.pod_labels.app
    assert {r["host"] for r in rows} == {"node-1"}  # kubernetes.pod_node_name

    await assert_refused_with(client, vector_http_request(sink, WRONG, records), tmp_path)


def eval_vrl(expr: str, event: dict[str, Any]) -> Any:
    """The small part of VRL the example's remap uses: string literals, paths, `+` on strings,
    `||` (null/false falls through), `string(x)` (fails on a non-string) and `??` (catches it)."""
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|\.[A-Za-z_][\w.]*|\|\||\?\?|string!?\(|[+()]', expr)
    assert "".join(tokens) == re.sub(r"\s+", "", expr), f"VRL the test cannot evaluate: {expr}"
    pos = 0

    class Failure(Exception):
        pass

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def atom() -> Any:
        tok = take()
        if tok.startswith('"'):
            return orjson.loads(tok)
        if tok.startswith("."):
            value: Any = event
            for part in tok[1:].split("."):
                value = value.get(part) if isinstance(value, dict) else None
            return value
        if tok == "(":
            value = coalesce()
            assert take() == ")"
            return value
        if tok.startswith("string"):
            value = coalesce()
            assert take() == ")"
            if not isinstance(value, str):
                raise Failure
            return value
        raise AssertionError(tok)

    def plus() -> Any:
        value = atom()
        while peek() == "+":
            take()
            right = atom()
            assert isinstance(value, str) and isinstance(right, str)
            value += right
        return value

    def either() -> Any:
        value = plus()
        while peek() == "||":
            take()
            right = plus()
            value = right if value is None or value is False else value
        return value

    def coalesce() -> Any:
        try:
            value = either()
        except Failure:
            value = None
            failed = True
        else:
            failed = False
        while peek() == "??":
            take()
            right = either()
            if failed:
                value, failed = right, False
        if failed:
            raise Failure
        return value

    result = coalesce()
    assert pos == len(tokens), expr
    return result


def datadog_logs_record(
    cfg: dict[str, Any], sink: dict[str, Any], record: dict[str, Any]
) -> dict[str, Any]:
    """One event as the datadog_logs sink sends it: the remap's reserved attributes set at the
    top level, `timestamp` as integer milliseconds (src/sinks/datadog/logs/sink.rs)."""
    out = dict(record)
    for name in sink["inputs"]:
        transform = cfg.get("transforms", {}).get(name)
        if transform is None:
            continue
        assert transform["type"] == "remap"
        for line in transform["source"].strip().splitlines():
            m = re.fullmatch(r"\s*\.(\w+)\s*=\s*(.+?)\s*", line)
            assert m, f"remap line the test cannot read: {line!r}"
            out[m.group(1)] = eval_vrl(m.group(2), out)
    out["timestamp"] = rfc3339_ms(record["timestamp"])
    return out


async def test_vector_datadog_logs_sink_example(client: TestClient, tmp_path: Path) -> None:
    cfg = load("vector/datadog-logs-sink.yaml")
    sink = vector_sink(cfg, "datadog_logs")
    assert_vector_delivery_settings(cfg, sink, client.app[STATE].settings)
    check_target(sink["endpoint"])
    url = sink["endpoint"].rstrip("/") + "/api/v2/logs"  # the sink appends the intake path
    validate = sink["endpoint"].rstrip("/") + "/api/v1/validate"

    def request(env: Mapping[str, str], body: bytes) -> Request:
        encoding = vector_compression(sink, "zstd")  # the sink's default is zstd
        headers = {"Content-Type": "application/json", "DD-API-KEY": expand_env(sink["default_api_key"], env),
                   "DD-EVP-ORIGIN": "vector", "DD-EVP-ORIGIN-VERSION": "0.58.0",
                   "Accept-Encoding": "identity", "User-Agent": VECTOR_UA}  # fmt: skip
        if encoding:
            headers["Content-Encoding"] = encoding
        return Request("POST", url, headers, encode(body, encoding or ""))

    # Vector's healthcheck: GET /api/v1/validate with the key; only a 200 is healthy.
    key = expand_env(sink["default_api_key"], GOOD)
    resp = await client.get(urlsplit(validate).path, headers={"DD-API-KEY": key})
    assert resp.status == 200 and await resp.json() == {"valid": True}
    bad_key = expand_env(sink["default_api_key"], WRONG)
    assert (
        await client.get(urlsplit(validate).path, headers={"DD-API-KEY": bad_key})
    ).status == 403

    evs = events("vector-dd")
    records = [datadog_logs_record(cfg, sink, vector_record(e)) for e in evs]
    records += [datadog_logs_record(cfg, sink, noise_record(i)) for i in range(2)]
    reserved = {"message", "ddsource", "ddtags", "hostname", "service", "status", "timestamp"}
    assert reserved <= set(records[0]), "the remap sets Datadog's reserved attributes"
    assert records[0]["service"] == "dispatch" and records[0]["hostname"] == "node-1"
    assert records[0]["ddtags"] == "kube_namespace:prod"
    body = orjson.dumps(records)
    req = request(GOOD, body)
    assert req.headers["Content-Encoding"] == "gzip"
    resp = await send(client, req)
    assert resp.status == 202, await resp.text()
    rows = await lake_rows(client, tmp_path)
    assert sorted(r["event_id"] for r in rows) == sorted(e["event_id"] for e in evs)
    assert {(r["service"], r["host"]) for r in rows} == {("dispatch", "node-1")}
    assert {r["occurred_at"] for r in rows} == {"2026-11-23T08:30:00.123000Z"}

    await assert_refused_with(client, request(WRONG, body), tmp_path)


# ---------------------------------------------------------------------------- Datadog Agent


def agent_setting(
    cfg: dict[str, Any], env: Mapping[str, str], key: str, default: Any = None
) -> Any:
    """A datadog.yaml setting; the environment (DD_ + the key, dots as underscores) wins."""
    env_name = "DD_" + key.upper().replace(".", "_")
    if env_name in env:
        return env[env_name]
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def agent_request(
    cfg: dict[str, Any], env: Mapping[str, str], items: list[dict[str, Any]]
) -> Request:
    """What the Agent's HTTP logs destination posts (comp/logs-library/client/http/destination.go)."""
    dd_url = agent_setting(cfg, env, "logs_config.logs_dd_url")
    if dd_url.startswith(("http://", "https://")):
        base = dd_url
    else:  # `<HOST>:<PORT>`, TLS unless logs_no_ssl
        scheme = "http" if agent_setting(cfg, env, "logs_config.logs_no_ssl", False) else "https"
        base = f"{scheme}://{dd_url}"
    v2 = agent_setting(cfg, env, "logs_config.use_v2_api", True)
    url = base.rstrip("/") + ("/api/v2/logs" if v2 else "/v1/input")
    # logs_config.api_key, when set, is the key of the logs pipeline; else the global api_key.
    key = agent_setting(cfg, env, "logs_config.api_key") or agent_setting(cfg, env, "api_key")
    assert key, "no API key for the logs pipeline"
    encoding = None
    if agent_setting(cfg, env, "logs_config.use_compression", True):
        encoding = agent_setting(cfg, env, "logs_config.compression_kind", "zstd")
        assert encoding in ("gzip", "zstd")
    headers = {"DD-API-KEY": key, "Content-Type": "application/json",
               "User-Agent": "datadog-agent/7.60.0", "DD-PROTOCOL": "agent-json",
               "DD-EVP-ORIGIN": "agent", "DD-EVP-ORIGIN-VERSION": "7.60.0",
               "dd-message-timestamp": str(TS_MS), "dd-current-timestamp": str(TS_MS + 2)}  # fmt: skip
    if encoding:
        headers["Content-Encoding"] = encoding
    return Request("POST", url, headers, encode(orjson.dumps(items), encoding or ""))


async def test_datadog_agent_example(client: TestClient, tmp_path: Path) -> None:
    text = (EXAMPLES / "datadog-agent" / "datadog.yaml").read_text()
    cfg = yaml.safe_load(text)
    assert cfg["logs_enabled"] is True
    logs = cfg["logs_config"]
    # HTTP, never the Agent's TCP protocol (logship does not speak it).
    assert logs.get("force_use_http") is True or logs.get("use_http") is True
    assert not logs.get("force_use_tcp") and not logs.get("use_tcp")
    # The token comes from the environment, and only for logs: never written in the file.
    assert "api_key" not in cfg and "api_key" not in logs
    assert "DD_LOGS_CONFIG_API_KEY" in text
    assert 0 < logs["batch_max_content_size"] < client.app[STATE].settings.max_body_bytes

    evs = events("agent")
    items = [{"message": orjson.dumps(e).decode(), "status": "info", "timestamp": TS_MS,
              "hostname": "robot-gw-1", "service": "dispatch", "ddsource": "python",
              "ddtags": "env:prod"} for e in evs]  # fmt: skip
    items += [{**items[0], "message": f"GET /health 200 {i}"} for i in range(2)]
    req = agent_request(cfg, GOOD, items)
    check_target(req.url)
    assert req.path == "/api/v2/logs" and req.headers["Content-Encoding"] == "gzip"
    resp = await send(client, req)
    assert resp.status == 202, await resp.text()
    rows = await lake_rows(client, tmp_path)
    assert sorted(r["event_id"] for r in rows) == sorted(e["event_id"] for e in evs)
    assert {(r["service"], r["host"]) for r in rows} == {("dispatch", "robot-gw-1")}

    await assert_refused_with(client, agent_request(cfg, WRONG, items), tmp_path)


# ---------------------------------------------------------------------------- Fluent Bit


def fluent_bit_http_output(cfg: dict[str, Any]) -> dict[str, Any]:
    (out,) = [o for o in cfg["pipeline"]["outputs"] if o["name"] == "http"]
    return out


def fluent_bit_request(
    out: dict[str, Any], env: Mapping[str, str], records: list[dict[str, Any]]
) -> Request:
    """What out_http sends for one chunk (plugins/out_http/http.c, src/flb_pack.c)."""
    tls = out.get("tls", False)
    scheme = "https" if tls is True or str(tls).lower() == "on" else "http"
    url = f"{scheme}://{out['host']}:{out.get('port', 80)}{out.get('uri', '/')}"
    fmt = out.get("format", "json")
    date_key = out.get("json_date_key", "date")
    date_format = out.get("json_date_format", "double")
    assert date_format == "double", "the test builds `date` as seconds with fractions"
    rows = []
    for rec in records:
        row = {date_key: rec["_time"]} if date_key not in (False, "false", "off") else {}
        row.update({k: v for k, v in rec.items() if k != "_time"})  # the date key comes first
        rows.append(row)
    if fmt == "json":
        body, ctype = orjson.dumps(rows), "application/json"
    elif fmt == "json_lines":
        body, ctype = b"".join(orjson.dumps(r) + b"\n" for r in rows), "application/x-ndjson"
    else:
        raise AssertionError(f"format {fmt} is not one logship reads")
    headers = {"Content-Type": ctype, "User-Agent": "Fluent-Bit"}
    encoding = out.get("compress")
    if encoding:
        headers["Content-Encoding"] = encoding
    extra = out.get("header", [])
    for h in [extra] if isinstance(extra, str) else extra:
        name, value = h.split(None, 1)  # `header <name> <value>`: the value keeps its spaces
        headers[name] = expand_env(value, env)
    return Request(
        str(out.get("http_method", "POST")).upper(), url, headers, encode(body, encoding or "")
    )


async def test_fluent_bit_example(client: TestClient, tmp_path: Path) -> None:
    cfg = load("fluent-bit/fluent-bit.yaml")
    out = fluent_bit_http_output(cfg)
    assert out.get("format", "json") == "json"
    assert str(out.get("retry_limit")).lower() in ("no_limits", "false")  # never drop a chunk
    (tail,) = [i for i in cfg["pipeline"]["inputs"] if i["name"] == "tail"]
    assert tail["storage.type"] == "filesystem" and cfg["service"]["storage.path"]
    filters = {f["name"]: f for f in cfg["pipeline"].get("filters", [])}
    # merge_log would lift the app's JSON to the top level next to the pod metadata; logship
    # reads the event from `log`.
    assert filters["kubernetes"].get("merge_log") in (False, "off", None)

    evs = events("fluent-bit")
    # What Fluent Bit's kubernetes filter adds (not Vector's key names).
    k8s = {"pod_name": "dispatch-7d9f-abcde", "namespace_name": "prod",
           "pod_id": "4f1c2a9e-0000-4000-8000-000000000001",
           "labels": {"app": "dispatch", "pod-template-hash": "7d9f"}, "host": "node-2",
           "container_name": "dispatch-main", "docker_id": "0123abcd",
           "container_image": "registry.example/dispatch:1.4.2"}  # fmt: skip
    lines = [orjson.dumps(e).decode() for e in evs] + ["GET /health 200", "noise"]
    records = [{"_time": 1795422600.25 + i, "time": "2026-11-23T08:30:00.250000000Z",
                "stream": "stdout", "_p": "F", "log": line, "kubernetes": k8s}
               for i, line in enumerate(lines)]  # fmt: skip
    req = fluent_bit_request(out, GOOD, records)
    check_target(req.url)
    assert req.path == "/v1/logs" and req.method == "POST"
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Content-Encoding"] == "gzip"
    assert req.headers["Authorization"] == f"Bearer {TOKEN}"
    resp = await send(client, req)
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"accepted": 2, "discarded": 2, "rejected": 0}
    rows = await lake_rows(client, tmp_path)
    assert sorted(r["event_id"] for r in rows) == sorted(e["event_id"] for e in evs)
    assert sorted(r["occurred_at"] for r in rows) == [
        "2026-11-23T08:30:00.250000Z", "2026-11-23T08:30:01.250000Z"]  # fmt: skip
    assert {r["service"] for r in rows} == {"dispatch"}  # kubernetes.labels.app
    assert {r["host"] for r in rows} == {"node-2"}  # kubernetes.host, the node

    await assert_refused_with(client, fluent_bit_request(out, WRONG, records), tmp_path)


def test_every_example_is_checked() -> None:
    """A new example file gets a test here, or this fails."""
    checked = {"vector/http-sink.yaml", "vector/datadog-logs-sink.yaml",
               "datadog-agent/datadog.yaml", "fluent-bit/fluent-bit.yaml"}  # fmt: skip
    found = {p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*.y*ml")}
    assert found == checked
