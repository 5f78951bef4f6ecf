"""Every error of the loader judged in one place — by exception type, SQLSTATE and the statement
that failed, never by words of a message (a message can hold a file name or a value from the
data: ".json" in a path once made an fd exhaustion look like bad input).

A :class:`Verdict` answers three questions:

* `transient` — does it pass with time? (retry the cycle with capped, jittered backoff)
* `isolate` — may the batch's contents be the cause? (split the batch: bisection)
* `data` — are the contents the cause? (an object that fails *alone* with it is quarantined)

Only a failure of a statement that reads the batch's objects (:data:`DATA_PHASES`: the COPY /
`read_json`, the stage statistics and the insert into `events`) can be the data's; a failure
of the ledger, the lock or the commit never is, whatever its type. What decides "data" is the
error's class — Redshift's load error, SQLSTATE 22/23, DuckDB's reader and constraint errors,
or a structural check of the file itself (:func:`gzip_problem`) — and the isolation confirms it:
the object must fail alone. Anything else that fails while reading the batch is only *suspected*:
it is isolated too, but never quarantined (see :mod:`loader.cycle`: such an object is held).
"""

from __future__ import annotations

import gzip
import os
import re
import socket
import zlib
from dataclasses import dataclass
from enum import StrEnum

import duckdb
import redshift_connector
from botocore.exceptions import BotoCoreError, ClientError

from ingest.lake import ErrorKind
from ingest.lake import classify_error as classify_lake_error


class Phase(StrEnum):
    """The part of a load transaction a failure happened in."""

    PREPARE = "prepare"  # connect, BEGIN, LOCK, ledger look-up, manifest
    STAGE = "stage"  # the statement that reads the batch's objects: COPY / read_json
    INSERT = "insert"  # stage statistics, the range check, stage → events
    RECORD = "record"  # ledger rows, DROP stage, COMMIT


#: The phases whose statements read the batch's data: only their failures may be the data's.
DATA_PHASES = frozenset({Phase.STAGE, Phase.INSERT})


@dataclass(frozen=True, slots=True)
class Verdict:
    """How to treat one failure (see the module docstring)."""

    transient: bool
    reason: str  # a short label for logs and `logship_loader_errors_total{error_type}`
    isolate: bool = False
    data: bool = False

    @property
    def kind(self) -> ErrorKind:
        return ErrorKind(self.transient, self.reason)


def _data(reason: str = "load_error") -> Verdict:
    return Verdict(False, reason, isolate=True, data=True)


def _suspect(reason: str, *, transient: bool = False) -> Verdict:
    return Verdict(transient, reason, isolate=True)


class LoadFailed(Exception):
    """A load transaction failed in `phase`; `cause` is the driver's (or our own) error."""

    def __init__(self, phase: Phase, cause: Exception):
        super().__init__(f"{phase}: {type(cause).__name__}: {message_of(cause)}")
        self.phase = phase
        self.cause = cause


class ObjectsUnreadable(Exception):
    """A structural check of the batch's files (not a message) found objects that are not a
    complete gzip stream (`bad`: key → reason) or are gone from the lake (`gone`)."""

    def __init__(self, bad: dict[str, str], gone: set[str] | None = None):
        self.bad = bad
        self.gone = gone or set()
        super().__init__(
            "; ".join([f"{k}: {r}" for k, r in bad.items()] + [f"{k}: gone" for k in self.gone])
        )


class DataOutOfRange(Exception):
    """The batch holds timestamps outside years 1–9999: no warehouse client reads them back
    (Python's datetime stops at 9999; redshift-connector silently clamps)."""


# ------------------------------------------------------------------------------ the verdict


def classify(exc: BaseException) -> ErrorKind:
    """Transient or terminal, with a short `error_type` label (logs, metrics, run loop)."""
    return verdict(exc).kind


def verdict(exc: BaseException) -> Verdict:
    """The full judgement of `exc` (a :class:`LoadFailed` is judged by its cause and phase)."""
    if isinstance(exc, LoadFailed):
        return _judge(exc.cause, exc.phase)
    return _judge(exc, None)


