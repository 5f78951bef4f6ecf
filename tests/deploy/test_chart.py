"""The Helm chart, rendered and linted by the real Helm SDK and every manifest
validated against the Kubernetes OpenAPI schemas (kubernetes-validate, strict) or, for the
prometheus-operator CRDs, against their vendored openAPIV3Schema (jsonschema).

The promises checked: a StatefulSet whose spool lives on its volumeClaimTemplates, a grace
period longer than the drain, the probes, a single Recreate loader, the restricted security
context on every container, secrets only ever by reference, pods rolling when the registry or
the configuration changes, the dashboard ConfigMap, and a values schema that refuses bad values.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.conftest import (
    CHART_DIR,
    DASHBOARD,
    NAMESPACE,
    RELEASE,
    Manifest,
    load_production_values,
    of_kind,
    one,
    strip,
)

SCHEMAS = Path(__file__).parent / "schemas"
# The newest Kubernetes version whose schemas kubernetes-validate ships (1.37 with 1.37.0).
K8S_VERSION = kubernetes_validate.latest_version()
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor-monitoring-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring-v1.json",
}
WORKLOADS = ("StatefulSet", "Deployment")
# Environment variables that carry secrets: they may only come from a secretKeyRef.
SECRET_ENV = {
    "LOGSHIP_AUTH_TOKENS",
    "LOGSHIP_WAREHOUSE_URL",
    "LOGSHIP_PII_HASH_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
}

VALUE_SETS = {"default": None, "production": load_production_values()}


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def docs(request: pytest.FixtureRequest, default_docs: list[Manifest], production_docs):  # type: ignore[no-untyped-def]
    return default_docs if request.param == "default" else production_docs


# ----------------------------------------------------------------------------- helpers


def pod_spec(doc: Manifest) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]


def containers(doc: Manifest) -> list[dict[str, Any]]:
    spec = pod_spec(doc)
    return spec.get("initContainers", []) + spec["containers"]


def container_env(docs: list[Manifest], workload: Manifest) -> dict[str, Any]:
    """What the (single) container sees: envFrom ConfigMaps of the release, then env."""
    (c,) = pod_spec(workload)["containers"]
    env: dict[str, Any] = {}
    for src in c.get("envFrom", []):
        cm = one(docs, "ConfigMap", src["configMapRef"]["name"])
        env.update(cm["data"])
    for e in c.get("env", []):
        env[e["name"]] = e.get("value", e.get("valueFrom"))
    return env


def strict_crd_schema(schema: Any) -> Any:
    """An openAPIV3Schema made strict the way kubernetes-validate's strict mode is: objects
    with declared properties accept no others (the API server would prune them silently)."""
    if isinstance(schema, dict):
        out = {k: strict_crd_schema(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict_crd_schema(v) for v in schema]
    return schema


def validate_manifest(doc: Manifest) -> None:
    key = (doc["apiVersion"], doc["kind"])
    if key in CRD_SCHEMAS:
        schema = strict_crd_schema(json.loads((SCHEMAS / CRD_SCHEMAS[key]).read_text()))
        jsonschema.Draft7Validator(schema).validate(doc)
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def leaf_keys(values: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for k, v in values.items():
        if isinstance(v, dict) and v:
            keys += leaf_keys(v, f"{prefix}{k}.")
        else:
            keys.append(f"{prefix}{k}")
    return keys


# ----------------------------------------------------------------------------- Helm itself


@pytest.mark.parametrize("values_name", sorted(VALUE_SETS))
def test_lint_reports_no_error_or_warning(helm: Any, values_name: str) -> None:
    report = helm.lint(
        str(CHART_DIR),
        VALUE_SETS[values_name],
        strict=True,
        namespace=NAMESPACE,
        kube_version=f"v{K8S_VERSION}",
    )
    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    # severity 1 is informational ("icon is recommended"); 2 warning, 3 error
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_lint_does_report_a_broken_value(helm: Any) -> None:
    """The lint check above is not vacuous: a value the schema refuses is an error."""
    report = helm.lint(str(CHART_DIR), {"ingest": {"replicas": "two"}}, strict=True)
    assert report["errors"], report


def test_chart_metadata(chart: Any) -> None:
    meta = chart.metadata
    assert meta["apiVersion"] == "v2"
    assert meta["appVersion"] == "0.1.0"
    assert chart.schema["$schema"] == "http://json-schema.org/draft-07/schema#"


# ----------------------------------------------------------------------------- schemas


def test_every_manifest_is_valid_kubernetes(docs: list[Manifest]) -> None:
    assert docs
    for doc in docs:
        try:
            validate_manifest(strip(doc))
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{doc['__template__']}: {doc['kind']} {path}: {exc.message}")


def test_validation_is_not_vacuous(production_docs: list[Manifest]) -> None:
    """Both validators reject what the API server would: an unknown field, a bad duration."""
    sts = copy.deepcopy(strip(one(production_docs, "StatefulSet")))
    sts["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["pathh"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_manifest(sts)
    rule = copy.deepcopy(strip(one(production_docs, "PrometheusRule")))
    rule["spec"]["groups"][0]["rules"][0]["for"] = "5 minutes"
    with pytest.raises(jsonschema.ValidationError):
        validate_manifest(rule)
    monitor = copy.deepcopy(strip(of_kind(production_docs, "ServiceMonitor")[0]))
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    with pytest.raises(jsonschema.ValidationError):
        validate_manifest(monitor)


def test_objects_rendered(default_docs: list[Manifest], production_docs: list[Manifest]) -> None:
    def kinds(docs: list[Manifest]) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in docs:
            out[d["kind"]] = out.get(d["kind"], 0) + 1
        return out

    assert kinds(default_docs) == {
        "ConfigMap": 3,  # ingest env, loader env, dashboard (registry: bundled in the image)
        "Deployment": 1,
        "PodDisruptionBudget": 2,
        "Service": 3,
        "ServiceAccount": 2,
        "StatefulSet": 1,
    }
    assert kinds(production_docs) == {
        "ConfigMap": 4,  # + the registry
        "Deployment": 1,
        "HorizontalPodAutoscaler": 1,
        "Ingress": 1,
        "NetworkPolicy": 2,
        "PodDisruptionBudget": 2,
        "PrometheusRule": 1,
        "Service": 3,
        "ServiceAccount": 2,
        "ServiceMonitor": 2,
        "StatefulSet": 1,
    }
    for doc in production_docs:
        assert doc["metadata"]["namespace"] == NAMESPACE


# ----------------------------------------------------------------------------- ingest


def test_statefulset_spool_is_on_its_volume_claim(docs: list[Manifest]) -> None:
    sts = one(docs, "StatefulSet")
    (vct,) = sts["spec"]["volumeClaimTemplates"]
    assert vct["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert vct["spec"]["resources"]["requests"]["storage"]
    (c,) = pod_spec(sts)["containers"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    spool_mount = mounts[vct["metadata"]["name"]]
    env = container_env(docs, sts)
    spool_dir = env["LOGSHIP_SPOOL_DIR"]
    assert spool_dir.startswith(spool_mount.rstrip("/") + "/"), (spool_dir, spool_mount)
    # the claim, not an emptyDir of the same name, backs the mount
    assert vct["metadata"]["name"] not in {v["name"] for v in pod_spec(sts).get("volumes", [])}
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Retain"


def test_spool_cap_fits_the_volume(render: Callable[..., list[Manifest]]) -> None:
    sts_env = render({"ingest": {"spool": {"size": "2Gi", "maxBytes": 1024**3}, "workers": 1}})
    assert one(sts_env, "ConfigMap", "-ingest")["data"]["LOGSHIP_SPOOL_MAX_BYTES"] == "1073741824"
    with pytest.raises(helm_python.HelmRenderError, match="90%"):
        render({"ingest": {"spool": {"size": "2Gi", "maxBytes": 1024**3}, "workers": 2}})
    with pytest.raises(helm_python.HelmRenderError, match="90%"):
        render({"ingest": {"spool": {"size": "10G", "maxBytes": 9 * 1024**3}}})


def test_termination_grace_is_longer_than_the_drain(
    docs: list[Manifest], render: Callable[..., list[Manifest]]
) -> None:
    sts = one(docs, "StatefulSet")
    drain = float(container_env(docs, sts)["LOGSHIP_SHUTDOWN_TIMEOUT_S"])
    assert pod_spec(sts)["terminationGracePeriodSeconds"] > drain

    slow = render({"ingest": {"shutdownTimeoutSeconds": 100.5}})
    sts = one(slow, "StatefulSet")
    assert container_env(slow, sts)["LOGSHIP_SHUTDOWN_TIMEOUT_S"] == "100.5"
    assert pod_spec(sts)["terminationGracePeriodSeconds"] == 101 + 15

    explicit = render({"ingest": {"terminationGracePeriodSeconds": 90}})
    assert pod_spec(one(explicit, "StatefulSet"))["terminationGracePeriodSeconds"] == 90
    with pytest.raises(
        helm_python.HelmRenderError, match=r"must be longer than ingest\.shutdownTimeoutSeconds"
    ):
        render({"ingest": {"terminationGracePeriodSeconds": 30, "shutdownTimeoutSeconds": 30}})


def test_probes(docs: list[Manifest]) -> None:
    sts = one(docs, "StatefulSet")
    (c,) = pod_spec(sts)["containers"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    # the probed port is the one the server listens on
    assert container_env(docs, sts)["LOGSHIP_HTTP_ADDR"] == f"0.0.0.0:{ports['http']}"
    assert c["args"] == ["ingest"]

    dep = one(docs, "Deployment")
    (c,) = pod_spec(dep)["containers"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container_env(docs, dep)["LOGSHIP_LOADER_HTTP_ADDR"] == f"0.0.0.0:{ports['http']}"
    assert c["args"] == ["load"]


def test_services(docs: list[Manifest]) -> None:
    sts = one(docs, "StatefulSet")
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    headless = one(docs, "Service", "-ingest-headless")
    senders = one(docs, "Service", "-ingest")
    assert sts["spec"]["serviceName"] == headless["metadata"]["name"]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    for svc in (headless, senders):
        assert svc["spec"]["selector"].items() <= pod_labels.items()
        assert [p["targetPort"] for p in svc["spec"]["ports"]] == ["http"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    for tsc in pod_spec(sts)["topologySpreadConstraints"]:
        assert tsc["labelSelector"]["matchLabels"].items() <= pod_labels.items()


def test_hpa_and_ingress(production_docs: list[Manifest], production_values: Any) -> None:
    sts = one(production_docs, "StatefulSet")
    assert "replicas" not in sts["spec"]  # the HPA owns it
    hpa = one(production_docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": sts["metadata"]["name"],
    }
    assert hpa["spec"]["minReplicas"] == production_values["ingest"]["autoscaling"]["minReplicas"]
    ingress = one(production_docs, "Ingress")
    senders = one(production_docs, "Service", "-ingest")
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert {p["path"] for p in paths} == {
        "/v1/logs",
        "/api/v2/logs",
        "/v1/input",
        "/api/v1/validate",
    }
    for p in paths:  # /metrics, /healthz, /readyz need no token: they stay in-cluster
        assert p["backend"]["service"] == {
            "name": senders["metadata"]["name"],
            "port": {"name": "http"},
        }


def test_network_policies(production_docs: list[Manifest]) -> None:
    for suffix, workload in (("-ingest", "StatefulSet"), ("-loader", "Deployment")):
        np = one(production_docs, "NetworkPolicy", suffix)
        w = one(production_docs, workload)
        labels = w["spec"]["template"]["metadata"]["labels"]
        assert np["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        port_names = {p["name"] for p in pod_spec(w)["containers"][0]["ports"]}
        for rule in np["spec"]["ingress"]:
            assert rule["from"], "production values restrict the sources"
            assert {p["port"] for p in rule["ports"]} <= port_names
        egress = np["spec"]["egress"]
        assert {"port": 53, "protocol": "UDP"} in egress[0][
            "ports"
        ]  # DNS when egress is restricted


# ----------------------------------------------------------------------------- loader


def test_loader_is_one_recreated_pod_without_volume_claims(docs: list[Manifest]) -> None:
    dep = one(docs, "Deployment")
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    volumes = pod_spec(dep)["volumes"]
    assert not any("persistentVolumeClaim" in v for v in volumes)
    tmp = next(v for v in volumes if v["name"] == "tmp")
    assert "emptyDir" in tmp
    env = container_env(docs, dep)
    assert env["LOGSHIP_LAKE_URL"].startswith("s3://")
    assert env["LOGSHIP_WAREHOUSE_URL"]["secretKeyRef"]["key"]


def test_loader_can_be_disabled(render: Callable[..., list[Manifest]]) -> None:
    docs = render({"loader": {"enabled": False}, "metrics": {"serviceMonitor": {"enabled": True}}})
    assert not of_kind(docs, "Deployment")
    assert all("-loader" not in d["metadata"]["name"] for d in docs)
    assert len(of_kind(docs, "ServiceMonitor")) == 1


def test_production_config_reaches_the_containers(production_docs: list[Manifest]) -> None:
    loader = container_env(production_docs, one(production_docs, "Deployment"))
    assert loader["LOGSHIP_LAKE_URL"] == "s3://coco-logship-lake-prod/v1"
    assert (
        loader["LOGSHIP_REDSHIFT_IAM_ROLE"]
        == "arn:aws:iam::123456789012:role/redshift-copy-logship"
    )
    assert loader["LOGSHIP_WAREHOUSE_SCHEMA"] == "logship"
    assert loader["LOGSHIP_TIMEZONE"] == "America/Los_Angeles"
    assert loader["LOGSHIP_DEDUPE_WINDOW_S"] == "604800"  # an integer, never 6.048e+05
    ingest = container_env(production_docs, one(production_docs, "StatefulSet"))
    assert ingest["LOGSHIP_SPOOL_MAX_BYTES"] == "21474836480"
    assert ingest["LOGSHIP_WORKERS"] == "2"
    assert ingest["AWS_REGION"] == "eu-west-1"
    for sa in of_kind(production_docs, "ServiceAccount"):
        arn = sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        assert arn.endswith(sa["metadata"]["name"].removeprefix(f"{RELEASE}-"))


# ----------------------------------------------------------------------------- both


def test_security_context_on_every_container(docs: list[Manifest]) -> None:
    for w in (d for d in docs if d["kind"] in WORKLOADS):
        pod = pod_spec(w)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for c in containers(w):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True
            assert sc["runAsUser"] == 10001
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            assert c["resources"]["requests"]["memory"]
            assert c["resources"]["limits"]["memory"]
            # a read-only root: /tmp is a volume
            assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}
            volumes = {v["name"]: v for v in pod["volumes"]}
            tmp = next(m["name"] for m in c["volumeMounts"] if m["mountPath"] == "/tmp")
            assert "emptyDir" in volumes[tmp]


def test_secrets_only_by_reference(docs: list[Manifest]) -> None:
    assert not of_kind(docs, "Secret")
    for cm in of_kind(docs, "ConfigMap"):
        assert not SECRET_ENV & set(cm.get("data", {})), cm["metadata"]["name"]
    seen = set()
    for w in (d for d in docs if d["kind"] in WORKLOADS):
        for c in containers(w):
            for e in c.get("env", []):
                if e["name"] in SECRET_ENV:
                    seen.add(e["name"])
                    assert "value" not in e, e
                    ref = e["valueFrom"]["secretKeyRef"]
                    assert ref["name"] and ref["key"]
    assert "LOGSHIP_WAREHOUSE_URL" in seen
    # nothing that looks like a credential-bearing URL anywhere in the manifests
    text = json.dumps([strip(d) for d in docs])
    assert not re.search(r"[a-z0-9+]+://[^/\s\"@]+:[^/\s\"@]+@", text)


def test_production_secrets_come_from_existing_secrets(production_docs: list[Manifest]) -> None:
    refs = {}
    for w in (d for d in production_docs if d["kind"] in WORKLOADS):
        for e in pod_spec(w)["containers"][0].get("env", []):
            if "valueFrom" in e:
                refs[e["name"]] = (
                    e["valueFrom"]["secretKeyRef"]["name"],
                    e["valueFrom"]["secretKeyRef"]["key"],
                )
    assert refs == {
        "LOGSHIP_WAREHOUSE_URL": ("logship-redshift", "warehouse-url"),
        "LOGSHIP_AUTH_TOKENS": ("logship-ingest-tokens", "tokens"),
        "LOGSHIP_PII_HASH_KEY": ("logship-pii-hash", "pii-hash-key"),
    }


@pytest.mark.parametrize(
    "values",
    [
        {"ingest": {"auth": {"tokens": "tok-1,tok-2"}}},
        {"loader": {"warehouse": {"url": "redshift://u:hunter2@h:5439/db"}}},
        {
            "loader": {
                "extraEnv": [{"name": "LOGSHIP_WAREHOUSE_URL", "value": "redshift://u:p@h/db"}]
            }
        },
        {"ingest": {"extraEnv": [{"name": "LOGSHIP_AUTH_TOKENS", "value": "tok"}]}},
        {"aws": {"secretAccessKey": "wJalrXUtnFEMI"}},
        # settings read names case-insensitively: a lower-case name must not slip through
        {"ingest": {"extraEnv": [{"name": "logship_auth_tokens", "value": "tok"}]}},
        # a secret from a ConfigMap is a secret in clear
        {
            "loader": {
                "extraEnv": [
                    {
                        "name": "LOGSHIP_WAREHOUSE_URL",
                        "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}},
                    }
                ]
            }
        },
    ],
    ids=[
        "tokens",
        "warehouse-url",
        "extraEnv-warehouse",
        "extraEnv-tokens",
        "aws-key",
        "extraEnv-lowercase",
        "extraEnv-configmap",
    ],
)
def test_values_cannot_hold_secrets(render: Callable[..., list[Manifest]], values: Any) -> None:
    with pytest.raises(helm_python.HelmValuesError, match="schema"):
        render(values)


def test_extra_env_from_a_secret_is_allowed(render: Callable[..., list[Manifest]]) -> None:
    ref = {"secretKeyRef": {"name": "aws-session", "key": "token"}}
    docs = render({"ingest": {"extraEnv": [{"name": "AWS_SESSION_TOKEN", "valueFrom": ref},
                                           {"name": "EXTRA", "value": "1"}]}})  # fmt: skip
    env = container_env(docs, one(docs, "StatefulSet"))
    assert env["AWS_SESSION_TOKEN"] == ref
    assert env["EXTRA"] == "1"


# ----------------------------------------------------------------------------- rolling on change


def annotations(docs: list[Manifest], kind: str) -> dict[str, str]:
    return one(docs, kind)["spec"]["template"]["metadata"]["annotations"]


def test_registry_is_mounted_and_rolls_pods(
    render: Callable[..., list[Manifest]], tmp_path: Path
) -> None:
    reg_a = load_production_values()["registry"]["content"]
    reg_b = reg_a.replace("reason: {type: string}", "reason: {type: string, required: true}")
    assert reg_a != reg_b
    a, b = render({"registry": {"content": reg_a}}), render({"registry": {"content": reg_b}})
    for kind in WORKLOADS:
        assert (
            annotations(a, kind)["checksum/registry"] != annotations(b, kind)["checksum/registry"]
        )
        assert annotations(a, kind)["checksum/config"] == annotations(b, kind)["checksum/config"]

        w = one(a, kind)
        env = container_env(a, w)
        (c,) = pod_spec(w)["containers"]
        mount = next(m for m in c["volumeMounts"] if m["name"] == "registry")
        assert mount["readOnly"] is True
        vol = next(v for v in pod_spec(w)["volumes"] if v["name"] == "registry")
        cm = one(a, "ConfigMap", vol["configMap"]["name"])
        (item,) = vol["configMap"]["items"]
        assert env["LOGSHIP_REGISTRY_PATH"] == f"{mount['mountPath']}/{item['path']}"
        assert cm["data"][item["key"]].strip() == reg_a.strip()

    # and the mounted registry is one logship accepts
    from ingest.registry import load_registry

    path = tmp_path / "registry.yaml"
    path.write_text(one(a, "ConfigMap", "-registry")["data"]["registry.yaml"])
    assert {"delivery.pickup_completed", "robot.state_changed"} <= set(load_registry(path).events)


def test_config_change_rolls_only_its_pods(
    render: Callable[..., list[Manifest]], default_docs: list[Manifest]
) -> None:
    changed = render({"ingest": {"config": {"objectMaxAgeSeconds": 30}}})
    assert (
        annotations(changed, "StatefulSet")["checksum/config"]
        != annotations(default_docs, "StatefulSet")["checksum/config"]
    )
    assert (
        annotations(changed, "Deployment")["checksum/config"]
        == annotations(default_docs, "Deployment")["checksum/config"]
    )
    changed = render({"loader": {"config": {"loadIntervalSeconds": 5}}})
    assert (
        annotations(changed, "Deployment")["checksum/config"]
        != annotations(default_docs, "Deployment")["checksum/config"]
    )


# ----------------------------------------------------------------------------- observability objects


def test_dashboard_configmap_is_the_dashboard_file(docs: list[Manifest]) -> None:
    cm = one(docs, "ConfigMap", "-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    (key,) = cm["data"]
    assert key == "logship.json"
    assert cm["data"][key] == DASHBOARD.read_text().rstrip("\n")
    assert json.loads(cm["data"][key]) == json.loads(DASHBOARD.read_text())


def test_servicemonitors_select_the_scrape_services(production_docs: list[Manifest]) -> None:
    services = of_kind(production_docs, "Service")
    rule_text = json.dumps(one(production_docs, "PrometheusRule")["spec"])
    for sm in of_kind(production_docs, "ServiceMonitor"):
        selector = sm["spec"]["selector"]["matchLabels"]
        matched = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
        assert len(matched) == 1, (sm["metadata"]["name"], [s["metadata"]["name"] for s in matched])
        (svc,) = matched
        assert {e["port"] for e in sm["spec"]["endpoints"]} <= {
            p["name"] for p in svc["spec"]["ports"]
        }
        assert all(e["path"] == "/metrics" for e in sm["spec"]["endpoints"])
        # the alerts select on job = the Service name (prometheus-operator's default job label)
        assert f'job=\\"{svc["metadata"]["name"]}\\"' in rule_text
    assert {
        s["metadata"]["name"] for s in services if s["spec"].get("publishNotReadyAddresses")
    } == {
        f"{RELEASE}-ingest-headless",
        f"{RELEASE}-loader",
    }


def test_alert_thresholds_come_from_values(render: Callable[..., list[Manifest]]) -> None:
    alerts = {
        "loaderLag": {"thresholdSeconds": 4321},
        "rejectRatio": {"threshold": 0.123, "window": "7m"},
        "uploadErrors": {"threshold": 17, "window": "13m"},
        "spoolFilling": {"ratio": 0.25},
        "loaderStale": {"thresholdSeconds": 9876},
        "targetDown": {"for": "3m", "severity": "warning"},
    }
    docs = render({
        "metrics": {"prometheusRule": {"enabled": True, "alerts": alerts},
                    "serviceMonitor": {"enabled": True}},
        "ingest": {"spool": {"maxBytes": 4 * 1024**3}, "workers": 2},
    })  # fmt: skip
    rules = {
        r["alert"]: r for g in one(docs, "PrometheusRule")["spec"]["groups"] for r in g["rules"]
    }
    assert rules["LogshipLoaderLagHigh"]["expr"].endswith("> 4321")
    assert ") > 0.123\n" in rules["LogshipRejectRatioHigh"]["expr"]
    assert "[7m]" in rules["LogshipRejectRatioHigh"]["expr"]
    assert rules["LogshipUploadErrors"]["expr"].endswith("> 17")
    assert "[13m]" in rules["LogshipUploadErrors"]["expr"]
    # 0.25 of the cap the pod itself exports (logship_ingest_spool_max_bytes)
    assert rules["LogshipSpoolFillingUp"]["expr"].endswith("> 0.25")
    assert "logship_ingest_spool_max_bytes" in rules["LogshipSpoolFillingUp"]["expr"]
    assert rules["LogshipLoaderNotSucceeding"]["expr"].endswith("> 9876")
    assert rules["LogshipTargetDown"]["for"] == "3m"
    assert rules["LogshipTargetDown"]["labels"]["severity"] == "warning"


# ----------------------------------------------------------------------------- values.schema.json


def test_values_schema_is_draft7_and_accepts_the_shipped_values(production_values: Any) -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    defaults["ingest"].pop("terminationGracePeriodSeconds")  # null: Helm drops it before validating
    validator.validate(defaults)


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"ingest": {"replicas": "two"}}, "/ingest/replicas"),
        ({"ingest": {"replicas": 0}}, "/ingest/replicas"),
        ({"replicaCount": 3}, "replicaCount"),
        ({"ingest": {"spool": {"sizee": "10Gi"}}}, "sizee"),
        ({"ingest": {"spool": {"size": "ten gigs"}}}, "/ingest/spool/size"),
        ({"ingest": {"spool": {"maxBytes": "1GiB"}}}, "/ingest/spool/maxBytes"),
        (
            {"metrics": {"prometheusRule": {"alerts": {"loaderLag": {"thresholdSeconds": -1}}}}},
            "thresholdSeconds",
        ),
        (
            {"metrics": {"prometheusRule": {"alerts": {"rejectRatio": {"threshold": 1.5}}}}},
            "threshold",
        ),
        (
            {"metrics": {"prometheusRule": {"alerts": {"rejectRatio": {"severity": "page"}}}}},
            "severity",
        ),
        ({"metrics": {"serviceMonitor": {"interval": "30 seconds"}}}, "interval"),
        ({"logLevel": "LOUD"}, "/logLevel"),
        ({"lake": {"url": "./var/lake"}}, "/lake/url"),
        ({"ingest": {"shutdownTimeoutSeconds": 0}}, "shutdownTimeoutSeconds"),
        ({"ingest": {"workers": 65}}, "/ingest/workers"),
        ({"containerSecurityContext": {"readOnlyRootFilesystem": False}}, "readOnlyRootFilesystem"),
        (
            {"containerSecurityContext": {"allowPrivilegeEscalation": True}},
            "allowPrivilegeEscalation",
        ),
        ({"podSecurityContext": {"runAsNonRoot": False}}, "runAsNonRoot"),
        ({"loader": {"redshift": {"iamRole": "my-role"}}}, "iamRole"),
        ({"loader": {"warehouse": {"existingSecret": ""}}}, "existingSecret"),
        (
            {"ingest": {"autoscaling": {"targetCPUUtilizationPercentage": 150}}},
            "targetCPUUtilizationPercentage",
        ),
        ({"ingest": {"extraEnv": [{"name": "LOGSHIP_SPOOL_MAX_BYTES", "value": "1"}]}}, "extraEnv"),
        ({"loader": {"extraEnv": [{"name": "LOGSHIP_LAKE_URL", "value": "s3://x"}]}}, "extraEnv"),
    ],
)
def test_values_schema_rejects(
    render: Callable[..., list[Manifest]], values: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(helm_python.HelmValuesError, match="schema") as info:
        render(values)
    assert complaint in str(info.value)


def test_render_rejects_inconsistent_values(render: Callable[..., list[Manifest]]) -> None:
    with pytest.raises(helm_python.HelmRenderError, match="minReplicas"):
        render({"ingest": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}})


# ----------------------------------------------------------------------------- documentation


def test_every_value_is_documented_in_the_chart_readme() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    readme = (CHART_DIR / "README.md").read_text().split("\n## Values\n", 1)[1]
    table_keys = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.M))
    leaves = leaf_keys(values)
    assert len(leaves) > 100
    missing = [k for k in leaves if k not in table_keys]
    assert not missing, f"values not in the README table: {missing}"
    stale = sorted(k for k in table_keys if k not in leaves)
    assert not stale, f"README documents values that do not exist: {stale}"


# ----------------------------------------------------------------------------- review fixes


def test_hpa_scales_up_only_unless_allowed(render: Callable[..., list[Manifest]]) -> None:
    """A removed pod's leftover spool would wait unseen on its PVC: no automatic scale-down."""
    on = {"enabled": True}
    hpa = one(render({"ingest": {"autoscaling": on}}), "HorizontalPodAutoscaler")
    assert hpa["spec"]["behavior"]["scaleDown"] == {"selectPolicy": "Disabled"}
    allowed = {"enabled": True, "allowScaleDown": True}
    hpa = one(render({"ingest": {"autoscaling": allowed}}), "HorizontalPodAutoscaler")
    assert hpa["spec"]["behavior"]["scaleDown"]["policies"][0]["value"] == 1


def test_pdbs_never_block_drains(
    docs: list[Manifest], render: Callable[..., list[Manifest]]
) -> None:
    pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert len(pdbs) == 2
    for pdb in pdbs:
        assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    for bad in (0, "0%"):
        with pytest.raises(Exception, match="maxUnavailable"):
            render({"ingest": {"pdb": {"maxUnavailable": bad}}})


def test_alerts_need_the_service_monitors(render: Callable[..., list[Manifest]]) -> None:
    with pytest.raises(helm_python.HelmError, match="serviceMonitor"):
        render({"metrics": {"prometheusRule": {"enabled": True}}})


def test_reject_ratio_alert_needs_a_minimum_of_rejects(
    render: Callable[..., list[Manifest]],
) -> None:
    docs = render({"metrics": {"prometheusRule": {"enabled": True, "alerts": {"rejectRatio": {"minRejects": 42}}},
                               "serviceMonitor": {"enabled": True}}})  # fmt: skip
    rules = {
        r["alert"]: r for g in one(docs, "PrometheusRule")["spec"]["groups"] for r in g["rules"]
    }
    assert rules["LogshipRejectRatioHigh"]["expr"].rstrip().endswith(">= 42")
