"""One client connection: relay PostgreSQL messages, rewrite SQL, and run COPY in-session.

Why a message-level proxy: the unmodified `redshift-connector` must be what the tests exercise,
so the emulator has to speak the wire protocol. Everything is relayed as-is except:

* the start-up packet (Redshift-only parameters dropped; SSL/GSSAPI requests answered 'N');
* ParameterStatus `server_version` (looks like Redshift) and RowDescription jsonb -> SUPER oid;
* Query ('Q') and Parse ('P') SQL: Redshift dialect rewritten, Redshift-refused SQL replaced
  by a statement that raises the error *in PostgreSQL*, so the transaction is really aborted;
* COPY from S3: Parse gets a placeholder; at Execute the proxy takes over the backend
  connection (quiesced with a Sync of its own, whose ReadyForQuery it swallows), reads S3 in a
  worker thread and INSERTs the rows on that same connection, inside the client's transaction.

The relay task is the only reader of the backend socket; during a COPY it hands messages to
the COPY code through a queue (`capture`) instead of writing them to the client.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import struct
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .protocol import (
    FLUSH,
    SYNC,
    PgError,
    bind_message,
    command_complete,
    cstr,
    data_row,
    error_response,
    execute_message,
    fields_body,
    message,
    notice_response,
    parse_fields,
    parse_message,
    quote_ident,
    read_cstr,
    read_message,
)
from .rewrite import NOOP_STATEMENT, denied, raise_statement, rewrite_sql, split_statements
from .s3copy import (
    DIAGNOSE_SQL,
    Chunk,
    Column,
    CopyCommand,
    CopyRefused,
    LoadError,
    S3ReadError,
    array_literal,
    build_plan,
    parse_copy,
    redshift_conversion_error,
)
from .startup import rewrite_parameter_status

if TYPE_CHECKING:
    from .emulator import RedshiftEmulator

log = logging.getLogger(__name__)

JSONB_OID = 3802
SUPER_OID = 4000
WRITE_BUFFER_HIGH = 256 * 1024

COLUMNS_SQL = """
SELECT c.oid::int8, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       (a.atthasdef OR a.attidentity <> '')
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
WHERE c.oid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attnum
"""


@dataclass
class Prepared:
    """What the client asked for in a Parse, and the COPY it stands for, if any."""

    sql: str
    copy: CopyCommand | None = None


@dataclass
class Portal:
    prepared: Prepared
    recorded: bool = False


@dataclass
class Translation:
    sql: str  # what PostgreSQL gets
    copy: CopyCommand | None = None  # the COPY the proxy runs itself at Execute
    refused: bool = False  # `sql` is a statement raising Redshift's error


def translate(sql: str) -> Translation:
    """What to send to PostgreSQL for one client statement."""
    try:
        copy = parse_copy(sql)
    except CopyRefused as refused:
        return Translation(raise_statement(str(refused), sqlstate=refused.sqlstate), refused=True)
    if copy is not None:
        return Translation(NOOP_STATEMENT, copy)
    refusal = denied(sql)
    if refusal is not None:
        return Translation(raise_statement(refusal[1], sqlstate=refusal[0]), refused=True)
    return Translation(rewrite_sql(sql))


def rewrite_row_description(body: bytes) -> bytes:
    """Report jsonb columns with Redshift's SUPER type oid (both are text for the driver)."""
    (count,) = struct.unpack_from("!H", body)
    out = bytearray(body)
    pos = 2
    for _ in range(count):
        pos = body.index(b"\0", pos) + 1
        (oid,) = struct.unpack_from("!I", body, pos + 6)
        if oid == JSONB_OID:
            struct.pack_into("!I", out, pos + 6, SUPER_OID)
        pos += 18
    return bytes(out)


def strip_where(body: bytes) -> bytes:
    """Drop the PL/pgSQL CONTEXT line our raising DO blocks add to an ErrorResponse."""
    fields = parse_fields(body)
    if "inline_code_block" in fields.get("W", ""):
        del fields["W"]
        return fields_body(fields)
    return body


def load_failed_message(table: str) -> str:
    return (
        f"Load into table '{table}' failed. Check 'sys_load_error_detail' system table for details."
    )


