"""Every lake error mapped, in one place, into *transient* (retry with backoff, the data waits
in the spool or the lake) or *terminal* (a human must act: report it loudly).

The mapping is by type, then by S3 error code and HTTP status; local OS errors by errno. The
reason is a short, bounded label: it is used in metric labels and logs.
"""

from __future__ import annotations

import asyncio
import errno
from dataclasses import dataclass

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from ingest.fsutil import ERRNO_NAMES


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
