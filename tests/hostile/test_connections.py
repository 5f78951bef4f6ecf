"""Slow and stalled clients cannot exhaust the server: a few hundred connections that never
finish their request (headers half sent, bodies half sent) hold at most
`LOGSHIP_MAX_CONNECTIONS` slots; the rest are closed at once and counted, the process's file
descriptors stay bounded, its log does not get a line per connection, and once the stalled
clients are gone a normal batch is acknowledged. A request whose headers trickle in is cut off
by the keep-alive timeout.

Black-box: a real `logship ingest`, raw sockets on loopback, /proc/PID/fd and /metrics.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
from pathlib import Path

import orjson
import pytest
import requests

from tests.hostile.procs import Proc, ingest, wait_until

MAX_CONNECTIONS = 50
CLIENTS = 300
HALF_HEADERS = b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: applic"
HALF_BODY = (
    b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n\r\n" + b'[{"message": "' + b"x" * 200
)


def _closed_by_server(s: socket.socket) -> bool:
    """True once the server has closed (or reset) this connection (`s` is non-blocking)."""
    try:
        return s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:  # reset
        return True


def _fds(proc: Proc) -> int:
    return len(os.listdir(f"/proc/{proc.popen.pid}/fd"))


def _metric(proc: Proc, name: str) -> float:
    text = requests.get(proc.url + "/metrics", timeout=5).text
    m = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


def _open_stalled(port: int, n: int) -> list[socket.socket]:
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        with contextlib.suppress(OSError):  # refused ones may already be closed
            s.sendall(HALF_HEADERS if i % 2 else HALF_BODY)
        s.setblocking(False)  # for _closed_by_server
        socks.append(s)
    return socks


def test_stalled_clients_cannot_exhaust_the_server(tmp_path: Path) -> None:
    env = {"LOGSHIP_MAX_CONNECTIONS": str(MAX_CONNECTIONS), "LOGSHIP_KEEPALIVE_TIMEOUT_S": "600",
           "LOGSHIP_BODY_READ_TIMEOUT_S": "600"}  # fmt: skip
    with ingest(tmp_path, **env) as proc:
        base_fds = _fds(proc)
        socks = _open_stalled(proc.port, CLIENTS)
        try:
            wait_until(lambda: sum(map(_closed_by_server, socks)) >= CLIENTS - MAX_CONNECTIONS,
                       timeout_s=20, what="connections beyond the limit closed")  # fmt: skip
            held_open = sum(not _closed_by_server(s) for s in socks)
            held_fds = _fds(proc)
            # At the limit a new client (a health check too) is closed at once.
            with pytest.raises(requests.ConnectionError):
                requests.get(proc.url + "/healthz", timeout=5)
            assert proc.alive()
        finally:
            for s in socks:
                s.close()
        wait_until(lambda: _metric(proc, "logship_ingest_connections") <= 1, timeout_s=10,
                   what="the stalled connections released")  # fmt: skip
        refused = _metric(proc, "logship_ingest_refused_connections_total")
        batch = [{"message": orjson.dumps({"event": "delivery.created", "delivery_id": "D-1",
                                           "merchant_id": "M-1"}).decode()}]  # fmt: skip
        ack = requests.post(proc.url + "/v1/logs", data=orjson.dumps(batch), timeout=10)
    stderr = proc.stderr()  # after the stop: the last summary lines are written at exit

    assert MAX_CONNECTIONS - 5 <= held_open <= MAX_CONNECTIONS
    assert held_fds <= base_fds + MAX_CONNECTIONS + 10, (base_fds, held_fds)
    assert refused >= CLIENTS - MAX_CONNECTIONS + 1
    assert ack.status_code == 200, ack.text
    assert ack.json()["accepted"] == 1
    assert len(stderr.splitlines()) < 20, stderr[-3000:]
    summaries = [
        orjson.loads(line) for line in stderr.splitlines() if "connections refused" in line
    ]
    assert sum(s["counts"]["refused"] for s in summaries) == refused  # counted in the log too


def test_headers_that_trickle_in_are_cut_off(tmp_path: Path) -> None:
    """One byte every 100 ms: the server closes the connection long before the headers are
    complete (the keep-alive timeout also bounds a request's header phase)."""
    request = b"POST /v1/logs HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"y" * 200 + b"\r\n\r\n"
    with ingest(tmp_path, LOGSHIP_KEEPALIVE_TIMEOUT_S="1") as proc:
        sent = 0
        with socket.create_connection(("127.0.0.1", proc.port)) as s:
            s.setblocking(False)
            for byte in request:
                if _closed_by_server(s):
                    break
                try:
                    s.sendall(bytes([byte]))
                except OSError:
                    break
                sent += 1
                time.sleep(0.1)
            closed = _closed_by_server(s)
        assert requests.get(proc.url + "/healthz", timeout=5).status_code == 200
    assert closed and sent < len(request), (closed, sent)
