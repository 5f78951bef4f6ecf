"""Soak: the whole pipeline under sustained load and injected faults, then an exact reconciliation.

Starts, as real processes on loopback: a moto S3 server, a small TCP proxy in front of it (so
S3 can "go down" without moto losing its state), `logship ingest` with `LOGSHIP_WORKERS=2`, and
`logship load` into DuckDB (default) or into the Redshift emulator (`--warehouse
redshift-emulator`: embedded PostgreSQL behind `tests/support/redshift_emulator`, reading COPY
sources through the same S3 proxy). Several asyncio senders post Vector-shaped batches (http
sink JSON arrays, gzip; some as Datadog intake, zstd) mixing registry events with noise,
unregistered and invalid records. Every registry event carries a unique `event_id` in its body,
`soak-<run>-<sender>-<batch>-<i>` (ingest keeps a body's `event_id`: see
docs/architecture.md#record-to-event), and a sender records the batches the server acknowledged
(200/202). Senders retry like Vector:
429/503/408/5xx, connection errors and timeouts are retried with capped exponential backoff and
jitter, resending the same bytes; a small share of requests use a client timeout shorter than
an acknowledgement can take, so some batches that were acknowledged (durable) are sent again
— and every `--resend-every`th acknowledged batch of a sender is sent again anyway (an ack
lost on its way back), so the loader's dropping of copies is exercised in every run.

Meanwhile, on a schedule (one printed line per action):

* ingest: SIGKILL one worker (a child of the supervisor, from /proc) and check the
  supervisor starts a new one (if it does not, the soak starts it itself and reports it);
* s3: the proxy closes its listener and resets every open connection for `--s3-outage-s`;
* loader: SIGKILL the loader mid-cycle — right after it PUTs a manifest (seen by the proxy),
  i.e. inside its load transaction — and start it again;
* db (emulator only): stop the Redshift emulator (refuses and drops connections) for
  `--db-outage-s`, then start it again.

At the end: stop sending, wait until both spools are empty (everything uploaded), SIGTERM ingest
(exit 0 expected), wait for the loader to catch up (a cycle after the last upload with no
pending object), SIGTERM the loader, then reconcile in the warehouse: every acknowledged
event_id must be in `logship.events` exactly once, and every lake object in the ledger.

The last line of stdout is one JSON object (`duration_s`, `acked_events`, `loaded_events`,
`lost`, `duplicates`, `ingest_kills`, `s3_outages`, `loader_kills`, `max_loader_lag_s`,
`records_per_s`, and more); the exit code is 1 when anything was lost or duplicated, or a fault
could not be injected, or another check failed (listed under `problems`).

    python bench/soak.py [--duration-s 300] [--senders 8] [--warehouse duckdb|redshift-emulator]
                         [--seed 1] [--workdir DIR] [--fault-interval-s 20]
                         [--schedule ingest,s3,loader[,db] | --schedule 5:ingest,15:s3,...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import zstandard
from isal import igzip

REPO = Path(__file__).resolve().parent.parent
BUCKET = "soak"
LAKE_PREFIX = "lake"
#: The keys of the last line the issue promises, present (null when unknown) even on failure.
RESULT_KEYS = ("duration_s", "acked_events", "loaded_events", "lost", "duplicates", "ingest_kills",
               "s3_outages", "loader_kills", "max_loader_lag_s", "records_per_s")  # fmt: skip
FAULT_KINDS = ("ingest", "s3", "loader", "db", "copy-s3")  # the last two: emulator only
T0 = time.monotonic()


def say(msg: str) -> None:
    """One line per action, with wall-clock time and seconds since start."""
    now = datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3]
    print(f"[{now} +{time.monotonic() - T0:7.2f}s] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL this child when the soak process dies (even by SIGKILL)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


# =============================================================================== role: S3 proxy


async def _proxy_main(listen_port: int, target_port: int) -> None:
    """A TCP proxy 127.0.0.1:listen → 127.0.0.1:target, driven by lines on stdin:
    `down` (close the listener, reset every open connection), `up` (listen again), `arm [S]`
    (report the next manifest PUT as `manifest` on stdout; with S, from then on answer the
    warehouse's S3 requests — boto3's, the emulator's COPY — with 503 SlowDown for S seconds,
    while aiobotocore's, the loader's and ingest's, pass), `quit`. Each command answers `ok`."""
    loop = asyncio.get_running_loop()
    conns: set[asyncio.StreamWriter] = set()
    armed = False
    slowdown_until = 0.0
    server: asyncio.AbstractServer | None = None
    body = (
        b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
    )
    slow = (
        b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    arm_slowdown_s = 0.0

    def out(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    async def pipe(
        r: asyncio.StreamReader, w: asyncio.StreamWriter, client: asyncio.StreamWriter | None
    ) -> None:
        nonlocal armed, slowdown_until
        try:
            while data := await r.read(65536):
                if client is not None:  # client → S3: look at the request
                    if armed and b"PUT /" in data and b"/manifests/" in data:
                        armed = False
                        out("manifest")
                        if arm_slowdown_s:
                            slowdown_until = time.monotonic() + arm_slowdown_s
                    if time.monotonic() < slowdown_until and b"Boto3/" in data:
                        client.write(slow)
                        await client.drain()
                        _reset(w)
                        client.close()
                        return
                w.write(data)
                await w.drain()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                w.close()

    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            _reset(cw)
            return
        conns.update((cw, uw))
        try:
            await asyncio.gather(pipe(cr, uw, cw), pipe(ur, cw, None))
        finally:
            conns.difference_update((cw, uw))

    def _reset(w: asyncio.StreamWriter) -> None:
        sock = w.get_extra_info("socket")
        with contextlib.suppress(OSError):
            if sock is not None:  # linger 0: close sends RST, like a crashed server
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        w.transport.abort()

    async def up() -> None:
        nonlocal server
        if server is None:
            server = await asyncio.start_server(
                handle, "127.0.0.1", listen_port, reuse_address=True
            )

    async def down() -> None:
        nonlocal server
        if server is not None:
            server.close()
            server = None
        for w in list(conns):
            _reset(w)
        conns.clear()

    await up()
    out(f"ready {listen_port}")
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        if line == "down":
            await down()
        elif line == "up":
            await up()
        elif line == "disarm":
            armed, arm_slowdown_s = False, 0.0
        elif line.startswith("arm"):
            armed = True
            arm_slowdown_s = float(line.split()[1]) if " " in line else 0.0
        elif line == "quit":
            break
        out("ok")
    await down()  # stdin closed (the soak died) or quit


# =========================================================================== role: emulator


def _emulator_main(s3_endpoint: str, log_copy: str) -> None:
    """Embedded PostgreSQL + the Redshift emulator (tests/support), driven by lines on stdin:
    `stop`, `start`, `quit`. Prints `ready <port> <postgres pid> <postgres dir>` first."""
    sys.path.insert(0, str(REPO))
    from tests.support.redshift_emulator import EmbeddedPostgres, RedshiftEmulator, postgres

    # Diagnostics in PostgreSQL's log (copied to the soak's logs/ at the end): slow
    # statements and lock waits (e.g. a ledger LOCK held by a killed loader's session).
    # autovacuum_naptime: PostgreSQL plans the loader's dedupe anti-join as a nested loop
    # while `events` has never been analysed (measured: 28 s for 14k rows into 14k), which
    # autovacuum fixes only after its first nap (60 s by default). Redshift analyses on COPY
    # (STATUPDATE) and hash-joins anyway, so this is an emulator artefact, not the loader's.
    postgres._SETTINGS.update(
        log_min_duration_statement="1000", log_lock_waits="on", deadlock_timeout="'1s'",
        autovacuum_naptime="'1s'",
    )  # fmt: skip
    pg = EmbeddedPostgres()
    pg.start()
    emu = RedshiftEmulator(pg, s3_endpoint_url=s3_endpoint)
    try:
        emu.start()
        emu.create_database("dev", owner="awsuser")
        pid = pg._process.pid if pg._process else 0
        print(f"ready {emu.port} {pid} {pg.host}", flush=True)
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "stop":
                emu.stop()
            elif cmd == "start":
                emu.start()
            elif cmd == "quit":
                break
            print("ok", flush=True)
    finally:
        with contextlib.suppress(Exception):
            emu.close()
        with contextlib.suppress(OSError):
            shutil.copyfile(pg.log_path, log_copy)
        pg.stop()


# ============================================================================= child processes


class Role:
    """A helper subprocess of this script (proxy, emulator) talking by lines on stdin/stdout."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process):
        self.name = name
        self.proc = proc
        self.events: asyncio.Queue[str] = asyncio.Queue()
        self.replies: asyncio.Queue[str] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, name: str, *args: str, log: Path) -> tuple[Role, str]:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        with open(log, "ab") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, str(Path(__file__).resolve()), "--_role", name, *args,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=err, start_new_session=True, env=env, cwd=str(REPO),
            )  # fmt: skip
        role = cls(name, proc)
        ready = await asyncio.wait_for(role.replies.get(), 120)
        if not ready.startswith("ready"):
            raise RuntimeError(f"{name} did not start: {ready!r} (see {log})")
        return role, ready

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := (await self.proc.stdout.readline()).decode().strip():
            (self.events if line == "manifest" else self.replies).put_nowait(line)
        self.replies.put_nowait("eof")

    async def cmd(self, line: str, timeout_s: float = 60) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()
        reply = await asyncio.wait_for(self.replies.get(), timeout_s)
        if reply != "ok":
            raise RuntimeError(f"{self.name} {line}: {reply}")

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                await self.cmd("quit", 5)
            with contextlib.suppress(Exception):
                self.proc.stdin.close()  # type: ignore[union-attr]
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                _killpg(self.proc.pid)
                await self.proc.wait()
        self._reader.cancel()


def _killpg(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _popen(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as f:
        return subprocess.Popen(
            cmd, env=env, cwd=str(REPO), stdin=subprocess.DEVNULL, stdout=f, stderr=f,
            start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip


def _children(pid: int) -> list[int]:
    """Live (non-zombie) children of `pid`, from /proc."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2 :].split()
        if int(rest[1]) == pid and rest[0] != "Z":
            out.append(int(d))
    return sorted(out)


def _holds_file(pid: int, suffixes: tuple[str, ...]) -> bool:
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}").endswith(suffixes):
                    return True
    except OSError:
        pass
    return False


async def _wait_http(url: str, proc: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{url}: process exited with {proc.returncode}")
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with s.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status < 500:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout_s}s")


def _metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


# ==================================================================================== batches

NOISE = (
    "{ts} INFO request_id={rid} GET /api/v1/robots/R-{r}/telemetry 200 {ms}ms upstream=fleet-gateway",
    "{ts} DEBUG pool=redis checkout took {ms}ms conns=12 idle=3",
    '{{"level":"info","msg":"heartbeat","robot_id":"R-{r}","battery":{ms},"ts":"{ts}"}}',
    "{ts} WARN retrying call to maps-api attempt=2 request_id={rid}",
)


@dataclass
class Batch:
    key: tuple[int, int]  # (sender, batch number)
    body: bytes
    headers: dict[str, str]
    path: str
    records: int
    events: int  # valid registry events (ids soak-<run>-<k>-<b>-0..events-1)
    rejected: int
    discarded: int


_POOL: dict[bool, tuple[float, list[bytes]]] = {}


def _envelope(message: str, datadog: bool, when: datetime, r: int) -> dict[str, Any]:
    """A record as Vector's http sink (kubernetes_logs source) or datadog_logs sink sends it."""
    if datadog:
        return {"message": message, "status": "info", "timestamp": int(when.timestamp() * 1000),
                "hostname": f"node-{r % 7}", "service": "dispatch", "ddsource": "python",
                "ddtags": "env:soak,version:1.0"}  # fmt: skip
    return {
        "file": "/var/log/pods/prod_dispatch-7d9f-abcde_1/dispatch/0.log",
        "kubernetes": {"container_name": "dispatch", "pod_labels": {"app": "dispatch"},
                       "pod_name": "dispatch-7d9f-abcde", "pod_namespace": "prod",
                       "pod_node_name": f"node-{r % 7}"},
        "message": message, "source_type": "kubernetes_logs", "stream": "stdout",
        "timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z",  # Vector: nanoseconds
    }  # fmt: skip


def _noise_pool(datadog: bool, rnd: random.Random) -> list[bytes]:
    """Serialised noise records, renewed every 30 s: the senders' CPU goes to sending."""
    made, pool = _POOL.get(datadog, (0.0, []))
    if time.monotonic() - made < 30:
        return pool
    now = datetime.now(UTC)
    ts = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    pool = []
    for _ in range(2048):
        r = rnd.randrange(500)
        msg = rnd.choice(NOISE).format(ts=ts, rid=uuid.UUID(int=rnd.getrandbits(128)).hex,
                                      r=r, ms=rnd.randrange(900))  # fmt: skip
        pool.append(orjson.dumps(_envelope(msg, datadog, now, r)))
    _POOL[datadog] = (time.monotonic(), pool)
    return pool


def make_batch(run: str, k: int, b: int, rnd: random.Random, datadog: bool) -> Batch:
    """100-1000 records: ~10% registry events (four shapes, each with its own event_id),
    0.2% invalid events (dead-lettered), 0.8% unregistered events, the rest plain log lines."""
    n = rnd.randint(100, 1000)
    now = datetime.now(UTC)
    ts = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    noise = _noise_pool(datadog, rnd)
    events = rejected = discarded = 0
    parts: list[bytes] = []
    for _ in range(n):
        x = rnd.random()
        if x >= 0.11:
            parts.append(noise[rnd.randrange(len(noise))])
            discarded += 1
            continue
        r = rnd.randrange(500)
        body: dict[str, Any]
        if x < 0.10:
            d = f"D-{rnd.randrange(10**6)}"
            which = rnd.randrange(4)
            if which == 0:
                body = {"event": "delivery.pickup_completed", "delivery_id": d,
                        "robot_id": f"R-{r}"}  # fmt: skip
            elif which == 1:
                body = {"event": "robot.state_changed", "robot_id": f"R-{r}", "from_state":
                        "available", "to_state": "on_trip", "reason": "dispatched",
                        "delivery_id": d}  # fmt: skip
            elif which == 2:
                body = {"event": "robot.error", "robot_id": f"R-{r}", "error_code": "lid_error",
                        "severity": "error", "message": "lid did not close"}  # fmt: skip
            else:  # Datadog's evt.name attribute with a Segment-style properties object
                body = {"evt": {"name": "delivery.dispatched"},
                        "properties": {"delivery_id": d, "robot_id": f"R-{r}", "trip_id": f"T-{b}"}}  # fmt: skip
            body["event_id"] = f"soak-{run}-{k}-{b}-{events}"
            body["timestamp"] = ts
            events += 1
        elif x < 0.102:  # invalid: dead-lettered, never loaded
            body = {"event": "robot.state_changed", "robot_id": f"R-{r}", "to_state": "flying",
                    "event_id": f"soak-{run}-{k}-{b}-x{rejected}", "timestamp": ts}  # fmt: skip
            rejected += 1
        else:  # a well-formed event the registry does not know: discarded
            body = {"event": "robot.telemetry_tick", "robot_id": f"R-{r}", "timestamp": ts}
            discarded += 1
        parts.append(orjson.dumps(_envelope(orjson.dumps(body).decode(), datadog, now, r)))
    raw = b"[" + b",".join(parts) + b"]"
    if datadog:
        body_bytes = zstandard.ZstdCompressor(level=3).compress(raw)
        headers = {"Content-Type": "application/json", "Content-Encoding": "zstd",
                   "DD-API-KEY": "soak", "User-Agent": "Vector/0.58.0 (soak)"}  # fmt: skip
        path = "/api/v2/logs"
    else:
        body_bytes = igzip.compress(raw, compresslevel=2)
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip",
                   "User-Agent": "Vector/0.58.0 (soak)", "Accept-Encoding": "identity"}  # fmt: skip
        path = "/v1/logs"
    return Batch((k, b), body_bytes, headers, path, n, events, rejected, discarded)


# ==================================================================================== state


@dataclass
class Stats:
    acked: dict[tuple[int, int], int] = field(default_factory=dict)  # batch -> valid events
    acked_records: int = 0
    attempts: int = 0
    retries: int = 0
    client_timeouts: int = 0
    resent_acked: int = 0
    conn_errors: int = 0
    status: Counter[str] = field(default_factory=Counter)
    dropped_4xx: int = 0
    ack_mismatch: int = 0
    abandoned: int = 0
    ack_lat: list[float] = field(default_factory=list)
    max_lag_s: float = 0.0
    max_spool_bytes: float = 0.0
    faults: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def acked_events(self) -> int:
        return sum(self.acked.values())


class TokenBucket:
    def __init__(self, rate: float):
        self.rate = rate
        self.tokens = rate * 0.2
        self.last = time.monotonic()

    async def take(self, n: int) -> None:
        if self.rate <= 0:
            return
        while True:
            now = time.monotonic()
            self.tokens = min(self.rate * 0.5, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= n:
                self.tokens -= n
                return
            await asyncio.sleep((n - self.tokens) / self.rate)


# =================================================================================== soak


class Soak:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.rnd = random.Random(args.seed)
        self.run = uuid.uuid4().hex[:8]
        self.emulated = args.warehouse == "redshift-emulator"
        self.stats = Stats()
        self.own_workdir = args.workdir is None
        self.workdir = Path(args.workdir or tempfile.mkdtemp(prefix="logship-soak-")).absolute()
        self.logs = self.workdir / "logs"
        self.moto: subprocess.Popen[bytes] | None = None
        self.ingest: subprocess.Popen[bytes] | None = None
        self.loader: subprocess.Popen[bytes] | None = None
        self.extra_workers: list[subprocess.Popen[bytes]] = []
        self.proxy: Role | None = None
        self.emulator: Role | None = None
        self.pg_pid = 0
        self.pg_dir = ""
        self.emu_port = 0
        self.sending = asyncio.Event()
        self.hard_stop = asyncio.Event()
        self.s3_down = False

    # ---------------------------------------------------------------- set-up

    def base_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("LOGSHIP_", "AWS_")) and k.lower() not in
               ("http_proxy", "https_proxy", "all_proxy")}  # fmt: skip
        env.update(
            AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL_S3=self.proxy_url,
            AWS_ENDPOINT_URL=self.proxy_url, NO_PROXY="127.0.0.1,localhost",
            LOGSHIP_LAKE_URL=f"s3://{BUCKET}/{LAKE_PREFIX}", LOGSHIP_LOG_LEVEL="INFO",
            TMPDIR=str(self.workdir / "tmp"),
        )  # fmt: skip
        return env

    async def start(self) -> None:
        a = self.args
        self.logs.mkdir(parents=True, exist_ok=True)
        (self.workdir / "tmp").mkdir(exist_ok=True)
        say(f"workdir {self.workdir}; run {self.run}; warehouse {a.warehouse}; seed {a.seed}")
        moto_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.moto = _popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                            str(moto_port)], env, self.logs / "moto.log")  # fmt: skip
        self.moto_url = f"http://127.0.0.1:{moto_port}"
        await _wait_http(f"{self.moto_url}/moto-api/", self.moto, 60)
        self.s3_client().create_bucket(Bucket=BUCKET)
        proxy_port = free_port()
        self.proxy, _ = await Role.start("proxy", str(proxy_port), str(moto_port),
                                         log=self.logs / "proxy.log")  # fmt: skip
        self.proxy_url = f"http://127.0.0.1:{proxy_port}"
        say(f"moto S3 on {self.moto_url}, fault proxy on {self.proxy_url}")
        if self.emulated:
            self.emulator, ready = await Role.start(
                "emulator", self.proxy_url, str(self.logs / "postgres.log"),
                log=self.logs / "emulator.log",
            )  # fmt: skip
            _, port, pid, pgdir = ready.split(maxsplit=3)
            self.emu_port, self.pg_pid, self.pg_dir = int(port), int(pid), pgdir
            say(f"redshift emulator on 127.0.0.1:{self.emu_port} (postgres pid {self.pg_pid})")
        self.ingest_port = free_port()
        self.loader_port = free_port()
        self.ingest_env = dict(
            self.base_env(),
            LOGSHIP_HTTP_ADDR=f"127.0.0.1:{self.ingest_port}",
            LOGSHIP_WORKERS=str(a.workers),
            LOGSHIP_SPOOL_DIR=str(self.workdir / "spool"),
            LOGSHIP_SPOOL_MAX_BYTES=str(a.spool_max_bytes),
            LOGSHIP_OBJECT_MAX_AGE_S=str(a.object_max_age_s),
            LOGSHIP_UPLOAD_BACKOFF_MAX_S="2",
            LOGSHIP_SHUTDOWN_TIMEOUT_S="60",
            LOGSHIP_WRITER_ID="soak",
        )
        if self.emulated:
            # The driver's socket timeout must exceed the statement timeout: a shorter one
            # abandons a slow load whose transaction keeps the ledger LOCK until the statement
            # ends, and every retry then waits on that lock.
            wh = (f"redshift://awsuser:emulator@127.0.0.1:{self.emu_port}/dev"
                  "?ssl=false&timeout=180")  # fmt: skip
        else:
            wh = f"duckdb:///{self.workdir / 'warehouse.duckdb'}"
        self.warehouse_url = wh
        self.loader_env = dict(
            self.base_env(),
            LOGSHIP_WAREHOUSE_URL=wh,
            LOGSHIP_REDSHIFT_IAM_ROLE="arn:aws:iam::123456789012:role/soak-loader",
            LOGSHIP_LOADER_HTTP_ADDR=f"127.0.0.1:{self.loader_port}",
            LOGSHIP_LOAD_INTERVAL_S="1",
            LOGSHIP_RETRY_BACKOFF_MAX_S="2",
            LOGSHIP_LOAD_MAX_OBJECTS=str(a.load_max_objects),
            LOGSHIP_STATEMENT_TIMEOUT_S="120",
        )
        self.ingest = _popen([sys.executable, "-m", "ingest.cli", "ingest"], self.ingest_env,
                             self.logs / "ingest.log")  # fmt: skip
        await _wait_http(f"http://127.0.0.1:{self.ingest_port}/healthz", self.ingest, 60)
        deadline = time.monotonic() + 30
        while len(_children(self.ingest.pid)) < a.workers and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        say(f"ingest on 127.0.0.1:{self.ingest_port}: supervisor {self.ingest.pid}, "
            f"workers {_children(self.ingest.pid)}")  # fmt: skip
        await self.start_loader()

    async def start_loader(self) -> None:
        self.loader = _popen([sys.executable, "-m", "ingest.cli", "load"], self.loader_env,
                             self.logs / "loader.log")  # fmt: skip
        await _wait_http(f"http://127.0.0.1:{self.loader_port}/healthz", self.loader, 60)
        say(f"loader running: pid {self.loader.pid}, metrics on 127.0.0.1:{self.loader_port}")

    def s3_client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.moto_url, aws_access_key_id="testing",
                            aws_secret_access_key="testing", region_name="us-east-1")  # fmt: skip

    # ---------------------------------------------------------------- senders

    async def sender(self, k: int, session: aiohttp.ClientSession, bucket: TokenBucket) -> None:
        rnd = random.Random(self.args.seed * 1000 + k)
        url = f"http://127.0.0.1:{self.ingest_port}"
        b = 0
        while self.sending.is_set():
            batch = make_batch(self.run, k, b, rnd, datadog=rnd.random() < 0.2)
            b += 1
            await bucket.take(batch.records)
            if not self.sending.is_set():
                break
            if await self.deliver(batch, session, url, rnd):
                self.stats.acked[batch.key] = batch.events
                self.stats.acked_records += batch.records
                if self.args.resend_every and b % self.args.resend_every == 0:
                    # As if the ack were lost on its way back: the same bytes again (short
                    # client timeouts do this by chance; this makes sure it happens).
                    self.stats.resent_acked += 1
                    await self.deliver(batch, session, url, rnd)
            else:
                self.stats.abandoned += 1
            await asyncio.sleep(0)

    async def deliver(
        self, batch: Batch, s: aiohttp.ClientSession, url: str, rnd: random.Random
    ) -> bool:
        """Send until acknowledged, like Vector: retry 408/429/5xx, connection errors and
        timeouts with capped exponential backoff (equal jitter), the same bytes each time."""
        st = self.stats
        failures = 0
        while not self.hard_stop.is_set():
            short = rnd.random() < self.args.short_timeout_share
            timeout = rnd.uniform(0.002, 0.05) if short else 30.0
            st.attempts += 1
            retry_after = 0.0
            t = time.monotonic()
            try:
                async with s.post(url + batch.path, data=batch.body, headers=batch.headers,
                                  timeout=aiohttp.ClientTimeout(total=timeout)) as r:  # fmt: skip
                    text = await r.read()
                    st.status[str(r.status)] += 1
                    if r.status in (200, 202):
                        if len(st.ack_lat) < 200_000:
                            st.ack_lat.append(time.monotonic() - t)
                        if r.status == 200:
                            got = orjson.loads(text)
                            want = {"accepted": batch.events, "rejected": batch.rejected,
                                    "discarded": batch.discarded}  # fmt: skip
                            if got != want:
                                st.ack_mismatch += 1
                                if st.ack_mismatch <= 3:
                                    say(f"ack counts differ for batch {batch.key}: "
                                        f"got {got}, sent {want}")  # fmt: skip
                        return True
                    if r.status in (408, 429) or r.status >= 500:
                        with contextlib.suppress(ValueError):
                            retry_after = float(r.headers.get("Retry-After", "0"))
                    else:
                        st.dropped_4xx += 1  # Vector would drop it: must never happen here
                        say(f"batch {batch.key} refused with {r.status}: {text[:200]!r}")
                        return False
            except TimeoutError:
                st.client_timeouts += 1
            except (aiohttp.ClientError, OSError):
                st.conn_errors += 1
            failures += 1
            st.retries += 1
            cap = min(self.args.retry_max_s, self.args.retry_base_s * 2 ** min(failures, 20))
            delay = max(cap / 2 + rnd.uniform(0, cap / 2), min(retry_after, self.args.retry_max_s))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.hard_stop.wait(), delay)
        return False

    # ---------------------------------------------------------------- faults

    def build_schedule(self) -> list[tuple[float, str]]:
        a = self.args
        kinds = [k for k in FAULT_KINDS if k not in ("db", "copy-s3") or self.emulated]
        items: list[tuple[float, str]] = []
        spec = [x.strip() for x in (a.schedule or "").split(",") if x.strip()]
        if spec and all(":" in x for x in spec):
            for x in spec:
                at, kind = x.split(":", 1)
                items.append((float(at), kind))
        else:
            order = spec or kinds
            t = a.warmup_s
            i = 0
            while t < a.duration_s - 2:
                items.append((t, order[i % len(order)]))
                i += 1
                t += a.fault_interval_s
        for _, kind in items:
            if kind not in FAULT_KINDS or (kind in ("db", "copy-s3") and not self.emulated):
                raise SystemExit(f"soak: unknown or unavailable fault kind {kind!r}")
        return items

    async def scheduler(self, items: list[tuple[float, str]], start: float) -> None:
        for at, kind in items:
            delay = start + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if not self.sending.is_set():
                break
            try:
                await getattr(self, f"fault_{kind.replace('-', '_')}")()
            except Exception as exc:
                self.stats.problems.append(f"fault {kind} at {at}s failed: {exc!r}")
                say(f"FAULT {kind} FAILED: {exc!r}")

    async def fault_ingest(self) -> None:
        assert self.ingest is not None
        sup = self.ingest.pid
        workers = [p for p in _children(sup) if b"--worker-index" in _cmdline(p)]
        if not workers:
            raise RuntimeError(f"no ingest worker under supervisor {sup}")
        victim = self.rnd.choice(workers)
        cmdline, environ = _cmdline(victim), _environ(victim)
        index = cmdline.split(b"\0")[cmdline.split(b"\0").index(b"--worker-index") + 1].decode()
        os.kill(victim, signal.SIGKILL)
        self.stats.faults["ingest_kills"] += 1
        say(f"ingest: SIGKILL worker {index} (pid {victim}) of supervisor {sup}")
        t = time.monotonic()
        while time.monotonic() - t < 20:
            now = [p for p in _children(sup) if b"--worker-index" in _cmdline(p)]
            new = [p for p in now if p not in workers]
            if victim not in now and any(_worker_index(p) == index for p in new):
                pid = next(p for p in new if _worker_index(p) == index)
                self.stats.faults["ingest_restarts_verified"] += 1
                say(f"ingest: supervisor restarted worker {index} as pid {pid} "
                    f"after {time.monotonic() - t:.1f}s")  # fmt: skip
                return
            await asyncio.sleep(0.1)
        # The supervisor did not: start the worker ourselves, in the supervisor's group.
        args = [a.decode() for a in cmdline.split(b"\0") if a]
        env = dict(
            line.split("=", 1)
            for line in environ.decode(errors="replace").split("\0")
            if "=" in line
        )
        with open(self.logs / "ingest.log", "ab") as f:
            p = subprocess.Popen(args, env=env, cwd=str(REPO), stdout=f, stderr=f,
                                 process_group=os.getpgid(sup))  # fmt: skip
        self.extra_workers.append(p)
        self.stats.faults["ingest_restarts_by_soak"] += 1
        self.stats.problems.append(f"supervisor did not restart worker {index} within 20s")
        say(f"ingest: supervisor did NOT restart worker {index}; soak started it as pid {p.pid}")

    async def fault_s3(self) -> None:
        assert self.proxy is not None
        d = self.args.s3_outage_s
        await self.proxy.cmd("down")
        self.s3_down = True
        self.stats.faults["s3_outages"] += 1
        say(f"s3: DOWN for {d:.0f}s (proxy listener closed, open connections reset)")
        try:
            await asyncio.sleep(d)
        finally:
            await self.proxy.cmd("up")
            self.s3_down = False
            say("s3: UP again")

    async def fault_loader(self) -> None:
        """SIGKILL the loader inside a load transaction: right after the proxy sees it PUT a
        manifest (written after the ledger LOCK, before the COPY). DuckDB cycles are short,
        so there the kill is only sent while the process holds the database file open; a
        cycle that ended first is skipped and the next one is tried (up to 5)."""
        assert self.proxy is not None and self.loader is not None
        pid = self.loader.pid
        wait_s = 15
        when, mid = f"with no manifest PUT seen for {wait_s}s (not mid-cycle)", False
        for attempt in range(5):
            while not self.proxy.events.empty():
                self.proxy.events.get_nowait()
            await self.proxy.cmd("arm")
            try:
                await asyncio.wait_for(self.proxy.events.get(), wait_s)
            except TimeoutError:
                break
            top = 1.0 if self.emulated else 0.03  # COPY on the emulator takes seconds
            delay = self.rnd.choice([0.0, self.rnd.uniform(0, top)])
            await asyncio.sleep(delay)
            when = f"{delay * 1000:.0f} ms after its manifest PUT"
            if self.emulated:
                mid = True  # inside its load transaction (COPY takes > 1 s there)
                when += " (inside its load transaction)"
                break
            mid = _holds_file(pid, (".duckdb", ".duckdb.wal"))  # open only during a cycle
            if mid:
                when += f" (attempt {attempt + 1}; DuckDB file open: inside the cycle)"
                break
            when += " (DuckDB file closed: the cycle had ended)"
        self.stats.faults["loader_kills_mid_cycle"] += mid
        os.kill(pid, signal.SIGKILL)
        self.loader.wait()
        self.stats.faults["loader_kills"] += 1
        say(f"loader: SIGKILL pid {pid} {when}")
        await self.start_loader()

    async def fault_copy_s3(self) -> None:
        """Emulator only: S3 fails for the warehouse (503 SlowDown to the emulator's COPY
        reads) but not for the loader, from the loader's next manifest PUT on, for
        `--copy-s3-outage-s`. The COPY fails with a query-level S3ServiceException (as in
        Redshift, after its own retries): the loader must retry, not quarantine good objects."""
        assert self.proxy is not None
        d = self.args.copy_s3_outage_s
        while not self.proxy.events.empty():
            self.proxy.events.get_nowait()
        await self.proxy.cmd(f"arm {d}")
        try:
            await asyncio.wait_for(self.proxy.events.get(), 15)
        except TimeoutError:
            await self.proxy.cmd("disarm")
            raise RuntimeError("no manifest PUT within 15s") from None
        self.stats.faults["copy_s3_faults"] += 1
        say(f"copy-s3: the warehouse's S3 reads get 503 SlowDown for {d:g}s from the loader's "
            "manifest PUT on (the loader's own S3 calls pass)")  # fmt: skip
        await asyncio.sleep(d)
        say("copy-s3: over")

    async def fault_db(self) -> None:
        assert self.emulator is not None
        d = self.args.db_outage_s
        await self.emulator.cmd("stop")
        self.stats.faults["db_outages"] += 1
        say(f"db: Redshift emulator STOPPED for {d:.0f}s (connections dropped and refused)")
        try:
            await asyncio.sleep(d)
        finally:
            await self.emulator.cmd("start")
            say("db: Redshift emulator started again")

    # ---------------------------------------------------------------- sampling

    async def sampler(self) -> None:
        last_print = time.monotonic()
        async with aiohttp.ClientSession() as s:
            while True:
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async with s.get(f"http://127.0.0.1:{self.loader_port}/metrics",
                                     timeout=aiohttp.ClientTimeout(total=2)) as r:  # fmt: skip
                        lag = _metric(await r.text(), "logship_loader_lag_seconds")
                        if lag is not None:
                            self.stats.max_lag_s = max(self.stats.max_lag_s, lag)
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async with s.get(f"http://127.0.0.1:{self.ingest_port}/metrics",
                                     timeout=aiohttp.ClientTimeout(total=2)) as r:  # fmt: skip
                        sp = _metric(await r.text(), "logship_ingest_spool_size_bytes")
                        if sp is not None:
                            self.stats.max_spool_bytes = max(self.stats.max_spool_bytes, sp)
                if time.monotonic() - last_print >= self.args.progress_s:
                    last_print = time.monotonic()
                    st = self.stats
                    say(f"progress: acked {st.acked_events} events / {st.acked_records} records "
                        f"in {len(st.acked)} batches, retries {st.retries}, statuses "
                        f"{dict(st.status)}, max loader lag {st.max_lag_s:.1f}s")  # fmt: skip
                await asyncio.sleep(1)

    # ---------------------------------------------------------------- the run

    async def load_phase(self) -> float:
        a = self.args
        items = self.build_schedule()
        say("schedule: " + ", ".join(f"{at:g}s {kind}" for at, kind in items))
        self.sending.set()
        conn = aiohttp.TCPConnector(limit=a.senders, force_close=False)
        bucket = TokenBucket(a.rate)
        start = time.monotonic()
        async with aiohttp.ClientSession(connector=conn) as session:
            senders = [asyncio.create_task(self.sender(k, session, bucket))
                       for k in range(a.senders)]  # fmt: skip
            sched = asyncio.create_task(self.scheduler(items, start))
            try:
                await asyncio.sleep(a.duration_s)
                self.sending.clear()
                duration = time.monotonic() - start
                say(f"load stopped after {duration:.1f}s; letting in-flight batches finish")
                await sched  # a fault in progress completes (S3 comes back up, ...)
                _, pending = await asyncio.wait(senders, timeout=a.grace_s)
                if pending:
                    self.hard_stop.set()
                    await asyncio.wait(senders)
                for task in senders:
                    if task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
            finally:  # interrupted: stop them before the session closes under them
                for task in [*senders, sched]:
                    task.cancel()
                await asyncio.gather(*senders, sched, return_exceptions=True)
        return duration

    async def drain(self) -> None:
        """Everything acknowledged reaches the lake, then ingest exits on SIGTERM."""
        assert self.ingest is not None
        t = time.monotonic()
        spool = self.workdir / "spool"
        while True:
            left = [p for p in spool.rglob("*") if p.suffix in (".open", ".ready")]
            if not left:
                break
            if time.monotonic() - t > self.args.drain_timeout_s:
                self.stats.problems.append(
                    f"spool not empty after drain timeout: {len(left)} segments"
                )
                break
            await asyncio.sleep(0.5)
        say(f"ingest spools empty after {time.monotonic() - t:.1f}s; SIGTERM to ingest")
        self.ingest.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(self.ingest.wait, 90)
        except subprocess.TimeoutExpired:
            code = None
            self.stats.problems.append("ingest did not exit within 90s of SIGTERM")
        for p in self.extra_workers:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(60)
        if code != 0:
            self.stats.problems.append(f"ingest exited with {code} after SIGTERM")
        left = [p.name for p in spool.rglob("*") if p.suffix in (".open", ".ready")]
        if left:
            self.stats.problems.append(f"spool segments left after ingest exit: {left[:5]}")
        say(f"ingest exited with {code}")

    async def catch_up(self) -> None:
        """Wait for a loader cycle that started after the last upload and left nothing."""
        assert self.loader is not None
        since = time.time()  # ingest has exited: every object is in the lake already
        first_end = 0.0
        t = time.monotonic()
        ok = False
        async with aiohttp.ClientSession() as s:
            while time.monotonic() - t < self.args.catchup_timeout_s:
                with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                    async with s.get(f"http://127.0.0.1:{self.loader_port}/metrics",
                                     timeout=aiohttp.ClientTimeout(total=5)) as r:  # fmt: skip
                        text = await r.text()
                    last = _metric(text, "logship_loader_last_success_timestamp_seconds") or 0
                    pending = _metric(text, "logship_loader_pending_objects")
                    lag = _metric(text, "logship_loader_lag_seconds")
                    if lag is not None:
                        self.stats.max_lag_s = max(self.stats.max_lag_s, lag)
                    # A cycle that ended after `since`, then another one after it: the second
                    # one started after every object was in the lake, and left none pending.
                    if last > since and not first_end:
                        first_end = last
                    if first_end and last > first_end and pending == 0 and lag == 0:
                        ok = True
                        break
                if self.loader.poll() is not None:
                    self.stats.problems.append(f"loader exited with {self.loader.returncode}")
                    break
                await asyncio.sleep(0.5)
        if not ok:
            self.stats.problems.append("loader did not catch up before the timeout")
        say(f"loader caught up ({ok}) after {time.monotonic() - t:.1f}s; SIGTERM to the loader")
        self.loader.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(self.loader.wait, 60)
        except subprocess.TimeoutExpired:
            code = None
        if code != 0:
            self.stats.problems.append(f"loader exited with {code} after SIGTERM")

    # ---------------------------------------------------------------- reconciliation

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.emulated:
            import redshift_connector

            conn = redshift_connector.connect(host="127.0.0.1", port=self.emu_port,
                                              database="dev", user="awsuser",
                                              password="emulator", ssl=False, timeout=60)  # fmt: skip
            try:
                cur = conn.cursor()
                cur.execute(sql)
                return [tuple(r) for r in cur.fetchall()]
            finally:
                conn.close()
        import duckdb

        con = duckdb.connect(str(self.workdir / "warehouse.duckdb"), read_only=True)
        try:
            return [tuple(r) for r in con.execute(sql).fetchall()]
        finally:
            con.close()

    def reconcile(self) -> dict[str, Any]:
        like = f"soak-{self.run}-%"
        total, distinct = self.query(
            f"SELECT count(*), count(DISTINCT event_id) FROM logship.events "
            f"WHERE event_id LIKE '{like}'"
        )[0]
        dup_ids = self.query(
            f"SELECT count(*) FROM (SELECT event_id FROM logship.events WHERE event_id LIKE "
            f"'{like}' GROUP BY event_id HAVING count(*) > 1) d"
        )[0][0]
        per_batch = self.query(
            "SELECT CAST(split_part(event_id, '-', 3) AS INTEGER), "
            "CAST(split_part(event_id, '-', 4) AS INTEGER), count(DISTINCT event_id) "
            f"FROM logship.events WHERE event_id LIKE '{like}' AND event_id NOT LIKE '%-x%' "
            "GROUP BY 1, 2"
        )
        # Invalid events (`…-x<n>`) are dead-lettered: one in the warehouse is a bug, and kept
        # out of the per-batch count above it cannot hide a lost valid event of its batch.
        rejected_loaded = self.query(
            f"SELECT count(*) FROM logship.events WHERE event_id LIKE '{like}' "
            "AND event_id LIKE '%-x%'"
        )[0][0]
        if rejected_loaded:
            self.stats.problems.append(f"{rejected_loaded} invalid events were loaded")
        loaded = {(int(k), int(b)): int(n) for k, b, n in per_batch}
        lost = 0
        lost_batches = []
        for key, n in self.stats.acked.items():
            missing = n - loaded.get(key, 0)
            if missing > 0:
                lost += missing
                lost_batches.append(key)
        unacked_loaded = sum(n for key, n in loaded.items() if key not in self.stats.acked)
        ledger = dict(self.query("SELECT object_key, status FROM logship.load_ledger"))
        s3 = self.s3_client()
        lake_keys = set()
        quarantine_keys = 0
        for prefix, dest in ((f"{LAKE_PREFIX}/events/", "events"),
                             (f"{LAKE_PREFIX}/quarantine/", "quarantine")):  # fmt: skip
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
                for o in page.get("Contents", []):
                    if dest == "events" and o["Key"].endswith(".json.gz"):
                        lake_keys.add(o["Key"][len(LAKE_PREFIX) + 1 :])
                    elif dest == "quarantine":
                        quarantine_keys += 1
        not_loaded = sorted(k for k in lake_keys if ledger.get(k) != "loaded")
        quarantined = sorted(k for k, s in ledger.items() if s == "quarantined")
        if not_loaded:
            self.stats.problems.append(
                f"{len(not_loaded)} lake objects not loaded: {not_loaded[:3]}"
            )
        if quarantined:
            self.stats.problems.append(f"{len(quarantined)} objects quarantined: {quarantined[:3]}")
        if lost_batches:
            say(f"LOST events in {len(lost_batches)} acknowledged batches, e.g. {lost_batches[:5]}")
        skipped = errors = 0  # from the loader's own log (its counters restart with it)
        with contextlib.suppress(OSError), open(self.logs / "loader.log", "rb") as f:
            for line in f:
                with contextlib.suppress(ValueError):
                    rec = orjson.loads(line)
                    if rec.get("msg") == "loaded":
                        skipped += int(rec.get("duplicates", 0))
                    elif rec.get("msg") == "load cycle failed; retrying":
                        errors += 1
        return {
            "loader_skipped_duplicates": skipped,
            "loader_failed_cycles": errors,
            "loaded_events": int(total),
            "lost": lost,
            "duplicates": int(dup_ids),
            "duplicate_rows": int(total) - int(distinct),
            "unacked_loaded": unacked_loaded,
            "lake_objects": len(lake_keys),
            "quarantined_objects": len(quarantined),
            "quarantine_files": quarantine_keys,
        }

    # ---------------------------------------------------------------- clean-up

    async def cleanup(self) -> None:
        for p in (self.loader, self.ingest, *self.extra_workers, self.moto):
            if p is not None:
                _killpg(p.pid)  # its process group: the ingest workers too
                with contextlib.suppress(Exception):
                    p.wait(10)
        for role in (self.emulator, self.proxy):
            if role is not None:
                await role.stop()
        if self.pg_pid:
            _killpg(self.pg_pid)  # normally stopped by the emulator role already
        if self.pg_dir and self.pg_dir.startswith(tempfile.gettempdir()):
            shutil.rmtree(self.pg_dir, ignore_errors=True)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def _worker_index(pid: int) -> str:
    parts = _cmdline(pid).split(b"\0")
    with contextlib.suppress(ValueError, IndexError):
        return parts[parts.index(b"--worker-index") + 1].decode()
    return ""


