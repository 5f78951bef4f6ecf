"""Redshift emulator for tests: `redshift-connector` -> asyncio wire proxy -> PostgreSQL + S3.

See `emulator.py` (API), `proxy.py` (protocol handling), `rewrite.py` (SQL dialect),
`s3copy.py` (COPY from S3), `catalog.py` (system tables), `postgres.py` (server),
`fixtures.py` (pytest fixtures).
"""

from .emulator import PostgresTarget, RedshiftEmulator
from .postgres import EmbeddedPostgres
from .rewrite import rewrite_sql

__all__ = ["EmbeddedPostgres", "PostgresTarget", "RedshiftEmulator", "rewrite_sql"]
