"""`send` delivers the day through the real server into the lake, with a token, and retries
429/503 after their Retry-After."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from ingest.app import STATE, build_app
from ingest.demo import DemoError, generate, send, sender
from tests.conftest import make_settings, read_lake_local
from tests.ingest.demo.support import DAY, bodies, extract


async def test_send_through_the_real_server_into_the_lake(
    aiohttp_client: Any, tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    expected = extract(records)
    client = await aiohttp_client(build_app(make_settings(tmp_path)))
    totals = await send(str(client.make_url("/v1/logs")), records, batch_size=1000)
    assert totals == {
        "accepted": sum(expected.accepted.values()),
        "discarded": sum(expected.discarded.values()),
        "rejected": 0,
        "batches": -(-len(records) // 1000),
    }
    assert await client.app[STATE].uploader.drain(10)
    rows = read_lake_local(tmp_path / "lake")
    assert len(rows) == totals["accepted"]
    assert {r["event_id"] for r in rows} == {b["event_id"] for b in bodies(records)}
    created = [r for r in rows if r["event_name"] == "delivery.created"]
    assert all(not r["properties"]["customer_phone"].startswith("+") for r in created)  # hashed


async def test_send_with_a_token(aiohttp_client: Any, tmp_path: Path) -> None:
    recs = generate(DAY, robots=2, deliveries=3, noise_ratio=0.5)
    client = await aiohttp_client(build_app(make_settings(tmp_path, auth_tokens="demo-tok")))
    url = str(client.make_url("/v1/logs"))
    totals = await send(url, recs, batch_size=100, token="demo-tok")
    assert totals["accepted"] == len(bodies(recs)) and totals["rejected"] == 0
    with pytest.raises(DemoError, match="401"):
        await send(url, recs, token="wrong")


async def test_send_retries_429_and_503_honoring_retry_after(
    aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = [(503, "7"), (429, "3600"), (503, None), (200, None)]
    seen: list[dict[str, Any]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append({"headers": dict(request.headers), "body": await request.read()})
        status, retry_after = answers[len(seen) - 1] if len(seen) <= len(answers) else (200, None)
        if status != 200:
            headers = {"Retry-After": retry_after} if retry_after else {}
            return web.json_response({"error": "busy"}, status=status, headers=headers)
        n = len(orjson.loads(gzip.decompress(seen[-1]["body"])))
        return web.json_response({"accepted": n, "discarded": 0, "rejected": 0})

    app = web.Application(handler_args={"auto_decompress": False})
    app.router.add_post("/v1/logs", handler)
    client = await aiohttp_client(app)
    delays: list[float] = []

    async def fake_sleep(s: float) -> None:
        delays.append(s)

    monkeypatch.setattr(sender, "_sleep", fake_sleep)
    recs = generate(DAY, robots=2, deliveries=2, noise_ratio=0)
    totals = await send(str(client.make_url("/v1/logs")), recs, batch_size=len(recs) // 2 + 1,
                        token="t-1")  # fmt: skip
    assert totals == {"accepted": len(recs), "discarded": 0, "rejected": 0, "batches": 2}
    assert delays == [7.0, 30.0, 2.0]  # Retry-After, capped at max_wait_s, else backoff
    h = seen[0]["headers"]
    assert h["Content-Type"] == "application/json" and h["Content-Encoding"] == "gzip"
    assert h["Authorization"] == "Bearer t-1"
    assert seen[0]["body"] == seen[3]["body"]  # the same batch, resent

    answers[:] = [(503, "0")] * 10
    seen.clear()
    with pytest.raises(DemoError, match="503"):
        await send(str(client.make_url("/v1/logs")), recs, max_retries=2)
    assert len(seen) == 3
