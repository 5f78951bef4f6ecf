"""The lake's key layouts, spelled out: ingest writes them, the loader lists them, operators and
warehouse jobs read them. A change here is a change of the lake's format."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from ingest.lake import keys

AT = datetime(2026, 11, 23, 8, 5, 9, 123456, tzinfo=UTC)
KEY = "events/dt=2026-11-23/hour=08/w-0a1b2c3d-000000000042.json.gz"


def test_object_keys_are_partitioned_by_received_hour_and_deterministic() -> None:
    assert keys.object_key(keys.EVENTS, "2026-11-23", "08", "w", "0a1b2c3d", 42) == KEY
    assert keys.object_key(keys.REJECTED, "2026-11-23", "08", "w", "0a1b2c3d", 42) == (
        "rejected/dt=2026-11-23/hour=08/w-0a1b2c3d-000000000042.json.gz"
    )


def test_a_taken_key_falls_back_to_one_named_for_the_content() -> None:
    alt = keys.content_key(KEY, b"body")
    assert alt == "events/dt=2026-11-23/hour=08/w-0a1b2c3d-000000000042-230d8358dc8e8890.json.gz"
    assert keys.content_key(KEY, b"body") == alt != keys.content_key(KEY, b"other")
    assert keys.is_object(alt)


def test_listing_prefixes_and_what_counts_as_an_object() -> None:
    assert keys.stream_prefix(keys.EVENTS) == "events/"
    assert keys.day_prefix(keys.EVENTS, date(2026, 1, 2)) == "events/dt=2026-01-02/"
    assert KEY.startswith(keys.day_prefix(keys.EVENTS, AT.date()))
    assert keys.is_object(KEY)
    assert not keys.is_object("events/dt=2026-11-23/hour=08/.tmp-0123")
    assert not keys.is_object("events/dt=2026-11-23/hour=08/x.json")


def test_manifest_and_quarantine_keys_stay_outside_the_streams() -> None:
    assert (
        keys.manifest_key(AT, "0123456789ab") == "manifests/dt=2026-11-23/080509-0123456789ab.json"
    )
    assert keys.quarantine_key(KEY) == f"quarantine/{KEY}"
    assert keys.quarantine_copy_key(KEY, AT) == f"quarantine/{KEY}.20261123T080509123456Z"
    assert keys.quarantine_note_key(KEY) == f"quarantine/{KEY}.reason.json"
    for key in (
        keys.manifest_key(AT, "0123456789ab"),
        keys.quarantine_key(KEY),
        keys.quarantine_copy_key(KEY, AT),
        keys.quarantine_note_key(KEY),
    ):
        assert not key.startswith(keys.stream_prefix(keys.EVENTS))


def test_a_batch_is_partitioned_by_the_utc_hour_it_was_received() -> None:
    part = keys.partition(AT)
    assert part == "2026-11-23T08"
    assert (keys.partition_day(part), keys.partition_hour(part)) == ("2026-11-23", "08")
    est = AT.astimezone(timezone(timedelta(hours=-5)))  # the same instant, another offset
    assert keys.partition(est) == part
