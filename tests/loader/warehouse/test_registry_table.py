"""`logship.event_registry`: the loader keeps one row per registry event, in step with the
registry it runs with — on DuckDB and through the Redshift emulator.

Populated by the first load; untouched (one SELECT) when a loader starts with the same
registry; rewritten in one transaction when the registry changed (a removed event disappears,
a changed description shows)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ingest.registry import bundled_registry_text, load_registry
from tests.loader.helpers import event, loader_settings, make_loader, object_key, put_local, q
from tests.loader.warehouse.test_redshift import env, loader_for, put, query  # noqa: F401

BUNDLED = load_registry()
COLUMNS = "event_name, version, description, owner, fields, entity_columns, registry_sha256"


def changed_registry(tmp_path: Path) -> Path:
    """The bundled registry without `robot.error`, with a new description for
    `delivery.created`."""
    doc = yaml.safe_load(bundled_registry_text())
    del doc["events"]["robot.error"]
    doc["events"]["delivery.created"]["description"] = "An order became a delivery."
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def check_rows(rows: list[tuple[Any, ...]], registry_path: Path | None = None) -> None:
    """The table holds exactly the registry: names, descriptions, owners, fields, entities."""
    reg = load_registry(registry_path)
    by_name = {r[0]: r for r in rows}
    assert len(rows) == len(by_name) == len(reg.events)
    assert set(by_name) == set(reg.events)
    for name, ev in reg.events.items():
        _, version, description, owner, fields, entities, digest = by_name[name]
        assert (version, description, owner) == (
            ev.spec.version,
            ev.spec.description,
            ev.spec.owner,
        )
        fields = json.loads(fields) if isinstance(fields, str) else fields
        # Compared as a mapping: SUPER (jsonb in the emulator) does not keep key order.
        assert fields == {f: fs.model_dump(exclude_none=True) for f, fs in ev.spec.fields.items()}
        entities = json.loads(entities) if isinstance(entities, str) else entities
        assert entities == [e for e in reg.entities if e in ev.spec.fields]
        assert digest == reg.content_hash()
    sc = by_name.get("robot.state_changed")
    if sc is not None:
        fields = json.loads(sc[4]) if isinstance(sc[4], str) else sc[4]
        assert fields["to_state"]["required"] is True
        assert fields["to_state"]["enum"][0] == "available"
        assert fields["customer_phone"] == {"type": "string", "required": False, "pii": "hash"}
        assert json.loads(sc[5]) == ["delivery_id", "robot_id", "trip_id", "pilot_id"]


# ---------------------------------------------------------------------------------- DuckDB


async def test_duckdb_registry_table_follows_the_registry(tmp_path: Path) -> None:
    put_local(tmp_path / "lake", object_key(1), [event(delivery_id="D-1", robot_id="R-1")])
    loader = await make_loader(loader_settings(tmp_path))
    assert (await loader.cycle()).loaded_events == 1
    check_rows(q(tmp_path, f"SELECT {COLUMNS} FROM logship.event_registry"))
    # JSON in DuckDB: queryable as such, and joinable with the events.
    assert q(
        tmp_path,
        "SELECT fields->>'$.to_state.type' FROM logship.event_registry "
        "WHERE event_name = 'robot.state_changed'",
    ) == [("string",)]
    assert q(
        tmp_path,
        "SELECT r.owner, count(*) FROM logship.events e "
        "JOIN logship.event_registry r USING (event_name) GROUP BY 1",
    ) == [("dispatch", 1)]
    stamp = q(tmp_path, "SELECT min(updated_at), max(updated_at) FROM logship.event_registry")

    # Same registry, a new loader: the table is left alone.
    await (await make_loader(loader_settings(tmp_path))).cycle()
    assert (
        q(tmp_path, "SELECT min(updated_at), max(updated_at) FROM logship.event_registry") == stamp
    )

    # Changed registry: the removed event disappears, the new description shows.
    changed = changed_registry(tmp_path)
    await (await make_loader(loader_settings(tmp_path, registry_path=changed))).cycle()
    rows = q(tmp_path, f"SELECT {COLUMNS} FROM logship.event_registry")
    check_rows(rows, changed)
    assert "robot.error" not in {r[0] for r in rows}
    assert q(
        tmp_path,
        "SELECT description FROM logship.event_registry WHERE event_name = 'delivery.created'",
    ) == [("An order became a delivery.",)]


# ------------------------------------------------------------------------------- Redshift


def registry_statements(statements: list[str]) -> list[str]:
    """The first word of each statement on `event_registry`."""
    return [s.split()[0].upper() for s in statements if '"event_registry"' in s]


async def test_redshift_registry_table_follows_the_registry(
    env: dict[str, Any],  # noqa: F811
    redshift_emulator: Any,
    tmp_path: Path,
) -> None:
    put(env, object_key(1), [event(delivery_id="D-1", robot_id="R-1")])
    loader = await loader_for(env)
    assert (await loader.cycle()).loaded_events == 1
    assert registry_statements(redshift_emulator.statements) == [
        "CREATE", "SELECT", "LOCK", "SELECT", "DELETE", "INSERT",
    ]  # fmt: skip
    select = (
        "SELECT event_name, version, description, owner, JSON_SERIALIZE(fields), "
        "JSON_SERIALIZE(entity_columns), registry_sha256 FROM logship.event_registry"
    )
    check_rows(query(redshift_emulator, env, select))
    # Parameters are bound: no registry text in the SQL.
    insert = next(
        s
        for s in redshift_emulator.statements
        if s.startswith('INSERT INTO "logship"."event_registry"')
    )
    assert "JSON_PARSE(" in insert and "dispatch" not in insert

    # Same registry, a new loader: one SELECT, nothing written.
    redshift_emulator.clear_statements()
    await (await loader_for(env)).cycle()
    assert registry_statements(redshift_emulator.statements) == ["CREATE", "SELECT"]

    # Changed registry: rewritten in one locked transaction.
    changed = changed_registry(tmp_path)
    redshift_emulator.clear_statements()
    await (await loader_for(env, registry_path=changed)).cycle()
    assert registry_statements(redshift_emulator.statements) == [
        "CREATE", "SELECT", "LOCK", "SELECT", "DELETE", "INSERT",
    ]  # fmt: skip
    rows = query(redshift_emulator, env, select)
    check_rows(rows, changed)
    assert "robot.error" not in {r[0] for r in rows}
    assert query(
        redshift_emulator,
        env,
        "SELECT description FROM logship.event_registry WHERE event_name = 'delivery.created'",
    ) == [("An order became a delivery.",)]


async def test_redshift_normal_cycles_do_not_touch_the_registry_table(
    env: dict[str, Any],  # noqa: F811
    redshift_emulator: Any,
) -> None:
    loader = await loader_for(env)
    await loader.cycle()
    put(env, object_key(1), [event(delivery_id="D-1", robot_id="R-1")])
    redshift_emulator.clear_statements()
    assert (await loader.cycle()).loaded_events == 1
    assert registry_statements(redshift_emulator.statements) == []
