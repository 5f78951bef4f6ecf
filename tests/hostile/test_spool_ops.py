"""Operations on spools that must not lose data, run as an operator would: lowering
LOGSHIP_WORKERS (the documented procedure, to the letter), a spool restored from a snapshot,
spools merged by hand — and the spool's cap under many concurrent senders. Acknowledged events
all reach the lake; nothing is deleted because its key "already exists".
"""

from __future__ import annotations

import concurrent.futures
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import requests
from moto.server import ThreadedMotoServer

from tests.conftest import AWS_ENV, free_port, read_lake_local, read_lake_s3, s3_client
from tests.hostile.procs import Proc, ingest, metric_values, spooled_bytes, wait_until
from tests.payloads import pickup, vector_record


def send(proc: Proc, acked: set[str], events: int = 5, session: Any = requests) -> int:
    """One batch (a new connection unless `session`); its ids join `acked` on 200."""
    batch = [pickup(delivery_id=f"D-{uuid.uuid4().hex[:8]}") for _ in range(events)]
    r = session.post(proc.url + "/v1/logs", json=[vector_record(e) for e in batch], timeout=10)
    if r.status_code == 200:
        acked |= {e["event_id"] for e in batch}
    return r.status_code


def segments(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".open", ".ready"))


def lake_ids(lake: Path) -> set[str]:
    return {r["event_id"] for r in read_lake_local(lake)}


def test_lowering_workers_as_documented_loses_nothing(tmp_path: Path) -> None:
    """README, "Lowering LOGSHIP_WORKERS": stop ingest, start it with the lower count; each
    remaining worker adopts the spools of the removed ones and uploads them under their own
    spool's keys. Run with both workers holding acknowledged data the lake never got."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"  # nothing listens yet: S3 is unreachable
    env: dict[str, str] = dict(AWS_ENV, AWS_ENDPOINT_URL_S3=endpoint, AWS_ENDPOINT_URL=endpoint,
                               LOGSHIP_LAKE_URL="s3://lake/p", LOGSHIP_OBJECT_MAX_AGE_S="3600",
                               LOGSHIP_SHUTDOWN_TIMEOUT_S="2")  # fmt: skip
    acked: set[str] = set()
    with ingest(tmp_path, LOGSHIP_WORKERS="2", **env) as proc:
        spool = tmp_path / "spool"
        for _ in range(400):  # a new connection each: SO_REUSEPORT spreads them over both
            assert send(proc, acked) == 200
            if len(acked) >= 100 and segments(spool / "worker-0") and segments(spool / "worker-1"):
                break  # (the second worker may start listening a little after the first)
        assert proc.stop() == 0  # a clean stop: the flush fails against the dead S3
    assert segments(spool / "worker-0") and segments(spool / "worker-1")

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        s3_client(endpoint).create_bucket(Bucket="lake")
        with ingest(tmp_path, LOGSHIP_WORKERS="1", **{**env, "LOGSHIP_OBJECT_MAX_AGE_S": "0.3"}):
            wait_until(lambda: acked <= {r["event_id"] for r in read_lake_s3(endpoint, "lake",
                                                                               "p/events/")},
                       30, what="every acknowledged event in the lake")  # fmt: skip
            wait_until(lambda: not segments(spool), 10, what="both spools emptied")
        keys = [o["Key"] for o in s3_client(endpoint).list_objects_v2(Bucket="lake")["Contents"]]
        ids = {orjson.loads((spool / d / "spool.json").read_bytes())["spool_id"]
               for d in ("worker-0", "worker-1")}  # fmt: skip
        assert {k.rsplit("/", 1)[1].split("-")[-2] for k in keys} == ids  # each under its own
    finally:
        server.stop()


def test_restored_snapshot_loses_nothing(tmp_path: Path) -> None:
    """A spool copied aside, then restored over a live one that went on after the copy: its
    sequence numbers are reused and its segment has another tail than the object uploaded
    under the same key. Everything acknowledged arrives; nothing is deleted as "already
    there"."""
    lake, spool = tmp_path / "lake", tmp_path / "spool"
    acked: set[str] = set()
    with ingest(tmp_path, LOGSHIP_OBJECT_MAX_AGE_S="3600") as proc:
        assert send(proc, acked) == 200
        proc.popen.kill()
        proc.popen.wait()
    shutil.copytree(spool, tmp_path / "snapshot")
    with ingest(tmp_path, LOGSHIP_OBJECT_MAX_AGE_S="0.3") as proc:
        wait_until(lambda: acked <= lake_ids(lake), 20, what="the snapshot's events uploaded")
        assert send(proc, acked) == 200
        wait_until(lambda: acked <= lake_ids(lake), 20, what="a later batch uploaded")
    # Restore the snapshot, its segment with another tail: one more complete, spooled line.
    shutil.rmtree(spool)
    shutil.copytree(tmp_path / "snapshot", spool)
    (seg,) = segments(spool)
    line = orjson.loads(seg.read_bytes().splitlines()[0])
    line["event_id"] = "restored-tail-" + uuid.uuid4().hex
    with open(seg, "ab") as f:
        f.write(orjson.dumps(line) + b"\n")
    spooled = acked | {line["event_id"]}
    with ingest(tmp_path, LOGSHIP_OBJECT_MAX_AGE_S="0.3") as proc:
        assert send(proc, acked) == 200  # its sequence number was used before the restore
        spooled |= acked
        wait_until(lambda: spooled <= lake_ids(lake), 20, what="everything in the lake")
        wait_until(lambda: not segments(spool), 10, what="the spool emptied")
        assert "different object" in proc.stderr()  # logged as a warning, not silently


