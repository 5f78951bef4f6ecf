"""The aiohttp application: routes, typed state and lifecycle, wiring the stages together.

One request flows through the stages in order, each in its own module: admit
(:mod:`ingest.receive`: token, body within size, budget and time) → decompress
(:mod:`ingest.decompress`) → split into records (:mod:`ingest.records`) → extract canonical
events (:mod:`ingest.extract`) → spool, acknowledged once durable (:mod:`ingest.spool`); the
uploader (:mod:`ingest.uploader`) moves the spool to the lake in the background. This module
only calls them: status codes come from :mod:`ingest.status`, the in-flight budget and the
pacing between steps from :mod:`ingest.budget`, metric updates from :mod:`ingest.metrics`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from aiohttp import web

from ingest import metrics
from ingest.budget import InflightBudget, Pacer, Reservation
from ingest.config import IngestSettings
from ingest.decompress import decompress_steps
from ingest.extract import Batch, Extractor, Limits
from ingest.lake import Lake, keys, open_lake
from ingest.logs import CountSummary, log
from ingest.openapi import openapi_handler
from ingest.receive import authorized, read_body
from ingest.records import BodyFormat, body_format, parse_steps
from ingest.registry import PiiHasher, Registry, load_registry
from ingest.spool import Spool, SpoolWriteError
from ingest.status import RequestError
from ingest.uploader import Uploader

logger = logging.getLogger("logship.ingest")

_DATADOG_ROUTES = ("/api/v2/logs", "/v1/input")


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
    #: Held by the one long request working now (see budget.Pacer).
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


# --------------------------------------------------------------------------- the stages, in steps


async def _decompress(
    body: bytes, encoding: str, limit: int, reservation: Reservation, pacer: Pacer
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
    reservation: Reservation,
    pacer: Pacer,
) -> Batch:
    """Parse and extract in steps, counting the output in flight; stop early once it can no
    longer fit the spool."""
    batch = Batch()
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


# --------------------------------------------------------------------------- handlers


async def handle_logs(request: web.Request) -> web.Response:
    """POST /v1/logs, /api/v2/logs, /v1/input: the batch is acknowledged once durable."""
    state = request.app[STATE]
    route = request.path
    started = time.perf_counter()
    state.inflight += 1
    state.idle.clear()
    reservation = Reservation(state.budget)
    pacer = Pacer(state.heavy_lane)
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
    reservation: Reservation,
    pacer: Pacer,
) -> web.Response:
    s = state.settings
    if state.draining:
        raise RequestError("draining", "server is shutting down; retry")
    if not authorized(request, state.tokens):
        raise RequestError("unauthorized", "missing or invalid API key / bearer token")
    body = await read_body(request, s.max_body_bytes, reservation, s.body_read_timeout_s)
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

    partition = keys.partition(received)
    if not state.spool.has_room(batch.nbytes):
        raise _spool_full()
    try:
        await state.spool.append(batch.spool_items(partition))
    except SpoolWriteError as exc:
        log(logger, logging.ERROR, "spool write failed; batch refused with 503", error=str(exc))
        raise RequestError("spool_write_failed", f"could not persist the batch: {exc}") from None
    metrics.count_batch(route, sent_bytes, batch)
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
    if not authorized(request, request.app[STATE].tokens):
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
    for path in metrics.ROUTES:
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
