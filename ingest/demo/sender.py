"""Sending records to the sink the way Vector's http sink does: gzip JSON-array batches,
429/503 retried after their Retry-After, connection errors retried (a resent batch that had
landed is deduplicated by the loader: event ids are stable)."""

from __future__ import annotations

import asyncio
import gzip
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson


class DemoError(RuntimeError):
    """The demo could not be delivered (server unreachable, refused, or kept busy)."""


_sleep = asyncio.sleep  # the tests replace it


def _retry_delay(header: str | None, attempt: int, max_wait_s: float) -> float:
    """Retry-After (seconds or an HTTP date) if given, else exponential backoff; capped."""
    delay = None
    if header:
        try:
            delay = float(header)
        except ValueError:
            try:
                when = parsedate_to_datetime(header)
                delay = (when - datetime.now(UTC)).total_seconds()
            except (TypeError, ValueError, IndexError):
                delay = None
    if delay is None:
        delay = 0.5 * 2**attempt
    return min(max(delay, 0.0), max_wait_s)


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    max_retries: int,
    max_wait_s: float,
) -> dict[str, Any]:
    attempt = 0
    while True:
        try:
            async with session.post(url, data=body, headers=headers) as resp:
                text = await resp.read()
                if resp.status == 200:
                    try:
                        counts = orjson.loads(text)
                    except orjson.JSONDecodeError:
                        counts = None
                    if not isinstance(counts, dict):
                        raise DemoError(f"{url} answered 200 without JSON counts: {text[:200]!r}")
                    return counts
                if resp.status not in (429, 503) or attempt >= max_retries:
                    detail = text[:300].decode("utf-8", "replace")
                    raise DemoError(f"{url} answered {resp.status}: {detail}")
                delay = _retry_delay(resp.headers.get("Retry-After"), attempt, max_wait_s)
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            # Safe to resend: event ids are stable, so a batch that did land is deduplicated.
            if attempt >= max_retries:
                raise DemoError(f"cannot reach {url}: {exc or type(exc).__name__}") from None
            delay = _retry_delay(None, attempt, max_wait_s)
        attempt += 1
        await _sleep(delay)


async def send(
    url: str,
    records: list[dict[str, Any]],
    batch_size: int = 500,
    token: str | None = None,
    *,
    max_retries: int = 6,
    max_wait_s: float = 30.0,
    timeout_s: float = 60.0,
) -> dict[str, int]:
    """POST `records` to `url` in gzip JSON-array batches, like Vector's http sink.

    429 and 503 are retried after their Retry-After (at most `max_wait_s` each, `max_retries`
    times), as are connection errors; any other status raises :class:`DemoError`. Returns the sum
    of the 200 responses' counts: ``{"accepted", "discarded", "rejected", "batches"}``."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    totals = {"accepted": 0, "discarded": 0, "rejected": 0, "batches": 0}
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for start in range(0, len(records), batch_size):
            body = gzip.compress(orjson.dumps(records[start : start + batch_size]), 6)
            counts = await _post(session, url, body, headers, max_retries, max_wait_s)
            for k in ("accepted", "discarded", "rejected"):
                totals[k] += int(counts.get(k) or 0)
            totals["batches"] += 1
    return totals