def _judge(exc: BaseException, phase: Phase | None) -> Verdict:
    in_data = phase in DATA_PHASES
    if isinstance(exc, ObjectsUnreadable | DataOutOfRange):
        return _data()
    if isinstance(exc, redshift_connector.Error):
        return _redshift(exc, phase)
    if isinstance(exc, duckdb.Error):
        return _duckdb(exc, phase)
    if isinstance(exc, ConnectionError | socket.timeout | TimeoutError):
        return Verdict(True, "connection")
    kind = classify_lake_error(exc)  # lake (S3 codes, HTTP statuses) and OS errors (errno)
    if kind.transient:
        return Verdict(True, kind.reason)
    reason = kind.reason if _is_lake_error(exc) else f"other:{type(exc).__name__}"
    # Anything else raised while the objects were read — our own code meeting data it did
    # not expect included — may be the data's: isolate it, never quarantine on it.
    return Verdict(False, reason, isolate=in_data)


def _is_lake_error(exc: BaseException) -> bool:
    """An error of the lake client or the OS (its label is an S3 code or an errno)."""
    return isinstance(exc, ClientError | BotoCoreError | OSError)


# --------------------------------------------------------------------------------- Redshift

#: SQLSTATE classes that pass with time, with their metric label.
_TRANSIENT_CLASS = {
    "08": "connection",  # connection exception
    "25": "connection",  # invalid transaction state: start again on a new connection
    "40": "serialization",  # serialisation failure, deadlock
    "53": "resources",  # insufficient resources: disk full, out of memory, too many connections
    "55": "serialization",  # object in use, lock not available: another transaction's
    "57": "connection",  # operator intervention: admin shutdown, cannot connect now
    "58": "io",  # system error (I/O) outside PostgreSQL's control
}
#: 57014 is a statement timeout; a smaller batch may finish in time (see `_redshift`).
_TIMEOUT = "57014"
#: Classes that no object's contents can cause: configuration, privileges, the schema.
_CONFIG_CLASS = {"0A", "2B", "3D", "3F", "42", "44", "0L", "0P"}
#: Redshift reports every failed COPY as SQLSTATE XX000 (internal error), whatever the cause:
#: bad data, an S3 failure or a real internal error. The code cannot tell them apart, so the
#: fixed product wording at the *start* of the primary message does — only there, where no
#: file name or value can be (those are in DETAIL and `sys_load_error_detail`):
#:   "Load into table 'logship_stage' failed.  Check 'stl_load_errors' …" (or 'sys_load_error_detail')
#:   "S3ServiceException:The specified key does not exist.,Status 404,Error NoSuchKey,Rid …"
#:   "Problem reading manifest file - S3ServiceException:…,Status 404,…"
_LOAD_FAILED_PREFIX = "Load into table "
_S3_PREFIXES = ("S3ServiceException:", "Problem reading manifest file - S3ServiceException:")
_S3_STATUS = re.compile(r",Status (\d{3}),")


def sqlstate(exc: BaseException) -> tuple[str, str]:
    """(SQLSTATE, primary message) of a redshift-connector error, or ("", str(exc)).

    redshift-connector raises with the server's ErrorResponse fields as a dict: "C" the
    SQLSTATE, "M" the primary message, "D" the detail."""
    arg = exc.args[0] if exc.args else None
    if isinstance(arg, dict):
        return str(arg.get("C", "")), str(arg.get("M", ""))
    return "", str(exc)


def message_of(exc: BaseException) -> str:
    """The human message of any error (the server's primary message when there is one)."""
    code, message = sqlstate(exc)
    return message if code else str(exc)


def _redshift(exc: redshift_connector.Error, phase: Phase | None) -> Verdict:
    in_data = phase in DATA_PHASES
    code, message = sqlstate(exc)
    cls = code[:2]
    if not code and isinstance(
        exc, redshift_connector.InterfaceError | redshift_connector.OperationalError
    ):
        return Verdict(True, "connection")  # the driver's own: socket closed, reset, refused
    if cls == "28":
        # Authentication (the driver raises InterfaceError): a rotated secret heals by itself
        # once the new one is mounted, so keep retrying rather than exiting.
        return Verdict(True, "connection")
    if code == _TIMEOUT:
        # A statement timeout: while reading a batch, a smaller one may finish in time.
        return _suspect("timeout", transient=True) if in_data else Verdict(True, "timeout")
    if cls in _TRANSIENT_CLASS:
        label = _TRANSIENT_CLASS[cls]
        if in_data and cls == "53":  # out of memory / disk for this batch: try smaller ones
            return _suspect(label, transient=True)
        return Verdict(True, label)
    if cls == "23" and phase is Phase.RECORD:
        return Verdict(True, "serialization")  # the ledger's key: another loader's row
    if cls in ("22", "23"):  # data exception, integrity constraint violation
        return _data() if in_data else Verdict(False, f"sql_{code}")
    if code == "XX000":
        if message.startswith(_LOAD_FAILED_PREFIX):
            return _data() if in_data else Verdict(False, "load_error")
        if message.startswith(_S3_PREFIXES):
            return _s3_service(message, in_data)
        return Verdict(False, "sql_XX000", isolate=in_data)
    if cls in _CONFIG_CLASS:
        return Verdict(False, f"sql_{code}")
    return Verdict(False, f"sql_{code or 'unknown'}", isolate=in_data)


