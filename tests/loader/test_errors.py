"""The loader's error judgement: by type, SQLSTATE and the failing statement — never by the
words of a message — and the structural gzip check that tells a broken object from the OS."""

from __future__ import annotations

import errno
import gzip
import os
from pathlib import Path

import duckdb
import pytest
import redshift_connector
from botocore.exceptions import ClientError

from loader.errors import (
    DataOutOfRange,
    LoadFailed,
    ObjectsUnreadable,
    Phase,
    Verdict,
    classify,
    gzip_problem,
    verdict,
)

#: Messages that once decided the verdict, or could: a lake path, data, product words.
TRAP_MESSAGES = [
    "",
    'IO Error: Cannot open file "/lake/events/dt=2026-01-01/w0-000001.json.gz": Too many open files',
    "gzip json malformed parse invalid unexpected no files found no such file",
    "Load into table 'x' failed. S3ServiceException:Status 503, sys_load_error_detail",
    'value "S3ServiceException:,Status 500," from a property',
]


def rs(code: str, message: str) -> redshift_connector.ProgrammingError:
    """A redshift-connector error as the driver raises it: the ErrorResponse fields."""
    return redshift_connector.ProgrammingError({"S": "ERROR", "C": code, "M": message})


def at(phase: Phase | None, exc: Exception) -> Verdict:
    return verdict(exc if phase is None else LoadFailed(phase, exc))


TRANSIENT = Verdict(True, "")
DATA = "data"
SUSPECT = "suspect"
FAIL = "fail"  # the cycle fails; nothing isolated


def shape(v: Verdict) -> str:
    if v.data:
        assert v.isolate and not v.transient
        return DATA
    if v.isolate:
        return SUSPECT
    return "transient" if v.transient else FAIL


@pytest.mark.parametrize("message", TRAP_MESSAGES)
@pytest.mark.parametrize(
    ("exc_type", "phase", "want"),
    [
        # DuckDB reading the objects: its reader's refusals are data, its IOException only
        # a suspect (the files were checked before it got here), OOM a suspect.
        (duckdb.InvalidInputException, Phase.STAGE, DATA),
        (duckdb.ConversionException, Phase.STAGE, DATA),
        (duckdb.IOException, Phase.STAGE, SUSPECT),
        (duckdb.OutOfMemoryException, Phase.STAGE, SUSPECT),
        (duckdb.InternalException, Phase.STAGE, SUSPECT),
        (duckdb.CatalogException, Phase.STAGE, FAIL),
        # The insert into events: NOT NULL is the data's.
        (duckdb.ConstraintException, Phase.INSERT, DATA),
        # The ledger and the commit: never the data's.
        (duckdb.ConstraintException, Phase.RECORD, "transient"),
        (duckdb.TransactionException, Phase.RECORD, "transient"),
        (duckdb.IOException, Phase.PREPARE, "transient"),
        (duckdb.IOException, None, "transient"),  # opening the database file (a lock held)
        (duckdb.InvalidInputException, Phase.RECORD, FAIL),
        (duckdb.OutOfMemoryException, Phase.PREPARE, "transient"),
    ],
)
def test_duckdb_verdicts_depend_on_type_and_phase_not_words(
    exc_type: type[Exception], phase: Phase | None, want: str, message: str
) -> None:
    assert shape(at(phase, exc_type(message))) == want


@pytest.mark.parametrize("message", TRAP_MESSAGES)
@pytest.mark.parametrize(
    ("code", "phase", "want"),
    [
        ("08006", Phase.STAGE, "transient"),
        ("40001", Phase.RECORD, "transient"),
        ("55P03", Phase.PREPARE, "transient"),
        ("57P01", Phase.STAGE, "transient"),
        ("53200", Phase.PREPARE, "transient"),
        ("53200", Phase.STAGE, SUSPECT),  # out of memory for this batch: try smaller ones
        ("57014", Phase.STAGE, SUSPECT),  # statement timeout for this batch: idem
        ("57014", Phase.PREPARE, "transient"),
        ("22P02", Phase.INSERT, DATA),
        ("22003", Phase.STAGE, DATA),
        ("23502", Phase.INSERT, DATA),
        ("23505", Phase.RECORD, "transient"),  # the ledger's key: another loader's row
        ("22P02", Phase.PREPARE, FAIL),
        ("42501", Phase.STAGE, FAIL),  # no privilege: configuration, every object alike
        ("42P01", Phase.INSERT, FAIL),
        ("0A000", Phase.STAGE, FAIL),
        ("XX000", Phase.PREPARE, FAIL),
        ("P0001", Phase.STAGE, SUSPECT),
    ],
)
def test_redshift_verdicts_depend_on_sqlstate_and_phase_not_words(
    code: str, phase: Phase, want: str, message: str
) -> None:
    assert shape(at(phase, rs(code, message))) == want


