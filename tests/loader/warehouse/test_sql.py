"""The warehouse's SQL is derived from the canonical event (ingest/event.py): the table DuckDB
creates and the keys its reader reads are exactly the event's columns, and the dialect's JSON
fragments read what the analyses ask for. Identifiers never carry anything but plain names."""

from __future__ import annotations

import gzip
from pathlib import Path

import duckdb
import orjson
import pytest

from ingest.event import columns, lake_columns
from loader.warehouse import sql
from tests.loader.helpers import ENTITIES, event


def test_events_table_and_reader_follow_the_canonical_event(tmp_path: Path) -> None:
    con = duckdb.connect(":memory:")
    d = sql.DUCKDB
    con.execute(sql.create_schema(d, "s"))
    con.execute(sql.create_events(d, "s", ENTITIES))
    con.execute(sql.add_column(d, "s", "site_id"))
    got = [r[0] for r in con.execute(sql.existing_columns(d), ["s", sql.EVENTS]).fetchall()]
    assert got == [*columns(ENTITIES), "site_id"]  # an added entity comes last
    path = tmp_path / "o.json.gz"
    path.write_bytes(gzip.compress(orjson.dumps(event(delivery_id="D1")) + b"\n"))
    con.execute(sql.read_json_stage(d, ENTITIES), [[str(path)]])
    staged = con.execute(f"SELECT * FROM {sql.ident(sql.STAGE)}")
    assert [c[0] for c in staged.description] == lake_columns(ENTITIES)
    row = dict(zip(lake_columns(ENTITIES), staged.fetchone(), strict=True))
    assert row["delivery_id"] == "D1" and row["robot_id"] is None


@pytest.mark.parametrize("d", [sql.REDSHIFT, sql.DUCKDB], ids=lambda d: d.name)
def test_json_fragments_per_dialect(d: sql.Dialect) -> None:
    text = d.json_text("properties", "to_state")
    assert "properties" in text and "to_state" in text
    assert "properties" in d.json_out("properties")
    with pytest.raises(ValueError):
        d.json_text("properties", "x') OR 1=1 --")


def test_duckdb_json_fragments_read_the_property() -> None:
    con = duckdb.connect(":memory:")
    d = sql.DUCKDB
    row = con.execute(
        f"SELECT {d.json_text('p', 'to_state')}, {d.json_out('p')} "
        f"FROM (SELECT {d.json_param} AS p)",
        ['{"to_state": "on_trip", "n": 1}'],
    ).fetchone()
    assert row[0] == "on_trip"
    assert orjson.loads(row[1]) == {"to_state": "on_trip", "n": 1}


@pytest.mark.parametrize("name", ['a"b', "Robot", "1x", "", "x" * 128, "a b", "é"])
def test_ident_refuses_anything_but_plain_names(name: str) -> None:
    with pytest.raises(ValueError):
        sql.ident(name)


def test_literal_doubles_quotes_and_refuses_nul() -> None:
    assert sql.literal("it's") == "'it''s'"
    with pytest.raises(ValueError):
        sql.literal("a\x00b")
