"""pytest fixtures: PostgreSQL + moto S3 + the Redshift emulator, all started by the tests.

Use from a test module or conftest with
`pytest_plugins = ["tests.support.redshift_emulator.fixtures"]`.

Servers are session-scoped (PostgreSQL initdb is the slow part, ~1-2 s); each test gets a fresh
database from `redshift_db`, so tests never see each other's tables. `redshift_db` also clears
the emulator's statement log, so `redshift_emulator.statements` is per-test (tests in one
process run sequentially).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from .emulator import RedshiftEmulator
from .postgres import EmbeddedPostgres

DEFAULT_USER = "awsuser"
DEFAULT_PASSWORD = "emulator"  # trust auth: any password is accepted


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """moto's S3 over real HTTP on a free loopback port; yields the endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redshift_emulator(
    postgres_server: EmbeddedPostgres, moto_s3: str
) -> Iterator[RedshiftEmulator]:
    emulator = RedshiftEmulator(postgres_server, s3_endpoint_url=moto_s3)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.close()


@pytest.fixture
def redshift_db(redshift_emulator: RedshiftEmulator) -> Iterator[dict[str, Any]]:
    """connect kwargs for a brand-new database (dropped afterwards)."""
    name = f"dev_{uuid.uuid4().hex[:12]}"
    redshift_emulator.start()  # in case a previous test left it stopped
    redshift_emulator.create_database(name, owner=DEFAULT_USER)
    redshift_emulator.clear_statements()
    try:
        yield redshift_emulator.connect_kwargs(name, DEFAULT_USER, DEFAULT_PASSWORD)
    finally:
        redshift_emulator.start()
        redshift_emulator.drop_database(name)
