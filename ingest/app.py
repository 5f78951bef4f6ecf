"""The aiohttp application: routes, auth and limits, wiring the stages together.

decode (:mod:`ingest.decode`) → extract/validate (:mod:`ingest.extract`) → spool
(:mod:`ingest.spool`) → partition/encode/upload (:mod:`ingest.uploader`). This module only wires
them; status codes come from :mod:`ingest.status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from aiohttp import web

from ingest import metrics
from ingest.config import IngestSettings
from ingest.decode import BodyFormat, body_format, decompress, parse_records
from ingest.extract import Extracted, Extractor, Limits
from ingest.lake import Lake, open_lake
from ingest.logs import CountSummary, log
from ingest.openapi import openapi_handler
from ingest.registry import PiiHasher, Registry, load_registry
from ingest.spool import Spool, SpoolWriteError
from ingest.status import RequestError
from ingest.uploader import Uploader

logger = logging.getLogger("logship.ingest")

#: Bodies above this many decompressed bytes are parsed on a worker thread, so one huge batch
#: does not stall every other connection's acknowledgements.
_THREAD_PARSE_BYTES = 2 * 1024 * 1024
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
    draining: bool = False
    drain_deadline: float | None = None  # time.monotonic() by which shutdown must be done
    inflight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    rejects_log: CountSummary = field(
        default_factory=lambda: CountSummary(logger, logging.WARNING, "records rejected")
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


async def _read_body(request: web.Request, limit: int) -> bytes:
    """Read at most `limit` bytes of body; 413 as soon as it is known to be larger."""
    length = request.content_length
    if length is not None and length > limit:
        raise RequestError(
            "body_too_large",
            f"body of {length} bytes exceeds the limit of {limit} bytes (LOGSHIP_MAX_BODY_BYTES)",
        )
    chunks = []
    total = 0
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
        chunks.append(chunk)
    return b"".join(chunks)


def _error_response(exc: RequestError) -> web.Response:
    headers = {}
    if exc.decision.retry_after_s is not None:
        headers["Retry-After"] = str(exc.decision.retry_after_s)
    body = orjson.dumps({"error": exc.reason, "message": exc.message})
    return web.Response(
        status=exc.status, body=body, content_type="application/json", headers=headers
    )


def _count(route: str, nrecords: int, nbytes: int, ex: Extracted) -> None:
    metrics.received_records_total.labels(route).inc(nrecords)
    metrics.received_bytes_total.labels(route).inc(nbytes)
    for name, n in ex.accepted.items():
        metrics.accepted_events_total.labels(name).inc(n)
    for reason, n in ex.discarded.items():
        metrics.discarded_records_total.labels(reason).inc(n)
    for (name, reason), n in ex.rejects.items():
        metrics.rejected_events_total.labels(name, reason).inc(n)
    metrics.observe_many(metrics.event_delay_seconds, [d if d > 0 else 0.0 for d in ex.delays_s])


# --------------------------------------------------------------------------- handlers


async def handle_logs(request: web.Request) -> web.Response:
    """POST /v1/logs, /api/v2/logs, /v1/input: the batch is acknowledged once durable."""
    state = request.app[STATE]
    route = request.path
    started = time.perf_counter()
    state.inflight += 1
    state.idle.clear()
    try:
        response = await _ingest(request, state, route)
    except RequestError as exc:
        response = _error_response(exc)
        if exc.status != 503:
            log(logger, logging.INFO, "request refused", route=route, reason=exc.reason,
                status=exc.status, detail=exc.message[:300])  # fmt: skip
    finally:
        state.inflight -= 1
        if state.inflight == 0:
            state.idle.set()
    metrics.requests_total.labels(route, str(response.status)).inc()
    metrics.request_duration_seconds.observe(time.perf_counter() - started)
    return response


async def _ingest(request: web.Request, state: IngestState, route: str) -> web.Response:
    s = state.settings
    if state.draining:
        raise RequestError("draining", "server is shutting down; retry")
    if not _authorized(request, state.tokens):
        raise RequestError("unauthorized", "missing or invalid API key / bearer token")
    body = await _read_body(request, s.max_body_bytes)
    data = decompress(body, request.headers.get("Content-Encoding", ""), s.max_decompressed_bytes)
    datadog = route in _DATADOG_ROUTES
    fmt = BodyFormat.JSON if datadog else body_format(request.headers.get("Content-Type", ""))
    received = datetime.now(UTC)

    def work() -> tuple[int, Extracted]:
        parsed = parse_records(data, fmt)
        return len(parsed.records) + len(parsed.bad), state.extractor.extract(parsed, received)

    if len(data) > _THREAD_PARSE_BYTES:
        nrecords, ex = await asyncio.to_thread(work)
    else:
        nrecords, ex = work()

    partition = received.strftime("%Y-%m-%dT%H")
    events = b"".join(ex.events)
    rejected = b"".join(ex.rejected)
    if not state.spool.has_room(len(events) + len(rejected)):
        raise RequestError("spool_full", "spool is full (the lake may be unreachable); retry")
    try:
        await state.spool.append([("events", partition, events), ("rejected", partition, rejected)])
    except SpoolWriteError as exc:
        log(logger, logging.ERROR, "spool write failed; batch refused with 503", error=str(exc))
        raise RequestError("spool_write_failed", f"could not persist the batch: {exc}") from None
    _count(route, nrecords, len(body), ex)
    if ex.rejects:
        state.rejects_log.add({f"{n or '-'}:{r}": c for (n, r), c in ex.rejects.items()})
    if datadog:
        return web.Response(status=202, body=b"{}", content_type="application/json")
    counts = {
        "accepted": sum(ex.accepted.values()),
        "discarded": sum(ex.discarded.values()),
        "rejected": sum(ex.rejects.values()),
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
