"""The simulated fleet's day: robots, pilots and deliveries as the services would log them.

* every robot goes ``offline -> available`` (``shift_start``) in the morning and ``-> offline``
  (``shift_end``) in the evening, through ``assigned``/``on_trip`` for its deliveries, ``charging``
  (``battery_low``/``charged``), and ``error``/``maintenance`` intervals (``lid_error`` is the most
  common downtime reason, ahead of ``gps_fault`` and ``battery_low``);
* deliveries go created → dispatched → pickup started → the server's load-order steps → pickup
  completed → dropoff started → unlock → dropoff completed, with minutes between steps; some hit a
  lid error (resolved by a pilot), a few fail or are cancelled, and one needs a robot swap
  (``pilot_initiated_reassignment``, a second robot dispatched): :func:`swap_delivery_id`;
* ``robot.error`` events carry only ``robot_id`` (the fleet service does not know the delivery),
  so the session finds them by robot and time window.

The content depends only on the seed and the sizes, never on the date: delivery ids are stable,
so the README can name one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

DEFAULT_ROBOTS = 6
DEFAULT_DELIVERIES = 40
DEFAULT_SEED = 7

SERVICES = ("dispatch", "fleet", "pilot-ui", "tracker", "server")
ROBOT_STATES = ("available", "assigned", "on_trip", "charging", "maintenance", "error", "offline")

_M = 60.0
_H = 3600.0
DAY_S = 86400.0  # the simulated day, in seconds after midnight UTC
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


def _swap_index(seed: int, deliveries: int, robots: int) -> int | None:
    if robots < 2 or deliveries < 1:
        return None
    rng = random.Random(f"logship-demo-swap:{seed}")
    lo = deliveries // 4
    hi = max(lo + 1, deliveries * 3 // 5)
    return rng.randrange(lo, hi)


def delivery_id_of(index: int) -> str:
    """The id of the day's `index`-th delivery (stable across days: the README names one)."""
    return f"D-{1001 + index}"


def swap_delivery_id(
    seed: int = DEFAULT_SEED, deliveries: int = DEFAULT_DELIVERIES, robots: int = DEFAULT_ROBOTS
) -> str | None:
    """The delivery whose robot is swapped after a lid error, for these parameters (any day).

    None when there can be no swap (fewer than two robots, no deliveries). In an overloaded
    configuration the swap order may end up cancelled for lack of robots;
    :func:`ingest.demo.figures.describe` reports what actually happened."""
    i = _swap_index(seed, deliveries, robots)
    return None if i is None else delivery_id_of(i)


#: The swap delivery of the default day (``logship session D-…`` in the README).
SWAP_DELIVERY_ID: str = swap_delivery_id()  # type: ignore[assignment]


def rfc3339(midnight: datetime, ns: int, digits: int) -> str:
    """`ns` nanoseconds after `midnight` (UTC) as RFC 3339 with `digits` fractional digits."""
    secs, frac = divmod(ns, 1_000_000_000)
    text = (midnight + timedelta(seconds=secs)).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{frac:09d}"[: 20 + digits] + "Z"


# ------------------------------------------------------------------------------- the day


@dataclass(slots=True)
class Event:
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
        self.events: list[Event] = []
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
        if not 0 <= t < DAY_S - 1:
            raise AssertionError(f"{name} at {t:.0f}s falls outside the day")
        fields = {k: v for k, v in fields.items() if v is not None}
        rid = fields.get("robot_id")
        if rid is not None:
            robot = self.by_id[rid]
            robot.last_event = max(robot.last_event, t)
        self.events.append(Event(t, len(self.events), service, name, fields))

    def change(self, r: _Robot, t: float, to: str, reason: str, **extra: Any) -> None:
        if t <= r.last_change + 0.1:
            raise AssertionError(f"{r.id}: state change at {t} not after {r.last_change}")
        self.emit(t, "fleet", "robot.state_changed", robot_id=r.id, from_state=r.state,
                  to_state=to, reason=reason, **extra)  # fmt: skip
        r.state = to
        r.last_change = t

    def iso(self, t: float) -> str:
        return rfc3339(self.midnight, round(t * 1000) * 1_000_000, 3)

    def anon(self) -> str:
        return f"anon-{self.rng.getrandbits(40):010x}"

    # ---------------------------------------------------------------- the whole day

    def run(self) -> list[Event]:
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
            out.append(_Delivery(i, delivery_id_of(i), t, m_id, m_name))
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


def simulate(robots: int, deliveries: int, seed: int, midnight: datetime) -> list[Event]:
    """The day's events in time order (`t` seconds after `midnight`, ties in emission order)."""
    return sorted(_Sim(robots, deliveries, seed, midnight).run(), key=lambda e: (e.t, e.seq))
