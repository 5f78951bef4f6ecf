"""`RedshiftEmulator`: the proxy server, run on its own event loop in a background thread.

Why a thread with its own loop: the driver under test (`redshift-connector`) is blocking, and
tests call it from the main thread (sync tests) or from pytest-asyncio's loop (async tests). A
proxy on a private loop works for both and never competes with the test's loop. S3 reads and
JSON parsing run in a small thread pool so one COPY does not stall other connections.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import boto3
from botocore.config import Config

from . import catalog
from .protocol import (
    CANCEL_REQUEST,
    GSSENC_REQUEST,
    PROTOCOL_V3,
    SSL_REQUEST,
    PgClient,
    PgError,
    ProtocolError,
    error_response,
    open_stream,
    quote_ident,
    read_startup,
    startup_packet,
)
from .proxy import Session, forward_cancel
from .s3copy import LoadError
from .startup import filter_startup_params, parse_startup_params

log = logging.getLogger(__name__)
T = TypeVar("T")


class PostgresLike(Protocol):
    """Where the real PostgreSQL is; `EmbeddedPostgres` and `PostgresTarget` both qualify."""

    host: str  # a unix-socket directory (starts with "/") or a hostname
    port: int
    superuser: str


@dataclass(frozen=True)
class PostgresTarget:
    host: str
    port: int
    superuser: str = "postgres"
    password: str | None = None


class RedshiftEmulator:
    """A Redshift-speaking endpoint on 127.0.0.1 backed by PostgreSQL and an S3 endpoint.

    `start()` returns once the port is listening; `stop()` refuses new connections and drops
    the existing ones (warehouse outage); `start()` again listens on the same port.
    """

    def __init__(
        self,
        postgres: PostgresLike,
        s3_endpoint_url: str,
        aws_access_key_id: str = "testing",
        aws_secret_access_key: str = "testing",
        region: str = "us-east-1",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        auto_create_roles: bool = True,
    ) -> None:
        self.pg = PostgresTarget(
            postgres.host,
            postgres.port,
            getattr(postgres, "superuser", "postgres"),
            getattr(postgres, "password", None),
        )
        self.s3 = boto3.session.Session().client(
            "s3",
            endpoint_url=s3_endpoint_url,
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
            region_name=region,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 2, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
            ),
        )
        self.executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="redshift-emulator-io")
        self._host = host
        self._port = port
        self._auto_create_roles = auto_create_roles
        self._statements: list[str] = []
        self._statements_lock = threading.Lock()
        self._query_ids = itertools.count(100_001)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._sessions: set[Session] = set()
        self._clients: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._known_settings: frozenset[str] = frozenset()
        self._roles: set[str] = set()
        self._role_lock = asyncio.Lock()
        self._catalog_ready: set[str] = set()
        self._initialised = False

    # ------------------------------------------------------------------ public API

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def statements(self) -> list[str]:
        """Every SQL statement clients executed, as sent (before rewriting), oldest first."""
        with self._statements_lock:
            return list(self._statements)

    def clear_statements(self) -> None:
        with self._statements_lock:
            self._statements.clear()

    def connect_kwargs(
        self, database: str, user: str = "awsuser", password: str = "emulator"
    ) -> dict[str, Any]:
        """Keyword arguments for `redshift_connector.connect(**kw)` against this emulator."""
        return {
            "host": self._host,
            "port": self._port,
            "database": database,
            "user": user,
            "password": password,
            "ssl": False,
            "timeout": 60,
        }

    def start(self) -> None:
        self._ensure_loop()
        self._call(self._start())

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._call(self._stop())

    def close(self) -> None:
        """stop() and end the background thread."""
        self.stop()
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()
        self._loop = self._thread = None
        self.executor.shutdown(wait=False, cancel_futures=True)

    def create_database(self, name: str, owner: str | None = "awsuser") -> None:
        """CREATE DATABASE from template1 (which holds the emulated system tables)."""
        self._call(self._create_database(name, owner))

    def drop_database(self, name: str) -> None:
        self._call(self._admin_query(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)"))

    def query(self, sql: str, database: str = "postgres") -> list[list[str | None]]:
        """Run SQL directly on PostgreSQL as superuser (no proxy, no rewriting); text rows."""
        return self._call(self._admin_query(sql, database))

    def __enter__(self) -> RedshiftEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ used by sessions

    def record_statement(self, sql: str) -> None:
        with self._statements_lock:
            self._statements.append(sql)

    def next_query_id(self) -> int:
        return next(self._query_ids)

    @asynccontextmanager
    async def side_client(self, database: str) -> AsyncIterator[PgClient]:
        """A fresh autocommit superuser connection, outside any client transaction."""
        client = await PgClient.connect(
            self.pg.host, self.pg.port, self.pg.superuser, database, self.pg.password
        )
        try:
            if database not in self._catalog_ready:
                if not await catalog.has_catalog(client):
                    await catalog.install(client)
                self._catalog_ready.add(database)
            yield client
        finally:
            await client.close()

    async def record_load_error(self, database: str, *, error: LoadError, **row: Any) -> None:
        try:
            async with self.side_client(database) as side:
                await catalog.record_load_error(side, error=error, **row)
        except (PgError, OSError) as exc:
            log.error("redshift-emulator: could not record load error %r: %s", error, exc)

    async def record_copy(self, database: str, pid: int, query_id: int, rows: int) -> None:
        try:
            async with self.side_client(database) as side:
                await catalog.record_copy(side, pid, query_id, rows)
        except (PgError, OSError) as exc:
            log.error("redshift-emulator: could not record COPY %s: %s", query_id, exc)

    async def forget_session(self, database: str, pid: int) -> None:
        try:
            async with self.side_client(database) as side:
                await catalog.forget_session(side, pid)
        except (PgError, OSError):
            pass  # the database may be gone already

    # ------------------------------------------------------------------ loop plumbing

    def _ensure_loop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name="redshift-emulator", daemon=True
        )
        self._thread.start()

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("RedshiftEmulator is not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start(self) -> None:
        if self._server is not None:
            return
        if not self._initialised:
            rows = await self._admin_query("SELECT name FROM pg_settings")
            self._known_settings = frozenset(r[0] for r in rows if r[0])
            async with self._admin("template1") as template:
                await catalog.install(template)
            self._catalog_ready.add("template1")
            self._initialised = True
        self._server = await asyncio.start_server(self._handle, self._host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for session in list(self._sessions):
            session.abort()
        for writer in list(self._clients):
            if writer.transport is not None:
                writer.transport.abort()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)
        if server is not None:
            await server.wait_closed()

    @asynccontextmanager
    async def _admin(self, database: str = "postgres") -> AsyncIterator[PgClient]:
        client = await PgClient.connect(
            self.pg.host, self.pg.port, self.pg.superuser, database, self.pg.password
        )
        try:
            yield client
        finally:
            await client.close()

    async def _admin_query(self, sql: str, database: str = "postgres") -> list[list[str | None]]:
        async with self._admin(database) as admin:
            return await admin.query(sql)

    async def _create_database(self, name: str, owner: str | None) -> None:
        sql = f"CREATE DATABASE {quote_ident(name)} TEMPLATE template1"
        if owner:
            await self._ensure_role(owner)
            sql += f" OWNER {quote_ident(owner)}"
        await self._admin_query(sql)

    async def _ensure_role(self, user: str) -> None:
        """Redshift users are created by the cluster admin; here any user name just works."""
        if user in self._roles:
            return
        async with self._role_lock:
            if user in self._roles:
                return
            async with self._admin() as admin:
                if not await admin.execute("SELECT 1 FROM pg_roles WHERE rolname = $1", [user]):
                    try:
                        await admin.query(f"CREATE ROLE {quote_ident(user)} LOGIN SUPERUSER")
                    except PgError as exc:
                        if exc.sqlstate != "42710":  # created concurrently
                            raise
            self._roles.add(user)

    # ------------------------------------------------------------------ connections

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._clients.add(writer)
        backend: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                code, body = await read_startup(reader)
                if code in (SSL_REQUEST, GSSENC_REQUEST):
                    writer.write(b"N")  # no TLS: the driver must be told ssl=False
                    await writer.drain()
                    continue
                if code == CANCEL_REQUEST:
                    await forward_cancel(self.pg.host, self.pg.port, body)
                    return
                if code != PROTOCOL_V3:
                    raise ProtocolError(f"unsupported protocol {code}")
                break
            kept, dropped = filter_startup_params(parse_startup_params(body), self._known_settings)
            log.debug("redshift-emulator: dropped start-up parameters %s", sorted(dropped))
            user = kept.get("user", "")
            database = kept.get("database") or user
            try:
                if not user:
                    raise PgError({"C": "28000", "M": "no user name specified in startup packet"})
                if self._auto_create_roles:
                    await self._ensure_role(user)
                backend = await open_stream(self.pg.host, self.pg.port)
            except (OSError, PgError) as exc:
                code_ = exc.sqlstate if isinstance(exc, PgError) else "08006"
                text = (
                    exc.message
                    if isinstance(exc, PgError)
                    else f"the warehouse is not available: {exc}"
                )
                writer.write(error_response(text, sqlstate=code_, severity="FATAL"))
                await writer.drain()
                return
            backend[1].write(startup_packet(kept))
            session = Session(self, (reader, writer), backend, user, database)
            self._sessions.add(session)
            try:
                await session.run()
            finally:
                self._sessions.discard(session)
        except (asyncio.IncompleteReadError, ConnectionError, ProtocolError):
            pass
        except Exception:
            log.exception("redshift-emulator: connection handler failed")
        finally:
            self._clients.discard(writer)
            self._tasks.discard(task)
            for w in (writer, backend[1] if backend else None):
                if w is not None and w.transport is not None and not w.transport.is_closing():
                    w.close()
