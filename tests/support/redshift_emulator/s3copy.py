"""Redshift `COPY ... FROM 's3://...' ... FORMAT JSON 'auto'`: statement parsing and the load.

Why in the proxy: PostgreSQL cannot read S3, and our loader's correctness hinges on Redshift's
COPY semantics (manifest entries, `mandatory`, duplicate entries loading twice, lower-case key
matching, all-or-nothing failure with a row in `sys_load_error_detail`). This module is the
pure part: it parses the statement, reads the objects with boto3 (called from a worker thread),
and turns NDJSON into checked row dicts ready for `jsonb_populate_recordset`. The proxy
(`proxy.py`) runs the INSERTs inside the client's own session and transaction.

Load error codes recorded (Redshift's numbering where one exists):
  1200 unknown/other conversion error   1205 bad date           1206 bad timestamp
  1204 string longer than DDL length    1207 invalid digit      1210 bad boolean
  1213 NULL in a NOT NULL column        1216 bad input line (invalid JSON, record not an object,
  1220 invalid UTF-8                         record > 4 MB, nested value into a non-SUPER column)
  8001 manifest problem                 5 (S3 object missing)
Other S3 failures are query-level `S3ServiceException` errors (`S3ReadError`), as in Redshift.
"""

from __future__ import annotations

import bz2
import gzip
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from .rewrite import literal_value, mask, unmask

try:  # orjson is a project dependency; fall back to json for exotic values (huge ints, ...)
    import orjson
except ImportError:  # pragma: no cover
    orjson = None  # type: ignore[assignment]

MAX_RECORD_BYTES = 4 * 1024 * 1024
RAW_LINE_CHARS = 1024
CHUNK_ROWS = 5000
CHUNK_BYTES = 8 * 1024 * 1024

_CREDENTIAL_WORDS = re.compile(
    r"\b(?:CREDENTIALS|ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN|WITH_CREDENTIALS)\b", re.I
)
_IDENT = r"(?:[A-Za-z_][A-Za-z0-9_$]*|\x00\d+\x00)"
_COPY_RE = re.compile(
    rf"""\s*COPY\s+(?P<table>{_IDENT}(?:\s*\.\s*{_IDENT}){{0,2}})
        \s*(?:\((?P<cols>[^()]*)\))?
        \s*FROM\s+(?P<src>\x00\d+\x00)
        (?P<rest>.*?)\s*;?\s*$""",
    re.I | re.S | re.X,
)
_OPTION_TOKEN = re.compile(r"\x00\d+\x00|[A-Za-z_][A-Za-z0-9_]*|-?\d+(?:\.\d+)?|\S")
# Redshift's default TIMEFORMAT: 'YYYY-MM-DD HH:MI:SS' (+ 'OF' offset for TIMESTAMPTZ). ISO 8601
# ('T' separator, 'Z') is only recognised with TIMEFORMAT 'auto'.
_DEFAULT_TIMESTAMP = re.compile(
    r"^\s*\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:[+-]\d{1,2}(?::?\d{2})?)?\s*$"
)
_DEFAULT_TIMEFORMATS = {"", "yyyy-mm-dd hh:mi:ss", "yyyy-mm-dd hh24:mi:ss"}
_FLAGS = {
    "TRUNCATECOLUMNS",
    "BLANKSASNULL",
    "EMPTYASNULL",
    "ACCEPTANYDATE",
    "ROUNDEC",
    "EXPLICIT_IDS",
    "IGNOREBLANKLINES",
    "TRIMBLANKS",
}
_UNSUPPORTED_FORMATS = {"CSV", "PARQUET", "ORC", "AVRO", "FIXEDWIDTH", "DELIMITER", "SHAPEFILE"}


class CopyRefused(Exception):
    """A COPY statement Redshift (or this project's rules) would refuse before loading."""

    def __init__(self, message: str, sqlstate: str = "42601") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@dataclass
class LoadError(Exception):
    """One load failure, shaped like a `sys_load_error_detail` row."""

    error_code: int
    error_message: str
    file_name: str = ""
    line_number: int = 0
    column_name: str = ""
    column_type: str = ""
    raw_line: str = ""
    raw_field_value: str = ""
    position: int = 0

    def __str__(self) -> str:
        return self.error_message


