"""The example DAG ``dicom_deid_example`` under ``airflow dags test`` with its Dask work sent, through a
Connection of type ``dask``, to a scheduler and two workers running as separate OS processes, then proof from
the scheduler and the workers themselves that they, not an embedded cluster, ran it.

The run selects the cluster the way a user would: the DAG's ``dask_conn_id`` param, given in the run's conf,
which its Dask tasks (``dp_pix``, ``dp_release``) take as their templated ``dask_conn_id``. Left empty, each
task would start an embedded cluster instead, and the checks below would fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import sqlite3
import subprocess
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import psutil
import pytest

from privacy_core.dp.ledger import open_ledger
from privacy_core.samples import make_phi_corpus
from privacy_core.schemas import validate
from tests.conftest import TEST_SECRET
from tests.distributed.conftest import AIRFLOW, REPO, ExternalDaskCluster, airflow_env

pytestmark = pytest.mark.integration

DAG_ID = "dicom_deid_example"
DAG_FILE = REPO / "dags" / "deid_example.py"
RELEASE_SPEC = REPO / "dags" / "specs" / "demo_release.yaml"
DASK_CONN_ID = "dask_external"


def routed_to_external_dask(task: object) -> bool:
    """A task the DAG's ``dask_conn_id`` param reaches: one whose ``dask_conn_id`` is templated from it."""
    return "params.dask_conn_id" in str(getattr(task, "dask_conn_id", "") or "")


#: How many tasks a worker process has executed since it started; a lambda, so it is sent by value and the
#: workers need not import this test module.
EXECUTED_COUNT = lambda dask_worker: dask_worker.state.executed_count  # noqa: E731


