"""The soak (`bench/soak.py`) in short: real ingest (2 workers), loader, moto S3 behind a fault
proxy, concurrent retrying senders, and every fault kind injected at least once; then every
acknowledged event must be in the warehouse exactly once.

The long runs (300 s and more) are by hand; see the README's "Soak" section.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_soak(*args: str, timeout_s: float) -> tuple[int, dict[str, Any], str]:
    """Run the soak; (exit code, its last stdout line as JSON, its whole output)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSHIP_")}
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "soak.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # like Ctrl-C: the soak stops its children itself
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        pytest.fail(f"soak did not finish within {timeout_s}s:\n{out[-4000:]}")
    lines = out.strip().splitlines()
    assert lines, "soak printed nothing"
    return proc.returncode, json.loads(lines[-1]), out


def check(code: int, r: dict[str, Any], out: str) -> None:
    tail = out[-6000:]
    assert r.get("lost") == 0, tail
    assert r.get("duplicates") == 0, tail
    assert r["acked_events"] > 0, tail
    assert r["loaded_events"] >= r["acked_events"], tail
    assert r["ingest_kills"] >= 1, tail
    assert r["s3_outages"] >= 1, tail
    assert r["loader_kills"] >= 1, tail
    assert r["loader_kills_mid_cycle"] >= 1, tail  # killed inside a load, not between cycles
    # Senders really resent acknowledged batches, and the loader really dropped the copies.
    assert r["resent_acked"] > 0 and r["loader_skipped_duplicates"] > 0, tail
    assert r["problems"] == [], tail
    assert code == 0, tail
    for key in ("duration_s", "max_loader_lag_s", "records_per_s"):
        assert isinstance(r[key], int | float), key


@pytest.mark.timeout(300)
def test_soak_duckdb_short() -> None:
    code, r, out = run_soak(
        "--duration-s", "45", "--fault-interval-s", "8", "--s3-outage-s", "5",
        "--senders", "6", "--seed", "7", "--catchup-timeout-s", "120",
        timeout_s=280,
    )  # fmt: skip
    check(code, r, out)
    assert r["warehouse"] == "duckdb"


@pytest.mark.timeout(300)
def test_soak_redshift_emulator_short() -> None:
    code, r, out = run_soak(
        "--warehouse", "redshift-emulator", "--duration-s", "35", "--fault-interval-s", "6",
        "--s3-outage-s", "4", "--db-outage-s", "4", "--rate", "8000", "--senders", "6",
        "--seed", "11", "--catchup-timeout-s", "120",
        timeout_s=280,
    )  # fmt: skip
    check(code, r, out)
    assert r["warehouse"] == "redshift-emulator"
    assert r["db_outages"] >= 1, out[-6000:]
    # Redshift's own S3 reads failing must be retried, never quarantine good objects.
    assert r["copy_s3_faults"] >= 1, out[-6000:]
    assert r["quarantined_objects"] == 0, out[-6000:]
