"""Speed of the web UI's pages as the history grows: the server side of the session page (a
delivery of a random day, and an unknown id), a robot's day and supply hours (one day, 31
days), at `--events` and at `--grow-to` events.

The warehouse is the loader's own: its schema, table and views are created by the loader
(`build_loader(...).warehouse.ensure_schema()`, the bundled registry's entity columns). The
events are the demo fleet's (`ingest.demo`): a few distinct days of `--robots` robots are
simulated and turned into canonical events by ingest's real extractor — the delivery
lifecycle, `robot.state_changed` with states and reasons, `robot.error`, pilot and server
steps, one robot swap a day — then DuckDB SQL expands them into the history: `range()` of
days × a template day chosen by a hash of the day, every delivery id (and its trips, attempts,
incidents) made unique per day by `md5` (or increasing with time: `--ids ordered`), event ids
by `md5`, appended in time order as the loader would append them; then the loader builds
`delivery_spans` from them (as when it upgrades a warehouse from before that table: one row
per delivery, in the order of its bucket, an MD5 prefix of the id). A copy of that file then grows by appending later days until
`--grow-to` events (its spans rebuilt the same way): a longer history of the same fleet.

Both files are served at once by two `logship ui` processes on free loopback ports, each
opening its file read-only per request (the path users hit). Every page gets `--requests`
GETs for random (seeded) ids and days of the first history — the same paths on both files,
the two servers taking turns request by request, so the shared machine's drift hits both
alike. Printed per page and size: p50 / p95 of the request time seen by the client
(loopback: the server's time plus well under a millisecond, shown as `GET /healthz`), the
server's own mean from `logship_ui_request_duration_seconds`, and what one request's queries
touch (each statement, recorded inside a real `serve_ui`, run alone under DuckDB's profiler:
rows and row groups read); then the ratio of the two sizes and the targets.

    python bench/ui.py [--events 10000000] [--grow-to 30000000] [--requests 30]
                       [--robots 100] [--ids random|ordered] [--keep PATH]

The last line of stdout is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import duckdb
import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ingest.demo.day import generate  # noqa: E402
from ingest.event import columns  # noqa: E402
from ingest.extract import Extractor, Limits  # noqa: E402
from ingest.lake import open_lake  # noqa: E402
from ingest.records import ParsedBody  # noqa: E402
from ingest.registry import PiiHasher, load_registry  # noqa: E402
from loader.config import LoaderSettings  # noqa: E402
from loader.server import build_loader  # noqa: E402
from loader.ui import UiSettings, serve_ui  # noqa: E402
from loader.warehouse import Warehouse, sql  # noqa: E402

#: The first day of the history (the growth appends the days after it).
START = date(2024, 1, 1)
#: Deliveries a robot serves in a simulated day: the demo fleet's density (14-15 a day keeps
#: no-robot cancellations rare; a year of 100 robots is then about 10 M events).
DELIVERIES_PER_ROBOT = 14.5
#: Targets, p95 in milliseconds (docs: README "Benchmarks").
TARGETS_MS = {"session": 300.0, "robot_day": 500.0, "supply_day": 1000.0}
#: Stands for a delivery's own part of an id in the template days (`D-~K~`, `T-~K~-1`).
MARK = "~K~"
_DELIVERY_REF = r"(?<![0-9A-Za-z])(D|T|INC)-{n}(?![0-9])"
#: The entity columns of `events`, as the bundled registry defines them.
_ENTITIES: tuple[str, ...] = load_registry(None).entities


# ------------------------------------------------------------------------ the template days


@dataclass
class Templates:
    """Simulated days of the fleet as canonical events; ids of deliveries carry MARK."""

    path: Path  # NDJSON, one template row a line
    events: list[int] = field(default_factory=list)  # events per template day
    deliveries: list[list[int]] = field(default_factory=list)  # local delivery numbers

    @property
    def mean_events(self) -> float:
        return statistics.fmean(self.events)


def build_templates(out: Path, robots: int, count: int, seed: int) -> Templates:
    """`count` distinct simulated days (demo seeds `seed`…), through ingest's extractor."""
    registry = load_registry(None)
    extractor = Extractor(registry, Limits(1 << 20, 64), PiiHasher(b"bench-ui"))
    deliveries = max(1, round(robots * DELIVERIES_PER_ROBOT))
    tpl = Templates(out)
    midnight = datetime(2000, 1, 1, tzinfo=UTC)
    with out.open("wb") as f:
        for k in range(count):
            records = generate(midnight.date(), robots=robots, deliveries=deliveries,
                               seed=seed + k, noise_ratio=0)  # fmt: skip
            got = extractor.extract(ParsedBody(records), midnight + timedelta(days=1))
            if got.rejected:
                raise SystemExit(f"template {k}: {len(got.rejected)} events rejected")
            local: set[int] = set()
            for seq, line in enumerate(got.events):
                f.write(orjson.dumps(_template_row(k, seq, orjson.loads(line), midnight, local)))
                f.write(b"\n")
            tpl.events.append(len(got.events))
            tpl.deliveries.append(sorted(local))
    return tpl


