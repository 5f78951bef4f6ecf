"""PostgreSQL v3 wire-protocol framing, plus the emulator's own tiny asyncio client.

Why hand-rolled: the proxy has to read, rewrite and inject individual protocol messages, so it
needs the framing anyway; and the emulator's side channels (admin DDL, recording load errors
outside the client's transaction, diagnosing a failed load) need a PostgreSQL client that runs
on the proxy's event loop. No PostgreSQL driver other than `redshift-connector` is installed,
and that one insists on Redshift start-up parameters, so a ~100-line client is the least
moving part.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import struct
from collections.abc import Sequence
from typing import Any

PROTOCOL_V3 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102

_I32 = struct.Struct("!I")
_I16 = struct.Struct("!H")

MAX_STARTUP_PACKET = 10_000


class ProtocolError(Exception):
    """The peer sent something that is not valid PostgreSQL v3 framing."""


class PgError(Exception):
    """An ErrorResponse from PostgreSQL, with its fields (`fields['M']` is the message)."""

    def __init__(self, fields: dict[str, str], raw: bytes = b"") -> None:
        self.fields = fields
        self.raw = raw  # the ErrorResponse body exactly as the server sent it
        super().__init__(f"{fields.get('C', '?????')}: {fields.get('M', 'unknown error')}")

    @property
    def sqlstate(self) -> str:
        return self.fields.get("C", "")

    @property
    def message(self) -> str:
        return self.fields.get("M", "")

    @property
    def column(self) -> str | None:
        return self.fields.get("c")


def message(kind: bytes, body: bytes = b"") -> bytes:
    """Frame one typed message: kind byte, int32 length (including itself), body."""
    return kind + _I32.pack(len(body) + 4) + body


def cstr(value: str) -> bytes:
    return value.encode("utf-8") + b"\0"


def read_cstr(body: bytes, pos: int) -> tuple[str, int]:
    """Return the NUL-terminated string at `pos` and the position after its terminator."""
    end = body.index(b"\0", pos)
    return body[pos:end].decode("utf-8", errors="replace"), end + 1


async def read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    header = await reader.readexactly(5)
    (length,) = _I32.unpack_from(header, 1)
    if length < 4:
        raise ProtocolError(f"bad message length {length}")
    return header[:1], await reader.readexactly(length - 4)


async def read_startup(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Read an untyped start-up-phase packet; return (request code, rest of the body)."""
    (length,) = _I32.unpack(await reader.readexactly(4))
    if not 8 <= length <= MAX_STARTUP_PACKET:
        raise ProtocolError(f"bad start-up packet length {length}")
    body = await reader.readexactly(length - 4)
    return _I32.unpack_from(body)[0], body[4:]


def parse_fields(body: bytes) -> dict[str, str]:
    """Fields of an ErrorResponse/NoticeResponse body."""
    fields: dict[str, str] = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode("utf-8", errors="replace")
    return fields


def fields_body(fields: dict[str, str]) -> bytes:
    return b"".join(k.encode() + cstr(v) for k, v in fields.items()) + b"\0"


def error_response(
    message_text: str,
    *,
    sqlstate: str = "XX000",
    detail: str | None = None,
    severity: str = "ERROR",
) -> bytes:
    fields = {"S": severity, "V": severity, "C": sqlstate, "M": message_text}
    if detail:
        fields["D"] = detail
    return message(b"E", fields_body(fields))


def notice_response(message_text: str, *, severity: str = "INFO", sqlstate: str = "00000") -> bytes:
    fields = {"S": severity, "V": severity, "C": sqlstate, "M": message_text}
    return message(b"N", fields_body(fields))


def command_complete(tag: str) -> bytes:
    return message(b"C", cstr(tag))


def parse_message(name: str, sql: str, param_oids: Sequence[int] = ()) -> bytes:
    body = cstr(name) + cstr(sql) + _I16.pack(len(param_oids))
    body += b"".join(_I32.pack(oid) for oid in param_oids)
    return message(b"P", body)


