"""The example DAG under ``airflow dags test``, exactly as ``make demo`` runs it, then a scan of everything
Airflow and the pipeline wrote (logs, metadata DB with XCom, release, lineage, summary) for the secret and
for every PHI marker of the input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from privacy_core.dp.ledger import open_ledger
from privacy_core.samples import SampleCorpus, make_phi_corpus
from privacy_core.schemas import validate
from tests.conftest import TEST_SECRET

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dag_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("dag")
    corpus = make_phi_corpus(root / "data" / "input", patients=2, bad_files=True, rows=32, columns=32)
    secret = root / "secret.key"
    secret.write_text(TEST_SECRET)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{root / 'airflow' / 'airflow.db'}",
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
    test = subprocess.run(
        [AIRFLOW, "dags", "test", "dicom_deid_example"], env=env, capture_output=True, text=True, check=False
    )
    return {"root": root, "corpus": corpus, "result": test, "env": env}


def test_dag_run_succeeds(dag_run: dict[str, Any]) -> None:
    result = dag_run["result"]
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    assert "state=success" in result.stdout + result.stderr


def test_release_and_its_lineage_record(dag_run: dict[str, Any]) -> None:
    releases = sorted((dag_run["root"] / "data" / "releases").glob("release-*"))
    assert len(releases) == 1
    release = releases[0]
    corpus: SampleCorpus = dag_run["corpus"]
    dicom = list(release.rglob("*.dcm"))
    expected = len([f for f in corpus.files if f.kind in ("image", "sr", "burned_in_rule")])
    assert len(dicom) == expected
    (record_path,) = (release / "lineage").glob("*.json")
    record = json.loads(record_path.read_text())
    validate("TaskLineageRecord", record)
    assert record["run"]["kind"] == "airflow"
    assert record["run"]["airflow"]["dag_id"] == "dicom_deid_example"
    assert record["run"]["airflow"]["task_id"] == "deidentify"
    assert record["counts"]["written"] == expected
    assert record["privacy"]["deidentification"]["options"] == [
        "clean_descriptors",
        "retain_long_modified_dates",
        "retain_patient_characteristics",
    ]
    (summary,) = (dag_run["root"] / "data" / "releases").glob("summary-*.json")
    validate("DeidSummary", json.loads(summary.read_text()))


def _everything_written(dag_run: dict[str, Any], *, dicom_content: bool = True) -> list[tuple[str, bytes]]:
    """Every file Airflow or the pipeline wrote, except the input and the quarantine (which may name PHI).

    :param dicom_content: include the released DICOM bytes (the options retain some values on purpose, so
        for PHI markers the DAG's own verify task judges DICOM content, with the profile's knowledge).
    """
    root: Path = dag_run["root"]
    blobs = [("airflow stdout+stderr", (dag_run["result"].stdout + dag_run["result"].stderr).encode())]
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if rel.startswith(("data/input", "data/releases/quarantine", "secret.key")):
            continue
        blobs.append((f"path {rel}", rel.encode()))
        if path.is_file() and (dicom_content or path.suffix != ".dcm"):
            blobs.append((rel, path.read_bytes()))
    return blobs


def test_secret_never_written_anywhere(dag_run: dict[str, Any]) -> None:
    leaks = [where for where, blob in _everything_written(dag_run) if TEST_SECRET.encode() in blob]
    assert leaks == []


def test_no_identifier_in_logs_xcom_lineage_or_release(dag_run: dict[str, Any]) -> None:
    corpus: SampleCorpus = dag_run["corpus"]
    markers = [m.encode() for m in corpus.phi_markers if len(m) >= 6 and not m.isdigit()]
    blobs = _everything_written(dag_run, dicom_content=False)
    assert any(where.endswith("airflow.db") for where, _ in blobs)  # XCom and rendered fields live here
    leaks = [(where, m) for where, blob in blobs for m in markers if m in blob]
    assert leaks == [], leaks[:10]


def test_dag_file_imports_nothing_heavy() -> None:
    code = (
        "import sys, runpy; runpy.run_path(sys.argv[1]);"
        "heavy = [m for m in ('pydicom', 'numpy', 'privacy_core.deid', 'ahocorasick') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(REPO / "dags" / "deid_example.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_zarr_store_and_dp_pix_store_with_their_records(dag_run: dict[str, Any]) -> None:
    from privacy_core.imaging.zarr_store import list_series, open_series

    releases = dag_run["root"] / "data" / "releases"
    (store,) = releases.glob("zarr-*")
    (dp,) = releases.glob("dp-pix-*")
    arrays = list_series(str(store))
    assert arrays
    assert len(list_series(str(dp))) == len(arrays)
    assert open_series(list_series(str(dp))[0]).dtype == "float32"
    (to_zarr_record,) = (store / "lineage").glob("*.json")
    (dp_record,) = (dp / "lineage").glob("*.json")
    zarr_record, pix_record = json.loads(to_zarr_record.read_text()), json.loads(dp_record.read_text())
    validate("TaskLineageRecord", zarr_record)
    validate("TaskLineageRecord", pix_record)
    assert zarr_record["run"]["airflow"]["task_id"] == "to_zarr"
    spend = pix_record["privacy"]["pixels"]["dp"]
    assert (spend["epsilon"], spend["m"], spend["block"], spend["value_range"]) == (1.0, 16, 8, 4095.0)


def test_verify_task_ran_and_found_nothing(dag_run: dict[str, Any]) -> None:
    output = dag_run["result"].stdout + dag_run["result"].stderr
    assert "verdict: no leak found" in output


def test_dp_release_bundle_and_its_ledger_entry(dag_run: dict[str, Any]) -> None:
    releases = dag_run["root"] / "data" / "releases"
    (bundle_dir,) = releases.glob("dp-release-*")
    bundle = json.loads((bundle_dir / "release.json").read_text())
    validate("DPRelease", bundle)
    assert bundle["accounting"] == "zcdp" and bundle["loss"]["exact"] == "1/2"
    assert {q["name"] for q in bundle["queries"]} >= {"series_per_modality", "mean_slab", "intensity"}
    (record,) = (bundle_dir / "lineage").glob("*.json")
    spend = json.loads(record.read_text())["privacy"]["dp_release"]
    assert spend["charged"] and spend["idempotency_key"].startswith("ti:")
    with open_ledger(f"sqlite:///{dag_run['root'] / 'ledger.db'}") as ledger:
        status = ledger.status("demo-cohort")
        assert status.spent == Fraction(1, 2)
        assert ledger.verify("demo-cohort").ok
        assert ledger.entries("demo-cohort")[-1].entry_hash == bundle["ledger"]["commit_hash"]


def test_the_whole_run_passes_the_audit(dag_run: dict[str, Any]) -> None:
    """What the DAG wrote verifies end to end: records, digests, the ledger and its spend, no key material."""
    from privacy_core.lineage.audit import audit_releases

    root: Path = dag_run["root"]
    report = audit_releases(
        root / "data" / "releases", ledger_url=f"sqlite:///{root / 'ledger.db'}", secret_text=TEST_SECRET
    )
    assert report.ok, report.render()


def test_audit_dag_passes_on_the_run_and_fails_after_tampering(dag_run: dict[str, Any]) -> None:
    """The release_audit example DAG, in the same Airflow home: green on the run, red once a byte changes."""
    audit = [AIRFLOW, "dags", "test", "release_audit"]
    passed = subprocess.run(audit, env=dag_run["env"], capture_output=True, text=True, check=False)
    assert passed.returncode == 0 and "state=success" in passed.stdout + passed.stderr, passed.stderr[-3000:]
    (release,) = (dag_run["root"] / "data" / "releases").glob("release-*")
    victim = next(release.rglob("*.dcm"))
    original = victim.read_bytes()
    try:
        victim.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        failed = subprocess.run(audit, env=dag_run["env"], capture_output=True, text=True, check=False)
        output = failed.stdout + failed.stderr
        assert "state=failed" in output or failed.returncode != 0, output[-3000:]
        assert "[digest]" in output
    finally:
        victim.write_bytes(original)
