"""Records and request bodies shaped exactly like the senders make them."""

from __future__ import annotations

import gzip
import uuid
import zlib
from typing import Any

import cramjam
import orjson
import zstandard

TS = "2026-11-23T08:30:00.123456789Z"  # Vector's RFC 3339 with nanoseconds


def app_event(name: str, **props: Any) -> dict[str, Any]:
    """What an app's `logger.event(name, props)` writes as its JSON log line."""
    return {"event": name, "event_id": props.pop("event_id", None) or uuid.uuid4().hex, **props}


def pickup(delivery_id: str = "D-99", robot_id: str = "R-123", **extra: Any) -> dict[str, Any]:
    return app_event(
        "delivery.pickup_completed", delivery_id=delivery_id, robot_id=robot_id, **extra
    )


def vector_record(body: dict[str, Any] | str, **envelope: Any) -> dict[str, Any]:
    """A `kubernetes_logs` event as Vector's http sink serialises it (json codec)."""
    message = body if isinstance(body, str) else orjson.dumps(body).decode()
    rec: dict[str, Any] = {
        "file": "/var/log/pods/dispatch_dispatch-7d9f_1/dispatch/0.log",
        "kubernetes": {
            "container_name": "dispatch",
            "namespace_labels": {"name": "prod"},
            "pod_labels": {"app": "dispatch", "pod-template-hash": "7d9f"},
            "pod_name": "dispatch-7d9f-abcde",
            "pod_namespace": "prod",
            "pod_node_name": "node-1",
        },
        "message": message,
        "source_type": "kubernetes_logs",
        "stream": "stdout",
        "timestamp": TS,
    }
    rec.update(envelope)
    return rec


def noise_record(i: int = 0) -> dict[str, Any]:
    return vector_record(f"GET /api/v1/robots/{i} 200 12ms user-agent=curl/8")


def datadog_record(body: dict[str, Any] | str, **envelope: Any) -> dict[str, Any]:
    """A log as the Datadog Agent / Vector datadog_logs sink sends it."""
    message = body if isinstance(body, str) else orjson.dumps(body).decode()
    rec: dict[str, Any] = {
        "message": message,
        "status": "info",
        "timestamp": 1795422600123,
        "hostname": "robot-gw-1",
        "service": "fleet",
        "ddsource": "python",
        "ddtags": "env:prod,version:1.2.3",
    }
    rec.update(envelope)
    return rec


def encode(data: bytes, encoding: str) -> bytes:
    if encoding in ("", "identity"):
        return data
    if encoding in ("gzip", "x-gzip"):
        return gzip.compress(data)
    if encoding == "deflate":
        return zlib.compress(data)
    if encoding == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    if encoding == "snappy":
        return bytes(cramjam.snappy.compress_raw(data))
    raise ValueError(encoding)


def json_array(records: list[Any]) -> bytes:
    return orjson.dumps(records)


def ndjson(records: list[Any]) -> bytes:
    """Vector's newline_delimited framing: no trailing newline."""
    return b"\n".join(orjson.dumps(r) for r in records)


def plain(records: Any) -> list[Any]:
    """Parsed records as plain Python values (JSON arrays are parsed lazily by simdjson)."""
    out = []
    for r in records:
        if hasattr(r, "as_dict"):
            r = r.as_dict()
        elif hasattr(r, "as_list"):
            r = r.as_list()
        out.append(r)
    return out