@dataclass
class CopyCommand:
    table: str  # as written, usable in SQL (may be schema-qualified and quoted)
    table_display: str  # unqualified, unquoted: what Redshift's error message shows
    columns: list[str] | None
    source: str
    iam_role: str
    manifest: bool = False
    json_ignorecase: bool = False
    compression: str | None = None
    timeformat: str | None = None
    dateformat: str | None = None
    acceptinvchars: str | None = None
    flags: set[str] = field(default_factory=set)
    region: str | None = None


def _ident_value(token: str, saved: list[str]) -> str:
    token = unmask(token.strip(), saved)
    if token.startswith('"'):
        return token[1:-1].replace('""', '"')
    return token.lower()


def parse_copy(sql: str) -> CopyCommand | None:
    """None if `sql` is not a COPY; a CopyCommand; or CopyRefused for a COPY we won't run."""
    masked, saved = mask(sql)
    if not re.match(r"\s*COPY\b", masked, re.I):
        return None
    literals = [literal_value(s).lower() for s in saved if not s.startswith(('"', "--", "/*"))]
    if _CREDENTIAL_WORDS.search(masked) or any(
        "aws_secret_access_key" in v or "aws_access_key_id" in v for v in literals
    ):
        raise CopyRefused(
            "COPY with inline AWS credentials is refused by the emulator: this project forbids "
            "secrets in SQL, use IAM_ROLE 'arn:aws:iam::<account>:role/<name>'",
            "XX000",
        )
    match = _COPY_RE.match(masked)
    if match is None:
        if re.search(r"\bFROM\s+STDIN\b", masked, re.I):
            raise CopyRefused("COPY FROM STDIN is not supported by Redshift", "0A000")
        if re.search(r"\bTO\b", masked, re.I):
            raise CopyRefused("COPY ... TO is not supported by Redshift (use UNLOAD)", "0A000")
        raise CopyRefused(
            "syntax error in COPY (the emulator supports: COPY table [(cols)] FROM 's3://...' "
            "IAM_ROLE '...' [MANIFEST] FORMAT [AS] JSON 'auto' [GZIP] [options])"
        )
    source = literal_value(saved[int(match.group("src").strip("\x00"))])
    if not source.startswith("s3://"):
        raise CopyRefused(
            f"COPY from {source!r} is not supported by the emulator (s3:// only)", "0A000"
        )
    table = unmask(re.sub(r"\s+", "", match.group("table")), saved)
    table_display = _ident_value(re.split(r"\s*\.\s*", match.group("table"))[-1], saved)
    columns = None
    if match.group("cols") is not None:
        columns = [_ident_value(c, saved) for c in match.group("cols").split(",") if c.strip()]
    command = CopyCommand(table, table_display, columns, source, iam_role="")
    _parse_options(command, _OPTION_TOKEN.findall(match.group("rest")), saved)
    return command


