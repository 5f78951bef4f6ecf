"""A sender holding a valid token sends every kind of malformed request a parser can refuse,
each carrying the token (or the PII hash key) somewhere — and the token never reaches the
process's log, in any encoding, even at DEBUG; the process still serves good requests, and a
flood of bad requests is a few summary lines, not one ERROR line each.

Black-box: a real `logship ingest`, raw sockets on loopback, its stderr read afterwards.
"""

from __future__ import annotations

import base64
import gzip
import socket
import time
import urllib.parse
from pathlib import Path

import orjson
import requests

from tests.hostile.procs import ingest, loader, wait_until

TOKEN = "Tok3n+/Sekr1t=zq-9f2c7e"
PII_KEY = "pii-Hash-Key-4f1d9a0b"
WAREHOUSE_PASSWORD = "wh-Pa55:w0rd@x"
ENC_TOKEN = urllib.parse.quote(TOKEN, safe="")
B64_TOKEN = base64.b64encode(TOKEN.encode()).decode()
GOOD_LINE = b"POST /v1/logs HTTP/1.1\r\nHost: x\r\n"


def _forms(secret: str) -> list[str]:
    """Every form in which a leaked secret would be recognisable in a log line."""
    raw = secret.encode()
    return [
        secret,
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        urllib.parse.quote(secret, safe="").lower(),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        orjson.dumps(secret).decode()[1:-1],
        repr(raw)[2:-1],
    ]


def _leaks(text: str, secret: str) -> list[str]:
    low = text.lower()
    return [f for f in _forms(secret) if f.lower() in low]


T = TOKEN.encode()
#: name -> the raw bytes of a request that the HTTP parser (or the handler) refuses.
MALFORMED: dict[str, bytes] = {
    "oversized other header": GOOD_LINE + b"DD-API-KEY: %s\r\nX-Pad: %s\r\n\r\n" % (T, b"a" * 9000),
    "oversized auth header": GOOD_LINE + b"Authorization: Bearer %s%s\r\n\r\n" % (T, b"a" * 9000),
    "NUL in header": GOOD_LINE + b"DD-API-KEY: %s\x00\r\n\r\n" % T,
    "bare LF": b"POST /v1/logs HTTP/1.1\r\nHost: x\nAuthorization: Bearer %s\n\r\n" % T,
    "bad request line": b"POST /v1/logs?dd_api_key=%s HTTP/1.1 junk\r\nHost: x\r\n\r\n" % T,
    "bad request line, encoded token":
        b"POST /api/v2/logs?dd_api_key=%s HTTP/1.1 junk\r\n\r\n" % ENC_TOKEN.encode(),
    "bad method": b"P@ST /api/v2/logs?dd_api_key=%s HTTP/1.1\r\nHost: x\r\n\r\n" % T,
    "bad version": b"POST /api/v2/logs?dd_api_key=%s HTTP/7.3\r\nHost: x\r\n\r\n" % T,
    "invalid percent-encoding": b"POST /api/v2/logs%%zz%%?dd_api_key=%s&x=%%zz HTTP/1.1\r\n"
        b"Host: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]" % T,
    "huge URL": b"POST /api/v2/logs?dd_api_key=%s&x=%s HTTP/1.1\r\n\r\n" % (T, b"a" * 12000),
    "bad chunk size": GOOD_LINE + b"Authorization: Bearer %s\r\nTransfer-Encoding: chunked"
        b"\r\n\r\nzz%s\r\n[]\r\n0\r\n\r\n" % (T, T),
    "chunked and content-length": GOOD_LINE + b"DD-API-KEY: %s\r\nContent-Length: 2\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n0\r\n\r\n" % T,
    "bad content-length": GOOD_LINE + b"DD-API-KEY: %s\r\nContent-Length: %s\r\n\r\n" % (T, T),
    "too many headers": GOOD_LINE + b"DD-API-KEY: %s\r\n%s\r\n"
        % (T, b"".join(b"X-H%d: v\r\n" % i for i in range(200))),
    "bad header name": GOOD_LINE + b"DD-API-KEY\x01%s: x\r\n\r\n" % T,
    "obsolete line folding": GOOD_LINE + b"Authorization: Bearer\r\n %s\r\n\r\n" % T,
    "header without colon": GOOD_LINE + b"DD-API-KEY %s\r\n\r\n" % T,
    "non-UTF-8 header": GOOD_LINE + b"DD-API-KEY: %s\xff\xfe\r\n\r\n" % T,
    "basic auth, malformed": GOOD_LINE + b"Authorization: Basic %s\x00\r\n\r\n" % B64_TOKEN.encode(),
    "PII key in a bad line": b"POST /v1/logs?dd_api_key=%s HTTP/1.1 x\r\n\r\n" % PII_KEY.encode(),
    "binary garbage with the token": b"\x16\x03\x01%s\r\n\r\n" % T,
}  # fmt: skip


