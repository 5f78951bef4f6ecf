"""The simulated fleet: deterministic for a seed, robots' states chained, deliveries in order,
and the day's stories (a swap, lid errors, failures) where the figures say they are."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import date
from typing import Any

import pytest

from ingest.demo import SWAP_DELIVERY_ID, describe, generate, swap_delivery_id
from ingest.demo.fleet import ROBOT_STATES
from loader.analytics import USABLE_STATES
from tests.ingest.demo.support import DAY, bodies, ts


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
    info = describe(records, USABLE_STATES)
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
    lone = describe(generate(DAY, robots=1, deliveries=5, noise_ratio=0.5), USABLE_STATES)
    assert lone["swaps"] == {} and lone["deliveries"] == 5
    empty = generate(DAY, robots=2, deliveries=0, noise_ratio=0)
    assert all(b["event"] == "robot.state_changed" or b["event"].startswith("pilot_")
               for b in bodies(empty))  # fmt: skip
    with pytest.raises(ValueError):
        generate(DAY, noise_ratio=1.0)
    with pytest.raises(ValueError):
        generate(DAY, robots=0)
