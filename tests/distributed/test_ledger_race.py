"""The privacy-budget ledger on PostgreSQL with several Airflow task runs spending at once: N ``airflow dags
test`` processes, each a real ``DPReleaseOperator`` task reaching the ledger through its ``imaging_privacy_ledger``
Connection, held at a barrier until all N are inside their task, then let go together against a cap that pays
for fewer than N. The ledger must let exactly the affordable ones through and keep an intact hash chain."""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from string import Template
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml

from privacy_core.deid.batch import deidentify_tree
from privacy_core.deid.profile import Profile
from privacy_core.dp.ledger import open_ledger, task_instance_key
from privacy_core.dp.release import release_cost
from privacy_core.dp.spec import load_spec
from privacy_core.keys import PseudonymKey
from privacy_core.samples import make_phi_corpus
from privacy_core.schemas import validate
from tests.conftest import TEST_SECRET
from tests.distributed.conftest import AIRFLOW, airflow_env, log_tail, stop_process_group

pytestmark = pytest.mark.integration

DAG_ID = "ledger_race"
TASK_ID = "release"
DATASET = "race-cohort"
CONN_ID = "imaging_privacy_ledger_default"
#: Airflow task runs started at once.
RACERS = 4
#: Each release's loss (rho), and a cap that pays for some of them and leaves less than one more.
RELEASE_RHO = 0.25
CAP = Fraction(2, 3)
BARRIER_PORT_VARIABLE = "IMAGING_PRIVACY_TEST_BARRIER_PORT"
#: Seconds for every racer to reach its task, and then to finish: generous, the machine is shared.
BARRIER_TIMEOUT = 300.0
RUN_TIMEOUT = 300.0

DAG_FILE = Template('''"""Written by tests/distributed/test_ledger_race.py: one DP release per run, behind a barrier."""

from __future__ import annotations

import os
import socket
from typing import Any

from airflow.sdk import DAG

from operators.dp import DPReleaseOperator


def wait_for_every_racer(context: Any) -> None:
    """Tell the test this task is running, then block until it says every racer is: all spend together."""
    port = int(os.environ[$port_variable])
    with socket.create_connection(("127.0.0.1", port), timeout=$timeout) as sock:
        sock.sendall((context["run_id"] + "\\n").encode())
        if sock.makefile().readline().strip() != "go":
            raise RuntimeError("the test closed the barrier without letting this task go")


with DAG(dag_id=$dag_id, schedule=None, catchup=False):
    DPReleaseOperator(
        task_id=$task_id,
        spec_path=$spec,
        output_path=$output + "/{{ ts_nodash }}",
        ledger_conn_id=$conn_id,
        pre_execute=wait_for_every_racer,
    )
''')


@dataclass
class Racer:
    """One ``airflow dags test`` process, in an Airflow home of its own."""

    home: Path
    log: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        """Terminate, then kill, the process and anything it started, if it is still running."""
        stop_process_group(self.process)

    def task_instance(self) -> tuple[str, int, str]:
        """The run id, map index and final state of the racer's release task, from its metadata database."""
        with contextlib.closing(sqlite3.connect(self.home / "airflow.db")) as db:
            rows = db.execute(
                "SELECT run_id, map_index, state FROM task_instance WHERE dag_id = ? AND task_id = ?", (DAG_ID, TASK_ID)
            ).fetchall()
        assert len(rows) == 1, (rows, log_tail(self.log))
        run_id, map_index, state = rows[0]
        return str(run_id), int(map_index), str(state)


def ledger_connection(postgres_url: str) -> str:
    """The Connection, in Airflow's JSON form, for the ledger at ``postgres_url`` (its ``schema`` parameter
    becomes the extra's ``schema``): the form an operator fills in for PostgreSQL."""
    url = urlsplit(postgres_url)
    return json.dumps(
        {
            "conn_type": "imaging_privacy_ledger",
            "host": url.hostname,
            "port": url.port or 5432,
            "login": unquote(url.username or ""),
            "password": unquote(url.password) if url.password else None,
            "schema": url.path.lstrip("/"),
            "extra": {"schema": parse_qs(url.query)["schema"][0]},
        }
    )


def release_together(server: socket.socket, racers: list[Racer]) -> set[str]:
    """Wait until every racer's task has connected to the barrier, then let them all go at once.

    :returns: the run ids that reached the barrier.
    """
    arrived: dict[str, socket.socket] = {}
    deadline = time.monotonic() + BARRIER_TIMEOUT
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(server, selectors.EVENT_READ)
            while len(arrived) < len(racers):
                ended = [r for r in racers if r.process.poll() is not None]
                if ended:
                    pytest.fail(f"a racer ended before the barrier:\n{log_tail(ended[0].log)}")
                if time.monotonic() > deadline:
                    pytest.fail(f"{len(arrived)} of {len(racers)} racers reached the barrier in {BARRIER_TIMEOUT} s")
                # The wait is on the socket; the timeout only bounds how late a dead racer is noticed.
                if selector.select(timeout=1.0):
                    connection, _ = server.accept()
                    connection.settimeout(60)
                    arrived[connection.makefile().readline().strip()] = connection
        for connection in arrived.values():
            connection.sendall(b"go\n")
    finally:
        for connection in arrived.values():
            connection.close()
    return set(arrived)