def load_error_detail(error: LoadError, query_id: int) -> str:
    context = error.column_name or error.file_name
    return (
        "\n  -----------------------------------------------\n"
        f"  error:  {error.error_message}\n"
        f"  code:      {error.error_code}\n"
        f"  context:   {context}\n"
        f"  query:     {query_id}\n"
        f"  location:  {error.file_name}:{error.line_number}\n"
        "  process:   redshift-emulator\n"
        "  -----------------------------------------------"
    )


class Session:
    def __init__(
        self,
        emulator: RedshiftEmulator,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        backend: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        user: str,
        database: str,
    ) -> None:
        self.emulator = emulator
        self.c_reader, self.c_writer = client
        self.b_reader, self.b_writer = backend
        self.user = user
        self.database = database
        self.backend_pid: int | None = None
        self.statements: dict[str, Prepared] = {}
        self.portals: dict[str, Portal] = {}
        # One entry per Sync/Query forwarded: None = the client's, a Future = the proxy's own.
        self.sync_owners: deque[asyncio.Future[bytes] | None] = deque()
        self.idle = asyncio.Event()
        self.idle.set()
        self.segment_failed = False  # an ErrorResponse since the client's last ReadyForQuery
        self.discard_until_sync = False
        self.capture: asyncio.Queue[tuple[bytes, bytes] | None] | None = None
        self.copied = False

    # ------------------------------------------------------------------ plumbing

    async def run(self) -> None:
        relay = asyncio.create_task(self._relay())
        client = asyncio.create_task(self._client_loop())
        try:
            await asyncio.wait({relay, client}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (relay, client):
                task.cancel()
            await asyncio.gather(relay, client, return_exceptions=True)
            if self.copied and self.backend_pid is not None:
                await self.emulator.forget_session(self.database, self.backend_pid)

    def abort(self) -> None:
        """Drop both sockets now (warehouse outage)."""
        for writer in (self.c_writer, self.b_writer):
            transport = writer.transport
            if transport is not None and not transport.is_closing():
                transport.abort()

    async def _to_client(self, data: bytes) -> None:
        self.c_writer.write(data)
        if self.c_writer.transport.get_write_buffer_size() > WRITE_BUFFER_HIGH:
            await self.c_writer.drain()

    def _to_backend(self, data: bytes) -> None:
        self.b_writer.write(data)

    def _expect_ready(self, owner: asyncio.Future[bytes] | None = None) -> None:
        self.sync_owners.append(owner)
        self.idle.clear()

    async def _relay(self) -> None:
        try:
            while True:
                kind, body = await read_message(self.b_reader)
                if self.capture is not None:
                    self.capture.put_nowait((kind, body))
                    continue
                if kind == b"S":
                    body = rewrite_parameter_status(body)
                elif kind == b"K":
                    self.backend_pid = struct.unpack_from("!I", body)[0]
                elif kind == b"T":
                    body = rewrite_row_description(body)
                elif kind == b"E":
                    self.segment_failed = True
                    body = strip_where(body)
                elif kind == b"Z":
                    owner = self.sync_owners.popleft() if self.sync_owners else None
                    if not self.sync_owners:
                        self.idle.set()
                    if owner is not None:
                        owner.set_result(body)
                        continue
                    self.segment_failed = False
                await self._to_client(message(kind, body))
                if kind == b"Z":
                    await self.c_writer.drain()
        finally:
            if self.capture is not None:
                self.capture.put_nowait(None)
            for owner in self.sync_owners:
                if owner is not None and not owner.done():
                    owner.set_exception(ConnectionError("backend connection closed"))

    async def _client_loop(self) -> None:
        while True:
            kind, body = await read_message(self.c_reader)
            if kind == b"X":
                self._to_backend(message(kind, body))
                await self.b_writer.drain()
                return
            if self.discard_until_sync and kind != b"S":
                continue
            if kind == b"Q":
                await self._on_query(body)
            elif kind == b"P":
                self._on_parse(body)
            elif kind == b"B":
                self._on_bind(body)
            elif kind == b"E":
                await self._on_execute(body)
            elif kind == b"C":
                self._on_close(body)
            elif kind in (b"S", b"F"):
                self.discard_until_sync = False
                self._expect_ready()
                self._to_backend(message(kind, body))
            else:
                self._to_backend(message(kind, body))
            await self.b_writer.drain()

    # ------------------------------------------------------------------ client messages

    async def _on_query(self, body: bytes) -> None:
        sql, _ = read_cstr(body, 0)
        statements = split_statements(sql)
        for statement in statements:
            self.emulator.record_statement(statement)
        translated = [translate(s) for s in statements]
        copies = [t.copy for t in translated if t.copy is not None]
        refused = [t.sql for t in translated if t.refused]
        if copies and len(statements) == 1:
            await self._run_copy(copies[0], simple=True)
            return
        if copies:
            new_sql = raise_statement(
                "redshift-emulator: send COPY as a statement of its own", sqlstate="0A000"
            )
        elif refused:
            new_sql = refused[0]
        else:
            new_sql = rewrite_sql(sql)
        self._expect_ready()
        self._to_backend(message(b"Q", cstr(new_sql)))

    def _on_parse(self, body: bytes) -> None:
        name, pos = read_cstr(body, 0)
        sql, pos = read_cstr(body, pos)
        translation = translate(sql)
        self.statements[name] = Prepared(sql, translation.copy)
        self._to_backend(message(b"P", cstr(name) + cstr(translation.sql) + body[pos:]))

    def _on_bind(self, body: bytes) -> None:
        portal, pos = read_cstr(body, 0)
        statement, _ = read_cstr(body, pos)
        prepared = self.statements.get(statement)
        if prepared is not None:
            self.portals[portal] = Portal(prepared)
        else:
            self.portals.pop(portal, None)
        self._to_backend(message(b"B", body))

    async def _on_execute(self, body: bytes) -> None:
        name, _ = read_cstr(body, 0)
        portal = self.portals.get(name)
        if portal is not None and not portal.recorded:
            portal.recorded = True
            self.emulator.record_statement(portal.prepared.sql)
        if portal is not None and portal.prepared.copy is not None:
            await self._run_copy(portal.prepared.copy, simple=False)
            return
        self._to_backend(message(b"E", body))

    def _on_close(self, body: bytes) -> None:
        name, _ = read_cstr(body, 1)
        if body[:1] == b"S":
            self.statements.pop(name, None)
        else:
            self.portals.pop(name, None)
        self._to_backend(message(b"C", body))

    # ------------------------------------------------------------------ COPY

    async def _run_copy(self, cmd: CopyCommand, *, simple: bool) -> None:
        if simple:
            while not self.idle.is_set():
                await self.idle.wait()
        else:
            # Quiesce: everything forwarded so far gets answered before our own statements.
            ready: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            self._expect_ready(ready)
            self._to_backend(SYNC)
            await self.b_writer.drain()
            await ready
            if self.segment_failed:  # PostgreSQL would skip this Execute: so do we
                self.discard_until_sync = True
                return
        self.capture = asyncio.Queue()
        try:
            reply = await self._copy(cmd)
        finally:
            self.capture = None
        await self._to_client(reply)
        if simple:
            self._expect_ready()
            self._to_backend(SYNC)

    async def _inject(
        self, sql: str, params: list[str | None] | None = None
    ) -> list[list[str | None]]:
        """Run one statement on the client's backend connection, without a Sync."""
        assert self.capture is not None
        self._to_backend(
            parse_message("", sql) + bind_message("", "", params or []) + execute_message() + FLUSH
        )
        await self.b_writer.drain()
        rows: list[list[str | None]] = []
        while True:
            item = await self.capture.get()
            if item is None:
                raise ConnectionError("backend connection closed during COPY")
            kind, body = item
            if kind == b"D":
                rows.append(data_row(body))
            elif kind in (b"C", b"I"):
                return rows
            elif kind == b"E":
                raise PgError(parse_fields(body), body)

    async def _copy(self, cmd: CopyCommand) -> bytes:
        """Run the COPY; return what the client gets for its Execute."""
        query_id = self.emulator.next_query_id()
        started = dt.datetime.now(dt.UTC).isoformat()
        try:
            rows = await self._inject(COLUMNS_SQL, [cmd.table])
        except PgError as exc:  # missing table, aborted transaction, ...
            self.segment_failed = True
            return message(b"E", strip_where(exc.raw))
        table_id = int(rows[0][0]) if rows and rows[0][0] else None
        columns = [Column(r[1] or "", r[2] or "", r[3] == "t", r[4] == "t") for r in rows]
        loop = asyncio.get_running_loop()
        try:
            plan = await loop.run_in_executor(
                self.emulator.executor, build_plan, cmd, columns, self.emulator.s3
            )
        except LoadError as error:
            return await self._fail(cmd, error, query_id, table_id, started, backend_aborted=False)
        except S3ReadError as exc:
            return await self._fail_statement(str(exc))
        except Exception as exc:  # a bug or an unexpected S3 error: still a clean COPY failure
            log.exception("redshift-emulator: COPY failed unexpectedly")
            error = LoadError(1200, f"redshift-emulator internal error: {exc!r}", cmd.source)
            return await self._fail(cmd, error, query_id, table_id, started, backend_aborted=False)

        if plan.columns:
            names = ", ".join(quote_ident(c) for c in plan.columns)
            insert = (
                f"INSERT INTO {cmd.table} ({names}) SELECT {names} "
                f"FROM jsonb_populate_recordset(NULL::{cmd.table}, $1::jsonb)"
            )
            for chunk in plan.chunks:
                try:
                    await self._inject(insert, [chunk.payload])
                except PgError as exc:  # the backend's transaction is now really aborted
                    error = await self._diagnose(exc, chunk, plan.columns, columns)
                    return await self._fail(
                        cmd, error, query_id, table_id, started, backend_aborted=True
                    )
        if self.backend_pid is not None:
            self.copied = True
            await self.emulator.record_copy(self.database, self.backend_pid, query_id, plan.rows)
        return notice_response(
            f"Load into table '{cmd.table_display}' completed, {plan.rows} record(s) loaded successfully."
        ) + command_complete("COPY")

    async def _diagnose(
        self, exc: PgError, chunk: Chunk, names: list[str], columns: list[Column]
    ) -> LoadError:
        """Which row/column PostgreSQL choked on (asked on a side connection)."""
        by_name = {c.name: c for c in columns}
        checked = [by_name[n] for n in names if by_name[n].kind != "super"]
        try:
            async with self.emulator.side_client(self.database) as side:
                found = await side.execute(
                    DIAGNOSE_SQL,
                    [
                        chunk.payload,
                        array_literal([c.name for c in checked]),
                        array_literal([c.type for c in checked]),
                    ],
                )
        except (PgError, OSError) as diag_exc:
            log.warning("redshift-emulator: load diagnosis failed: %s", diag_exc)
            found = []
        if found:
            ordinal, name, value, pg_message = found[0]
            column = by_name[name or ""]
            code, text = redshift_conversion_error(column, value or "", pg_message or exc.message)
            url, line, raw = chunk.sources[int(ordinal or 1) - 1]
            return LoadError(code, text, url, line, column.name, column.type, raw, value or "")
        url, line, raw = chunk.sources[0] if chunk.sources else ("", 0, "")
        column = by_name.get(exc.column or "")
        return LoadError(
            1200, exc.message, url, 0, exc.column or "", column.type if column else "", "", ""
        )

    async def _fail(
        self,
        cmd: CopyCommand,
        error: LoadError,
        query_id: int,
        table_id: int | None,
        started: str,
        *,
        backend_aborted: bool,
    ) -> bytes:
        await self.emulator.record_load_error(
            self.database,
            user=self.user,
            query_id=query_id,
            session_pid=self.backend_pid,
            table_id=table_id,
            table_name=cmd.table_display,
            start_time=started,
            error=error,
        )
        if self.backend_pid is not None:
            self.copied = True
            await self.emulator.record_copy(self.database, self.backend_pid, query_id, 0)
        text = load_failed_message(cmd.table_display)
        detail = load_error_detail(error, query_id)
        self.segment_failed = True
        if backend_aborted:
            return error_response(text, sqlstate="XX000", detail=detail)
        try:
            await self._inject(raise_statement(text, sqlstate="XX000", detail=detail))
        except PgError as exc:
            return message(b"E", strip_where(exc.raw))
        raise RuntimeError("redshift-emulator: the raising statement did not fail")

    async def _fail_statement(self, text: str) -> bytes:
        """Fail the COPY with a query-level XX000 error: nothing recorded, transaction aborted."""
        self.segment_failed = True
        try:
            await self._inject(raise_statement(text, sqlstate="XX000"))
        except PgError as exc:
            return message(b"E", strip_where(exc.raw))
        raise RuntimeError("redshift-emulator: the raising statement did not fail")


async def forward_cancel(host: str, port: int, body: bytes) -> None:
    """Pass a CancelRequest through to PostgreSQL (it carries PostgreSQL's own pid/key)."""
    from .protocol import CANCEL_REQUEST, open_stream

    _, writer = await open_stream(host, port)
    writer.write(struct.pack("!II", 16, CANCEL_REQUEST) + body)
    await writer.drain()
    writer.close()
