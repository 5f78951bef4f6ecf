"""Stage 0: admitting a request — its token, and its body within size, budget and time.

Nothing of a request is worked on before its sender is known: every token is compared (in
time that does not depend on which one matches), then the body is read as it arrives, never
as announced: a client that announces a large body and sends nothing holds nothing of the
in-flight budget, and one that sends too slowly is cut off (408).
"""

from __future__ import annotations

import asyncio
import hmac

from aiohttp import web

from ingest.budget import Reservation
from ingest.status import RequestError


def authorized(request: web.Request, tokens: tuple[bytes, ...]) -> bool:
    """Does the request carry one of `tokens` (Datadog's `DD-API-KEY` header or `dd_api_key`
    query, or `Authorization: Bearer`)? Every request is, when no token is configured."""
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


async def read_body(
    request: web.Request, limit: int, reservation: Reservation, timeout_s: float
) -> bytes:
    """Read at most `limit` bytes of body within `timeout_s`; 413 as soon as it is known to be
    larger, 503 as soon as the in-flight budget has no room for what arrived, 408 when it does
    not arrive in time. Bytes are reserved as they arrive, not as announced."""
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
