"""Small helpers to put lake-shaped objects (gzip NDJSON + Redshift manifests) into S3.

Why here: every COPY test needs the same three lines of boto3 + gzip + manifest JSON, and the
manifest shape (`entries[].url/mandatory/meta.content_length`) should be written one way.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Sequence
from typing import Any

import boto3


def s3_client(endpoint_url: str, region: str = "us-east-1") -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name=region,
    )


def ndjson_gz(rows: Iterable[dict[str, Any]]) -> bytes:
    return gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in rows))


def put_object(s3: Any, url: str, body: bytes) -> int:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return len(body)


def put_manifest(
    s3: Any,
    url: str,
    entries: Sequence[str | tuple[str, bool]],
    sizes: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Write a Redshift COPY manifest; entries are URLs (mandatory) or (url, mandatory)."""
    listed = []
    for entry in entries:
        entry_url, mandatory = (entry, True) if isinstance(entry, str) else entry
        item: dict[str, Any] = {"url": entry_url, "mandatory": mandatory}
        if sizes and entry_url in sizes:
            item["meta"] = {"content_length": sizes[entry_url]}
        listed.append(item)
    manifest = {"entries": listed}
    put_object(s3, url, json.dumps(manifest).encode())
    return manifest