def _parse_options(cmd: CopyCommand, tokens: list[str], saved: list[str]) -> None:
    pos = 0
    saw_json = False

    def peek() -> str:
        return tokens[pos].upper() if pos < len(tokens) else ""

    def take_literal(option: str, *, optional: bool = False) -> str | None:
        nonlocal pos
        if peek() == "AS":
            pos += 1
        if pos < len(tokens) and tokens[pos].startswith("\x00"):
            pos += 1
            return literal_value(saved[int(tokens[pos - 1].strip("\x00"))])
        if optional:
            return None
        raise CopyRefused(f"syntax error in COPY: {option} needs a quoted value")

    while pos < len(tokens):
        word = peek()
        pos += 1
        if word == "IAM_ROLE":
            if peek() == "DEFAULT":
                pos += 1
                cmd.iam_role = "default"
            else:
                cmd.iam_role = take_literal("IAM_ROLE") or ""
        elif word == "MANIFEST":
            cmd.manifest = True
        elif word == "FORMAT":
            if peek() == "AS":
                pos += 1
            fmt = peek()
            pos += 1
            if fmt != "JSON":
                raise CopyRefused(
                    f"FORMAT {fmt} is not supported by the emulator (JSON only)", "0A000"
                )
            saw_json = True
            _json_arg(cmd, take_literal("JSON", optional=True))
        elif word == "JSON":
            saw_json = True
            _json_arg(cmd, take_literal("JSON", optional=True))
        elif word in ("GZIP", "BZIP2", "ZSTD", "LZOP"):
            if word == "LZOP":
                raise CopyRefused("LZOP is not supported by the emulator", "0A000")
            cmd.compression = word.lower()
        elif word == "TIMEFORMAT":
            cmd.timeformat = take_literal(word)
        elif word == "DATEFORMAT":
            cmd.dateformat = take_literal(word)
        elif word == "ACCEPTINVCHARS":
            cmd.acceptinvchars = take_literal(word, optional=True) or "?"
        elif word == "REGION":
            cmd.region = take_literal(word)
        elif word in ("COMPUPDATE", "STATUPDATE"):
            if peek() in ("ON", "OFF", "TRUE", "FALSE", "PRESET"):
                pos += 1
        elif word == "MAXERROR":
            if peek() == "AS":
                pos += 1
            value = tokens[pos] if pos < len(tokens) else ""
            pos += 1
            if value != "0":
                raise CopyRefused("MAXERROR > 0 is not supported by the emulator", "0A000")
        elif word == "ENCODING":
            if peek() == "AS":
                pos += 1
            if peek() not in ("UTF8", "UTF-8"):
                raise CopyRefused("only ENCODING UTF8 is supported by the emulator", "0A000")
            pos += 1
        elif word in _FLAGS:
            cmd.flags.add(word)
        elif word in _UNSUPPORTED_FORMATS:
            raise CopyRefused(
                f"{word} is not supported by the emulator (FORMAT JSON only)", "0A000"
            )
        else:
            shown = unmask(tokens[pos - 1], saved)
            raise CopyRefused(f'syntax error at or near "{shown}"')
    if not cmd.iam_role:
        raise CopyRefused(
            "Invalid credentials: COPY needs IAM_ROLE 'arn:aws:iam::<account>:role/<name>'", "XX000"
        )
    if cmd.iam_role != "default" and not all(
        part.strip().startswith("arn:aws") for part in cmd.iam_role.split(",")
    ):
        raise CopyRefused(
            f"Invalid IAM_ROLE {cmd.iam_role!r}: expected an arn:aws:iam ARN", "XX000"
        )
    if not saw_json:
        raise CopyRefused(
            "the emulator supports FORMAT JSON 'auto' only (Redshift's default is pipe-delimited text)",
            "0A000",
        )


def _json_arg(cmd: CopyCommand, value: str | None) -> None:
    mode = (value or "auto").strip().lower()
    if mode == "auto":
        return
    if mode == "auto ignorecase":
        cmd.json_ignorecase = True
        return
    raise CopyRefused(f"JSON {value!r} (jsonpaths) is not supported by the emulator", "0A000")


# --------------------------------------------------------------------------- S3


class S3ReadError(Exception):
    """S3 failed to answer (5xx, throttling, connection, access denied): a query-level error.

    Real Redshift retries S3 reads inside the COPY and, when it gives up, fails the statement
    with `S3ServiceException:…` — it is not a load error, so nothing goes to
    `sys_load_error_detail` and no file is blamed. (Recording it as a load error would make a
    loader quarantine a good object because S3 hiccuped.)"""


def split_s3_url(url: str) -> tuple[str, str]:
    bucket, _, key = url[len("s3://") :].partition("/")
    return bucket, key


