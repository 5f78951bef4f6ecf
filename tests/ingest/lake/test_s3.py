"""The S3 lake through moto's server over real HTTP: objects read back and compared; an S3
outage in the middle of the stream (acknowledge until the spool cap, then 503; nothing lost);
terminal errors (no such bucket) keep the data in the spool and are reported."""

from __future__ import annotations

import asyncio
import errno
import gzip
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from moto.server import ThreadedMotoServer

import ingest.lake.local
from ingest import metrics
from ingest.app import STATE, build_app
from ingest.lake import LocalLake
from tests.conftest import free_port, make_settings, read_lake_s3, s3_client
from tests.payloads import pickup, vector_record


async def test_objects_land_in_s3_partitioned_and_gzipped(
    aiohttp_client: Any, tmp_path: Path, s3_env: dict[str, str], moto_endpoint: str
) -> None:
    bucket = s3_env["BUCKET"]
    settings = make_settings(tmp_path, lake_url=f"s3://{bucket}/prod/logship")
    client: TestClient = await aiohttp_client(build_app(settings))
    sent = [pickup(delivery_id=f"D-{i}") for i in range(50)]
    bad = {"event": "delivery.pickup_completed", "robot_id": "R-1"}  # no delivery_id
    resp = await client.post("/v1/logs", json=[vector_record(e) for e in [*sent, bad]])
    assert (await resp.json()) == {"accepted": 50, "discarded": 0, "rejected": 1}
    assert await client.app[STATE].uploader.drain(10)

    keys = [o["Key"] for o in s3_client(moto_endpoint).list_objects_v2(Bucket=bucket)["Contents"]]
    assert all(k.startswith("prod/logship/") for k in keys)
    assert any(k.startswith("prod/logship/events/dt=") for k in keys)
    rows = read_lake_s3(moto_endpoint, bucket, "prod/logship/events/")
    assert sorted(r["event_id"] for r in rows) == sorted(e["event_id"] for e in sent)
    (dead,) = read_lake_s3(moto_endpoint, bucket, "prod/logship/rejected/")
    assert dead["reason"] == "validation"
    assert "delivery_id" in dead["detail"]
    assert orjson.loads(dead["record"]["message"]) == bad


@pytest.fixture
def own_moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A moto server this test may stop and restart on the same port (moto keeps its state
    in the process, so a restart is an outage, not data loss on the S3 side)."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": endpoint,
    }.items():
        monkeypatch.setenv(k, v)
    bucket = f"outage-{uuid.uuid4().hex[:8]}"
    s3_client(endpoint).create_bucket(Bucket=bucket)
    box = {"server": server, "port": port, "endpoint": endpoint, "bucket": bucket}
    yield box
    box["server"].stop()


async def test_s3_outage_acks_until_cap_then_503_and_recovers(
    aiohttp_client: Any, tmp_path: Path, own_moto: dict[str, Any]
) -> None:
    settings = make_settings(
        tmp_path,
        lake_url=f"s3://{own_moto['bucket']}",
        spool_max_bytes=40_000,
        upload_backoff_max_s=0.3,
    )
    client: TestClient = await aiohttp_client(build_app(settings))
    state = client.app[STATE]
    errors_before = metrics.upload_errors_total._value.get()

    own_moto["server"].stop()  # S3 goes away
    acked: list[str] = []
    refused = None
    for i in range(200):
        batch = [pickup(delivery_id=f"D-{i}-{j}") for j in range(5)]
        resp = await client.post("/v1/logs", json=[vector_record(e) for e in batch])
        if resp.status == 200:
            acked += [e["event_id"] for e in batch]
            continue
        refused = resp
        break
    assert refused is not None, "the spool cap was never reached"
    assert refused.status == 503
    assert int(refused.headers["Retry-After"]) > 0
    assert (await refused.json())["error"] == "spool_full"
    assert (await client.get("/readyz")).status == 503
    assert len(acked) >= 50
    # Let the uploader fail against the dead endpoint at least once.
    for _ in range(100):
        if metrics.upload_errors_total._value.get() > errors_before:
            break
        await asyncio.sleep(0.1)
    assert metrics.upload_errors_total._value.get() > errors_before

    # S3 comes back on the same port: everything acknowledged is uploaded, nothing lost.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=own_moto["port"], verbose=False)
    server.start()
    own_moto["server"] = server
    assert await state.uploader.drain(20)
    assert state.spool.size_bytes == 0
    assert (await client.get("/readyz")).status == 200
    rows = read_lake_s3(own_moto["endpoint"], own_moto["bucket"])
    assert sorted(r["event_id"] for r in rows) == sorted(acked)


