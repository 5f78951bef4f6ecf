"""Every external error of the loader mapped, in one function, to transient or terminal.

*Transient* (retry the cycle with capped, jittered backoff): connection lost or refused,
serialisation conflicts, statement timeouts, throttling, S3 5xx. *Terminal* (bad data: isolate
the object and quarantine it): a COPY that fails on an object's contents. Anything else is
terminal for the cycle — counted, logged, retried after backoff — but never blocks the lake.
"""

from __future__ import annotations

import re
import socket

import duckdb
import redshift_connector

from ingest.lake import ErrorKind
from ingest.lake import classify_error as classify_lake_error

#: SQLSTATEs that pass with time.
_TRANSIENT_SQLSTATE = {
    "40001": "serialization",  # serializable isolation violation (concurrent transactions)
    "40P01": "deadlock",
    "57014": "timeout",  # statement_timeout / query cancelled
    "57P01": "connection",  # admin shutdown
    "57P03": "connection",  # cannot connect now
    "53300": "connection",  # too many connections
    "08000": "connection",
    "08003": "connection",
    "08006": "connection",
}


class LoadDataError(Exception):
    """A COPY failed because of the data in (some of) its objects."""


def sqlstate(exc: BaseException) -> tuple[str, str]:
    """(SQLSTATE, message) of a redshift-connector error, or ("", str(exc))."""
    arg = exc.args[0] if exc.args else None
    if isinstance(arg, dict):
        return str(arg.get("C", "")), str(arg.get("M", ""))
    return "", str(exc)


def classify(exc: BaseException) -> ErrorKind:
    """Transient or terminal, with a short `error_type` label for the metrics."""
    if isinstance(exc, LoadDataError):
        return ErrorKind(False, "load_error")
    if isinstance(exc, redshift_connector.InterfaceError | redshift_connector.OperationalError):
        return ErrorKind(True, "connection")
    if isinstance(exc, redshift_connector.ProgrammingError | redshift_connector.DatabaseError):
        code, message = sqlstate(exc)
        if code in _TRANSIENT_SQLSTATE:
            return ErrorKind(True, _TRANSIENT_SQLSTATE[code])
        if "S3ServiceException" in message:
            # Redshift could not read S3 (after its own retries): a query-level error that
            # names no file. Never a reason to quarantine; 5xx/throttling pass with time.
            return ErrorKind(_s3_status_transient(message), "lake")
        if _is_load_failure(message):
            return ErrorKind(False, "load_error")
        return ErrorKind(False, f"sql_{code or 'unknown'}")
    if isinstance(exc, duckdb.TransactionException | duckdb.ConstraintException):
        return ErrorKind(True, "serialization")  # a racing loader committed first
    if isinstance(exc, duckdb.IOException) and _is_bad_input(str(exc)):
        return ErrorKind(False, "load_error")  # DuckDB reports unreadable input files as IO
    if isinstance(exc, duckdb.IOException | duckdb.InterruptException):
        return ErrorKind(True, "io")
    if isinstance(exc, duckdb.ConversionException | duckdb.InvalidInputException):
        return ErrorKind(False, "load_error")
    if isinstance(exc, duckdb.Error):
        return ErrorKind(False, f"duckdb_{type(exc).__name__}")
    if isinstance(exc, ConnectionError | socket.timeout | TimeoutError):
        return ErrorKind(True, "connection")
    return classify_lake_error(exc)


def _s3_status_transient(message: str) -> bool:
    """`S3ServiceException:…,Status 503,…`: transient unless S3 answered a definite 4xx."""
    match = re.search(r"Status (\d{3})", message)
    if not match:
        return True  # no answer at all: connection refused or reset
    status = int(match.group(1))
    return status >= 500 or status in (408, 429)


def _is_bad_input(message: str) -> bool:
    m = message.lower()
    return any(
        w in m
        for w in ("gzip", "json", "malformed", "parse", "invalid", "unexpected", "no files found",
                  "no such file")
    )  # fmt: skip


def _is_load_failure(message: str) -> bool:
    m = message.lower()
    return "load into table" in m or "sys_load_error_detail" in m or "stl_load_errors" in m
