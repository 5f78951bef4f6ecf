"""Typed configuration of the web UI (`logship ui`), one docstring per field.

The UI reads the warehouse the loader writes, so it takes the loader's settings
(`LOGSHIP_WAREHOUSE_URL`, `LOGSHIP_WAREHOUSE_SCHEMA`, `LOGSHIP_TIMEZONE`, …) and adds its own.
The README's configuration table is generated from these docstrings (`logship config`).
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from ingest.config import parse_addr
from loader.config import LoaderSettings


class UiSettings(LoaderSettings):
    """Settings of `logship ui` (and of the UI half of `logship dev`)."""

    ui_http_addr: str = "127.0.0.1:8082"
    """Address the web UI listens on, `host:port` (port 0 picks a free port). Loopback by
    default: put an authenticating proxy in front before binding anything wider."""

    ui_tokens: SecretStr = SecretStr("")
    """Comma-separated tokens; when set, every page and API call needs `Authorization: Bearer
    <token>` or HTTP Basic with the token as password (any user name). `/healthz`, `/metrics`
    and `/static/` stay open. Empty: no authentication (for loopback or behind an auth proxy)."""

    ui_flag_window_min: int = Field(default=2, ge=0, le=24 * 60)
    """The delivery list flags a robot error within this many minutes of the robot's arrival at
    pickup or dropoff (a page may ask for another window with `?window_min=`)."""

    ui_statement_timeout_s: float = Field(default=30.0, gt=0)
    """Longest a page's queries may run (Redshift's statement timeout; on DuckDB the visit is
    interrupted): a page answers, or fails with a 503, in bounded time — and a loader waiting
    for the DuckDB file waits at most this long."""

    ui_max_download_events: int = Field(default=200_000, ge=1)
    """Most events a session download (JSON, CSV, `/api/deliveries/{id}`) holds: a download is
    built in memory between two warehouse visits, so a delivery with more answers 422 and
    names `logship session ID --json` and the `delivery_sessions` view instead."""

    ui_busy_retry_s: float = Field(default=2.0, ge=0)
    """How long a request retries getting into a DuckDB file the loader is waiting for or
    writing to before it answers 503 "the warehouse is busy"."""

    @field_validator("ui_http_addr")
    @classmethod
    def _ui_addr(cls, v: str) -> str:
        parse_addr(v)
        return v

    def ui_token_list(self) -> list[str]:
        """The configured tokens, blanks removed."""
        return [t.strip() for t in self.ui_tokens.get_secret_value().split(",") if t.strip()]
