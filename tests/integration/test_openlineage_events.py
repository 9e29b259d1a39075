"""The example DAG under ``airflow dags test`` with OpenLineage's file transport: every operator's COMPLETE
event carries its inputs, outputs and our custom run facets, each facet validates against its schema in
``schemas/``, and the events hold neither the secret nor any PHI marker of the input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from operators.lineage import DEIDENTIFICATION, FACETS, IMAGE_STORE, PRIVACY_SPEND, schema_url
from privacy_core.dp.ledger import open_ledger
from privacy_core.samples import SampleCorpus, make_phi_corpus
from privacy_core.schemas import validate
from tests.conftest import TEST_SECRET

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAG_ID = "dicom_deid_example"
NAMESPACE = "imaging-privacy-test"
#: Each task of the example DAG and the custom facets its COMPLETE event must carry.
EXPECTED_FACETS = {
    "budget_check": set(),
    "deidentify": {DEIDENTIFICATION},
    "verify_no_leak": set(),
    "to_zarr": {IMAGE_STORE},
    "dp_pix": {IMAGE_STORE, PRIVACY_SPEND},
    "dp_release": {PRIVACY_SPEND},
}
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dag_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("ol")
    corpus = make_phi_corpus(root / "data" / "input", patients=2, bad_files=True, rows=32, columns=32)
    secret = root / "secret.key"
    secret.write_text(TEST_SECRET)
    events = root / "openlineage" / "events.jsonl"
    events.parent.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENLINEAGE", "AIRFLOW__OPENLINEAGE__"))}
    env |= {
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{root / 'airflow' / 'airflow.db'}",
        "AIRFLOW__OPENLINEAGE__DISABLED": "False",
        "AIRFLOW__OPENLINEAGE__NAMESPACE": NAMESPACE,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(events), "append": True}),
        "IMAGING_PRIVACY_DEMO_ROOT": str(root / "data"),
        "AIRFLOW_CONN_IMAGING_PRIVACY_DEFAULT": json.dumps(
            {"conn_type": "imaging_privacy_key", "extra": {"secret_file": str(secret)}}
        ),
        "AIRFLOW_CONN_IMAGING_PRIVACY_LEDGER_DEFAULT": json.dumps(
            {"conn_type": "imaging_privacy_ledger", "extra": {"path": str(root / "ledger.db")}}
        ),
    }
    (root / "airflow").mkdir()
    with open_ledger(f"sqlite:///{root / 'ledger.db'}") as ledger:
        ledger.create_dataset("demo-cohort", "zcdp", Fraction(2), delta=1e-6)
    migrate = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, check=False)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    test = subprocess.run([AIRFLOW, "dags", "test", DAG_ID], env=env, capture_output=True, text=True, check=False)
    assert test.returncode == 0, (test.stdout + test.stderr)[-5000:]
    return {"root": root, "corpus": corpus, "result": test, "events": events}


@pytest.fixture(scope="module")
def events(dag_run: dict[str, Any]) -> list[dict[str, Any]]:
    path: Path = dag_run["events"]
    assert path.is_file(), "no OpenLineage event was written: is the provider disabled?"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _task_events(events: list[dict[str, Any]], event_type: str) -> dict[str, dict[str, Any]]:
    """The task-level events of one type, by task id (job names are ``<dag_id>.<task_id>``)."""
    found = {}
    for event in events:
        name = event["job"]["name"]
        if event["eventType"] == event_type and name.startswith(f"{DAG_ID}."):
            found[name.removeprefix(f"{DAG_ID}.")] = event
    return found


def test_every_task_emitted_a_complete_event(events: list[dict[str, Any]]) -> None:
    complete = _task_events(events, "COMPLETE")
    assert set(complete) == set(EXPECTED_FACETS)
    assert {e["job"]["namespace"] for e in complete.values()} == {NAMESPACE}
    assert _task_events(events, "FAIL") == {}


@pytest.mark.parametrize("task_id", sorted(EXPECTED_FACETS))
def test_complete_event_carries_our_facets_valid_against_their_schemas(
    events: list[dict[str, Any]], task_id: str
) -> None:
    facets = _task_events(events, "COMPLETE")[task_id]["run"]["facets"]
    ours = {key for key in facets if key.startswith("imagingPrivacy_")}
    assert ours == EXPECTED_FACETS[task_id]
    for key in ours:
        name, version = FACETS[key]
        assert facets[key]["_schemaURL"] == schema_url(name, version)
        validate(name, facets[key])


def test_inputs_and_outputs_chain_the_pipeline(dag_run: dict[str, Any], events: list[dict[str, Any]]) -> None:
    complete = _task_events(events, "COMPLETE")

    def names(task_id: str, side: str) -> set[tuple[str, str]]:
        return {(d["namespace"], d["name"]) for d in complete[task_id][side]}

    releases = (dag_run["root"] / "data" / "releases").resolve()
    (release,) = releases.glob("release-*")
    (store,) = releases.glob("zarr-*")
    (dp_pix,) = releases.glob("dp-pix-*")
    (bundle,) = releases.glob("dp-release-*")
    assert names("deidentify", "inputs") == {("file", str((dag_run["root"] / "data" / "input").resolve()))}
    assert names("deidentify", "outputs") == {("file", str(release))}
    assert ("file", str(release)) in names("verify_no_leak", "inputs")
    assert names("to_zarr", "inputs") == {("file", str(release))}
    assert names("to_zarr", "outputs") == {("file", str(store))}
    assert names("dp_pix", "inputs") == {("file", str(store))}
    assert names("dp_pix", "outputs") == {("file", str(dp_pix))}
    assert names("dp_release", "inputs") == {("file", str(release)), ("file", str(store))}
    assert names("dp_release", "outputs") == {("file", str(bundle))}


def test_facets_agree_with_the_lineage_records(dag_run: dict[str, Any], events: list[dict[str, Any]]) -> None:
    complete = _task_events(events, "COMPLETE")
    releases = dag_run["root"] / "data" / "releases"
    (deid_record,) = next(releases.glob("release-*")).joinpath("lineage").glob("*.json")
    deid = json.loads(deid_record.read_text())
    facet = complete["deidentify"]["run"]["facets"][DEIDENTIFICATION]
    assert facet["keyFingerprint"] == deid["privacy"]["deidentification"]["key_fingerprint"]
    assert (facet["written"], facet["quarantined"]) == (deid["counts"]["written"], deid["counts"]["quarantined"])
    assert facet["quarantined"] > 0  # the corpus has bad files
    (dp_record,) = next(releases.glob("dp-release-*")).joinpath("lineage").glob("*.json")
    spend = json.loads(dp_record.read_text())["privacy"]["dp_release"]
    facet = complete["dp_release"]["run"]["facets"][PRIVACY_SPEND]
    assert facet["ledgerEntry"] == spend["ledger_entry"]
    assert (facet["charged"], facet["idempotencyKey"], facet["dataset"]) == (
        True,
        spend["idempotency_key"],
        "demo-cohort",
    )
    assert (facet["mechanism"], facet["rho"], facet["lossExact"]) == ("discrete-gaussian", 0.5, "1/2")
    pix = complete["dp_pix"]["run"]["facets"]
    assert (pix[PRIVACY_SPEND]["mechanism"], pix[PRIVACY_SPEND]["epsilon"]) == ("discrete-laplace", 1.0)
    assert pix[IMAGE_STORE]["method"] == "dp-pix"


def test_events_hold_no_secret_and_no_identifier(dag_run: dict[str, Any]) -> None:
    blob = dag_run["events"].read_bytes()
    assert TEST_SECRET.encode() not in blob
    corpus: SampleCorpus = dag_run["corpus"]
    markers = [m for m in corpus.phi_markers if len(m) >= 6 and not m.isdigit()]
    assert markers
    assert [m for m in markers if m.encode() in blob] == []
