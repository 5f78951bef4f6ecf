"""The lake client: S3 (aiobotocore) or a local directory, behind one small interface.

Used by the ingest uploader and by the loader (which reads objects and writes manifests), so
both sides agree on keys and URLs. Every external error is mapped in one place,
:func:`classify_error`, into *transient* (retry with backoff) or *terminal* (report loudly).

Objects are written **once**: :meth:`Lake.put_new` uses S3's conditional ``If-None-Match: *``
(a hard link on a local directory), so two writers can never clobber each other's objects. When
the key exists, :meth:`Lake.same_content` tells a re-upload after a crash (same key, same bytes:
done) from a different object under a taken key (never "done": see :mod:`ingest.uploader`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiobotocore.session import get_session
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from ingest.fsutil import ERRNO_NAMES, fsync_dir

#: Download buffer: a lake object streams to disk in blocks of this size.
_DOWNLOAD_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime


@dataclass(frozen=True, slots=True)
class ErrorKind:
    """How to treat an external error: retry it, or report it as needing a human."""

    transient: bool
    reason: str


_TRANSIENT_CODES = {
    "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeTooSkewed",
    "Throttling", "ThrottlingException", "RequestLimitExceeded", "OperationAborted",
    "ConditionalRequestConflict", "503", "500", "502", "504",
}  # fmt: skip
_TERMINAL_CODES = {
    "AccessDenied", "NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch",
    "AllAccessDisabled", "InvalidBucketName", "AccountProblem", "ExpiredToken", "InvalidToken",
}  # fmt: skip


def classify_error(exc: BaseException) -> ErrorKind:
    """Map any lake error to transient/terminal with a short reason (a metric/log label)."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _TERMINAL_CODES:
            return ErrorKind(False, code)
        if code in _TRANSIENT_CODES or status >= 500 or status in (408, 429):
            return ErrorKind(True, code or str(status))
        return ErrorKind(False, code or str(status))
    if isinstance(exc, BotoConnectionError | HTTPClientError | aiohttp.ClientError):
        return ErrorKind(True, "connection")
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return ErrorKind(True, "timeout")
    if isinstance(exc, BotoCoreError):
        return ErrorKind(True, type(exc).__name__)
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOENT:
            return ErrorKind(False, "NoSuchKey")
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return ErrorKind(False, "permission")
        # EMFILE, ENOSPC, EIO, …: pass with time. Named from a bounded set (a metric label).
        return ErrorKind(True, "os:" + ERRNO_NAMES.get(exc.errno or 0, "other"))
    return ErrorKind(False, type(exc).__name__)


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


