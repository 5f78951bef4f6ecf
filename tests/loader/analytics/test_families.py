"""Which lane an event is drawn in and whether it is an error: by service, else by family."""

from __future__ import annotations

import pytest

from loader.analytics import LANES, is_error, lane


@pytest.mark.parametrize(
    ("service", "name", "want"),
    [
        ("dispatch", "delivery.created", "dispatch"),
        ("fleet", "robot.state_changed", "robot"),
        ("pilot-ui", "pilot_hard_reset", "pilot"),
        ("server", "deliveries_unlock_coco_success", "server"),  # the service decides
        ("tracker", "order_tracker_open", "tracker"),
        (None, "robot.error", "robot"),  # no service: the family decides
        (None, "pilot_soft_reset", "pilot"),
        ("", "server_load_order_started", "server"),
        ("unknown-svc", "order_unlock_coco", "tracker"),
        ("unknown-svc", "page_viewed", "tracker"),
        ("<script>", "merchant_asset_missing", "other"),
    ],
)
def test_lane(service: str | None, name: str, want: str) -> None:
    assert lane({"service": service, "event_name": name}) == want
    assert want in LANES


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("robot.error", True),
        ("delivery.failed", True),
        ("server_unlock_bot_open_lid_error", True),
        ("pilot_hard_reset_fail", True),
        ("error_mercator_error", True),
        ("delivery.cancelled", False),
        ("robot.state_changed", False),
        ("pilot_troubleshooting_step", False),
    ],
)
def test_is_error(name: str, want: bool) -> None:
    assert is_error({"event_name": name}) is want
