"""What the services log besides events: access logs, probes, debug lines, unregistered events.

The sink discards all of it (no event name, or one the registry does not know); the demo sends
it so that the discard path carries most of the traffic, as it does in production."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import orjson

from ingest.demo.fleet import SERVICES, delivery_id_of


def noise_message(
    rng: random.Random, t: float, day: date, robots: int, deliveries: int, quiet: bool
) -> tuple[str, str, str]:
    """(service, stream, line): what the services log besides events (`quiet`: only probes)."""
    robot = f"R-{rng.randint(1, robots)}"
    delivery = delivery_id_of(rng.randrange(max(deliveries, 1)))
    ip = f"10.42.{rng.randint(0, 7)}.{rng.randint(2, 250)}"
    x = rng.random()
    if x < 0.2 or quiet:
        svc = rng.choice(SERVICES)
        return svc, "stdout", f'{ip} - - "GET /healthz HTTP/1.1" 200 2 "-" "kube-probe/1.29"'
    if x < 0.5:
        stamp = (datetime(day.year, day.month, day.day) + timedelta(seconds=t)).strftime(
            "%d/%b/%Y:%H:%M:%S +0000"
        )
        svc, path, agent = rng.choice(
            (("dispatch", f"/api/v1/deliveries/{delivery}", "merchant-portal/3.4.1"),
             ("dispatch", "/api/v1/quotes", "okhttp/4.12.0"),
             ("fleet", f"/api/v1/robots/{robot}/telemetry", "robot-agent/2.7.0"),
             ("tracker", f"/track/{delivery}", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5)"),
             ("pilot-ui", f"/api/v1/robots/{robot}/video", "pilot-console/4.18.2"),
             ("server", f"/api/v1/robots/{robot}/lid", "robot-agent/2.7.0"))
        )  # fmt: skip
        status = rng.choice((200, 200, 200, 200, 200, 200, 304, 404, 499, 502))
        method = "POST" if "telemetry" in path or "quotes" in path else "GET"
        return (
            svc,
            "stdout",
            (
                f'{ip} - - [{stamp}] "{method} {path} HTTP/1.1" {status} {rng.randint(2, 4000)} '
                f'"-" "{agent}" {rng.randint(1, 400)}ms'
            ),
        )
    if x < 0.72:
        svc, line = rng.choice(
            (("fleet", f"DEBUG telemetry {robot} battery={rng.randint(15, 100)}% "
                       f"speed={rng.uniform(0, 1.8):.1f}m/s hdop={rng.uniform(0.6, 2.5):.1f}"),
             ("dispatch", f"DEBUG matcher: scored {rng.randint(1, 6)} candidates for {delivery} "
                          f"in {rng.randint(1, 9)}ms"),
             ("server", f"DEBUG lid-controller {robot}: ack in {rng.randint(80, 400)}ms"),
             ("pilot-ui", f"DEBUG ws: frame queue depth {rng.randint(0, 12)} for {robot}"),
             ("tracker", f"DEBUG eta-cache hit for {delivery}"))
        )  # fmt: skip
        return svc, "stdout", line
    if x < 0.9:
        svc, line = rng.choice(
            (("dispatch", f"INFO quote: merchant=M-{rng.randint(1, 8)} eta={rng.randint(12, 40)}m"),
             ("fleet", f"INFO heartbeat {robot} rssi=-{rng.randint(55, 95)}dBm"),
             ("pilot-ui", f"INFO ws: pilot P-{rng.randint(1, 3)} subscribed to {robot}"),
             ("server", f"INFO grpc /robot.v1.Lid/Status OK {rng.uniform(0.01, 0.4):.2f}s"),
             ("tracker", f"WARN map tiles slow: {rng.randint(800, 3000)}ms"),
             ("fleet", f"WARN {robot}: telemetry gap {rng.randint(3, 20)}s"))
        )  # fmt: skip
        return svc, "stderr" if line.startswith("WARN") else "stdout", line
    if x < 0.97:
        body = {"level": "debug", "msg": "robot heartbeat", "robot_id": robot,
                "battery": round(rng.uniform(0.15, 1.0), 2), "rssi": -rng.randint(55, 95)}  # fmt: skip
        return "fleet", "stdout", orjson.dumps(body).decode()
    # an event the services log but the registry does not name: discarded as unregistered
    body = {"event": "http.request", "method": "GET", "path": f"/track/{delivery}",
            "status": 200, "duration_ms": rng.randint(5, 90)}  # fmt: skip
    return "tracker", "stdout", orjson.dumps(body).decode()
