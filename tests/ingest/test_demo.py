"""`logship demo`: the simulated day is registry-clean, deterministic and tells its stories
(swap, lid errors, failures), and `send` delivers it through the real server into the lake."""

from __future__ import annotations

import gzip
import itertools
from collections import defaultdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from ingest import demo
from ingest.app import STATE, build_app
from ingest.decode import ParsedBody
from ingest.demo import (
    ROBOT_STATES,
    SERVICES,
    SWAP_DELIVERY_ID,
    DemoError,
    describe,
    generate,
    send,
    swap_delivery_id,
)
from ingest.extract import Extracted, Extractor, Limits
from ingest.registry import PiiHasher, load_registry
from tests.conftest import free_port, make_settings, read_lake_local

DAY = date(2026, 11, 23)
RECEIVED = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
REGISTRY = load_registry()
ENVELOPE = {"event", "event_id", "timestamp"}


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return generate(DAY)


def extract(records: list[dict[str, Any]]) -> Extracted:
    ex = Extractor(REGISTRY, Limits(1 << 20, 64), PiiHasher(b"k"))
    return ex.extract(ParsedBody(list(records)), RECEIVED)


def bodies(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The registry events of the records, in record order."""
    out = []
    for rec in records:
        msg = rec["message"]
        if msg.startswith("{"):
            body = orjson.loads(msg)
            if body.get("event") in REGISTRY.events:
                out.append(body)
    return out


def ts(body: dict[str, Any]) -> float:
    return datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00")).timestamp()


# ------------------------------------------------------------------------------ content


def test_day_is_accepted_or_discarded_never_rejected(records: list[dict[str, Any]]) -> None:
    out = extract(records)
    accepted, discarded = sum(out.accepted.values()), sum(out.discarded.values())
    assert sum(out.rejects.values()) == 0, out.rejected[:3]
    assert accepted > 0
    assert accepted + discarded == len(records)
    assert accepted == len(bodies(records))
    assert discarded / len(records) == pytest.approx(0.9, abs=0.01)
    assert set(out.discarded) == {"no_event_name", "unregistered_event"}
    for name in ("delivery.created", "delivery.dispatched", "delivery.pickup_started",
                 "server_load_order_started", "server_load_order_close_lid_success",
                 "server_load_order_success", "delivery.pickup_completed",
                 "delivery.dropoff_started", "order_unlock_coco",
                 "server_unlock_bot_open_lid_success", "delivery.dropoff_completed",
                 "delivery.failed", "delivery.cancelled", "robot.state_changed", "robot.error",
                 "pilot_initiated_reassignment", "pilot_submitted_reassignment"):  # fmt: skip
        assert out.accepted[name] > 0, name
    rows = [orjson.loads(line) for line in out.events]
    assert len({r["event_id"] for r in rows}) == accepted
    assert {r["occurred_at"][:10] for r in rows} == {DAY.isoformat()}
    assert {r["service"] for r in rows} == set(SERVICES)
    assert {r["host"] for r in rows} <= {"node-1", "node-2", "node-3"}


@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.95])
def test_noise_ratio_changes_only_the_noise(ratio: float) -> None:
    recs = generate(DAY, robots=3, deliveries=10, noise_ratio=ratio)
    events = bodies(recs)
    assert (len(recs) - len(events)) / len(recs) == pytest.approx(ratio, abs=0.01)
    assert events == bodies(generate(DAY, robots=3, deliveries=10))


def test_fields_follow_the_registry(records: list[dict[str, Any]]) -> None:
    for body in bodies(records):
        spec = REGISTRY.events[body["event"]].spec
        props = set(body) - ENVELOPE
        assert props <= set(spec.fields), (body["event"], props - set(spec.fields))
        for fname, fspec in spec.fields.items():
            if fspec.required:
                assert body.get(fname) is not None, (body["event"], fname)
            if fspec.enum is not None and fname in body:
                assert body[fname] in fspec.enum, (body["event"], fname, body[fname])


def test_records_are_vector_shaped_in_time_order_within_the_day(
    records: list[dict[str, Any]],
) -> None:
    stamps = [r["timestamp"] for r in records]
    assert stamps == sorted(stamps)
    assert all(s.startswith(DAY.isoformat()) and s.endswith("Z") for s in stamps)
    for r in records:
        assert set(r) == {"message", "timestamp", "kubernetes", "host", "source_type", "stream"}
        app = r["kubernetes"]["pod_labels"]["app"]
        assert app in SERVICES and r["kubernetes"]["container_name"] == app
        assert r["source_type"] == "kubernetes_logs" and r["stream"] in ("stdout", "stderr")
    for body in bodies(records):
        assert body["timestamp"].startswith(DAY.isoformat())


def test_deterministic_for_a_seed() -> None:
    a = generate(DAY, robots=4, deliveries=15)
    assert a == generate(DAY, robots=4, deliveries=15)
    assert a != generate(DAY, robots=4, deliveries=15, seed=8)
    # another day: the same story on another date, with ids of its own
    other = bodies(generate(date(2026, 11, 24), robots=4, deliveries=15))
    this = bodies(a)
    assert [b["event"] for b in other] == [b["event"] for b in this]
    assert not {b["event_id"] for b in other} & {b["event_id"] for b in this}


def test_robot_state_chains_are_consistent(records: list[dict[str, Any]]) -> None:
    events = bodies(records)
    chains: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for b in events:
        if b["event"] == "robot.state_changed":
            chains[b["robot_id"]].append(b)
    assert sorted(chains) == [f"R-{i}" for i in range(1, 7)]
    for robot, chain in chains.items():
        first, last = chain[0], chain[-1]
        assert (first["from_state"], first["to_state"], first["reason"]) == (
            "offline", "available", "shift_start")  # fmt: skip
        assert (last["to_state"], last["reason"]) == ("offline", "shift_end")
        for prev, cur in itertools.pairwise(chain):
            assert cur["from_state"] == prev["to_state"], (robot, prev, cur)
            assert cur["to_state"] != cur["from_state"]
            assert ts(cur) > ts(prev)
        assert all(c["to_state"] in ROBOT_STATES for c in chain)
        assert sum(c["to_state"] == "offline" for c in chain) == 1
        # nothing names the robot after its shift ends (the warehouse closes intervals there)
        assert max(ts(b) for b in events if b.get("robot_id") == robot) == ts(last)

    def state_at(robot: str, t: float) -> str:
        state = "offline"
        for c in chains[robot]:
            if ts(c) > t:
                break
            state = c["to_state"]
        return state

    expected = {"delivery.pickup_started": "assigned", "delivery.dropoff_started": "on_trip",
                "delivery.dropoff_completed": "on_trip"}  # fmt: skip
    for b in events:
        if b["event"] in expected:
            assert state_at(b["robot_id"], ts(b)) == expected[b["event"]], b
        if b["event"] == "delivery.dispatched":
            assert state_at(b["robot_id"], ts(b) + 1) == "assigned", b


def test_the_day_tells_its_stories(records: list[dict[str, Any]]) -> None:
    info = describe(records)
    assert info["robots"] == 6 and info["deliveries"] == 40
    assert info["completed"] + info["failed"] + info["cancelled"] == 40
    assert info["completed"] >= 30 and info["failed"] >= 2 and info["cancelled"] >= 1
    # one robot swap, on the delivery the hint names
    assert SWAP_DELIVERY_ID == swap_delivery_id(7) == swap_delivery_id(7, 40, 6)
    assert list(info["swaps"]) == [SWAP_DELIVERY_ID]
    first, second = info["swaps"][SWAP_DELIVERY_ID]
    assert first != second
    events = bodies(records)
    session = [b for b in events if b.get("delivery_id") == SWAP_DELIVERY_ID]
    names = [b["event"] for b in session]
    assert names[0] == "delivery.created"
    submitted = next(b for b in session if b["event"] == "pilot_submitted_reassignment")
    assert (submitted["robot_id"], submitted["new_robot_id"]) == (first, second)
    assert (
        names.index("pilot_initiated_reassignment")
        < names.index("pilot_submitted_reassignment")
        < names.index("delivery.dropoff_completed")
    )
    done = next(b for b in session if b["event"] == "delivery.dropoff_completed")
    assert done["robot_id"] == second
    # lid_error is where most downtime goes; charging and GPS faults exist too
    downtime = info["downtime_hours"]
    assert max(downtime, key=downtime.get) == "lid_error"
    assert {"lid_error", "battery_low", "gps_fault"} <= set(downtime)
    assert 40 < info["usable_hours"] < 6 * 15
    # robot.error carries only robot_id, and some fall inside a delivery of that robot
    windows: dict[str, list[tuple[float, float]]] = defaultdict(list)
    by_delivery: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for b in events:
        if b.get("delivery_id"):
            by_delivery[b["delivery_id"]].append(b)
    for evs in by_delivery.values():
        for robot in {b["robot_id"] for b in evs if "robot_id" in b}:
            mine = [ts(b) for b in evs if b.get("robot_id") == robot]
            windows[robot].append((min(mine), max(mine)))
    errors = [b for b in events if b["event"] == "robot.error"]
    assert all("delivery_id" not in b for b in errors)
    inside = [b for b in errors if any(lo <= ts(b) <= hi for lo, hi in windows[b["robot_id"]])]
    assert len(inside) >= 5
    assert {b["error_code"] for b in inside} >= {"lid_error"}
    # pilots act on robots
    pilot_events = [b for b in events if b["event"].startswith("pilot_")]
    assert len(pilot_events) >= 10
    assert all("pilot_id" in b for b in pilot_events)


def test_delivery_lifecycle_order_and_gaps(records: list[dict[str, Any]]) -> None:
    steps = ["delivery.created", "delivery.dispatched", "delivery.pickup_started",
             "server_load_order_started", "server_load_order_close_lid_success",
             "server_load_order_success", "delivery.pickup_completed",
             "delivery.dropoff_started", "order_unlock_coco",
             "server_unlock_bot_open_lid_success", "delivery.dropoff_completed"]  # fmt: skip
    by_delivery: dict[str, dict[str, float]] = defaultdict(dict)
    for b in bodies(records):
        if b.get("delivery_id") and b["event"] in steps:
            by_delivery[b["delivery_id"]][b["event"]] = ts(b)  # the last of each (swap: robot 2)
    completed = [d for d in by_delivery.values() if "delivery.dropoff_completed" in d]
    assert len(completed) >= 30
    for d in completed:
        times = [d[s] for s in steps]
        assert times == sorted(times)
        assert 15 * 60 < times[-1] - times[0] < 3 * 3600
        assert d["delivery.pickup_started"] - d["delivery.dispatched"] >= 4 * 60


def test_edge_parameters() -> None:
    assert swap_delivery_id(7, robots=1) is None
    lone = describe(generate(DAY, robots=1, deliveries=5, noise_ratio=0.5))
    assert lone["swaps"] == {} and lone["deliveries"] == 5
    empty = generate(DAY, robots=2, deliveries=0, noise_ratio=0)
    assert all(b["event"] == "robot.state_changed" or b["event"].startswith("pilot_")
               for b in bodies(empty))  # fmt: skip
    with pytest.raises(ValueError):
        generate(DAY, noise_ratio=1.0)
    with pytest.raises(ValueError):
        generate(DAY, robots=0)


# ------------------------------------------------------------------------------ sending


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

    monkeypatch.setattr(demo, "_sleep", fake_sleep)
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


# ------------------------------------------------------------------------------ CLI


def test_main_prints_the_summary_and_the_swap_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[str, int, int, str | None]] = []

    async def fake_send(url: str, records: list[dict[str, Any]], batch_size: int = 500,
                        token: str | None = None) -> dict[str, int]:  # fmt: skip
        calls.append((url, len(records), batch_size, token))
        out = extract(records)
        return {"accepted": sum(out.accepted.values()),
                "discarded": sum(out.discarded.values()), "rejected": 0, "batches": 1}  # fmt: skip

    monkeypatch.setattr(demo, "send", fake_send)
    monkeypatch.setenv("LOGSHIP_DEMO_TOKEN", "env-tok")
    assert demo.main(["--date", "2026-11-23", "--url", "http://h:1/v1/logs"]) == 0
    out = capsys.readouterr().out
    assert calls == [("http://h:1/v1/logs", 8000, 500, "env-tok")]
    assert "2026-11-23, 6 robots, 40 deliveries" in out
    assert "accepted 800, discarded 7200, rejected 0" in out
    assert f"logship session {SWAP_DELIVERY_ID}" in out
    assert "lid_error" in out


def test_main_reports_an_unreachable_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def no_sleep(s: float) -> None:
        return None

    monkeypatch.setattr(demo, "_sleep", no_sleep)
    url = f"http://127.0.0.1:{free_port()}/v1/logs"
    assert demo.main(["--url", url, "--deliveries", "2", "--robots", "2"]) == 1
    err = capsys.readouterr().err
    assert "cannot reach" in err and "logship dev" in err
