"""Faults heal: a real `logship ingest` process under real OS errors — fd exhaustion (prlimit
on the running process), a full disk (a small tmpfs), EIO (injected by a sitecustomize the
child loads, logship unchanged) — on the spool and on the upload path. During the fault nothing
undurable is acknowledged and /metrics says the process is stalled; once the cause is gone,
everything acknowledged reaches the lake, with no restart.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import requests
from moto.server import ThreadedMotoServer

from tests.conftest import AWS_ENV, free_port, read_lake_local, read_lake_s3, s3_client
from tests.hostile.procs import (
    Proc,
    fault_env,
    fd_limit,
    fill_disk,
    ingest,
    injected,
    metric_values,
    spooled_bytes,
    tmpfs,
    wait_until,
)
from tests.payloads import pickup, vector_record

_ids = itertools.count()


class Sender:
    """One sender on one kept-alive connection (it keeps working while the server cannot
    accept new ones), remembering what was acknowledged."""

    def __init__(self, proc: Proc):
        self.proc = proc
        self.session = requests.Session()
        self.acked: set[str] = set()

    def send(self, events: int = 5, pad: int = 0) -> requests.Response | None:
        batch = [
            pickup(delivery_id=f"D-{next(_ids)}", merchant_id="m" * pad) for _ in range(events)
        ]
        try:
            r = self.session.post(
                self.proc.url + "/v1/logs", json=[vector_record(e) for e in batch], timeout=5
            )
        except requests.RequestException:
            return None
        assert r.status_code in (200, 503), r.text
        if r.status_code == 200:
            self.acked |= {e["event_id"] for e in batch}
        else:
            assert r.json()["error"] in ("spool_write_failed", "spool_full")
            assert int(r.headers["Retry-After"]) > 0
        return r

    def metrics(self) -> str:
        return self.session.get(self.proc.url + "/metrics", timeout=5).text

    def stalled(self) -> float:
        return metric_values(self.metrics(), "logship_ingest_stalled")[""]

    def io_errors(self, error: str, stage_prefix: str = "") -> float:
        values = metric_values(self.metrics(), "logship_ingest_io_errors_total")
        return sum(
            v
            for labels, v in values.items()
            if f'error="{error}"' in labels and f'stage="{stage_prefix}' in labels
        )


def in_local_lake(lake: Path, want: set[str]) -> bool:
    return want <= {r["event_id"] for r in read_lake_local(lake)}


def test_fd_exhaustion_during_rotation_heals_without_restart(tmp_path: Path) -> None:
    """~3 s of EMFILE while segments rotate (the directory fsync and every new file fail):
    stalled and counted meanwhile, then everything acknowledged arrives — the old spool kept
    a renamed segment under its .open name and failed every rotation until a restart."""
    with ingest(tmp_path, LOGSHIP_OBJECT_MAX_AGE_S="1") as proc:
        s = Sender(proc)
        assert s.send().status_code == 200  # type: ignore[union-attr]
        wait_until(lambda: in_local_lake(tmp_path / "lake", s.acked), 20, what="first upload")
        stalled_seen, statuses = [], []
        errors_before = s.io_errors("EMFILE")
        assert s.send().status_code == 200  # type: ignore[union-attr]  # a segment to rotate
        with fd_limit(proc.popen.pid):  # ... during the fault, about 1 s from now
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                r = s.send()
                statuses.append(r.status_code if r is not None else None)
                stalled_seen.append(s.stalled())
                time.sleep(0.1)
            emfile_errors = s.io_errors("EMFILE") - errors_before
        wait_until(lambda: in_local_lake(tmp_path / "lake", s.acked), 20,
                   what="every acknowledged event in the lake after the fault")  # fmt: skip
        assert 1.0 in stalled_seen, stalled_seen
        assert emfile_errors > 0
        assert 503 in statuses  # a batch needing a new segment file is refused, not lost
        wait_until(lambda: s.stalled() == 0, 10, what="stalled back to 0")
        assert s.send().status_code == 200  # type: ignore[union-attr]
        wait_until(lambda: in_local_lake(tmp_path / "lake", s.acked), 20, what="new batches")
        assert proc.alive()


def test_full_spool_disk_refuses_then_heals(tmp_path: Path) -> None:
    """The spool's disk full: 503 spool_write_failed (never 200), /metrics stalled with ENOSPC
    counted; space freed: 200 again without restart, everything acknowledged arrives."""
    with (
        tmpfs(tmp_path / "disk") as disk,
        ingest(
            tmp_path, LOGSHIP_SPOOL_DIR=str(disk / "spool"), LOGSHIP_OBJECT_MAX_AGE_S="0.3"
        ) as proc,
    ):
        s = Sender(proc)
        assert s.send().status_code == 200  # type: ignore[union-attr]
        wait_until(lambda: in_local_lake(tmp_path / "lake", s.acked), 20, what="first upload")
        wait_until(lambda: spooled_bytes(disk) == 0, 10, what="an empty spool")
        filler = fill_disk(disk)
        refused = [s.send(events=40, pad=200) for _ in range(4)]
        assert all(r is not None and r.status_code == 503 for r in refused)
        assert refused[0].json()["error"] == "spool_write_failed"  # type: ignore[union-attr]
        assert s.stalled() == 1
        assert s.io_errors("ENOSPC", "spool_") > 0
        filler.unlink()
        wait_until(lambda: s.stalled() == 0, 15, what="the write probe to clear the fault")
        assert s.send(events=40, pad=200).status_code == 200  # type: ignore[union-attr]
        wait_until(lambda: in_local_lake(tmp_path / "lake", s.acked), 20, what="all acked")


def test_start_on_a_full_spool_disk_uploads_what_it_holds(tmp_path: Path) -> None:
    """A spool disk 100% full at start (segments held from a crash): ingest starts (the state
    save fails and is retried), uploads what it holds, refuses new batches with 503 while there
    is no room, and is healthy once space is freed."""
    with tmpfs(tmp_path / "disk") as disk:
        env = {"LOGSHIP_SPOOL_DIR": str(disk / "spool"), "LOGSHIP_OBJECT_MAX_AGE_S": "3600"}
        with ingest(tmp_path, **env) as proc:
            s = Sender(proc)
            for _ in range(3):
                assert s.send().status_code == 200  # type: ignore[union-attr]
            proc.popen.kill()  # the data stays in the spool
            proc.popen.wait()
        held = set(s.acked)
        filler = fill_disk(disk)
        with ingest(tmp_path, **{**env, "LOGSHIP_OBJECT_MAX_AGE_S": "0.3"}) as proc:
            s = Sender(proc)
            assert s.io_errors("ENOSPC", "spool_state") >= 1  # the save at start failed
            wait_until(lambda: in_local_lake(tmp_path / "lake", held), 20, what="held segments")
            big = s.send(events=40, pad=400)
            assert big is not None and big.status_code == 503
            assert s.stalled() == 1
            filler.unlink()
            wait_until(lambda: s.stalled() == 0, 15, what="healthy once space is freed")
            assert s.send(events=40, pad=400).status_code == 200  # type: ignore[union-attr]
            wait_until(lambda: in_local_lake(tmp_path / "lake", held | s.acked), 20,
                       what="new batches uploaded")  # fmt: skip


def test_eio_on_fsync_is_never_acknowledged_and_heals(tmp_path: Path) -> None:
    control = tmp_path / "faults"
    with ingest(tmp_path, LOGSHIP_OBJECT_MAX_AGE_S="0.3", **fault_env(control)) as proc:
        s = Sender(proc)
        assert s.send().status_code == 200  # type: ignore[union-attr]
        with injected(control, "EIO", "fsync", tmp_path / "spool"):
            time.sleep(0.1)  # the injector reads its control file every 20 ms
            refused = [s.send() for _ in range(5)]
            assert all(r is not None and r.status_code == 503 for r in refused)
            assert s.stalled() == 1
            assert s.io_errors("EIO", "spool_") > 0
        wait_until(lambda: s.stalled() == 0, 15, what="the fault cleared")
        assert s.send().status_code == 200  # type: ignore[union-attr]
        wait_until(lambda: in_local_lake(tmp_path / "lake", s.acked), 20, what="all acked")


def test_local_lake_errors_keep_the_data_and_heal(tmp_path: Path) -> None:
    """The local lake's directory failing (EIO, then its disk full): batches are still
    acknowledged into the spool, the uploader is reported stalled with the errno, and
    everything arrives once the lake works again."""
    control = tmp_path / "faults"
    with tmpfs(tmp_path / "lakedisk") as lakedisk, ingest(
        tmp_path, LOGSHIP_LAKE_URL=str(lakedisk / "lake"), LOGSHIP_OBJECT_MAX_AGE_S="0.3",
        **fault_env(control),
    ) as proc:  # fmt: skip
        lake = lakedisk / "lake"
        s = Sender(proc)
        with injected(control, "EIO", "open,os_open", lake):
            for _ in range(3):
                assert s.send().status_code == 200  # type: ignore[union-attr]
            wait_until(lambda: s.io_errors("EIO", "upload_lake") > 0, 10, what="EIO counted")
            assert s.stalled() == 1
            assert spooled_bytes(tmp_path / "spool") > 0
        wait_until(lambda: in_local_lake(lake, s.acked), 20, what="all acked after EIO")
        wait_until(lambda: s.stalled() == 0, 10, what="stalled back to 0")

        filler = fill_disk(lakedisk)
        for _ in range(3):
            assert s.send(events=20, pad=300).status_code == 200  # type: ignore[union-attr]
        wait_until(lambda: s.io_errors("ENOSPC", "upload_lake") > 0, 10, what="ENOSPC counted")
        assert s.stalled() == 1 and not in_local_lake(lake, s.acked)
        filler.unlink()
        wait_until(lambda: in_local_lake(lake, s.acked), 20, what="all acked after ENOSPC")
        wait_until(lambda: s.stalled() == 0, 10, what="stalled back to 0")


def test_s3_refusing_keeps_the_data_and_heals(tmp_path: Path) -> None:
    """S3 unreachable (nothing listens on its port): acknowledged into the spool, upload
    errors counted; this is an outage the spool absorbs, not a local fault (stalled stays 0,
    readiness turns 503 only near the spool's cap). S3 back: everything arrives."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env: dict[str, Any] = dict(AWS_ENV, AWS_ENDPOINT_URL_S3=endpoint, AWS_ENDPOINT_URL=endpoint)
    with ingest(tmp_path, LOGSHIP_LAKE_URL="s3://later/p", LOGSHIP_OBJECT_MAX_AGE_S="0.3",
                **env) as proc:  # fmt: skip
        s = Sender(proc)
        for _ in range(3):
            assert s.send().status_code == 200  # type: ignore[union-attr]

        def upload_errors() -> float:
            return metric_values(s.metrics(), "logship_ingest_upload_errors_total")[""]

        wait_until(lambda: upload_errors() > 0, 10, what="upload errors counted")
        assert spooled_bytes(tmp_path / "spool") > 0 and s.stalled() == 0
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            s3_client(endpoint).create_bucket(Bucket="later")
            want = set(s.acked)
            wait_until(lambda: want <= {r["event_id"] for r in read_lake_s3(endpoint, "later",
                                                                              "p/events/")},
                       20, what="all acked in S3")  # fmt: skip
        finally:
            server.stop()