def test_concurrent_airflow_tasks_spend_exactly_what_the_cap_allows(
    postgres_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # Asked for here, after the PostgreSQL gate: a session fixture in the signature would migrate first, and
    # a run without PostgreSQL would pay for it only to skip.
    migrated_airflow_db: Path = request.getfixturevalue("migrated_airflow_db")
    corpus = make_phi_corpus(tmp_path / "phi", patients=2, rows=16, columns=16, burned_in=False)
    deidentify_tree(corpus.root, tmp_path / "release", Profile(), PseudonymKey.from_text(TEST_SECRET))
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(
        yaml.safe_dump(
            {
                "dataset": DATASET,
                "accounting": "zcdp",
                "budget": {"rho": RELEASE_RHO, "delta": 1e-6},
                "privacy_unit": {"max_records_per_patient": 4},
                "sources": {"dicom": str(tmp_path / "release")},
                "queries": [
                    {"name": "series", "kind": "count", "partition_by": "Modality", "partitions": ["CT", "MR", "OT"]}
                ],
            }
        )
    )
    cost = release_cost(load_spec(spec_path))
    affordable = int(CAP // cost)
    assert 0 < affordable < RACERS, "the cap must let some racers through and refuse others"
    with open_ledger(postgres_url) as ledger:
        ledger.create_dataset(DATASET, "zcdp", CAP, delta=1e-6)
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "ledger_race.py").write_text(
        DAG_FILE.substitute(
            port_variable=repr(BARRIER_PORT_VARIABLE),
            timeout=repr(BARRIER_TIMEOUT + RUN_TIMEOUT),
            dag_id=repr(DAG_ID),
            task_id=repr(TASK_ID),
            spec=repr(str(spec_path)),
            output=repr(str(tmp_path / "bundles")),
            conn_id=repr(CONN_ID),
        )
    )

    racers: list[Racer] = []
    with socket.create_server(("127.0.0.1", 0)) as server:
        try:
            for i in range(RACERS):
                home = tmp_path / f"airflow-{i}"
                env = airflow_env(
                    home,
                    migrated_airflow_db,
                    dags,
                    **{
                        f"AIRFLOW_CONN_{CONN_ID.upper()}": ledger_connection(postgres_url),
                        BARRIER_PORT_VARIABLE: str(server.getsockname()[1]),
                    },
                )
                # A logical date each: each run's bundle folder ({{ ts_nodash }}) is its own. The run ids, and so
                # the ledger's idempotency keys, come from each process's start time (to the microsecond).
                logical_date = (datetime(2025, 1, 1, tzinfo=UTC) + timedelta(days=i)).isoformat()
                log = tmp_path / f"racer-{i}.log"
                with log.open("wb") as out:
                    process = subprocess.Popen(
                        [AIRFLOW, "dags", "test", DAG_ID, logical_date],
                        env=env,
                        cwd=tmp_path,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                racers.append(Racer(home, log, process))
            at_barrier = release_together(server, racers)
            for racer in racers:
                racer.process.wait(timeout=RUN_TIMEOUT)
        finally:
            for racer in racers:
                racer.stop()

    outcomes = {racer.task_instance(): racer for racer in racers}
    assert at_barrier == {run_id for run_id, _, _ in outcomes}, "every racer was inside its task at once"
    succeeded = {(run_id, index) for run_id, index, state in outcomes if state == "success"}
    failed = [racer for (_, _, state), racer in outcomes.items() if state == "failed"]
    assert len(succeeded) == affordable and len(failed) == RACERS - affordable, sorted(outcomes)
    for racer in failed:
        output = racer.log.read_text(errors="replace")
        assert f"dataset {DATASET!r}" in output and "exceeds the remaining budget" in output, log_tail(racer.log)
        assert "nothing was charged" in output

    with open_ledger(postgres_url) as ledger:
        status = ledger.status(DATASET)
        assert (status.spent, status.reserved) == (affordable * cost, Fraction(0))
        entries = ledger.entries(DATASET)
        commits = [e for e in entries if e.kind == "commit"]
        assert {e.key for e in commits} == {task_instance_key(DAG_ID, run, TASK_ID, i) for run, i in succeeded}
        assert len([e for e in entries if e.kind == "reserve"]) == affordable  # a refusal writes nothing
        verification = ledger.verify(DATASET)
        assert verification.ok, verification.problems
        assert verification.spent == affordable * cost

    bundles = [json.loads(path.read_text()) for path in (tmp_path / "bundles").glob("*/release.json")]
    for bundle in bundles:
        validate("DPRelease", bundle)
    assert sorted(b["ledger"]["commit_hash"] for b in bundles) == sorted(e.entry_hash for e in commits)
