"""Human report output never hands a stored value's control characters to the terminal.

Values in the warehouse come from senders: an event name, a robot id or a reason holding
`ESC ]0;title BEL` (retitle the terminal), `ESC [2J` (clear it), a bare `\\r` (overwrite the
line), an 8-bit CSI (U+009B) or a right-to-left override (U+202E) must print as readable
escapes. The events go through the real loader into DuckDB and the real `logship` commands
run as subprocesses; `--json` stays exact.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from loader.reports import terminal_safe
from tests.loader.helpers import event, object_key, put_local

TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J"
HOSTILE = {
    "event_name": "delivery.created" + TITLE,
    "service": "svc\r" + CLEAR,
    "robot_id": "R" + CLEAR,
    "reason": "lid\x9b31m_error\u202eevil",
    "error_code": "a\nb\tc\x7f\x00",
    "merchant_id": "M\u2066iso\u2069\u200f",
}


def at(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=UTC)


def _rows() -> list[dict[str, Any]]:
    robot, reason = HOSTILE["robot_id"], HOSTILE["reason"]
    created = event(HOSTILE["event_name"], occurred=at("2026-03-05T10:00:00"), delivery_id="D-esc",
                    merchant_id=HOSTILE["merchant_id"])  # fmt: skip
    created["service"] = HOSTILE["service"]
    return [
        created,
        event(
            "delivery.dispatched",
            occurred=at("2026-03-05T10:01:00"),
            delivery_id="D-esc",
            robot_id=robot,
        ),
        event(
            "robot.error",
            occurred=at("2026-03-05T10:02:00"),
            robot_id=robot,
            error_code=HOSTILE["error_code"],
        ),
        event(
            "robot.state_changed",
            occurred=at("2026-03-05T10:03:00"),
            robot_id=robot,
            from_state="available",
            to_state="error",
            reason=reason,
        ),
        event(
            "robot.state_changed",
            occurred=at("2026-03-05T11:03:00"),
            robot_id=robot,
            from_state="error",
            to_state="available",
            reason="fixed",
        ),
        event("delivery.created", occurred=at("2026-03-05T10:00:30"), delivery_id="D-2"),
    ]


@pytest.fixture(scope="module")
def warehouse_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The hostile events loaded into DuckDB by a real `logship load --once`."""
    tmp = tmp_path_factory.mktemp("reports")
    put_local(tmp / "lake", object_key(0), _rows())
    env = {"PATH": "/usr/bin:/bin", "LOGSHIP_LAKE_URL": str(tmp / "lake"),
           "LOGSHIP_WAREHOUSE_URL": f"duckdb:///{tmp}/wh.duckdb"}  # fmt: skip
    assert _logship(env, "load", "--once").returncode == 0
    return env


def _logship(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "ingest.cli", *args]
    return subprocess.run(cmd, env=env, capture_output=True, timeout=120)


def _assert_terminal_safe(raw: bytes) -> str:
    """No byte or character a terminal would act on, other than the lines' own newlines."""
    text = raw.decode("utf-8")
    bad = sorted({hex(ord(c)) for c in text if c != "\n" and terminal_safe(c) != c})
    assert not bad, f"raw control characters in the output: {bad}"
    assert b"\x1b" not in raw and b"\r" not in raw and b"\x07" not in raw
    return text


def test_session_table_escapes_control_characters(warehouse_env: dict[str, str]) -> None:
    r = _logship(warehouse_env, "session", "D-esc")
    assert r.returncode == 0, r.stderr
    text = _assert_terminal_safe(r.stdout)
    lines = text.splitlines()
    assert len(lines) == 2 + 4  # header, column names, one line per event: no value broke a line
    assert "delivery.created\\x1b]0;pwned\\x07" in text  # readable as what was stored
    assert "svc\\r\\x1b[2J" in text and "R\\x1b[2J" in text
    assert "reason=lid\\x9b31m_error\\u202eevil" in text
    assert "error_code=a\\nb\\tc\\x7f\\x00" in text
    assert "merchant_id=M\\u2066iso\\u2069\\u200f" in text


def test_session_json_is_exact(warehouse_env: dict[str, str]) -> None:
    r = _logship(warehouse_env, "session", "D-esc", "--json")
    assert r.returncode == 0, r.stderr
    _assert_terminal_safe(r.stdout)
    events = {e["event_name"]: e for e in json.loads(r.stdout)}
    created = events[HOSTILE["event_name"]]
    assert created["service"] == HOSTILE["service"]
    assert created["properties"]["merchant_id"] == HOSTILE["merchant_id"]
    assert events["robot.error"]["properties"]["error_code"] == HOSTILE["error_code"]
    assert events["robot.state_changed"]["properties"]["reason"] == HOSTILE["reason"]


def test_unknown_delivery_message_is_escaped(warehouse_env: dict[str, str]) -> None:
    r = _logship(warehouse_env, "session", "D" + TITLE)
    assert r.returncode == 1
    assert "D\\x1b]0;pwned\\x07" in _assert_terminal_safe(r.stderr)


def test_supply_hours_and_funnel_escape_control_characters(
    warehouse_env: dict[str, str],
) -> None:
    r = _logship(warehouse_env, "supply-hours", "--date", "2026-03-05")
    assert r.returncode == 0, r.stderr
    text = _assert_terminal_safe(r.stdout)
    assert "R\\x1b[2J" in text and "lid\\x9b31m_error\\u202eevil" in text
    r = _logship(warehouse_env, "supply-hours", "--json")
    assert HOSTILE["reason"] in json.loads(r.stdout)[0]["downtime_hours"]
    r = _logship(warehouse_env, "funnel", "--date", "2026-03-05")
    assert r.returncode == 0, r.stderr
    assert "1 deliveries" in _assert_terminal_safe(r.stdout)  # D-2 (D-esc has no created)


def test_terminal_safe_keeps_printable_text() -> None:
    assert terminal_safe("Zürich → 東京 ✓ \\x1b") == "Zürich → 東京 ✓ \\x1b"
    assert terminal_safe("\x1b\x9b\u202e\u2028\t") == "\\x1b\\x9b\\u202e\\u2028\\t"
    assert terminal_safe(None) == "None"


def _first_line_then_close(env: dict[str, str], *args: str) -> tuple[int, bytes, bytes]:
    """`logship ARGS | head -1`: read one line, close the pipe, then wait for the command."""
    cmd = [sys.executable, "-m", "ingest.cli", *args]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    return proc.wait(120), first, err


@pytest.mark.parametrize(
    "args",
    [
        ("session", "D-esc"),
        ("session", "D-esc", "--json"),
        ("supply-hours", "--date", "2026-11-23"),
        ("funnel",),
        ("config",),
        ("registry", "export", "--format", "typescript"),
        ("registry", "export", "--format", "jsonschema"),
    ],
    ids=lambda a: " ".join(a),
)
def test_a_reader_that_stops_early_is_not_an_error(
    warehouse_env: dict[str, str], args: tuple[str, ...]
) -> None:
    """Every command that prints, piped into `head -1`: exit 0, no traceback, no
    "Exception ignored" from the final flush. (An output that fits the pipe's buffer may be
    written whole before the reader closes; the JSON Schema export, ~350 KB, always meets
    the closed pipe — it is the case that failed before.)"""
    code, first, err = _first_line_then_close(warehouse_env, *args)
    assert first, err.decode()[-2000:]
    assert code == 0, err.decode()[-2000:]
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()[-2000:]
