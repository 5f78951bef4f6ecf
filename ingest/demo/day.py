"""One simulated day as the records Vector's http sink would send: fleet events and noise."""

from __future__ import annotations

import hashlib
import random
import uuid
from datetime import UTC, date, datetime
from typing import Any

import orjson

from ingest.demo.fleet import (
    DAY_S,
    DEFAULT_DELIVERIES,
    DEFAULT_ROBOTS,
    DEFAULT_SEED,
    rfc3339,
    simulate,
)
from ingest.demo.noise import noise_message

DEFAULT_NOISE_RATIO = 0.9

_HOSTS = {"dispatch": "node-1", "fleet": "node-2", "pilot-ui": "node-3", "tracker": "node-1",
          "server": "node-2"}  # fmt: skip


def _vector_record(service: str, stream: str, message: str, stamp: str) -> dict[str, Any]:
    return {
        "message": message,
        "timestamp": stamp,
        "kubernetes": {"pod_labels": {"app": service}, "container_name": service},
        "host": _HOSTS[service],
        "source_type": "kubernetes_logs",
        "stream": stream,
    }


def generate(
    day: date,
    robots: int = DEFAULT_ROBOTS,
    deliveries: int = DEFAULT_DELIVERIES,
    seed: int = DEFAULT_SEED,
    noise_ratio: float = DEFAULT_NOISE_RATIO,
) -> list[dict[str, Any]]:
    """The records of one simulated UTC day, as Vector's http sink would send them, in time order.

    Event content depends only on `seed`, `robots` and `deliveries` (not on the day or the
    noise); event ids also on the day, so each day is distinct and a resend is a duplicate."""
    if isinstance(day, datetime):
        day = day.date()
    if robots < 1:
        raise ValueError("robots must be at least 1")
    if deliveries < 0:
        raise ValueError("deliveries must not be negative")
    if not 0 <= noise_ratio < 1:
        raise ValueError("noise_ratio must be in [0, 1)")
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    events = simulate(robots, deliveries, seed, midnight)

    lag = random.Random(f"logship-demo-lag:{seed}")
    out: list[tuple[int, int, dict[str, Any]]] = []  # (envelope ns, order, record)
    for i, ev in enumerate(events):
        ms = round(ev.t * 1000)
        digest = hashlib.blake2b(f"logship-demo:{seed}:{day}:{i}".encode(), digest_size=16)
        body: dict[str, Any] = {
            "event": ev.name,
            "event_id": str(uuid.UUID(bytes=digest.digest())),
            "timestamp": rfc3339(midnight, ms * 1_000_000, 3),
        }
        body.update(ev.fields)
        ns = ms * 1_000_000 + lag.randint(1_000_000, 80_000_000)
        rec = _vector_record(ev.service, "stdout", orjson.dumps(body).decode(), "")
        out.append((ns, len(out), rec))

    n_noise = round(len(events) * noise_ratio / (1 - noise_ratio))
    rng = random.Random(f"logship-demo-noise:{seed}")
    for _ in range(n_noise):
        busy = bool(events) and rng.random() < 0.8
        if busy:  # requests and debug lines around what happens
            t = min(max(rng.choice(events).t + rng.uniform(-180, 180), 0.0), DAY_S - 1)
        else:  # health probes all day long
            t = rng.uniform(0, DAY_S - 1)
        service, stream, line = noise_message(rng, t, day, robots, deliveries, not busy)
        out.append((int(t * 1e9), len(out), _vector_record(service, stream, line, "")))

    out.sort(key=lambda x: (x[0], x[1]))
    for ns, _, rec in out:
        rec["timestamp"] = rfc3339(midnight, ns, 9)
    return [rec for _, _, rec in out]