class LocalLake(Lake):
    """A directory on local disk: the embedded default. Writes are atomic (temp + link)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).absolute()
        self.url = str(self.root)

    async def start(self) -> None:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if not p.is_relative_to(self.root.resolve()):
            raise ValueError(f"key escapes the lake: {key!r}")
        return p

    def _write_tmp(self, path: Path, data: bytes) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".tmp-{uuid.uuid4().hex}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return tmp

    def _put_new(self, key: str, data: bytes) -> bool:
        path = self._path(key)
        tmp = self._write_tmp(path, data)
        try:
            os.link(tmp, path)  # atomic, and fails if the key exists: never an overwrite
        except FileExistsError:
            return False
        finally:
            tmp.unlink()
        fsync_dir(path.parent)
        return True

    async def put_new(self, key: str, data: bytes) -> bool:
        return await asyncio.to_thread(self._put_new, key, data)

    def _same_content(self, key: str, data: bytes) -> bool:
        try:
            with open(self._path(key), "rb") as f:
                if os.fstat(f.fileno()).st_size != len(data):
                    return False
                view = memoryview(data)
                for start in range(0, len(data), _DOWNLOAD_CHUNK_BYTES):
                    if f.read(_DOWNLOAD_CHUNK_BYTES) != view[start : start + _DOWNLOAD_CHUNK_BYTES]:
                        return False
        except FileNotFoundError:
            return False
        # The same bytes are there, but the earlier put may have failed after its link and
        # before its directory sync (EMFILE, EIO): sync it now, or the caller would delete the
        # spool segment for an object a power loss can still take away.
        fsync_dir(self._path(key).parent)
        return True

    async def same_content(self, key: str, data: bytes) -> bool:
        return await asyncio.to_thread(self._same_content, key, data)

    def _put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = self._write_tmp(path, data)
        os.replace(tmp, path)
        fsync_dir(path.parent)

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put, key, data)

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._path(key).read_bytes)

    async def download(self, key: str, path: Path) -> int:
        def _copy() -> int:
            shutil.copyfile(self._path(key), path)
            return os.path.getsize(path)

        return await asyncio.to_thread(_copy)

    def _copy_new(self, src: str, dst: str) -> bool:
        source, target = self._path(src), self._path(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".tmp-{uuid.uuid4().hex}"
        try:
            shutil.copyfile(source, tmp)  # streams in blocks
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.link(tmp, target)
        except FileExistsError:
            fsync_dir(target.parent)  # it may be an earlier copy whose directory sync failed
            return False
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(target.parent)
        return True

    async def copy_new(self, src: str, dst: str) -> bool:
        return await asyncio.to_thread(self._copy_new, src, dst)

    async def delete(self, key: str) -> None:
        def _rm() -> None:
            with contextlib.suppress(FileNotFoundError):
                self._path(key).unlink()

        await asyncio.to_thread(_rm)

    def _list(self, prefix: str, start_after: str) -> list[ObjectInfo]:
        base = self.root / prefix
        # Walk only the directory that can hold the prefix, not the whole lake.
        top = base if base.is_dir() else base.parent
        if not top.exists():
            return []
        out = []
        for dirpath, _dirs, files in os.walk(top):
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                full = Path(dirpath) / name
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix) and key > start_after:
                    st = full.stat()
                    out.append(
                        ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))
                    )
        out.sort(key=lambda o: o.key)
        return out

    async def list(self, prefix: str, start_after: str = "") -> AsyncIterator[ObjectInfo]:  # type: ignore[override]
        for info in await asyncio.to_thread(self._list, prefix, start_after):
            yield info

    def object_url(self, key: str) -> str:
        return str(self._path(key))


class S3Lake(Lake):
    """`s3://bucket/prefix` through aiobotocore; endpoint and credentials from `AWS_*`."""

    def __init__(self, url: str, *, connect_timeout_s: float = 5, read_timeout_s: float = 30):
        rest = url[len("s3://") :]
        self.bucket, _, prefix = rest.partition("/")
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = url
        self._config = BotoConfig(
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            # Our own loop retries with backoff and keeps data in the spool; the SDK's own
            # retries would only hide errors from the metrics.
            retries={"max_attempts": 1, "mode": "standard"},
        )
        self._client: Any = None
        self._exit: contextlib.AsyncExitStack | None = None

    async def start(self) -> None:
        self._exit = contextlib.AsyncExitStack()
        session = get_session()
        self._client = await self._exit.enter_async_context(
            session.create_client("s3", config=self._config)
        )

    async def close(self) -> None:
        if self._exit is not None:
            await self._exit.aclose()
            self._exit = None

    def _k(self, key: str) -> str:
        return self.prefix + key

    async def put_new(self, key: str, data: bytes) -> bool:
        try:
            await self._client.put_object(
                Bucket=self.bucket, Key=self._k(key), Body=data, IfNoneMatch="*"
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "PreconditionFailed":
                return False
            raise
        return True

    async def same_content(self, key: str, data: bytes) -> bool:
        try:
            head = await self._client.head_object(Bucket=self.bucket, Key=self._k(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        if int(head.get("ContentLength", -1)) != len(data):
            return False
        # A single-part upload without SSE-KMS has the body's MD5 as its ETag; any other ETag
        # proves nothing either way, so the bytes are compared (rare: only on a taken key).
        if str(head.get("ETag", "")).strip('"') == hashlib.md5(data).hexdigest():
            return True
        return await self.get(key) == data

    async def put(self, key: str, data: bytes) -> None:
        await self._client.put_object(Bucket=self.bucket, Key=self._k(key), Body=data)

    async def get(self, key: str) -> bytes:
        resp = await self._client.get_object(Bucket=self.bucket, Key=self._k(key))
        async with resp["Body"] as stream:
            return await stream.read()

    async def download(self, key: str, path: Path) -> int:
        resp = await self._client.get_object(Bucket=self.bucket, Key=self._k(key))
        total = 0
        async with resp["Body"] as stream:
            with open(path, "wb") as f:
                while chunk := await stream.read(_DOWNLOAD_CHUNK_BYTES):
                    await asyncio.to_thread(f.write, chunk)
                    total += len(chunk)
        return total

    async def copy_new(self, src: str, dst: str) -> bool:
        # CopyObject is server-side (no bytes through this process) and, like PutObject,
        # takes If-None-Match: * so an existing destination is never overwritten. Objects
        # above 5 GiB would need a multipart copy; lake objects are far below that.
        try:
            await self._client.copy_object(
                Bucket=self.bucket,
                Key=self._k(dst),
                CopySource={"Bucket": self.bucket, "Key": self._k(src)},
                IfNoneMatch="*",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "PreconditionFailed":
                return False
            raise
        return True

    async def delete(self, key: str) -> None:
        await self._client.delete_object(Bucket=self.bucket, Key=self._k(key))

    async def list(self, prefix: str, start_after: str = "") -> AsyncIterator[ObjectInfo]:  # type: ignore[override]
        paginator = self._client.get_paginator("list_objects_v2")
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._k(prefix)}
        if start_after:
            kwargs["StartAfter"] = self._k(start_after)
        async for page in paginator.paginate(**kwargs):
            for obj in page.get("Contents", []):
                yield ObjectInfo(obj["Key"][len(self.prefix) :], obj["Size"], obj["LastModified"])

    def object_url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._k(key)}"


def open_lake(url: str) -> Lake:
    """A lake for `LOGSHIP_LAKE_URL`."""
    if url.startswith("s3://"):
        return S3Lake(url)
    if "://" in url and not url.startswith("file://"):
        raise ValueError(f"unsupported lake URL {url!r} (s3://bucket/prefix or a directory)")
    return LocalLake(url.removeprefix("file://"))
