"""Bounded work per request, on one event loop: the in-flight byte budget and the pacer.

* **Memory**: the bytes of the requests being worked on (as sent, then decompressed, then
  what they produce until spooled) count against ``LOGSHIP_MAX_INFLIGHT_BYTES``
  (:class:`InflightBudget`, one :class:`Reservation` per request); past it a request gets 503
  ``overloaded``.
* **Time**: decompression, parsing and extraction run in steps of bounded work on the event
  loop itself (no C call is long, and a worker thread would not help: the parsers hold the
  GIL). A request that has worked for :data:`SLICE_S` lets the loop serve others
  (``/healthz``, small batches) after every further step, and takes the one *heavy lane*
  (:class:`Pacer`): long requests run one at a time, between everything else, instead of all
  at once.
"""

from __future__ import annotations

import asyncio
import time

from ingest import metrics
from ingest.status import RequestError

#: A request that has worked this long (event-loop time) yields the loop after every further
#: step and takes the heavy lane. Small batches (a few ms) never do.
SLICE_S = 0.01


class InflightBudget:
    """Bytes of the requests being worked on, against ``LOGSHIP_MAX_INFLIGHT_BYTES``: their
    bodies as sent and decompressed (reserved as they arrive, refused past the limit) and the
    events and dead letters they produce until spooled (counted, never refused: a request is
    not failed half-way for what its own data makes, but nothing new starts meanwhile).

    A reservation that would go past the limit is refused — unless nothing else is reserved,
    so that a request larger than the whole budget is still served, alone, instead of being
    refused forever.
    """

    def __init__(self, limit_bytes: int):
        self.limit_bytes = limit_bytes
        self.used_bytes = 0

    def reserve(self, held_bytes: int, nbytes: int) -> bool:
        """Add `nbytes` for a request already holding `held_bytes`; False if over the limit."""
        if self.used_bytes + nbytes > self.limit_bytes and self.used_bytes > held_bytes:
            return False
        self.used_bytes += nbytes
        metrics.inflight_bytes.set(self.used_bytes)
        return True

    def force(self, nbytes: int) -> None:
        """Add `nbytes` whatever the limit."""
        self.used_bytes += nbytes
        metrics.inflight_bytes.set(self.used_bytes)

    def release(self, nbytes: int) -> None:
        self.used_bytes -= nbytes
        metrics.inflight_bytes.set(self.used_bytes)


class Reservation:
    """One request's share of the :class:`InflightBudget`; given back in `close`."""

    def __init__(self, budget: InflightBudget):
        self.budget = budget
        self.held_bytes = 0

    def grow(self, nbytes: int) -> None:
        if not self.budget.reserve(self.held_bytes, nbytes):
            raise RequestError(
                "overloaded",
                f"the server is working on {self.budget.used_bytes} bytes of requests, "
                f"the limit is {self.budget.limit_bytes} (LOGSHIP_MAX_INFLIGHT_BYTES); retry",
            )
        self.held_bytes += nbytes

    def force(self, nbytes: int) -> None:
        self.budget.force(nbytes)
        self.held_bytes += nbytes

    def shrink(self, nbytes: int) -> None:
        self.budget.release(nbytes)
        self.held_bytes -= nbytes

    def close(self) -> None:
        self.shrink(self.held_bytes)


class Pacer:
    """Lets the event loop serve others between the steps of a long request.

    Cheap to ask (`due`): no await unless the request has worked :data:`SLICE_S` since it
    started working (`start`, once its body is read) or last paused — time the loop spent on
    other requests meanwhile does not count. The first pause takes the heavy lane (held until
    `close`), so long requests take turns instead of all slowing everything down together.
    """

    def __init__(self, lane: asyncio.Semaphore):
        self.lane = lane
        self.holding = False
        self.since = time.perf_counter()

    def start(self) -> None:
        self.since = time.perf_counter()

    def due(self) -> bool:
        return time.perf_counter() - self.since >= SLICE_S

    async def pause(self) -> None:
        if not self.holding:
            await self.lane.acquire()
            self.holding = True
        await asyncio.sleep(0)
        self.since = time.perf_counter()

    def close(self) -> None:
        if self.holding:
            self.lane.release()
            self.holding = False
