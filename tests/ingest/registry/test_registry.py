"""The registry: the bundled file covers the seed events; a broken one fails with one message
per problem naming the event and the field; `logship registry check` reports both ways."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ingest.registry import RegistryError, load_registry, parse_registry

LIFECYCLE = [
    "delivery.created",
    "delivery.dispatched",
    "delivery.pickup_started",
    "delivery.pickup_completed",
    "delivery.dropoff_started",
    "delivery.dropoff_completed",
    "delivery.failed",
    "delivery.cancelled",
]


def test_bundled_registry_covers_the_seed_events() -> None:
    reg = load_registry()
    assert reg.entities == ("delivery_id", "robot_id", "trip_id", "merchant_id", "pilot_id")
    for name in LIFECYCLE:
        fields = reg.events[name].spec.fields
        assert fields["delivery_id"].required, name
    for name in LIFECYCLE[1:6]:
        assert reg.events[name].spec.fields["robot_id"].required, name
    sc = reg.events["robot.state_changed"].spec.fields
    assert sc["robot_id"].required and sc["to_state"].required
    assert set(sc["to_state"].enum or []) == {
        "available", "assigned", "on_trip", "charging", "maintenance", "error", "offline",
    }  # fmt: skip
    assert sc["customer_phone"].pii == "hash"
    err = reg.events["robot.error"].spec.fields
    assert err["robot_id"].required and err["error_code"].required
    for name in (
        "server_load_order_started", "server_load_order_success", "server_load_order_error",
        "server_load_order_close_lid_success", "server_load_order_close_lid_error",
        "server_unlock_bot_started", "server_unlock_bot_error",
        "server_unlock_bot_open_lid_success", "server_unlock_bot_open_lid_error",
        "pilot_cancel_trip", "pilot_hard_reset", "pilot_troubleshooting_step",
        "order_tracker_open", "order_tracker_rating_submit", "order_unlock_coco",
        "order_unlock_coco_confirm", "deliveries_unlock_coco_success",
        "deliveries_unlock_coco_fail", "app_banner_viewed", "app_banner_clicked",
        "app_banner_dismissed",
    ):  # fmt: skip
        assert name in reg.events, name
    banner = reg.events["app_banner_viewed"].spec.fields
    assert {"order_id", "merchant_name", "position", "displayed_savings", "delivery_status"} <= set(
        banner
    )


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (
            "version: 1\nevents:\n  a.b:\n    fields:\n      x: {type: float}\n",
            ["'a.b'", "'x'", "type"],
        ),
        (
            "version: 1\nevents:\n  a.b:\n    fields:\n      x: {type: integer, enum: [1]}\n",
            ["'a.b'", "'x'", "enum"],
        ),
        ("version: 1\nevents:\n  Bad/Name:\n    fields: {}\n", ["Bad/Name"]),
        ("version: 1\nevents:\n  a.b: {}\n  a.b: {}\n", ["duplicate key 'a.b'"]),
        ("version: 1\nentities: [robot-id]\nevents:\n  a.b: {}\n", ["robot-id"]),
        ("version: 1\nentities: [event_id]\nevents:\n  a.b: {}\n", ["event_id", "reserved"]),
        ("version: 2\nevents:\n  a.b: {}\n", ["version"]),
        (
            "version: 1\nevents:\n  a.b:\n    fields:\n      Bad-Field: {type: string}\n",
            ["Bad-Field"],
        ),
        ("version: 1\nevents:\n  a.b:\n    colour: red\n", ["'a.b'", "colour"]),
        (  # a field name is a SUPER key: at most a Redshift identifier's 127 bytes
            "version: 1\nevents:\n  a.b:\n    fields:\n      " + "f" * 128 + ": {type: string}\n",
            ["'a.b'", "f" * 128, "127"],
        ),
        ("[not, a, mapping]", ["mapping"]),
        ("version: 1\nevents: {a.b: {fields: {x: {type: string}}}\n", ["YAML"]),
    ],
)
def test_broken_registry_names_event_and_field(text: str, needles: list[str]) -> None:
    with pytest.raises(RegistryError) as ei:
        parse_registry(text)
    msg = str(ei.value)
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_all_problems_reported_at_once() -> None:
    text = (
        "version: 1\nevents:\n  a.b:\n    fields:\n      x: {type: float}\n"
        "  c.d:\n    fields:\n      y: {type: nope}\n"
    )
    with pytest.raises(RegistryError) as ei:
        parse_registry(text)
    assert len(ei.value.problems) == 2


def test_cli_registry_check(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "ingest.cli", "registry", "check"],
                        capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "events" in ok.stdout
    bad = tmp_path / "r.yaml"
    bad.write_text("version: 1\nevents:\n  a.b:\n    fields:\n      x: {type: float}\n")
    r = subprocess.run([sys.executable, "-m", "ingest.cli", "registry", "check", str(bad)],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 1
    assert "'a.b'" in r.stderr and "'x'" in r.stderr


TIMESTAMPS = parse_registry(
    "version: 1\nevents:\n  a.b:\n    fields:\n      t: {type: timestamp}\n", "timestamps"
)


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("2026-11-23T09:30:00+01:00", "2026-11-23T08:30:00.000000Z"),
        ("2026-11-23T08:30:00", "2026-11-23T08:30:00.000000Z"),  # naive: UTC
        ("0005-03-04T05:06:07.5Z", "0005-03-04T05:06:07.500000Z"),  # strftime wrote "5-03-04"
        ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
    ],
)
def test_timestamp_fields_are_stored_as_rfc3339_utc(value: str, stored: str) -> None:
    assert TIMESTAMPS.events["a.b"].adapter.validate_python({"t": value}) == {"t": stored}


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_timestamp_field_off_the_calendar_in_utc_is_a_validation_error(value: str) -> None:
    """The offset pushes it outside datetime's years 1..9999: an OverflowError escaped pydantic
    (and became the catch-all dead letter) before."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        TIMESTAMPS.events["a.b"].adapter.validate_python({"t": value})
