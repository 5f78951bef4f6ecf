"""Shared fixtures: real components started by the tests themselves (moto S3 over HTTP, the
ingest server on loopback), plus helpers to read the lake back."""

from __future__ import annotations

import gzip
import os
import socket
import uuid
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest

from ingest.config import IngestSettings

pytest_plugins = ["tests.support.redshift_emulator.fixtures"]

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint(moto_s3: str) -> str:
    """moto's S3 in server mode, spoken to over real HTTP (the same server the Redshift
    emulator reads COPY sources from)."""
    return moto_s3


@pytest.fixture
def s3_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A fresh bucket, and the AWS_* environment pointing at moto (as a user would set it)."""
    env = dict(AWS_ENV, AWS_ENDPOINT_URL_S3=moto_endpoint, AWS_ENDPOINT_URL=moto_endpoint)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    s3_client(moto_endpoint).create_bucket(Bucket=bucket)
    env["BUCKET"] = bucket
    return env


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


def make_settings(tmp_path: Path, **overrides: Any) -> IngestSettings:
    """Settings for a test server: everything under tmp_path, fast rotation, no env leakage."""
    values: dict[str, Any] = {
        "lake_url": str(tmp_path / "lake"),
        "spool_dir": tmp_path / "spool",
        "http_addr": "127.0.0.1:0",
        "object_max_age_s": 0.2,
        "shutdown_timeout_s": 10,
        "upload_backoff_max_s": 0.5,
    }
    values.update(overrides)
    return IngestSettings(**values)


@pytest.fixture
def settings(tmp_path: Path) -> IngestSettings:
    return make_settings(tmp_path)


def read_lake_local(root: Path, stream: str = "events") -> list[dict[str, Any]]:
    """Every line of every gzip object under `root/stream`, in key order."""
    rows: list[dict[str, Any]] = []
    for path in sorted((root / stream).rglob("*.json.gz")):
        rows.extend(orjson.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines())
    return rows


def read_lake_s3(endpoint: str, bucket: str, prefix: str = "events/") -> list[dict[str, Any]]:
    client = s3_client(endpoint)
    rows: list[dict[str, Any]] = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            rows.extend(orjson.loads(line) for line in gzip.decompress(body).splitlines())
    return rows


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback only: never let a proxy variable from the environment route test traffic."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for var in list(os.environ):
        if var.startswith("LOGSHIP_"):
            monkeypatch.delenv(var)