async def test_missing_bucket_keeps_data_in_spool(
    aiohttp_client: Any, tmp_path: Path, s3_env: dict[str, str], moto_endpoint: str
) -> None:
    bucket = f"later-{uuid.uuid4().hex[:8]}"
    settings = make_settings(tmp_path, lake_url=f"s3://{bucket}")
    client: TestClient = await aiohttp_client(build_app(settings))
    state = client.app[STATE]
    ev = pickup(delivery_id="D-nobucket")
    assert (await client.post("/v1/logs", json=[vector_record(ev)])).status == 200
    assert not await state.uploader.drain(1.0)  # NoSuchBucket: terminal, nothing deleted
    assert "NoSuchBucket" in (state.uploader.last_error or "")
    assert state.spool.size_bytes > 0
    s3_client(moto_endpoint).create_bucket(Bucket=bucket)  # an operator fixes it
    assert await state.uploader.drain(10)
    (row,) = read_lake_s3(moto_endpoint, bucket)
    assert row["event_id"] == ev["event_id"]


async def test_reupload_after_crash_is_a_noop(
    tmp_path: Path, s3_env: dict[str, str], moto_endpoint: str
) -> None:
    """The same segment uploaded twice (crash between upload and delete) lands once."""
    from ingest.lake import S3Lake

    lake = S3Lake(f"s3://{s3_env['BUCKET']}")
    await lake.start()
    try:
        body = gzip.compress(b'{"a":1}\n', mtime=0)
        assert await lake.put_new("events/x.json.gz", body) is True
        assert await lake.put_new("events/x.json.gz", b"different") is False
        assert await lake.get("events/x.json.gz") == body
    finally:
        await lake.close()


@pytest.fixture(params=["local", "s3"])
async def any_lake(
    request: pytest.FixtureRequest, tmp_path: Path, moto_endpoint: str, monkeypatch: Any
) -> Any:
    """The same lake tests on a local directory and on S3 (moto over HTTP)."""
    from ingest.lake import LocalLake, S3Lake

    if request.param == "local":
        lake: Any = LocalLake(tmp_path / "lake")
    else:
        env = request.getfixturevalue("s3_env")
        lake = S3Lake(f"s3://{env['BUCKET']}/p")
    await lake.start()
    yield lake
    await lake.close()


async def test_put_if_absent_compares_what_is_there(any_lake: Any) -> None:
    body = gzip.compress(b'{"a":1}\n', mtime=0)
    assert await any_lake.put_new("events/k.json.gz", body) is True
    assert await any_lake.same_content("events/k.json.gz", body) is True
    same_size = bytes([body[0] ^ 1]) + body[1:]
    assert await any_lake.same_content("events/k.json.gz", same_size) is False
    assert await any_lake.same_content("events/k.json.gz", body + b"x") is False
    assert await any_lake.same_content("events/absent.json.gz", body) is False


async def _lake_rows(lake: Any) -> tuple[list[str], list[bytes]]:
    keys = [o.key async for o in lake.list("events/")]
    return keys, [gzip.decompress(await lake.get(k)) for k in keys]


