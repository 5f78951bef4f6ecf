"""The dashboard and the alerts query metrics that logship really exports.

Every PromQL expression of the Grafana dashboard (panel targets and template-variable queries)
and of the rendered PrometheusRule is parsed with `promql-parser`; every metric it selects must
be a family that a *running* `logship ingest`, `logship load` or `logship ui` exposes on /metrics
(all three are started here as the image starts them, scraped over HTTP, and stopped with
SIGTERM), and every label it groups by must be one those metrics carry (or one Prometheus adds
to every target).
The dashboard's panels and variables, and each alert's labels, annotations and runbook anchor,
are checked too.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port
from tests.deploy.conftest import DASHBOARD, NAMESPACE, RELEASE, RUNBOOK, Manifest, one

# Labels Prometheus (with prometheus-operator's ServiceMonitor) attaches to every scraped series.
TARGET_LABELS = {"namespace", "pod", "job", "instance", "service", "endpoint", "container"}
NS, POD = "ns-sentinel", "pod-sentinel"
SUBSTITUTIONS = {  # Grafana's variables, in the forms Grafana accepts
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "${namespace}": NS,
    "$namespace": NS,
    "${pod}": POD,
    "$pod": POD,
    "${datasource}": "prometheus",
}
REQUIRED_PANELS = {
    "Records in / accepted / discarded / rejected per second",
    "Rejects by event and reason",
    "Ack latency p50 / p99",
    "Spool size",
    "Spool oldest age",
    "Uploads and upload errors",
    "Event delay (occurred → received)",
    "Loader lag",
    "Loaded events per second",
    "COPY duration",
    "Loader errors by error_type",
    "Quarantined and held objects",
    "Refused requests by reason",
    "Stalled and I/O errors",
    "Connections",
}
ALERTS = {
    "LogshipLoaderLagHigh",
    "LogshipRejectRatioHigh",
    "LogshipUploadErrors",
    "LogshipSpoolFillingUp",
    "LogshipLoaderNotSucceeding",
    "LogshipTargetDown",
    "LogshipLoaderAbsent",
    "LogshipIngestStalled",
    "LogshipLoaderObjectsHeld",
}


# ----------------------------------------------------------------------------- running logship


def _logship() -> str:
    """The `logship` console script of this environment (what the image's ENTRYPOINT runs)."""
    exe = Path(sys.executable).with_name("logship")
    assert exe.exists(), f"{exe} is missing: install the project (pip install -e .)"
    return str(exe)


def _get(url: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as resp:
        return resp.status, resp.read().decode()


def _scrape_when_up(proc: subprocess.Popen[bytes], url: str, must_have: str) -> str:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"{proc.args} exited with {proc.returncode}: {err[-3000:]}")
        try:
            status, body = _get(url)
            if status == 200 and must_have in body:
                return body
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{url} never served {must_have}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, Any]]]:
    """Metric families a running ingest, loader and web UI expose: name → {type, labels,
    source}, from the `# TYPE` lines and the samples of their /metrics."""
    tmp = tmp_path_factory.mktemp("logship")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGSHIP_")}
    env.update(NO_PROXY="127.0.0.1,localhost", LOGSHIP_LAKE_URL=str(tmp / "lake"))
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        env.pop(var, None)
    iport, lport, uport = free_port(), free_port(), free_port()
    ingest = subprocess.Popen(
        [_logship(), "ingest"],
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=dict(env, LOGSHIP_HTTP_ADDR=f"127.0.0.1:{iport}", LOGSHIP_SPOOL_DIR=str(tmp / "spool")),
    )
    loader = subprocess.Popen(
        [_logship(), "load"],
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=dict(
            env,
            LOGSHIP_LOADER_HTTP_ADDR=f"127.0.0.1:{lport}",
            LOGSHIP_WAREHOUSE_URL=f"duckdb:///{tmp / 'warehouse.duckdb'}",
        ),
    )
    ui = subprocess.Popen(
        [_logship(), "ui"],
        cwd=tmp,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=dict(
            env,
            LOGSHIP_UI_HTTP_ADDR=f"127.0.0.1:{uport}",
            LOGSHIP_WAREHOUSE_URL=f"duckdb:///{tmp / 'warehouse.duckdb'}",
        ),
    )
    started = False
    try:
        bodies = {
            "ingest": _scrape_when_up(
                ingest, f"http://127.0.0.1:{iport}/metrics", "logship_ingest_requests_total"
            ),
            "loader": _scrape_when_up(
                loader, f"http://127.0.0.1:{lport}/metrics", "logship_loader_lag_seconds"
            ),
            # a sample of the request counter: the scrape before this one was counted
            "ui": _scrape_when_up(
                ui, f"http://127.0.0.1:{uport}/metrics", 'logship_ui_requests_total{route="'
            ),
        }
        families: dict[str, dict[str, Any]] = {}
        for source, body in bodies.items():
            types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", body, flags=re.M))
            labels: dict[str, set[str]] = {name: set() for name in types}
            for fam in text_string_to_metric_families(body):
                for sample in fam.samples:
                    owners = [
                        t for t in types if sample.name == t or sample.name.startswith(t + "_")
                    ]
                    owner = max(owners, key=len, default=None)
                    if owner is not None:
                        labels[owner] |= set(sample.labels)
            for name, kind in types.items():
                families.setdefault(name, {"type": kind, "labels": set(), "source": source})
                families[name]["labels"] |= labels[name]
        started = True
        yield families
    finally:
        codes = {}
        for proc in (ingest, loader, ui):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in (("ingest", ingest), ("loader", loader), ("ui", ui)):
            try:
                codes[name] = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = "killed"
    if started:  # all drained and exited cleanly on SIGTERM, as in a pod
        assert codes == {"ingest": 0, "loader": 0, "ui": 0}, codes


