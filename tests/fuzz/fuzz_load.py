"""Coverage-guided fuzzing of the loader's side: arbitrary lake objects, mixed with good ones in
one batch, through the real :class:`loader.cycle.Loader` and DuckDB (in memory).

    python tests/fuzz/fuzz_load.py -atheris_runs=2000
    mkdir -p /tmp/corpus-load
    python tests/fuzz/fuzz_load.py -max_total_time=600 /tmp/corpus-load tests/fuzz/seeds/load
    python tests/fuzz/fuzz_load.py tests/fuzz/regressions/load/*            # replay, exit 0

An input is `[selector][payload...]`; selector % 4 picks how the payload becomes lake objects:

0. the payload is the object, as it is (gzip or not);
1. the payload, gzip-compressed, is the object;
2. one field of a good event line (selector // 4 % 8 picks it) has the payload as its raw
   JSON value text; the line is gzip-compressed;
3. two objects: the first half of the payload gzip-compressed, the second half as it is.

The fuzzed object(s) go among three good objects, at the position selector // 32 % 4, and the
loader cycles until it has nothing left to do. The properties checked:

* a cycle never raises an error that is not transient (and none occurs here: the lake is a
  local directory and the warehouse in memory);
* every good object loads, with all its events;
* every object ends either loaded or quarantined (with a reason note) — none is left held or
  pending: whatever an object holds, the loader can decide;
* the events counted as loaded are the events the warehouse gained.
"""

from __future__ import annotations

import asyncio
import atexit
import gzip
import itertools
import logging
import os
import shutil
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _common  # first: puts the repository on sys.path
import atheris

with atheris.instrument_imports(include=["loader"]):
    from loader.config import LoaderSettings
    from loader.cycle import Loader
    from loader.errors import classify
    from loader.server import build_loader

import orjson

from ingest.lake import LocalLake

logging.disable(logging.CRITICAL)  # every quarantine logs an ERROR: keep libFuzzer's output


