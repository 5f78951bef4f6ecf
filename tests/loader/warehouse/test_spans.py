"""`delivery_spans` through the real loader, on DuckDB and the Redshift emulator: kept in the
load transaction (bounds that hold every event of a delivery, widened by later loads, rolled
back with a failed load), and built from `events` when a warehouse from before the table is
upgraded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from loader import analytics, reports
from loader.analytics import Reader
from loader.errors import LoadFailed, Phase
from loader.warehouse import sql
from tests.loader.helpers import event, loader_settings, make_loader, object_key, put_local
from tests.loader.warehouse.test_redshift import ROLE, loader_for, put, rs_url

T0 = datetime(2026, 3, 5, 10, tzinfo=UTC)
#: An id the bucket must hash the same in Python and in every warehouse (UTF-8 bytes).
ODD = "Dé 'x' \"y\" <z> 🚚;--"


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture(params=["duckdb", "redshift"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """How to put an object in the lake and get a loader, for the backend under test."""
    if request.param == "duckdb":
        settings = loader_settings(tmp_path)
        return {
            "settings": settings,
            "put": lambda key, rows: put_local(tmp_path / "lake", key, rows),
            "loader": lambda: make_loader(settings),
        }
    s3_env = request.getfixturevalue("s3_env")
    db = request.getfixturevalue("redshift_db")
    from tests.conftest import s3_client

    env = {"bucket": s3_env["BUCKET"], "s3": s3_client(request.getfixturevalue("moto_endpoint"))}
    env["settings"] = loader_settings(tmp_path, lake_url=f"s3://{env['bucket']}",
                                      warehouse_url=rs_url(db), redshift_iam_role=ROLE)  # fmt: skip
    return {
        "settings": env["settings"],
        "put": lambda key, rows: put(env, key, rows),
        "loader": lambda: loader_for(env),
    }


def _read(settings: Any, statement: str, params: list[Any] | None = None) -> list[tuple]:
    wh = reports._warehouse(settings)
    try:
        return wh.query(statement.replace("?", wh.dialect.param), params or [])
    finally:
        wh.close()


def _spans(settings: Any) -> dict[str, tuple[datetime, datetime]]:
    """Each delivery's bounds (over its rows), after checking every row's bucket."""
    rows = _read(settings, f"SELECT bucket, delivery_id FROM {_t(sql.SPANS)}")
    assert all(b == sql.spans_bucket(d) for b, d in rows), rows
    rows = _read(settings, f"SELECT delivery_id, MIN(first_at), MAX(last_at) FROM "
                           f"{_t(sql.SPANS)} GROUP BY delivery_id")  # fmt: skip
    return {d: (_utc(a), _utc(b)) for d, a, b in rows}


def _exact(settings: Any) -> dict[str, tuple[datetime, datetime]]:
    rows = _read(settings, f"SELECT delivery_id, MIN(occurred_at), MAX(occurred_at) FROM "
                           f"{_t(sql.EVENTS)} WHERE delivery_id IS NOT NULL GROUP BY delivery_id")  # fmt: skip
    return {d: (_utc(a), _utc(b)) for d, a, b in rows}


def _t(name: str) -> str:
    return sql.table("logship", name)


def _utc(v: datetime) -> datetime:
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


async def _cycles(loader: Any) -> None:
    loader.max_objects = 1
    for _ in range(6):
        if not (await loader.cycle()).more:
            break


async def test_spans_hold_every_event_and_widen_with_later_loads(
    backend: dict[str, Any],
) -> None:
    put_obj = backend["put"]
    dup_id = "ev-dup"
    put_obj(object_key(0), [
        event("delivery.created", occurred=_at(0), delivery_id="D1"),
        event("delivery.dispatched", occurred=_at(5), delivery_id="D1", robot_id="R1"),
        event("delivery.created", occurred=_at(1), event_id=dup_id, delivery_id="D2"),
        event("robot.error", occurred=_at(2), robot_id="R1"),  # no delivery: no span
        event("delivery.created", occurred=_at(3), delivery_id=ODD),
    ])  # fmt: skip
    put_obj(object_key(1), [
        event("delivery.dropoff_completed", occurred=_at(40), delivery_id="D1", robot_id="R1"),
        event("delivery.created", occurred=_at(-3), delivery_id="D1"),  # late, and earlier
        # A resend of an id already loaded, carrying another delivery and time: skipped by
        # the insert, yet it widens bounds (wider is allowed, narrower never).
        event("delivery.created", occurred=_at(30), event_id=dup_id, delivery_id="D-ghost"),
    ])  # fmt: skip
    loader = await backend["loader"]()
    await _cycles(loader)
    loader.warehouse.close()
    s = backend["settings"]
    spans, exact = _spans(s), _exact(s)
    assert exact == {"D1": (_at(-3), _at(40)), "D2": (_at(1), _at(1)), ODD: (_at(3), _at(3))}
    assert spans == {**exact, "D-ghost": (_at(30), _at(30))}
    wh = reports._warehouse(s)
    try:
        r = Reader.of(wh, s.analytics())
        assert analytics.delivery(r, "D-ghost") is None  # only a skipped duplicate had it
        odd = analytics.delivery(r, ODD)  # found through its bucket, computed here
        assert odd is not None and odd["summary"]["event_count"] == 1
        page = analytics.delivery(r, "D1")
        assert page is not None and page["summary"]["event_count"] == 5  # and R1's error
        assert page["summary"]["window_from"] == "2026-03-05T09:52:00.000000Z"
    finally:
        wh.close()


async def test_a_failed_load_leaves_the_spans_as_they_were(
    backend: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spans commit with the events and the ledger or not at all: the ledger insert of
    the load fails (after the spans were merged), so nothing of the batch remains."""
    loader = await backend["loader"]()
    await loader.cycle()  # the schema
    backend["put"](object_key(0), [event("delivery.created", occurred=_at(0), delivery_id="D9")])
    real = sql.insert_ledger
    monkeypatch.setattr(sql, "insert_ledger", lambda d, schema, n: "INSERT INTO nowhere VALUES (1)")
    with pytest.raises(LoadFailed) as failed:
        await loader.cycle()
    assert failed.value.phase is Phase.RECORD  # after the events and the spans
    s = backend["settings"]
    assert _spans(s) == {} and _exact(s) == {}
    monkeypatch.setattr(sql, "insert_ledger", real)
    await _cycles(loader)
    loader.warehouse.close()
    assert _spans(s) == _exact(s) == {"D9": (_at(0), _at(0))}


