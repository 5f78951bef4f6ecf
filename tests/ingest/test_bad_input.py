"""Bad input through the real server: each gets its status code and a message naming the
problem, is counted in the metrics, the server keeps serving, and the good records of the same
batch are kept."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from ingest.app import STATE, build_app
from tests.conftest import make_settings, read_lake_local
from tests.payloads import pickup, vector_record

MiB = 1024 * 1024


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path) -> TestClient:
    settings = make_settings(
        tmp_path, max_body_bytes=4 * MiB, max_decompressed_bytes=8 * MiB, auth_tokens="s3cret"
    )
    return await aiohttp_client(build_app(settings))


AUTH = {"Authorization": "Bearer s3cret"}


async def post(client: TestClient, body: bytes, **headers: str) -> Any:
    h = {"Content-Type": "application/json", **AUTH, **headers}
    return await client.post("/v1/logs", data=body, headers=h)


async def still_serving(client: TestClient) -> None:
    good = pickup(delivery_id="D-after")
    resp = await post(client, orjson.dumps([vector_record(good)]))
    assert resp.status == 200


async def lake(client: TestClient, tmp_path: Path, stream: str = "events") -> list[dict]:
    assert await client.app[STATE].uploader.drain(10)
    return read_lake_local(tmp_path / "lake", stream)


async def metric(client: TestClient, prefix: str) -> float:
    text = await (await client.get("/metrics")).text()
    return sum(float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith(prefix))


@pytest.mark.parametrize(
    ("body", "headers", "status", "needle"),
    [
        (
            gzip.compress(b"[" + b"0," * (5 * MiB) + b"0]"),
            {"Content-Encoding": "gzip"},
            413,
            "limit",
        ),
        (gzip.compress(b"[{}]" * 1000)[:40], {"Content-Encoding": "gzip"}, 400, "truncated gzip"),
        (b"this is not gzip", {"Content-Encoding": "gzip"}, 400, "gzip"),
        (b'[{"message": "unterminated', {}, 400, "JSON"),
        (b"[]", {"Content-Encoding": "br"}, 415, "br"),
        (b"x" * (5 * MiB), {}, 413, "limit"),
    ],
    ids=["gzip-bomb", "truncated-gzip", "not-gzip", "invalid-json", "unknown-encoding", "too-big"],
)
async def test_undecodable_bodies(
    client: TestClient, body: bytes, headers: dict[str, str], status: int, needle: str
) -> None:
    resp = await post(client, body, **headers)
    assert resp.status == status
    err = await resp.json()
    assert needle in err["message"], err
    assert await metric(client, f'logship_ingest_requests_total{{code="{status}"') >= 1
    await still_serving(client)


async def test_missing_and_wrong_token(client: TestClient) -> None:
    body = orjson.dumps([vector_record(pickup())])
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"DD-API-KEY": "wrong"}):
        resp = await client.post("/v1/logs", data=body, headers=headers)
        assert resp.status == 401
        assert "token" in (await resp.json())["message"]
    await still_serving(client)


async def test_bad_records_are_dead_lettered_and_good_ones_kept(
    client: TestClient, tmp_path: Path
) -> None:
    good = [pickup(delivery_id=f"D-good-{i}") for i in range(3)]
    deep = b"[" * 10_000 + b"]" * 10_000
    body = (
        b"["
        + orjson.dumps(vector_record(good[0]))
        + b',{"event":"robot.error","robot_id":"R-1","error_code":"E","severity":NaN}'
        + b',{"event":"robot.error","robot_id":"R-1","error_code":"E","retries":123456789012345678901234567890}'
        + b',{"event":"robot.error","robot_id":"R-\xff\xfe","error_code":"E"}'
        + b',{"event":"robot.error","robot_id":"R-1","error_code":"E","nested":'
        + deep
        + b"}"
        + b","
        + orjson.dumps(vector_record(good[1]))
        + b',{"event":"robot.error","robot_id":"R-1","robot_id":"R-2","error_code":"E"}'
        + b","
        + orjson.dumps(
            vector_record(
                {
                    "event": "robot.error",
                    "robot_id": "R",
                    "error_code": "E",
                    "message": "x" * (2 * MiB),
                }
            )
        )
        + b","
        + orjson.dumps(vector_record(good[2]))
        + b"]"
    )
    # Counters are per process, and other tests share this one: count what this request adds.
    rejected_before = await metric(client, "logship_ingest_rejected_events_total")
    resp = await post(client, body)
    assert resp.status == 200, await resp.text()
    counts = await resp.json()
    # accepted: 3 good pickups, the huge-int robot.error (undeclared field dropped), dup-key one
    assert counts == {"accepted": 5, "discarded": 0, "rejected": 4}
    rows = await lake(client, tmp_path)
    ids = {r["delivery_id"] for r in rows if r["event_name"] == "delivery.pickup_completed"}
    assert ids == {"D-good-0", "D-good-1", "D-good-2"}
    dup = [r for r in rows if r["event_name"] == "robot.error" and r["robot_id"] == "R-2"]
    assert len(dup) == 1  # duplicate keys: the last one wins
    letters = await lake(client, tmp_path, "rejected")
    reasons = sorted(d["reason"] for d in letters)
    assert reasons == ["invalid_utf8", "non_finite_number", "record_too_large", "too_deep"]
    for d in letters:
        orjson.loads(orjson.dumps(d))  # every dead letter is valid JSON
    assert await metric(client, "logship_ingest_rejected_events_total") - rejected_before == 4
    await still_serving(client)


async def test_ndjson_bad_lines_rejected_alone(client: TestClient, tmp_path: Path) -> None:
    good = pickup(delivery_id="D-nd")
    body = b"\n".join(
        [
            b'{"event": "robot.error", "robot_id": ',
            orjson.dumps(vector_record(good)),
            b'{"event":"robot.error","robot_id":"R","error_code":"E","x":Infinity}',
        ]
    )
    resp = await post(client, body, **{"Content-Type": "application/x-ndjson"})
    assert resp.status == 200
    assert await resp.json() == {"accepted": 1, "discarded": 0, "rejected": 2}
    letters = await lake(client, tmp_path, "rejected")
    assert sorted(d["reason"] for d in letters) == ["invalid_json", "non_finite_number"]


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "a/b", 'quo"te', "ctl\x00\x1b[31m", "..", "delivery.created/.."]
)
async def test_hostile_event_names_never_reach_keys(
    client: TestClient, tmp_path: Path, name: str
) -> None:
    body = orjson.dumps([{"event": name, "delivery_id": "D"}, vector_record(pickup())])
    resp = await post(client, body)
    assert resp.status == 200
    assert (await resp.json())["discarded"] == 1
    await lake(client, tmp_path)
    for path in (tmp_path / "lake").rglob("*"):
        rel = path.relative_to(tmp_path / "lake").as_posix()
        assert name not in rel
        assert all(part.startswith(("events", "rejected", "dt=", "hour=")) or part.endswith(".json.gz")
                   for part in rel.split("/")), rel  # fmt: skip
    assert not (tmp_path / "etc").exists()


async def test_a_record_above_the_limit_is_dead_lettered_unparsed(
    client: TestClient, tmp_path: Path
) -> None:
    """A record above LOGSHIP_MAX_RECORD_BYTES is never parsed (that could cost tens of bytes
    of memory per byte): it is dead-lettered as `record_too_large` without its content — so
    its `pii` fields, which could not be redacted, are written nowhere — or, when it cannot
    hold an event at all, discarded. The records around it are kept."""
    name, phone = "Ada Lovelace-Byron", "+44 20 7946 0958"
    created = {"event": "delivery.created", "delivery_id": "D-big", "merchant_id": "M-1",
               "customer_name": name, "customer_phone": phone, "pad": "x" * (2 * MiB)}  # fmt: skip
    noise = {"message": "y" * (2 * MiB)}
    good = [vector_record(pickup(delivery_id=f"D-{i}")) for i in range(2)]
    for body in (
        orjson.dumps([good[0], created, noise, good[1]]),
        b"\n".join(orjson.dumps(r) for r in (good[0], created, noise, good[1])),
    ):
        headers = {"Content-Encoding": "gzip"}
        if body[:1] != b"[":
            headers["Content-Type"] = "application/x-ndjson"
        resp = await post(client, gzip.compress(body), **headers)
        assert (await resp.json()) == {"accepted": 2, "discarded": 1, "rejected": 1}
    letters = await lake(client, tmp_path, "rejected")
    assert [(d["reason"], d["record"], d["event_name"]) for d in letters] == [
        ("record_too_large", "", None)
    ] * 2
    assert "LOGSHIP_MAX_RECORD_BYTES" in letters[0]["detail"]
    for obj in (tmp_path / "lake").rglob("*.json.gz"):
        text = gzip.decompress(obj.read_bytes())
        assert name.encode() not in text and phone.encode() not in text
    await still_serving(client)
