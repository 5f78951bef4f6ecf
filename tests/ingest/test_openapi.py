"""The HTTP contract in ``ingest/data/openapi.yaml`` (docs/architecture.md#http-api) against the
code and a live server.

* The document is valid OpenAPI, names exactly the routes the app registers, every status and
  error reason of :mod:`ingest.status` (with ``Retry-After`` where the sender must wait), and is
  what ``GET /openapi.yaml`` serves.
* schemathesis generates requests for every operation (positive and negative, every body
  format and ``Content-Encoding``, bodies really compressed as their header says) and sends them
  to a live ``logship ingest`` process; every response must conform to the document (status,
  content type, headers, body schema) and no request may get a 5xx.
* Every error reason of :mod:`ingest.status` is produced on a real socket (503s by driving the
  server's state, the 408 by a body that stalls) and its response checked against the document.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import schemathesis
import yaml
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import ingest
from ingest.app import STATE, build_app
from ingest.openapi import spec_bytes
from ingest.records import BodyFormat, body_format
from ingest.spool import SpoolWriteError
from ingest.status import DECISIONS
from tests.conftest import free_port, make_settings
from tests.payloads import encode, pickup, vector_record

SPEC_BYTES = spec_bytes()
SPEC: dict[str, Any] = yaml.safe_load(SPEC_BYTES)
TOKEN = "openapi-contract-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
POST_ROUTES = ("/v1/logs", "/api/v2/logs", "/v1/input")
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
NDJSON_TYPES = (
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonlines",
    "application/x-jsonlines",
    "application/json-lines",
    "application/jsonl",
)
#: Content-Encoding values the server decodes (case-insensitive), and how tests.payloads makes them.
ENCODINGS = {"gzip": "gzip", "x-gzip": "gzip", "deflate": "deflate", "zstd": "zstd",
             "snappy": "snappy", "x-snappy": "snappy"}  # fmt: skip
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
#: Per operation, examples of the fuzzing phase (the examples and coverage phases add their own,
#: about 30-60 per operation). The file runs in ~20 s on two cores (~40 s when they are busy).
MAX_EXAMPLES = 60

schema = schemathesis.openapi.from_dict(
    copy.deepcopy(SPEC),  # schemathesis may annotate its copy
    config=schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": MAX_EXAMPLES},
            "auth": {"openapi": {"bearerAuth": {"bearer": TOKEN}}},
        }
    ),
)


@schemathesis.serializer(*NDJSON_TYPES)
def _ndjson(ctx: Any, value: Any) -> bytes:
    """NDJSON bodies: a generated list becomes one JSON record per line; text goes as is."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, list):
        return b"\n".join(json.dumps(v).encode() for v in value)
    return json.dumps(value).encode()


def wire_body(case: schemathesis.Case) -> dict[str, Any]:
    """The body compressed as the case's Content-Encoding says (schemathesis only sets the
    header), so positive cases reach the parser; {} leaves the generated body as it is."""
    encoding = (case.headers or {}).get("Content-Encoding", "").strip().lower()
    if encoding not in ENCODINGS:
        return {}  # identity, or a negative (unknown) encoding: the server must answer 415
    kwargs = case.as_transport_kwargs()
    if "json" in kwargs:
        data = json.dumps(kwargs["json"]).encode()
    else:
        data = kwargs.get("data") or b""
        data = data.encode() if isinstance(data, str) else data
    return {"data": encode(data, ENCODINGS[encoding])}


# --------------------------------------------------------------------------- the document


def resolve(node: Any) -> Any:
    """Follow local `$ref`s of the document."""
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        node = SPEC
        for part in ref[2:].split("/"):
            node = node[part]
    return node


def error_reasons(response: dict[str, Any]) -> set[str]:
    """The `error` values a documented error response allows."""
    body = resolve(response["content"]["application/json"]["schema"])
    (base, narrowed) = body["allOf"]
    assert resolve(base) == SPEC["components"]["schemas"]["Error"]
    error = narrowed["properties"]["error"]
    return set(error["enum"]) if "enum" in error else {error["const"]}