def _status(port: int, data: bytes | list[bytes], timeout_s: float = 5.0) -> int | None:
    """Send `data` (a list: packets with a pause between) and return the status of the
    answer, None if the server closed without one."""
    packets = data if isinstance(data, list) else [data]
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        try:
            for i, packet in enumerate(packets):
                if i:
                    time.sleep(0.2)
                s.sendall(packet)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before we finished sending; the answer may still be there
        got = b""
        try:
            while b"\r\n\r\n" not in got:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    if not got.startswith(b"HTTP/"):
        return None
    return int(got.split(b" ", 2)[1])


def _statuses_in_turn(port: int, requests_: list[bytes]) -> list[int]:
    """Send each request on one connection after the answer to the previous one."""
    statuses = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        for request in requests_:
            s.sendall(request)
            got = b""
            try:
                while b"\r\n\r\n" not in got:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            except (ConnectionResetError, TimeoutError):
                pass
            if got.startswith(b"HTTP/"):
                statuses.append(int(got.split(b" ", 2)[1]))
    return statuses


def _good_batch(url: str) -> requests.Response:
    event = {"event": "delivery.created", "delivery_id": "D-1", "merchant_id": "M-1"}
    body = gzip.compress(orjson.dumps([{"message": orjson.dumps(event).decode()}]))
    headers = {"DD-API-KEY": TOKEN, "Content-Encoding": "gzip", "Content-Type": "application/json"}
    return requests.post(url + "/api/v2/logs", data=body, timeout=10, headers=headers)