def _template_row(
    k: int, seq: int, ev: dict[str, Any], midnight: datetime, local: set[int]
) -> dict[str, Any]:
    """One event of template day `k`: its offset after midnight, and its delivery's number
    replaced by MARK wherever an id is derived from it (delivery, order, trip, attempt,
    incident ids), so that SQL can give each day's deliveries their own ids."""
    occurred = datetime.fromisoformat(ev["occurred_at"].replace("Z", "+00:00"))
    props = orjson.dumps(ev["properties"]).decode()
    did = ev.get("delivery_id")
    dloc = None
    if did is not None:
        dloc = int(did.removeprefix("D-"))
        local.add(dloc)
        pattern = re.compile(_DELIVERY_REF.format(n=dloc))
        props = pattern.sub(rf"\1-{MARK}", props)
        for col in ("delivery_id", "trip_id"):
            if ev.get(col) is not None:
                ev[col] = pattern.sub(rf"\1-{MARK}", ev[col])
    if re.search(r'"(D|T|INC)-[0-9]', props):
        raise SystemExit(f"template {k}: an event names another delivery: {props[:200]}")
    row = {"tpl": k, "seq": seq, "offset_us": (occurred - midnight) // timedelta(microseconds=1),
           "dloc": dloc, "properties": props}  # fmt: skip
    for col in ("event_name", "event_version", "service", "host"):
        row[col] = ev[col]
    for col in _ENTITIES:
        row[col] = ev.get(col)
    return row


# ------------------------------------------------------------------------ the history


def tpl_of(n: int, seed: int, count: int) -> int:
    """Which template day day `n` repeats (a hash: no visible period)."""
    return int(hashlib.md5(f"{seed}:day:{n}".encode()).hexdigest()[:8], 16) % count


def delivery_key(seed: int, n: int, dloc: int, ids: str) -> str:
    """The per-day id part of delivery `dloc` on day `n`, as the SQL makes it: 16 hex digits
    of an md5 (`random`), or the day and the number (`ordered`, increasing with time)."""
    if ids == "ordered":
        return f"{n:06d}{dloc:05d}"
    return hashlib.md5(f"{seed}/{n}/{dloc}".encode()).hexdigest()[:16]


def create_schema(workdir: Path, db: Path) -> None:
    """The loader's own schema creation: events, ledger, registry table, views, and
    `delivery_spans` — built from `events` when absent (see :func:`build_spans`)."""
    settings = LoaderSettings(warehouse_url=f"duckdb:///{db}", lake_url=str(workdir / "lake"))  # type: ignore[arg-type]
    loader = build_loader(settings, open_lake(settings.lake_url))
    loader.warehouse.ensure_schema()
    loader.warehouse.close()


def load_template_table(con: duckdb.DuckDBPyConnection, tpl: Templates) -> None:
    ent = ", ".join(f"'{e}': 'VARCHAR'" for e in _ENTITIES)
    con.execute(
        "CREATE TEMP TABLE bench_tpl AS SELECT * FROM read_json(?, format = 'newline_delimited', "
        "columns = {'tpl': 'INTEGER', 'seq': 'INTEGER', 'offset_us': 'BIGINT', 'dloc': 'INTEGER', "
        "'event_name': 'VARCHAR', 'event_version': 'INTEGER', 'service': 'VARCHAR', "
        f"'host': 'VARCHAR', {ent}, 'properties': 'VARCHAR'}})",
        [str(tpl.path)],
    )


