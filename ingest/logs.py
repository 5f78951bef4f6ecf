"""JSON logs on stderr, one object per line; no payload contents at info level.

Problems are logged once per batch with their reason and counts (not once per record), so a
flood of bad input cannot become a flood of log lines.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if extra:
            entry.update(extra)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiohttp.access", "botocore", "aiobotocore", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def log(logger: logging.Logger, level: int, msg: str, **fields: object) -> None:
    """Log `msg` with structured `fields` (merged into the JSON object)."""
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={"fields": fields})


class CountSummary:
    """Counts of a recurring problem, logged at most once per `interval_s`.

    A steady trickle of bad records (one in each of hundreds of batches a second) would
    otherwise be hundreds of identical warnings a second; the metrics hold the exact counts,
    the log says that it happens and what. The first occurrence is logged at once."""

    def __init__(self, logger: logging.Logger, level: int, msg: str, interval_s: float = 10.0):
        self.logger, self.level, self.msg, self.interval_s = logger, level, msg, interval_s
        self._pending: dict[str, int] = {}
        self._last = float("-inf")

    def add(self, counts: Mapping[str, int]) -> None:
        for key, n in counts.items():
            self._pending[key] = self._pending.get(key, 0) + n
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            since = None if self._last == float("-inf") else round(now - self._last, 1)
            log(self.logger, self.level, self.msg, counts=self._pending, since_s=since)
            self._pending = {}
            self._last = now