def test_malformed_requests_never_log_the_token(tmp_path: Path) -> None:
    env = {"LOGSHIP_AUTH_TOKENS": f"other-token-123,{TOKEN}", "LOGSHIP_PII_HASH_KEY": PII_KEY,
           "LOGSHIP_LOG_LEVEL": "DEBUG"}  # fmt: skip
    with ingest(tmp_path, **env) as proc:
        statuses = {name: _status(proc.port, data) for name, data in MALFORMED.items()}
        # aiohttp logs a bad method at DEBUG on a connection's first request, at ERROR later.
        in_turn = _statuses_in_turn(proc.port, [
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
            b"P@ST /api/v2/logs?dd_api_key=" + TOKEN.encode() + b" HTTP/1.1\r\n\r\n"])  # fmt: skip
        # Framed correctly, refused by the handler: the token as an event name, a field, a body.
        junk = [{"message": orjson.dumps({"event": TOKEN, "x": TOKEN}).decode()}]
        body_reject = requests.post(proc.url + f"/api/v2/logs?dd_api_key={ENC_TOKEN}",
                                    data=orjson.dumps(junk), timeout=10,
                                    headers={"Content-Type": "application/json"})  # fmt: skip
        bad_body = requests.post(proc.url + "/v1/logs", data=b"{" + TOKEN.encode(), timeout=10,
                                 headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
        wrong_token = requests.post(proc.url + "/v1/logs", data=b"[]", timeout=10,
                                    headers={"Authorization": f"Bearer {TOKEN}x"})  # fmt: skip
        # A flood of one kind: summarised, not one line each.
        lines_before = len(proc.stderr().splitlines())
        for _ in range(200):
            _status(proc.port, MALFORMED["NUL in header"])
        good = _good_batch(proc.url)
        assert proc.alive()
        flood_lines = len(proc.stderr().splitlines()) - lines_before
    stderr = proc.stderr()

    assert good.status_code == 202, good.text
    refused = {n: s for n, s in statuses.items() if s is None or not 400 <= s < 500}
    assert not refused, f"malformed requests not answered with a 4xx: {refused}"
    assert in_turn == [200, 400]
    assert body_reject.status_code == 202, body_reject.text
    assert 400 <= bad_body.status_code < 500 and wrong_token.status_code == 401
    for secret in (TOKEN, PII_KEY):
        assert not _leaks(stderr, secret), f"{secret} leaked: {_leaks(stderr, secret)}"
    entries = [orjson.loads(line) for line in stderr.splitlines()]  # one JSON object per line
    counted = sum(sum(e["counts"].values()) for e in entries
                  if str(e["msg"]).startswith("malformed requests"))  # fmt: skip
    # The summary (its last line at exit) counts them all; a few of MALFORMED are refused by
    # the handler rather than the parser.
    assert counted >= 200 + len(MALFORMED) - 5
    assert flood_lines <= 5, f"{flood_lines} log lines for 200 malformed requests"


def test_bad_chunk_after_the_headers_is_answered_and_not_logged(tmp_path: Path) -> None:
    """A framing error in a body already being read: aiohttp's parser drops the request's
    payload without failing it, so the handler waits for a body that never comes — until the
    body read timeout answers 408. Neither that nor the disconnect logs the token."""
    late_bad_chunk = [
        GOOD_LINE + b"DD-API-KEY: " + TOKEN.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"2\r\n[]\r\nq" + TOKEN.encode() + b"\r\n",
    ]
    env = {"LOGSHIP_AUTH_TOKENS": TOKEN, "LOGSHIP_LOG_LEVEL": "DEBUG",
           "LOGSHIP_BODY_READ_TIMEOUT_S": "1"}  # fmt: skip
    with ingest(tmp_path, **env) as proc:
        status = _status(proc.port, late_bad_chunk, timeout_s=8)
        good = _good_batch(proc.url)
    assert status is not None and 400 <= status < 500, status
    assert good.status_code == 202
    assert not _leaks(proc.stderr(), TOKEN)


def test_loader_never_logs_the_warehouse_password(tmp_path: Path, s3_env: dict[str, str]) -> None:
    """An operator's bad day: the warehouse is unreachable and every cycle fails; the error
    lines (drivers put the connection parameters in their messages) never hold the password."""
    pw = urllib.parse.quote(WAREHOUSE_PASSWORD, safe="")
    url = f"redshift://logship:{pw}@127.0.0.1:9/dev"
    env = {"LOGSHIP_WAREHOUSE_URL": url, "LOGSHIP_LAKE_URL": f"s3://{s3_env['BUCKET']}",
           "LOGSHIP_REDSHIFT_IAM_ROLE": "arn:aws:iam::123456789012:role/x",
           "LOGSHIP_LOG_LEVEL": "DEBUG"}  # fmt: skip
    with loader(tmp_path, **env) as proc:
        wait_until(lambda: '"level":"error"' in proc.stderr() or '"warning"' in proc.stderr(),
                   timeout_s=20, what="a failed load cycle")  # fmt: skip
    stderr = proc.stderr()
    assert not _leaks(stderr, WAREHOUSE_PASSWORD), _leaks(stderr, WAREHOUSE_PASSWORD)


def test_a_flood_of_refused_requests_is_summarised(tmp_path: Path) -> None:
    """Well-framed requests the handler refuses (a wrong token, a body that is not JSON, an
    unknown encoding): 300 of them are a few summary lines with one example each, not a line
    per request — and the summary counts every one."""
    with ingest(tmp_path, LOGSHIP_AUTH_TOKENS=TOKEN) as proc:
        lines_before = len(proc.stderr().splitlines())
        auth = {"Authorization": f"Bearer {TOKEN}"}
        kinds = [
            ({"Authorization": "Bearer wrong-token-0000"}, b"[]", 401),
            ({**auth, "Content-Type": "application/json"}, b"{not json", 400),
            ({**auth, "Content-Encoding": "br"}, b"[]", 415),
        ]
        for i in range(300):
            headers, body, status = kinds[i % 3]
            r = requests.post(proc.url + "/v1/logs", data=body, headers=headers, timeout=10)
            assert r.status_code == status, r.text
        assert _good_batch(proc.url).status_code == 202
    stderr_lines = proc.stderr().splitlines()[lines_before:]
    assert len(stderr_lines) <= 10, f"{len(stderr_lines)} log lines for 300 refused requests"
    entries = [orjson.loads(line) for line in stderr_lines]
    counts = [e["counts"] for e in entries if e["msg"] == "requests refused"]
    total = {k: sum(c.get(k, 0) for c in counts) for k in ("401:unauthorized",
             "400:invalid_body", "415:unsupported_encoding")}  # fmt: skip
    assert total == {"401:unauthorized": 100, "400:invalid_body": 100,
                     "415:unsupported_encoding": 100}, counts  # fmt: skip
    assert any(e["msg"] == "request refused (an example)" for e in entries)
