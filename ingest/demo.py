"""`logship demo`: a simulated day of a small delivery-robot fleet, sent through the HTTP API.

A newcomer runs ``logship dev`` and then this, and a minute later has a warehouse with a day of
deliveries to explore: ``logship session <id>`` (the hint printed at the end names a delivery with
a robot swap), ``logship supply-hours --date <day>`` (usable hours per robot, downtime by reason,
most of it ``lid_error``) and ``logship funnel --date <day>``.

The day is built from the event registry's vocabulary, exactly as the services would log it:

* every robot goes ``offline -> available`` (``shift_start``) in the morning and ``-> offline``
  (``shift_end``) in the evening, through ``assigned``/``on_trip`` for its deliveries, ``charging``
  (``battery_low``/``charged``), and ``error``/``maintenance`` intervals (``lid_error`` is the most
  common downtime reason, ahead of ``gps_fault`` and ``battery_low``);
* deliveries go created → dispatched → pickup started → the server's load-order steps → pickup
  completed → dropoff started → unlock → dropoff completed, with minutes between steps; some hit a
  lid error (resolved by a pilot), a few fail or are cancelled, and one needs a robot swap
  (``pilot_initiated_reassignment``, a second robot dispatched): :func:`swap_delivery_id`;
* ``robot.error`` events carry only ``robot_id`` (the fleet service does not know the delivery),
  so the session finds them by robot and time window;
* ~``noise_ratio`` of the records are ordinary log lines (access logs, debug lines, a few
  unregistered events) that the sink discards.

Everything is deterministic for a seed: the same content every day (only the date changes, so
delivery ids are stable and the README can name one), and event ids derived from the seed and the
day — sending the same day twice is deduplicated by the loader.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import itertools
import os
import random
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson

DEFAULT_URL = "http://127.0.0.1:8080/v1/logs"
DEFAULT_ROBOTS = 6
DEFAULT_DELIVERIES = 40
DEFAULT_SEED = 7
DEFAULT_NOISE_RATIO = 0.9
TOKEN_ENV = "LOGSHIP_DEMO_TOKEN"

SERVICES = ("dispatch", "fleet", "pilot-ui", "tracker", "server")
_HOSTS = {"dispatch": "node-1", "fleet": "node-2", "pilot-ui": "node-3", "tracker": "node-1",
          "server": "node-2"}  # fmt: skip
ROBOT_STATES = ("available", "assigned", "on_trip", "charging", "maintenance", "error", "offline")
USABLE_STATES = ("available", "assigned", "on_trip")

_M = 60.0
_H = 3600.0
_DAY_S = 86400.0
_FIRST_ORDER = 8.0 * _H
_LAST_ORDER = 20.5 * _H
_DISPATCH_CUTOFF = 21.25 * _H  # no dispatch after this; later orders are cancelled by the system
_LAST_IDLE_ACTIVITY = 20.5 * _H  # no charging or idle faults after this
_MAX_WAIT_FOR_ROBOT = 45 * _M

_MERCHANTS = (
    ("M-1", "Luigi's Pizza"), ("M-2", "Pho Saigon"), ("M-3", "Green Bowl"), ("M-4", "Taco Loco"),
    ("M-5", "Sushi Go"), ("M-6", "Burger Barn"), ("M-7", "Curry House"), ("M-8", "Bagel Bros"),
)  # fmt: skip
_LID_STEPS = ("check_lid_sensor", "clear_obstruction", "power_cycle_lid")


class DemoError(RuntimeError):
    """The demo could not be delivered (server unreachable, refused, or kept busy)."""


def _swap_index(seed: int, deliveries: int, robots: int) -> int | None:
    if robots < 2 or deliveries < 1:
        return None
    rng = random.Random(f"logship-demo-swap:{seed}")
    lo = deliveries // 4
    hi = max(lo + 1, deliveries * 3 // 5)
    return rng.randrange(lo, hi)


def _delivery_id(index: int) -> str:
    return f"D-{1001 + index}"


def swap_delivery_id(
    seed: int = DEFAULT_SEED, deliveries: int = DEFAULT_DELIVERIES, robots: int = DEFAULT_ROBOTS
) -> str | None:
    """The delivery whose robot is swapped after a lid error, for these parameters (any day).

    None when there can be no swap (fewer than two robots, no deliveries). In an overloaded
    configuration the swap order may end up cancelled for lack of robots; :func:`describe` reports
    what actually happened."""
    i = _swap_index(seed, deliveries, robots)
    return None if i is None else _delivery_id(i)


#: The swap delivery of the default day (``logship session D-…`` in the README).
SWAP_DELIVERY_ID: str = swap_delivery_id()  # type: ignore[assignment]


# ------------------------------------------------------------------------------- the day


@dataclass(slots=True)
class _Event:
    t: float  # seconds since the day's midnight UTC
    seq: int
    service: str
    name: str
    fields: dict[str, Any]


@dataclass
class _Robot:
    id: str
    pilot: str
    shift_start: float
    planned_end: float
    charge_after: int
    state: str = "offline"
    last_change: float = -1.0
    last_event: float = -1.0  # any event naming this robot
    free_at: float = 0.0
    trips: int = 0


@dataclass
class _Delivery:
    index: int
    id: str
    created: float
    merchant: str
    merchant_name: str
    outcome: str = "ok"
    flags: set[str] = field(default_factory=set)
    legs: int = 0


class _Sim:
    """Builds the day as a list of events; robots' timelines are kept strictly monotonic."""

    def __init__(self, robots: int, deliveries: int, seed: int, midnight: datetime):
        self.rng = random.Random(f"logship-demo:{seed}")
        self.midnight = midnight
        self.events: list[_Event] = []
        self.n_deliveries = deliveries
        self.swap_index = _swap_index(seed, deliveries, robots)
        n_pilots = max(1, (robots + 1) // 2)
        self.pilots = [f"P-{i + 1}" for i in range(n_pilots)]
        rng = self.rng
        self.robots = [
            _Robot(
                id=f"R-{i + 1}",
                pilot=self.pilots[i % n_pilots],
                shift_start=7 * _H + rng.uniform(0, 25 * _M),
                planned_end=21.75 * _H + rng.uniform(0, 20 * _M),
                charge_after=rng.randint(6, 9),
            )
            for i in range(robots)
        ]
        self.by_id = {r.id: r for r in self.robots}

    # ---------------------------------------------------------------- primitives

    def u(self, lo: float, hi: float) -> float:
        return self.rng.uniform(lo, hi)

    def emit(self, t: float, service: str, name: str, **fields: Any) -> None:
        if not 0 <= t < _DAY_S - 1:
            raise AssertionError(f"{name} at {t:.0f}s falls outside the day")
        fields = {k: v for k, v in fields.items() if v is not None}
        rid = fields.get("robot_id")
        if rid is not None:
            robot = self.by_id[rid]
            robot.last_event = max(robot.last_event, t)
        self.events.append(_Event(t, len(self.events), service, name, fields))

    def change(self, r: _Robot, t: float, to: str, reason: str, **extra: Any) -> None:
        if t <= r.last_change + 0.1:
            raise AssertionError(f"{r.id}: state change at {t} not after {r.last_change}")
        self.emit(t, "fleet", "robot.state_changed", robot_id=r.id, from_state=r.state,
                  to_state=to, reason=reason, **extra)  # fmt: skip
        r.state = to
        r.last_change = t

    def iso(self, t: float) -> str:
        return _rfc3339(self.midnight, round(t * 1000) * 1_000_000, 3)

    def anon(self) -> str:
        return f"anon-{self.rng.getrandbits(40):010x}"

    # ---------------------------------------------------------------- the whole day

    def run(self) -> list[_Event]:
        rng = self.rng
        for i, p in enumerate(self.pilots):
            self.emit(6.75 * _H + self.u(0, 12 * _M), "pilot-ui", "pilot_workstation_hostname",
                      pilot_id=p, workstation_hostname=f"pilot-ws-{i + 1:02d}",
                      app_version="4.18.2")  # fmt: skip
            self.emit(12.5 * _H + self.u(0, 2 * _H), "pilot-ui", "pilot_start_break",
                      pilot_id=p, break_type="lunch", scheduled_duration_s=1800)  # fmt: skip
        for r in self.robots:
            self.change(r, r.shift_start, "available", "shift_start")
            r.free_at = r.shift_start + self.u(1 * _M, 4 * _M)
        if len(self.robots) >= 3:
            self.morning_lid_fault(rng.choice(self.robots))

        for d in self.plan():
            self.delivery(d)

        for r in self.robots:
            end = max(r.planned_end, r.free_at + self.u(1 * _M, 4 * _M), r.last_event + 1)
            self.change(r, end, "offline", "shift_end")
        return self.events

    def plan(self) -> list[_Delivery]:
        rng = self.rng
        times = []
        for _ in range(self.n_deliveries):
            x = rng.random()
            if x < 0.35:
                t = rng.gauss(12.4 * _H, 0.9 * _H)  # lunch
            elif x < 0.75:
                t = rng.gauss(18.6 * _H, 1.0 * _H)  # dinner
            else:
                t = rng.uniform(_FIRST_ORDER, _LAST_ORDER)
            times.append(min(max(t, _FIRST_ORDER), _LAST_ORDER))
        times.sort()
        out = []
        for i, t in enumerate(times):
            m_id, m_name = rng.choice(_MERCHANTS)
            out.append(_Delivery(i, _delivery_id(i), t, m_id, m_name))
        n = self.n_deliveries
        pool = [d for d in out if d.index != self.swap_index]
        rng.shuffle(pool)

        def take(k: int) -> list[_Delivery]:
            got = pool[:k]
            del pool[:k]
            return got

        if self.swap_index is not None:
            out[self.swap_index].outcome = "swap"
        lid = take(max(1, round(n * 0.1)) if n >= 5 else 0)
        for k, d in enumerate(lid):
            d.outcome = ("lid_pickup", "lid_dropoff")[k % 2]
        for k, d in enumerate(take(round(n * 0.07))):
            d.outcome = ("fail_unreachable", "fail_stuck")[k % 2]
        for k, d in enumerate(take(round(n * 0.05))):
            d.outcome = ("cancel_early", "cancel_late")[k % 2]
        rest = pool  # plain deliveries: sprinkle warnings, slow acknowledgements, idle faults
        rng.shuffle(rest)
        for d in rest[: round(n * 0.15)]:
            d.flags.add("warning")
        for d in rest[-round(n * 0.05) :] if round(n * 0.05) else []:
            d.flags.add("noack")
        for d in rest[round(n * 0.15) : round(n * 0.15) + max(1, len(self.robots) // 3)]:
            d.flags.add("idle_gps")
        return out

    # ---------------------------------------------------------------- robots outside deliveries

    def morning_lid_fault(self, r: _Robot) -> None:
        """The start-of-shift self-test finds a stuck lid: error, field repair, back in service."""
        t = r.free_at + self.u(1 * _M, 5 * _M)
        self.emit(t, "fleet", "robot.error", robot_id=r.id, error_code="lid_error",
                  severity="error", message="self-test: lid latch did not engage")  # fmt: skip
        self.change(r, t + 0.6, "error", "lid_error")
        tt = t + self.u(1 * _M, 3 * _M)
        for i, step in enumerate(_LID_STEPS, 1):
            self.emit(tt, "pilot-ui", "pilot_troubleshooting_step", pilot_id=r.pilot,
                      robot_id=r.id, flow="lid_stuck", step=step, step_index=i,
                      outcome="failed")  # fmt: skip
            tt += self.u(1 * _M, 3 * _M)
        self.emit(tt, "pilot-ui", "pilot_hard_reset", pilot_id=r.pilot, robot_id=r.id,
                  reason="lid_error", step="power_cycle_lid")  # fmt: skip
        self.emit(tt + self.u(60, 120), "pilot-ui", "pilot_hard_reset_fail", pilot_id=r.pilot,
                  robot_id=r.id, reason="lid_error", error_code="lid_error",
                  error_message="lid actuator not responding after reset")  # fmt: skip
        self.emit(tt + self.u(150, 240), "pilot-ui", "pilot_requested_field_op",
                  pilot_id=r.pilot, robot_id=r.id, request_type="lid",
                  reason="lid_error")  # fmt: skip
        tm = tt + self.u(10 * _M, 18 * _M)
        self.change(r, tm, "maintenance", "lid_error")
        tr = tm + self.u(30 * _M, 50 * _M)
        self.change(r, tr, "available", "repaired")
        r.free_at = tr + self.u(1 * _M, 3 * _M)

    def after_trip(self, r: _Robot, d: _Delivery, t: float) -> None:
        """Back in service at `t`: maybe charge, maybe an idle GPS fault."""
        r.free_at = t
        r.trips += 1
        if t >= _LAST_IDLE_ACTIVITY:
            return
        if r.trips >= r.charge_after:
            pct = self.rng.randint(12, 19)
            self.emit(t + self.u(5, 30), "fleet", "robot.error", robot_id=r.id,
                      error_code="battery_low", severity="warning",
                      message=f"battery at {pct}%, returning to charge")  # fmt: skip
            tc = t + self.u(3 * _M, 7 * _M)
            self.change(r, tc, "charging", "battery_low")
            te = tc + self.u(18 * _M, 26 * _M)
            self.change(r, te, "available", "charged")
            r.trips = 0
            r.charge_after = self.rng.randint(6, 9)
            r.free_at = te + self.u(30, 90)
        elif "idle_gps" in d.flags:
            tf = t + self.u(2 * _M, 8 * _M)
            self.emit(tf, "fleet", "robot.error", robot_id=r.id, error_code="gps_fault",
                      severity="error", message="GNSS fix lost while parked")  # fmt: skip
            self.change(r, tf + 0.5, "error", "gps_fault")
            self.emit(tf + self.u(40, 90), "pilot-ui", "pilot_reset_gps_hot", pilot_id=r.pilot,
                      robot_id=r.id, reason="gps_fault")  # fmt: skip
            self.emit(tf + self.u(3 * _M, 5 * _M), "pilot-ui", "pilot_reset_gps_cold",
                      pilot_id=r.pilot, robot_id=r.id, reason="gps_fault")  # fmt: skip
            te = tf + self.u(8 * _M, 15 * _M)
            self.change(r, te, "available", "pilot_reset")
            r.free_at = te + self.u(30, 90)

    def pick_robot(self, ready: float, exclude: _Robot | None = None) -> _Robot | None:
        """A free robot at `ready` (dispatch picks the nearest: here, any), else the soonest."""
        robots = [r for r in self.robots if r is not exclude]
        if not robots:
            return None
        free = [r for r in robots if r.free_at <= ready]
        if free:
            return self.rng.choice(free)
        return min(robots, key=lambda r: r.free_at)

    # ---------------------------------------------------------------- one delivery

    def delivery(self, d: _Delivery) -> None:
        c = d.created
        self.emit(c, "dispatch", "delivery.created", delivery_id=d.id, merchant_id=d.merchant,
                  order_id=f"{d.merchant}-{40000 + d.index * 7}",
                  source=self.rng.choice(("merchant_api", "merchant_api", "marketplace")),
                  quoted_eta=self.iso(c + self.u(25 * _M, 45 * _M)),
                  customer_phone=f"+1555{self.rng.randrange(10**7):07d}")  # fmt: skip
        if d.outcome == "cancel_early":
            self.emit(c + self.u(1.5 * _M, 4 * _M), "dispatch", "delivery.cancelled",
                      delivery_id=d.id, merchant_id=d.merchant, reason="customer_request",
                      cancelled_by="customer")  # fmt: skip
            return
        ready = c + self.u(40, 3 * _M)
        r = self.pick_robot(ready)
        t = None if r is None else max(ready, r.free_at + self.u(20, 90))
        if r is None or t is None or t > _DISPATCH_CUTOFF or t - c > _MAX_WAIT_FOR_ROBOT:
            waited = min(_MAX_WAIT_FOR_ROBOT, max(5 * _M, _DISPATCH_CUTOFF - c))
            self.emit(c + waited, "dispatch", "delivery.cancelled", delivery_id=d.id,
                      merchant_id=d.merchant, reason="no_robot_available",
                      cancelled_by="system")  # fmt: skip
            d.outcome = "cancelled_no_robot"
            return
        self.leg(d, r, t)

    def dispatch(self, d: _Delivery, r: _Robot, t: float) -> dict[str, Any]:
        d.legs += 1
        trip = f"T-{d.id[2:]}-{d.legs}"
        ctx = {"delivery_id": d.id, "robot_id": r.id, "merchant_id": d.merchant,
               "trip_id": trip, "pilot_id": r.pilot}  # fmt: skip
        self.emit(t, "dispatch", "delivery.dispatched", **ctx)
        self.change(r, t + 0.35, "assigned", "dispatched", delivery_id=d.id, trip_id=trip)
        if self.rng.random() < 0.6:
            self.emit(t + self.u(1 * _M, 4 * _M), "tracker", "order_tracker_open",
                      delivery_id=d.id, order_id=d.id, merchant_id=d.merchant,
                      merchant_name=d.merchant_name, delivery_status="dispatched",
                      anonymous_id=self.anon())  # fmt: skip
        if "noack" in d.flags:
            self.emit(t + self.u(95, 110), "pilot-ui",
                      "pilot_failed_to_acknowledge_delivery_in_progress", pilot_id=r.pilot,
                      robot_id=r.id, trip_id=trip, delivery_id=d.id, timeout_s=90.0)  # fmt: skip
        return ctx

    def leg(self, d: _Delivery, r: _Robot, t: float) -> None:
        """One robot's part of a delivery, from dispatch; sets the robot's `free_at`."""
        ctx = self.dispatch(d, r, t)
        trip = ctx["trip_id"]
        ids = {"delivery_id": d.id, "robot_id": r.id, "trip_id": trip}
        if d.outcome == "cancel_late":
            tc = t + self.u(2 * _M, 6 * _M)
            self.emit(tc, "dispatch", "delivery.cancelled", delivery_id=d.id,
                      merchant_id=d.merchant, robot_id=r.id, trip_id=trip, pilot_id=r.pilot,
                      reason="item_unavailable", cancelled_by="merchant")  # fmt: skip
            self.emit(tc + self.u(10, 30), "pilot-ui", "pilot_cancel_trip", pilot_id=r.pilot,
                      reason="merchant_cancelled", **ids)  # fmt: skip
            self.change(r, tc + self.u(35, 50), "available", "delivery_cancelled",
                        delivery_id=d.id, trip_id=trip)  # fmt: skip
            self.after_trip(r, d, r.last_change + self.u(1 * _M, 3 * _M))
            return

        # --- at the merchant
        ta = t + self.u(4 * _M, 12 * _M)
        self.emit(ta, "dispatch", "delivery.pickup_started", **ctx)
        if self.rng.random() < 0.5:
            self.emit(ta + self.u(5, 30), "pilot-ui", "pilot_confirm_bot_parked_success",
                      pilot_id=r.pilot, location_type="merchant", **ids)  # fmt: skip
        tl = ta + self.u(1 * _M, 4 * _M)
        load = {"delivery_id": d.id, "robot_id": r.id, "merchant_id": d.merchant, "trip_id": trip}
        self.emit(tl, "server", "server_load_order_started", attempt_id=f"{trip}-L1", **load)
        t = tl + self.u(20, 50)
        if d.outcome in ("lid_pickup", "swap"):
            self.emit(t, "server", "server_load_order_close_lid_error", attempt_id=f"{trip}-L1",
                      error_code="lid_error", error_message="lid did not latch after close",
                      **load)  # fmt: skip
            if d.outcome == "swap":
                self.swap(d, r, t)
                return
            te = self.lid_fault(d, r, t, trip, back_to="assigned")
            tl = te + self.u(30, 90)
            self.emit(tl, "server", "server_load_order_started", attempt_id=f"{trip}-L2", **load)
            t = tl + self.u(20, 50)
            attempt = f"{trip}-L2"
        else:
            attempt = f"{trip}-L1"
        self.emit(t, "server", "server_load_order_close_lid_success", attempt_id=attempt,
                  duration_ms=self.rng.randint(600, 2500), **load)  # fmt: skip
        t += self.u(2, 5)
        self.emit(t, "server", "server_load_order_success", attempt_id=attempt,
                  duration_ms=int((t - tl) * 1000), **load)  # fmt: skip
        tp = t + self.u(5, 20)
        self.emit(tp, "dispatch", "delivery.pickup_completed", **ctx)
        self.change(r, tp + 0.4, "on_trip", "pickup_completed", delivery_id=d.id, trip_id=trip)

        # --- on the way
        transit = self.u(8 * _M, 22 * _M)
        if self.rng.random() < 0.4:
            self.emit(tp + transit * self.u(0.3, 0.7), "tracker", "order_tracker_open",
                      delivery_id=d.id, order_id=d.id, merchant_id=d.merchant,
                      merchant_name=d.merchant_name, delivery_status="in_transit",
                      anonymous_id=self.anon())  # fmt: skip
        if "warning" in d.flags:
            code, severity, message = self.rng.choice(
                (("gps_fault", "warning", "GNSS accuracy degraded (hdop 4.2)"),
                 ("lid_error", "warning", "lid latch sensor flicker, re-latched"),
                 ("camera_obstructed", "warning", "front camera obstructed"),
                 ("low_connectivity", "info", "LTE signal weak, switched to backup SIM"))
            )  # fmt: skip
            self.emit(tp + transit * self.u(0.2, 0.8), "fleet", "robot.error", robot_id=r.id,
                      error_code=code, severity=severity, message=message)  # fmt: skip
        if d.outcome == "fail_stuck":
            self.stuck(d, r, tp + transit * self.u(0.3, 0.7), trip)
            return

        # --- at the customer
        td = tp + transit
        self.emit(td, "dispatch", "delivery.dropoff_started", **ctx)
        if self.rng.random() < 0.5:
            self.emit(td + self.u(5, 30), "pilot-ui", "pilot_confirm_bot_parked_success",
                      pilot_id=r.pilot, location_type="customer", **ids)  # fmt: skip
        if d.outcome == "fail_unreachable":
            tf = td + self.u(10 * _M, 15 * _M)
            self.emit(tf, "dispatch", "delivery.failed", reason="customer_unreachable",
                      stage="dropoff", **ctx)  # fmt: skip
            self.change(r, tf + 0.5, "available", "delivery_failed", delivery_id=d.id,
                        trip_id=trip)  # fmt: skip
            self.after_trip(r, d, tf + self.u(1 * _M, 3 * _M))
            return
        tu = td + self.u(0.5 * _M, 3 * _M)
        anon = self.anon()
        unlock = {"delivery_id": d.id, "robot_id": r.id, "trip_id": trip}
        self.emit(tu, "tracker", "order_unlock_coco", delivery_id=d.id, order_id=d.id,
                  robot_id=r.id, attempt_id=f"{trip}-U1", attempt_status="requested",
                  anonymous_id=anon)  # fmt: skip
        self.emit(tu + 0.4, "server", "server_unlock_bot_started", attempt_id=f"{trip}-U1",
                  **unlock)  # fmt: skip
        method = "tracker"
        if d.outcome == "lid_dropoff":
            self.emit(tu + 3, "server", "server_unlock_bot_open_lid_error",
                      attempt_id=f"{trip}-U1", error_code="lid_error",
                      error_message="lid motor stalled", **unlock)  # fmt: skip
            self.emit(tu + 3.2, "server", "deliveries_unlock_coco_fail", delivery_id=d.id,
                      order_id=d.id, robot_id=r.id, attempt_id=f"{trip}-U1",
                      attempt_status="failed", reason="lid_error", error_code="lid_error",
                      anonymous_id=anon)  # fmt: skip
            te = self.lid_fault(d, r, tu + 3.5, trip, back_to="on_trip")
            tu = te + self.u(20, 60)
            self.emit(tu + 0.4, "server", "server_unlock_bot_started", attempt_id=f"{trip}-U2",
                      **unlock)  # fmt: skip
            attempt, method = f"{trip}-U2", "pilot"
        else:
            attempt = f"{trip}-U1"
        t = tu + self.u(2, 5)
        self.emit(t, "server", "server_unlock_bot_open_lid_success", attempt_id=attempt,
                  duration_ms=self.rng.randint(800, 2200), **unlock)  # fmt: skip
        if method == "tracker":
            self.emit(t + 0.3, "server", "deliveries_unlock_coco_success", delivery_id=d.id,
                      order_id=d.id, robot_id=r.id, attempt_id=attempt,
                      attempt_status="success", anonymous_id=anon)  # fmt: skip
        tc = t + self.u(30, 90)
        self.emit(tc, "dispatch", "delivery.dropoff_completed", unlock_method=method, **ctx)
        self.change(r, tc + 0.4, "available", "delivery_done", delivery_id=d.id, trip_id=trip)
        tr = tc + self.u(3 * _M, 30 * _M)
        if self.rng.random() < 0.35 and tr < r.planned_end - 10 * _M:
            self.emit(tr, "tracker", "order_tracker_rating_submit", delivery_id=d.id,
                      order_id=d.id, robot_id=r.id, merchant_id=d.merchant,
                      rating=self.rng.choice((5, 5, 5, 5, 4, 4, 3, 2, 1)),
                      anonymous_id=anon)  # fmt: skip
        self.after_trip(r, d, tc + self.u(1 * _M, 3 * _M))

    def lid_fault(self, d: _Delivery, r: _Robot, t: float, trip: str, back_to: str) -> float:
        """A lid error during a delivery, resolved by the pilot; returns when it ends."""
        self.emit(t + 0.5, "fleet", "robot.error", robot_id=r.id, error_code="lid_error",
                  severity="error", message="lid latch sensor open after close command")  # fmt: skip
        self.change(r, t + 0.8, "error", "lid_error")
        te = t + self.u(18 * _M, 35 * _M)
        span = te - t
        ids = {"pilot_id": r.pilot, "robot_id": r.id, "trip_id": trip, "delivery_id": d.id}
        for i, (step, frac) in enumerate(zip(_LID_STEPS, (0.1, 0.35, 0.85), strict=True), 1):
            outcome = "resolved" if i == len(_LID_STEPS) else "failed"
            self.emit(t + span * frac, "pilot-ui", "pilot_troubleshooting_step", flow="lid_stuck",
                      step=step, step_index=i, outcome=outcome, **ids)  # fmt: skip
        self.emit(t + span * 0.75, "pilot-ui", "pilot_soft_reset", reason="lid_error",
                  step="power_cycle_lid", **ids)  # fmt: skip
        self.change(r, te, back_to, "pilot_reset", delivery_id=d.id, trip_id=trip)
        return te

    def swap(self, d: _Delivery, a: _Robot, t: float) -> None:
        """Robot `a`'s lid will not close at the merchant: the pilot swaps in another robot."""
        self.emit(t + 0.5, "fleet", "robot.error", robot_id=a.id, error_code="lid_error",
                  severity="critical", message="lid actuator not responding")  # fmt: skip
        self.change(a, t + 0.8, "error", "lid_error")
        trip = f"T-{d.id[2:]}-{d.legs}"
        ids = {"pilot_id": a.pilot, "robot_id": a.id, "trip_id": trip, "delivery_id": d.id}
        tt = t + self.u(40, 90)
        for i, step in enumerate(_LID_STEPS, 1):
            self.emit(tt, "pilot-ui", "pilot_troubleshooting_step", flow="lid_stuck", step=step,
                      step_index=i, outcome="failed", **ids)  # fmt: skip
            tt += self.u(1 * _M, 2.5 * _M)
        self.emit(tt, "pilot-ui", "pilot_hard_reset", reason="lid_error", step="power_cycle_lid",
                  **ids)  # fmt: skip
        tt += self.u(60, 120)
        self.emit(tt, "pilot-ui", "pilot_hard_reset_fail", reason="lid_error",
                  error_code="lid_error", error_message="lid actuator not responding after reset",
                  **ids)  # fmt: skip
        tt += self.u(30, 90)
        self.emit(tt, "pilot-ui", "pilot_initiated_reassignment", reason="lid_error", **ids)
        b = self.pick_robot(tt + 60, exclude=a)
        tt += self.u(40, 90)
        self.emit(tt, "pilot-ui", "pilot_submitted_reassignment", reason="lid_error",
                  new_robot_id=None if b is None else b.id, **ids)  # fmt: skip
        self.emit(tt + self.u(20, 60), "pilot-ui", "pilot_requested_field_op", request_type="lid",
                  reason="lid_error", **ids)  # fmt: skip
        tm = tt + self.u(12 * _M, 20 * _M)  # the field tech arrives and takes the robot in
        self.change(a, tm, "maintenance", "lid_error")
        tr = tm + self.u(40 * _M, 60 * _M)
        self.change(a, tr, "available", "repaired")
        a.free_at = tr + self.u(1 * _M, 3 * _M)
        a.trips += 1
        tb = None if b is None else max(tt + self.u(10, 30), b.free_at + self.u(20, 60))
        if b is None or tb is None or tb > _DISPATCH_CUTOFF:
            self.emit(tt + self.u(2 * _M, 5 * _M), "dispatch", "delivery.failed",
                      delivery_id=d.id, merchant_id=d.merchant, robot_id=a.id, trip_id=trip,
                      pilot_id=a.pilot, reason="no_robot_available", stage="pickup",
                      error_code="lid_error")  # fmt: skip
            d.outcome = "swap_failed"
            return
        d.outcome = "swapped"
        self.leg(d, b, tb)

    def stuck(self, d: _Delivery, r: _Robot, t: float, trip: str) -> None:
        """The robot loses its GPS fix on the way and cannot finish: the delivery fails."""
        self.emit(t, "fleet", "robot.error", robot_id=r.id, error_code="gps_fault",
                  severity="critical", message="GNSS fix lost; localisation below threshold")  # fmt: skip
        self.change(r, t + 0.6, "error", "gps_fault")
        ids = {"pilot_id": r.pilot, "robot_id": r.id, "trip_id": trip, "delivery_id": d.id}
        self.emit(t + self.u(40, 80), "pilot-ui", "pilot_reset_gps_hot", reason="gps_fault", **ids)
        self.emit(t + self.u(3 * _M, 4.5 * _M), "pilot-ui", "pilot_reset_gps_cold",
                  reason="gps_fault", **ids)  # fmt: skip
        self.emit(t + self.u(5 * _M, 6 * _M), "pilot-ui", "pilot_no_route_found",
                  destination_type="customer", error_message="no localisation, cannot plan",
                  **ids)  # fmt: skip
        self.emit(t + self.u(6.5 * _M, 8 * _M), "pilot-ui", "pilot_requested_field_op",
                  request_type="stuck", reason="gps_fault", **ids)  # fmt: skip
        tf = t + self.u(8.5 * _M, 10 * _M)
        self.emit(tf, "dispatch", "delivery.failed", delivery_id=d.id, robot_id=r.id,
                  merchant_id=d.merchant, trip_id=trip, pilot_id=r.pilot, reason="robot_stuck",
                  stage="transit", error_code="gps_fault")  # fmt: skip
        self.emit(tf + self.u(1 * _M, 3 * _M), "pilot-ui", "pilot_incident_report",
                  incident_id=f"INC-{d.id[2:]}", incident_type="robot_stuck", severity="medium",
                  **ids)  # fmt: skip
        te = t + self.u(25 * _M, 40 * _M)
        self.change(r, te, "available", "pilot_reset")
        self.after_trip(r, d, te + self.u(1 * _M, 3 * _M))


# ------------------------------------------------------------------------------- noise


def _noise_message(
    rng: random.Random, t: float, day: date, robots: int, deliveries: int, quiet: bool
) -> tuple[str, str, str]:
    """(service, stream, line): what the services log besides events (`quiet`: only probes)."""
    robot = f"R-{rng.randint(1, robots)}"
    delivery = _delivery_id(rng.randrange(max(deliveries, 1)))
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


# ------------------------------------------------------------------------------- records


def _vector_record(service: str, stream: str, message: str, stamp: str) -> dict[str, Any]:
    return {
        "message": message,
        "timestamp": stamp,
        "kubernetes": {"pod_labels": {"app": service}, "container_name": service},
        "host": _HOSTS[service],
        "source_type": "kubernetes_logs",
        "stream": stream,
    }


def _rfc3339(midnight: datetime, ns: int, digits: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    text = (midnight + timedelta(seconds=secs)).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{frac:09d}"[: 20 + digits] + "Z"


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
    events = sorted(_Sim(robots, deliveries, seed, midnight).run(), key=lambda e: (e.t, e.seq))

    lag = random.Random(f"logship-demo-lag:{seed}")
    out: list[tuple[int, int, dict[str, Any]]] = []  # (envelope ns, order, record)
    for i, ev in enumerate(events):
        ms = round(ev.t * 1000)
        digest = hashlib.blake2b(f"logship-demo:{seed}:{day}:{i}".encode(), digest_size=16)
        body: dict[str, Any] = {
            "event": ev.name,
            "event_id": str(uuid.UUID(bytes=digest.digest())),
            "timestamp": _rfc3339(midnight, ms * 1_000_000, 3),
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
            t = min(max(rng.choice(events).t + rng.uniform(-180, 180), 0.0), _DAY_S - 1)
        else:  # health probes all day long
            t = rng.uniform(0, _DAY_S - 1)
        service, stream, line = _noise_message(rng, t, day, robots, deliveries, not busy)
        out.append((int(t * 1e9), len(out), _vector_record(service, stream, line, "")))

    out.sort(key=lambda x: (x[0], x[1]))
    for ns, _, rec in out:
        rec["timestamp"] = _rfc3339(midnight, ns, 9)
    return [rec for _, _, rec in out]


# ------------------------------------------------------------------------------- what a day holds


def describe(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What a list of demo records contains, read back from the records themselves.

    Returns counts (``events``, ``noise``, ``by_event``), the deliveries' outcomes, the robot
    swaps (``{delivery_id: [robot ids in dispatch order]}``), and per-robot state time as the
    warehouse computes it (``usable_hours``; ``downtime_hours`` by reason: an interval's bucket is
    the reason of the change that started it, from shift start to shift end)."""
    from ingest.registry import load_registry

    names = set(load_registry().events)
    bodies = []
    noise = 0
    for rec in records:
        msg = rec.get("message")
        body = None
        if isinstance(msg, str) and msg.startswith("{"):
            try:
                body = orjson.loads(msg)
            except orjson.JSONDecodeError:
                body = None
        if isinstance(body, dict) and body.get("event") in names:
            bodies.append(body)
        else:
            noise += 1
    by_event = Counter(b["event"] for b in bodies)
    dispatched: dict[str, list[str]] = defaultdict(list)
    for b in bodies:
        if b["event"] == "delivery.dispatched":
            dispatched[b["delivery_id"]].append(b["robot_id"])
    usable = 0.0
    downtime: Counter[str] = Counter()
    intervals: dict[str, list[tuple[float, str, str]]] = defaultdict(list)
    for b in bodies:
        if b["event"] == "robot.state_changed":
            t = datetime.fromisoformat(b["timestamp"].replace("Z", "+00:00")).timestamp()
            intervals[b["robot_id"]].append((t, b["to_state"], b.get("reason") or b["to_state"]))
    for changes in intervals.values():
        changes.sort()
        for (t0, state, reason), (t1, _, _) in itertools.pairwise(changes):
            if state in USABLE_STATES:
                usable += t1 - t0
            else:
                downtime[reason] += t1 - t0
    return {
        "events": len(bodies),
        "noise": noise,
        "by_event": dict(sorted(by_event.items())),
        "robots": len(intervals),
        "deliveries": by_event["delivery.created"],
        "completed": by_event["delivery.dropoff_completed"],
        "failed": by_event["delivery.failed"],
        "cancelled": by_event["delivery.cancelled"],
        "swaps": {k: v for k, v in dispatched.items() if len(v) > 1},
        "usable_hours": round(usable / _H, 2),
        "downtime_hours": {k: round(v / _H, 2) for k, v in downtime.most_common()},
    }


# ------------------------------------------------------------------------------- sending


_sleep = asyncio.sleep  # the tests replace it


def _retry_delay(header: str | None, attempt: int, max_wait_s: float) -> float:
    """Retry-After (seconds or an HTTP date) if given, else exponential backoff; capped."""
    delay = None
    if header:
        try:
            delay = float(header)
        except ValueError:
            try:
                when = parsedate_to_datetime(header)
                delay = (when - datetime.now(UTC)).total_seconds()
            except (TypeError, ValueError, IndexError):
                delay = None
    if delay is None:
        delay = 0.5 * 2**attempt
    return min(max(delay, 0.0), max_wait_s)


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    max_retries: int,
    max_wait_s: float,
) -> dict[str, Any]:
    attempt = 0
    while True:
        try:
            async with session.post(url, data=body, headers=headers) as resp:
                text = await resp.read()
                if resp.status == 200:
                    try:
                        counts = orjson.loads(text)
                    except orjson.JSONDecodeError:
                        counts = None
                    if not isinstance(counts, dict):
                        raise DemoError(f"{url} answered 200 without JSON counts: {text[:200]!r}")
                    return counts
                if resp.status not in (429, 503) or attempt >= max_retries:
                    detail = text[:300].decode("utf-8", "replace")
                    raise DemoError(f"{url} answered {resp.status}: {detail}")
                delay = _retry_delay(resp.headers.get("Retry-After"), attempt, max_wait_s)
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            # Safe to resend: event ids are stable, so a batch that did land is deduplicated.
            if attempt >= max_retries:
                raise DemoError(f"cannot reach {url}: {exc or type(exc).__name__}") from None
            delay = _retry_delay(None, attempt, max_wait_s)
        attempt += 1
        await _sleep(delay)


async def send(
    url: str,
    records: list[dict[str, Any]],
    batch_size: int = 500,
    token: str | None = None,
    *,
    max_retries: int = 6,
    max_wait_s: float = 30.0,
    timeout_s: float = 60.0,
) -> dict[str, int]:
    """POST `records` to `url` in gzip JSON-array batches, like Vector's http sink.

    429 and 503 are retried after their Retry-After (at most `max_wait_s` each, `max_retries`
    times), as are connection errors; any other status raises :class:`DemoError`. Returns the sum
    of the 200 responses' counts: ``{"accepted", "discarded", "rejected", "batches"}``."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    totals = {"accepted": 0, "discarded": 0, "rejected": 0, "batches": 0}
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for start in range(0, len(records), batch_size):
            body = gzip.compress(orjson.dumps(records[start : start + batch_size]), 6)
            counts = await _post(session, url, body, headers, max_retries, max_wait_s)
            for k in ("accepted", "discarded", "rejected"):
                totals[k] += int(counts.get(k) or 0)
            totals["batches"] += 1
    return totals


# ------------------------------------------------------------------------------- CLI


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="logship demo",
        description="Send a simulated day of a delivery-robot fleet to a running logship sink.",
    )
    p.add_argument("--url", default=DEFAULT_URL, help=f"the sink's logs route ({DEFAULT_URL})")
    p.add_argument("--date", type=_parse_date, default=None,
                   help="the UTC day to simulate, YYYY-MM-DD (default: today UTC)")  # fmt: skip
    p.add_argument("--robots", type=int, default=DEFAULT_ROBOTS)
    p.add_argument("--deliveries", type=int, default=DEFAULT_DELIVERIES)
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--noise-ratio", type=float, default=DEFAULT_NOISE_RATIO,
                   help="share of records that are ordinary log lines (default 0.9)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--token", default=None,
                   help=f"bearer token for LOGSHIP_AUTH_TOKENS (default: ${TOKEN_ENV})")  # fmt: skip
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.robots < 1:
        p.error("--robots must be at least 1")
    if args.deliveries < 0:
        p.error("--deliveries must not be negative")
    if not 0 <= args.noise_ratio < 1:
        p.error("--noise-ratio must be in [0, 1)")
    if args.batch_size < 1:
        p.error("--batch-size must be at least 1")
    day = args.date or datetime.now(UTC).date()
    token = args.token or os.environ.get(TOKEN_ENV) or None

    records = generate(day, args.robots, args.deliveries, args.seed, args.noise_ratio)
    info = describe(records)
    try:
        totals = asyncio.run(send(args.url, records, args.batch_size, token))
    except DemoError as exc:
        print(f"logship demo: {exc}", file=sys.stderr)
        print("logship demo: is `logship dev` (or `logship ingest`) running there?",
              file=sys.stderr)  # fmt: skip
        return 1
    print(
        f"logship demo: {day}, {info['robots']} robots, {info['deliveries']} deliveries "
        f"({info['completed']} completed, {info['failed']} failed, {info['cancelled']} "
        f"cancelled): sent {len(records)} records ({info['events']} events, {info['noise']} "
        f"noise) in {totals['batches']} batches -> accepted {totals['accepted']}, "
        f"discarded {totals['discarded']}, rejected {totals['rejected']}"
    )
    downtime = ", ".join(f"{k} {v:.1f} h" for k, v in info["downtime_hours"].items())
    print(f"fleet: {info['usable_hours']:.1f} usable robot-hours; downtime: {downtime or 'none'}")
    for delivery_id, robots in info["swaps"].items():
        print(f"robot swap on {delivery_id} ({' -> '.join(robots)}): "
              f"logship session {delivery_id}")  # fmt: skip
    print(f"supply hours: logship supply-hours --date {day}")
    if totals["rejected"]:
        print(f"logship demo: {totals['rejected']} events were rejected (a different registry?); "
              "see the lake's rejected/ objects", file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
