"""Stage 5: closed spool segments → gzip NDJSON lake objects, then deleted from the spool.

A segment is deleted only after its bytes are known to be in the lake, so an S3 outage costs
spool space, never data. Keys are deterministic (see :mod:`ingest.spool`) and the upload is a
conditional put-if-absent. When the key is already taken, what is there is compared: the same
bytes (gzip with mtime=0 is deterministic) mean an earlier upload of this segment succeeded —
a retry, or a crash between upload and delete — and the segment is deleted; different bytes
mean another segment took the key (a restored snapshot, a spool merged by hand), and this one
is uploaded under a key derived from its content, logged as a warning. Never deleted because a
key "already exists".

Local OS errors on this path (reading a segment, a local lake's disk, fd exhaustion opening a
connection) are counted in ``logship_ingest_io_errors_total`` and make :meth:`stalled_reason`
say so until a pass succeeds; an unreachable S3 does not — the spool absorbs it, and readiness
turns 503 at 90% of the spool's cap.
"""

from __future__ import annotations

import asyncio
import logging
import time

from isal import igzip

from ingest import metrics
from ingest.backoff import Backoff
from ingest.fsutil import errno_name, is_local_fault
from ingest.lake import Lake, classify_error, keys
from ingest.logs import log
from ingest.spool import Fault, Segment, Spool

logger = logging.getLogger("logship.uploader")


class KeyConflict(Exception):
    """Both the segment's key and its content-derived key hold other bytes: it is kept."""


def object_key(seg: Segment, writer: str, spool_id: str) -> str:
    """The lake key of `seg` (layout: :func:`ingest.lake.keys.object_key`); the origin is the
    spool that wrote the segment (`spool_id`, the holder's, for its own)."""
    return keys.object_key(seg.stream, seg.dt, seg.hour, writer, seg.origin or spool_id, seg.seq)


def _compress(seg: Segment) -> bytes:
    data = seg.path.read_bytes()
    # mtime=0: the same segment always compresses to the same bytes.
    return igzip.compress(data, compresslevel=2, mtime=0)


