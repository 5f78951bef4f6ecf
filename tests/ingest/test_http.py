"""Every route × body format × Content-Encoding through the real HTTP server, read back from
the lake, plus auth, probes and the status-code contract."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from ingest.app import STATE, build_app
from tests.conftest import make_settings, read_lake_local
from tests.payloads import (
    datadog_record,
    encode,
    json_array,
    ndjson,
    noise_record,
    pickup,
    vector_record,
)

ENCODINGS = ["identity", "gzip", "x-gzip", "deflate", "zstd", "snappy"]


async def flush(client: TestClient) -> None:
    """Rotate and upload everything spooled so far."""
    assert await client.app[STATE].uploader.drain(10)


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path) -> TestClient:
    return await aiohttp_client(build_app(make_settings(tmp_path)))


@pytest.fixture
async def authed(aiohttp_client: Any, tmp_path: Path) -> TestClient:
    return await aiohttp_client(build_app(make_settings(tmp_path, auth_tokens="tok-a,tok-b")))


def lake_rows(tmp_path: Path, stream: str = "events") -> list[dict[str, Any]]:
    return read_lake_local(tmp_path / "lake", stream)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("fmt", ["json", "ndjson", "text"])
async def test_v1_logs_formats_and_encodings(
    client: TestClient, tmp_path: Path, fmt: str, encoding: str
) -> None:
    events = [pickup(delivery_id=f"D-{fmt}-{encoding}-{i}") for i in range(3)]
    if fmt == "json":
        body, ctype = json_array([*map(vector_record, events), noise_record()]), "application/json"
    elif fmt == "ndjson":
        body, ctype = ndjson([*map(vector_record, events), noise_record()]), "application/x-ndjson"
    else:
        lines = [orjson.dumps(e).decode() for e in events] + ["plain noise line"]
        body, ctype = "\n".join(lines).encode(), "text/plain"
    headers = {"Content-Type": ctype}
    if encoding != "identity":
        headers["Content-Encoding"] = encoding
    resp = await client.post("/v1/logs", data=encode(body, encoding), headers=headers)
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"accepted": 3, "discarded": 1, "rejected": 0}
    await flush(client)
    rows = lake_rows(tmp_path)
    assert sorted(r["delivery_id"] for r in rows) == sorted(e["delivery_id"] for e in events)
    assert {r["event_id"] for r in rows} == {e["event_id"] for e in events}


@pytest.mark.parametrize("route", ["/api/v2/logs", "/v1/input"])
@pytest.mark.parametrize("encoding", ["identity", "gzip", "deflate"])
async def test_datadog_routes(
    client: TestClient, tmp_path: Path, route: str, encoding: str
) -> None:
    ev = pickup(delivery_id=f"D-dd-{route}-{encoding}")
    body = json_array([datadog_record(ev), datadog_record("noise")])
    headers = {"Content-Type": "application/json", "DD-API-KEY": "any"}
    if encoding != "identity":
        headers["Content-Encoding"] = encoding
    resp = await client.post(route, data=encode(body, encoding), headers=headers)
    assert resp.status == 202
    assert await resp.read() == b"{}"
    await flush(client)
    (row,) = lake_rows(tmp_path)
    assert row["delivery_id"] == ev["delivery_id"]
    assert row["service"] == "fleet" and row["host"] == "robot-gw-1"
    assert row["occurred_at"] == "2026-11-23T08:30:00.123000Z"  # the envelope's ms timestamp


async def test_datadog_single_object_and_agent_probe(client: TestClient, tmp_path: Path) -> None:
    resp = await client.post(
        "/api/v2/logs", data=b"{}", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 202
    ev = pickup(delivery_id="D-single")
    resp = await client.post("/api/v2/logs", data=orjson.dumps(datadog_record(ev)))
    assert resp.status == 202
    await flush(client)
    assert [r["delivery_id"] for r in lake_rows(tmp_path)] == ["D-single"]


async def test_lake_layout_and_canonical_shape(client: TestClient, tmp_path: Path) -> None:
    ev = pickup(delivery_id="D-1", robot_id="R-1", event_id="evt-1")
    resp = await client.post("/v1/logs", json=[vector_record(ev)])
    assert resp.status == 200
    await flush(client)
    objects = list((tmp_path / "lake" / "events").rglob("*.json.gz"))
    assert len(objects) == 1
    rel = objects[0].relative_to(tmp_path / "lake").as_posix()
    parts = rel.split("/")
    assert parts[0] == "events" and parts[1].startswith("dt=") and parts[2].startswith("hour=")
    assert parts[3].endswith(".json.gz")
    (row,) = [orjson.loads(x) for x in gzip.decompress(objects[0].read_bytes()).splitlines()]
    assert list(row)[:7] == [
        "event_id", "event_name", "event_version", "occurred_at", "received_at", "service", "host",
    ]  # fmt: skip
    assert row["event_id"] == "evt-1"
    assert row["event_name"] == "delivery.pickup_completed"
    assert row["event_version"] == 1
    assert row["service"] == "dispatch"  # kubernetes.pod_labels.app
    assert row["occurred_at"] == "2026-11-23T08:30:00.123456Z"  # Vector timestamp, truncated to µs
    assert row["received_at"][:13] == f"{parts[1][3:]}T{parts[2][5:]}"  # partitioned by received_at
    assert row["delivery_id"] == "D-1" and row["robot_id"] == "R-1"
    assert row["properties"] == {"delivery_id": "D-1", "robot_id": "R-1"}


async def test_auth(authed: TestClient) -> None:
    body = json_array([vector_record(pickup())])
    assert (await authed.post("/v1/logs", data=body)).status == 401
    bad = await authed.post("/v1/logs", data=body, headers={"Authorization": "Bearer nope"})
    assert bad.status == 401
    assert "token" in (await bad.json())["message"]
    ok = {"Authorization": "Bearer tok-b"}
    assert (await authed.post("/v1/logs", data=body, headers=ok)).status == 200
    dd = {"DD-API-KEY": "tok-a"}
    assert (await authed.post("/api/v2/logs", data=b"[]", headers=dd)).status == 202
    assert (await authed.post("/api/v2/logs?dd_api_key=tok-a", data=b"[]")).status == 202
    assert (await authed.get("/api/v1/validate", headers=dd)).status == 200
    assert await (await authed.get("/api/v1/validate", headers=dd)).json() == {"valid": True}
    assert (await authed.get("/api/v1/validate", headers={"DD-API-KEY": "x"})).status == 403
    # Probes and metrics never need a token.
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await authed.get(path)).status == 200


async def test_probes_and_metrics(client: TestClient) -> None:
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    await client.post("/v1/logs", json=[vector_record(pickup()), noise_record()])
    text = await (await client.get("/metrics")).text()
    for name in (
        "logship_ingest_requests_total",
        "logship_ingest_received_records_total",
        "logship_ingest_received_bytes_total",
        "logship_ingest_accepted_events_total",
        "logship_ingest_discarded_records_total",
        "logship_ingest_rejected_events_total",
        "logship_ingest_request_duration_seconds",
        "logship_ingest_spool_size_bytes",
        "logship_ingest_spool_max_bytes",
        "logship_ingest_spool_oldest_age_seconds",
        "logship_ingest_uploaded_objects_total",
        "logship_ingest_upload_errors_total",
        "logship_ingest_event_delay_seconds",
    ):
        assert name in text, name
    assert 'logship_ingest_requests_total{code="200",route="/v1/logs"}' in text
    # Label sets exist at zero before anything happens to them.
    assert 'logship_ingest_rejected_events_total{event="robot.error",reason="validation"}' in text


async def test_draining_answers_503_with_retry_after(client: TestClient) -> None:
    client.app[STATE].draining = True
    resp = await client.post("/v1/logs", json=[vector_record(pickup())])
    assert resp.status == 503
    assert resp.headers["Retry-After"]
    assert (await client.get("/readyz")).status == 503
    client.app[STATE].draining = False


async def test_unknown_encoding_is_415(client: TestClient) -> None:
    resp = await client.post("/v1/logs", data=b"[]", headers={"Content-Encoding": "br"})
    assert resp.status == 415
    assert "br" in (await resp.json())["message"]


# --------------------------------------------------------------------------- bounded work


async def refused(client: TestClient, route: str, reason: str) -> float:
    """logship_ingest_refused_requests_total{route,reason} now."""
    text = await (await client.get("/metrics")).text()
    want = f'logship_ingest_refused_requests_total{{reason="{reason}",route="{route}"}} '
    (line,) = [ln for ln in text.splitlines() if ln.startswith(want)]
    return float(line.split()[-1])


async def test_every_refusal_is_counted_by_route_and_reason(authed: TestClient) -> None:
    auth = {"Authorization": "Bearer tok-a"}
    cases = [
        ("/v1/logs", "unauthorized", {}, b"[]"),
        ("/v1/logs", "unsupported_encoding", {**auth, "Content-Encoding": "br"}, b"[]"),
        ("/api/v2/logs", "bad_compression", {**auth, "Content-Encoding": "gzip"}, b"nope"),
        ("/v1/input", "invalid_body", auth, b"[1,]"),
    ]
    for route, reason, headers, body in cases:
        before = await refused(authed, route, reason)
        resp = await authed.post(route, data=body, headers=headers)
        assert (await resp.json())["error"] == reason
        assert await refused(authed, route, reason) == before + 1, reason


async def test_inflight_budget_answers_503_overloaded(aiohttp_client: Any, tmp_path: Path) -> None:
    """Past LOGSHIP_MAX_INFLIGHT_BYTES a request gets 503 + Retry-After (counted), as its body
    arrives or inflates; a request larger than the whole budget is still served when it is
    alone, and the budget is whole again after every request."""
    client = await aiohttp_client(build_app(make_settings(tmp_path, max_inflight_bytes=4096)))
    budget = client.app[STATE].budget
    batch = orjson.dumps([vector_record(pickup(delivery_id=f"D-{i}")) for i in range(40)])
    assert len(batch) > 4096
    resp = await client.post("/v1/logs", data=gzip.compress(batch),
                             headers={"Content-Encoding": "gzip"})  # fmt: skip
    assert (resp.status, (await resp.json())["accepted"]) == (200, 40)  # alone: served
    assert budget.used_bytes == 0
    before = await refused(client, "/v1/logs", "overloaded")
    compressed = gzip.compress(batch)
    for body, headers in ((batch, {}), (compressed, {"Content-Encoding": "gzip"})):
        # As if another request held the budget but for room for this body as sent: the
        # identity body is refused as it arrives, the gzip one as it inflates.
        budget.used_bytes = held = 4096 - len(compressed)
        resp = await client.post("/v1/logs", data=body, headers=headers)
        assert resp.status == 503
        assert resp.headers["Retry-After"] == "2"
        assert (await resp.json())["error"] == "overloaded"
        assert "LOGSHIP_MAX_INFLIGHT_BYTES" in (await resp.json())["message"]
        assert budget.used_bytes == held  # what the refused request took is given back
    assert await refused(client, "/v1/logs", "overloaded") == before + 2
    budget.used_bytes = 0
    resp = await client.post("/v1/logs", data=orjson.dumps([vector_record(pickup())]))
    assert resp.status == 200


async def test_a_stalled_body_gets_408_and_the_connection_is_closed(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await aiohttp_client(build_app(make_settings(tmp_path, body_read_timeout_s=0.3)))
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n[{}")
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 30)  # until the server closes the connection
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), raw
    assert b"Connection: close" in head
    assert orjson.loads(body)["error"] == "body_read_timeout"
    assert await refused(client, "/v1/logs", "body_read_timeout") >= 1
    assert client.app[STATE].budget.used_bytes == 0
    assert (await client.get("/healthz")).status == 200
