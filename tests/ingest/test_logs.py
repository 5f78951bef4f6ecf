"""Recurring problems are summarised in the log, not repeated per batch; secrets never reach
a log line, whoever logs them."""

from __future__ import annotations

import base64
import io
import logging
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import orjson
import pytest
from aiohttp.http_exceptions import BadHttpMessage, BadHttpMethod, LineTooLong

from ingest import logs
from ingest.logs import CountSummary, log


def test_count_summary_logs_first_at_once_then_once_per_interval(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(logs.time, "monotonic", lambda: now[0])
    summary = CountSummary(logging.getLogger("t"), logging.WARNING, "records rejected", 10.0)
    with caplog.at_level(logging.WARNING, logger="t"):
        summary.add({"a.b:validation": 1})
        for _ in range(50):
            now[0] += 0.1
            summary.add({"a.b:validation": 2, "-:invalid_json": 1})
        now[0] += 5.1  # 10.1 s after the first line
        summary.add({"a.b:validation": 1})
    lines = [r for r in caplog.records if r.getMessage() == "records rejected"]
    assert len(lines) == 2
    assert lines[0].fields["counts"] == {"a.b:validation": 1}
    assert lines[0].fields["since_s"] is None
    # the second line carries everything counted since the first: nothing is dropped
    assert lines[1].fields["counts"] == {"a.b:validation": 101, "-:invalid_json": 50}
    assert lines[1].fields["since_s"] == 10.1


def test_count_summary_flush_logs_what_is_pending(caplog: pytest.LogCaptureFixture) -> None:
    summary = CountSummary(logging.getLogger("t"), logging.WARNING, "refused", 10.0)
    with caplog.at_level(logging.WARNING, logger="t"):
        summary.flush()  # nothing counted: nothing logged
        summary.add({"x": 1})
        summary.add({"x": 2})  # within the interval: pending
        summary.flush()
        summary.flush()
    assert [r.fields["counts"] for r in caplog.records] == [{"x": 1}, {"x": 2}]


# --------------------------------------------------------------------------- secrets


def _logger_to(name: str) -> tuple[logging.Logger, io.StringIO, logs.RequestErrorSummary]:
    """A logger writing through the production handler (formatter, redaction, summary)."""
    out = io.StringIO()
    summary = logs.RequestErrorSummary()
    lg = logging.getLogger(name)
    lg.handlers[:] = [logs.json_handler(out, summary)]
    lg.propagate = False
    lg.setLevel(logging.DEBUG)
    return lg, out, summary


def _lines(out: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def test_registered_secrets_are_redacted_in_every_encoding() -> None:
    secret = "unit-Secret+/=42ab"
    logs.register_secrets(secret, "abc", "")  # too short and blank ones are ignored
    lg, out, _ = _logger_to("t.redact")
    encoded = [secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
               base64.b64encode(secret.encode()).decode(), repr(secret.encode())]  # fmt: skip
    for form in encoded:
        lg.info("seen %s here", form)
    log(lg, logging.INFO, "as a field", detail={"nested": [secret.upper()]})
    try:
        raise ValueError(f"bad value {secret!r}\x00")
    except ValueError:
        lg.exception("with a traceback")
    text = out.getvalue()
    assert secret.lower() not in text.lower()
    for form in encoded:
        assert form not in text
    assert text.count("***") >= len(encoded) + 2
    assert len(_lines(out)) == len(encoded) + 2  # still one JSON object per line


def test_credential_parameters_and_headers_are_redacted_whatever_their_value() -> None:
    lg, out, _ = _logger_to("t.scrub")
    lg.warning("GET /api/v2/logs?x=1&dd_api_key=ZZ9unregistered&y=2 HTTP/1.1")
    lg.warning("b'Authorization: Bearer QQ8unregistered\\r\\nHost: x'")
    lg.warning("headers={'DD-API-KEY': b'WW7unregistered', 'Accept': '*/*'}")
    lg.warning("url=https://h/p?api_key=PP6unregistered%2Bx#frag")
    lg.warning("sending Basic dXNlcjpSUjVwYXNzd29yZA== upstream")
    entries = _lines(out)
    text = out.getvalue()
    for leaked in ("ZZ9", "QQ8", "WW7", "PP6", "dXNlcjpSUjVwYXNzd29yZA"):
        assert leaked not in text
    assert entries[0]["msg"] == "GET /api/v2/logs?x=1&dd_api_key=***&y=2 HTTP/1.1"
    assert "'Accept': '*/*'" in str(entries[2]["msg"])  # the rest of the line is kept
    assert (
        logs.redact("missing or invalid API key / bearer token")
        == "missing or invalid API key / bearer token"
    )


def test_parser_errors_are_summarised_never_logged_with_their_text(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    now = [100.0]
    monkeypatch.setattr(logs.time, "monotonic", lambda: now[0])
    lg, out, summary = _logger_to("aiohttp.server.t1")
    with caplog.at_level(logging.INFO, logger="logship.http"):
        for i in range(100):
            exc = BadHttpMessage(f"Invalid header value char: b'DD-API-KEY: raw{i}secret\\x00'")
            lg.error("Error handling request from %s", "127.0.0.1", exc_info=exc)
        lg.debug("Error handling request", exc_info=BadHttpMethod("P@ST /?dd_api_key=m1"))
        lg.error("Error handling request", exc_info=LineTooLong("line", "8190"))
        lg.error("Unhandled exception", exc_info=RuntimeError("a real bug"))
        summary.flush()
    passed = _lines(out)
    assert [e["msg"] for e in passed] == ["Unhandled exception"]
    assert "a real bug" in str(passed[0]["exc"])  # other errors keep their traceback
    summaries = [r for r in caplog.records if r.name == "logship.http"]
    assert all(r.levelno == logging.WARNING and "malformed" in r.getMessage() for r in summaries)
    assert [r.fields["counts"] for r in summaries] == [
        {"BadHttpMessage": 1}, {"BadHttpMessage": 99, "BadHttpMethod": 1, "LineTooLong": 1}
    ]  # fmt: skip
    assert "secret" not in caplog.text + out.getvalue() and "m1" not in caplog.text


def test_client_disconnects_are_summarised_only_from_the_http_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, out, summary = _logger_to("aiohttp.server.t2")
    ours, ours_out, _ = _logger_to("logship.uploader.t2")
    with caplog.at_level(logging.INFO, logger="logship.http"):
        for _ in range(20):
            server.error("Error handling request", exc_info=ConnectionResetError("lost"))
        ours.error("upload failed", exc_info=ConnectionResetError("peer reset"))
        summary.flush()
    assert out.getvalue() == ""
    assert [r.fields["counts"] for r in caplog.records if r.name == "logship.http"] == [
        {"ConnectionResetError": 1}, {"ConnectionResetError": 19}
    ]  # fmt: skip
    assert "peer reset" in ours_out.getvalue()


def test_secrets_from_env() -> None:
    env = {
        "LOGSHIP_AUTH_TOKENS": " tok-one ,, tok-two",
        "LOGSHIP_PII_HASH_KEY": "pii-key",
        "LOGSHIP_WAREHOUSE_URL": "redshift://u:p%40ss%3Aword@host:5439/db",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
    }
    assert set(logs.secrets_from_env(env)) == {
        "tok-one", "tok-two", "pii-key", "p%40ss%3Aword", "p@ss:word", "aws-secret"
    }  # fmt: skip
    assert logs.secrets_from_env({"LOGSHIP_WAREHOUSE_URL": "duckdb:///x.duckdb"}) == []


def test_uncaught_exception_is_a_redacted_json_line(tmp_path: Path) -> None:
    code = ("from ingest.logs import setup_logging; setup_logging();"
            "raise RuntimeError('connect failed: password=hunter2-secret key=pii-Key-77')")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSHIP_")}
    env["LOGSHIP_PII_HASH_KEY"] = "pii-Key-77"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=60, cwd=tmp_path)  # fmt: skip
    assert r.returncode == 1
    (line,) = r.stderr.splitlines()
    entry = orjson.loads(line)
    assert entry["level"] == "critical" and "RuntimeError" in entry["exc"]
    assert "hunter2" not in line and "pii-Key-77" not in line


@pytest.mark.parametrize(
    "text",
    ["?access_token=AA1x", "&client_secret=AA1x&", "aws_secret_access_key=AA1x",
     "X-Amz-Signature=AA1x", "db?password%3DAA1x", "{'X-Amz-Security-Token': 'AA1x'}",
     "Cookie: session=AA1x"],
)  # fmt: skip
def test_credential_names_are_matched_as_suffixes(text: str) -> None:
    assert "AA1x" not in logs.redact(text)