def _s3_missing(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
    return code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound")


def _s3_error_text(exc: Exception) -> str:
    error = getattr(exc, "response", {}).get("Error", {})
    status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
    return f"S3ServiceException:{error.get('Message', exc)},Status {status},Error {error.get('Code', '?')}"


def list_sources(cmd: CopyCommand, s3: Any) -> list[tuple[str, bool]]:
    """(url, mandatory) for every object to load, in load order, duplicates kept."""
    if cmd.manifest:
        bucket, key = split_s3_url(cmd.source)
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as exc:
            if not _s3_missing(exc):
                raise S3ReadError(_s3_error_text(exc)) from exc
            raise LoadError(
                8001, f"Problem reading manifest file - {_s3_error_text(exc)}", cmd.source
            ) from exc
        try:
            manifest = json.loads(body)
            entries = manifest["entries"]
            sources = [(str(e["url"]), bool(e.get("mandatory", False))) for e in entries]
        except (ValueError, KeyError, TypeError) as exc:
            raise LoadError(8001, f"Invalid manifest file: {exc}", cmd.source) from exc
        for url, _ in sources:
            if not url.startswith("s3://"):
                raise LoadError(8001, f"Manifest entry is not an s3:// URL: {url}", cmd.source)
        return sources
    bucket, prefix = split_s3_url(cmd.source)
    keys: list[str] = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
    except Exception as exc:
        if not _s3_missing(exc):
            raise S3ReadError(_s3_error_text(exc)) from exc
        raise LoadError(5, _s3_error_text(exc), cmd.source) from exc
    if not keys:
        raise LoadError(5, f"The specified S3 prefix '{prefix}' does not exist", cmd.source)
    return [(f"s3://{bucket}/{key}", True) for key in sorted(keys)]


def fetch_object(cmd: CopyCommand, s3: Any, url: str, mandatory: bool) -> bytes | None:
    """Object bytes, decompressed; None for a missing optional entry."""
    bucket, key = split_s3_url(url)
    try:
        raw = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        if not _s3_missing(exc):
            raise S3ReadError(_s3_error_text(exc)) from exc
        if not mandatory:
            return None
        raise LoadError(
            5, f"Mandatory manifest entry not found: {url} ({_s3_error_text(exc)})", url
        ) from exc
    try:
        if cmd.compression == "gzip":
            return gzip.decompress(raw)
        if cmd.compression == "bzip2":
            return bz2.decompress(raw)
        if cmd.compression == "zstd":
            import zstandard

            return zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise LoadError(1216, f"{cmd.compression} decompression failed: {exc}", url) from exc
    except Exception as exc:  # zstandard.ZstdError
        raise LoadError(1216, f"{cmd.compression} decompression failed: {exc}", url) from exc
    return raw


# --------------------------------------------------------------------------- JSON -> rows


@dataclass
class Column:
    """A target column as introspected from PostgreSQL inside the client's session."""

    name: str
    type: str  # format_type(), e.g. "character varying(10)", "timestamp with time zone"
    notnull: bool
    has_default: bool

    @cached_property
    def kind(self) -> str:
        t = self.type
        if t in ("jsonb", "json"):
            return "super"
        if t.startswith(("character varying", "character(", "text", "character")):
            return "string"
        if t.startswith("timestamp"):
            return "timestamp"
        if t == "date":
            return "date"
        return "other"

    @cached_property
    def max_bytes(self) -> int | None:
        m = re.match(r"character(?: varying)?\((\d+)\)", self.type)
        return int(m.group(1)) if m else None


@dataclass
class Chunk:
    payload: str  # JSON array of row objects for jsonb_populate_recordset
    sources: list[tuple[str, int, str]]  # (url, line number, raw line) per row


@dataclass
class LoadPlan:
    columns: list[str]
    chunks: list[Chunk]
    rows: int
    files: list[str]


def _raw(text: str) -> str:
    return text[:RAW_LINE_CHARS]


def iter_records(data: bytes, url: str, invalid_char: str | None) -> Iterator[tuple[int, str, Any]]:
    """(line number, raw text, parsed value) per JSON value in `data`.

    NDJSON is the fast path; otherwise values may be separated by any whitespace, or none,
    as Redshift accepts.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if invalid_char is None:
            line = data.count(b"\n", 0, exc.start) + 1
            raise LoadError(
                1220,
                "String contains invalid or unsupported UTF8 codepoints",
                url,
                line,
                raw_line=_raw(data.splitlines()[line - 1].decode("utf-8", "replace")),
            ) from exc
        text = data.decode("utf-8", errors="replace").replace("\ufffd", invalid_char)
    lines = text.split("\n")
    parsed: list[tuple[int, str, Any]] = []
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped:
            continue
        try:
            value = orjson.loads(stripped) if orjson is not None else json.loads(stripped)
        except ValueError:
            break
        parsed.append((number, stripped, value))
    else:
        yield from parsed
        return
    yield from _scan(text, url)


def _scan(text: str, url: str) -> Iterator[tuple[int, str, Any]]:
    decoder = json.JSONDecoder()
    pos, line, length = 0, 1, len(text)
    while True:
        start = pos
        while pos < length and text[pos] in " \t\r\n":
            pos += 1
        line += text.count("\n", start, pos)
        if pos >= length:
            return
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            bad_line = text.count("\n", 0, exc.pos) + 1
            raise LoadError(
                1216,
                f"Invalid JSON: {exc.msg} (char {exc.colno})",
                url,
                bad_line,
                raw_line=_raw(text.split("\n")[bad_line - 1]),
            ) from exc
        yield line, text[pos:end], value
        line += text.count("\n", pos, end)
        pos = end


def _convert(cmd: CopyCommand, column: Column, value: Any, where: tuple[str, int, str]) -> Any:
    """Redshift's JSON 'auto' rules for one value; returns the JSON value to load or None."""
    kind = column.kind
    if kind == "super" or value is None:
        return value
    if kind == "other" and isinstance(value, str | int | float):
        return value
    url, number, raw = where
    if isinstance(value, dict | list):
        raise LoadError(
            1216,
            f"Invalid JSON value for column '{column.name}' of type {column.type}: nested objects "
            "and arrays can only be loaded into SUPER columns",
            url,
            number,
            column.name,
            column.type,
            _raw(raw),
            _raw(json.dumps(value)),
        )
    if kind == "string":
        text = value if isinstance(value, str) else json.dumps(value)
        if ("BLANKSASNULL" in cmd.flags and not text.strip()) or (
            "EMPTYASNULL" in cmd.flags and text == ""
        ):
            return None
        limit = column.max_bytes
        if limit is not None and len(text) * 4 > limit and len(text.encode("utf-8")) > limit:
            if "TRUNCATECOLUMNS" not in cmd.flags:
                raise LoadError(
                    1204,
                    f"String length exceeds DDL length (value is {len(text.encode())} bytes, "
                    f"column {column.type})",
                    url,
                    number,
                    column.name,
                    column.type,
                    _raw(raw),
                    _raw(text),
                )
            text = text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")
        return text
    if kind == "timestamp":
        mode = (cmd.timeformat or "").lower()
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and mode in ("epochsecs", "epochmillisecs")
        ):
            seconds = value / 1000 if mode == "epochmillisecs" else value
            return datetime.fromtimestamp(seconds, UTC).isoformat()
        default_format = (cmd.timeformat or "").lower() in _DEFAULT_TIMEFORMATS
        if isinstance(value, str) and default_format and not _DEFAULT_TIMESTAMP.match(value):
            raise LoadError(
                1206,
                "Invalid timestamp format or value [YYYY-MM-DD HH24:MI:SS] "
                "(without TIMEFORMAT 'auto' Redshift expects 'YYYY-MM-DD HH:MI:SS')",
                url,
                number,
                column.name,
                column.type,
                _raw(raw),
                _raw(value),
            )
    return value


