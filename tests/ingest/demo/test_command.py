"""`logship demo`: the summary and the swap hint it prints, and the message when no sink answers."""

from __future__ import annotations

from typing import Any

import pytest

from ingest.demo import SWAP_DELIVERY_ID, command, sender
from loader.analytics import USABLE_STATES
from tests.conftest import free_port
from tests.ingest.demo.support import extract


def test_main_prints_the_summary_and_the_swap_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[str, int, int, str | None]] = []

    async def fake_send(url: str, records: list[dict[str, Any]], batch_size: int = 500,
                        token: str | None = None) -> dict[str, int]:  # fmt: skip
        calls.append((url, len(records), batch_size, token))
        out = extract(records)
        return {"accepted": sum(out.accepted.values()),
                "discarded": sum(out.discarded.values()), "rejected": 0, "batches": 1}  # fmt: skip

    monkeypatch.setattr(command, "send", fake_send)
    monkeypatch.setenv("LOGSHIP_DEMO_TOKEN", "env-tok")
    assert (
        command.main(
            ["--date", "2026-11-23", "--url", "http://h:1/v1/logs"], usable_states=USABLE_STATES
        )
        == 0
    )
    out = capsys.readouterr().out
    assert calls == [("http://h:1/v1/logs", 8000, 500, "env-tok")]
    assert "2026-11-23, 6 robots, 40 deliveries" in out
    assert "accepted 800, discarded 7200, rejected 0" in out
    assert f"logship session {SWAP_DELIVERY_ID}" in out
    assert "lid_error" in out


def test_main_reports_an_unreachable_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def no_sleep(s: float) -> None:
        return None

    monkeypatch.setattr(sender, "_sleep", no_sleep)
    url = f"http://127.0.0.1:{free_port()}/v1/logs"
    assert (
        command.main(
            ["--url", url, "--deliveries", "2", "--robots", "2"], usable_states=USABLE_STATES
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "cannot reach" in err and "logship dev" in err
