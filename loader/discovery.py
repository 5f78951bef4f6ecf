"""Finding lake objects not yet loaded: bounded listings, diffed against the ledger.

Objects land in the partition of the hour ingest *received* their events, so a new object can
only appear in a recent partition — unless ingest rode out a long S3 outage. Each cycle lists
the day partitions within `LOGSHIP_DISCOVERY_LOOKBACK_S`; a full listing of `events/` runs at
start and every `LOGSHIP_FULL_SCAN_INTERVAL_S` to catch anything older. Keys known to be in the
ledger are remembered, so the ledger is asked only about keys it has not answered for yet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from ingest.lake import Lake, ObjectInfo, keys

PREFIX = keys.stream_prefix(keys.EVENTS)


class Discovery:
    def __init__(
        self,
        lake: Lake,
        loaded_among: Callable[[list[str]], set[str]],
        *,
        lookback_s: float,
        full_scan_interval_s: float,
    ):
        self.lake = lake
        self.loaded_among = loaded_among
        self.lookback_s = lookback_s
        self.full_scan_interval_s = full_scan_interval_s
        self._last_full = float("-inf")
        self._known: set[str] = set()
        #: Listed and not known to be loaded, as of the last listing: the lag while the
        #: warehouse cannot be asked is measured on these.
        self.unconfirmed: list[ObjectInfo] = []

    def prefixes(self, now: datetime) -> list[str]:
        """The day partitions to list: the lookback window, and tomorrow (clock skew)."""
        start = (now - timedelta(seconds=self.lookback_s)).date()
        end = (now + timedelta(days=1)).date()
        days = []
        d = start
        while d <= end:
            days.append(keys.day_prefix(keys.EVENTS, d))
            d += timedelta(days=1)
        return days

    async def pending(self, now: datetime | None = None) -> list[ObjectInfo]:
        """Objects not in the ledger, oldest first (keys sort by partition, then writer)."""
        now = now or datetime.now(UTC)
        full = time.monotonic() - self._last_full >= self.full_scan_interval_s
        listing: list[ObjectInfo] = []
        for prefix in [PREFIX] if full else self.prefixes(now):
            listing.extend([o async for o in self.lake.list(prefix) if keys.is_object(o.key)])
        if full:
            self._last_full = time.monotonic()
            self._known &= {o.key for o in listing}  # forget what is gone from the lake
        self.unconfirmed = [o for o in listing if o.key not in self._known]
        unknown = [o.key for o in self.unconfirmed]
        if unknown:
            self._known |= await asyncio.to_thread(self.loaded_among, unknown)
        return sorted((o for o in listing if o.key not in self._known), key=lambda o: o.key)

    def mark_done(self, keys: list[str]) -> None:
        self._known.update(keys)