def test_document_is_valid_openapi_and_versioned() -> None:
    schema.validate()  # against the OpenAPI 3.1 meta-schema bundled with schemathesis
    broken = copy.deepcopy(SPEC)
    broken["paths"]["/healthz"]["get"]["responses"] = "200"
    with pytest.raises(Exception, match="responses"):
        schemathesis.openapi.from_dict(broken).validate()
    assert SPEC["openapi"].startswith("3.1")
    assert SPEC["info"]["version"] == ingest.__version__


def test_repository_root_openapi_yaml_is_the_package_file() -> None:
    """`openapi.yaml` at the root (for people and tools browsing the repository) is a symlink
    to the package data, so there is one document; sdists and wheels carry the package file."""
    root = Path(__file__).resolve().parents[2]
    link = root / "openapi.yaml"
    assert link.is_symlink()
    assert link.resolve() == (root / "ingest" / "data" / "openapi.yaml").resolve()
    assert link.read_bytes() == SPEC_BYTES


def test_document_names_every_route_of_the_app(tmp_path: Path) -> None:
    app = build_app(make_settings(tmp_path))
    routes = {(r.method, r.resource.canonical) for r in app.router.routes() if r.resource}
    documented = {
        (method.upper(), path)
        for path, item in SPEC["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    assert {(m, p) for m, p in routes if m != "HEAD"} == documented
    # aiohttp answers HEAD on every GET route (the document says so in its description).
    assert {p for m, p in routes if m == "HEAD"} == {p for m, p in routes if m == "GET"}
    assert "HEAD" in SPEC["info"]["description"]


def test_document_names_every_status_and_reason_of_status_py() -> None:
    for path in POST_ROUTES:
        responses = SPEC["paths"][path]["post"]["responses"]
        documented: dict[str, int] = {}
        for code, response in responses.items():
            if int(code) >= 400:
                for reason in error_reasons(resolve(response)):
                    documented[reason] = int(code)
        assert documented == {r: d.status for r, d in DECISIONS.items()}, path
        for reason, decision in DECISIONS.items():
            response = resolve(responses[str(decision.status)])
            header = resolve(response.get("headers", {}).get("Retry-After", {}))
            assert bool(header.get("required")) == (decision.retry_after_s is not None), reason
        success = "200" if path == "/v1/logs" else "202"
        assert {c for c in responses if int(c) < 400} == {success}, path
    summary = resolve(SPEC["paths"]["/v1/logs"]["post"]["responses"]["200"])
    schema_ = resolve(summary["content"]["application/json"]["schema"])
    assert schema_["required"] == ["accepted", "discarded", "rejected"]


def test_document_names_every_encoding_and_body_format() -> None:
    param = resolve(SPEC["paths"]["/v1/logs"]["post"]["parameters"][0])
    assert param["name"] == "Content-Encoding"
    pattern = re.compile(param["schema"]["pattern"])
    for enc in [*ENCODINGS, "identity", "", "GZIP", "Zstd"]:
        assert pattern.fullmatch(enc), enc
    for enc in ("br", "compress", "gzip2", "lz4"):
        assert not pattern.fullmatch(enc), enc
    content = SPEC["paths"]["/v1/logs"]["post"]["requestBody"]["content"]
    formats = {ct: body_format(ct) for ct in content}
    assert formats["application/json"] is BodyFormat.JSON
    assert formats["text/plain"] is BodyFormat.TEXT
    assert {ct for ct, f in formats.items() if f is BodyFormat.NDJSON} == set(NDJSON_TYPES)
    schemes = SPEC["components"]["securitySchemes"]
    assert {(s.get("in"), s.get("name") or s.get("scheme")) for s in schemes.values()} == {
        (None, "bearer"),
        ("header", "DD-API-KEY"),
        ("query", "dd_api_key"),
    }


# --------------------------------------------------------------------------- a live server


class LiveServer:
    """`python -m ingest.cli ingest` on a free loopback port, with a token and temp dirs."""

    def __init__(self, root: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "ingest.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSHIP_")}
        env.update(
            LOGSHIP_HTTP_ADDR=f"127.0.0.1:{self.port}",
            LOGSHIP_SPOOL_DIR=str(root / "spool"),
            LOGSHIP_LAKE_URL=str(root / "lake"),
            LOGSHIP_AUTH_TOKENS=f"other-token,{TOKEN}",
            LOGSHIP_OBJECT_MAX_AGE_S="0.5",
            NO_PROXY="127.0.0.1",
        )
        for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
            env.pop(var, None)
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ingest.cli", "ingest"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.05)
        self.proc.kill()
        raise AssertionError(f"ingest did not start: {self.log.read_text()[-3000:]}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


#: Per operation: (status, Content-Encoding as sent or None, generation mode) of every schemathesis
#: request, to check that the run really reached every outcome (not 401s all the way).
SEEN: dict[str, Counter[tuple[int, str | None, str]]] = {}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("live"))
    try:
        yield server
        # After the whole run: no record ever hit the extractor's catch-all...
        text = requests.get(f"{server.url}/metrics", timeout=10).text
        internal = [ln for ln in text.splitlines()
                    if ln.startswith("logship_ingest_rejected_events_total")
                    and 'reason="internal"' in ln and float(ln.split()[-1]) > 0]  # fmt: skip
        assert not internal, internal
        # ...and every operation that ran saw its success and its refusals.
        for label, seen in SEEN.items():
            statuses = {status for status, _, _ in seen}
            if label.startswith("POST"):
                assert {415, 405} <= statuses, (label, seen)
                encodings = {enc for status, enc, _ in seen if status in (200, 202)}
                assert {"gzip", "zstd", "snappy", "deflate"} <= encodings, (label, seen)
            else:
                assert {200, 405} <= statuses, (label, seen)
            assert any(mode == "negative" for _, _, mode in seen), (label, seen)
    finally:
        code = server.stop()
    log = server.log.read_text()
    assert code == 0, log[-3000:]
    assert '"level":"error"' not in log, log[-3000:]


@schema.parametrize()
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_live_server_conforms_to_the_document(case: schemathesis.Case, live: LiveServer) -> None:
    response = case.call_and_validate(base_url=live.url, **wire_body(case))
    encoding = (case.headers or {}).get("Content-Encoding")
    if encoding is not None:
        encoding = ENCODINGS.get(encoding.strip().lower(), encoding.strip().lower() or None)
    mode = case.meta.generation.mode.value if case.meta else "explicit"
    SEEN.setdefault(case.operation.label, Counter())[(response.status_code, encoding, mode)] += 1


def test_served_document_is_the_package_file(live: LiveServer) -> None:
    resp = requests.get(f"{live.url}/openapi.yaml", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].split(";")[0] == "application/yaml"
    assert resp.content == SPEC_BYTES
    assert resp.content == (Path(ingest.__file__).parent / "data" / "openapi.yaml").read_bytes()
    assert yaml.safe_load(resp.content) == SPEC
    assert requests.head(f"{live.url}/openapi.yaml", timeout=10).status_code == 200


def credentials(scheme: dict[str, Any], token: str) -> dict[str, Any]:
    """Request kwargs carrying `token` the way a security scheme of the document says."""
    if scheme["type"] == "http":
        return {"headers": {"Authorization": f"{scheme['scheme'].title()} {token}"}}
    where = {"header": "headers", "query": "params"}[scheme["in"]]
    return {where: {scheme["name"]: token}}


def test_every_security_scheme_is_what_the_server_reads(live: LiveServer) -> None:
    body = orjson.dumps([vector_record(pickup())])
    post = schema["/v1/logs"]["POST"]
    validate = schema["/api/v1/validate"]["GET"]
    for name, scheme in SPEC["components"]["securitySchemes"].items():
        for token, status, valid_status in ((TOKEN, 200, 200), ("wrong", 401, 403)):
            kwargs = credentials(scheme, token)
            case = post.Case(media_type="application/json", body=[vector_record(pickup())])
            resp = case.call(base_url=live.url, data=body, **copy.deepcopy(kwargs))
            assert resp.status_code == status, (name, token, resp.text)
            case.validate_response(resp, checks=CONFORMANCE)
            if status == 200:
                assert resp.json() == {"accepted": 1, "discarded": 0, "rejected": 0}
            vcase = validate.Case()
            vresp = vcase.call(base_url=live.url, **kwargs)
            assert vresp.status_code == valid_status, (name, token)
            vcase.validate_response(vresp, checks=CONFORMANCE)


# --------------------------------------------------------------------------- every reason on the wire


@contextlib.contextmanager
def serve_in_thread(app: web.Application) -> Iterator[str]:
    """Run `app` on a real loopback socket, its event loop in a thread (so the test can drive
    the server's state and call it with blocking clients)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    port = free_port()

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


LIMIT = 64 * 1024
SPOOL_CAP = 4096
BODY_TIMEOUT_S = 0.5


def _state_reason(reason: str, app: web.Application, monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the server in the state that makes every batch fail with `reason`."""
    state = app[STATE]
    if reason == "draining":
        state.draining = True
    elif reason == "overloaded":  # as if other requests held the whole in-flight budget
        state.budget.used_bytes = state.budget.limit_bytes
    elif reason == "spool_write_failed":

        async def failing(items: Any) -> None:
            raise SpoolWriteError("injected: No space left on device")

        monkeypatch.setattr(state.spool, "append", failing)


def _request_for(reason: str) -> dict[str, Any]:
    """A request that fails with `reason` on a fresh server (limits: LIMIT, spool SPOOL_CAP)."""
    good = orjson.dumps([pickup(delivery_id=f"D-{i}") for i in range(3)])
    bomb = gzip.compress(b"[" + b" " * (2 * LIMIT) + b"]")
    requests_by_reason: dict[str, dict[str, Any]] = {
        "unauthorized": {"headers": {"Authorization": "Bearer nope"}, "data": good},
        "body_too_large": {"data": b" " * (LIMIT + 1) + b"[]"},
        "decompressed_too_large": {"headers": {"Content-Encoding": "gzip"}, "data": bomb},
        "unsupported_encoding": {"headers": {"Content-Encoding": "br"}, "data": good},
        "bad_compression": {"headers": {"Content-Encoding": "zstd"}, "data": encode(good, "zstd")[:-3]},
        "invalid_body": {"data": b'"a JSON string is not a batch"'},
        "draining": {"data": good},
        "overloaded": {"data": good},
        # Half a body, then nothing (sent by `stalled_call`).
        "body_read_timeout": {"data": good[: len(good) // 2], "stall": len(good)},
        "spool_write_failed": {"data": good},
        # A batch larger than the whole spool cap can never fit.
        "spool_full": {"data": orjson.dumps([pickup(delivery_id=f"D-{i}") for i in range(40)])},
    }  # fmt: skip
    assert set(requests_by_reason) == set(DECISIONS), "a new reason needs a request here"
    req = requests_by_reason[reason]
    return {
        **req,
        "headers": {**AUTH, "Content-Type": "application/json", **req.get("headers", {})},
    }


def stalled_call(url: str, path: str, req: dict[str, Any]) -> Response:
    """Send headers announcing `req["stall"]` bytes and only `req["data"]`, then wait: the
    server's answer as schemathesis' Response, once the server has closed the connection."""
    host, port = url.removeprefix("http://").split(":")
    headers = {**req["headers"], "Content-Length": str(req["stall"]), "Host": f"{host}:{port}"}
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\n{head}\r\n".encode() + req["data"])
        raw = b""
        while chunk := sock.recv(65536):  # until the server closes: it must
            raw += chunk
    head_bytes, _, content = raw.partition(b"\r\n\r\n")
    status_line, *lines = head_bytes.decode("latin-1").split("\r\n")
    got: dict[str, list[str]] = {}
    for line in lines:
        name, _, value = line.partition(":")
        got.setdefault(name.strip().lower(), []).append(value.strip())
    sent = requests.Request("POST", url + path, headers=headers, data=req["data"]).prepare()
    return Response(int(status_line.split()[1]), got, content, sent, elapsed=0.0, verify=True)


def _check(case: schemathesis.Case, resp: Any, reason: str) -> None:
    decision = DECISIONS[reason]
    assert resp.status_code == decision.status, (reason, resp.status_code, resp.text)
    assert resp.json()["error"] == reason, resp.text
    # schemathesis' Response: lower-case header names, a list of values each.
    assert resp.headers.get("retry-after") == (
        None if decision.retry_after_s is None else [str(decision.retry_after_s)]
    )
    # A 503 here is the documented answer, not a crash: every other check still applies.
    checks = [c for c in CONFORMANCE if decision.status < 500 or c is not not_a_server_error]
    case.validate_response(resp, checks=checks)


@pytest.mark.parametrize("reason", list(DECISIONS))
def test_every_reason_of_status_py_on_the_wire_conforms(
    reason: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_ = make_settings(
        tmp_path,
        auth_tokens=TOKEN,
        max_body_bytes=LIMIT,
        max_decompressed_bytes=LIMIT,
        spool_max_bytes=SPOOL_CAP,
        object_max_age_s=3600,
        body_read_timeout_s=BODY_TIMEOUT_S,
    )
    app = build_app(settings_)
    with serve_in_thread(app) as url:
        _state_reason(reason, app, monkeypatch)
        for path in POST_ROUTES:
            case = schema[path]["POST"].Case(media_type="application/json", body=[])
            req = _request_for(reason)
            if "stall" in req:
                resp = stalled_call(url, path, req)
                assert resp.headers["connection"] == ["close"]
            else:
                resp = case.call(base_url=url, **req)
            _check(case, resp, reason)
        ready = schema["/readyz"]["GET"].Case()
        resp = ready.call(base_url=url)
        ready.validate_response(resp, checks=CONFORMANCE[1:])  # 503 while draining: documented
        expected = {"draining": (503, "draining")}.get(reason, (200, "ready"))
        assert (resp.status_code, resp.json()["status"]) == expected


def test_full_spool_turns_readyz_503_before_batches_bounce(tmp_path: Path) -> None:
    settings_ = make_settings(
        tmp_path, auth_tokens=TOKEN, spool_max_bytes=SPOOL_CAP, object_max_age_s=3600
    )
    one = orjson.dumps([pickup(delivery_id="D-fill")])
    post = schema["/v1/logs"]["POST"].Case(media_type="application/json", body=[])
    ready = schema["/readyz"]["GET"].Case()
    with serve_in_thread(build_app(settings_)) as url:
        statuses = []
        for _ in range(40):
            resp = post.call(base_url=url, data=one, headers=AUTH)
            statuses.append(resp.status_code)
            if resp.status_code != 200:
                break
            post.validate_response(resp, checks=CONFORMANCE)
        assert statuses[0] == 200 and statuses[-1] == 503, statuses
        _check(post, resp, "spool_full")
        # One event is under 10% of the cap: a refused one means the spool is above 90%.
        resp = ready.call(base_url=url)
        ready.validate_response(resp, checks=CONFORMANCE[1:])  # a documented 503
        assert (resp.status_code, resp.json()) == (503, {"status": "spool_full"})
