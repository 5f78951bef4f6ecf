"""Stage 4: closed spool segments → gzip NDJSON lake objects, then deleted from the spool.

A segment is deleted only after its object is in the lake, so an S3 outage costs spool space,
never data. Keys are deterministic (see :mod:`ingest.spool`), and the upload is a conditional
put-if-absent, so a retry after any failure — or after a crash between upload and delete — lands
the same object once.
"""

from __future__ import annotations

import asyncio
import logging
import time

from isal import igzip

from ingest import metrics
from ingest.backoff import Backoff
from ingest.lake import Lake, classify_error
from ingest.logs import log
from ingest.spool import Segment, Spool

logger = logging.getLogger("logship.uploader")


def object_key(seg: Segment, writer: str, spool_id: str) -> str:
    """DESIGN §5: `<stream>/dt=YYYY-MM-DD/hour=HH/<writer-id>-<sequence>.json.gz`."""
    return f"{seg.stream}/dt={seg.dt}/hour={seg.hour}/{writer}-{spool_id}-{seg.seq:012d}.json.gz"


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

    async def run(self) -> None:
        """Forever: rotate what is due, upload what is ready; back off while the lake fails."""
        while True:
            try:
                ok = await self.pass_once()
            except Exception as exc:  # a disk error must not end the uploader for good
                metrics.upload_errors_total.inc()
                self.last_error = f"{type(exc).__name__}: {exc}"
                log(logger, logging.ERROR, "upload pass failed; retrying", error=str(exc)[:500])
                ok = False
            self.update_gauges()
            delay = self.poll_interval_s if ok else self._backoff.next_delay_s()
            await asyncio.sleep(delay)

    async def pass_once(self, *, force_rotate: bool = False) -> bool:
        """One rotation + upload pass; True when everything ready was uploaded."""
        await self.spool.rotate(force=force_rotate)
        for seg in self.spool.ready():
            if not await self._upload(seg):
                return False
        return True

    async def _upload(self, seg: Segment) -> bool:
        key = object_key(seg, self.writer, self.spool.spool_id)
        try:
            body = await asyncio.to_thread(_compress, seg)
        except FileNotFoundError:  # removed already (an interrupted remove): nothing to send
            await self.spool.remove(seg)
            return True
        try:
            created = await self.lake.put_new(key, body)
        except Exception as exc:
            kind = classify_error(exc)
            metrics.upload_errors_total.inc()
            self.last_error = f"{type(exc).__name__}: {exc}"
            log(
                logger,
                logging.WARNING if kind.transient else logging.ERROR,
                "upload failed; data stays in the spool and is retried",
                key=key,
                transient=kind.transient,
                reason=kind.reason,
                error=str(exc)[:500],
            )
            return False
        await self.spool.remove(seg)
        self._backoff.reset()
        self.last_error = None
        metrics.uploaded_objects_total.inc()
        log(
            logger,
            logging.DEBUG,
            "uploaded" if created else "already in the lake (re-upload after restart)",
            key=key,
            bytes=len(body),
        )
        return True

    def update_gauges(self) -> None:
        metrics.spool_size_bytes.set(self.spool.size_bytes)
        metrics.spool_oldest_age_seconds.set(self.spool.oldest_age_s())

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
