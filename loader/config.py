"""Typed configuration of the loader (`LOGSHIP_*`), one docstring per field.

The README's configuration table is generated from these docstrings (`logship config`).
"""

from __future__ import annotations

import zoneinfo
from typing import Any

from pydantic import Field, SecretStr, field_validator

from ingest.config import CommonSettings, parse_addr
from loader.analytics import USABLE_STATES, AnalyticsConfig


class LoaderSettings(CommonSettings):
    """Settings of `logship load` (and of the loader half of `logship dev`)."""

    warehouse_url: SecretStr = SecretStr("duckdb:///./var/warehouse.duckdb")
    """`redshift://user:password@host:5439/db` (query options: `iam=true&cluster_identifier=…
    &db_user=…&region=…`, or `iam=true&serverless_work_group=…`) or `duckdb:///path/file.duckdb`.
    Never logged (shown as `***`)."""

    warehouse_schema: str = "logship"
    """Schema holding `events`, the load ledger and the registry table."""

    redshift_iam_role: str = ""
    """IAM role ARN used by COPY (`IAM_ROLE '…'`); Redshift needs it, DuckDB ignores it."""

    loader_http_addr: str = "127.0.0.1:8081"
    """Address of the loader's /healthz and /metrics (port 0 picks a free port)."""

    load_interval_s: float = Field(default=10.0, gt=0)
    """Pause between load cycles when the lake is caught up."""

    load_max_objects: int = Field(default=500, ge=1)
    """Most lake objects in one COPY (one manifest)."""

    load_max_bytes: int = Field(default=1024 * 1024 * 1024, ge=1)
    """Most compressed bytes in one COPY."""

    statement_timeout_s: float = Field(default=900.0, gt=0)
    """Warehouse statement timeout, so a hung COPY cannot hang the loader."""

    dedupe_window_s: float = Field(default=7 * 86400.0, ge=0)
    """An event is a duplicate if its `event_id` is already in `events` with an `occurred_at`
    within this distance of the batch's range; bounding it keeps the check cheap on a big table."""

    discovery_lookback_s: float = Field(default=3 * 86400.0, gt=0)
    """Partitions listed each cycle reach back this far (an object lands in the hour partition it
    was *received* in, so this must cover the longest S3 outage ingest may ride out). A full
    listing runs at start and every `LOGSHIP_FULL_SCAN_INTERVAL_S`."""

    full_scan_interval_s: float = Field(default=6 * 3600.0, gt=0)
    """How often the loader lists the whole `events/` prefix, to catch anything older."""

    duckdb_memory_limit: str = "300MB"
    """DuckDB's `memory_limit` for the loader (larger loads spill to disk instead of growing
    the process); DuckDB only."""

    usable_states: str = ",".join(USABLE_STATES)
    """Comma-separated `robot.state_changed` states that count as usable supply."""

    timezone: str = "UTC"
    """Time zone of the days in supply hours and the funnel (IANA name, e.g. America/Los_Angeles)."""

    session_margin_s: int = Field(default=300, ge=0)
    """A delivery session includes its robots' events this long before the first and after the
    last event of the delivery."""

    retry_backoff_max_s: float = Field(default=60.0, gt=0)
    """Cap of the jittered exponential backoff after a transient warehouse or lake error."""

    @field_validator("loader_http_addr")
    @classmethod
    def _addr(cls, v: str) -> str:
        parse_addr(v)
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError("not a known IANA time zone") from None
        return v

    @field_validator("usable_states")
    @classmethod
    def _states(cls, v: str) -> str:
        states = [x.strip() for x in v.split(",") if x.strip()]
        if not states or not all(x.isidentifier() and x.islower() for x in states):
            raise ValueError("comma-separated lowercase state names")
        return ",".join(states)

    def analytics(self) -> AnalyticsConfig:
        """The analyses' settings (`LOGSHIP_USABLE_STATES`, `LOGSHIP_TIMEZONE`, the margin)."""
        return AnalyticsConfig(
            usable_states=tuple(self.usable_states.split(",")),
            timezone=self.timezone,
            session_margin_s=self.session_margin_s,
        )

    def warehouse_options(self) -> dict[str, Any]:
        """The keyword arguments of `open_warehouse` these settings give, besides the URL,
        the entities and the views (the loader, the reports and the UI open it alike)."""
        return {
            "schema": self.warehouse_schema,
            "dedupe_window_s": self.dedupe_window_s,
            "iam_role": self.redshift_iam_role,
            "statement_timeout_s": self.statement_timeout_s,
            "duckdb_memory_limit": self.duckdb_memory_limit,
        }

    @field_validator("warehouse_schema")
    @classmethod
    def _schema(cls, v: str) -> str:
        if (
            not v
            or not (v[0].isalpha() or v[0] == "_")
            or not all(c.isalnum() or c == "_" for c in v)
        ):
            raise ValueError("must be a plain identifier (letters, digits, _)")
        return v.lower()

    @field_validator("warehouse_url")
    @classmethod
    def _url(cls, v: SecretStr) -> SecretStr:
        raw = v.get_secret_value()
        if not raw.startswith(("redshift://", "duckdb://")):
            raise ValueError("must start with redshift:// or duckdb://")
        return v
