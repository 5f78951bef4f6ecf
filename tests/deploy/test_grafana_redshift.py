"""The Grafana dashboard for Amazon Redshift (dashboards/logship-redshift.json), without Grafana.

Grafana cannot run here, so each panel's SQL goes through what Grafana and its Redshift data
source would do to it — the template variables first (`${delivery_id:sqlstring}`: quoted,
`'` doubled), then the data source's macros (`$__timeFrom()`, `$__timeFilter(col)`, …, as
grafana/redshift-datasource's pkg/redshift/macros.go expands them) — and the result runs on the
Redshift emulator and on DuckDB, each loaded by the real loader with a day of `logship demo`
(through the sink's extractor) and the analyses' hand-computed scenarios. The answers must be
the analyses' own: the session panel is `loader.analytics.session_bi_sql` (one implementation,
checked here, not written twice), and it returns exactly `logship session --json`'s events;
supply hours and downtime equal `analytics.supply_hours` / `supply_totals`; the state timeline
starts each state when `robot.state_changed` says so.

The read-only user the chart README documents is created from the README's own GRANTs, and
the panels (and the web UI's analyses) run as that user, who cannot write.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from ingest.demo import SWAP_DELIVERY_ID, generate
from ingest.event import iso_utc
from loader import analytics, reports
from loader.analytics import Reader
from loader.config import LoaderSettings
from loader.warehouse import Warehouse
from loader.warehouse.sql import DUCKDB, REDSHIFT, Dialect
from tests.conftest import AWS_ENV, s3_client
from tests.deploy.conftest import CHART_DIR, Manifest, one
from tests.ingest.demo.support import DAY, extract
from tests.loader.analytics import scenario
from tests.loader.helpers import load_objects, loader_settings
from tests.loader.warehouse.test_redshift import ROLE, rs_url

DASHBOARD = CHART_DIR / "dashboards" / "logship-redshift.json"
CHART_README = CHART_DIR / "README.md"
PLUGIN = "grafana-redshift-datasource"
DATASOURCE = {"type": PLUGIN, "uid": "${datasource}"}
#: The macros of grafana/redshift-datasource (pkg/redshift/macros.go); anything else in a
#: panel's SQL would reach Redshift unexpanded.
PLUGIN_MACROS = {"timeEpoch", "timeFilter", "timeFrom", "timeTo", "timeGroup", "schema", "table",
                 "column", "unixEpochFilter", "unixEpochGroup"}  # fmt: skip
#: The defaults the file is written for (the chart substitutes its values for them).
SCHEMA, MARGIN_S, TIMEZONE = "logship", 300, "UTC"
DEMO_DAY = DAY
DAY_FROM = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
DAY_TO = DAY_FROM + timedelta(days=1)


# ----------------------------------------------------------------------------- Grafana, by hand


def sqlstring(value: str) -> str:
    """Grafana's `sqlstring` variable format: the value quoted, each `'` doubled."""
    return "'" + value.replace("'", "''") + "'"


_VAR = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(?!__)(\w+)|\[\[(\w+)\]\]")


def interpolate(sql: str, variables: dict[str, str]) -> str:
    """Grafana's template variables, as the Redshift data source asks for them: a plain
    `$var` of one string value goes in raw (its interpolateVariable returns strings as they
    are), `${var:sqlstring}` quoted. The dashboard may only use the second (asserted below)."""

    def one_var(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3) or m.group(4)
        value = variables[name]
        return sqlstring(value) if m.group(2) == "sqlstring" else value

    return _VAR.sub(one_var, sql)


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # Go's time.RFC3339 of a UTC time


def _seconds(interval: str) -> str:
    m = re.fullmatch(r"(\d+)([smhdw])", interval.strip("'"))
    assert m, f"an interval this test cannot read: {interval}"
    n = int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
    return str(n)  # Go's %v of a whole float64


def expand_macros(sql: str, t_from: datetime, t_to: datetime) -> str:
    """The data source's macros, expanded as pkg/redshift/macros.go does (its arguments split
    at commas and trimmed, as sqlds does)."""

    def one_macro(m: re.Match[str]) -> str:
        name, raw = m.group(1), m.group(2)
        args = [a.strip() for a in raw.split(",")] if raw is not None else []
        frm, to = _rfc3339(t_from), _rfc3339(t_to)
        if name == "timeFilter":
            (col,) = args
            return f"{col} BETWEEN '{frm}' AND '{to}'"
        if name == "timeFrom":
            return f"'{frm}'"
        if name == "timeTo":
            return f"'{to}'"
        if name == "timeEpoch":
            (col,) = args
            return f'extract(epoch from {col}) as "time"'
        if name == "timeGroup":
            col, interval = args
            s = _seconds(interval)
            return f'floor(extract(epoch from {col})/{s})*{s} AS "time"'
        if name == "unixEpochFilter":
            (col,) = args
            return f"{col} >= {int(t_from.timestamp())} AND {col} <= {int(t_to.timestamp())}"
        pytest.fail(f"macro $__{name} is not one this dashboard should use")

    return re.sub(r"\$__(\w+)(?:\(([^)]*)\))?", one_macro, sql)


def as_grafana_runs_it(
    sql: str, variables: dict[str, str], t_from: datetime = DAY_FROM, t_to: datetime = DAY_TO
) -> str:
    out = expand_macros(interpolate(sql, variables), t_from, t_to)
    assert "$" not in out, f"something Grafana would not expand: {out}"
    return out


# ----------------------------------------------------------------------------- the dashboard


def load_dashboard(text: str | None = None) -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text() if text is None else text)


def panels(dash: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Query panels by type (the dashboard has one of each)."""
    out = {}
    for p in dash["panels"]:
        if p["type"] != "row":
            assert p["title"] not in out
            out[p["title"]] = p
    return out


def panel_sql(dash: dict[str, Any], kind: str) -> str:
    by_kind = {"session": "Session of ${delivery_id}", "states": "Robot states",
               "supply": "Supply hours per robot", "downtime": "Downtime by reason"}  # fmt: skip
    (target,) = panels(dash)[by_kind[kind]]["targets"]
    return target["rawSQL"]


def session_panel_sql(d: Dialect, schema: str = SCHEMA, margin_s: int = MARGIN_S) -> str:
    """What the session panel must say: the analyses' one BI statement, each placeholder the
    quoted Delivery ID."""
    return analytics.session_bi_sql(d, schema, margin_s).replace(
        d.param, "${delivery_id:sqlstring}"
    )


def sql_for(dash: dict[str, Any], kind: str, d: Dialect) -> str:
    """The panel's SQL for dialect `d`: the dashboard's own text (it is Redshift's), or for the
    session on DuckDB the same statement from the same function in DuckDB's dialect."""
    text = panel_sql(dash, kind)
    if kind == "session" and d is not REDSHIFT:
        assert text == session_panel_sql(REDSHIFT)
        return session_panel_sql(d)
    return text


def test_session_panel_is_the_analyses_statement() -> None:
    text = panel_sql(load_dashboard(), "session")
    assert text == session_panel_sql(REDSHIFT), (
        "the session panel must be loader.analytics.session_bi_sql(REDSHIFT, 'logship', 300) "
        "with each %s replaced by ${delivery_id:sqlstring}; today that is:\n"
        + session_panel_sql(REDSHIFT)
    )


def test_dashboard_structure() -> None:
    dash = load_dashboard()
    assert 36 <= dash["schemaVersion"] <= 41
    assert dash["uid"] == "logship-redshift" and dash["title"]
    assert "__inputs" not in dash  # no import prompt: the datasource variable picks it
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert list(variables) == ["datasource", "delivery_id", "robot_id"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == PLUGIN
    assert variables["delivery_id"]["type"] == "textbox"
    assert variables["delivery_id"]["label"] == "Delivery ID"
    assert variables["robot_id"]["type"] == "textbox"
    ps = panels(dash)
    assert {p["type"] for p in ps.values()} == {"table", "state-timeline", "barchart"}
    assert ps["Robot states"]["type"] == "state-timeline"
    assert ps["Session of ${delivery_id}"]["type"] == "table"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in ps.values():
        assert p["datasource"] == DATASOURCE, p["title"]
        assert p["description"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == DATASOURCE and t["format"] in (0, 1), p["title"]
            sql = t["rawSQL"]
            # every typed value reaches the SQL quoted: never a raw $var, never a builtin
            refs = _VAR.findall(sql)
            assert refs, p["title"]
            for braced, fmt, plain, old in refs:
                assert braced and fmt == "sqlstring" and not plain and not old, (p["title"], sql)
            macros = set(re.findall(r"\$__(\w+)", sql))
            assert macros <= PLUGIN_MACROS, (p["title"], macros)
            for args in re.findall(r"\$__\w+\(([^)]*)\)", sql):
                assert "(" not in args, "a macro argument with parentheses: sqlds versions differ"
    # the chart substitutes its values for exactly these fragments of the file
    text = DASHBOARD.read_text()
    assert text.count('\\"logship\\".') >= 4
    assert 'logship\\".' not in text.replace('\\"logship\\".', "")


def test_the_expansion_is_not_vacuous() -> None:
    hostile = "x' OR '1'='1"
    assert interpolate("a = ${delivery_id:sqlstring}", {"delivery_id": hostile}) == (
        "a = 'x'' OR ''1''=''1'"
    )
    frm, to = datetime(2021, 6, 23, tzinfo=UTC), datetime(2021, 6, 23, 1, tzinfo=UTC)
    # the plugin's own examples (pkg/redshift/macros_test.go)
    assert expand_macros("$__timeFilter(starttime)", frm, to) == (
        "starttime BETWEEN '2021-06-23T00:00:00Z' AND '2021-06-23T01:00:00Z'"
    )
    assert expand_macros("$__timeFrom()", frm, to) == "'2021-06-23T00:00:00Z'"
    assert expand_macros("$__timeGroup(starttime, '1m')", frm, to) == (
        'floor(extract(epoch from starttime)/60)*60 AS "time"'
    )
    assert expand_macros("$__unixEpochFilter(starttime)", frm, to) == (
        "starttime >= 1624406400 AND starttime <= 1624410000"
    )
    with pytest.raises(pytest.fail.Exception):
        expand_macros("$__timeFilterr(x)", frm, to)


# ----------------------------------------------------------------------------- the warehouses


@dataclass
class Backend:
    name: str
    dialect: Dialect
    settings: LoaderSettings
    warehouse: Warehouse

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return self.warehouse.query(sql, [])

    def reader(self) -> Reader:
        return Reader.of(self.warehouse, self.settings.analytics())


def demo_objects() -> list[list[dict[str, Any]]]:
    """The analyses' scenarios, and a day of `logship demo` as the sink extracts it."""
    demo = [orjson.loads(line) for line in extract(generate(DEMO_DAY)).events]
    assert len(demo) > 500
    return [*scenario.OBJECTS, demo]


def _open(settings: LoaderSettings) -> Warehouse:
    return reports._warehouse(settings)


@pytest.fixture(scope="module")
def duck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    yield from _demo_duckdb(tmp_path_factory.mktemp("duck"))


def _demo_duckdb(tmp: Path, **settings_kw: Any) -> Iterator[Backend]:
    """A DuckDB warehouse with the demo day loaded through the real loader, open for reads."""
    settings = loader_settings(tmp, **settings_kw)
    asyncio.run(load_objects(settings, demo_objects()))
    wh = _open(settings)
    try:
        yield Backend("duckdb", DUCKDB, settings, wh)
    finally:
        wh.close()


@pytest.fixture(scope="module")
def emulated(
    tmp_path_factory: pytest.TempPathFactory, redshift_emulator: Any, moto_s3: str
) -> Iterator[Backend]:
    """The same data loaded into a fresh database of the Redshift emulator by COPY from S3."""
    tmp = tmp_path_factory.mktemp("redshift")
    name = f"dev_{uuid.uuid4().hex[:12]}"
    redshift_emulator.start()
    redshift_emulator.create_database(name, owner="awsuser")
    kw = redshift_emulator.connect_kwargs(name, "awsuser", "emulator")
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    s3_client(moto_s3).create_bucket(Bucket=bucket)
    settings = loader_settings(tmp, lake_url=f"s3://{bucket}", warehouse_url=rs_url(kw),
                               redshift_iam_role=ROLE)  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        for k, v in dict(AWS_ENV, AWS_ENDPOINT_URL_S3=moto_s3, AWS_ENDPOINT_URL=moto_s3).items():
            mp.setenv(k, v)
        asyncio.run(load_objects(settings, demo_objects(), endpoint=moto_s3, bucket=bucket))
    wh = _open(settings)
    try:
        yield Backend("redshift", REDSHIFT, settings, wh)
    finally:
        wh.close()
        redshift_emulator.start()
        redshift_emulator.drop_database(name)


@pytest.fixture(params=["duckdb", "redshift"])
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.getfixturevalue("duck" if request.param == "duckdb" else "emulated")


def run_panel(
    b: Backend, kind: str, *, delivery_id: str = "", robot_id: str = "",
    t_from: datetime = DAY_FROM, t_to: datetime = DAY_TO, dash: dict[str, Any] | None = None,
) -> list[tuple[Any, ...]]:  # fmt: skip
    sql = sql_for(dash or load_dashboard(), kind, b.dialect)
    variables = {"delivery_id": delivery_id, "robot_id": robot_id}
    return b.query(as_grafana_runs_it(sql, variables, t_from, t_to))


def instant(v: Any) -> datetime:
    assert isinstance(v, datetime), v
    return (v if v.tzinfo else v.replace(tzinfo=UTC)).astimezone(UTC)


def number(v: Any) -> float | None:
    return None if v is None else float(v) if isinstance(v, (int, float, Decimal)) else v


# ----------------------------------------------------------------------------- the session


def session_rows(b: Backend, delivery_id: str) -> list[dict[str, Any]]:
    """The session panel's rows in `logship session --json`'s shape."""
    out = []
    for eid, name, occurred, received, service, host, did, rid, props, gap in run_panel(
        b, "session", delivery_id=delivery_id
    ):
        out.append({"event_id": eid, "event_name": name, "occurred_at": iso_utc(instant(occurred)),
                    "received_at": iso_utc(instant(received)), "service": service, "host": host,
                    "delivery_id": did, "robot_id": rid,
                    "properties": orjson.loads(props) if props else {},
                    "gap_s": None if gap is None else round(float(gap), 6)})  # fmt: skip
    return out


def test_session_table_is_logship_session(backend: Backend) -> None:
    """The scenario's D1: its own events and its robots' (R2, then R3 after the swap) inside
    the window, in order, with the hand-computed gaps — exactly what the CLI prints."""
    rows = session_rows(backend, "D1")
    assert [r["event_id"] for r in rows] == [e["event_id"] for e in scenario.SESSION_IN]
    assert [r["gap_s"] for r in rows] == scenario.SESSION_GAPS
    assert rows == analytics.session(backend.reader(), "D1")


def test_session_of_the_demo_swap_delivery(backend: Backend) -> None:
    rows = session_rows(backend, SWAP_DELIVERY_ID)
    assert len(rows) > 10
    times = [r["occurred_at"] for r in rows]
    assert times == sorted(times)
    robots = [r["robot_id"] for r in rows if r["delivery_id"] == SWAP_DELIVERY_ID and r["robot_id"]]
    assert len(set(robots)) == 2, "the swap shows both robots"
    assert {r["service"] for r in rows} >= {"dispatch", "fleet", "pilot-ui"}
    assert "pilot_initiated_reassignment" in {r["event_name"] for r in rows}
    assert rows == analytics.session(backend.reader(), SWAP_DELIVERY_ID)


def test_session_of_a_hostile_or_unknown_id(backend: Backend) -> None:
    """The typed id is a string literal, whatever it holds: the delivery whose id is SQL is
    found, a quote-breaking id finds nothing, and the events are all still there."""
    before = backend.query('SELECT COUNT(*) FROM "logship"."events"')
    (row,) = session_rows(backend, scenario.HOSTILE_ID)
    assert row["delivery_id"] == scenario.HOSTILE_ID and row["event_name"] == "delivery.created"
    assert session_rows(backend, "D1' OR '1'='1") == []
    assert session_rows(backend, "no-such-delivery") == []
    assert session_rows(backend, "") == []  # the textbox before anything is typed
    assert backend.query('SELECT COUNT(*) FROM "logship"."events"') == before


# ----------------------------------------------------------------------------- robot states


def test_state_timeline_starts_each_state_at_its_event(backend: Backend) -> None:
    """One row per state change that overlaps the time range, at the change's instant, then a
    NULL at the robot's last data (the timeline's gap); the states and reasons of a robot's day
    are those of `analytics.robot_day`, in order."""
    rows = run_panel(backend, "states")
    assert rows
    by_robot: dict[str, list[tuple[datetime, str | None]]] = {}
    for t, robot, state in rows:
        by_robot.setdefault(robot, []).append((instant(t), state))
    assert len(by_robot) == 6  # the demo's fleet
    changes = backend.query(
        'SELECT robot_id, occurred_at FROM "logship"."events" '
        "WHERE event_name = 'robot.state_changed' ORDER BY robot_id, occurred_at"
    )
    r = backend.reader()
    for robot, points in by_robot.items():
        assert [t for t, _ in points] == sorted(t for t, _ in points), robot
        assert points[-1][1] is None and all(s is not None for _, s in points[:-1]), robot
        starts = {instant(t) for rid, t in changes if rid == robot}
        assert {t for t, _ in points[:-1]} <= starts, "every state starts at its event"
        day = analytics.robot_day(r, robot, DEMO_DAY)
        assert day is not None
        expected = [iv["state"] if iv["reason"] is None else f"{iv['state']} ({iv['reason']})"
                    for iv in day["intervals"]]  # fmt: skip
        assert [s for _, s in points[:-1]] == expected, robot
        for (t, _), iv in zip(points[:-1], day["intervals"], strict=True):
            assert iso_utc(max(t, DAY_FROM)) == iv["from"], robot


def test_state_timeline_of_one_robot(backend: Backend) -> None:
    rows = run_panel(backend, "states", robot_id="R-2")
    assert rows and {robot for _, robot, _ in rows} == {"R-2"}
    assert run_panel(backend, "states", robot_id="R-2' OR ''='") == []


# ----------------------------------------------------------------------------- supply hours


def supply_panel(b: Backend, **kw: Any) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for robot, bucket, hours in run_panel(b, "supply", **kw):
        out.setdefault(robot, {})[bucket] = float(hours)
    return out


def as_supply(items: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """`analytics.supply_hours` summed per robot, in the panel's shape."""
    out: dict[str, dict[str, float]] = {}
    for it in items:
        buckets = out.setdefault(it["robot_id"], {})
        for bucket, h in [("usable", it["usable_hours"]), *it["downtime_hours"].items()]:
            if h:
                buckets[bucket] = buckets.get(bucket, 0.0) + h
    return out


def close(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]]) -> bool:
    if a.keys() != b.keys():
        return False
    for robot in a:
        keys = {k for k, v in a[robot].items() if abs(v) > 1e-9} | {
            k for k, v in b[robot].items() if abs(v) > 1e-9
        }
        if any(abs(a[robot].get(k, 0.0) - b[robot].get(k, 0.0)) > 1e-6 for k in keys):
            return False
    return True


def test_supply_hours_equal_the_cli(backend: Backend) -> None:
    """A one-day range shows `logship supply-hours --date DAY`'s figures."""
    shown = supply_panel(backend)
    expected = as_supply(analytics.supply_hours(backend.reader(), DEMO_DAY, DEMO_DAY))
    assert len(shown) == 6 and close(shown, expected), (shown, expected)
    assert all(buckets.get("usable", 0) > 0 for buckets in shown.values())


def test_supply_hours_over_days(backend: Backend) -> None:
    """The scenario's robot R1 over 2026-03-01 … 03-04 (a range ending at midnight does not
    touch the next day): 1 + 23 + 24 + 6 usable hours, 2 h of lid_error; one day alone."""
    d0 = datetime(2026, 3, 1, tzinfo=UTC)
    shown = supply_panel(backend, t_from=d0, t_to=d0 + timedelta(days=4), robot_id="R1")
    assert close(shown, {"R1": {"usable": 54.0, "lid_error": 2.0}}), shown
    shown = supply_panel(backend, t_from=d0 + timedelta(days=1, hours=3),
                         t_to=d0 + timedelta(days=1, hours=4), robot_id="R1")  # fmt: skip
    assert close(shown, {"R1": {"usable": 23.0, "lid_error": 1.0}}), shown


def test_downtime_by_reason_leads_with_the_cli_headline(backend: Backend) -> None:
    rows = [(reason, float(h), float(share)) for reason, h, share in run_panel(backend, "downtime")]
    assert rows and "usable" not in {r for r, _, _ in rows}
    assert [h for _, h, _ in rows] == sorted((h for _, h, _ in rows), reverse=True)
    assert abs(sum(s for _, _, s in rows) - 1.0) < 1e-9
    totals = analytics.supply_totals(analytics.supply_hours(backend.reader(), DEMO_DAY, DEMO_DAY))
    headline = totals["headline"]
    assert headline is not None and rows[0][0] == headline["reason"] == "lid_error"
    assert abs(rows[0][2] - headline["share"]) < 1e-6
    assert {r: h for r, h, _ in rows}.keys() == {
        k for k, v in totals["downtime_hours"].items() if v > 1e-9
    }


# ----------------------------------------------------------------------------- the chart's copy


def rendered_dashboard(render: Callable[..., list[Manifest]], **loader: Any) -> dict[str, Any]:
    docs = render({"grafana": {"redshiftDashboard": {"enabled": True}}, "loader": loader})
    cm = one(docs, "ConfigMap", "-dashboard-redshift")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = cm["data"].values()
    return load_dashboard(text)


def test_chart_configmap_follows_the_loader_settings(render: Callable[..., list[Manifest]]) -> None:
    """With the defaults the ConfigMap is the file; with another schema and margin its session
    panel is the analyses' statement for them, and no panel names the default schema."""
    assert rendered_dashboard(render) == load_dashboard()
    assert not [d for d in render(None) if d["metadata"]["name"].endswith("-dashboard-redshift")]
    dash = rendered_dashboard(render, warehouse={"schema": "Analytics"},
                              config={"sessionMarginSeconds": 120, "timezone": "Europe/Paris"})  # fmt: skip
    assert panel_sql(dash, "session") == session_panel_sql(REDSHIFT, "analytics", 120)
    for kind in ("states", "supply", "downtime"):
        sql = panel_sql(dash, kind)
        assert '"analytics".' in sql and '"logship".' not in sql, kind
        assert "AT TIME ZONE 'Europe/Paris'" in sql and "'UTC'" not in sql, kind
    # everything else is the file
    expected = DASHBOARD.read_text().replace('\\"logship\\".', '\\"analytics\\".')
    expected = expected.replace("INTERVAL '300 seconds'", "INTERVAL '120 seconds'")
    expected = expected.replace("AT TIME ZONE 'UTC'", "AT TIME ZONE 'Europe/Paris'")
    assert dash == load_dashboard(expected)


@pytest.fixture(scope="module")
def duck_la(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """The demo day loaded with LOGSHIP_TIMEZONE=America/Los_Angeles (the views' days and
    wall-clock times are Los Angeles')."""
    yield from _demo_duckdb(tmp_path_factory.mktemp("duck-la"), timezone="America/Los_Angeles")


def test_the_chart_copy_converts_the_time_zone_back(
    render: Callable[..., list[Manifest]], duck_la: Backend
) -> None:
    """With a time zone, the views hold wall-clock times; the chart's copy turns them back into
    instants (a state still starts at its event) and counts the zone's days."""
    b = duck_la
    dash = rendered_dashboard(render, config={"timezone": "America/Los_Angeles"})
    changes = {instant(t) for (t,) in b.query(
        "SELECT occurred_at FROM \"logship\".\"events\" WHERE event_name = 'robot.state_changed'"
    )}  # fmt: skip
    for sql_of, right in ((dash, True), (None, False)):  # the chart's copy, then the file's UTC SQL
        rows = run_panel(b, "states", dash=sql_of)
        starts = {instant(t) for t, _, state in rows if state is not None}
        assert starts and (starts <= changes) is right
    # 18:00-19:00 in Los Angeles on the demo's day is 02:00-03:00 UTC the next day
    t_from = DAY_TO + timedelta(hours=2)
    expected = as_supply(analytics.supply_hours(b.reader(), DEMO_DAY, DEMO_DAY))
    assert len(expected) == 6
    shown = supply_panel(b, dash=dash, t_from=t_from, t_to=t_from + timedelta(hours=1))
    assert close(shown, expected), (shown, expected)
    assert supply_panel(b, t_from=t_from, t_to=t_from + timedelta(hours=1)) == {}


# ----------------------------------------------------------------------------- a read-only user


def readme_grants() -> list[str]:
    """The SQL block of the chart README's "The web UI": the read-only user's statements."""
    section = CHART_README.read_text().split("\n## The web UI\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```sql\n(.*?)```", section, flags=re.S)
    return [s.strip() for s in block.split(";") if s.strip()]


def test_readme_grants_make_a_user_that_reads_and_cannot_write(
    emulated: Backend, redshift_emulator: Any
) -> None:
    """The documented GRANTs, run on the emulator: that user runs every panel and the web UI's
    analyses (also after the loader re-creates its views), and cannot write or create."""
    grants = readme_grants()
    assert [g.split()[0] for g in grants] == ["CREATE", "GRANT", "GRANT", "ALTER"]
    user = f"logship_ui_{uuid.uuid4().hex[:8]}"
    wh = emulated.warehouse
    for g in grants:
        stmt = g.replace("logship_ui", user).replace("FOR USER loader", "FOR USER awsuser")
        _execute(wh, stmt)
    url = emulated.settings.warehouse_url.get_secret_value().replace("//awsuser:", f"//{user}:")
    ro_settings = emulated.settings.model_copy(update={"warehouse_url": SecretStr(url)})
    ro = Backend("redshift", REDSHIFT, ro_settings, _open(ro_settings))
    try:
        assert ro.query("SELECT current_user") == [(user,)]
        assert session_rows(ro, "D1") == session_rows(emulated, "D1")
        for kind in ("states", "supply", "downtime"):
            assert run_panel(ro, kind) == run_panel(emulated, kind), kind
        assert analytics.robot_day(ro.reader(), "R-1", DEMO_DAY) is not None
        # the loader re-creates its views at every start (CREATE OR REPLACE): still readable
        for stmt in analytics.create_views(REDSHIFT, SCHEMA, emulated.settings.analytics()):
            _execute(wh, stmt)
        assert run_panel(ro, "supply") == run_panel(emulated, "supply")
        for write in (
            'DELETE FROM "logship"."events"',
            'CREATE TABLE "logship"."x" (a INTEGER)',
            'CREATE OR REPLACE VIEW "logship"."supply_hours_daily" AS SELECT 1 AS a',
        ):
            with pytest.raises(Exception, match=r"(?i)permission denied|must be owner"):
                _execute(ro.warehouse, write)
    finally:
        ro.warehouse.close()
        _execute(wh, f'DROP OWNED BY "{user}"')
        _execute(wh, f'DROP USER "{user}"')


def _execute(wh: Warehouse, stmt: str) -> None:
    """A statement that returns no rows, committed (or rolled back on error)."""
    cur = wh._cursor()
    try:
        cur.execute(stmt)
        wh._commit()
    except BaseException:
        wh._rollback()
        raise
