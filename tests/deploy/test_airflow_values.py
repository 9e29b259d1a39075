"""charts/airflow-values.yaml: the official Airflow chart's values that run this image and reach the Dask chart.

The Connection environment variables are checked by loading them through the provider's own hooks, the
way a task will, and compared with what the Dask chart renders for the same release and namespace.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from operators.hooks.dask import DaskHook
from operators.hooks.ledger import PrivacyLedgerHook
from operators.hooks.pseudonym_key import PseudonymKeyHook
from tests.conftest import TEST_SECRET
from tests.deploy.conftest import (
    AIRFLOW_RELEASE,
    DEPLOYMENT_DOC,
    NAMESPACE,
    ROOT,
    Manifest,
    by_kind,
    one,
)
from tests.deploy.test_chart import CREDENTIAL

HOOKS = (DaskHook, PrivacyLedgerHook, PseudonymKeyHook)
#: Where each executor of the official chart runs task code, and the module that executor needs.
EXECUTORS = {
    "LocalExecutor": ("scheduler", "airflow.executors.local_executor"),
    "CeleryExecutor": ("worker", "airflow.providers.celery.executors.celery_executor"),
    "KubernetesExecutor": ("worker", "airflow.providers.cncf.kubernetes.executors.kubernetes_executor"),
}


@pytest.fixture(autouse=True)
def airflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow-home"))


def env_values(values: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in values["env"]}


def secret_envs(values: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {s["envName"]: (s["secretName"], s["secretKey"]) for s in values["secret"]}


def test_runs_the_same_image_as_the_dask_chart(airflow_values: dict[str, Any], chart_values: dict[str, Any]) -> None:
    image = chart_values["image"]

    assert airflow_values["images"]["airflow"]["repository"] == image["repository"]
    assert airflow_values["images"]["airflow"]["tag"] == image["tag"]
    assert (airflow_values["defaultAirflowRepository"], airflow_values["defaultAirflowTag"]) == (
        image["repository"],
        image["tag"],
    )


def test_airflow_version_is_the_pinned_one(airflow_values: dict[str, Any]) -> None:
    pinned = re.search(r"(?m)^apache-airflow==(\S+)$", (ROOT / "requirements.txt").read_text())

    assert pinned
    assert airflow_values["airflowVersion"] == pinned.group(1)


def test_runs_as_the_image_user_and_never_root(airflow_values: dict[str, Any], chart_values: dict[str, Any]) -> None:
    user = re.search(r"(?m)^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text())
    assert user
    uid, gid = int(user.group(1)), int(user.group(2))
    pod = airflow_values["securityContexts"]["pod"]

    assert (airflow_values["uid"], airflow_values["gid"]) == (uid, gid)
    assert (pod["runAsUser"], pod["runAsGroup"], pod["fsGroup"]) == (uid, gid, gid)
    assert pod["runAsNonRoot"] is True
    assert (chart_values["securityContext"]["runAsUser"], chart_values["securityContext"]["runAsGroup"]) == (uid, gid)
    containers = airflow_values["securityContexts"]["containers"]
    assert containers["allowPrivilegeEscalation"] is False
    assert containers["capabilities"] == {"drop": ["ALL"]}


def test_executor_is_one_the_image_can_run(airflow_values: dict[str, Any]) -> None:
    _, module = EXECUTORS[airflow_values["executor"]]

    importlib.import_module(module)


def test_auth_manager_is_in_the_image(airflow_values: dict[str, Any]) -> None:
    module, _, name = airflow_values["config"]["core"]["auth_manager"].rpartition(".")

    assert isinstance(getattr(importlib.import_module(module), name), type)
    # `airflow users create` needs the FAB provider, which the image does not carry.
    assert airflow_values["createUserJob"]["enabled"] is False
    with pytest.raises(ImportError):
        importlib.import_module("airflow.providers.fab")


def test_metadata_database_comes_from_a_secret(airflow_values: dict[str, Any]) -> None:
    assert airflow_values["postgresql"]["enabled"] is False
    assert airflow_values["data"]["metadataSecretName"]
    assert "metadataConnection" not in airflow_values["data"]
    for literal, reference in [
        ("fernetKey", "fernetKeySecretName"),
        ("apiSecretKey", "apiSecretKeySecretName"),
        ("jwtSecret", "jwtSecretName"),
    ]:
        assert literal not in airflow_values
        assert airflow_values[reference]
    importlib.import_module("psycopg")  # the postgresql+psycopg:// driver of the documented metadata URL


@pytest.mark.parametrize("hook", HOOKS, ids=lambda h: h.conn_type)
def test_every_hook_gets_its_default_connection(hook: type[Any], airflow_values: dict[str, Any]) -> None:
    name = f"AIRFLOW_CONN_{hook.default_conn_name.upper()}"

    assert name in env_values(airflow_values) or name in secret_envs(airflow_values)


def test_no_literal_secret_anywhere(airflow_values: dict[str, Any]) -> None:
    def strings(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [s for v in node.values() for s in strings(v)]
        if isinstance(node, list):
            return [s for v in node for s in strings(v)]
        return [node] if isinstance(node, str) else []

    for text in strings(airflow_values):
        if text == airflow_values["config"]["core"]["simple_auth_manager_users"]:
            continue  # user:role pairs; the simple auth manager generates the passwords
        assert not CREDENTIAL.search(text), text
    for name, value in env_values(airflow_values).items():
        assert "password" not in json.loads(value), name


def test_dask_connection_is_the_chart_scheduler_service(
    airflow_values: dict[str, Any], default_objects: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DASK_DEFAULT", env_values(airflow_values)["AIRFLOW_CONN_DASK_DEFAULT"])
    settings = by_kind(default_objects, "ConfigMap")[0]["data"]

    config = DaskHook().get_conn()

    assert DaskHook().get_connection("dask_default").conn_type == DaskHook.conn_type
    assert config.address == settings["AIRFLOW_VAR_IMAGING_PRIVACY_DASK_ADDRESS"]


def test_ledger_connection_is_the_chart_secret_and_resolves_to_postgresql(
    airflow_values: dict[str, Any], chart_values: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = chart_values["secrets"]["ledgerConnection"]
    name = f"AIRFLOW_CONN_{PrivacyLedgerHook.default_conn_name.upper()}"
    assert secret_envs(airflow_values)[name] == (reference["existingSecret"], reference["key"])
    # The Secret's content as docs/deployment.md tells you to create it.
    created = re.search(
        rf"create secret generic {reference['existingSecret']} \\\n\s+--from-literal={reference['key']}='([^']+)'",
        DEPLOYMENT_DOC.read_text(),
    )
    assert created, "docs/deployment.md must show how to create the ledger Secret"
    monkeypatch.setenv(name, created.group(1))

    hook = PrivacyLedgerHook()

    assert hook.get_connection(hook.ledger_conn_id).conn_type == PrivacyLedgerHook.conn_type
    assert re.fullmatch(r"postgresql://[^:@/]+:[^@/]+@[^/]+:5432/\w+\?schema=privacy_ledger", hook.ledger_url())


def test_pseudonym_key_is_the_chart_secret_mounted_as_a_file(
    airflow_values: dict[str, Any],
    chart_values: dict[str, Any],
    default_objects: list[Manifest],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = f"AIRFLOW_CONN_{PseudonymKeyHook.default_conn_name.upper()}"
    connection = json.loads(env_values(airflow_values)[name])
    path = Path(connection["extra"]["secret_file"])
    reference = chart_values["secrets"]["pseudonymKey"]
    mount = next(m for m in airflow_values["volumeMounts"] if m["mountPath"] == str(path.parent))
    volume = next(v for v in airflow_values["volumes"] if v["name"] == mount["name"])

    assert mount["readOnly"] is True
    assert volume["secret"]["secretName"] == reference["existingSecret"]
    assert volume["secret"]["items"] == [{"key": reference["key"], "path": path.name}]
    # The same file as the Dask chart's preflight hook reads.
    preflight = one(default_objects, "Job", "preflight")
    preflight_env = {e["name"]: e.get("value") for e in preflight["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert json.loads(str(preflight_env[name])) == connection
    # And the hook reads that shape of Connection: here with the file somewhere writable.
    key_file = tmp_path / path.name
    key_file.write_text(TEST_SECRET + "\n")
    monkeypatch.setenv(name, json.dumps({**connection, "extra": {"secret_file": str(key_file)}}))
    assert PseudonymKeyHook().get_conn().fingerprint


def test_settings_configmap_is_loaded(airflow_values: dict[str, Any], default_objects: list[Manifest]) -> None:
    env_from = yaml.safe_load(airflow_values["extraEnvFrom"])
    configmap = by_kind(default_objects, "ConfigMap")[0]

    assert env_from == [{"configMapRef": {"name": configmap["metadata"]["name"]}}]
    assert all(key.startswith("AIRFLOW_VAR_IMAGING_PRIVACY_") for key in configmap["data"])


def test_network_policy_admits_the_pods_that_run_tasks(
    airflow_values: dict[str, Any], default_objects: list[Manifest]
) -> None:
    """The official chart labels its pods tier=airflow, component=<name>, release=<release>, plus <name>.labels."""
    component, _ = EXECUTORS[airflow_values["executor"]]
    peers = one(default_objects, "NetworkPolicy", "dask-scheduler")["spec"]["ingress"][0]["from"]
    selectors = [p["podSelector"]["matchLabels"] for p in peers if "namespaceSelector" not in p]

    for runs_tasks in (component, "triggerer"):
        extra = airflow_values.get(runs_tasks, {}).get("labels", {})
        labels = {"tier": "airflow", "component": runs_tasks, "release": AIRFLOW_RELEASE, **extra}
        assert any(selector.items() <= labels.items() for selector in selectors), runs_tasks
    # And not the API server or the DAG processor, which run no task code.
    for other in ("api-server", "dag-processor", "statsd"):
        labels = {"tier": "airflow", "component": other, "release": AIRFLOW_RELEASE}
        assert not any(selector.items() <= labels.items() for selector in selectors), other
    assert NAMESPACE == "airflow"


def test_official_image_helpers_missing_here_are_switched_off(airflow_values: dict[str, Any]) -> None:
    """This image has no /clean-logs script (the official image's log groomer)."""
    assert "clean-logs" not in (ROOT / "Dockerfile").read_text()
    for component in ("scheduler", "triggerer", "dagProcessor"):
        assert airflow_values[component]["logGroomerSidecar"]["enabled"] is False, component
