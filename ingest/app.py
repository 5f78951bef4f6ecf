"""The aiohttp application: routes, auth and limits, wiring the stages together.

decode (:mod:`ingest.decode`) → extract/validate (:mod:`ingest.extract`) → spool
(:mod:`ingest.spool`) → partition/encode/upload (:mod:`ingest.uploader`). This module only wires
them; status codes come from :mod:`ingest.status`.

Bounded work per request, on one event loop:

* **Memory**: the bytes of the requests being worked on (as sent, then decompressed) count
  against ``LOGSHIP_MAX_INFLIGHT_BYTES`` (:class:`InflightBudget`), reserved as they arrive or
  are inflated; past it a request gets 503 ``overloaded``. Decoding works chunk by chunk, so
  the Python objects of one request stay within a constant, whatever its size.
* **Time**: decompression, parsing and extraction run in steps of bounded work
  (:mod:`ingest.decode`), on the event loop itself: no C call is long and a worker thread
  would not help (the parsers hold the GIL). A request that has worked for
  :data:`_SLICE_S` lets the loop serve others (``/healthz``, small batches) after every
  further step, and takes the one *heavy lane*: long requests run one at a time, between
  everything else, instead of all at once.
* **Slow clients**: a body must arrive within ``LOGSHIP_BODY_READ_TIMEOUT_S`` (408, and the
  connection is closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from array import array
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from aiohttp import web

from ingest import metrics
from ingest.config import IngestSettings
from ingest.decode import BodyFormat, ParsedBody, body_format, decompress_steps, parse_steps
from ingest.extract import Extracted, Extractor, Limits
from ingest.lake import Lake, open_lake
from ingest.logs import CountSummary, log
from ingest.openapi import openapi_handler
from ingest.registry import PiiHasher, Registry, load_registry
from ingest.spool import Spool, SpoolWriteError
from ingest.status import DECISIONS, RequestError
from ingest.uploader import Uploader

logger = logging.getLogger("logship.ingest")

#: A request that has worked this long (event-loop time) yields the loop after every further
#: step and takes the heavy lane. Small batches (a few ms) never do.
_SLICE_S = 0.01
#: Outputs up to this size are spooled as one item per stream; larger ones in their pieces,
#: so a request producing hundreds of MiB of events never holds them twice.
_JOIN_OUTPUT_BYTES = 4 * 1024 * 1024
_DATADOG_ROUTES = ("/api/v2/logs", "/v1/input")


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


class _Reservation:
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


class _Pacer:
    """Lets the event loop serve others between the steps of a long request.

    Cheap to ask (`due`): no await unless the request has worked :data:`_SLICE_S` since it
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
        return time.perf_counter() - self.since >= _SLICE_S

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


@dataclass
class _Batch:
    """What extraction made of a whole request, piece by piece (see parse_steps)."""

    nrecords: int = 0
    events: list[bytes] = field(default_factory=list)  # NDJSON, one item per piece
    rejected: list[bytes] = field(default_factory=list)
    nbytes: int = 0
    accepted: Counter[str] = field(default_factory=Counter)
    discarded: Counter[str] = field(default_factory=Counter)
    rejects: Counter[tuple[str, str]] = field(default_factory=Counter)
    delays_s: array[float] = field(default_factory=lambda: array("d"))  # 8 bytes per event

    def add(self, parsed: ParsedBody, ex: Extracted) -> None:
        self.nrecords += len(parsed.records) + len(parsed.bad)
        for lines, out in ((ex.events, self.events), (ex.rejected, self.rejected)):
            if lines:
                part = b"".join(lines)
                out.append(part)
                self.nbytes += len(part)
        self.accepted.update(ex.accepted)
        self.discarded.update(ex.discarded)
        self.rejects.update(ex.rejects)
        self.delays_s.extend(ex.delays_s)

    def spool_items(self, partition: str) -> list[tuple[str, str, bytes]]:
        items = []
        for stream, parts in (("events", self.events), ("rejected", self.rejected)):
            if sum(map(len, parts)) <= _JOIN_OUTPUT_BYTES:
                parts = [b"".join(parts)]
            items.extend((stream, partition, part) for part in parts if part)
        return items