def series_names(families: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Every series name a family provides → the family it belongs to."""
    out = {}
    for name, fam in families.items():
        out[name] = name
        if fam["type"] == "counter":
            base = name.removesuffix("_total")
            out[base + "_total"] = name
            out[base + "_created"] = name
        elif fam["type"] == "histogram":
            for suffix in ("_bucket", "_sum", "_count", "_created"):
                out[name + suffix] = name
        elif fam["type"] == "summary":
            for suffix in ("_sum", "_count", "_created"):
                out[name + suffix] = name
    return out


# ----------------------------------------------------------------------------- the expressions


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows hold their panels
    return out


def substitute(expr: str) -> str:
    for var in sorted(SUBSTITUTIONS, key=len, reverse=True):
        expr = expr.replace(var, SUBSTITUTIONS[var])
    assert "$" not in expr, f"an unknown Grafana variable in {expr!r}"
    return expr


def variable_queries(dash: dict[str, Any]) -> list[str]:
    """PromQL inside the query variables: `label_values(<selector>, label)`, `query_result(q)`."""
    out = []
    for var in dash["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", query) or re.fullmatch(
            r"\s*query_result\((.*)\)\s*", query
        )
        assert m, f"variable {var['name']}: not a query this test can read: {query!r}"
        out.append(m.group(1))
    return out


def dashboard_exprs() -> list[tuple[str, str]]:
    dash = dashboard()
    exprs = [
        (p["title"], t["expr"]) for p in panels(dash) for t in p.get("targets", []) if "expr" in t
    ]
    exprs += [(f"variable {i}", q) for i, q in enumerate(variable_queries(dash))]
    return exprs


@pytest.fixture(scope="module")
def alert_rules(render: Callable[..., list[Manifest]]) -> list[dict[str, Any]]:
    docs = render(
        {"metrics": {"prometheusRule": {"enabled": True}, "serviceMonitor": {"enabled": True}}}
    )
    rule = one(docs, "PrometheusRule")
    return [r for g in rule["spec"]["groups"] for r in g["rules"]]


def selectors(expr: Any) -> list[Any]:
    found: list[Any] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(expr, visit)
    return found


def metric_names(sel: Any) -> list[str]:
    """The metric name(s) a selector asks for: its name, or a `__name__` matcher (`=`, or `=~`
    over plain alternatives)."""
    if sel.name:
        return [sel.name]
    for m in sel.matchers.matchers:
        if m.name == "__name__":
            assert m.op in (promql_parser.MatchOp.Equal, promql_parser.MatchOp.Re), str(sel)
            assert re.fullmatch(r"[a-zA-Z_:][\w:]*(\|[a-zA-Z_:][\w:]*)*", m.value), str(sel)
            return m.value.split("|")
    pytest.fail(f"a selector without a metric name: {sel}")


def grouping_labels(expr: Any) -> list[tuple[list[str], Any]]:
    """(by-labels, subexpression) of every aggregation."""
    out: list[tuple[list[str], Any]] = []

    def visit(node: Any) -> None:
        if (
            isinstance(node, promql_parser.AggregateExpr)
            and node.modifier is not None
            and node.modifier.type == promql_parser.AggModifierType.By
        ):
            out.append((list(node.modifier.labels), node.expr))

    promql_parser.walk(expr, visit)
    return out


def check_against(exprs: list[tuple[str, str]], families: dict[str, dict[str, Any]]) -> int:
    names = series_names(families)
    checked = 0
    for where, raw in exprs:
        expr = promql_parser.parse(substitute(raw))
        for sel in selectors(expr):
            for name in metric_names(sel):
                if name == "up":  # synthesized by Prometheus for every target
                    continue
                assert name in names, f"{where}: {name} is exported by neither ingest nor loader"
                checked += 1
        for by, sub in grouping_labels(expr):
            available = set(TARGET_LABELS)
            for sel in selectors(sub):
                for name in metric_names(sel):
                    if name in names:
                        available |= families[names[name]]["labels"]
                    if name.endswith("_bucket"):
                        available.add("le")
            missing = set(by) - available
            assert not missing, f"{where}: grouped by {missing}, which no selected metric has"
    return checked


# ----------------------------------------------------------------------------- tests


def test_running_logship_exports_the_design_metrics(exported: dict[str, dict[str, Any]]) -> None:
    """The scrape itself is meaningful: both processes answered, each with its own families."""
    by_source = {
        s: {n for n, f in exported.items() if f["source"] == s} for s in ("ingest", "loader")
    }
    assert {
        "logship_ingest_request_duration_seconds",
        "logship_ingest_spool_size_bytes",
    } <= by_source["ingest"]
    assert {"logship_loader_lag_seconds", "logship_loader_copy_duration_seconds"} <= by_source[
        "loader"
    ]
    assert exported["logship_ingest_request_duration_seconds"]["type"] == "histogram"
    assert "error_type" in exported["logship_loader_errors_total"]["labels"]


def test_dashboard_queries_only_exported_metrics(exported: dict[str, dict[str, Any]]) -> None:
    exprs = dashboard_exprs()
    assert len(exprs) >= 25
    assert check_against(exprs, exported) >= 25


def test_alerts_query_only_exported_metrics(
    exported: dict[str, dict[str, Any]], alert_rules: list[dict[str, Any]]
) -> None:
    exprs = [(r["alert"], r["expr"]) for r in alert_rules]
    assert check_against(exprs, exported) >= 7  # `up` aside


def test_the_check_catches_a_wrong_name(exported: dict[str, dict[str, Any]]) -> None:
    with pytest.raises(AssertionError, match="exported by neither"):
        check_against([("typo", "rate(logship_ingest_request_total[5m])")], exported)
    with pytest.raises(AssertionError, match="grouped by"):
        check_against(
            [("typo", "sum by (error) (rate(logship_loader_errors_total[5m]))")], exported
        )


def test_every_dashboard_query_is_scoped_by_namespace_and_pod() -> None:
    dash = dashboard()
    names = [v["name"] for v in dash["templating"]["list"]]
    assert names == ["datasource", "namespace", "pod"]
    ds = dash["templating"]["list"][0]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    assert "__inputs" not in dash
    for title, raw in dashboard_exprs():
        if title.startswith("variable"):
            continue
        for sel in selectors(promql_parser.parse(substitute(raw))):
            matchers = {m.name: m.value for m in sel.matchers.matchers}
            assert matchers.get("namespace") == NS, f"{title}: {sel} is not scoped by $namespace"
            assert matchers.get("pod") == POD, f"{title}: {sel} is not scoped by $pod"


def test_dashboard_panels() -> None:
    dash = dashboard()
    assert 36 <= dash["schemaVersion"] <= 41
    assert dash["uid"] and dash["title"]
    ps = [p for p in panels(dash) if p["type"] != "row"]
    titles = [p["title"] for p in ps]
    assert len(titles) == len(set(titles))
    assert set(titles) >= REQUIRED_PANELS, REQUIRED_PANELS - set(titles)
    ids = [p["id"] for p in panels(dash)]
    assert len(ids) == len(set(ids))
    for p in ps:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"], p["title"]
    latency = next(p for p in ps if p["title"] == "Ack latency p50 / p99")
    exprs = " ".join(t["expr"] for t in latency["targets"])
    assert "histogram_quantile(0.5," in exprs and "histogram_quantile(0.99," in exprs
    assert "logship_ingest_request_duration_seconds_bucket" in exprs


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    out = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


def test_alerts_are_documented(alert_rules: list[dict[str, Any]]) -> None:
    assert {r["alert"] for r in alert_rules} == ALERTS
    runbook = RUNBOOK.read_text()
    anchors = _anchors(runbook)
    for r in alert_rules:
        assert r["labels"]["severity"] in {"critical", "warning", "info"}, r["alert"]
        ann = r["annotations"]
        assert ann["summary"].strip() and ann["description"].strip(), r["alert"]
        url, _, anchor = ann["runbook_url"].partition("#")
        assert url.endswith("docs/runbook.md"), ann["runbook_url"]
        assert anchor in anchors, f"{r['alert']}: no section #{anchor} in docs/runbook.md"
        assert anchor == r["alert"].lower()
        # the section says how to confirm with a metric or a log line, and what to do
        section = runbook.split(f"## {r['alert']}\n", 1)[1].split("\n## ", 1)[0]
        for part in ("**Means**", "**Confirm**", "**Do**"):
            assert part in section, f"{r['alert']}: the runbook section lacks {part}"


def test_dashboard_shows_every_logship_metric(exported: dict[str, dict[str, Any]]) -> None:
    used = {
        name
        for _, raw in dashboard_exprs()
        for sel in selectors(promql_parser.parse(substitute(raw)))
        for name in metric_names(sel)
    }
    names = series_names(exported)
    shown = {names[n] for n in used if n in names}
    logship = {n for n in exported if n.startswith("logship_") and not n.endswith("_created")}
    assert len(logship) >= 20
    assert logship - shown == set(), "metrics no panel shows"


def test_alerts_select_each_metric_on_the_job_that_exports_it(
    exported: dict[str, dict[str, Any]], alert_rules: list[dict[str, Any]]
) -> None:
    names = series_names(exported)
    jobs = {f"{RELEASE}-ingest-headless": "ingest", f"{RELEASE}-loader": "loader"}
    for rule in alert_rules:
        for sel in selectors(promql_parser.parse(rule["expr"])):
            matchers = {m.name: m.value for m in sel.matchers.matchers}
            assert matchers.get("namespace") == NAMESPACE, f"{rule['alert']}: {sel}"
            if sel.name == "up":
                continue
            assert exported[names[sel.name]]["source"] == jobs[matchers["job"]], (
                f"{rule['alert']}: {sel.name} is selected on job {matchers['job']}"
            )
