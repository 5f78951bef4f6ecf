"""Typed configuration, read once at start from ``LOGSHIP_*`` environment variables.

Every field carries its unit in its name and a docstring; the README's configuration table is
generated from the same docstrings (``logship config --markdown``), so the two cannot drift.
A bad value fails start with a message naming the variable (:func:`load_settings`).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024


class ConfigError(Exception):
    """A configuration value is invalid; the message names the variable."""


class CommonSettings(BaseSettings):
    """Settings shared by the ingest server and the loader."""

    model_config = SettingsConfigDict(
        env_prefix="LOGSHIP_", extra="ignore", frozen=True, use_attribute_docstrings=True
    )

    lake_url: str = "./var/lake"
    """Where lake objects live: `s3://bucket/prefix` (endpoint and credentials from the standard
    `AWS_*` variables, e.g. `AWS_ENDPOINT_URL_S3`) or a local directory."""

    registry_path: Path | None = None
    """Event registry YAML; empty means the registry bundled with the package."""

    log_level: str = "INFO"
    """Log level of the JSON logs on stderr (DEBUG, INFO, WARNING, ERROR)."""

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        v = v.upper()
        if v not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return v

    @field_validator("lake_url")
    @classmethod
    def _lake(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        if v.startswith("s3://") and len(v) <= len("s3://"):
            raise ValueError("s3:// URL needs a bucket")
        return v


class IngestSettings(CommonSettings):
    """Settings of `logship ingest`."""

    http_addr: str = "127.0.0.1:8080"
    """Address the HTTP sink listens on, `host:port` (port 0 picks a free port)."""

    auth_tokens: SecretStr = SecretStr("")
    """Comma-separated tokens accepted as `Authorization: Bearer`, `DD-API-KEY` or `?dd_api_key=`.
    Empty accepts every request (a warning is logged at start)."""

    spool_dir: Path = Path("./var/spool")
    """Local directory of the durable spool; acknowledged events live here until uploaded.
    Each worker process uses its own `worker-N` subdirectory."""

    spool_max_bytes: int = Field(default=1024 * MiB, gt=0)
    """Cap of the spool on disk; at the cap requests get 503 + Retry-After; from 90% of it /readyz is 503."""

    object_max_bytes: int = Field(default=64 * MiB, gt=0)
    """A lake object rotates at this many uncompressed bytes."""

    object_max_age_s: float = Field(default=60.0, gt=0)
    """A lake object rotates at this age (seconds since its first event was spooled)."""

    max_body_bytes: int = Field(default=32 * MiB, gt=0)
    """Largest request body as sent (compressed); above it, 413."""

    max_decompressed_bytes: int = Field(default=64 * MiB, gt=0)
    """Largest request body after decompression; decompression stops here (bomb guard), 413."""

    max_record_bytes: int = Field(default=1 * MiB, gt=0)
    """Largest single record; a larger one is rejected alone (dead-lettered), not the batch."""

    max_json_depth: int = Field(default=64, gt=0)
    """Deepest JSON nesting accepted inside an event; deeper events are rejected alone."""

    max_inflight_bytes: int = Field(default=256 * MiB, gt=0)
    """Per worker: bytes held by the requests being worked on — bodies as sent and
    decompressed (reserved as they arrive and as they inflate) and the events and dead letters
    they make until spooled (counted, never refused). A request whose bytes would go past it
    gets 503 + Retry-After; one larger than the whole budget is still served when nothing else
    is in flight. Pod memory ≈ base + 2 × this."""

    body_read_timeout_s: float = Field(default=60.0, gt=0)
    """Longest time a client may take to send a request's body; a slower or stalled one gets
    408 and its connection is closed."""

    max_connections: int = Field(default=1000, gt=0)
    """Most client connections open at once per worker process (health checks and scrapes
    count too; the pod's total is workers × this); beyond it new connections are closed at
    once, so stalled clients cannot exhaust the file descriptors."""

    shutdown_timeout_s: float = Field(default=30.0, gt=0)
    """On SIGTERM: how long to drain in-flight requests and flush the spool to the lake."""

    keepalive_timeout_s: float = Field(default=120.0, gt=0)
    """Idle keep-alive timeout; above Vector's 90 s pool idle time so it never hits a closed
    connection. It also bounds how long a request's headers may take to arrive."""

    workers: int = Field(default=1, ge=1, le=64)
    """Number of server processes sharing the port (SO_REUSEPORT), each with its own spool."""

    writer_id: str = ""
    """Name of this writer in lake object keys; empty means the host name (the pod name in the
    StatefulSet). A random spool id is appended so a fresh spool never reuses a key."""

    pii_hash_key: SecretStr = SecretStr("")
    """Key of the HMAC-SHA256 applied to `pii: hash` fields; empty uses plain SHA-256 (a warning
    is logged: short values such as phone numbers can then be brute-forced)."""

    upload_backoff_max_s: float = Field(default=30.0, gt=0)
    """Cap of the jittered exponential backoff between failed uploads."""

    @field_validator("http_addr")
    @classmethod
    def _addr(cls, v: str) -> str:
        parse_addr(v)
        return v

    @field_validator("writer_id")
    @classmethod
    def _writer(cls, v: str) -> str:
        if v and not all(c.isalnum() or c in "-_" for c in v):
            raise ValueError("only letters, digits, '-' and '_' (it becomes part of object keys)")
        return v

    def tokens(self) -> list[str]:
        """The configured tokens, blanks removed."""
        raw = self.auth_tokens.get_secret_value()
        return [t.strip() for t in raw.split(",") if t.strip()]

    def writer_name(self) -> str:
        """The writer name used in object keys (host name when unset), made key-safe."""
        name = self.writer_id or socket.gethostname()
        return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:63] or "writer"


def parse_addr(addr: str) -> tuple[str, int]:
    """Split `host:port`; raises ValueError naming the problem."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port, got {addr!r}")
    return host.strip("[]"), int(port)


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S], **overrides: object) -> S:
    """Read settings of `cls` from the environment; turn errors into one readable ConfigError."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        lines = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            var = f"{prefix}{field}".upper()
            value = os.environ.get(var)
            info = cls.model_fields.get(field)
            secret = info is not None and info.annotation is SecretStr
            shown = "" if value is None or secret else f" (={value!r})"  # secrets never echoed
            lines.append(f"{var}{shown}: {err['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(lines)) from None