class Uploader:
    """Rotates spool segments by age and uploads closed ones, oldest first."""

    def __init__(
        self,
        spool: Spool,
        lake: Lake,
        writer: str,
        *,
        backoff_max_s: float = 30.0,
        poll_interval_s: float = 0.5,
    ):
        self.spool = spool
        self.lake = lake
        self.writer = writer
        self.poll_interval_s = poll_interval_s
        self._backoff = Backoff(base_s=0.2, max_s=backoff_max_s)
        self.last_error: str | None = None
        self._fault: Fault | None = None  # a local OS error on the upload path, until a pass works

    async def run(self) -> None:
        """Forever: rotate what is due, upload what is ready; back off while the lake fails."""
        while True:
            try:
                ok = await self.pass_once()
            except Exception as exc:  # an unexpected error must not end the uploader for good
                metrics.upload_errors_total.inc()
                self.last_error = f"{type(exc).__name__}: {exc}"
                log(logger, logging.ERROR, "upload pass failed; retrying", error=str(exc)[:500])
                ok = False
            self.update_gauges()
            delay = self.poll_interval_s if ok else self._backoff.next_delay_s()
            await asyncio.sleep(delay)

    async def pass_once(self, *, force_rotate: bool = False) -> bool:
        """One rotation + upload pass; True when everything was closed and uploaded. A failed
        rotation (already counted and held as a fault by the spool) does not keep the segments
        that are ready from going."""
        rotated = True
        try:
            await self.spool.rotate(force=force_rotate)
        except OSError:
            rotated = False
        for seg in self.spool.ready():
            if not await self._upload(seg):
                return False
        self._healed()
        return rotated

    async def _upload(self, seg: Segment) -> bool:
        """Upload one segment and delete it; False (retry later) on any failure."""
        if not seg.uploaded:
            key = object_key(seg, self.writer, self.spool.spool_id)
            try:
                body = await asyncio.to_thread(_compress, seg)
            except FileNotFoundError:
                self.spool.forget(seg)
                return True
            except OSError as exc:
                return self._failed(exc, "upload_read", key)
            try:
                key, outcome = await self._put(key, body)
            except KeyConflict as exc:  # kept, loudly; the segments behind it still go
                log(logger, logging.ERROR, "segment kept: its keys hold other objects",
                    path=str(seg.path), error=str(exc))  # fmt: skip
                return True
            except Exception as exc:
                return self._failed(exc, "upload_lake", key)
            metrics.uploaded_objects_total.inc()
            log(logger, logging.DEBUG, outcome, key=key, bytes=len(body))
        try:
            await self.spool.remove(seg)
        except OSError as exc:  # held as a fault by the spool; only the unlink is retried
            self.last_error = f"{type(exc).__name__}: {exc}"
            return False
        self._backoff.reset()
        self.last_error = None
        return True

    async def _put(self, key: str, body: bytes) -> tuple[str, str]:
        """Put-if-absent that compares what is there: the key used and what happened."""
        if await self.lake.put_new(key, body):
            return key, "uploaded"
        if await self.lake.same_content(key, body):
            return key, "already in the lake (an earlier upload of this segment)"
        alt = keys.content_key(key, body)
        log(logger, logging.WARNING,
            "key holds a different object (a moved, merged or restored spool); "
            "uploading under a new key", key=key, new_key=alt)  # fmt: skip
        if await self.lake.put_new(alt, body) or await self.lake.same_content(alt, body):
            return alt, "uploaded under a new key"
        raise KeyConflict(f"{key} and {alt} both hold other objects")

    def _failed(self, exc: BaseException, stage: str, key: str) -> bool:
        kind = classify_error(exc)
        metrics.upload_errors_total.inc()
        self.last_error = f"{type(exc).__name__}: {exc}"
        local = stage == "upload_read" or is_local_fault(exc)
        if local:
            error = errno_name(exc)
            metrics.io_errors_total.labels(stage, error).inc()
            since = self._fault.since_mono_s if self._fault else time.monotonic()
            self._fault = Fault(error, since)
        log(
            logger,
            logging.WARNING if kind.transient else logging.ERROR,
            "upload failed; data stays in the spool and is retried",
            key=key,
            transient=kind.transient,
            reason=kind.reason,
            local=local,
            error=str(exc)[:500],
        )
        return False

    def _healed(self) -> None:
        if self._fault is not None:
            log(logger, logging.WARNING, "uploads work again", error=self._fault.error,
                seconds=round(time.monotonic() - self._fault.since_mono_s, 1))  # fmt: skip
            self._fault = None

    def stalled_reason(self) -> str | None:
        """Why this process cannot make progress now, for ``/readyz`` (None when it can):
        ``spool_write_failed: ENOSPC``, ``spool_rotate_failed: EMFILE for 3 s``,
        ``upload_failing: EIO for 12 s``…"""
        reason = self.spool.fault_reason()
        if reason is None and self._fault is not None:
            seconds = int(time.monotonic() - self._fault.since_mono_s)
            reason = f"upload_failing: {self._fault.error} for {seconds} s"
        return reason

    def update_gauges(self) -> None:
        metrics.spool_size_bytes.set(self.spool.size_bytes)
        metrics.spool_oldest_age_seconds.set(self.spool.oldest_age_s())
        metrics.stalled.set(0 if self.stalled_reason() is None else 1)

    async def drain(self, timeout_s: float) -> bool:
        """Close every open segment and upload everything; False if the time ran out."""
        deadline = time.monotonic() + timeout_s
        backoff = Backoff(base_s=0.1, max_s=2.0)
        while True:
            # Bounded too: an upload stuck on a slow S3 must not hold the pod past its grace
            # period. Abandoning it is safe — a segment leaves the spool only after its upload
            # succeeded, and the key is put-if-absent, so the next start redoes it once.
            try:
                done = await asyncio.wait_for(
                    self.pass_once(force_rotate=True), max(0.1, deadline - time.monotonic())
                )
            except TimeoutError:
                done = False
            if done:
                self.update_gauges()
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.update_gauges()
                return False
            await asyncio.sleep(min(remaining, backoff.next_delay_s()))
