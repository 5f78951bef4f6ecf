"""One load cycle: discover → batch → manifest → one COPY transaction → metrics.

A failed COPY is classified (:mod:`loader.errors`): transient errors propagate to the run loop,
which backs off and retries the cycle; a data error isolates the bad object — from the
warehouse's own load-error record when it names the file, else by splitting the batch in halves
— moves it to `quarantine/` with the reason, and loads the rest. A poison object never blocks
the pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from ingest.lake import Lake, LocalLake, ObjectInfo
from ingest.logs import log
from loader import metrics
from loader.discovery import Discovery
from loader.errors import LoadDataError, classify
from loader.warehouse import LoadOutcome, Warehouse

logger = logging.getLogger("logship.loader")


@dataclass
class CycleResult:
    pending: int = 0  # objects pending before this cycle
    loaded_objects: int = 0
    loaded_events: int = 0
    duplicates: int = 0
    quarantined: int = 0

    @property
    def more(self) -> bool:
        """Objects were left for another cycle."""
        return self.pending > self.loaded_objects + self.quarantined


class Loader:
    def __init__(
        self,
        lake: Lake,
        warehouse: Warehouse,
        *,
        max_objects: int,
        max_bytes: int,
        lookback_s: float,
        full_scan_interval_s: float,
    ):
        self.lake = lake
        self.warehouse = warehouse
        self.max_objects = max_objects
        self.max_bytes = max_bytes
        self.discovery = Discovery(
            lake,
            warehouse.loaded_among,
            lookback_s=lookback_s,
            full_scan_interval_s=full_scan_interval_s,
        )
        self._schema_ready = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tmps: list[str] = []  # download dirs of the batch(es) being loaded

    async def cycle(self) -> CycleResult:
        """Discover and load one batch. Raises on transient errors (the caller backs off)."""
        self._loop = asyncio.get_running_loop()
        try:
            if not self._schema_ready:
                added = await asyncio.to_thread(self.warehouse.ensure_schema)
                if added:
                    log(logger, logging.INFO, "added entity columns", columns=added)
                self._schema_ready = True
            try:
                pending = await self.discovery.pending()
            except Exception:
                self._observe_pending(self.discovery.unconfirmed)  # lag grows while down
                raise
            self._observe_pending(pending)
            result = CycleResult(pending=len(pending))
            if pending:
                await self._load(self._batch(pending), result)
            metrics.last_success_timestamp_seconds.set(time.time())
            if not result.more:
                metrics.lag_seconds.set(0)
                metrics.pending_objects.set(0)
            return result
        except Exception as exc:
            if classify(exc).reason == "connection":
                # Drop the connection: the next cycle opens a new one. The warehouse's own
                # rollback only closes it when the rollback itself fails, and
                # redshift-connector's rollback outside a transaction sends nothing — so a
                # connection the server dropped between cycles (restart, failover, idle
                # reset) was kept, and every later cycle failed on it ("Broken pipe").
                await asyncio.to_thread(self.warehouse.close)
            raise
        finally:
            await asyncio.to_thread(self.warehouse.release)

    def _batch(self, pending: list[ObjectInfo]) -> list[ObjectInfo]:
        batch: list[ObjectInfo] = []
        total = 0
        for o in pending:
            if batch and (len(batch) >= self.max_objects or total + o.size > self.max_bytes):
                break
            batch.append(o)
            total += o.size
        return batch

    def _observe_pending(self, pending: list[ObjectInfo]) -> None:
        metrics.pending_objects.set(len(pending))
        if pending:
            oldest = min(o.last_modified for o in pending)
            metrics.lag_seconds.set(max(0.0, (datetime.now(UTC) - oldest).total_seconds()))
        else:
            metrics.lag_seconds.set(0)

    async def _load(self, batch: list[ObjectInfo], result: CycleResult) -> None:
        try:
            outcome = await asyncio.to_thread(
                self.warehouse.load, batch, self._write_manifest, self.local_files
            )
        except LoadDataError as exc:
            await self._isolate(batch, exc, result)
            return
        finally:
            self._cleanup_tmp()
        self._account(outcome, result)

    def _account(self, outcome: LoadOutcome, result: CycleResult) -> None:
        self.discovery.mark_done(outcome.loaded + outcome.skipped)
        result.loaded_objects += len(outcome.loaded) + len(outcome.skipped)
        result.loaded_events += outcome.inserted_rows
        result.duplicates += outcome.duplicates
        metrics.loaded_objects_total.inc(len(outcome.loaded))
        metrics.loaded_events_total.inc(outcome.inserted_rows)
        metrics.duplicate_events_total.inc(outcome.duplicates)
        if outcome.loaded:
            metrics.copy_duration_seconds.observe(outcome.copy_seconds)
            log(logger, logging.INFO, "loaded", objects=len(outcome.loaded),
                events=outcome.inserted_rows, duplicates=outcome.duplicates,
                copy_s=round(outcome.copy_seconds, 3))  # fmt: skip

    # ------------------------------------------------------------------ isolation

    async def _isolate(
        self, batch: list[ObjectInfo], exc: LoadDataError, result: CycleResult
    ) -> None:
        metrics.errors_total.labels("load_error").inc()
        urls = {self.lake.object_url(o.key): o for o in batch}
        named = await asyncio.to_thread(self.warehouse.load_error_files, list(urls))
        bad = {urls[u]: reason for u, reason in named if u in urls}
        if bad:
            for obj, reason in bad.items():
                await self._quarantine(obj, reason, result)
            rest = [o for o in batch if o not in bad]
            if rest:
                await self._load(rest, result)
            return
        if len(batch) == 1:
            await self._quarantine(batch[0], str(exc), result)
            return
        mid = len(batch) // 2
        for half in (batch[:mid], batch[mid:]):
            await self._load(half, result)

    async def _quarantine(self, obj: ObjectInfo, reason: str, result: CycleResult) -> None:
        """Move a poison object to quarantine/ with its reason; record it in the ledger."""
        try:
            data = await self.lake.get(obj.key)
        except Exception as exc:
            if not classify(exc).transient:
                # Gone from the lake (e.g. a missing mandatory file): nothing to load or keep.
                log(logger, logging.WARNING, "object listed but missing; skipped",
                    key=obj.key, error=str(exc)[:300])  # fmt: skip
                return
            raise
        note = orjson.dumps({"key": obj.key, "reason": reason[:4000],
                             "quarantined_at": datetime.now(UTC).isoformat()})  # fmt: skip
        await self.lake.put_new(f"quarantine/{obj.key}", data)
        await self.lake.put(f"quarantine/{obj.key}.reason.json", note)
        await asyncio.to_thread(
            self.warehouse.record, [(obj.key, "quarantined", obj.size, reason[:4000])], None
        )
        await self.lake.delete(obj.key)
        self.discovery.mark_done([obj.key])
        metrics.quarantined_objects_total.inc()
        result.quarantined += 1
        log(logger, logging.ERROR, "object quarantined", key=obj.key, reason=reason[:500])

    # ------------------------------------------------------------------ called from the DB thread

    def _write_manifest(self, batch: list[ObjectInfo]) -> str:
        """Redshift manifest: every entry mandatory, no duplicates. Written before the COPY."""
        now = datetime.now(UTC)
        key = f"manifests/dt={now:%Y-%m-%d}/{now:%H%M%S}-{uuid.uuid4().hex[:12]}.json"
        entries = [
            {"url": self.lake.object_url(o.key), "mandatory": True,
             "meta": {"content_length": o.size}}
            for o in dict.fromkeys(batch)
        ]  # fmt: skip
        self._call(
            self.lake.put(key, orjson.dumps({"entries": entries}, option=orjson.OPT_INDENT_2))
        )
        return self.lake.object_url(key)

    def local_files(self, batch: list[ObjectInfo]) -> list[str]:
        """For DuckDB: local paths of the batch's objects (downloaded when the lake is S3)."""
        if isinstance(self.lake, LocalLake):
            return [self.lake.object_url(o.key) for o in batch]
        tmp = tempfile.mkdtemp(prefix="logship-load-")
        self._tmps.append(tmp)
        paths = []
        for i, o in enumerate(batch):
            path = os.path.join(tmp, f"{i:06d}.json.gz")
            with open(path, "wb") as f:
                f.write(self._call(self.lake.get(o.key)))
            paths.append(path)
        return paths

    def _cleanup_tmp(self) -> None:
        while self._tmps:  # nested loads (isolation) add theirs: remove every one
            shutil.rmtree(self._tmps.pop(), ignore_errors=True)

    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()


async def run_forever(
    loader: Loader, *, interval_s: float, backoff_max_s: float, stop: asyncio.Event
) -> None:
    """Cycle until `stop`: immediately again while objects remain, else every `interval_s`;
    after an error, back off (capped, jittered) and retry."""
    from ingest.backoff import Backoff

    backoff = Backoff(base_s=0.5, max_s=backoff_max_s)
    while not stop.is_set():
        delay = interval_s
        try:
            result = await loader.cycle()
            backoff.reset()
            if result.more:
                delay = 0
        except Exception as exc:
            kind = classify(exc)
            metrics.errors_total.labels(metrics.error_type(kind.reason)).inc()
            log(logger, logging.WARNING if kind.transient else logging.ERROR,
                "load cycle failed; retrying", transient=kind.transient, reason=kind.reason,
                error=str(exc)[:500])  # fmt: skip
            delay = backoff.next_delay_s()
        if delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