def _insert_sql(schema: str, seed: int, ids: str) -> str:
    """Days [?, ?) of `bench_days` × their template rows, in time order, as `events` rows;
    delivery ids `random` or `ordered` (see :func:`delivery_key`)."""
    if ids == "ordered":  # increasing with time, as sequential ids, ULIDs or UUIDv7 are
        key = "lpad(CAST(d.n AS VARCHAR), 6, '0') || lpad(CAST(t.dloc AS VARCHAR), 5, '0')"
    else:  # random, as UUIDv4s are: no correlation with time
        key = f"substr(md5(concat('{int(seed)}', '/', d.n, '/', t.dloc)), 1, 16)"
    key = f"CASE WHEN t.dloc IS NULL THEN '' ELSE {key} END"
    expr = {
        "event_id": "substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-' || substr(h, 13, 4) || '-' "
        "|| substr(h, 17, 4) || '-' || substr(h, 21, 12)",
        "event_name": "event_name",
        "event_version": "event_version",
        "occurred_at": "occurred_at",
        "received_at": "occurred_at + to_milliseconds(200 + (seq * 7919 + n * 104729) % 4000)",
        "loaded_at": "occurred_at + INTERVAL 90 SECOND",
        "service": "service",
        "host": "host",
        **{e: f"replace({e}, '{MARK}', k)" for e in _ENTITIES},
        "properties": f"CAST(replace(properties, '{MARK}', k) AS JSON)",
    }
    cols = columns(_ENTITIES)
    if sorted(cols) != sorted(expr):  # the canonical event changed: say so, do not guess
        raise SystemExit(f"events has columns {cols}; the bench knows {sorted(expr)}")
    ents = ", ".join(f"t.{e}" for e in _ENTITIES)
    return f"""INSERT INTO "{schema}"."events" ({", ".join(f'"{c}"' for c in cols)})
SELECT {", ".join(expr[c] for c in cols)}
FROM (
  SELECT d.n, t.seq, t.event_name, t.event_version, t.service, t.host, {ents}, t.properties,
         d.day_start + to_microseconds(t.offset_us) AS occurred_at,
         md5(concat('{int(seed)}', '/e/', d.n, '/', t.seq)) AS h,
         {key} AS k
  FROM bench_days d JOIN bench_tpl t ON t.tpl = d.tpl
  WHERE d.n >= ? AND d.n < ?
)
ORDER BY occurred_at"""


def append_days(db: Path, tpl: Templates, seed: int, ids: str, first: int, last: int) -> None:
    """Append days [first, last) of the history to `events`, 30 days per INSERT."""
    con = duckdb.connect(str(db), config={"memory_limit": "6GB"})
    try:
        con.execute("SET TimeZone = 'UTC'")
        load_template_table(con, tpl)
        # The days: range() of day numbers, each repeating a template chosen by a hash (the
        # same md5 as tpl_of, which the requests use to pick ids).
        con.execute(
            "CREATE TEMP TABLE bench_days AS SELECT CAST(n AS INTEGER) AS n, "
            "? + to_days(CAST(n AS INTEGER)) AS day_start, CAST(CAST('0x' || substr(md5(concat("
            f"'{int(seed)}', ':day:', n)), 1, 8) AS BIGINT) % {len(tpl.events)} AS INTEGER) AS tpl "
            "FROM range(?, ?) AS r(n)",
            [datetime.combine(START, datetime.min.time(), UTC), first, last],
        )
        insert = _insert_sql("logship", seed, ids)
        for lo in range(first, last, 30):
            con.execute(insert, [lo, min(lo + 30, last)])
        con.execute("CHECKPOINT")
    finally:
        con.close()


