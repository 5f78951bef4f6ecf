"""`pii: hash`: how a field marked so is stored — never its value, always the same digest."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any


class PiiHasher:
    """Applies `pii: hash` — HMAC-SHA256 with a secret key, or SHA-256 when no key is set."""

    def __init__(self, key: bytes = b""):
        self._key = key

    def __call__(self, value: Any) -> str:
        data = str(value).encode("utf-8", "surrogatepass")
        if self._key:
            return hmac.new(self._key, data, hashlib.sha256).hexdigest()
        return hashlib.sha256(data).hexdigest()