def bind_message(portal: str, statement: str, params: Sequence[str | None]) -> bytes:
    """Bind with every parameter and every result column in text format."""
    body = bytearray(cstr(portal) + cstr(statement))
    body += _I16.pack(0) + _I16.pack(len(params))
    for value in params:
        if value is None:
            body += b"\xff\xff\xff\xff"
        else:
            encoded = value.encode("utf-8")
            body += _I32.pack(len(encoded)) + encoded
    body += _I16.pack(0)
    return message(b"B", bytes(body))


def execute_message(portal: str = "", max_rows: int = 0) -> bytes:
    return message(b"E", cstr(portal) + _I32.pack(max_rows))


FLUSH = message(b"H")
SYNC = message(b"S")
TERMINATE = message(b"X")


def data_row(body: bytes) -> list[str | None]:
    (count,) = _I16.unpack_from(body)
    pos, values = 2, []
    for _ in range(count):
        (length,) = struct.unpack_from("!i", body, pos)
        pos += 4
        if length < 0:
            values.append(None)
        else:
            values.append(body[pos : pos + length].decode("utf-8"))
            pos += length
    return values


def startup_packet(params: dict[str, str]) -> bytes:
    body = _I32.pack(PROTOCOL_V3) + b"".join(cstr(k) + cstr(v) for k, v in params.items()) + b"\0"
    return _I32.pack(len(body) + 4) + body


async def open_stream(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """libpq convention: a host starting with '/' is a unix-socket directory."""
    if host.startswith("/"):
        return await asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
    return await asyncio.open_connection(host, port)


class PgClient:
    """Minimal asyncio PostgreSQL client: trust/cleartext/md5 auth, simple and extended query."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.backend_pid: int | None = None

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        user: str,
        database: str,
        password: str | None = None,
        application_name: str = "redshift-emulator",
    ) -> PgClient:
        reader, writer = await open_stream(host, port)
        client = cls(reader, writer)
        try:
            await client._startup(user, database, password, application_name)
        except BaseException:
            writer.close()
            raise
        return client

    async def _startup(self, user: str, database: str, password: str | None, app: str) -> None:
        params = {"user": user, "database": database, "application_name": app}
        self._writer.write(startup_packet(params))
        await self._writer.drain()
        error: PgError | None = None
        while True:
            kind, body = await read_message(self._reader)
            if kind == b"R":
                (code,) = _I32.unpack_from(body)
                if code == 3 and password is not None:
                    self._writer.write(message(b"p", cstr(password)))
                elif code == 5 and password is not None:
                    inner = hashlib.md5((password + user).encode()).hexdigest().encode()
                    digest = "md5" + hashlib.md5(inner + body[4:8]).hexdigest()
                    self._writer.write(message(b"p", cstr(digest)))
                elif code != 0:
                    raise PgError({"C": "28000", "M": f"unsupported auth method {code}"})
                await self._writer.drain()
            elif kind == b"K":
                self.backend_pid = _I32.unpack_from(body)[0]
            elif kind == b"E":
                error = PgError(parse_fields(body), body)
                raise error
            elif kind == b"Z":
                return

    async def query(self, sql: str) -> list[list[str | None]]:
        """Simple-protocol query; rows of the last result set, as text."""
        self._writer.write(message(b"Q", cstr(sql)))
        await self._writer.drain()
        return await self._collect()

    async def execute(self, sql: str, params: Sequence[str | None] = ()) -> list[list[str | None]]:
        """Extended-protocol query with text parameters (no SQL quoting needed)."""
        self._writer.write(
            parse_message("", sql) + bind_message("", "", params) + execute_message() + SYNC
        )
        await self._writer.drain()
        return await self._collect()

    async def _collect(self) -> list[list[str | None]]:
        rows: list[list[str | None]] = []
        error: PgError | None = None
        while True:
            kind, body = await read_message(self._reader)
            if kind == b"D":
                rows.append(data_row(body))
            elif kind == b"T":
                rows = []
            elif kind == b"E":
                error = PgError(parse_fields(body), body)
            elif kind == b"Z":
                if error is not None:
                    raise error
                return rows

    async def close(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            self._writer.write(TERMINATE)
            await self._writer.drain()
        self._writer.close()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self._writer.wait_closed()

    async def __aenter__(self) -> PgClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """An E'' literal: correct whatever `standard_conforming_strings` says."""
    value = value.replace("\0", "")
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