@dataclass
class IngestState:
    """Everything a request handler needs, typed (stored under :data:`STATE`)."""

    settings: IngestSettings
    registry: Registry
    extractor: Extractor
    tokens: tuple[bytes, ...]
    spool: Spool
    lake: Lake
    uploader: Uploader
    budget: InflightBudget
    #: Held by the one long request working now (see _Pacer).
    heavy_lane: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    draining: bool = False
    drain_deadline: float | None = None  # time.monotonic() by which shutdown must be done
    inflight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    rejects_log: CountSummary = field(
        default_factory=lambda: CountSummary(logger, logging.WARNING, "records rejected")
    )
    #: Refused requests, by status and reason: a flood of bad requests is a line per interval
    #: (with one example's detail), never a line per request.
    refused_log: CountSummary = field(
        default_factory=lambda: CountSummary(logger, logging.INFO, "requests refused")
    )


STATE = web.AppKey("state", IngestState)


# --------------------------------------------------------------------------- helpers


def _authorized(request: web.Request, tokens: tuple[bytes, ...]) -> bool:
    if not tokens:
        return True
    given = request.headers.get("DD-API-KEY") or request.query.get("dd_api_key")
    if given is None:
        auth = request.headers.get("Authorization", "")
        if auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
    if not given:
        return False
    candidate = given.encode("utf-8", "replace")
    ok = False
    for tok in tokens:  # compare against every token: time does not depend on which matched
        ok |= hmac.compare_digest(candidate, tok)
    return ok


async def _read_body(
    request: web.Request, limit: int, reservation: _Reservation, timeout_s: float
) -> bytes:
    """Read at most `limit` bytes of body within `timeout_s`; 413 as soon as it is known to be
    larger, 503 as soon as the in-flight budget has no room for what arrived, 408 when it does
    not arrive in time. Bytes are reserved as they arrive, not as announced: a client that
    announces a large body and sends nothing holds nothing of the budget."""
    length = request.content_length
    if length is not None and length > limit:
        raise RequestError(
            "body_too_large",
            f"body of {length} bytes exceeds the limit of {limit} bytes (LOGSHIP_MAX_BODY_BYTES)",
        )
    chunks = []
    total = 0
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                chunk = await request.content.readany()
                if not chunk:
                    break
                total += len(chunk)
                if total > limit:
                    raise RequestError(
                        "body_too_large",
                        f"body exceeds the limit of {limit} bytes (LOGSHIP_MAX_BODY_BYTES)",
                    )
                reservation.grow(len(chunk))
                chunks.append(chunk)
    except TimeoutError:
        raise RequestError(
            "body_read_timeout",
            f"the body did not arrive within {timeout_s} s (LOGSHIP_BODY_READ_TIMEOUT_S), "
            f"{total} bytes read",
        ) from None
    return b"".join(chunks)


async def _decompress(
    body: bytes, encoding: str, limit: int, reservation: _Reservation, pacer: _Pacer
) -> bytes:
    """Decompress in steps, reserving the output as it is produced (see decompress_steps)."""
    pieces = []
    for piece in decompress_steps(body, encoding, limit):
        if piece:
            if piece is not body:  # identity: the body itself, reserved as it was read
                reservation.grow(len(piece))
            pieces.append(piece)
        if pacer.due():
            await pacer.pause()
    return b"".join(pieces)


async def _extract(
    state: IngestState,
    data: bytes,
    fmt: BodyFormat,
    received: datetime,
    reservation: _Reservation,
    pacer: _Pacer,
) -> _Batch:
    """Parse and extract in steps, counting the output in flight; stop early once it can no
    longer fit the spool."""
    batch = _Batch()
    for parsed in parse_steps(data, fmt, state.settings.max_record_bytes):
        if parsed is not None:
            before = batch.nbytes
            batch.add(parsed, state.extractor.extract(parsed, received))
            reservation.force(batch.nbytes - before)
            if not state.spool.has_room(batch.nbytes):
                raise _spool_full()
        if pacer.due():
            await pacer.pause()
    return batch


def _spool_full() -> RequestError:
    return RequestError("spool_full", "spool is full (the lake may be unreachable); retry")


async def _send_and_close(request: web.Request, response: web.Response) -> None:
    """Answer, then close the connection (the rest of the request will not be read): without
    this, the server would wait up to aiohttp's lingering time for a body that never comes."""
    response.force_close()
    with contextlib.suppress(ConnectionError):  # the client may be gone already
        await response.prepare(request)
        await response.write_eof()
    if request.transport is not None:
        request.transport.close()


def _error_response(exc: RequestError) -> web.Response:
    headers = {}
    if exc.decision.retry_after_s is not None:
        headers["Retry-After"] = str(exc.decision.retry_after_s)
    body = orjson.dumps({"error": exc.reason, "message": exc.message})
    return web.Response(
        status=exc.status, body=body, content_type="application/json", headers=headers
    )


