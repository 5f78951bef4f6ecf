"""Hostile: a JSON-escaped key is the same key to every reader.

`"\\u0065vent"` is `"event"` to any JSON parser. The server reads a JSON array either lazily
(only `message`/`log`, when no record seems to have an event-name key of its own) or fully;
the choice must not depend on how a key is spelled, or the same event is kept by one path and
discarded as noise by the other. Every spelling below must be accepted, on every route and
body format, and land in the lake as the event it is.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import requests

from tests.conftest import read_lake_local
from tests.hostile.procs import Proc, ingest, wait_until

#: Spellings of the three name keys (each a JSON string's inside) and how each carries a name.
NAME_KEYS = {
    "\\u0065vent": '"robot.error"',
    "e\\u0076ent": '"robot.error"',
    "\\u0065\\u0076\\u0065\\u006E\\u0074": '"robot.error"',
    "\\u0065vt.name": '"robot.error"',
    "e\\u0076t\\u002ename": '"robot.error"',
    "\\u0065vt": '{"n\\u0061me":"robot.error"}',
    "e\\u0076t": '{"name":"robot.error"}',
}
#: Spellings of the keys of the log line that holds the app's JSON.
LINE_KEYS = ["\\u006dessage", "m\\u0065ssage", "\\u006Cog", "l\\u006fg"]
NOISE = '{"message":"GET /api/v1/robots/7 200 12ms"}'


def record(key: str, value: str, i: int) -> str:
    return f'{{"{key}":{value},"robot_id":"R-{i}","error_code":"E{i}"}}'


def line_record(key: str, i: int) -> str:
    app_line = orjson.dumps({"event": "robot.error", "robot_id": f"R-{i}", "error_code": f"E{i}"})
    return f'{{"{key}":{orjson.dumps(app_line.decode()).decode()}}}'


def post(proc: Proc, path: str, body: str, content_type: str) -> requests.Response:
    return requests.post(
        proc.url + path, data=body.encode(), headers={"Content-Type": content_type}, timeout=30
    )


def test_every_spelling_of_a_name_key_is_an_event(tmp_path: Path) -> None:
    records = [record(k, v, i) for i, (k, v) in enumerate(NAME_KEYS.items())]
    records += [line_record(k, 100 + i) for i, k in enumerate(LINE_KEYS)]
    with ingest(tmp_path) as proc:
        # One record per batch among noise: nothing else in the body has a name key.
        for i, rec in enumerate(records):
            resp = post(proc, "/v1/logs", f"[{NOISE},{rec},{NOISE}]", "application/json")
            assert resp.json() == {"accepted": 1, "discarded": 2, "rejected": 0}, (i, rec)
        # All of them together, as NDJSON, and through the Datadog intake.
        body = "\n".join(records)
        resp = post(proc, "/v1/logs", body, "application/x-ndjson")
        assert resp.json() == {"accepted": len(records), "discarded": 0, "rejected": 0}
        resp = post(proc, "/api/v2/logs", f"[{NOISE},{','.join(records)}]", "application/json")
        assert resp.status_code == 202
        expected = 3 * len(records)
        wait_until(
            lambda: len(read_lake_local(tmp_path / "lake")) == expected,
            what=f"{expected} events in the lake",
        )
    rows = read_lake_local(tmp_path / "lake")
    assert {r["event_name"] for r in rows} == {"robot.error"}
    ids = sorted(r["robot_id"] for r in rows)
    wanted = [f"R-{i}" for i in range(len(NAME_KEYS))] + [f"R-{100 + i}" for i in range(4)]
    assert ids == sorted(wanted * 3)


def test_a_name_key_spelled_inside_a_string_is_not_a_key(tmp_path: Path) -> None:
    """The escaped spelling inside a string value (an app's log text) is text, not a key:
    those records stay noise on either path."""
    texts = ['"\\\\u0065vent: started"', '"{\\"\\\\u0065vent\\" is not JSON here"']
    with ingest(tmp_path) as proc:
        for text in texts:
            resp = post(proc, "/v1/logs", f'[{{"message":{text}}}]', "application/json")
            assert resp.json() == {"accepted": 0, "discarded": 1, "rejected": 0}, text