def _s3_service(message: str, in_data: bool) -> Verdict:
    """Redshift could not read S3 (after its own retries): never the contents of an object.

    5xx, throttling or no answer at all pass with time. A definite 4xx may be one object's
    (gone: 404, unreadable with this role: 403) or every object's (the role): isolate it, and
    let the isolation tell which — it never quarantines on it."""
    match = _S3_STATUS.search(message)
    status = int(match.group(1)) if match else 0
    if not status or status >= 500 or status in (408, 429):
        return Verdict(True, "lake")
    return Verdict(False, "lake", isolate=in_data)


# ----------------------------------------------------------------------------------- DuckDB

#: DuckDB errors that no object's contents can cause: the schema, privileges, our SQL.
_DUCKDB_CONFIG = (
    duckdb.CatalogException,
    duckdb.BinderException,
    duckdb.ParserException,
    duckdb.SyntaxException,
    duckdb.PermissionException,
    duckdb.NotImplementedException,
    duckdb.DependencyException,
)
#: DuckDB's reader refusing what it read, and conversions of read values.
_DUCKDB_DATA = (duckdb.ConversionException, duckdb.InvalidInputException, duckdb.DataError)


def _duckdb(exc: duckdb.Error, phase: Phase | None) -> Verdict:
    in_data = phase in DATA_PHASES
    name = f"duckdb_{type(exc).__name__}"
    if isinstance(exc, duckdb.InterruptException):
        return Verdict(True, "io")
    if isinstance(exc, duckdb.TransactionException | duckdb.SerializationException):
        return Verdict(True, "serialization")  # a racing loader committed first
    if isinstance(exc, duckdb.ConstraintException):
        if phase is Phase.INSERT:
            return _data()  # NOT NULL on `events`: a null event_id, a missing received_at
        return Verdict(True, "serialization")  # the ledger's primary key: a racing loader
    if isinstance(exc, duckdb.OutOfMemoryException):
        return _suspect("resources", transient=True) if in_data else Verdict(True, "resources")
    if isinstance(exc, duckdb.IOException):  # HTTPException included
        if phase is Phase.STAGE:
            # The warehouse has already checked the batch's files (opened each one: an OSError
            # there is raised instead, transient by errno; read each gzip stream: a broken one
            # is named instead). What is left is DuckDB's own reading: suspected, not proven.
            return _suspect("io")
        return Verdict(True, "io")  # the database file: locked by another process, EMFILE, disk
    if isinstance(exc, duckdb.ConnectionException):
        return Verdict(True, "connection")
    if isinstance(exc, _DUCKDB_DATA):
        return _data() if in_data else Verdict(False, name)
    if isinstance(exc, _DUCKDB_CONFIG):
        return Verdict(False, name)
    return Verdict(False, name, isolate=in_data)  # InternalException, FatalException, …


# ----------------------------------------------------------------------- structural checks

#: Block size of :func:`gzip_problem`'s read: memory stays bounded whatever the object's size.
_CHECK_BLOCK_BYTES = 1024 * 1024


def gzip_problem(path: str | os.PathLike[str]) -> str | None:
    """Why the file at `path` is not a complete gzip stream, or None when it is one.

    Read in blocks, so a 2 GiB object costs no more memory than a small one. An OSError that
    is not about the format (EMFILE, EIO, ENOENT) propagates: that is the OS's condition, not
    the object's. `gzip.BadGzipFile` is an OSError too — caught first, by type."""
    if os.path.getsize(path) == 0:
        return "empty object: not a gzip stream"
    try:
        with gzip.open(path, "rb") as f:
            while f.read(_CHECK_BLOCK_BYTES):
                pass
    except gzip.BadGzipFile as exc:
        return f"not a gzip stream ({exc})"
    except EOFError as exc:
        return f"truncated gzip stream ({exc})"
    except zlib.error as exc:
        return f"corrupt gzip stream ({exc})"
    return None
