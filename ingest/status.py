"""Every HTTP status the sink answers, as data, in one place.

Status codes are a contract with the senders: Vector and the Datadog Agent retry 408/429/5xx
and *drop* the batch on any other 4xx. So a 4xx is only for a request that would fail the same
way again (undecodable body, bad token, over the configured limits), and every condition of
ours that passes with time (spool full, draining, disk error, overload) is a 503 with
``Retry-After``, and a body that does not arrive in time a 408.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Decision:
    """What we answer for one failure reason. Whether the sender retries follows from the
    status alone (408 and 5xx are retried, any other 4xx drops the batch): see the groups of
    :data:`DECISIONS`."""

    status: int
    retry_after_s: int | None = None
    #: Close the connection after answering: the rest of the request will never be read.
    close_connection: bool = False


DECISIONS: dict[str, Decision] = {
    # Don't retry: the same request would fail the same way.
    "unauthorized": Decision(401),
    "body_too_large": Decision(413),
    "decompressed_too_large": Decision(413),
    "unsupported_encoding": Decision(415),
    "bad_compression": Decision(400),
    "invalid_body": Decision(400),
    # Retry: ours, and passes with time.
    "spool_full": Decision(503, retry_after_s=5),
    "draining": Decision(503, retry_after_s=5),
    "spool_write_failed": Decision(503, retry_after_s=5),
    # LOGSHIP_MAX_INFLIGHT_BYTES of requests are being worked on: passes within seconds.
    # Closed after the answer: the refusal may come before the body was read, and draining a
    # body we will not use (up to LOGSHIP_MAX_BODY_BYTES) would waste what the budget protects.
    "overloaded": Decision(503, retry_after_s=2, close_connection=True),
    # The body did not arrive within LOGSHIP_BODY_READ_TIMEOUT_S (a stalled or very slow client).
    "body_read_timeout": Decision(408, close_connection=True),
}


class RequestError(Exception):
    """A request-level failure; `reason` selects the status from :data:`DECISIONS`."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.decision = DECISIONS[reason]

    @property
    def status(self) -> int:
        return self.decision.status
