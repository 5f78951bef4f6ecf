"""Hostile: what one request may cost a real `logship ingest` process.

* bodies that made the body splitter or the gzip decoder quadratic are answered (at sizes
  where the old code would need hours), and the server goes on serving;
* a 64 KiB gzip `text/plain` body of 64 MiB of short lines keeps the process within the
  documented memory rule: peak RSS ≤ base + 2 × decompressed bytes in flight + a constant;
* past LOGSHIP_MAX_INFLIGHT_BYTES requests get 503 + Retry-After, counted in /metrics, and
  the server takes a normal batch afterwards;
* while a CPU-heavy body is being parsed, /healthz and another sender's batch are answered
  before it (an ordering, not a duration);
* a body that never completes gets 408 within LOGSHIP_BODY_READ_TIMEOUT_S and its connection
  is closed.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import zlib
from pathlib import Path

import orjson
import pytest
import requests

from tests.hostile.procs import Proc, ingest, wait_until

MiB = 1024 * 1024
#: Generous: a request the fixed server answers in well under a second, the old code in hours.
ANSWER_TIMEOUT_S = 120


def gz(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


def post(
    proc: Proc,
    body: bytes,
    content_type: str = "application/json",
    encoding: str = "gzip",
    path: str = "/v1/logs",
) -> requests.Response:
    headers = {"Content-Type": content_type}
    if encoding:
        headers["Content-Encoding"] = encoding
    return requests.post(proc.url + path, data=body, headers=headers, timeout=ANSWER_TIMEOUT_S)


def good_batch(n: int = 3) -> bytes:
    event = {"event": "robot.error", "robot_id": "R-1", "error_code": "E"}
    return orjson.dumps([{"message": orjson.dumps({**event, "n": i}).decode()} for i in range(n)])


def metric(proc: Proc, sample: str) -> float:
    """The value of one sample (`name{labels}` as exposed, or a bare name) in /metrics."""
    text = requests.get(proc.url + "/metrics", timeout=30).text
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head == sample:
            return float(value)
    return 0.0


def refused(proc: Proc, reason: str, route: str = "/v1/logs") -> float:
    return metric(
        proc, f'logship_ingest_refused_requests_total{{reason="{reason}",route="{route}"}}'
    )


def still_serving(proc: Proc) -> None:
    assert requests.get(proc.url + "/healthz", timeout=30).status_code == 200
    resp = post(proc, gz(good_batch()))
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == 3


def test_quadratic_bodies_are_answered(tmp_path: Path) -> None:
    """The review's 132-byte body (`[` and 48,000 escaped quotes: 28 s on the old event loop)
    at 40 times the size, its cousins, and 8 MiB of tiny gzip members (11 s per 2 MiB)."""
    member_line = b'{"message":"GET /x 200"}\n'
    member = gz(member_line)
    members = member * (8 * MiB // len(member))
    cases = [
        (gz(b"[" + b'\\"' * 2_000_000), "application/json", 400, "invalid_body"),
        (gz(b'["' + b'\\"' * 2_000_000 + b'"]'), "application/json", 200, 1),
        (gz(b"[" + b'"",' * 1_000_000 + b"NaN]"), "application/json", 200, 1_000_001),
        (gz(b"[" + b"[" * 2_000_000 + b"]" * 2_000_000 + b"]"), "application/json", 200, 1),
        (members, "application/x-ndjson", 200, len(members) // len(member)),
    ]
    with ingest(tmp_path) as proc:
        for body, content_type, status, expected in cases:
            resp = post(proc, body, content_type)
            assert resp.status_code == status, resp.text[:300]
            if status == 200:
                assert resp.json() == {"accepted": 0, "discarded": expected, "rejected": 0}
            else:
                assert resp.json()["error"] == expected
        still_serving(proc)


def peak_rss_during(proc: Proc, action) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(resident bytes before, peak resident bytes while `action()` ran) of the server."""
    pid = proc.popen.pid
    time.sleep(0.5)  # let start-up allocations settle

    def status(field: str) -> int:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise AssertionError(field)

    base = status("VmRSS")
    with contextlib.suppress(OSError):  # reset the high-water mark to now (Linux >= 4.0)
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    action()
    return base, status("VmHWM")


def test_text_plain_bomb_stays_within_the_memory_rule(tmp_path: Path) -> None:
    """64 MiB of 2-byte lines, 64 KiB gzipped: the old code made a dict per line (over 3 GB of
    RSS). Documented rule: peak RSS ≤ base + 2 × decompressed bytes in flight + 48 MiB."""
    data = b"x\n" * (32 * MiB)
    body = gz(data)
    assert len(body) < 100 * 1024
    with ingest(tmp_path) as proc:
        answers: list[requests.Response] = []
        base, peak = peak_rss_during(proc, lambda: answers.append(post(proc, body, "text/plain")))
        assert answers[0].status_code == 200, answers[0].text
        assert answers[0].json() == {"accepted": 0, "discarded": 32 * MiB, "rejected": 0}
        assert peak - base <= 2 * len(data) + 48 * MiB, (base / MiB, peak / MiB)
        still_serving(proc)


