"""JSON logs on stderr, one object per line; no payload contents at info level.

Problems are logged once per batch with their reason and counts (not once per record), so a
flood of bad input cannot become a flood of log lines.

Secrets never reach the log, whoever logs them (our code, aiohttp, botocore, a traceback):

* every line is redacted as the last step of formatting: the configured secret values
  (:func:`register_secrets`; at start :func:`setup_logging` registers the tokens, the PII hash
  key, the warehouse password and the AWS secret from the environment) in their plain,
  percent-encoded, base64 and escaped forms, and the values of credential-carrying query
  parameters (`dd_api_key=…`) and headers (`Authorization: …`, `DD-API-KEY: …`) whatever they
  are, become `***`;
* a request the HTTP parser refuses (aiohttp logs its raw bytes with the exception, at ERROR),
  or a client that disconnects mid-request, is never logged as such: those records are dropped
  and summarised — how many, of which exception type — at most once per interval, so a flood
  of bad requests is one line, not a flood of ERROR lines.
"""

from __future__ import annotations

import atexit
import base64
import logging
import os
import re
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import TextIO

import orjson
from aiohttp.http_exceptions import HttpProcessingError

#: Shorter secrets are not redacted: replacing every "abc" would garble every line, and a
#: secret that short is guessable anyway.
SECRET_MIN_CHARS = 4
REDACTED = "***"

#: `name=value` of query parameters (and form fields) that carry credentials; a name ending
#: in one of these counts too (`access_token=`, `client_secret=`, `X-Amz-Signature=`).
_PARAM = re.compile(
    r"(?i)((?:dd[-_]?api[-_]?key|api[-_]?key|apikey|access[-_]?key|token|password|passwd"
    r"|secret|x-amz-security-token|signature)(?:=|%3D))"
    r"[^&\s\"'\\#;,]+"
)
#: `Header: value` (also `'Header': b'value'` in a dict repr) of credential-carrying headers;
#: the value runs to the end of the line (or a quote, or an escape in a repr or JSON string).
_HEADER = re.compile(
    r"(?i)((?:proxy-)?authorization|dd-api-key|dd-application-key|x-api-key|cookie|set-cookie"
    r"|x-amz-security-token)(\\?[\"']?\s*[:=]\s*b?\\?[\"']?)[^\r\n\"'\\]+"
)
#: An HTTP credential scheme followed by its credentials, wherever it appears.
_SCHEME = re.compile(r"\b(Bearer|Basic|Digest|AWS4-HMAC-SHA256)\s+[A-Za-z0-9._~+/=:,-]{6,}")


class Redactor:
    """Replaces registered secret values, and the values of credential parameters and headers,
    with `***` in any text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, values: Iterable[str]) -> None:
        """Register secrets (blank and too-short values are ignored)."""
        with self._lock:
            for value in values:
                if value and len(value) >= SECRET_MIN_CHARS:
                    self._forms.update(_encodings(value))
            alternatives = sorted(self._forms, key=len, reverse=True)
            self._pattern = (
                re.compile("|".join(map(re.escape, alternatives)), re.IGNORECASE)
                if alternatives
                else None
            )

    def __call__(self, text: str) -> str:
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        text = _PARAM.sub(rf"\1{REDACTED}", text)
        text = _HEADER.sub(rf"\1\2{REDACTED}", text)
        return _SCHEME.sub(rf"\1 {REDACTED}", text)


def _encodings(secret: str) -> set[str]:
    """The forms a secret takes in log text: as is, percent-encoded (a query string),
    base64 (an Authorization header), escaped in a `repr` of str or bytes, and each of those
    once more escaped inside a JSON string (a formatted log line)."""
    raw = secret.encode()
    forms = {
        secret,
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        urllib.parse.quote(secret),
        base64.b64encode(raw).decode(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        repr(secret)[1:-1],
        repr(raw)[2:-1],
    }
    forms |= {orjson.dumps(f).decode()[1:-1] for f in forms}
    return {f for f in forms if len(f) >= SECRET_MIN_CHARS}


REDACT = Redactor()


def register_secrets(*values: str) -> None:
    """Never log these values (in any of their usual encodings)."""
    REDACT.add(values)


def redact(text: str) -> str:
    """`text` without the registered secrets and credential values (for messages that are
    printed rather than logged)."""
    return REDACT(text)


def secrets_from_env(environ: Mapping[str, str]) -> list[str]:
    """The secret values of a logship process's configuration: the ingest and UI tokens, the PII
    hash key, the warehouse URL's password, the AWS secret key and session token."""
    found = [t.strip() for var in ("LOGSHIP_AUTH_TOKENS", "LOGSHIP_UI_TOKENS")
             for t in environ.get(var, "").split(",")]  # fmt: skip
    found += [environ.get(k, "") for k in
              ("LOGSHIP_PII_HASH_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")]  # fmt: skip
    password = _url_password(environ.get("LOGSHIP_WAREHOUSE_URL", ""))
    if password:
        found += [password, urllib.parse.unquote(password)]
    return [s for s in found if s]