async def test_a_taken_key_is_never_a_reason_to_delete(tmp_path: Path, any_lake: Any) -> None:
    """A segment found in a spool that did not write it — here a restored snapshot whose
    sequence was reused — meets its key taken by other bytes: it is uploaded under a
    content-derived key (the acknowledged events stay), never deleted as "already there". The
    same bytes under the key mean an earlier upload succeeded: deleted, no second object."""
    from ingest.lake.keys import content_key
    from ingest.spool import Spool
    from ingest.uploader import Uploader, object_key

    spool = Spool(tmp_path / "spool", max_bytes=10**9, object_max_bytes=10**6,
                  object_max_age_s=60)  # fmt: skip
    spool.open()
    up = Uploader(spool, any_lake, "w", backoff_max_s=0.05, poll_interval_s=0.01)
    await spool.append([("events", "2026-11-23T08", b'{"first":1}\n')])
    assert await up.pass_once(force_rotate=True)
    await spool.close()
    (key,), _ = await _lake_rows(any_lake)

    # The spool restored from an older copy: the same id and sequence, other events.
    (tmp_path / "spool" / "spool.json").write_bytes(
        b'{"spool_id": "%s", "next_seq": 0}' % spool.spool_id.encode()
    )
    spool = Spool(tmp_path / "spool", max_bytes=10**9, object_max_bytes=10**6,
                  object_max_age_s=60)  # fmt: skip
    spool.open()
    up = Uploader(spool, any_lake, "w", backoff_max_s=0.05, poll_interval_s=0.01)
    await spool.append([("events", "2026-11-23T08", b'{"second":1}\n')])
    (seg,) = [*spool._open.values()]
    assert object_key(seg, "w", spool.spool_id) == key  # the key is taken
    await spool.rotate(force=True)
    (seg,) = spool.ready()
    copy = seg.path.read_bytes()
    assert await up.pass_once()
    keys, bodies = await _lake_rows(any_lake)
    from isal import igzip

    assert content_key(key, igzip.compress(copy, compresslevel=2, mtime=0)) in keys
    assert sorted(bodies) == sorted([b'{"first":1}\n', b'{"second":1}\n'])
    assert spool.ready() == []
    await spool.close()

    # A crash between that upload and the delete: the same segment again, the same bytes
    # under its content key. Done: deleted, and nothing new in the lake.
    seg.path.write_bytes(copy)
    spool = Spool(tmp_path / "spool", max_bytes=10**9, object_max_bytes=10**6,
                  object_max_age_s=60)  # fmt: skip
    spool.open()
    up = Uploader(spool, any_lake, "w", backoff_max_s=0.05, poll_interval_s=0.01)
    assert await up.pass_once()
    assert spool.ready() == [] and not seg.path.exists()
    assert sorted((await _lake_rows(any_lake))[0]) == sorted(keys)
    await spool.close()


async def test_a_put_whose_directory_sync_failed_is_synced_before_it_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local lake links the object, then syncs its directory. If that sync fails (EMFILE),
    the upload is retried; the retry finds the same bytes under the key — which may only count
    as uploaded (the spool segment is then deleted) once the directory entry is durable."""
    real = ingest.lake.local.fsync_dir
    synced: list[Path] = []
    fail = {"on": True}

    def fsync_dir(path: Path) -> None:
        if fail["on"]:
            raise OSError(errno.EMFILE, "Too many open files")
        synced.append(path)
        real(path)

    monkeypatch.setattr(ingest.lake.local, "fsync_dir", fsync_dir)
    lake = LocalLake(tmp_path / "lake")
    await lake.start()
    with pytest.raises(OSError):
        await lake.put_new("events/dt=2026-11-23/hour=08/w-1.json.gz", b"bytes")
    fail["on"] = False
    assert await lake.put_new("events/dt=2026-11-23/hour=08/w-1.json.gz", b"bytes") is False
    assert await lake.same_content("events/dt=2026-11-23/hour=08/w-1.json.gz", b"bytes")
    assert synced == [tmp_path / "lake" / "events" / "dt=2026-11-23" / "hour=08"]
