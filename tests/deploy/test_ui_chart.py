"""The web UI in the Helm chart (`ui.*`), rendered and linted by the real Helm SDK and validated
against the Kubernetes schemas like the rest of the chart.

The promises checked: off by default; when on, a Deployment running `logship ui` on the port
its probes and Service use, with the loader's restricted security context, read-only root
filesystem and /tmp emptyDir; its warehouse URL from its OWN Secret (the loader's is refused)
and its tokens from a Secret, never a value; the analyses' settings are the loader's and every
variable the ConfigMap sets is one `logship ui` reads; the Ingress reaches every page of the
real app and neither /healthz nor /metrics; NetworkPolicy, ServiceMonitor and the target-down
alert cover it; NOTES say how to reach it and warn about an Ingress without authentication.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import pytest

from loader.config import LoaderSettings
from loader.ui import UiSettings, build_app
from tests.deploy.conftest import (
    CHART_DIR,
    NAMESPACE,
    RELEASE,
    Manifest,
    load_production_values,
    of_kind,
    one,
    strip,
)
from tests.deploy.test_chart import (
    K8S_VERSION,
    SECRET_ENV,
    container_env,
    pod_spec,
    validate_manifest,
)

UI = "-ui"
OAUTH2_PROXY = {
    "nginx.ingress.kubernetes.io/auth-url": "https://$host/oauth2/auth",
    "nginx.ingress.kubernetes.io/auth-signin": "https://$host/oauth2/start?rd=$escaped_request_uri",
}


def ui_values(**ui: Any) -> dict[str, Any]:
    """Production values with the UI on: an Ingress behind oauth2-proxy, tokens, and
    everything that observes it."""
    values = load_production_values()
    values["ui"] = {
        "enabled": True,
        "replicas": 2,
        "warehouse": {"existingSecret": "logship-redshift-ui"},
        "tokens": {"existingSecret": "logship-ui-tokens"},
        "ingress": {"enabled": True, "className": "nginx", "annotations": dict(OAUTH2_PROXY)},
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/logship-ui"}},
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                       "whenUnsatisfiable": "ScheduleAnyway"}],
        **ui,
    }  # fmt: skip
    values["networkPolicy"]["uiFrom"] = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    ]
    values["grafana"]["redshiftDashboard"] = {"enabled": True}
    return values


@pytest.fixture(scope="module")
def docs(render: Callable[..., list[Manifest]]) -> list[Manifest]:
    return render(ui_values())


def ui_docs(docs: list[Manifest]) -> list[Manifest]:
    return [d for d in docs if d["metadata"]["labels"].get("app.kubernetes.io/component") == "ui"]


def deployment(docs: list[Manifest]) -> Manifest:
    return one(docs, "Deployment", UI)


def container(docs: list[Manifest]) -> dict[str, Any]:
    (c,) = pod_spec(deployment(docs))["containers"]
    return c


# ----------------------------------------------------------------------------- objects


def test_off_by_default(default_docs: list[Manifest], production_docs: list[Manifest]) -> None:
    for d in (default_docs, production_docs):
        assert not ui_docs(d)
        assert not [x for x in d if x["metadata"]["name"].endswith(("-ui", "-dashboard-redshift"))]


def test_objects_rendered_and_valid(docs: list[Manifest]) -> None:
    kinds = sorted(d["kind"] for d in ui_docs(docs))
    assert kinds == ["ConfigMap", "Deployment", "Ingress", "NetworkPolicy",
                     "PodDisruptionBudget", "Service", "ServiceAccount", "ServiceMonitor"]  # fmt: skip
    for doc in docs:
        assert doc["metadata"]["namespace"] == NAMESPACE
        try:
            validate_manifest(strip(doc))
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{doc['__template__']}: {doc['kind']} {path}: {exc.message}")


@pytest.mark.parametrize("with_ui", ["minimal", "full"])
def test_lint_reports_no_error_or_warning(helm: Any, with_ui: str) -> None:
    values = {"ui": {"enabled": True}} if with_ui == "minimal" else ui_values()
    report = helm.lint(str(CHART_DIR), values, strict=True, namespace=NAMESPACE,
                       kube_version=f"v{K8S_VERSION}")  # fmt: skip
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


# ----------------------------------------------------------------------------- the pod


def test_runs_logship_ui_on_the_probed_port(docs: list[Manifest]) -> None:
    dep = deployment(docs)
    c = container(docs)
    assert c["args"] == ["ui"]
    assert dep["spec"]["replicas"] == 2
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert container_env(docs, dep)["LOGSHIP_UI_HTTP_ADDR"] == f"0.0.0.0:{ports['http']}"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    svc = one(docs, "Service", UI)
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    assert dep["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"]
    assert [p["targetPort"] for p in svc["spec"]["ports"]] == ["http"]
    # the loader's pods are not selected by the UI's Service, nor the other way round
    loader = one(docs, "Deployment", "-loader")
    assert (
        not svc["spec"]["selector"].items()
        <= loader["spec"]["template"]["metadata"]["labels"].items()
    )
    pdb = one(docs, "PodDisruptionBudget", UI)
    assert pdb["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"]
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    for tsc in pod_spec(dep)["topologySpreadConstraints"]:
        assert tsc["labelSelector"]["matchLabels"] == svc["spec"]["selector"]


def test_same_security_context_as_the_loader(docs: list[Manifest]) -> None:
    ui, loader = pod_spec(deployment(docs)), pod_spec(one(docs, "Deployment", "-loader"))
    assert ui["securityContext"] == loader["securityContext"]
    assert ui["securityContext"]["runAsNonRoot"] is True
    c = container(docs)
    assert c["securityContext"] == loader["containers"][0]["securityContext"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert ui["automountServiceAccountToken"] is False
    sa = one(docs, "ServiceAccount", UI)
    assert ui["serviceAccountName"] == sa["metadata"]["name"]
    assert sa["automountServiceAccountToken"] is False
    assert "role/logship-ui" in sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    volumes = {v["name"]: v for v in ui["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert not any("persistentVolumeClaim" in v for v in volumes.values())
    # the registry (production values carry one) is mounted read-only where the env says
    env = container_env(docs, deployment(docs))
    reg = next(m for m in c["volumeMounts"] if m["name"] == "registry")
    assert reg["readOnly"] is True and env["LOGSHIP_REGISTRY_PATH"].startswith(
        reg["mountPath"] + "/"
    )


# ----------------------------------------------------------------------------- secrets and settings


def test_secrets_only_by_reference(docs: list[Manifest]) -> None:
    c = container(docs)
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "valueFrom" in e}
    assert refs == {
        "LOGSHIP_WAREHOUSE_URL": {"name": "logship-redshift-ui", "key": "warehouse-url"},
        "LOGSHIP_UI_TOKENS": {"name": "logship-ui-tokens", "key": "tokens"},
    }
    for e in c["env"]:
        assert e["name"] not in SECRET_ENV | {"LOGSHIP_UI_TOKENS"} or "value" not in e, e
    # its own read-only user, not the loader's Secret; and no AWS keys (it reads no lake)
    loader_env = container_env(docs, one(docs, "Deployment", "-loader"))
    assert refs["LOGSHIP_WAREHOUSE_URL"] != loader_env["LOGSHIP_WAREHOUSE_URL"]["secretKeyRef"]
    assert not of_kind(docs, "Secret")
    cm = one(docs, "ConfigMap", UI)
    assert not (SECRET_ENV | {"LOGSHIP_UI_TOKENS"}) & set(cm["data"])
    text = json.dumps([strip(d) for d in docs])
    assert not re.search(r"[a-z0-9+]+://[^/\s\"@]+:[^/\s\"@]+@", text)


def test_no_aws_keys_even_when_the_chart_has_some(render: Callable[..., list[Manifest]]) -> None:
    docs = render(
        {"ui": {"enabled": True}, "aws": {"existingSecret": "s3-keys", "region": "eu-west-1"}}
    )
    env = container_env(docs, deployment(docs))
    assert "AWS_ACCESS_KEY_ID" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert env["AWS_REGION"] == "eu-west-1"  # for Redshift IAM authentication
    assert "LOGSHIP_UI_TOKENS" not in env  # no tokens Secret: none asked for
    loader_env = container_env(docs, one(docs, "Deployment", "-loader"))
    assert "AWS_SECRET_ACCESS_KEY" in loader_env  # the check above is not vacuous


def test_the_loaders_warehouse_secret_is_refused(render: Callable[..., list[Manifest]]) -> None:
    same = {"existingSecret": "logship-warehouse", "existingSecretKey": "warehouse-url"}
    with pytest.raises(helm_python.HelmRenderError, match="read-only"):
        render({"ui": {"enabled": True, "warehouse": same}})
    # one Secret holding both URLs under different keys is fine, and so is no loader
    docs = render({"ui": {"enabled": True, "warehouse": dict(same, existingSecretKey="ui-url")}})
    assert (
        container_env(docs, deployment(docs))["LOGSHIP_WAREHOUSE_URL"]["secretKeyRef"]["key"]
        == "ui-url"
    )
    assert deployment(
        render({"ui": {"enabled": True, "warehouse": same}, "loader": {"enabled": False}})
    )


@pytest.mark.parametrize(
    ("ui", "complaint"),
    [
        ({"warehouse": {"existingSecret": ""}}, "existingSecret"),
        ({"warehouse": {"url": "redshift://u:p@h:5439/db"}}, "url"),
        ({"tokens": {"tokens": "tok-1"}}, "tokens"),
        ({"extraEnv": [{"name": "LOGSHIP_UI_TOKENS", "value": "tok"}]}, "extraEnv"),
        (
            {"extraEnv": [{"name": "LOGSHIP_WAREHOUSE_URL", "value": "redshift://u:p@h/db"}]},
            "extraEnv",
        ),
        ({"extraEnv": [{"name": "logship_ui_tokens", "value": "tok"}]}, "extraEnv"),
        ({"extraEnv": [{"name": "LOGSHIP_TIMEZONE", "value": "Europe/Paris"}]}, "extraEnv"),
        ({"extraEnv": [{"name": "LOGSHIP_UI_HTTP_ADDR", "value": "0.0.0.0:1"}]}, "extraEnv"),
        ({"config": {"flagWindowMinutes": 0}}, "flagWindowMinutes"),
        ({"config": {"statementTimeoutSeconds": -1}}, "statementTimeoutSeconds"),
        ({"replicas": 0}, "replicas"),
        ({"pdb": {"maxUnavailable": 0}}, "maxUnavailable"),
        ({"port": 70000}, "port"),
        ({"enabledd": True}, "enabledd"),
    ],
)
def test_values_schema_rejects(
    render: Callable[..., list[Manifest]], ui: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(helm_python.HelmValuesError, match="schema") as info:
        render({"ui": {"enabled": True, **ui}})
    assert complaint in str(info.value)


def test_extra_env_from_a_secret_is_allowed(render: Callable[..., list[Manifest]]) -> None:
    ref = {"secretKeyRef": {"name": "s", "key": "k"}}
    docs = render({"ui": {"enabled": True, "extraEnv": [{"name": "AWS_SESSION_TOKEN", "valueFrom": ref},
                                                         {"name": "EXTRA", "value": "1"}]}})  # fmt: skip
    env = container_env(docs, deployment(docs))
    assert env["AWS_SESSION_TOKEN"] == ref and env["EXTRA"] == "1"


def _env_name(field: str) -> str:
    return "LOGSHIP_" + field.upper()


def test_every_variable_is_one_logship_ui_reads(docs: list[Manifest], tmp_path: Path) -> None:
    """The ConfigMap names only UiSettings fields (a typo would be ignored silently), and the
    analyses' settings are the loader's, so the pages equal the loader's views."""
    known = {_env_name(f) for f in UiSettings.model_fields}
    ui_cm = one(docs, "ConfigMap", UI)["data"]
    assert set(ui_cm) <= known, set(ui_cm) - known
    loader_cm = one(docs, "ConfigMap", "-loader")["data"]
    for name in ("LOGSHIP_WAREHOUSE_SCHEMA", "LOGSHIP_TIMEZONE", "LOGSHIP_USABLE_STATES",
                 "LOGSHIP_SESSION_MARGIN_S"):  # fmt: skip
        assert ui_cm[name] == loader_cm[name], name
    assert ui_cm["LOGSHIP_TIMEZONE"] == "America/Los_Angeles"  # production values' zone
    # and `logship ui` accepts them: UiSettings from exactly this environment
    fields = {f: ui_cm[_env_name(f)] for f in UiSettings.model_fields if _env_name(f) in ui_cm}
    fields["registry_path"] = None  # mounted in the pod, not here
    settings = UiSettings(**fields, warehouse_url="redshift://u:p@h:5439/db")
    assert settings.ui_http_addr.startswith("0.0.0.0:")
    assert (
        settings.analytics()
        == LoaderSettings(
            **{f: v for f, v in fields.items() if f in LoaderSettings.model_fields}
        ).analytics()
    )