def _count(route: str, nbytes: int, batch: _Batch) -> None:
    metrics.received_records_total.labels(route).inc(batch.nrecords)
    metrics.received_bytes_total.labels(route).inc(nbytes)
    for name, n in batch.accepted.items():
        metrics.accepted_events_total.labels(name).inc(n)
    for reason, n in batch.discarded.items():
        metrics.discarded_records_total.labels(reason).inc(n)
    for (name, reason), n in batch.rejects.items():
        metrics.rejected_events_total.labels(name, reason).inc(n)
    delays_s = array("d", (d if d > 0 else 0.0 for d in batch.delays_s))
    metrics.observe_many(metrics.event_delay_seconds, delays_s)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- handlers


async def handle_logs(request: web.Request) -> web.Response:
    """POST /v1/logs, /api/v2/logs, /v1/input: the batch is acknowledged once durable."""
    state = request.app[STATE]
    route = request.path
    started = time.perf_counter()
    state.inflight += 1
    state.idle.clear()
    reservation = _Reservation(state.budget)
    pacer = _Pacer(state.heavy_lane)
    try:
        response = await _ingest(request, state, route, reservation, pacer)
    except RequestError as exc:
        metrics.refused_requests_total.labels(route, exc.reason).inc()
        response = _error_response(exc)
        if exc.status != 503 and state.refused_log.add({f"{exc.status}:{exc.reason}": 1}):
            log(logger, logging.INFO, "request refused (an example)", route=route,
                reason=exc.reason, status=exc.status, detail=exc.message[:300])  # fmt: skip
        if exc.decision.close_connection:
            await _send_and_close(request, response)
    finally:
        pacer.close()
        reservation.close()
        state.inflight -= 1
        if state.inflight == 0:
            state.idle.set()
    metrics.requests_total.labels(route, str(response.status)).inc()
    metrics.request_duration_seconds.observe(time.perf_counter() - started)
    return response


async def _ingest(
    request: web.Request,
    state: IngestState,
    route: str,
    reservation: _Reservation,
    pacer: _Pacer,
) -> web.Response:
    s = state.settings
    if state.draining:
        raise RequestError("draining", "server is shutting down; retry")
    if not _authorized(request, state.tokens):
        raise RequestError("unauthorized", "missing or invalid API key / bearer token")
    body = await _read_body(request, s.max_body_bytes, reservation, s.body_read_timeout_s)
    sent_bytes = len(body)
    encoding = request.headers.get("Content-Encoding", "")
    pacer.start()  # from here on, no await but the pacer's own: its clock is this request's
    data = await _decompress(body, encoding, s.max_decompressed_bytes, reservation, pacer)
    if data is not body:
        del body  # decompressed: the body as sent is not needed any more
        reservation.shrink(sent_bytes)
    datadog = route in _DATADOG_ROUTES
    fmt = BodyFormat.JSON if datadog else body_format(request.headers.get("Content-Type", ""))
    received = datetime.now(UTC)
    batch = await _extract(state, data, fmt, received, reservation, pacer)
    pacer.close()  # the CPU work is done: let the next long request go
    reservation.shrink(len(data))
    del data

    partition = received.strftime("%Y-%m-%dT%H")
    if not state.spool.has_room(batch.nbytes):
        raise _spool_full()
    try:
        await state.spool.append(batch.spool_items(partition))
    except SpoolWriteError as exc:
        log(logger, logging.ERROR, "spool write failed; batch refused with 503", error=str(exc))
        raise RequestError("spool_write_failed", f"could not persist the batch: {exc}") from None
    _count(route, sent_bytes, batch)
    if batch.rejects:
        state.rejects_log.add({f"{n or '-'}:{r}": c for (n, r), c in batch.rejects.items()})
    if datadog:
        return web.Response(status=202, body=b"{}", content_type="application/json")
    counts = {
        "accepted": sum(batch.accepted.values()),
        "discarded": sum(batch.discarded.values()),
        "rejected": sum(batch.rejects.values()),
    }
    return web.Response(body=orjson.dumps(counts), content_type="application/json")


async def handle_validate(request: web.Request) -> web.Response:
    """GET /api/v1/validate: Vector's datadog_logs healthcheck."""
    if not _authorized(request, request.app[STATE].tokens):
        return web.json_response({"errors": ["Forbidden"]}, status=403)
    return web.json_response({"valid": True})


