"""A lake in `s3://bucket/prefix` through aiobotocore (or any S3-compatible store).

Objects are written with the conditional ``If-None-Match: *`` (put and server-side copy), so two
writers can never clobber each other's objects. The SDK's own retries are off: the callers
retry with backoff, and keep the data in the spool or the lake meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiobotocore.session import get_session
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from ingest.lake.base import DOWNLOAD_CHUNK_BYTES, Lake, ObjectInfo


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
                while chunk := await stream.read(DOWNLOAD_CHUNK_BYTES):
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
