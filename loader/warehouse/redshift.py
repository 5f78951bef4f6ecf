"""Amazon Redshift through the blocking `redshift-connector` driver: the stage is filled by one
manifest COPY from S3, authorised by an IAM role."""

from __future__ import annotations

import urllib.parse
from typing import Any

import redshift_connector

from ingest.lake import ObjectInfo
from loader.warehouse import sql
from loader.warehouse.base import LocalFiles, Warehouse


class RedshiftWarehouse(Warehouse):
    """Amazon Redshift through the blocking `redshift-connector` driver."""

    dialect = sql.REDSHIFT

    def __init__(self, url: str, iam_role: str, statement_timeout_s: float, **kw: Any):
        super().__init__(**kw)
        self.connect_kwargs = redshift_connect_kwargs(url)
        self.iam_role = iam_role
        self.statement_timeout_ms = int(statement_timeout_s * 1000)

    def connect(self) -> None:
        self.conn = redshift_connector.connect(**self.connect_kwargs)
        self.conn.autocommit = False
        cur = self.conn.cursor()
        cur.execute(sql.statement_timeout(self.statement_timeout_ms))
        self.conn.commit()

    def _check_config(self) -> None:
        if not self.iam_role:
            raise ValueError("LOGSHIP_REDSHIFT_IAM_ROLE is required to COPY into Redshift")

    def _stage(
        self, cur: Any, batch: list[ObjectInfo], manifest_url: str, local_files: LocalFiles
    ) -> None:
        self._run(cur, sql.drop_stage())
        self._run(cur, sql.create_stage(self.dialect, self.schema))
        self._run(cur, sql.copy_manifest(manifest_url, self.iam_role))

    def load_error_files(self, urls: list[str]) -> list[tuple[str, str]]:
        if not urls:
            return []
        cur = self._cursor()
        try:
            rows = self._run(cur, sql.load_errors(self.dialect, len(urls)), urls).fetchall()
            self._commit()
        except Exception:
            self._rollback()
            return []
        out: dict[str, str] = {}
        for file_name, line, column, message in rows:
            url = str(file_name).strip()
            out.setdefault(
                url, f"line {line}, column {str(column).strip()}: {str(message).strip()}"
            )
        return list(out.items())


def redshift_connect_kwargs(url: str) -> dict[str, Any]:
    """`redshift://user:pw@host:port/db?iam=true&…` → `redshift_connector.connect` kwargs.

    Query options map to the driver's own: `ssl`, `iam`, `cluster_identifier`, `db_user`,
    `region`, `serverless_work_group`, `serverless_acct_id`, `profile`, `timeout`.
    """
    u = urllib.parse.urlsplit(url)
    kw: dict[str, Any] = {
        "host": u.hostname,
        "port": u.port or 5439,
        "database": (u.path or "/dev").lstrip("/") or "dev",
    }
    if u.username:
        kw["user"] = urllib.parse.unquote(u.username)
    if u.password:
        kw["password"] = urllib.parse.unquote(u.password)
    for key, value in urllib.parse.parse_qsl(u.query):
        if value.lower() in ("true", "false"):
            kw[key] = value.lower() == "true"
        elif value.isdigit():
            kw[key] = int(value)
        else:
            kw[key] = value
    return kw