@pytest.mark.parametrize(
    ("message", "want", "transient"),
    [
        # Real Redshift wording (COPY failures are all XX000): the product's fixed prefix.
        (
            "Load into table 'logship_stage' failed.  Check 'stl_load_errors' system table "
            "for details.",
            DATA,
            False,
        ),
        (
            "Load into table 'logship_stage' failed. Check 'sys_load_error_detail' system "
            "table for details.",
            DATA,
            False,
        ),
        (
            "S3ServiceException:Service Unavailable,Status 503,Error ServiceUnavailable,Rid x",
            "",
            True,
        ),
        ("S3ServiceException:Please reduce your request rate.,Status 503,Error SlowDown", "", True),
        ("S3ServiceException:connect to 127.0.0.1:9 failed,Status ?,Error ?", "", True),
        (
            "S3ServiceException:The specified key does not exist.,Status 404,Error NoSuchKey,"
            "Rid x,ExtRid y,CanRetry 1",
            SUSPECT,
            False,
        ),
        ("S3ServiceException:Access Denied,Status 403,Error AccessDenied,Rid x", SUSPECT, False),
        (
            "Problem reading manifest file - S3ServiceException:The specified key does not "
            "exist.,Status 404,Error NoSuchKey",
            SUSPECT,
            False,
        ),
        # Internal errors that merely *contain* the words: unclassified, never data or lake.
        ("Assert: internal error near Load into table 'x' failed", SUSPECT, False),
        ("internal: S3ServiceException:,Status 503,", SUSPECT, False),
    ],
)
def test_redshift_xx000_by_the_fixed_product_prefix(
    message: str, want: str, transient: bool
) -> None:
    v = at(Phase.STAGE, rs("XX000", message))
    assert v.transient is transient
    if want:
        assert shape(v) == want
    else:
        assert not v.isolate and v.reason == "lake"


def test_s3_unreadable_for_copy_is_transient_lake() -> None:
    """What the Redshift tests expect from `classify`: a transient lake error."""
    exc = rs("XX000", "S3ServiceException:Service Unavailable,Status 503,Error ServiceUnavailable")
    assert classify(LoadFailed(Phase.STAGE, exc)) == classify(exc)
    assert classify(exc).transient and classify(exc).reason == "lake"


def test_driver_and_os_errors() -> None:
    broken = redshift_connector.InterfaceError("BrokenPipe: [Errno 32] Broken pipe")
    assert at(Phase.STAGE, broken) == Verdict(True, "connection")
    auth = redshift_connector.InterfaceError({"C": "28000", "M": "password authentication failed"})
    assert at(None, auth).transient  # a rotated secret heals once mounted
    emfile = OSError(errno.EMFILE, "Too many open files", "/lake/events/x.json.gz")
    assert at(Phase.STAGE, emfile).transient and not at(Phase.STAGE, emfile).isolate
    assert at(Phase.STAGE, emfile).reason.startswith("os:")
    throttled = ClientError(
        {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject"
    )
    assert at(Phase.STAGE, throttled).transient
    denied = ClientError(
        {"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}},
        "GetObject",
    )
    assert shape(at(Phase.STAGE, denied)) == SUSPECT and at(Phase.STAGE, denied).reason == (
        "AccessDenied"
    )
    assert shape(at(Phase.PREPARE, denied)) == FAIL


def test_our_own_findings_and_unknown_errors() -> None:
    assert shape(at(Phase.STAGE, ObjectsUnreadable({"k": "truncated"}))) == DATA
    assert shape(at(Phase.INSERT, DataOutOfRange("1 event"))) == DATA
    # A bug of ours meeting odd data while reading it: isolated, never quarantined on.
    assert shape(at(Phase.INSERT, ValueError("Invalid isoformat string"))) == SUSPECT
    assert at(Phase.INSERT, ValueError("x")).reason == "other:ValueError"
    # The same error before any object is read is configuration: the cycle fails.
    assert shape(at(Phase.PREPARE, ValueError("LOGSHIP_REDSHIFT_IAM_ROLE is required"))) == FAIL


def test_load_failed_keeps_phase_cause_and_message() -> None:
    cause = rs("XX000", "Load into table 'logship_stage' failed.")
    exc = LoadFailed(Phase.STAGE, cause)
    assert exc.phase is Phase.STAGE and exc.cause is cause
    assert str(exc) == "stage: ProgrammingError: Load into table 'logship_stage' failed."


# ------------------------------------------------------------------------- the gzip check


def test_gzip_problem_tells_broken_streams_from_good_ones(tmp_path: Path) -> None:
    good = gzip.compress(b'{"a":1}\n' * 1000)
    cases = {
        "good": (good, None),
        "two-members": (good + gzip.compress(b'{"b":2}\n'), None),
        "empty-content": (gzip.compress(b""), None),
        "zero-bytes": (b"", "empty object"),
        "plain": (b'{"a":1}\n', "not a gzip stream"),
        "truncated": (good[:-9], "truncated gzip stream"),
        "garbage-after": (good + b"garbage", "not a gzip stream"),
        "bad-crc": (good[:-8] + b"\0\0\0\0" + good[-4:], "not a gzip stream"),
        "corrupt-deflate": (good[:10] + b"\xff" * 20 + good[30:], "corrupt gzip stream"),
    }
    for name, (data, want) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        got = gzip_problem(path)
        if want is None:
            assert got is None, (name, got)
        else:
            assert got is not None and got.startswith(want), (name, got)


def test_gzip_problem_lets_os_errors_through(tmp_path: Path) -> None:
    """ENOENT, EISDIR, EMFILE are the OS's conditions, not the object's: raised, not judged."""
    with pytest.raises(FileNotFoundError):
        gzip_problem(tmp_path / "absent")
    (tmp_path / "dir").mkdir()
    with pytest.raises(IsADirectoryError):
        gzip_problem(tmp_path / "dir")
    assert os.path.exists(tmp_path / "dir")