def _workdir() -> Path:
    """A directory for this process's lake, on tmpfs when there is one (the lake's fsyncs
    would otherwise set the pace). Removed at exit — but a replay of inputs ends the process
    without running exit handlers, so each run also removes the directories of runs gone."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    for old in base.glob("logship-fuzz-load-*") if Path("/proc/self").exists() else ():
        pid = old.name.rsplit("-", 1)[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(old, ignore_errors=True)
    path = base / f"logship-fuzz-load-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    atexit.register(shutil.rmtree, path, True)
    return path


ROOT = _workdir()
LAKE = ROOT / "lake"
FIELDS = ["event_id", "event_name", "event_version", "occurred_at", "received_at", "service",
          "robot_id", "properties"]  # fmt: skip
GOODS = 3
SEQUENCE = itertools.count()
_LOADER: Loader | None = None


def _loader() -> Loader:
    """One loader (and one in-memory database) for the whole run: a fresh schema per input
    would cost most of the time."""
    global _LOADER
    if _LOADER is None:
        settings = LoaderSettings(
            lake_url=str(LAKE), warehouse_url="duckdb://", loader_http_addr="127.0.0.1:0"
        )
        _LOADER = build_loader(settings, LocalLake(LAKE))
        _LOADER.warehouse.ensure_schema()
    return _LOADER


def _event(delivery_id: str) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "event_id": uuid.uuid4().hex,
        "event_name": "delivery.pickup_completed",
        "event_version": 1,
        "occurred_at": (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "received_at": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "service": "dispatch",
        "host": "node-1",
        "delivery_id": delivery_id,
        "robot_id": "R-1",
        "trip_id": None,
        "merchant_id": None,
        "pilot_id": None,
        "properties": {"delivery_id": delivery_id},
    }


def _with_raw_field(field: str, raw: bytes) -> bytes:
    """A good event line whose `field` has `raw` as its JSON value text."""
    row = _event("F")
    row[field] = "\x00PLACEHOLDER\x00"
    return orjson.dumps(row).replace(b'"\\u0000PLACEHOLDER\\u0000"', raw) + b"\n"


def fuzz_objects(data: bytes) -> list[bytes]:
    selector, payload = data[0], data[1:]
    mode = selector % 4
    if mode == 0:
        return [payload]
    if mode == 1:
        return [gzip.compress(payload, compresslevel=1)]
    if mode == 2:
        field = FIELDS[selector // 4 % len(FIELDS)]
        return [gzip.compress(_with_raw_field(field, payload), compresslevel=1)]
    half = len(payload) // 2
    return [gzip.compress(payload[:half], compresslevel=1), payload[half:]]


def _key(n: int) -> str:
    now = datetime.now(UTC)
    return f"events/dt={now:%Y-%m-%d}/hour={now:%H}/w{n:09d}-fuzz-000000000001.json.gz"


async def _drain(loader: Loader) -> tuple[int, int]:
    """Cycle until nothing is left; (events loaded, cycles that raised)."""
    loaded = raised = 0
    for _ in range(20):
        try:
            result = await loader.cycle()
        except Exception as exc:
            assert classify(exc).transient, f"a cycle raised a non-transient error: {exc!r}"
            raised += 1
            assert raised <= 3, f"transient errors keep coming: {exc!r}"
            continue
        loaded += result.loaded_events
        if not result.more:
            assert result.held == 0, f"objects left held: {loader._held}"
            break
    else:
        raise AssertionError("the loader never caught up")
    return loaded, raised


def test_one_input(data: bytes) -> None:
    if not data:
        return
    loader = _loader()
    for sub in ("events", "quarantine", "manifests"):
        shutil.rmtree(LAKE / sub, ignore_errors=True)
    fuzzed = fuzz_objects(data)
    good_rows = [_event(f"G-{i}") for i in range(GOODS)]
    objects: list[tuple[bytes, dict[str, object] | None]] = [
        (orjson.dumps(r) + b"\n", r) for r in good_rows
    ]
    at = data[0] // 32 % (GOODS + 1)
    objects[at:at] = [(f, None) for f in fuzzed]
    keys = []
    for body, row in objects:
        key = _key(next(SEQUENCE))
        path = LAKE / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(body, compresslevel=1) if row is not None else body)
        keys.append(key)
    wh = loader.warehouse
    (before,) = wh.query("SELECT COUNT(*) FROM logship.events")[0]
    loaded, _ = asyncio.run(_drain(loader))
    (after,) = wh.query("SELECT COUNT(*) FROM logship.events")[0]
    assert after - before == loaded, (before, after, loaded)
    marks = ", ".join("?" * len(keys))
    status = dict(
        wh.query(
            f"SELECT object_key, status FROM logship.load_ledger WHERE object_key IN ({marks})",
            keys,
        )
    )
    for key, (_, row) in zip(keys, objects, strict=True):
        if row is not None:
            assert status.get(key) == "loaded", (key, status.get(key))
            ids = wh.query(
                "SELECT COUNT(*) FROM logship.events WHERE event_id = ?", [row["event_id"]]
            )
            assert ids == [(1,)], (row["event_id"], ids)
        else:
            assert status.get(key) in ("loaded", "quarantined"), (key, status.get(key))
            if status[key] == "quarantined":
                assert (LAKE / "quarantine" / f"{key}.reason.json").exists()
                assert not (LAKE / key).exists()


def seeds() -> dict[str, bytes]:
    """Starting inputs: every poison and tolerated object of the loader's tests (as objects,
    mode 0), and each field with an odd raw value (mode 2)."""
    sys.path.insert(0, str(_common.ROOT))
    from tests.loader.poison import POISONS, TOLERATED

    out = {f"poison-{name}": bytes([0]) + make() for name, make in POISONS.items()}
    out |= {f"tolerated-{name}": bytes([32]) + make()[0] for name, make in TOLERATED.items()
            if name != "huge-line"}  # fmt: skip
    raws = [b"null", b'"99999-01-01T00:00:00Z"', b'"not a time"', b"[1]", b'{"a":', b"1e400"]
    for i, field in enumerate(FIELDS):
        out[f"field-{field}"] = bytes([2 + 4 * i + 64]) + raws[i % len(raws)]
    out["two-objects"] = bytes([3 + 96]) + b'{"event_id":null}\n' * 4
    return out


if __name__ == "__main__":
    _common.main(test_one_input, seeds)
