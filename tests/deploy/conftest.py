"""Render the chart with Helm's own engine (helm-python-sdk, no helm binary, no cluster) and read the results.

The release and namespace are the ones docs/deployment.md and charts/airflow-values.yaml use, so the
rendered names can be compared with what the Airflow side refers to.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_python.chart import Chart

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "airflow-imaging-privacy"
PRODUCTION_VALUES = CHART / "ci" / "production-values.yaml"
AIRFLOW_VALUES = ROOT / "charts" / "airflow-values.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"

#: Kubernetes versions every manifest must validate against (strict): the chart's kubeVersion floor and
#: the newest schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")

Manifest = dict[str, Any]


def _airflow_install() -> tuple[str, str]:
    """The Airflow release name and namespace from the install command at the top of airflow-values.yaml."""
    found = re.search(
        r"helm upgrade --install (\S+) apache-airflow/airflow --namespace (\S+)", AIRFLOW_VALUES.read_text()
    )
    assert found, "charts/airflow-values.yaml must start with the helm command that installs it"
    return found.group(1), found.group(2)


AIRFLOW_RELEASE, NAMESPACE = _airflow_install()
#: The Dask chart's release; airflow-values.yaml's names are derived from it.
RELEASE = "airflow-imaging-privacy"


def load_yaml(path: Path) -> dict[str, Any]:
    """One YAML document that must be a mapping."""
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path} is not a mapping"
    return data


def render(values: dict[str, Any] | None = None, *, release: str = RELEASE) -> dict[str, str]:
    """Every rendered template (path to text), NOTES.txt included."""
    with Chart.load(CHART) as chart:
        return chart.render(values, name=release, namespace=NAMESPACE)


def manifests(rendered: dict[str, str]) -> list[Manifest]:
    """The Kubernetes objects of a render, in template order."""
    objects: list[Manifest] = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for document in yaml.safe_load_all(text):
            if document is not None:
                assert isinstance(document, dict), f"{path} renders a non-object: {document!r}"
                objects.append(document)
    return objects


def by_kind(objects: list[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[Manifest], kind: str, component: str) -> Manifest:
    """The single object of ``kind`` labelled with ``component``."""
    found = [
        o for o in by_kind(objects, kind) if o["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    assert len(found) == 1, f"expected one {kind} for {component}, found {len(found)}"
    return found[0]


def pod_spec(workload: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def pod_specs(objects: list[Manifest]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every workload that runs pods."""
    for o in objects:
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield f"{o['kind']}/{o['metadata']['name']}", pod_spec(o)


def container_args(workload: Manifest, name: str) -> list[str]:
    for container in pod_spec(workload)["containers"]:
        if container["name"] == name:
            args: list[str] = container["args"]
            return args
    raise AssertionError(f"no container {name} in {workload['metadata']['name']}")


@pytest.fixture(scope="session")
def production_values() -> dict[str, Any]:
    return load_yaml(PRODUCTION_VALUES)


@pytest.fixture(scope="session")
def default_objects() -> list[Manifest]:
    return manifests(render())


@pytest.fixture(scope="session")
def production_objects(production_values: dict[str, Any]) -> list[Manifest]:
    return manifests(render(production_values))


@pytest.fixture(scope="session")
def chart_values() -> dict[str, Any]:
    with Chart.load(CHART) as chart:
        return chart.values


@pytest.fixture(scope="session")
def airflow_values() -> dict[str, Any]:
    return load_yaml(AIRFLOW_VALUES)