def build_plan(cmd: CopyCommand, table_columns: list[Column], s3: Any) -> LoadPlan:
    """Read every source and turn it into checked chunks (runs in a worker thread)."""
    by_name = {c.name: c for c in table_columns}
    if cmd.columns is not None:
        for name in cmd.columns:
            if name not in by_name:
                raise LoadError(
                    1200,
                    f'column "{name}" of relation "{cmd.table_display}" does not exist',
                    cmd.source,
                )
        targets = [by_name[n] for n in cmd.columns]
    else:
        targets = list(table_columns)

    records: list[tuple[dict[str, Any], tuple[str, int, str]]] = []
    files: list[str] = []
    for url, mandatory in list_sources(cmd, s3):
        data = fetch_object(cmd, s3, url, mandatory)
        if data is None:
            continue
        files.append(url)
        for number, raw, value in iter_records(data, url, cmd.acceptinvchars):
            if len(raw) * 4 > MAX_RECORD_BYTES and len(raw.encode("utf-8")) > MAX_RECORD_BYTES:
                raise LoadError(
                    1216,
                    "JSON record exceeds the maximum size of 4 MB",
                    url,
                    number,
                    raw_line=_raw(raw),
                )
            if not isinstance(value, dict):
                raise LoadError(
                    1216,
                    "Invalid JSON record: JSON 'auto' needs one object per record",
                    url,
                    number,
                    raw_line=_raw(raw),
                )
            if cmd.json_ignorecase:
                value = {k.lower(): v for k, v in value.items()}
            records.append((value, (url, number, raw)))

    present = {key for record, _ in records for key in record}
    if cmd.columns is None:  # let DEFAULT/IDENTITY apply to columns no record provides
        targets = [c for c in targets if c.name in present or not c.has_default]

    chunks: list[Chunk] = []
    rows: list[dict[str, Any]] = []
    sources: list[tuple[str, int, str]] = []
    size = 0
    for record, where in records:
        row: dict[str, Any] = {}
        for column in targets:
            value = _convert(cmd, column, record.get(column.name), where)
            if value is None:
                if column.notnull:
                    raise LoadError(
                        1213,
                        "Missing data for not-null field",
                        where[0],
                        where[1],
                        column.name,
                        column.type,
                        _raw(where[2]),
                    )
                continue
            row[column.name] = value
        rows.append(row)
        sources.append((where[0], where[1], _raw(where[2])))
        size += len(where[2]) + 16
        if len(rows) >= CHUNK_ROWS or size >= CHUNK_BYTES:
            chunks.append(Chunk(_dumps(rows), sources))
            rows, sources, size = [], [], 0
    if rows:
        chunks.append(Chunk(_dumps(rows), sources))
    return LoadPlan([c.name for c in targets], chunks, len(records), files)