def build_spans(workdir: Path, db: Path) -> float:
    """`delivery_spans` of the events appended, built by the loader itself: dropped, then
    rebuilt from `events` by its start (the path of a warehouse upgraded to that table).
    Returns the seconds that start took (the table's build, and the loader's other checks)."""
    con = duckdb.connect(str(db))
    try:
        con.execute(f"DROP TABLE IF EXISTS {sql.table('logship', sql.SPANS)}")
    finally:
        con.close()
    t0 = time.perf_counter()
    create_schema(workdir, db)
    return time.perf_counter() - t0


def count_events(db: Path) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return int(con.execute('SELECT count(*) FROM "logship"."events"').fetchone()[0])
    finally:
        con.close()


def days_for(events: int, tpl: Templates) -> int:
    return max(1, math.ceil(events / tpl.mean_events))


# ------------------------------------------------------------------------ the requests


@dataclass(frozen=True)
class Page:
    name: str  # session | robot_day | supply_day | supply_31d | session_unknown
    title: str
    route: str  # the route template, as the UI's metrics label it
    status: int = 200  # what every request of the page must answer


PAGES = (
    Page("session", "session page  GET /deliveries/{id}", "/deliveries/{delivery_id}"),
    Page("robot_day", "robot's day   GET /robots/{id}?date=", "/robots/{robot_id}"),
    Page("supply_day", "supply hours  GET /supply-hours?date=", "/supply-hours"),
    Page("supply_31d", "supply hours  GET /supply-hours?from=&to= (31 days)", "/supply-hours"),
    Page("session_unknown", "session page, unknown id", "/deliveries/{delivery_id}", 404),
)
STATUS = {p.name: p.status for p in PAGES}


def pick_paths(
    page: str,
    rnd: random.Random,
    n: int,
    days: int,
    robots: int,
    tpl: Templates,
    seed: int,
    ids: str,
) -> list[str]:
    """`n` paths of `page` for random ids and days among the first `days` days."""
    out = []
    for _ in range(n):
        d = rnd.randrange(days)
        day = START + timedelta(days=d)
        if page == "session":
            dloc = rnd.choice(tpl.deliveries[tpl_of(d, seed, len(tpl.events))])
            out.append(f"/deliveries/D-{delivery_key(seed, d, dloc, ids)}")
        elif page == "session_unknown":  # shaped like the real ids, in no day of the history
            out.append(f"/deliveries/D-{delivery_key(seed + 1, d, rnd.randrange(10**6), ids)}")
        elif page == "robot_day":
            out.append(f"/robots/R-{rnd.randrange(robots) + 1}?date={day}")
        elif page == "supply_day":
            out.append(f"/supply-hours?date={day}")
        else:
            d = rnd.randrange(max(1, days - 30))
            a = START + timedelta(days=d)
            out.append(f"/supply-hours?from={a}&to={a + timedelta(days=30)}")
    return out


@contextlib.contextmanager
def recording() -> Iterator[list[tuple[str, list[Any]]]]:
    """Record every statement the analyses send through a Warehouse (the UI's path)."""
    seen: list[tuple[str, list[Any]]] = []
    original = Warehouse.query

    def query(
        self: Warehouse, statement: str, params: Any = (), max_rows: int | None = None
    ) -> list[tuple[Any, ...]]:
        seen.append((statement, list(params)))
        return original(self, statement, params, max_rows)

    Warehouse.query = query  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        Warehouse.query = original  # type: ignore[method-assign]