def test_spools_merged_by_hand_lose_nothing(tmp_path: Path) -> None:
    """Segments of two other spools moved by hand into a third: one kept its name, the other
    renamed to the older name format without the writing spool's id (so its key collides with
    the adopting spool's own). All their events arrive."""
    lake = tmp_path / "lake"
    acked: set[str] = set()
    for name in ("a", "b", "c"):
        with ingest(tmp_path, LOGSHIP_SPOOL_DIR=str(tmp_path / name),
                    LOGSHIP_OBJECT_MAX_AGE_S="3600") as proc:  # fmt: skip
            assert send(proc, acked) == 200
            proc.popen.kill()
            proc.popen.wait()
    target = tmp_path / "a" / "worker-0"
    for seg in segments(tmp_path / "b"):
        seg.rename(target / seg.name)
    for seg in segments(tmp_path / "c"):
        seq, stream, partition, _origin = seg.stem.split("~")
        seg.rename(target / f"{seq}~{stream}~{partition}{seg.suffix}")  # the old name format
    assert len(segments(target)) == 3
    with ingest(tmp_path, LOGSHIP_SPOOL_DIR=str(tmp_path / "a"), LOGSHIP_OBJECT_MAX_AGE_S="0.3"):
        wait_until(lambda: acked <= lake_ids(lake), 20, what="every merged event in the lake")
        wait_until(lambda: not segments(target), 10, what="the spool emptied")


def test_spool_cap_holds_under_32_concurrent_senders(tmp_path: Path) -> None:
    """S3 unreachable, 32 senders at once: the spool (its gauge and its files on disk) never
    exceeds LOGSHIP_SPOOL_MAX_BYTES by more than one batch (it reached 1.96x before)."""
    cap = 200_000
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens
    env = dict(AWS_ENV, AWS_ENDPOINT_URL_S3=endpoint, LOGSHIP_LAKE_URL="s3://lake",
               LOGSHIP_SPOOL_MAX_BYTES=str(cap), LOGSHIP_OBJECT_MAX_BYTES="40000",
               LOGSHIP_SHUTDOWN_TIMEOUT_S="1")  # fmt: skip
    with ingest(tmp_path, **env) as proc:
        first: set[str] = set()
        assert send(proc, first, events=10) == 200

        def gauge() -> float:
            text = requests.get(proc.url + "/metrics", timeout=10).text
            return metric_values(text, "logship_ingest_spool_size_bytes")[""]

        batch_bytes = gauge()  # one batch of 10 events, as spooled
        assert batch_bytes > 0
        stop = threading.Event()
        statuses: list[int] = []

        def sender() -> None:
            session, acked = requests.Session(), set[str]()
            deadline = time.monotonic() + 4
            while not stop.is_set() and time.monotonic() < deadline:
                statuses.append(send(proc, acked, events=10, session=session))

        peak_gauge = peak_disk = 0.0
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            futures = [pool.submit(sender) for _ in range(32)]
            while not all(f.done() for f in futures):
                peak_gauge = max(peak_gauge, gauge())
                peak_disk = max(peak_disk, spooled_bytes(tmp_path / "spool"))
            stop.set()
            for f in futures:
                f.result()
        peak_gauge = max(peak_gauge, gauge())
        peak_disk = max(peak_disk, spooled_bytes(tmp_path / "spool"))
        assert 503 in statuses and 200 in statuses  # the cap was reached, under load
        assert peak_gauge <= cap + batch_bytes, (peak_gauge, cap)
        assert peak_disk <= cap + batch_bytes, (peak_disk, cap)
        assert peak_gauge >= cap - 2 * batch_bytes  # it did fill up to the cap