def _utc_timestamp(text: str) -> float:
    """A task instance time as Airflow stores it in SQLite (naive UTC) to a POSIX timestamp."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture
def dag_run(dask_cluster: ExternalDaskCluster, migrated_airflow_db: Path, tmp_path: Path) -> dict[str, Any]:
    """One ``airflow dags test`` run of the example DAG routed to ``dask_cluster``, with what the scheduler
    and workers saw before, during and after it."""
    from distributed import Client

    root = tmp_path
    make_phi_corpus(root / "data" / "input", patients=2, bad_files=True, rows=32, columns=32)
    secret = root / "secret.key"
    secret.write_text(TEST_SECRET)
    with open_ledger(f"sqlite:///{root / 'ledger.db'}") as ledger:
        ledger.create_dataset("demo-cohort", "zcdp", Fraction(2), delta=1e-6)
    host, port = dask_cluster.address.removeprefix("tcp://").rsplit(":", 1)
    env = airflow_env(
        root / "airflow",
        migrated_airflow_db,
        REPO / "dags",
        IMAGING_PRIVACY_DEMO_ROOT=str(root / "data"),
        AIRFLOW_CONN_IMAGING_PRIVACY_DEFAULT=json.dumps(
            {"conn_type": "imaging_privacy_key", "extra": {"secret_file": str(secret)}}
        ),
        AIRFLOW_CONN_IMAGING_PRIVACY_LEDGER_DEFAULT=json.dumps(
            {"conn_type": "imaging_privacy_ledger", "extra": {"path": str(root / "ledger.db")}}
        ),
        # Host, port and protocol fields, as an operator fills in the UI; DaskHook builds the address.
        **{
            f"AIRFLOW_CONN_{DASK_CONN_ID.upper()}": json.dumps(
                {"conn_type": "dask", "host": host, "port": int(port), "schema": "tcp"}
            )
        },
    )

    with Client(dask_cluster.address, timeout=60, set_as_default=False) as client:  # type: ignore[no-untyped-call]
        client.get_task_stream(start=0, stop=0)  # installs the scheduler's task stream recorder
        before = client.run(EXECUTED_COUNT)
        started = client.run(os.getpid)
        conf = json.dumps({"dask_conn_id": DASK_CONN_ID})  # the DAG's param: its Dask tasks use this cluster
        command = [AIRFLOW, "dags", "test", DAG_ID, "--conf", conf]
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        after = client.run(EXECUTED_COUNT)
        stream = client.get_task_stream()
        events = client.get_events()
        pids = client.run(os.getpid)
        monitor = client.id
    with contextlib.closing(sqlite3.connect(root / "airflow" / "airflow.db")) as db:
        windows = {
            task: (_utc_timestamp(start), _utc_timestamp(end))
            for task, start, end in db.execute(
                "SELECT task_id, start_date, end_date FROM task_instance WHERE dag_id = ? AND state = 'success'",
                (DAG_ID,),
            )
        }
    return {
        "root": root,
        "result": result,
        "before": before,
        "after": after,
        "stream": stream,
        "events": events,
        "pids": pids,
        "started": started,
        "monitor": monitor,
        "windows": windows,
    }


def test_example_dag_runs_its_dask_work_on_the_external_cluster(
    dag_run: dict[str, Any], dask_cluster: ExternalDaskCluster
) -> None:
    """One test rather than four, so ``pytest -n 2`` cannot split the module over two workers and start a
    second cluster and DAG run; each check says what it proves."""
    check_dag_run_succeeded(dag_run)
    check_every_dask_task_submitted_its_graphs_to_the_external_scheduler(dag_run)
    check_the_external_worker_processes_executed_the_work(dag_run, dask_cluster)
    check_outputs_exist_and_record_the_external_scheduler(dag_run, dask_cluster)


def check_dag_run_succeeded(dag_run: dict[str, Any]) -> None:
    """``airflow dags test`` ran every task of the example DAG to success."""
    result = dag_run["result"]
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    assert "state=success" in result.stdout + result.stderr


def check_every_dask_task_submitted_its_graphs_to_the_external_scheduler(dag_run: dict[str, Any]) -> None:
    """Each task the param routes sent graphs, from a client of its own, while that task instance ran:
    a task that had fallen back to an embedded cluster would leave its window empty here."""
    dag = runpy.run_path(str(DAG_FILE))["dag"]
    routed = sorted(task.task_id for task in dag.tasks if routed_to_external_dask(task))
    assert routed, "the example DAG has no task that can run on Dask: nothing to route"
    submissions = [
        (when, topic)
        for topic, events in dag_run["events"].items()
        if topic not in ("scheduler", "all", dag_run["monitor"])
        for when, message in events
        if isinstance(message, dict) and message.get("action") == "update-graph" and message.get("status") == "OK"
    ]
    windows = dag_run["windows"]
    clients: dict[str, set[str]] = {}
    for task_id in routed:
        assert task_id in windows, f"{task_id} did not succeed"
        start, end = windows[task_id]
        clients[task_id] = {topic for when, topic in submissions if start <= when <= end}
        assert clients[task_id], f"{task_id} ran {start}..{end} but sent no graph to the scheduler: {submissions}"
    assert all(not (a & b) for a in clients.values() for b in clients.values() if a is not b)


def check_the_external_worker_processes_executed_the_work(
    dag_run: dict[str, Any], dask_cluster: ExternalDaskCluster
) -> None:
    """The workers counted the tasks they ran; the scheduler's task stream names only them; and they are the
    same processes as before the run, children of the ``dask worker`` processes the fixture started."""
    before, after = dag_run["before"], dag_run["after"]
    assert set(after) == set(before) == set(dag_run["pids"])
    executed = {worker: after[worker] - before[worker] for worker in after}
    assert sum(executed.values()) > 0, f"{executed}\n{dask_cluster.log_tails()}"
    stream = dag_run["stream"]
    assert stream and {task["worker"] for task in stream} <= set(after)
    assert sum(executed.values()) == len(stream)
    assert dag_run["pids"] == dag_run["started"]  # no worker restarted or was replaced during the run
    for worker, pid in dag_run["pids"].items():
        parents = {parent.pid for parent in psutil.Process(pid).parents()}
        assert parents & dask_cluster.worker_pids, f"{worker} (pid {pid}) is not a worker the fixture started"


def check_outputs_exist_and_record_the_external_scheduler(
    dag_run: dict[str, Any], dask_cluster: ExternalDaskCluster
) -> None:
    """The DP-Pix store and the DP release exist and are valid, the DP-Pix lineage record names the external
    scheduler as where it computed, and the ledger charged the spec's loss once with an intact chain."""
    from privacy_core.dp.release import release_cost
    from privacy_core.dp.spec import load_spec
    from privacy_core.imaging.zarr_store import list_series

    releases = dag_run["root"] / "data" / "releases"
    (store,) = releases.glob("zarr-*")
    (dp_pix,) = releases.glob("dp-pix-*")
    arrays = list_series(str(store))
    assert arrays and len(list_series(str(dp_pix))) == len(arrays)
    (record_path,) = (dp_pix / "lineage").glob("*.json")
    record = json.loads(record_path.read_text())
    validate("TaskLineageRecord", record)
    assert record["storage"]["compute"] == dask_cluster.address
    (bundle_dir,) = releases.glob("dp-release-*")
    bundle = json.loads((bundle_dir / "release.json").read_text())
    validate("DPRelease", bundle)
    with open_ledger(f"sqlite:///{dag_run['root'] / 'ledger.db'}") as ledger:
        assert ledger.status("demo-cohort").spent == release_cost(load_spec(RELEASE_SPEC))
        assert ledger.verify("demo-cohort").ok
        assert ledger.entries("demo-cohort")[-1].entry_hash == bundle["ledger"]["commit_hash"]