async def handle_healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def handle_readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if state.draining:
        return web.json_response({"status": "draining"}, status=503)
    stalled = state.uploader.stalled_reason()
    if stalled is not None:
        return web.json_response({"status": "stalled", "reason": stalled}, status=503)
    if state.spool.is_full():
        return web.json_response({"status": "spool_full"}, status=503)
    return web.json_response({"status": "ready"})


async def handle_metrics(request: web.Request) -> web.Response:
    request.app[STATE].uploader.update_gauges()
    body, content_type = metrics.exposition()
    resp = web.Response(body=body)
    resp.headers["Content-Type"] = content_type
    return resp


# --------------------------------------------------------------------------- wiring


def _lifecycle(
    settings: IngestSettings, registry: Registry, spool_dir_name: str, lake: Lake | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        the_lake = lake or open_lake(settings.lake_url)
        await the_lake.start()
        spool = Spool(
            settings.spool_dir / spool_dir_name,
            max_bytes=settings.spool_max_bytes,
            object_max_bytes=settings.object_max_bytes,
            object_max_age_s=settings.object_max_age_s,
            workers=settings.workers,  # worker i adopts the spools of removed workers
        )
        await asyncio.to_thread(spool.open)
        metrics.spool_max_bytes.set(settings.spool_max_bytes)
        uploader = Uploader(
            spool, the_lake, settings.writer_name(), backoff_max_s=settings.upload_backoff_max_s
        )
        hasher = PiiHasher(settings.pii_hash_key.get_secret_value().encode())
        limits = Limits(settings.max_record_bytes, settings.max_json_depth)
        app[STATE] = state = IngestState(
            settings=settings,
            registry=registry,
            extractor=Extractor(registry, limits, hasher),
            tokens=tuple(t.encode() for t in settings.tokens()),
            spool=spool,
            lake=the_lake,
            uploader=uploader,
            budget=InflightBudget(settings.max_inflight_bytes),
        )
        state.idle.set()
        metrics.init_labels(registry.events)
        for route in metrics.ROUTES:
            for reason in DECISIONS:
                metrics.refused_requests_total.labels(route, reason)
        task = asyncio.create_task(uploader.run(), name="uploader")
        log(logger, logging.INFO, "ingest ready", lake=the_lake.url, spool=str(spool.root),
            spool_id=spool.spool_id, events=len(registry.events),
            auth="***" if state.tokens else "disabled")  # fmt: skip
        yield
        # Teardown: stop taking data, flush the spool to the lake (bounded), close.
        state.draining = True
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        budget_s = state.settings.shutdown_timeout_s
        if state.drain_deadline is not None:  # what the drain of requests left of it
            budget_s = max(1.0, state.drain_deadline - time.monotonic())
        flushed = await asyncio.shield(uploader.drain(budget_s))
        await asyncio.shield(spool.close())
        state.refused_log.flush()  # the last interval's counts are not lost
        state.rejects_log.flush()
        log(logger, logging.INFO if flushed else logging.WARNING,
            "spool flushed to the lake" if flushed
            else "shutdown timeout: data left in the spool is uploaded at next start",
            spool_bytes=spool.size_bytes)  # fmt: skip
        await the_lake.close()

    return ctx


def build_app(
    settings: IngestSettings,
    registry: Registry | None = None,
    *,
    worker_index: int = 0,
    lake: Lake | None = None,
) -> web.Application:
    """The ingest application; the spool, lake and uploader start in its cleanup context."""
    if registry is None:
        registry = load_registry(settings.registry_path)
    if not settings.tokens():
        log(logger, logging.WARNING, "LOGSHIP_AUTH_TOKENS is empty: accepting unauthenticated data")
    app = web.Application(
        # Our own bounded decoders (zstd, snappy, bomb guard) instead of aiohttp's; our own limit.
        handler_args={"auto_decompress": False},
        client_max_size=settings.max_body_bytes + 1,
    )
    app.cleanup_ctx.append(_lifecycle(settings, registry, f"worker-{worker_index}", lake))
    for path in ("/v1/logs", "/api/v2/logs", "/v1/input"):
        app.router.add_post(path, handle_logs)
    app.router.add_get("/api/v1/validate", handle_validate)
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/readyz", handle_readyz)
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_get("/openapi.yaml", openapi_handler())
    return app


async def wait_idle(app: web.Application, timeout_s: float) -> bool:
    """Wait until no request is in flight (after `draining` was set)."""
    state = app[STATE]
    try:
        await asyncio.wait_for(state.idle.wait(), timeout_s)
    except TimeoutError:
        return False
    return True
