"""The rendered commands, run: the Dask scheduler and worker containers' arguments, and the preflight hook.

No cluster is involved. Each container's arguments are taken from the chart as Helm renders them and run
here through the image's entrypoint (extracted from the Dockerfile), bound to loopback, with the probes the
chart declares polled as the kubelet would poll them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from privacy_core.keys import PseudonymKey
from tests.conftest import TEST_SECRET
from tests.deploy.conftest import Manifest, container_args, manifests, one, pod_spec, render
from tests.deploy.test_dockerfile import INSTRUCTIONS
from tests.dp.conftest import postgres_base_url, postgres_problem, postgres_required, with_query

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture
def image_root(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The image's entrypoint and Dask configuration file, written from the Dockerfile, and an environment."""
    copy = next(i for i in INSTRUCTIONS if i.keyword == "COPY" and i.heredocs)
    entrypoint = tmp_path / "imaging-privacy-entrypoint"
    entrypoint.write_text(copy.heredocs[0])
    entrypoint.chmod(0o755)
    run = next(i.arguments for i in INSTRUCTIONS if i.keyword == "RUN" and "WORKER_MALLOC_ENV" in i.arguments)
    code = re.search(r"-c '([^']+)'", run)
    assert code
    dask_config = tmp_path / "etc-dask"
    dask_config.mkdir()
    written = subprocess.run([sys.executable, "-c", code.group(1)], capture_output=True, text=True, check=True)
    (dask_config / "imaging-privacy.yaml").write_text(written.stdout)
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        # The image's <venv>/etc/dask; DASK_CONFIG adds a folder to dask's search path the same way.
        "DASK_CONFIG": str(dask_config),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    return entrypoint, env


def container_env(workload: Manifest, pod_name: str, tmp: Path) -> dict[str, str]:
    """The container's environment as the kubelet would set it (fieldRef: the pod's name)."""
    env: dict[str, str] = {}
    for entry in pod_spec(workload)["containers"][0]["env"]:
        if "value" in entry:
            env[entry["name"]] = (
                entry["value"].replace("/tmp", str(tmp)) if entry["value"] == "/tmp" else entry["value"]
            )
        elif entry["valueFrom"].get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[entry["name"]] = pod_name
    return env


def kubelet_expand(argument: str, env: dict[str, str]) -> str:
    """Kubernetes expands $(NAME) in args from the container's environment."""
    return re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], argument)


def loopback(arguments: list[str], scheduler_address: str, scheduler_port: int, tmp: Path) -> list[str]:
    """The rendered arguments bound to 127.0.0.1, the scheduler reached there, files under ``tmp``."""
    out = []
    for argument in arguments:
        argument = argument.replace(scheduler_address, f"tcp://127.0.0.1:{scheduler_port}")
        argument = re.sub(r"^--dashboard-address=:", "--dashboard-address=127.0.0.1:", argument)
        argument = argument.replace("=/tmp/", f"={tmp}/")
        out.append(argument)
    return [*out, "--host=127.0.0.1"]


def probe_ok(probe: dict[str, Any], ports: dict[str, int]) -> bool:
    try:
        if "httpGet" in probe:
            port = ports[probe["httpGet"]["port"]]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{probe['httpGet']['path']}", timeout=2) as answer:
                return bool(answer.status == 200)
        with socket.create_connection(("127.0.0.1", ports[probe["tcpSocket"]["port"]]), timeout=2):
            return True
    except OSError:
        return False