async def test_an_upgraded_warehouse_gets_its_spans_built_from_events(
    backend: dict[str, Any],
) -> None:
    """A warehouse whose `delivery_spans` is of an earlier shape (or absent: see
    tests/loader/analytics/test_bounded.py): the loader's start builds it again from
    `events`, and later loads keep it."""
    backend["put"](object_key(0), [
        event("delivery.created", occurred=_at(i), delivery_id=f"D{i % 3}") for i in range(9)
    ])  # fmt: skip
    loader = await backend["loader"]()
    await _cycles(loader)
    loader.warehouse.close()
    s = backend["settings"]
    # As a warehouse from before the table's present shape has it: other columns, a stale row.
    wh = reports._warehouse(s)
    try:
        for stmt in (f"DROP TABLE {_t(sql.SPANS)}",
                     f"CREATE TABLE {_t(sql.SPANS)} (delivery_id VARCHAR(1024) NOT NULL "
                     "PRIMARY KEY, first_at TIMESTAMPTZ NOT NULL, last_at TIMESTAMPTZ NOT NULL)",
                     f"INSERT INTO {_t(sql.SPANS)} VALUES ('D-stale', '2026-01-01', '2026-01-02')"):  # fmt: skip
            wh._run(wh._cursor(), stmt)
        wh._commit()
    finally:
        wh.close()
    backend["put"](object_key(1), [event("delivery.failed", occurred=_at(60), delivery_id="D1")])
    loader = await backend["loader"]()
    await _cycles(loader)  # ensure_schema builds the table, then the new object widens D1
    loader.warehouse.close()
    assert _spans(s) == _exact(s)
    assert _spans(s)["D1"] == (_at(1), _at(60)) and len(_spans(s)) == 3


async def test_duckdb_puts_its_spans_back_in_bucket_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each load appends its deliveries' rows; once the unsorted tail outgrows its bound,
    DuckDB rewrites the table in bucket order with one row per delivery, and remembers how
    many rows are in order (the table's comment)."""
    from loader.warehouse import duckdb as backend

    monkeypatch.setattr(backend, "SPANS_TAIL_ROWS", 5)
    settings = loader_settings(tmp_path)
    ids = [f"D-{i}" for i in range(4)] + ["Dé 'x' \"y\" <z> 🚚", "D\\n1;--", "d" * 200]
    for n in range(3):  # every delivery in every object: 3 rows each before the rewrite
        put_local(tmp_path / "lake", object_key(n), [
            event("delivery.dispatched", occurred=_at(10 * n + i), delivery_id=d)
            for i, d in enumerate(ids)
        ])  # fmt: skip
    loader = await make_loader(settings)
    await loader.cycle()  # the schema: an empty table, in order
    loader.max_objects = 1
    await loader.cycle()  # 7 rows appended: more than the tail's bound, rewritten
    con = _duck(tmp_path)
    rows = con.execute("SELECT bucket, delivery_id FROM logship.delivery_spans").fetchall()
    con.close()
    assert len(rows) == len(ids) and rows == sorted(rows)
    await loader.cycle()  # 7 more after the 7 in order: over the bound again, rewritten
    await loader.cycle()
    loader.warehouse.close()
    con = _duck(tmp_path)
    rows = con.execute("SELECT bucket, delivery_id FROM logship.delivery_spans").fetchall()
    (comment,) = con.execute("SELECT comment FROM duckdb_tables() "
                             "WHERE table_name = 'delivery_spans'").fetchone()  # fmt: skip
    con.close()
    assert len(rows) == len(ids) and rows == sorted(rows) and comment == str(len(ids))
    assert _spans(settings) == _exact(settings)
    assert _spans(settings)[ids[4]] == (_at(4), _at(24))


def _duck(tmp_path: Path) -> Any:
    import duckdb

    return duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)


async def test_a_failing_rewrite_never_fails_a_load_and_backs_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rewrite runs after the load has committed: when it fails, the batch stays loaded,
    the spans stay whole (unsorted), and the next try waits for more loads each time."""
    from loader.warehouse import duckdb as backend

    monkeypatch.setattr(backend, "SPANS_TAIL_ROWS", 0)
    tried: list[int] = []

    def failing(schema: str) -> list[str]:
        tried.append(1)
        return ["SELECT * FROM no_such_table"]

    monkeypatch.setattr(sql, "compact_spans", failing)
    settings = loader_settings(tmp_path)
    for n in range(6):
        put_local(tmp_path / "lake", object_key(n),
                  [event("delivery.created", occurred=_at(n), delivery_id=f"D{n}")])  # fmt: skip
    loader = await make_loader(settings)
    loader.max_objects = 1
    for _ in range(8):
        if not (await loader.cycle()).more:
            break
    loader.warehouse.close()
    assert _spans(settings) == _exact(settings) and len(_exact(settings)) == 6
    # Loads 1..6: tried after load 1, then waits 1 load, tries, waits 2, tries (load 5)...
    assert len(tried) == 3, tried
