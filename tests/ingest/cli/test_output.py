"""Every `logship` command that prints, read by one that stops early (`logship … | head -1`):
the command exits as if everything had been read — no traceback, no "Exception ignored" from
the final flush.

Each command runs as a real process: piped into `head -1` as a user would (the first line is
the one expected: the command did print), and with its stdout a pipe whose reader has already
gone. Only the second reliably meets the closed pipe: an output that fits the pipe's buffer is
written whole before `head` exits. Python's stdout on a pipe is block-buffered by default, so
the closed pipe shows at the final flush; with PYTHONUNBUFFERED (as some test runners and
containers set it) it shows at the first write, inside the command: both are run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import orjson
import pytest

from ingest.app import build_app
from ingest.demo import SWAP_DELIVERY_ID, generate
from ingest.registry.export import FORMATS
from tests.conftest import free_port, make_settings
from tests.ingest.cli.test_dev import send_example_until_up
from tests.ingest.demo.support import DAY, extract
from tests.loader.helpers import object_key, put_local

LOGSHIP = (sys.executable, "-m", "ingest.cli")
BASH = shutil.which("bash") or "/bin/bash"


def environment(*, buffered: bool = True, **settings: str) -> dict[str, str]:
    """This environment without any LOGSHIP_ setting of its own, plus `settings`; stdout
    block-buffered (Python's default on a pipe) or not."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGSHIP_", "PYTHONUNBUF"))}
    env.update(settings)
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The demo's day loaded into DuckDB by a real `logship load --once`, and two registries
    for `registry diff` (two compatible changes between them)."""
    tmp = tmp_path_factory.mktemp("output")
    rows = [orjson.loads(line) for line in extract(generate(DAY)).events]
    put_local(tmp / "lake", object_key(0), rows)
    (tmp / "old.yaml").write_text("version: 1\nevents:\n  a.b: {}\n")
    (tmp / "new.yaml").write_text("version: 1\nevents:\n  a.b: {}\n  c.d: {}\n  e.f: {}\n")
    env = environment(LOGSHIP_LAKE_URL=str(tmp / "lake"),
                      LOGSHIP_WAREHOUSE_URL=f"duckdb:///{tmp}/wh.duckdb",
                      TEST_DIR=str(tmp))  # fmt: skip
    load = subprocess.run([*LOGSHIP, "load", "--once"], env=env, capture_output=True, timeout=120)
    assert load.returncode == 0, load.stderr.decode()[-2000:]
    return env


def closed_pipe() -> int:
    """The write end of a pipe whose reader has gone: every write to it fails (EPIPE)."""
    read, write = os.pipe()
    os.close(read)
    return write


def assert_quiet_exit(code: int | None, stderr: bytes) -> None:
    text = stderr.decode(errors="replace")
    assert code == 0, text[-2000:]
    for sign in ("Traceback", "BrokenPipe", "Exception ignored"):
        assert sign not in text, text[-2000:]


def args_in(env: dict[str, str], args: tuple[str, ...]) -> list[str]:
    """`args` with `{dir}` standing for the fixture's directory."""
    return [a.format(dir=env["TEST_DIR"]) for a in args]


CASES: list[tuple[tuple[str, ...], bytes]] = [
    (("--help",), b"usage: logship "),
    (("demo", "--help"), b"usage: logship demo "),
    (("session", SWAP_DELIVERY_ID), f"delivery {SWAP_DELIVERY_ID}: ".encode()),
    (("session", SWAP_DELIVERY_ID, "--json"), b"["),
    (("supply-hours", "--date", DAY.isoformat()), b"robot "),
    (("funnel", "--date", DAY.isoformat()), f"{DAY}: ".encode()),
    (("registry", "check"), b"ok: "),
    *[(("registry", "export", "--format", fmt), b"") for fmt in FORMATS],
    (("registry", "diff", "{dir}/old.yaml", "{dir}/new.yaml"), b""),
    (("registry", "diff", "{dir}/old.yaml", "{dir}/new.yaml", "--json"), b"["),
    (("config",), b"| variable | used by | default | meaning |"),
]


@pytest.mark.parametrize(("args", "first"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_piped_into_head(env: dict[str, str], args: tuple[str, ...], first: bytes) -> None:
    """`logship ARGS | head -1`, exit status of logship (pipefail)."""
    script = 'set -o pipefail; "$@" | head -1'
    cmd = [BASH, "-c", script, "bash", *LOGSHIP, *args_in(env, args)]
    r = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
    assert_quiet_exit(r.returncode, r.stderr)
    assert r.stdout.count(b"\n") == 1 and r.stdout.strip(), r.stdout
    assert r.stdout.startswith(first), r.stdout


#: Unbuffered, the closed pipe shows wherever the command writes: argparse, a report, a print.
UNBUFFERED = [
    c for c in CASES if c[0][:1] in (("--help",), ("session",), ("registry",), ("config",))
]


@pytest.mark.parametrize(
    ("args", "buffered"),
    [(a, True) for a, _ in CASES] + [(a, False) for a, _ in UNBUFFERED],
    ids=[" ".join(a) for a, _ in CASES] + [f"{' '.join(a)} unbuffered" for a, _ in UNBUFFERED],
)
def test_reader_gone_before_the_first_line(
    env: dict[str, str], args: tuple[str, ...], buffered: bool
) -> None:
    run_env = env if buffered else {**env, "PYTHONUNBUFFERED": "1"}
    stdout = closed_pipe()
    try:
        r = subprocess.run([*LOGSHIP, *args_in(env, args)], env=run_env, stdout=stdout,
                           stderr=subprocess.PIPE, timeout=120)  # fmt: skip
    finally:
        os.close(stdout)
    assert_quiet_exit(r.returncode, r.stderr)


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
async def test_demo_summary_to_a_reader_gone(
    aiohttp_server: object, tmp_path: Path, buffered: bool
) -> None:
    """`logship demo` sends the whole day, then its summary meets the closed pipe."""
    server = await aiohttp_server(build_app(make_settings(tmp_path)))  # type: ignore[operator]
    url = str(server.make_url("/v1/logs"))
    stdout = closed_pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *LOGSHIP, "demo", "--url", url, "--robots", "2", "--deliveries", "3",
            env=environment(buffered=buffered), stdout=stdout, stderr=subprocess.PIPE,
        )  # fmt: skip
    finally:
        os.close(stdout)
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    assert_quiet_exit(proc.returncode, err)


async def test_dev_serves_on_when_its_banner_meets_a_reader_gone(tmp_path: Path) -> None:
    """`logship dev | head -1` with `head` gone before the banner: the banner is lost, the
    pipeline is not — it loads what it is sent and stops cleanly on SIGTERM."""
    port, lport = free_port(), free_port()
    env = environment(LOGSHIP_HTTP_ADDR=f"127.0.0.1:{port}", LOGSHIP_UI_HTTP_ADDR="127.0.0.1:0",
                      LOGSHIP_LOADER_HTTP_ADDR=f"127.0.0.1:{lport}")  # fmt: skip
    stdout = closed_pipe()
    try:
        proc = subprocess.Popen([*LOGSHIP, "dev"], cwd=tmp_path, env=env, stdout=stdout,
                                stderr=subprocess.PIPE)  # fmt: skip
    finally:
        os.close(stdout)
    try:
        async with aiohttp.ClientSession() as s:
            await send_example_until_up(s, port, proc)
            # The loader cycles after the banner: loaded events show it went on running.
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    async with s.get(f"http://127.0.0.1:{lport}/metrics") as r:
                        if "logship_loader_loaded_events_total 3.0" in await r.text():
                            break
                assert time.monotonic() < deadline, "the loader never loaded the batch"
                await asyncio.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        assert_quiet_exit(code, proc.stderr.read())  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            proc.kill()