def wait_for_probes(workload: Manifest, process: subprocess.Popen[str], log: Path, deadline_s: float = 90) -> None:
    container = pod_spec(workload)["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    probes = [container[name] for name in ("startupProbe", "readinessProbe", "livenessProbe")]
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{container['name']} exited: {log.read_text()[-2000:]}"
        if all(probe_ok(probe, ports) for probe in probes):
            return
        time.sleep(0.5)
    raise AssertionError(f"{container['name']}'s probes did not pass within {deadline_s} s")


@pytest.fixture
def rendered_with_free_ports() -> tuple[list[Manifest], dict[str, int]]:
    scheduler, dashboard, worker, nanny, worker_dashboard = free_ports(5)
    ports = {"scheduler": scheduler, "dashboard": dashboard}
    values = {
        "dask": {
            "scheduler": {"port": scheduler, "dashboardPort": dashboard},
            "worker": {"port": worker, "nannyPort": nanny, "dashboardPort": worker_dashboard, "threads": 2},
        }
    }
    return manifests(render(values)), ports


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in reversed(started):
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def test_rendered_scheduler_and_worker_run_pass_their_probes_and_compute(
    image_root: tuple[Path, dict[str, str]],
    rendered_with_free_ports: tuple[list[Manifest], dict[str, int]],
    processes: list[subprocess.Popen[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entrypoint, env = image_root
    objects, ports = rendered_with_free_ports
    scheduler = one(objects, "Deployment", "dask-scheduler")
    worker = one(objects, "Deployment", "dask-worker")
    address = container_args(worker, "worker")[2]

    for workload, name, pod in ((scheduler, "scheduler", "scheduler-0"), (worker, "worker", "worker-0")):
        pod_env = container_env(workload, pod, tmp_path)
        arguments = [kubelet_expand(a, pod_env) for a in container_args(workload, name)]
        command = [str(entrypoint), *loopback(arguments, address, ports["scheduler"], tmp_path)]
        with (tmp_path / f"{name}.log").open("w") as log:  # the child keeps its own copy of the handle
            process = subprocess.Popen(command, env={**env, **pod_env}, stdout=log, stderr=subprocess.STDOUT, text=True)
        processes.append(process)
        wait_for_probes(workload, process, tmp_path / f"{name}.log")

    # Connect as an Airflow task does: the dask_default Connection, through the provider's hook.
    from operators.hooks.dask import DaskHook
    from privacy_core.imaging.compute import WORKER_MALLOC_ENV, dask_client

    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow-home"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_DASK_DEFAULT",
        json.dumps({"conn_type": "dask", "host": "127.0.0.1", "port": ports["scheduler"], "schema": "tcp"}),
    )
    import dask.array as da

    with dask_client(DaskHook().get_conn()) as connected:
        client: Any = connected  # distributed's Client is only partly annotated
        workers = client.scheduler_info()["workers"]
        total = client.compute(da.ones((64, 64), chunks=16, dtype="int64").sum()).result(timeout=60)
        malloc = client.run(lambda: {k: os.environ.get(k) for k in WORKER_MALLOC_ENV})
        imported = client.run(lambda: __import__("privacy_core.pixels", fromlist=["reference"]).__name__)

    assert [w["name"] for w in workers.values()] == ["worker-0"]  # --name=$(POD_NAME)
    assert [w["nthreads"] for w in workers.values()] == [2]
    assert int(total) == 64 * 64
    assert list(malloc.values()) == [WORKER_MALLOC_ENV]
    assert list(imported.values()) == ["privacy_core.pixels"]

    # Kubernetes stops a pod with SIGTERM, then SIGKILL after the grace period: both exit well before it.
    grace = pod_spec(worker)["terminationGracePeriodSeconds"]
    for process in reversed(processes):
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=grace)


@pytest.fixture
def preflight(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """The preflight container's arguments and environment from the default render, with a key file."""
    job = one(manifests(render()), "Job", "preflight")
    container = pod_spec(job)["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    key_file = tmp_path / "pseudonym.key"
    key_file.write_text(TEST_SECRET + "\n")
    connection = json.loads(env["AIRFLOW_CONN_IMAGING_PRIVACY_DEFAULT"])
    connection["extra"]["secret_file"] = str(key_file)
    env["AIRFLOW_CONN_IMAGING_PRIVACY_DEFAULT"] = json.dumps(connection)
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow")
    return container["args"], env


def run_preflight(
    image_root: tuple[Path, dict[str, str]], preflight: tuple[list[str], dict[str, str]], ledger: str
) -> subprocess.CompletedProcess[str]:
    entrypoint, env = image_root
    arguments, container_env = preflight
    return subprocess.run(
        [str(entrypoint), *arguments],
        env={**env, **container_env, "AIRFLOW_CONN_IMAGING_PRIVACY_LEDGER_DEFAULT": ledger},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_preflight_refuses_a_ledger_that_is_not_postgresql(
    image_root: tuple[Path, dict[str, str]], preflight: tuple[list[str], dict[str, str]], tmp_path: Path
) -> None:
    sqlite = json.dumps({"conn_type": "imaging_privacy_ledger", "extra": {"path": str(tmp_path / "ledger.db")}})

    done = run_preflight(image_root, preflight, sqlite)

    assert done.returncode == 1
    assert "only on PostgreSQL" in done.stderr
    assert not (tmp_path / "ledger.db").exists()


@pytest.fixture
def postgres_connection() -> Iterator[tuple[str, str]]:
    """An imaging_privacy_ledger Connection URI on a fresh PostgreSQL schema, and the schema's name."""
    problem = postgres_problem()
    if problem is not None:
        message = f"PostgreSQL not reachable: {problem}"
        if postgres_required():
            pytest.fail(f"{message} (CI or IMAGING_PRIVACY_REQUIRE_POSTGRES=1 is set)")
        pytest.skip(message)
    schema = f"ledger_preflight_{uuid.uuid4().hex[:12]}"
    url = with_query(postgres_base_url(), f"schema={schema}")
    yield re.sub(r"^postgresql://", "imaging-privacy-ledger://", url), schema
    with psycopg.connect(postgres_base_url(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'.encode())


def test_preflight_creates_the_ledger_schema_and_loads_the_key_on_install_and_upgrade(
    image_root: tuple[Path, dict[str, str]],
    preflight: tuple[list[str], dict[str, str]],
    postgres_connection: tuple[str, str],
) -> None:
    connection, schema = postgres_connection
    fingerprint = PseudonymKey.from_text(TEST_SECRET).fingerprint

    for attempt in ("install", "upgrade"):  # the second run finds everything in place
        done = run_preflight(image_root, preflight, connection)
        assert done.returncode == 0, f"{attempt}: {done.stderr[-2000:]}"
        assert f"fingerprint {fingerprint}" in done.stdout
        assert "ledger ready at postgresql://" in done.stdout
        assert TEST_SECRET not in done.stdout + done.stderr

    with psycopg.connect(postgres_base_url()) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1", (schema,)
        ).fetchall()
        triggers = conn.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND NOT tgisinternal ORDER BY 1",
            (f'"{schema}".ledger_entries',),
        ).fetchall()
    assert [t[0] for t in tables] == ["ledger_datasets", "ledger_entries"]
    assert [t[0] for t in triggers] == [
        "ledger_entries_no_delete",
        "ledger_entries_no_truncate",
        "ledger_entries_no_update",
    ]


def test_preflight_fails_without_the_key_file(
    image_root: tuple[Path, dict[str, str]],
    preflight: tuple[list[str], dict[str, str]],
    postgres_connection: tuple[str, str],
    tmp_path: Path,
) -> None:
    (tmp_path / "pseudonym.key").unlink()

    done = run_preflight(image_root, preflight, postgres_connection[0])

    assert done.returncode != 0
    assert "pseudonym.key" in done.stderr