def test_config_change_rolls_only_the_ui(render: Callable[..., list[Manifest]]) -> None:
    def checksum(docs: list[Manifest], suffix: str) -> str:
        return one(docs, "Deployment", suffix)["spec"]["template"]["metadata"]["annotations"][
            "checksum/config"
        ]

    base = render({"ui": {"enabled": True}})
    ui_changed = render({"ui": {"enabled": True, "config": {"flagWindowMinutes": 5}}})
    assert checksum(base, UI) != checksum(ui_changed, UI)
    assert checksum(base, "-loader") == checksum(ui_changed, "-loader")
    assert one(ui_changed, "ConfigMap", UI)["data"]["LOGSHIP_UI_FLAG_WINDOW_MIN"] == "5"
    # a loader setting the UI shares rolls both
    tz = render({"ui": {"enabled": True}, "loader": {"config": {"timezone": "Europe/Paris"}}})
    assert checksum(base, UI) != checksum(tz, UI) and checksum(base, "-loader") != checksum(
        tz, "-loader"
    )


# ----------------------------------------------------------------------------- reaching it


def _matches(rule: dict[str, Any], path: str) -> bool:
    """Kubernetes Ingress path matching: Exact, or Prefix by whole path elements."""
    want = rule["path"]
    if rule["pathType"] == "Exact":
        return path == want
    want_parts = [p for p in want.split("/") if p]
    return path.split("/")[1 : len(want_parts) + 1] == want_parts