def _url_password(url: str) -> str | None:
    try:
        return urllib.parse.urlsplit(url).password
    except ValueError:  # an unparsable URL fails configuration anyway
        return None


class JsonFormatter(logging.Formatter):
    """One JSON object per record, redacted as the very last step (so nothing a library puts
    in a message, a field or an exception escapes it)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if extra:
            entry.update(extra)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return REDACT(orjson.dumps(entry, default=str).decode())


class RequestErrorSummary(logging.Filter):
    """Drops the records of the HTTP server about one client's broken request and counts them
    instead, by exception type, in a :class:`CountSummary` line per kind.

    * a request the HTTP parser refused (bad request line, method, header, URL, chunk size;
      too long): aiohttp logs it at ERROR with the parser's text, which quotes the raw request
      bytes, credentials included. The client got its 400.
    * a client that went away mid-request (aiohttp logs the handler's `ConnectionError` at
      ERROR with a traceback): nothing of ours failed.

    Classified by the exception's type (and, for connection errors, the logger being
    aiohttp's), never by the words of a message. The log says that it happens and how often;
    one line per interval, whatever the rate."""

    def __init__(self, interval_s: float = 10.0) -> None:
        super().__init__()
        http = logging.getLogger("logship.http")
        self.malformed = CountSummary(
            http, logging.WARNING,
            "malformed requests refused with 400 (the parser's text is not logged)", interval_s,
        )  # fmt: skip
        self.lost = CountSummary(
            http, logging.INFO, "client connections lost mid-request", interval_s
        )

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            self.malformed.add({type(exc).__name__: 1})
            return False
        if isinstance(exc, ConnectionError) and record.name.startswith("aiohttp."):
            self.lost.add({type(exc).__name__: 1})
            return False
        return True

    def flush(self) -> None:
        self.malformed.flush()
        self.lost.flush()


def json_handler(stream: TextIO, summary: RequestErrorSummary | None = None) -> logging.Handler:
    """A handler writing redacted JSON lines to `stream`, with broken requests summarised."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(summary or RequestErrorSummary())
    return handler


def setup_logging(level: str = "INFO", environ: Mapping[str, str] | None = None) -> None:
    """JSON lines on stderr for every logger, redacted, with broken requests summarised (the
    last counts logged at exit); the configured secrets (read from `environ`, default the
    process environment) registered; uncaught exceptions and warnings logged the same way
    instead of printed raw."""
    register_secrets(*secrets_from_env(os.environ if environ is None else environ))
    summary = RequestErrorSummary()
    atexit.register(summary.flush)
    root = logging.getLogger()
    root.handlers[:] = [json_handler(sys.stderr, summary)]
    root.setLevel(level)
    for noisy in ("aiohttp.access", "botocore", "aiobotocore", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = lambda a: _log_uncaught(a.exc_type, a.exc_value, a.exc_traceback)


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException | None, tb: TracebackType | None
) -> None:
    """A crash's traceback goes through the redacting formatter like any other line."""
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    logging.getLogger("logship").critical("uncaught exception", exc_info=(exc_type, exc, tb))  # type: ignore[arg-type]


def log(logger: logging.Logger, level: int, msg: str, **fields: object) -> None:
    """Log `msg` with structured `fields` (merged into the JSON object)."""
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={"fields": fields})


class CountSummary:
    """Counts of a recurring problem, logged at most once per `interval_s`.

    A steady trickle of bad records (one in each of hundreds of batches a second) would
    otherwise be hundreds of identical warnings a second; the metrics hold the exact counts,
    the log says that it happens and what. The first occurrence is logged at once."""

    def __init__(self, logger: logging.Logger, level: int, msg: str, interval_s: float = 10.0):
        self.logger, self.level, self.msg, self.interval_s = logger, level, msg, interval_s
        self._pending: dict[str, int] = {}
        self._last = float("-inf")

    def add(self, counts: Mapping[str, int]) -> bool:
        """Count; True when this call logged the summary line (at most once per interval), so
        a caller can log one example of what it counts right after it."""
        for key, n in counts.items():
            self._pending[key] = self._pending.get(key, 0) + n
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            self._emit(now)
            return True
        return False

    def flush(self) -> None:
        """Log what was counted since the last line, if anything (at exit, so the last
        interval's counts are not lost)."""
        if self._pending:
            self._emit(time.monotonic())

    def _emit(self, now: float) -> None:
        since = None if self._last == float("-inf") else round(now - self._last, 1)
        log(self.logger, self.level, self.msg, counts=self._pending, since_s=since)
        self._pending = {}
        self._last = now
