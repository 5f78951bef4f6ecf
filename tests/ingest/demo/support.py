"""What the demo tests share: the day they look at, and reading its records back."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import orjson

from ingest.extract import Extracted, Extractor, Limits
from ingest.records import ParsedBody
from ingest.registry import PiiHasher, load_registry

DAY = date(2026, 11, 23)
RECEIVED = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
REGISTRY = load_registry()
ENVELOPE = {"event", "event_id", "timestamp"}


def extract(records: list[dict[str, Any]]) -> Extracted:
    ex = Extractor(REGISTRY, Limits(1 << 20, 64), PiiHasher(b"k"))
    return ex.extract(ParsedBody(list(records)), RECEIVED)


def bodies(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The registry events of the records, in record order."""
    out = []
    for rec in records:
        msg = rec["message"]
        if msg.startswith("{"):
            body = orjson.loads(msg)
            if body.get("event") in REGISTRY.events:
                out.append(body)
    return out


def ts(body: dict[str, Any]) -> float:
    return datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00")).timestamp()
