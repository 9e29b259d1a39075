"""The chart, linted and rendered by Helm's engine, every manifest validated against Kubernetes' schemas."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from helm_python.chart import lint
from helm_python.errors import HelmRenderError

from tests.deploy.conftest import (
    CHART,
    KUBERNETES_VERSIONS,
    NAMESPACE,
    RELEASE,
    ROOT,
    Manifest,
    by_kind,
    container_args,
    load_yaml,
    manifests,
    one,
    pod_spec,
    pod_specs,
    render,
)

WARNING = 2


@pytest.mark.parametrize("kube_version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("which", ["defaults", "production"])
def test_lint_is_clean_in_strict_mode(which: str, kube_version: str, production_values: dict[str, Any]) -> None:
    values = production_values if which == "production" else None

    report = lint(CHART, values, strict=True, kube_version=f"v{kube_version}", namespace=NAMESPACE)

    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= WARNING] == []


def test_lint_reports_a_broken_chart(tmp_path: Path) -> None:
    """The linter is really looking: a chart whose Chart.yaml lost its version is an error."""
    broken = tmp_path / "airflow-imaging-privacy"
    shutil.copytree(CHART, broken)
    text = (broken / "Chart.yaml").read_text()
    (broken / "Chart.yaml").write_text(re.sub(r"(?m)^version: .*\n", "", text))

    report = lint(broken, strict=True)

    assert any("version" in m["error"].lower() for m in report["messages"] if m["severity"] > WARNING)


def test_versions_agree_with_the_project(chart_values: dict[str, Any]) -> None:
    chart = load_yaml(CHART / "Chart.yaml")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == project["version"]
    assert chart_values["image"]["tag"] == chart["appVersion"]
    assert chart["kubeVersion"] == f">={KUBERNETES_VERSIONS[0]}-0"


@pytest.mark.parametrize("kube_version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("which", ["defaults", "production"])
def test_every_manifest_validates_strictly(
    which: str, kube_version: str, default_objects: list[Manifest], production_objects: list[Manifest]
) -> None:
    objects = default_objects if which == "defaults" else production_objects
    for obj in objects:
        # Raises on any unknown field, wrong type or missing required field; an unknown kind raises too.
        kubernetes_validate.validate(obj, kube_version, strict=True)


def test_validation_catches_a_bad_manifest(default_objects: list[Manifest]) -> None:
    """The validator is strict: a misspelt field in a rendered container is refused."""
    import copy

    deployment = copy.deepcopy(one(default_objects, "Deployment", "dask-worker"))
    pod_spec(deployment)["containers"][0]["resource"] = {}

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_objects_rendered_by_default(default_objects: list[Manifest]) -> None:
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in default_objects)

    assert kinds == [
        ("ConfigMap", f"{RELEASE}-settings"),
        ("Deployment", f"{RELEASE}-dask-scheduler"),
        ("Deployment", f"{RELEASE}-dask-worker"),
        ("Job", f"{RELEASE}-preflight"),
        ("NetworkPolicy", f"{RELEASE}-dask-scheduler"),
        ("NetworkPolicy", f"{RELEASE}-dask-worker"),
        ("PodDisruptionBudget", f"{RELEASE}-dask-worker"),
        ("Service", f"{RELEASE}-dask-scheduler"),
        ("ServiceAccount", RELEASE),
    ]
    assert {o["metadata"]["namespace"] for o in default_objects} == {NAMESPACE}


def test_no_secret_object_is_ever_rendered(default_objects: list[Manifest], production_objects: list[Manifest]) -> None:
    assert by_kind(default_objects, "Secret") == []
    assert by_kind(production_objects, "Secret") == []


@pytest.mark.parametrize("which", ["defaults", "production"])
def test_every_pod_and_container_is_hardened(
    which: str, default_objects: list[Manifest], production_objects: list[Manifest]
) -> None:
    objects = default_objects if which == "defaults" else production_objects
    specs = list(pod_specs(objects))
    assert len(specs) == 3

    for where, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, where
        assert pod["runAsUser"] > 0 and pod["runAsGroup"] > 0 and pod["fsGroup"] > 0, where
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        assert "hostNetwork" not in spec and "hostPID" not in spec and "hostIPC" not in spec, where
        tmp_volumes = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in spec.get("initContainers", []) + spec["containers"]:
            name = f"{where}/{container['name']}"
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, name
            assert context["runAsUser"] == pod["runAsUser"], name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["privileged"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert "add" not in context["capabilities"], name
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
            # The read-only root file system leaves /tmp, an emptyDir, as the only place to write.
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts.get("/tmp") in tmp_volumes, name


@pytest.mark.parametrize("which", ["defaults", "production"])
def test_every_container_states_its_resources(
    which: str, default_objects: list[Manifest], production_objects: list[Manifest]
) -> None:
    objects = default_objects if which == "defaults" else production_objects
    for where, spec in pod_specs(objects):
        for container in spec["containers"]:
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert set(resources[kind]) == {"cpu", "memory"}, f"{where}: {kind}"
            for emptydir in (v["emptyDir"] for v in spec["volumes"] if "emptyDir" in v):
                assert emptydir["sizeLimit"], where


def _probe_target(probe: dict[str, Any], ports: dict[str, int]) -> tuple[str, int, str | None]:
    if "httpGet" in probe:
        port = probe["httpGet"]["port"]
        return "http", ports[port] if isinstance(port, str) else port, probe["httpGet"]["path"]
    port = probe["tcpSocket"]["port"]
    return "tcp", ports[port] if isinstance(port, str) else port, None


def test_scheduler_probes_its_dashboard_health_and_comm_port(default_objects: list[Manifest]) -> None:
    container = pod_spec(one(default_objects, "Deployment", "dask-scheduler"))["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}

    assert ports == {"tcp-comm": 8786, "http-dashboard": 8787}
    assert _probe_target(container["readinessProbe"], ports) == ("http", 8787, "/health")
    assert _probe_target(container["startupProbe"], ports) == ("http", 8787, "/health")
    assert _probe_target(container["livenessProbe"], ports) == ("tcp", 8786, None)


def test_worker_probes_its_dashboard_health(default_objects: list[Manifest]) -> None:
    container = pod_spec(one(default_objects, "Deployment", "dask-worker"))["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}

    assert ports == {"tcp-worker": 8789, "tcp-nanny": 8790, "http-dashboard": 8788}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert _probe_target(container[probe], ports) == ("http", 8788, "/health"), probe
    args = container_args(one(default_objects, "Deployment", "dask-worker"), "worker")
    assert "--dashboard-address=:8788" in args
    assert "--worker-port=8789" in args and "--nanny-port=8790" in args


def test_scheduler_address_is_the_service_everywhere(default_objects: list[Manifest]) -> None:
    service = by_kind(default_objects, "Service")[0]
    comm = next(p for p in service["spec"]["ports"] if p["name"] == "tcp-comm")
    expected = f"tcp://{service['metadata']['name']}.{NAMESPACE}.svc:{comm['port']}"
    scheduler = one(default_objects, "Deployment", "dask-scheduler")

    assert service["spec"]["selector"] == scheduler["spec"]["selector"]["matchLabels"]
    assert container_args(one(default_objects, "Deployment", "dask-worker"), "worker")[2] == expected
    settings = by_kind(default_objects, "ConfigMap")[0]["data"]
    assert settings["AIRFLOW_VAR_IMAGING_PRIVACY_DASK_ADDRESS"] == expected


def test_scheduler_is_never_doubled(default_objects: list[Manifest]) -> None:
    scheduler = one(default_objects, "Deployment", "dask-scheduler")

    assert scheduler["spec"]["replicas"] == 1
    assert scheduler["spec"]["strategy"] == {"type": "Recreate"}


def test_workers_roll_one_new_before_one_old(default_objects: list[Manifest]) -> None:
    worker = one(default_objects, "Deployment", "dask-worker")
    pdb = one(default_objects, "PodDisruptionBudget", "dask-worker")

    assert worker["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert pdb["spec"]["selector"] == worker["spec"]["selector"]
    assert pdb["spec"]["maxUnavailable"] == 1


def _peers(policy: Manifest) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rules = policy["spec"]["ingress"]
    assert len(rules) == 1, "one rule: the listed peers, on the listed ports"
    return rules[0]["from"], rules[0]["ports"]


def test_scheduler_policy_admits_only_airflow_task_pods_and_dask_workers(
    default_objects: list[Manifest], chart_values: dict[str, Any]
) -> None:
    policy = one(default_objects, "NetworkPolicy", "dask-scheduler")
    scheduler = one(default_objects, "Deployment", "dask-scheduler")
    worker = one(default_objects, "Deployment", "dask-worker")
    peers, ports = _peers(policy)
    release = chart_values["networkPolicy"]["airflowRelease"]
    airflow = [{**labels, "release": release} for labels in chart_values["networkPolicy"]["airflowPodSelectors"]]

    assert policy["spec"]["podSelector"]["matchLabels"] == scheduler["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert peers == [{"podSelector": {"matchLabels": labels}} for labels in airflow] + [
        {"podSelector": {"matchLabels": worker["spec"]["selector"]["matchLabels"]}}
    ]
    assert ports == [{"port": 8786, "protocol": "TCP"}]
    # The official Airflow chart's labels for the pods that run task code.
    assert {labels["component"] for labels in airflow} == {"scheduler", "worker", "triggerer"}
    assert all(labels["tier"] == "airflow" for labels in airflow)


def test_worker_policy_admits_only_the_scheduler_and_workers(default_objects: list[Manifest]) -> None:
    policy = one(default_objects, "NetworkPolicy", "dask-worker")
    scheduler = one(default_objects, "Deployment", "dask-scheduler")
    worker = one(default_objects, "Deployment", "dask-worker")
    peers, ports = _peers(policy)

    assert policy["spec"]["podSelector"]["matchLabels"] == worker["spec"]["selector"]["matchLabels"]
    assert peers == [
        {"podSelector": {"matchLabels": scheduler["spec"]["selector"]["matchLabels"]}},
        {"podSelector": {"matchLabels": worker["spec"]["selector"]["matchLabels"]}},
    ]
    assert ports == [{"port": 8789, "protocol": "TCP"}, {"port": 8790, "protocol": "TCP"}]


def test_policy_scopes_airflow_pods_to_their_namespace_when_told(production_objects: list[Manifest]) -> None:
    peers, _ = _peers(one(production_objects, "NetworkPolicy", "dask-scheduler"))
    airflow_peers, dask_peer = peers[:-1], peers[-1]

    assert len(airflow_peers) == 3
    for peer in airflow_peers:
        assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "airflow"}}
    # The workers are in the chart's own namespace: no namespace selector widens them.
    assert "namespaceSelector" not in dask_peer


def test_policy_can_be_turned_off() -> None:
    objects = manifests(render({"networkPolicy": {"enabled": False}}))

    assert by_kind(objects, "NetworkPolicy") == []


CREDENTIAL = re.compile(
    r"://[^/?#@\s]*:[^/?#@\s]+@|password|passwd|BEGIN [A-Z ]*PRIVATE KEY|\b[0-9a-fA-F]{32,}\b", re.I
)


@pytest.mark.parametrize("which", ["defaults", "production"])
def test_no_literal_secret_in_any_configmap_or_env(
    which: str, default_objects: list[Manifest], production_objects: list[Manifest], chart_values: dict[str, Any]
) -> None:
    objects = default_objects if which == "defaults" else production_objects
    for configmap in by_kind(objects, "ConfigMap"):
        for key, value in configmap["data"].items():
            assert not CREDENTIAL.search(value), f"{key}={value!r}"

    secret_refs = []
    for where, spec in pod_specs(objects):
        for container in spec["containers"]:
            for env in container.get("env", []):
                if "value" in env:
                    assert not CREDENTIAL.search(env["value"]), f"{where}: {env['name']}"
                else:
                    source = env["valueFrom"]
                    assert set(source) <= {"secretKeyRef", "fieldRef"}, f"{where}: {env['name']}"
                    if "secretKeyRef" in source:
                        secret_refs.append((env["name"], source["secretKeyRef"]))
            for env_from in container.get("envFrom", []):
                assert set(env_from) == {"secretRef"}, where
        for volume in spec["volumes"]:
            assert set(volume) & {"name", "emptyDir", "secret", "persistentVolumeClaim"} == set(volume), where

    ledger = chart_values["secrets"]["ledgerConnection"]
    # The one credential a pod reads from the environment: the ledger Connection, by reference.
    assert secret_refs == [
        (
            "AIRFLOW_CONN_IMAGING_PRIVACY_LEDGER_DEFAULT",
            {"name": ledger["existingSecret"], "key": ledger["key"]},
        )
    ]


def test_pseudonym_key_reaches_pods_only_as_a_secret_file(
    default_objects: list[Manifest], chart_values: dict[str, Any]
) -> None:
    job = one(default_objects, "Job", "preflight")
    spec = pod_spec(job)
    key = chart_values["secrets"]["pseudonymKey"]
    volume = next(v for v in spec["volumes"] if "secret" in v)
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == volume["name"])
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}

    assert volume["secret"]["secretName"] == key["existingSecret"]
    assert volume["secret"]["items"] == [{"key": key["key"], "path": "pseudonym.key"}]
    assert volume["secret"]["defaultMode"] == 0o440
    assert mount["readOnly"] is True
    connection = env["AIRFLOW_CONN_IMAGING_PRIVACY_DEFAULT"]
    assert connection is not None
    assert f'"secret_file":"{mount["mountPath"]}/pseudonym.key"' in connection
    assert "password" not in connection


def test_preflight_runs_before_install_and_upgrade(default_objects: list[Manifest]) -> None:
    job = one(default_objects, "Job", "preflight")
    annotations = job["metadata"]["annotations"]

    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    # A hook runs before the chart's ServiceAccount exists.
    assert "serviceAccountName" not in pod_spec(job)
    assert container_args(job, "preflight")[:2] == ["python", "-c"]


def test_preflight_can_be_turned_off() -> None:
    objects = manifests(render({"preflight": {"enabled": False}}))

    assert by_kind(objects, "Job") == []


def test_production_settings_become_airflow_variables(
    production_objects: list[Manifest], production_values: dict[str, Any]
) -> None:
    data = by_kind(production_objects, "ConfigMap")[0]["data"]
    settings = production_values["settings"]

    assert data["AIRFLOW_VAR_IMAGING_PRIVACY_STORE_URL"] == settings["storeUrl"]
    assert data["AIRFLOW_VAR_IMAGING_PRIVACY_EXCHANGE_URL"] == settings["exchangeUrl"]
    assert data["AIRFLOW_VAR_IMAGING_PRIVACY_LEDGER_DATASETS"] == '["ct-cohort-2026","multi-site-cohort"]'


def test_production_workers_get_store_access(
    production_objects: list[Manifest], production_values: dict[str, Any]
) -> None:
    worker = one(production_objects, "Deployment", "dask-worker")
    spec = pod_spec(worker)
    container = spec["containers"][0]
    storage = production_values["storage"]

    assert container["envFrom"] == [{"secretRef": {"name": storage["credentialsSecret"]}}]
    shared = next(v for v in spec["volumes"] if v["name"] == "shared")
    assert shared["persistentVolumeClaim"] == {"claimName": storage["sharedVolume"]["existingClaim"]}
    assert {"name": "shared", "mountPath": "/data"} in container["volumeMounts"]
    assert spec["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert container["image"] == f"{production_values['image']['repository']}:{production_values['image']['tag']}"
    assert container_args(worker, "worker")[-3:] == ["--lifetime=12h", "--lifetime-stagger=30m", "--lifetime-restart"]


def test_colliding_worker_ports_fail_with_the_fields_named() -> None:
    with pytest.raises(HelmRenderError, match=r"dask\.worker\.port \(8789\), dask\.worker\.nannyPort \(8789\)"):
        render({"dask": {"worker": {"nannyPort": 8789}}})


def test_long_release_names_stay_within_kubernetes_limits() -> None:
    objects = manifests(render(release="a-very-long-release-name-for-imaging-privacy-tests"))

    for obj in objects:
        assert len(obj["metadata"]["name"]) <= 63, obj["metadata"]["name"]
        kubernetes_validate.validate(obj, KUBERNETES_VERSIONS[-1], strict=True)
