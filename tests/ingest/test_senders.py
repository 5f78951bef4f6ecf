"""Real senders: the `datadog-api-client` package pointed at the server, and byte-exact
requests as Vector (http and datadog_logs sinks), the Datadog Agent and Fluent Bit send them.

The header sets are those of the senders' sources (Vector 0.58 `src/sinks/http`,
`src/sinks/datadog/logs`; Datadog Agent `pkg/logs/client/http`; Fluent Bit `out_http`)."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest
import zstandard
from aiohttp.test_utils import TestClient
from datadog_api_client import ApiClient, Configuration
from datadog_api_client.exceptions import UnauthorizedException
from datadog_api_client.v2.api.logs_api import LogsApi
from datadog_api_client.v2.model.content_encoding import ContentEncoding
from datadog_api_client.v2.model.http_log import HTTPLog
from datadog_api_client.v2.model.http_log_item import HTTPLogItem

from ingest.app import STATE, build_app
from tests.conftest import make_settings, read_lake_local
from tests.payloads import noise_record, pickup, vector_record

TOKEN = "dd-key-0123456789abcdef"
VECTOR_UA = "Vector/0.58.0 (x86_64-unknown-linux-gnu c3445d4 2026-10-01 12:00:00.000000000)"


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path) -> TestClient:
    return await aiohttp_client(build_app(make_settings(tmp_path, auth_tokens=TOKEN)))


async def lake_rows(client: TestClient, tmp_path: Path) -> list[dict[str, Any]]:
    assert await client.app[STATE].uploader.drain(10)
    return read_lake_local(tmp_path / "lake")


@pytest.mark.parametrize("encoding", [None, ContentEncoding.GZIP, ContentEncoding.DEFLATE])
async def test_datadog_api_client_submit_log(
    client: TestClient, tmp_path: Path, encoding: ContentEncoding | None
) -> None:
    ev = pickup(delivery_id=f"D-ddapi-{encoding}")
    host = str(client.make_url("")).rstrip("/")

    def submit(key: str) -> Any:
        cfg = Configuration(host=host)
        cfg.api_key["apiKeyAuth"] = key
        with ApiClient(cfg) as api:
            body = HTTPLog(
                [
                    HTTPLogItem(
                        ddsource="python",
                        ddtags="env:test",
                        hostname="i-0123",
                        message=orjson.dumps(ev).decode(),
                        service="dispatch",
                    ),
                    HTTPLogItem(message="a plain noise line", service="dispatch"),
                ]
            )
            kwargs = {"content_encoding": encoding} if encoding else {}
            return LogsApi(api).submit_log(body=body, **kwargs)

    result = await asyncio.to_thread(submit, TOKEN)
    assert result == {}  # 202 with a JSON object body, as the client requires
    with pytest.raises(UnauthorizedException):
        await asyncio.to_thread(submit, "wrong-key")
    (row,) = await lake_rows(client, tmp_path)
    assert row["event_id"] == ev["event_id"]
    assert (row["service"], row["host"]) == ("dispatch", "i-0123")


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        (None, lambda b: b),
        ("gzip", gzip.compress),
        ("zstd", lambda b: zstandard.ZstdCompressor().compress(b)),
        ("snappy", lambda b: bytes(__import__("cramjam").snappy.compress_raw(b))),
        ("deflate", lambda b: __import__("zlib").compress(b)),
    ],
)
@pytest.mark.parametrize("framing", ["array", "newline_delimited"])
async def test_vector_http_sink_byte_exact(
    client: TestClient, tmp_path: Path, encoding: str | None, compress: Any, framing: str
) -> None:
    events = [pickup(delivery_id=f"D-vec-{framing}-{encoding}-{i}") for i in range(3)]
    records = [vector_record(e) for e in events] + [noise_record(i) for i in range(5)]
    # Vector serialises compactly with sorted keys; no trailing newline in either framing.
    encoded = [orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in records]
    if framing == "array":
        body, ctype = b"[" + b",".join(encoded) + b"]", "application/json"
    else:
        body, ctype = b"\n".join(encoded), "application/x-ndjson"
    headers = {
        "Content-Type": ctype,
        "Accept-Encoding": "identity",
        "User-Agent": VECTOR_UA,
        "Authorization": f"Bearer {TOKEN}",
    }
    if encoding:
        headers["Content-Encoding"] = encoding
    resp = await client.post("/v1/logs", data=compress(body), headers=headers)
    assert resp.status == 200
    assert await resp.json() == {"accepted": 3, "discarded": 5, "rejected": 0}
    rows = await lake_rows(client, tmp_path)
    assert sorted(r["event_id"] for r in rows) == sorted(e["event_id"] for e in events)
    assert all(r["occurred_at"] == "2026-11-23T08:30:00.123456Z" for r in rows)


async def test_vector_http_sink_text_codec(client: TestClient, tmp_path: Path) -> None:
    """codec text: every message followed by a newline, the last one too."""
    ev = pickup(delivery_id="D-text")
    body = orjson.dumps(ev) + b"\nplain line\n"
    headers = {"Content-Type": "text/plain", "Authorization": f"Bearer {TOKEN}",
               "Content-Encoding": "gzip", "User-Agent": VECTOR_UA}  # fmt: skip
    resp = await client.post("/v1/logs", data=gzip.compress(body), headers=headers)
    assert await resp.json() == {"accepted": 1, "discarded": 1, "rejected": 0}


async def test_vector_datadog_logs_sink_byte_exact(client: TestClient, tmp_path: Path) -> None:
    # Healthcheck first, exactly as Vector does it: only an exact 200 is healthy.
    hc = await client.get(
        "/api/v1/validate", headers={"DD-API-KEY": TOKEN, "User-Agent": VECTOR_UA}
    )
    assert hc.status == 200
    ev = pickup(delivery_id="D-vdd")
    # Reserved attributes at top level, timestamp in ms, other fields kept as they are.
    record = {
        "ddsource": "kubernetes",
        "ddtags": "env:prod,kube_namespace:prod",
        "hostname": "node-1",
        "kubernetes": {"container_name": "dispatch", "pod_labels": {"app": "dispatch"}},
        "message": orjson.dumps(ev).decode(),
        "service": "dispatch",
        "status": "info",
        "timestamp": 1795422600123,
    }
    body = orjson.dumps([record, {**record, "message": "noise"}])
    headers = {
        "Content-Type": "application/json",
        "Content-Encoding": "zstd",
        "DD-API-KEY": TOKEN,
        "DD-EVP-ORIGIN": "vector",
        "DD-EVP-ORIGIN-VERSION": "0.58.0",
        "Accept-Encoding": "identity",
        "User-Agent": VECTOR_UA,
    }
    resp = await client.post(
        "/api/v2/logs", data=zstandard.ZstdCompressor().compress(body), headers=headers
    )
    assert resp.status == 202
    (row,) = await lake_rows(client, tmp_path)
    assert row["event_id"] == ev["event_id"]
    assert row["occurred_at"] == "2026-11-23T08:30:00.123000Z"
    assert (row["service"], row["host"]) == ("dispatch", "node-1")


@pytest.mark.parametrize("route", ["/api/v2/logs", "/v1/input"])
async def test_datadog_agent_byte_exact(client: TestClient, tmp_path: Path, route: str) -> None:
    # The Agent's connectivity probe at start: `{}`, no Content-Encoding.
    probe = await client.post(route, data=b"{}", headers={"Content-Type": "application/json",
                                                          "DD-API-KEY": TOKEN})  # fmt: skip
    assert probe.status == 202
    ev = pickup(delivery_id=f"D-agent-{route}")
    items = [
        {"message": orjson.dumps(ev).decode(), "status": "info", "timestamp": 1795422600999,
         "hostname": "robot-gw-1", "service": "dispatch", "ddsource": "python",
         "ddtags": "env:prod"},
        {"message": "GET /health 200", "status": "info", "timestamp": 1795422601000,
         "hostname": "robot-gw-1", "service": "dispatch", "ddsource": "python", "ddtags": ""},
    ]  # fmt: skip
    headers = {
        "DD-API-KEY": TOKEN,
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
        "User-Agent": "datadog-agent/7.60.0",
        "DD-PROTOCOL": "agent-json",
        "DD-EVP-ORIGIN": "agent",
        "DD-EVP-ORIGIN-VERSION": "7.60.0",
        "dd-message-timestamp": "1795422600999",
        "dd-current-timestamp": "1795422601001",
    }
    resp = await client.post(route, data=gzip.compress(orjson.dumps(items), 6), headers=headers)
    assert resp.status == 202
    (row,) = await lake_rows(client, tmp_path)
    assert row["delivery_id"] == ev["delivery_id"]
    assert row["host"] == "robot-gw-1"


async def test_fluent_bit_json_lines(client: TestClient, tmp_path: Path) -> None:
    """Fluent Bit out_http, format json_lines: `date` first (seconds as a double), the line
    under `log`, a newline after every record including the last."""
    ev = pickup(delivery_id="D-fb")
    lines = [
        {"date": 1795422600.25, "log": orjson.dumps(ev).decode(), "stream": "stdout"},
        {"date": 1795422601.5, "log": "noise", "stream": "stdout"},
    ]
    body = b"".join(orjson.dumps(x) + b"\n" for x in lines)
    headers = {"Content-Type": "application/x-ndjson", "User-Agent": "Fluent-Bit",
               "Content-Encoding": "gzip", "Authorization": f"Bearer {TOKEN}"}  # fmt: skip
    resp = await client.post("/v1/logs", data=gzip.compress(body), headers=headers)
    assert await resp.json() == {"accepted": 1, "discarded": 1, "rejected": 0}
    (row,) = await lake_rows(client, tmp_path)
    assert row["occurred_at"] == "2026-11-23T08:30:00.250000Z"
