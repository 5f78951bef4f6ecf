"""One load cycle: discover → batch → manifest → one COPY transaction → metrics.

A failed load is judged by :func:`loader.errors.verdict` (type, SQLSTATE and the statement that
failed — never the message's words), and then:

* **transient, not about the contents** (connection, lock, ledger conflict, S3 5xx, an OS error
  such as EMFILE): the cycle fails and the run loop retries it with backoff. Nothing is
  quarantined; every object stays queued.
* **possibly the contents** (any other failure of the statements that read the objects): the
  batch is isolated. Objects the warehouse names (Redshift's `SYS_LOAD_ERROR_DETAIL`) or the
  file check shows broken are quarantined at once and the rest reloaded; otherwise the batch
  is split in halves until one object fails *alone*. That object is tried once more, alone;
  failing again with a **data** error (by type or SQLSTATE) it is quarantined:
  `quarantine/<key>` (a server-side copy: never through this process's memory), its reason
  note, a `quarantined` ledger row, then deleted.
* an object failing alone with anything **not shown to be its data** (an unclassified error, a
  resource limit, DuckDB's I/O error on a file that reads fine) is **held**: left in the lake,
  retried alone with a growing delay, while everything behind it loads. It is never
  quarantined on a guess — it may be good data meeting a passing or local condition — and it
  keeps `logship_loader_lag_seconds` growing and `logship_loader_held_objects` non-zero until
  it loads or a human moves it. If nothing at all loaded in the batch, no object has been
  shown to be at fault (a role without access, a warehouse failing every COPY): the cycle
  fails like a transient error and nothing is held.

A poison object therefore never blocks the objects behind it, and a transient error never
quarantines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ingest.backoff import Backoff
from ingest.event import iso_utc
from ingest.lake import Lake, LocalLake, ObjectInfo, keys
from ingest.lake import classify_error as classify_lake_error
from ingest.logs import log
from loader import metrics
from loader.discovery import Discovery
from loader.errors import LoadFailed, ObjectsUnreadable, classify, message_of, verdict
from loader.warehouse import LoadOutcome, Warehouse

logger = logging.getLogger("logship.loader")

#: A held object is retried alone after HOLD_BASE_S·2ⁿ seconds (n: its failures so far − 1),
#: at most HOLD_MAX_S apart.
HOLD_BASE_S = 1.0
HOLD_MAX_S = 300.0
#: Longest reason kept in a quarantine note and the ledger (`reason VARCHAR(4096)`).
REASON_MAX_CHARS = 4000
#: Lake errors meaning "no such object" (a local lake's ENOENT is reported as NoSuchKey).
_MISSING = {"NoSuchKey", "NotFound", "404"}


@dataclass
class CycleResult:
    pending: int = 0  # objects pending before this cycle
    loaded_objects: int = 0
    loaded_events: int = 0
    duplicates: int = 0
    quarantined: int = 0
    held: int = 0  # pending objects held back after this cycle (retried later, alone)
    skipped: int = 0  # listed, but gone from the lake

    @property
    def more(self) -> bool:
        """Objects were left that another cycle can load now."""
        return self.pending > self.loaded_objects + self.quarantined + self.held + self.skipped


@dataclass
class _Hold:
    until_s: float  # time.monotonic() of the next attempt
    failures: int
    reason: str


@dataclass
class _Isolation:
    """What the isolation of one batch found."""

    suspects: list[tuple[ObjectInfo, Exception]] = field(default_factory=list)
    progress: bool = False  # an object loaded or was quarantined: the warehouse works


def _missing(exc: BaseException) -> bool:
    return classify_lake_error(exc).reason in _MISSING


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
        self._held: dict[str, _Hold] = {}
        self._held_turn_taken = False  # the last batch was a held object's retry
        self._control_failures = 0  # consecutive controls that failed (see _control)

    async def cycle(self) -> CycleResult:
        """Discover and load one batch. Raises when the cycle failed (the caller backs off)."""
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
            self._forget_holds(pending)
            result = CycleResult(pending=len(pending))
            batch = self._batch(pending)
            try:
                if batch:
                    await self._load_batch(batch, result)
            finally:
                metrics.held_objects.set(len(self._held))
            result.held = sum(1 for o in pending if o.key in self._held)
            metrics.last_success_timestamp_seconds.set(time.time())
            if not result.more:
                # Caught up, except for held objects: they keep the lag growing.
                self._observe_pending([o for o in pending if o.key in self._held])
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
        """A held object whose delay is over, alone (its failure then involves no other), but
        never two cycles in a row while other objects wait — however many are held, the queue
        behind them keeps moving; else the oldest objects not held, bounded by count and
        bytes."""
        normal = self._normal_batch(pending)
        now = time.monotonic()
        if not (self._held_turn_taken and normal):
            for o in pending:
                hold = self._held.get(o.key)
                if hold is not None and hold.until_s <= now:
                    self._held_turn_taken = True
                    return [o]
        self._held_turn_taken = False
        return normal

    def _normal_batch(self, pending: list[ObjectInfo]) -> list[ObjectInfo]:
        batch: list[ObjectInfo] = []
        total = 0
        for o in pending:
            if o.key in self._held:
                continue
            if batch and (len(batch) >= self.max_objects or total + o.size > self.max_bytes):
                break
            batch.append(o)
            total += o.size
        return batch

    def _forget_holds(self, pending: list[ObjectInfo]) -> None:
        """Holds of objects no longer pending (loaded by another loader, removed by hand)."""
        keys = {o.key for o in pending}
        for key in [k for k in self._held if k not in keys]:
            del self._held[key]

    def _observe_pending(self, pending: list[ObjectInfo]) -> None:
        metrics.pending_objects.set(len(pending))
        if pending:
            oldest = min(o.last_modified for o in pending)
            metrics.lag_seconds.set(max(0.0, (datetime.now(UTC) - oldest).total_seconds()))
        else:
            metrics.lag_seconds.set(0)

    # ------------------------------------------------------------------ loading

    async def _load_batch(self, batch: list[ObjectInfo], result: CycleResult) -> None:
        """Load `batch`, isolating what fails; then hold the objects that failed alone
        without being shown bad — or, when nothing at all loaded, fail the cycle instead."""
        iso = _Isolation()
        try:
            outcome = await self._warehouse_load(batch)
        except Exception as exc:
            judged = verdict(exc)
            if not judged.isolate:
                raise
            if judged.data or len(batch) == 1:
                await self._isolate(batch, exc, result, iso)
            else:
                metrics.errors_total.labels(metrics.error_type(judged.reason)).inc()
                log(logger, logging.WARNING, "load failed; loading one object alone first",
                    objects=len(batch), reason=judged.reason, error=str(exc)[:500])  # fmt: skip
                control = await self._control(batch, result, iso)
                if control is None:
                    raise  # one object fails alike on its own: not any object's fault
                rest = [o for o in batch if o != control]
                await self._load(rest, result, iso)
        else:
            self._account(outcome, result, iso)
        if not iso.suspects:
            return
        retried_alone = len(batch) == 1 and batch[0].key in self._held
        if iso.progress or retried_alone:
            for obj, failure in iso.suspects:
                self._hold(obj, failure)
            return
        raise iso.suspects[0][1]

    async def _control(
        self, batch: list[ObjectInfo], result: CycleResult, iso: _Isolation
    ) -> ObjectInfo | None:
        """Before splitting a batch on a failure not shown to be the data's, load one of its
        objects alone. If it fails alike, the cause is not in the objects (an IAM role that
        cannot read the lake, a warehouse failing every COPY): return None, and the cycle
        fails after 2 loads instead of bisecting the whole batch (2N−1 more). The newest
        object is picked, and the next one after each failed control, so that a control that
        happened to be a poison object is not picked again."""
        control = batch[-1 - self._control_failures % len(batch)]
        try:
            outcome = await self._warehouse_load([control])
        except Exception as exc:
            judged = verdict(exc)
            if not judged.isolate:
                raise
            if not judged.data:
                self._control_failures += 1
                return None
            await self._isolate([control], exc, result, iso)
        else:
            self._account(outcome, result, iso)
        self._control_failures = 0
        return control

    async def _load(self, batch: list[ObjectInfo], result: CycleResult, iso: _Isolation) -> None:
        try:
            outcome = await self._warehouse_load(batch)
        except Exception as exc:
            judged = verdict(exc)
            if not judged.isolate:
                raise  # transient, or nothing an object can cause: the cycle fails
            await self._isolate(batch, exc, result, iso)
            return
        self._account(outcome, result, iso)

    async def _warehouse_load(self, batch: list[ObjectInfo]) -> LoadOutcome:
        try:
            return await asyncio.to_thread(
                self.warehouse.load, batch, self._write_manifest, self.local_files
            )
        finally:
            self._cleanup_tmp()  # downloads of an S3 lake: never more than one batch on disk

    def _account(self, outcome: LoadOutcome, result: CycleResult, iso: _Isolation) -> None:
        done = outcome.loaded + outcome.skipped
        self.discovery.mark_done(done)
        for key in done:
            self._held.pop(key, None)
        iso.progress = iso.progress or bool(done)
        result.loaded_objects += len(done)
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
        self, batch: list[ObjectInfo], exc: Exception, result: CycleResult, iso: _Isolation
    ) -> None:
        """Quarantine what the warehouse or the file check names; else split the batch."""
        judged = verdict(exc)
        metrics.errors_total.labels(metrics.error_type(judged.reason)).inc()
        log(logger, logging.WARNING, "load failed; isolating the objects at fault",
            objects=len(batch), reason=judged.reason, data=judged.data,
            error=str(exc)[:500])  # fmt: skip
        bad, gone = await self._named(batch, exc)
        for obj in gone:
            self._skip(obj, result)
        for obj, reason in bad.items():
            await self._quarantine(obj, reason, result, iso)
        if bad or gone:
            rest = [o for o in batch if o not in bad and o not in gone]
            if rest:
                await self._load(rest, result, iso)
            return
        if len(batch) == 1:
            await self._alone(batch[0], result, iso)
            return
        mid = len(batch) // 2
        for half in (batch[:mid], batch[mid:]):
            await self._load(half, result, iso)

    async def _named(
        self, batch: list[ObjectInfo], exc: Exception
    ) -> tuple[dict[ObjectInfo, str], list[ObjectInfo]]:
        """(bad objects with their reason, objects gone from the lake) that the failure itself
        names: the file check's findings, or the warehouse's load-error record."""
        cause = exc.cause if isinstance(exc, LoadFailed) else exc
        if isinstance(cause, ObjectsUnreadable):
            by_key = {o.key: o for o in batch}
            bad = {by_key[k]: r for k, r in cause.bad.items() if k in by_key}
            return bad, [by_key[k] for k in sorted(cause.gone) if k in by_key]
        if not verdict(exc).data:
            return {}, []
        urls = {self.lake.object_url(o.key): o for o in batch}
        named = await asyncio.to_thread(self.warehouse.load_error_files, list(urls))
        return {urls[u]: reason for u, reason in named if u in urls}, []

    async def _alone(self, obj: ObjectInfo, result: CycleResult, iso: _Isolation) -> None:
        """`obj` failed alone. Try it once more, alone — a passing condition lets it load now;
        a data error again quarantines it; anything else makes it a suspect (held or, if
        nothing in the batch loaded, the cycle's failure)."""
        try:
            outcome = await self._warehouse_load([obj])
        except Exception as again:
            judged = verdict(again)
            if not judged.isolate:
                raise  # transient: the object stays queued, the cycle is retried
            bad, gone = await self._named([obj], again)
            if gone:
                self._skip(obj, result)
            elif bad or judged.data:
                await self._quarantine(obj, bad.get(obj) or message_of(again), result, iso)
            elif not await self._exists(obj):
                self._skip(obj, result)
            else:
                iso.suspects.append((obj, again))
            return
        self._account(outcome, result, iso)

    async def _exists(self, obj: ObjectInfo) -> bool:
        return any([o.key == obj.key async for o in self.lake.list(obj.key)])

    def _hold(self, obj: ObjectInfo, exc: Exception) -> None:
        previous = self._held.get(obj.key)
        failures = previous.failures + 1 if previous else 1
        delay_s = min(HOLD_MAX_S, HOLD_BASE_S * 2 ** (failures - 1))
        reason = verdict(exc).reason
        self._held[obj.key] = _Hold(time.monotonic() + delay_s, failures, reason)
        log(logger, logging.WARNING,
            "object held: it fails alone, but not with a data error; retried alone later",
            key=obj.key, failures=failures, retry_in_s=delay_s, reason=reason,
            error=str(exc)[:500])  # fmt: skip

    def _skip(self, obj: ObjectInfo, result: CycleResult) -> None:
        """Listed but gone (a lifecycle rule, an operator): nothing to load or keep. Not in the
        ledger: if it comes back, it loads."""
        self._held.pop(obj.key, None)
        result.skipped += 1
        log(logger, logging.WARNING, "object listed but missing; skipped", key=obj.key)

    async def _quarantine(
        self, obj: ObjectInfo, reason: str, result: CycleResult, iso: _Isolation
    ) -> None:
        """Move a poison object to quarantine/ with its reason; record it in the ledger.

        The copy is server-side on S3 (a streamed copy on a local lake): the object never
        passes through this process's memory, whatever its size. Each step can be repeated
        after a crash: the copy is put-if-absent, the note is replaced, the ledger row is
        only added if missing, the delete is idempotent."""
        reason = reason[:REASON_MAX_CHARS]
        try:
            if not await self.lake.copy_new(obj.key, keys.quarantine_key(obj.key)):
                # An earlier copy is there: this same object after a crash, or an object that
                # was re-queued by copying (not moving) it back and is poison again. Keep both.
                again = keys.quarantine_copy_key(obj.key, datetime.now(UTC))
                await self.lake.copy_new(obj.key, again)
            note = orjson.dumps({"key": obj.key, "reason": reason,
                                 "quarantined_at": iso_utc(datetime.now(UTC))})  # fmt: skip
            await self.lake.put(keys.quarantine_note_key(obj.key), note)
            await asyncio.to_thread(
                self.warehouse.record, [(obj.key, "quarantined", obj.size, reason)], None
            )
        except Exception as exc:
            if _missing(exc):
                self._skip(obj, result)
                return
            # The move failed (S3 down, no permission on quarantine/): the object stays in
            # place, held, and is retried later; the rest of the batch goes on.
            metrics.errors_total.labels(metrics.error_type(classify(exc).reason)).inc()
            self._hold(obj, exc)
            return
        try:
            await self.lake.delete(obj.key)
        except Exception as exc:  # the ledger row already keeps it from loading
            log(logger, logging.WARNING, "quarantined object not deleted", key=obj.key,
                error=str(exc)[:300])  # fmt: skip
        self._held.pop(obj.key, None)
        self.discovery.mark_done([obj.key])
        metrics.quarantined_objects_total.inc()
        result.quarantined += 1
        iso.progress = True
        log(logger, logging.ERROR, "object quarantined", key=obj.key, reason=reason[:500])

    # ------------------------------------------------------------------ called from the DB thread

    def _write_manifest(self, batch: list[ObjectInfo]) -> str:
        """Redshift manifest: every entry mandatory, no duplicates. Written before the COPY."""
        now = datetime.now(UTC)
        key = keys.manifest_key(now, uuid.uuid4().hex[:12])
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
        """For DuckDB: local paths of the batch's objects. From an S3 lake they are streamed
        to files of a temporary directory (never whole in memory); objects gone from the
        lake are reported as :class:`ObjectsUnreadable`."""
        if isinstance(self.lake, LocalLake):
            return [self.lake.object_url(o.key) for o in batch]
        tmp = tempfile.mkdtemp(prefix="logship-load-")
        self._tmps.append(tmp)
        paths: list[str] = []
        gone: set[str] = set()
        for i, o in enumerate(batch):
            path = Path(tmp) / f"{i:06d}.json.gz"
            try:
                self._call(self.lake.download(o.key, path))
            except Exception as exc:
                if not _missing(exc):
                    raise
                gone.add(o.key)
            paths.append(str(path))
        if gone:
            raise ObjectsUnreadable({}, gone)
        return paths

    def _cleanup_tmp(self) -> None:
        while self._tmps:
            shutil.rmtree(self._tmps.pop(), ignore_errors=True)

    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()


async def run_forever(
    loader: Loader, *, interval_s: float, backoff_max_s: float, stop: asyncio.Event
) -> None:
    """Cycle until `stop`: immediately again while objects remain, else every `interval_s`;
    after an error, back off (capped, jittered) and retry."""
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