def touched(db: Path, statements: list[tuple[str, list[Any]]], prof: Path) -> dict[str, Any]:
    """What each of `statements` reads, run alone under DuckDB's JSON profiler: its time, the
    rows and row groups its table scans read (of all the row groups those scans cover)."""
    con = duckdb.connect(str(db), read_only=True, config={"memory_limit": "300MB"})
    per: list[dict[str, Any]] = []
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("PRAGMA enable_profiling = 'json'")
        con.execute(f"PRAGMA profiling_output = '{prof}'")
        for stmt, params in statements:
            prof.unlink(missing_ok=True)
            con.execute(stmt, params).fetchall()
            # No profile: answered from the row groups' statistics (MAX(occurred_at)).
            q = json.loads(prof.read_text())["query"] if prof.exists() else {
                "total_time": 0.0, "total_rows_scanned": 0, "total_row_groups_scanned": 0,
                "total_row_groups_to_scan": 0}  # fmt: skip
            per.append({
                "sql": " ".join(stmt.split())[:160],
                "ms": round(q["total_time"] * 1000, 1),
                "rows_scanned": q["total_rows_scanned"],
                "row_groups": f"{q['total_row_groups_scanned']}/{q['total_row_groups_to_scan']}",
            })  # fmt: skip
    finally:
        con.close()
    return {"statements": len(per), "rows_scanned": sum(p["rows_scanned"] for p in per),
            "per_statement": per}  # fmt: skip


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile (p95 of 30 values is the 29th)."""
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def server_stats(metrics_text: str) -> dict[str, tuple[float, float]]:
    """route → (sum, count) of logship_ui_request_duration_seconds."""
    out: dict[str, list[float]] = {}
    for line in metrics_text.splitlines():
        m = re.match(r'logship_ui_request_duration_seconds_(sum|count)\{route="([^"]*)"\} (\S+)',
                     line)  # fmt: skip
        if m:
            out.setdefault(m.group(2), [0.0, 0.0])[m.group(1) == "count"] = float(m.group(3))
    return {k: (v[0], v[1]) for k, v in out.items()}


@contextlib.contextmanager
def ui_process(db: Path, workdir: Path, name: str) -> Iterator[str]:
    """`logship ui` on `db` in a child process, on a free loopback port; yields its URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSHIP_")}
    env.update(LOGSHIP_WAREHOUSE_URL=f"duckdb:///{db}", LOGSHIP_UI_HTTP_ADDR="127.0.0.1:0",
               LOGSHIP_LAKE_URL=str(workdir / "lake"), LOGSHIP_LOG_LEVEL="WARNING")  # fmt: skip
    log = (workdir / f"ui-{name}.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "ingest.cli", "ui"], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=log, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"(http://\S+)", line)
        if not m:
            proc.wait(timeout=10)
            raise SystemExit(f"logship ui did not start: {line!r}\n"
                             + (workdir / f"ui-{name}.log").read_text()[-2000:])  # fmt: skip
        yield m.group(1).rstrip("/")
    finally:
        proc.send_signal(signal.SIGTERM)  # a graceful stop
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def measure(
    urls: dict[str, str], plan: dict[str, list[str]], warm: dict[str, list[str]]
) -> dict[str, dict[str, Any]]:
    """Time every path of `plan` on every server of `urls` (size → URL), after `warm`
    (untimed). The servers take turns request by request (the order flipping each time), so
    a change in the shared machine's speed hits every size alike."""
    out: dict[str, dict[str, Any]] = {size: {} for size in urls}
    async with aiohttp.ClientSession() as http:

        async def get(url: str, status: int = 200) -> tuple[float, int]:
            t0 = time.perf_counter()
            async with http.get(url) as resp:
                body = await resp.read()
                if resp.status != status:
                    raise SystemExit(f"GET {url}: {resp.status}\n{body[:500]!r}")
            return (time.perf_counter() - t0) * 1000, len(body)

        async def metrics(url: str) -> dict[str, tuple[float, float]]:
            async with http.get(url + "/metrics") as resp:
                return server_stats(await resp.text())

        floor = {size: [(await get(url + "/healthz"))[0] for _ in range(20)]
                 for size, url in urls.items()}  # fmt: skip
        sizes = list(urls)
        for page in PAGES:
            for path in warm[page.name]:
                for size in sizes:
                    await get(urls[size] + path, page.status)
            before = {size: await metrics(url) for size, url in urls.items()}
            times: dict[str, list[float]] = {size: [] for size in sizes}
            kib: dict[str, list[float]] = {size: [] for size in sizes}
            for i, path in enumerate(plan[page.name]):
                for size in sizes if i % 2 == 0 else sizes[::-1]:
                    ms, n = await get(urls[size] + path, page.status)
                    times[size].append(ms)
                    kib[size].append(n / 1024)
            for size, url in urls.items():
                after = await metrics(url)
                s0, c0 = before[size].get(page.route, (0.0, 0.0))
                s1, c1 = after.get(page.route, (0.0, 0.0))
                t = times[size]
                out[size][page.name] = {
                    "p50_ms": round(quantile(t, 0.5), 1),
                    "p95_ms": round(quantile(t, 0.95), 1),
                    "max_ms": round(max(t), 1),
                    "server_mean_ms": round((s1 - s0) / (c1 - c0) * 1000, 1) if c1 > c0 else None,
                    "page_kib": round(statistics.fmean(kib[size]), 1),
                    "probe": plan[page.name][0],
                }
        for size in sizes:
            out[size]["http_floor_ms"] = round(quantile(floor[size], 0.5), 2)
    return out


async def probe(db: Path, workdir: Path, paths: dict[str, str]) -> dict[str, Any]:
    """The statements one request of each page sends (recorded inside a real `serve_ui`, in
    this process), each then run alone under DuckDB's profiler: what it touches."""
    settings = UiSettings(warehouse_url=f"duckdb:///{db}", ui_http_addr="127.0.0.1:0",  # type: ignore[arg-type]
                          lake_url=str(workdir / "lake"))  # fmt: skip
    stop = asyncio.Event()
    started: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(serve_ui(settings, stop, started))
    url = (await started).rstrip("/")
    seen: dict[str, list[tuple[str, list[Any]]]] = {}
    try:
        async with aiohttp.ClientSession() as http:
            for page, path in paths.items():
                with recording() as seen[page]:
                    async with http.get(url + path) as resp:
                        await resp.read()
                        if resp.status != STATUS[page]:
                            raise SystemExit(f"GET {path}: {resp.status}")
    finally:
        stop.set()
        await server
    return {page: touched(db, stmts, workdir / "profile.json") for page, stmts in seen.items()}


# ------------------------------------------------------------------------ the run


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} cores {cpu}, {mem:.0f} GiB, Python {platform.python_version()}, "
            f"DuckDB {duckdb.__version__}")  # fmt: skip