def test_inflight_budget_refuses_with_503_then_serves(tmp_path: Path) -> None:
    """A 3 MiB body sent but for its last kilobyte holds that much of a 4 MiB budget (bytes are
    reserved as they arrive): four concurrent 2 MiB bodies get 503 `overloaded` with
    Retry-After, all counted; the slow one then completes, and a normal batch is taken."""
    slow = orjson.dumps([{"message": "x" * 1000}] * 3000)
    assert 3 * MiB > len(slow) > 2.5 * MiB
    big = orjson.dumps([{"message": "y" * 1000}] * 2000)
    with ingest(tmp_path, LOGSHIP_MAX_INFLIGHT_BYTES=str(4 * MiB)) as proc:
        host, port = "127.0.0.1", proc.port
        with socket.create_connection((host, port), timeout=ANSWER_TIMEOUT_S) as sock:
            head = f"POST /v1/logs HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(slow)}\r\n\r\n"
            sock.sendall(head.encode() + slow[:-1000])
            wait_until(
                lambda: metric(proc, "logship_ingest_inflight_bytes") >= len(slow) - 1000,
                what="the slow body to be reserved",
            )
            answers: list[requests.Response] = []
            threads = [
                threading.Thread(target=lambda: answers.append(post(proc, big, encoding="")))
                for _ in range(4)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert [a.status_code for a in answers] == [503] * 4, [a.text for a in answers]
            for a in answers:
                assert a.headers["Retry-After"] == "2"
                assert a.json()["error"] == "overloaded"
            assert refused(proc, "overloaded") == 4
            sock.sendall(slow[-1000:])
            reply = b""
            while b"}" not in reply.partition(b"\r\n\r\n")[2]:
                chunk = sock.recv(65536)
                assert chunk, reply
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200"), reply
        assert orjson.loads(reply.partition(b"\r\n\r\n")[2])["discarded"] == 3000
        wait_until(lambda: metric(proc, "logship_ingest_inflight_bytes") == 0,
                   what="the budget to be given back")  # fmt: skip
        resp = post(proc, big, encoding="")
        assert (resp.status_code, resp.json()["discarded"]) == (200, 2000)
        still_serving(proc)


NOTHING = {"accepted": 0, "discarded": 0, "rejected": 0}


@pytest.mark.parametrize(
    ("heavy", "content_type", "answered"),
    [
        # Records each refused by the strict parser and read again by the lenient one; under
        # 2 MiB, so the old code parsed it on the event loop.
        (
            gz(b"[" + b"NaN," * (480 * 1024) + b"NaN]"),
            "application/json",
            {"accepted": 0, "discarded": 480 * 1024 + 1, "rejected": 0},
        ),
        # 64 MiB of blank lines (65 KB of gzip): no record at all, so no step reported work and
        # the loop was never given back (a review found /healthz waiting 3 s).
        (gz(b"\n" * 64 * MiB), "text/plain", NOTHING),
        (gz(b" \r\n" * (20 * MiB)), "application/x-ndjson", NOTHING),
    ],
    ids=["nan-array", "text-blank-lines", "ndjson-blank-lines"],
)
def test_healthz_and_other_senders_answered_during_a_heavy_body(
    tmp_path: Path, heavy: bytes, content_type: str, answered: dict[str, int]
) -> None:
    """A body that takes the parser seconds: five /healthz and another sender's batch, sent
    while it is being worked on, are all answered before it."""
    done: list[str] = []
    lock = threading.Lock()

    def finished(what: str) -> None:
        with lock:
            done.append(what)

    with ingest(tmp_path) as proc:
        answer: list[requests.Response] = []

        def send_heavy() -> None:
            answer.append(post(proc, heavy, content_type))
            finished("heavy")

        sender = threading.Thread(target=send_heavy)
        sender.start()
        wait_until(lambda: metric(proc, "logship_ingest_inflight_bytes") > 0 or bool(done),
                   timeout_s=ANSWER_TIMEOUT_S, what="the heavy body to be read")  # fmt: skip
        for i in range(5):
            assert requests.get(proc.url + "/healthz", timeout=ANSWER_TIMEOUT_S).ok
            finished(f"healthz-{i}")
        assert post(proc, gz(good_batch())).json()["accepted"] == 3
        finished("batch")
        sender.join(ANSWER_TIMEOUT_S)
        assert done == [*(f"healthz-{i}" for i in range(5)), "batch", "heavy"], done
        assert answer[0].json() == answered


def test_stalled_bodies_get_408_and_their_connections_closed(tmp_path: Path) -> None:
    """Twenty clients send their headers and half a body, then nothing: each gets 408
    `body_read_timeout` once LOGSHIP_BODY_READ_TIMEOUT_S has passed, and the server closes
    the connection (recv returns end-of-file); the refusals are counted."""
    body = good_batch()
    with ingest(tmp_path, LOGSHIP_BODY_READ_TIMEOUT_S="1") as proc:
        socks = []
        head = f"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", proc.port), timeout=30)
            sock.sendall(head.encode() + body[: len(body) // 2])
            socks.append(sock)
        try:
            for sock in socks:
                raw = b""
                while chunk := sock.recv(65536):  # to end-of-file: the server must close
                    raw += chunk
                head_bytes, _, reply = raw.partition(b"\r\n\r\n")
                assert head_bytes.startswith(b"HTTP/1.1 408"), raw
                assert orjson.loads(reply)["error"] == "body_read_timeout"
        finally:
            for sock in socks:
                sock.close()
        assert refused(proc, "body_read_timeout") == 20
        still_serving(proc)
