"""The day's records: Vector-shaped, in time order, registry-clean (accepted or discarded,
never rejected), with the asked share of noise."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ingest.demo import generate
from ingest.demo.fleet import SERVICES
from tests.ingest.demo.support import DAY, ENVELOPE, REGISTRY, bodies, extract


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