def report(run: dict[str, Any]) -> None:
    res = run["pages"]
    print(
        f"\n{run['events']:,} events ({run['days']} days); HTTP floor (GET /healthz) "
        f"p50 {run['http_floor_ms']} ms"
    )
    print(f"  {'page':<52} {'p50':>8} {'p95':>8} {'server':>8} {'KiB':>6}  rows scanned")
    for page in PAGES:
        r = res[page.name]
        print(f"  {page.title:<52} {r['p50_ms']:>6.1f}ms {r['p95_ms']:>6.1f}ms "
              f"{r['server_mean_ms'] or 0:>6.1f}ms {r['page_kib']:>6.1f}  "
              f"{r['touched']['rows_scanned']:,}")  # fmt: skip
    print(
        "  one request's statements, each run alone under DuckDB's profiler "
        "(row groups: read / in all its scans):"
    )
    for page in PAGES:
        r = res[page.name]
        print(f"    {page.name} {r['probe']}")
        for st in r["touched"]["per_statement"]:
            print(
                f"      {st['ms']:>7.1f} ms {st['rows_scanned']:>11,} rows "
                f"{st['row_groups']:>8} row groups  {st['sql'][:70]}"
            )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000, help="events of the first history")
    ap.add_argument(
        "--grow-to", type=int, default=30_000_000, help="events after the growth (0: none)"
    )
    ap.add_argument("--requests", type=int, default=30, help="timed requests per page and size")
    ap.add_argument("--warmup", type=int, default=3, help="untimed requests per page first")
    ap.add_argument("--robots", type=int, default=100)
    ap.add_argument("--templates", type=int, default=7, help="distinct simulated days")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--ids",
        choices=("random", "ordered"),
        default="random",
        help="delivery ids: random (like UUIDv4) or increasing with time (like ULIDs)",
    )
    ap.add_argument("--keep", type=Path, help="keep the (largest) warehouse at this path")
    args = ap.parse_args()
    for k in [k for k in os.environ if k.startswith("LOGSHIP_")]:
        del os.environ[k]  # the bench's settings only (a token or another warehouse would skew it)

    workdir = Path(tempfile.mkdtemp(prefix="logship-bench-ui-"))
    try:
        print(f"machine: {machine()}")
        t0 = time.perf_counter()
        tpl = build_templates(workdir / "templates.ndjson", args.robots, args.templates, args.seed)
        print(
            f"templates: {args.templates} simulated days of {args.robots} robots, "
            f"{tpl.mean_events:,.0f} events a day on average ({time.perf_counter() - t0:.1f} s); "
            f"delivery ids: {args.ids}"
        )
        dbs: list[tuple[Path, int]] = []  # (file, days)
        db = workdir / "history-1.duckdb"
        create_schema(workdir, db)
        days = days_for(args.events, tpl)
        t0 = time.perf_counter()
        append_days(db, tpl, args.seed, args.ids, 0, days)
        built = build_spans(workdir, db)
        dbs.append((db, days))
        print(
            f"history: {days} days from {START}, {count_events(db):,} events "
            f"({time.perf_counter() - t0:.1f} s, {db.stat().st_size / 2**30:.2f} GiB; "
            f"delivery_spans built by the loader in {built:.1f} s)",
            flush=True,
        )
        if args.grow_to > count_events(db):
            grown, more = workdir / "history-2.duckdb", days_for(args.grow_to, tpl)
            t0 = time.perf_counter()
            shutil.copyfile(db, grown)
            append_days(grown, tpl, args.seed, args.ids, days, more)
            built = build_spans(workdir, grown)
            dbs.append((grown, more))
            print(f"grown (a copy, later days appended): {more} days, {count_events(grown):,} "
                  f"events ({time.perf_counter() - t0:.1f} s, {grown.stat().st_size / 2**30:.2f} GiB; "
                  f"delivery_spans built in {built:.1f} s)", flush=True)  # fmt: skip

        rnd = random.Random(args.seed)
        plan, warm = (
            {p.name: pick_paths(p.name, rnd, n, days, args.robots, tpl, args.seed, args.ids)
             for p in PAGES}
            for n in (args.requests, args.warmup)
        )  # fmt: skip
        with contextlib.ExitStack() as stack:
            urls = {str(i): stack.enter_context(ui_process(path, workdir, str(i)))
                    for i, (path, _) in enumerate(dbs)}  # fmt: skip
            timed = asyncio.run(measure(urls, plan, warm))
        runs = []
        for i, (path, n_days) in enumerate(dbs):
            pages = timed[str(i)]
            touched_by = asyncio.run(probe(path, workdir, {p.name: plan[p.name][0] for p in PAGES}))
            for p in PAGES:
                pages[p.name]["touched"] = touched_by[p.name]
            runs.append({"events": count_events(path), "days": n_days,
                         "http_floor_ms": pages.pop("http_floor_ms"), "pages": pages})  # fmt: skip
            report(runs[-1])

        ratios = {}
        if len(runs) > 1:
            a, b = runs[0]["pages"], runs[1]["pages"]
            ratios = {p.name: round(b[p.name]["p95_ms"] / a[p.name]["p95_ms"], 2) for p in PAGES}
            print(
                f"\n{runs[1]['events'] / runs[0]['events']:.2f}x the events: p95 "
                + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items())
            )
        verdict = {}
        for name, target in TARGETS_MS.items():
            worst = max(run["pages"][name]["p95_ms"] for run in runs)
            verdict[name] = worst <= target
            print(
                f"target {name}: p95 <= {target:.0f} ms: {'pass' if verdict[name] else 'FAIL'} "
                f"(worst p95 {worst:.1f} ms)"
            )
        if args.keep:
            args.keep.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(dbs[-1][0], args.keep)
            print(f"kept: {args.keep}")
        print(json.dumps({"machine": machine(), "robots": args.robots, "requests": args.requests,
                          "ids": args.ids, "runs": runs, "p95_ratio": ratios,
                          "targets_ms": TARGETS_MS, "targets_met": verdict}))  # fmt: skip
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