def _app_paths(tmp_path: Path) -> list[str]:
    """A concrete path for every route of the real web UI app."""
    app = build_app(UiSettings(warehouse_url=f"duckdb:///{tmp_path}/wh.duckdb"))
    paths = set()
    for resource in app.router.resources():
        paths.add(re.sub(r"\{[^}]+\}", "X-1", resource.canonical))
    return sorted(paths)


def test_ingress_reaches_every_page_and_not_the_probes(
    docs: list[Manifest], tmp_path: Path
) -> None:
    ingress = one(docs, "Ingress", UI)
    svc = one(docs, "Service", UI)
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["metadata"]["annotations"] == OAUTH2_PROXY
    rules = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    for p in rules:
        assert p["backend"]["service"] == {
            "name": svc["metadata"]["name"],
            "port": {"name": "http"},
        }
    paths = _app_paths(tmp_path)
    assert {"/", "/healthz", "/metrics", "/deliveries/X-1", "/api/supply-hours"} <= set(paths)
    for path in paths:
        reached = any(_matches(r, path) for r in rules)
        assert reached == (path not in ("/healthz", "/metrics")), path


def test_network_policy_and_monitoring(docs: list[Manifest]) -> None:
    dep = deployment(docs)
    labels = dep["spec"]["template"]["metadata"]["labels"]
    np = one(docs, "NetworkPolicy", UI)
    assert np["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    (rule,) = np["spec"]["ingress"]
    assert rule["from"] == ui_values()["networkPolicy"]["uiFrom"]
    assert [p["port"] for p in rule["ports"]] == ["http"]
    assert {"port": 53, "protocol": "UDP"} in np["spec"]["egress"][0]["ports"]
    # the ServiceMonitor scrapes exactly the UI's Service, whose name is the alert's job
    sm = one(docs, "ServiceMonitor", UI)
    svc = one(docs, "Service", UI)
    selector = sm["spec"]["selector"]["matchLabels"]
    matched = [
        s for s in of_kind(docs, "Service") if selector.items() <= s["metadata"]["labels"].items()
    ]
    assert matched == [svc]
    assert [e["path"] for e in sm["spec"]["endpoints"]] == ["/metrics"]
    rules = {
        r["alert"]: r for g in one(docs, "PrometheusRule")["spec"]["groups"] for r in g["rules"]
    }
    job = re.search(r'job=~"([^"]+)"', rules["LogshipTargetDown"]["expr"]).group(1)  # type: ignore[union-attr]
    assert svc["metadata"]["name"] in job.split("|")
    assert f"{RELEASE}-loader" in job.split("|")


def notes(chart: Any, values: dict[str, Any]) -> str:
    return chart.render(values, name=RELEASE, namespace=NAMESPACE)["logship/templates/NOTES.txt"]


def test_notes_say_how_to_reach_it_and_warn_without_auth(chart: Any) -> None:
    text = notes(chart, ui_values())
    assert f"port-forward svc/{RELEASE}-ui" in text
    assert "logship-redshift-ui" in text and "WARNING: the UI" not in text
    open_ingress = ui_values(
        tokens={"existingSecret": ""}, ingress={"enabled": True, "annotations": {}}
    )
    assert "WARNING: the UI's Ingress has no authentication" in notes(chart, open_ingress)
    tokens_only = ui_values(ingress={"enabled": True, "annotations": {}})
    assert "WARNING: the UI" not in notes(chart, tokens_only)
    assert "web UI" not in notes(chart, load_production_values())