async def soak_main(args: argparse.Namespace) -> int:
    soak = Soak(args)
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    assert me is not None
    for sig in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, me.cancel)
    result: dict[str, Any] = {}
    ok = False
    sampler = None
    try:
        await soak.start()
        sampler = asyncio.create_task(soak.sampler())
        duration = await soak.load_phase()
        st = soak.stats
        if soak.s3_down:
            await soak.proxy.cmd("up")  # type: ignore[union-attr]
        t = time.monotonic()
        await soak.drain()
        drain_s = time.monotonic() - t
        t = time.monotonic()
        await soak.catch_up()
        catchup_s = time.monotonic() - t
        sampler.cancel()
        rec = soak.reconcile()
        lat = sorted(st.ack_lat)
        pct = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 1) if lat else None  # noqa: E731
        f = st.faults
        result = {
            "duration_s": round(duration, 1),
            "acked_events": st.acked_events,
            "loaded_events": rec["loaded_events"],
            "lost": rec["lost"],
            "duplicates": rec["duplicates"],
            "ingest_kills": f["ingest_kills"],
            "s3_outages": f["s3_outages"],
            "loader_kills": f["loader_kills"],
            "max_loader_lag_s": round(st.max_lag_s, 1),
            "records_per_s": round(st.acked_records / duration, 1),
            "warehouse": args.warehouse,
            "db_outages": f["db_outages"],
            "copy_s3_faults": f["copy_s3_faults"],
            "ingest_restarts_verified": f["ingest_restarts_verified"],
            "ingest_restarts_by_soak": f["ingest_restarts_by_soak"],
            "loader_kills_mid_cycle": f["loader_kills_mid_cycle"],
            "acked_batches": len(st.acked),
            "acked_records": st.acked_records,
            "events_per_s": round(st.acked_events / duration, 1),
            "unacked_loaded": rec["unacked_loaded"],
            "duplicate_rows": rec["duplicate_rows"],
            "lake_objects": rec["lake_objects"],
            "quarantined_objects": rec["quarantined_objects"],
            "loader_skipped_duplicates": rec["loader_skipped_duplicates"],
            "loader_failed_cycles": rec["loader_failed_cycles"],
            "attempts": st.attempts,
            "retries": st.retries,
            "client_timeouts": st.client_timeouts,
            "resent_acked": st.resent_acked,
            "connection_errors": st.conn_errors,
            "statuses": dict(st.status),
            "abandoned_batches": st.abandoned,
            "ack_p50_ms": pct(0.5),
            "ack_p99_ms": pct(0.99),
            "max_spool_bytes": int(st.max_spool_bytes),
            "drain_s": round(drain_s, 1),
            "catchup_s": round(catchup_s, 1),
            "senders": args.senders,
            "seed": args.seed,
            "problems": st.problems,
        }
        if st.dropped_4xx:
            st.problems.append(f"{st.dropped_4xx} batches refused with a 4xx")
        if st.ack_mismatch:
            st.problems.append(f"{st.ack_mismatch} acknowledgements with unexpected counts")
        required = {"ingest": "ingest_kills", "s3": "s3_outages", "loader": "loader_kills",
                    "db": "db_outages", "copy-s3": "copy_s3_faults"}  # fmt: skip
        for kind in {k for _, k in soak.build_schedule()}:
            if f[required[kind]] == 0:
                st.problems.append(f"fault {kind} was scheduled but never injected")
            if kind == "loader" and f["loader_kills_mid_cycle"] == 0:
                st.problems.append("the loader was never killed inside a load cycle")
        ok = rec["lost"] == 0 and rec["duplicates"] == 0 and not st.problems
        return 0 if ok else 1
    except asyncio.CancelledError:
        say("interrupted: cleaning up")
        result = {**dict.fromkeys(RESULT_KEYS), "error": "interrupted"}
        return 130
    except Exception as exc:
        say(f"soak failed: {exc!r}")
        result = {**dict.fromkeys(RESULT_KEYS), "error": repr(exc),
                  "problems": soak.stats.problems}  # fmt: skip
        return 1
    finally:
        if sampler is not None:
            sampler.cancel()
        await soak.cleanup()
        if soak.own_workdir and ok and not args.keep:
            shutil.rmtree(soak.workdir, ignore_errors=True)
        elif result:
            result["workdir"] = str(soak.workdir)
        print(json.dumps(result), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration-s", type=float, default=300, help="load duration (default 300)")
    ap.add_argument("--senders", type=int, default=8, help="concurrent senders (default 8)")
    ap.add_argument("--warehouse", choices=("duckdb", "redshift-emulator"), default="duckdb")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", help="default: a temp dir, removed after a clean run")
    ap.add_argument("--keep", action="store_true", help="keep the temp workdir")
    ap.add_argument("--schedule", help="fault order (ingest,s3,loader,db) or times (5:ingest,...)")
    ap.add_argument("--fault-interval-s", type=float, default=20)
    ap.add_argument("--warmup-s", type=float, default=5, help="first fault after this")
    ap.add_argument("--s3-outage-s", type=float, default=10)
    ap.add_argument("--db-outage-s", type=float, default=8)
    ap.add_argument("--copy-s3-outage-s", type=float, default=5,
                    help="copy-s3 fault (emulator): its length")  # fmt: skip
    ap.add_argument(
        "--rate", type=float, default=0, help="records/s of all senders; 0 (default): unlimited"
    )
    ap.add_argument("--short-timeout-share", type=float, default=0.05,
                    help="share of requests sent with a 2-50 ms client timeout (default 0.05)")  # fmt: skip
    ap.add_argument("--resend-every", type=int, default=40,
                    help="each sender sends every Nth acknowledged batch again (0: never)")  # fmt: skip
    ap.add_argument("--retry-base-s", type=float, default=0.2)
    ap.add_argument("--retry-max-s", type=float, default=5)
    ap.add_argument("--workers", type=int, default=2, help="LOGSHIP_WORKERS")
    ap.add_argument("--spool-max-bytes", type=int, default=4 * 1024 * 1024,
                    help="LOGSHIP_SPOOL_MAX_BYTES per worker; small, so an S3 outage fills it")  # fmt: skip
    ap.add_argument("--object-max-age-s", type=float, default=2)
    ap.add_argument("--load-max-objects", type=int, default=50)
    ap.add_argument("--grace-s", type=float, default=60)
    ap.add_argument("--drain-timeout-s", type=float, default=180)
    ap.add_argument("--catchup-timeout-s", type=float, default=300)
    ap.add_argument("--progress-s", type=float, default=15)
    ap.add_argument("--_role", help=argparse.SUPPRESS)
    args, rest = ap.parse_known_args(argv)
    if args._role == "proxy":
        asyncio.run(_proxy_main(int(rest[0]), int(rest[1])))
        return 0
    if args._role == "emulator":
        _emulator_main(rest[0], rest[1])
        return 0
    if rest:
        ap.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return asyncio.run(soak_main(args))
    except KeyboardInterrupt:  # the finally blocks in soak_main have cleaned up
        return 130


if __name__ == "__main__":
    sys.exit(main())
