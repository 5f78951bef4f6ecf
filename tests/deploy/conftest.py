"""Shared by the chart and observability tests: the chart rendered by the real Helm SDK
(`helm-python-sdk`, no helm binary), offline, as Helm would install it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "helm" / "logship"
PRODUCTION_VALUES = CHART_DIR / "ci" / "production-values.yaml"
DASHBOARD = CHART_DIR / "dashboards" / "logship.json"
RUNBOOK = ROOT / "docs" / "runbook.md"
RELEASE = "logship"
NAMESPACE = "logship"

Manifest = dict[str, Any]


def load_production_values() -> dict[str, Any]:
    return yaml.safe_load(PRODUCTION_VALUES.read_text())


@pytest.fixture(scope="session")
def helm() -> Any:
    """The Helm SDK; its absence is a failure, never a skip."""
    import helm_python

    return helm_python


@pytest.fixture(scope="session")
def chart(helm: Any) -> Any:
    with helm.Chart.load(str(CHART_DIR)) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def render(chart: Any) -> Callable[..., list[Manifest]]:
    """Render with `values` (merged over the chart's defaults, validated against
    values.schema.json by Helm itself) into a list of manifests, each with the template it came
    from under the key `__template__`."""

    def _render(
        values: dict[str, Any] | None = None, *, release: str = RELEASE, namespace: str = NAMESPACE
    ) -> list[Manifest]:
        out = chart.render(values, name=release, namespace=namespace)
        docs: list[Manifest] = []
        for template, text in sorted(out.items()):
            if not template.endswith((".yaml", ".yml")):
                continue  # NOTES.txt
            for doc in yaml.safe_load_all(text):
                if doc:
                    doc["__template__"] = template
                    docs.append(doc)
        return docs

    return _render


@pytest.fixture(scope="session")
def production_values() -> dict[str, Any]:
    return load_production_values()


@pytest.fixture(scope="session")
def default_docs(render: Callable[..., list[Manifest]]) -> list[Manifest]:
    return render(None)


@pytest.fixture(scope="session")
def production_docs(
    render: Callable[..., list[Manifest]], production_values: dict[str, Any]
) -> list[Manifest]:
    return render(production_values)


def strip(doc: Manifest) -> Manifest:
    """The manifest without the test's bookkeeping key."""
    return {k: v for k, v in doc.items() if k != "__template__"}


def of_kind(docs: list[Manifest], kind: str) -> list[Manifest]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Manifest], kind: str, name_suffix: str = "") -> Manifest:
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"expected one {kind} *{name_suffix}, got {[strip(d) for d in found]}"
    return found[0]
