"""A lake in a local directory: the embedded default, and what the tests and `logship dev` use.

Writes are atomic and durable: a temporary file is written and fsynced, then hard-linked to
its key (which fails if the key exists: put-if-absent without a race) and the directory is
fsynced, so an object a caller counts as written survives a power loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

from ingest.fsutil import fsync_dir
from ingest.lake.base import DOWNLOAD_CHUNK_BYTES, Lake, ObjectInfo

#: Files being written are named so, next to their key; a listing never shows them.
_TMP_PREFIX = ".tmp-"


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
        tmp = path.parent / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
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
                for start in range(0, len(data), DOWNLOAD_CHUNK_BYTES):
                    if f.read(DOWNLOAD_CHUNK_BYTES) != view[start : start + DOWNLOAD_CHUNK_BYTES]:
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
        tmp = target.parent / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
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
                if name.startswith(_TMP_PREFIX):
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
