"""The lake client: S3 (aiobotocore) or a local directory, behind one small interface.

Used by the ingest uploader and by the loader (which reads objects and writes manifests), so
both sides agree on keys and URLs:

* :mod:`~ingest.lake.base` — the :class:`Lake` interface (objects written once, compared
  when a key is taken) and :class:`ObjectInfo`;
* :mod:`~ingest.lake.local` and :mod:`~ingest.lake.s3` — the two backends;
* :mod:`~ingest.lake.errors` — :func:`classify_error`, every external error mapped into
  *transient* (retry with backoff) or *terminal* (report loudly);
* :mod:`~ingest.lake.keys` — every key layout of the lake.
"""

from __future__ import annotations

from ingest.lake import keys
from ingest.lake.base import Lake, ObjectInfo
from ingest.lake.errors import ErrorKind, classify_error
from ingest.lake.local import LocalLake
from ingest.lake.s3 import S3Lake

__all__ = [
    "ErrorKind",
    "Lake",
    "LocalLake",
    "ObjectInfo",
    "S3Lake",
    "classify_error",
    "keys",
    "open_lake",
]


def open_lake(url: str) -> Lake:
    """A lake for `LOGSHIP_LAKE_URL`."""
    if url.startswith("s3://"):
        return S3Lake(url)
    if "://" in url and not url.startswith("file://"):
        raise ValueError(f"unsupported lake URL {url!r} (s3://bucket/prefix or a directory)")
    return LocalLake(url.removeprefix("file://"))