def _dumps(rows: list[dict[str, Any]]) -> str:
    if orjson is not None:
        try:
            return orjson.dumps(rows).decode("utf-8")
        except TypeError:  # e.g. integers beyond 64 bits
            pass
    return json.dumps(rows, ensure_ascii=False)


# --------------------------------------------------------------------------- diagnostics

_INT_TYPES = {"smallint": "Short", "integer": "Integer", "bigint": "Long"}


def redshift_conversion_error(column: Column, value: str, pg_message: str) -> tuple[int, str]:
    """Map a PostgreSQL input-conversion failure to Redshift's (code, message)."""
    t = column.type
    if t in _INT_TYPES or t.startswith("numeric"):
        shown = _INT_TYPES.get(t, "Decimal")
        stripped = value.strip()
        for pos, ch in enumerate(stripped):
            if not (
                ch.isdigit() or (pos == 0 and ch in "+-") or (shown == "Decimal" and ch == ".")
            ):
                return 1207, f"Invalid digit, Value '{ch}', Pos {pos}, Type: {shown}"
        return 1207, f"Overflow, Value '{_raw(value)}', Type: {shown} ({pg_message})"
    if t.startswith("timestamp"):
        return 1206, f"Invalid timestamp format or value [YYYY-MM-DD HH24:MI:SS] ({pg_message})"
    if t == "date":
        return 1205, f"Invalid date format or value [YYYY-MM-DD] ({pg_message})"
    if t == "boolean":
        return 1210, f"Invalid boolean value ({pg_message})"
    return 1200, f"Invalid value for type {t}: {pg_message}"


def array_literal(values: list[str]) -> str:
    """A PostgreSQL text[] literal."""
    return (
        "{"
        + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
        + "}"
    )


DIAGNOSE_SQL = """
SELECT r.ord::int, c.name, r.rec ->> c.name, (pg_input_error_info(r.rec ->> c.name, c.typ)).message
FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS r(rec, ord)
CROSS JOIN unnest($2::text[], $3::text[]) WITH ORDINALITY AS c(name, typ, pos)
WHERE r.rec ? c.name AND jsonb_typeof(r.rec -> c.name) <> 'null'
  AND NOT pg_input_is_valid(r.rec ->> c.name, c.typ)
ORDER BY r.ord, c.pos
LIMIT 1
"""
