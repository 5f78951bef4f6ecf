"""`logship ui` as an operator runs it: prints its URL, serves the warehouse's pages, stops
cleanly on SIGTERM; a bad address or a port in use is an error, not a hang."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.loader.helpers import load_objects
from tests.loader.ui.conftest import ui_settings
from tests.loader.ui.scenario import OBJECTS

LOGSHIP = [sys.executable, "-m", "ingest.cli"]


def environment(tmp_path: Path, **kw: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSHIP_")}
    env.update({"LOGSHIP_WAREHOUSE_URL": f"duckdb:///{tmp_path}/wh.duckdb",
                "LOGSHIP_UI_HTTP_ADDR": "127.0.0.1:0", **kw})  # fmt: skip
    return env


async def test_logship_ui_serves_until_sigterm(tmp_path: Path) -> None:
    await load_objects(ui_settings(tmp_path), OBJECTS)
    proc = subprocess.Popen([*LOGSHIP, "ui"], env=environment(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("logship ui: http://127.0.0.1:"), line
        url = line.split()[2]
        with urllib.request.urlopen(url + "healthz", timeout=30) as r:
            assert r.status == 200
        with urllib.request.urlopen(url + "deliveries/D-1", timeout=30) as r:
            assert r.status == 200 and "Delivery D-1" in r.read().decode()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        err = proc.stderr.read() if proc.stderr else ""
        assert "web UI running" in err and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_bad_address_is_a_configuration_error(tmp_path: Path) -> None:
    env = environment(tmp_path, LOGSHIP_UI_HTTP_ADDR="localhost")
    r = subprocess.run([*LOGSHIP, "ui"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "LOGSHIP_UI_HTTP_ADDR" in r.stderr


def test_a_port_in_use_fails_at_once(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = environment(tmp_path, LOGSHIP_UI_HTTP_ADDR=f"127.0.0.1:{port}")
        r = subprocess.run([*LOGSHIP, "ui"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "logship ui: http" not in r.stdout
    assert "address already in use" in r.stderr.lower() or "errno 98" in r.stderr.lower()
