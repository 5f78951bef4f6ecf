"""Capped, jittered exponential backoff, shared by the uploader and the loader."""

from __future__ import annotations

import random


class Backoff:
    """Delays of base·2ⁿ seconds, capped at `max_s`, with "equal jitter" (half fixed, half random)
    so a fleet of writers recovering from one S3 outage does not retry in lockstep."""

    def __init__(self, base_s: float = 0.2, max_s: float = 30.0):
        self.base_s = base_s
        self.max_s = max_s
        self.failures = 0

    def next_delay_s(self) -> float:
        d = min(self.max_s, self.base_s * (2**self.failures))
        self.failures = min(self.failures + 1, 30)
        return d / 2 + random.uniform(0, d / 2)

    def reset(self) -> None:
        self.failures = 0
