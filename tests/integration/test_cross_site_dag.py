"""The cross_site_statistics DAG under ``airflow dags test``: three of four hospitals upload, a 2-of-3
threshold key decrypts only the noisy total, the ledger is charged once; then a scan of everything Airflow
and the protocol wrote for key-share secrets and for any site's plaintext vector."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from privacy_core.dp.ledger import open_ledger
from privacy_core.schemas import validate

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dag_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("cross")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{root / 'airflow' / 'airflow.db'}",
        "IMAGING_PRIVACY_DEMO_ROOT": str(root / "data"),
        "AIRFLOW_CONN_IMAGING_PRIVACY_LEDGER_DEFAULT": json.dumps(
            {"conn_type": "imaging_privacy_ledger", "extra": {"path": str(root / "ledger.db")}}
        ),
    }
    (root / "airflow").mkdir()
    with open_ledger(f"sqlite:///{root / 'ledger.db'}") as ledger:
        ledger.create_dataset("multi-site-cohort", "zcdp", Fraction(3), delta=1e-6)
    migrate = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, check=False)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    test = subprocess.run(
        [AIRFLOW, "dags", "test", "cross_site_statistics", "-c", json.dumps({"key_bits": 1024})],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return {"root": root, "result": test}


def test_dag_run_succeeds(dag_run: dict[str, Any]) -> None:
    result = dag_run["result"]
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    assert "state=success" in result.stdout + result.stderr


def _round(dag_run: dict[str, Any]) -> Path:
    (folder,) = (dag_run["root"] / "data" / "cross-site" / "exchange").glob("round-*")
    return Path(folder)


def test_dropped_site_left_out_and_total_released_with_its_charge(dag_run: dict[str, Any]) -> None:
    folder = _round(dag_run)
    aggregate = json.loads((folder / "aggregate.json").read_text())
    validate("SecureAggregate", aggregate)
    result = json.loads((folder / "result.json").read_text())
    validate("SecureResult", result)
    sites = sorted(p.stem for p in (folder / "uploads").glob("*.json"))
    assert sites == ["hospital-a", "hospital-b", "hospital-c"]
    with open_ledger(f"sqlite:///{dag_run['root'] / 'ledger.db'}") as ledger:
        status = ledger.status("multi-site-cohort")
        assert status.spent > 0 and ledger.verify("multi-site-cohort").ok
        assert ledger.entries("multi-site-cohort")[-1].entry_hash == result["payload"]["ledger"]["commit_hash"]


def test_released_total_is_the_sum_of_the_sites_plus_noise_only(dag_run: dict[str, Any]) -> None:
    """The noisy total differs from the true sum (computed here from the site files) only by noise."""
    sites = dag_run["root"] / "data" / "cross-site" / "sites"
    truth = sum(np.load(p) for p in sorted(sites.glob("*/statistic.npy")))
    result = json.loads((_round(dag_run) / "result.json").read_text())
    released = np.asarray(result["payload"]["values"], dtype=np.float64)
    noise = result["payload"]["noise"]
    sigma = float(np.sqrt(float(Fraction(noise["sigma_site_sq_exact"]) * result["payload"]["sites_accepted"])))
    assert released.shape == truth.shape
    assert np.abs(released - truth).max() < 10 * sigma + 1


def test_no_key_share_or_site_vector_in_anything_written(dag_run: dict[str, Any]) -> None:
    root: Path = dag_run["root"]
    keys = root / "data" / "cross-site" / "keys"
    secrets = []
    for share in keys.glob("key-share-[0-9].json"):
        value = int(json.loads(share.read_text())["secret"])
        secrets += [str(value).encode(), format(value, "x").encode()]
    vectors = [np.load(p) for p in (root / "data" / "cross-site" / "sites").glob("*/statistic.npy")]
    needles = secrets + [json.dumps(v.tolist()).encode() for v in vectors] + [v.tobytes() for v in vectors]
    blobs = [("airflow stdout+stderr", (dag_run["result"].stdout + dag_run["result"].stderr).encode())]
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith(("data/cross-site/keys/key-share", "data/cross-site/sites/")):
            blobs.append((rel, path.read_bytes()))
    assert any(where.endswith("airflow.db") for where, _ in blobs)
    leaks = [where for where, blob in blobs for needle in needles if needle in blob]
    assert leaks == []
