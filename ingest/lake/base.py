"""The interface every lake implements, and what a listing returns.

Keys are relative to the lake's root (a directory, or a bucket and prefix); their layout is
:mod:`ingest.lake.keys`. Objects are written **once**: :meth:`Lake.put_new` never replaces an
existing key, and :meth:`Lake.same_content` tells a re-upload after a crash (same key, same
bytes: done) from a different object under a taken key (never "done": see
:mod:`ingest.uploader`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

#: Streaming buffer: a lake object is read, compared and downloaded in blocks of this size.
DOWNLOAD_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime


class Lake:
    """Interface of a lake; keys are relative to the lake's prefix."""

    url: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def put_new(self, key: str, data: bytes) -> bool:
        """Write `key` once; False if it already exists (left unchanged)."""
        raise NotImplementedError

    async def same_content(self, key: str, data: bytes) -> bool:
        """Whether the existing object `key` holds exactly `data` (False if it is absent)."""
        raise NotImplementedError

    async def put(self, key: str, data: bytes) -> None:
        """Write `key`, replacing it (manifests, quarantine notes)."""
        raise NotImplementedError

    async def get(self, key: str) -> bytes:
        raise NotImplementedError

    async def download(self, key: str, path: Path) -> int:
        """Stream `key` into the local file `path` (never whole in memory); returns its size."""
        raise NotImplementedError

    async def copy_new(self, src: str, dst: str) -> bool:
        """Copy `src` to `dst` inside the lake without reading it into memory (S3: a
        server-side copy); like :meth:`put_new`, False if `dst` exists (left unchanged)."""
        raise NotImplementedError

    async def delete(self, key: str) -> None:
        raise NotImplementedError

    def list(self, prefix: str, start_after: str = "") -> AsyncIterator[ObjectInfo]:
        """Objects under `prefix` in key order, after `start_after`."""
        raise NotImplementedError

    def object_url(self, key: str) -> str:
        """The URL a warehouse COPY uses for `key` (s3://… or a local path)."""
        raise NotImplementedError
