"""The README's read-only Redshift user, created with exactly its statements on the emulator:
the UI browses as that user, and that user cannot write."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import redshift_connector

from loader.errors import sqlstate
from loader.ui.problems import UNAVAILABLE, Problem
from loader.ui.visits import WarehouseVisits
from tests.loader.helpers import ENTITIES, load_objects
from tests.loader.ui.conftest import serve, ui_settings
from tests.loader.ui.scenario import DAY, OBJECTS
from tests.loader.warehouse.test_redshift import ROLE, rs_url

README = Path(__file__).parents[3] / "README.md"


def readme_grants() -> list[str]:
    """The SQL block of the README's "A read-only Redshift user", statement by statement."""
    text = README.read_text()
    section = text.split("**A read-only Redshift user.**", 1)[1]
    block = section.split("```sql\n", 1)[1].split("```", 1)[0]
    return [s.strip() for s in block.split(";") if s.strip()]


def run_admin(db: dict[str, Any], statements: list[str]) -> None:
    con = redshift_connector.connect(**db)
    con.autocommit = True
    try:
        cur = con.cursor()
        for stmt in statements:
            cur.execute(stmt)
    finally:
        con.close()


@pytest.fixture
async def readonly(tmp_path: Path, s3_env: dict[str, str], redshift_db: dict[str, Any],
                   moto_endpoint: str) -> dict[str, Any]:  # fmt: skip
    """The loader's settings, the UI's as the read-only user, that user's and the admin's
    connection kwargs."""
    loader = ui_settings(tmp_path, lake_url=f"s3://{s3_env['BUCKET']}",
                         warehouse_url=rs_url(redshift_db), redshift_iam_role=ROLE)  # fmt: skip
    await load_objects(loader, OBJECTS, endpoint=moto_endpoint, bucket=s3_env["BUCKET"])
    user = f"ui_{uuid.uuid4().hex[:10]}"
    grants = [re.sub(r"\blogship_ui\b", user, s) for s in readme_grants()]
    grants = [re.sub(r"\blogship_loader\b", redshift_db["user"], s) for s in grants]
    assert any(s.startswith("CREATE USER") for s in grants)
    run_admin(redshift_db, grants)
    mine = dict(redshift_db, user=user, password="choose-a-long-password")
    ui = loader.model_copy(update={"warehouse_url": type(loader.warehouse_url)(rs_url(mine))})
    return {"loader": loader, "ui": ui, "user": mine, "admin": redshift_db}


async def test_the_ui_browses_as_the_read_only_user(readonly: Any, aiohttp_client: Any) -> None:
    client = await serve(readonly["ui"], aiohttp_client)
    for path in ("/", "/deliveries/D-1", f"/robots/R-1?date={DAY}", f"/supply-hours?date={DAY}",
                 f"/supply-hours?date={DAY}&reason=lid_error", f"/funnel?date={DAY}",
                 "/api/deliveries/D-1"):  # fmt: skip
        resp = await client.get(path)
        assert resp.status == 200, (path, (await resp.text())[:300])
    as_owner = await serve(readonly["loader"], aiohttp_client)
    for path in ("/api/deliveries/D-1", f"/api/supply-hours?date={DAY}", f"/api/funnel?date={DAY}"):
        mine = await (await client.get(path)).text()
        assert mine == await (await as_owner.get(path)).text(), path


async def test_the_read_only_user_cannot_write(readonly: Any) -> None:
    writes = ("CREATE TABLE logship.sneaky (x INTEGER)", "DELETE FROM logship.events",
              "DROP VIEW logship.supply_hours_daily", "UPDATE logship.events SET host = 'x'")  # fmt: skip
    for stmt in writes:
        con = redshift_connector.connect(**readonly["user"])
        try:
            with pytest.raises(redshift_connector.ProgrammingError) as caught:
                con.cursor().execute(stmt)
            assert sqlstate(caught.value)[0] in ("42501", "42809"), stmt  # insufficient privilege
        finally:
            con.close()
    reader = WarehouseVisits(readonly["ui"], ENTITIES)  # through the UI's reader: a 503, not a 500
    try:
        with pytest.raises(Problem) as problem:
            await reader.run(lambda wh: wh.query(writes[0]))
        assert problem.value.kind is UNAVAILABLE
    finally:
        reader.close()
    # what the loader creates later is readable too (the default privileges)
    run_admin(readonly["admin"], ["CREATE TABLE logship.later (x INTEGER)",
                                  "INSERT INTO logship.later VALUES (7)"])  # fmt: skip
    con = redshift_connector.connect(**readonly["user"])
    try:
        cur = con.cursor()
        cur.execute("SELECT x FROM logship.later")
        assert [tuple(r) for r in cur.fetchall()] == [(7,)]
    finally:
        con.close()
