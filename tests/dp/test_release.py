"""Whole releases: de-identified DICOM and Zarr arrays in, a bundle out, charged once to the ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from privacy_core.deid.batch import deidentify_tree
from privacy_core.deid.profile import Profile
from privacy_core.dp.ledger import BudgetLedger, open_ledger
from privacy_core.dp.release import check_budget, release_cost, run_release
from privacy_core.dp.spec import ReleaseSpec, parse_spec
from privacy_core.errors import BudgetExceededError, ConfigurationError
from privacy_core.imaging.compute import DaskConfig
from privacy_core.imaging.job import run_to_zarr
from privacy_core.keys import PseudonymKey
from privacy_core.lineage.record import read_record
from privacy_core.samples import SampleCorpus, make_phi_corpus
from privacy_core.schemas import validate


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> SampleCorpus:
    return make_phi_corpus(tmp_path_factory.mktemp("phi") / "in", patients=3, rows=16, columns=16, burned_in=False)


@pytest.fixture(scope="module")
def cluster() -> Iterator[DaskConfig]:
    from distributed import LocalCluster

    with LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
    ) as local:
        yield DaskConfig(address=local.scheduler_address)


@pytest.fixture(scope="module")
def sources(corpus: SampleCorpus, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("rel")
    deidentify_tree(corpus.root, root / "release", Profile(), PseudonymKey.from_text("k" * 32))
    run_to_zarr(root / "release", str(root / "store"))
    return {"dicom": str(root / "release"), "zarr": str(root / "store")}


def _spec(sources: dict[str, str], epsilon: float = 1.0, **extra: Any) -> ReleaseSpec:
    from privacy_core.imaging.zarr_store import list_series, read_record

    shape = read_record(list_series(sources["zarr"])[0])["shape"]
    raw = {
        "dataset": "demo",
        "accounting": "pure-dp",
        "budget": {"epsilon": epsilon},
        "privacy_unit": {"max_records_per_patient": 2},
        "sources": sources,
        "queries": [
            {"name": "series", "kind": "count", "partition_by": "Modality", "partitions": ["CT", "MR", "OT"]},
            {"name": "rows", "kind": "mean", "field": "Rows", "bounds": [0, 1024], "resolution": 1},
            {"name": "image", "kind": "voxel_mean", "shape": shape, "bounds": [0, 4095]},
            {"name": "intensity", "kind": "intensity_histogram", "bins": [0, 100, 1000, 4096]},
        ],
        **extra,
    }
    return parse_spec(raw)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[BudgetLedger]:
    with open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as opened:
        opened.create_dataset("demo", "pure-dp", Fraction(3))
        yield opened


def test_release_writes_a_valid_bundle_and_charges_its_loss(
    sources: dict[str, str], ledger: BudgetLedger, cluster: DaskConfig, tmp_path: Path
) -> None:
    spec = _spec(sources)
    result = run_release(spec, ledger, tmp_path / "out", dask=cluster)
    bundle = json.loads(Path(result.path).read_text())
    validate("DPRelease", bundle)
    assert result.charged and ledger.status("demo").spent == release_cost(spec) == 1
    assert {q["name"] for q in bundle["queries"]} == {"series", "rows", "image", "intensity"}
    image = next(q for q in bundle["queries"] if q["name"] == "image")
    file = image["statistics"][0]["file"]
    saved = np.load(tmp_path / "out" / file["name"])
    assert list(saved.shape) == file["shape"] and "encoded" not in file
    assert bundle["ledger"]["commit_sequence"] == ledger.entries("demo")[-1].seq
    assert bundle["ledger"]["commit_hash"] == ledger.entries("demo")[-1].entry_hash
    noise = image["statistics"][0]["noise"]
    assert noise["mechanism"] == "discrete-laplace" and noise["l1_sensitivity"] > 0
    record = read_record(result.lineage_path)
    assert record["operation"] == "dp-release" and record["privacy"]["dp_release"]["charged"]
    json.dumps(result.summary())


def test_retry_returns_the_stored_result_without_new_noise_or_charge(
    sources: dict[str, str], ledger: BudgetLedger, cluster: DaskConfig, tmp_path: Path
) -> None:
    spec = _spec(sources)
    first = run_release(spec, ledger, tmp_path / "a", key="task:1", dask=cluster)
    spent = ledger.status("demo").spent
    again = run_release(spec, ledger, tmp_path / "b", key="task:1", dask=cluster)
    assert not again.charged and ledger.status("demo").spent == spent
    assert again.bundle["queries"] == first.bundle["queries"]
    assert (tmp_path / "a" / "image-sum.npy").read_bytes() == (tmp_path / "b" / "image-sum.npy").read_bytes()
    fresh = run_release(spec, ledger, tmp_path / "c", key="task:2", dask=cluster)
    assert fresh.charged and fresh.bundle["queries"] != first.bundle["queries"]


def test_over_cap_spend_is_refused_before_any_work_and_charges_nothing(
    sources: dict[str, str], ledger: BudgetLedger, tmp_path: Path
) -> None:
    spec = _spec(sources, epsilon=5.0)
    entries = len(ledger.entries("demo"))
    with pytest.raises(BudgetExceededError, match="lower epsilon to at most 3"):
        check_budget(spec, ledger)
    with pytest.raises(BudgetExceededError):
        run_release(spec, ledger, tmp_path / "out", dask=DaskConfig(address="tcp://127.0.0.1:1"))
    assert len(ledger.entries("demo")) == entries
    assert not (tmp_path / "out").exists()


def test_failure_before_commit_aborts_the_reservation(
    sources: dict[str, str], ledger: BudgetLedger, tmp_path: Path
) -> None:
    spec = _spec(sources)
    with pytest.raises(ConfigurationError, match="address"):
        run_release(spec, ledger, tmp_path / "out", dask=DaskConfig(address="tcp://127.0.0.1:1", connect_timeout=1))
    status = ledger.status("demo")
    assert status.spent == 0 and status.reserved == 0
    assert [e.kind for e in ledger.entries("demo")][-2:] == ["reserve", "abort"]
    assert not (tmp_path / "out" / "release.json").exists()


def test_accounting_mismatch_is_refused(sources: dict[str, str], ledger: BudgetLedger) -> None:
    spec = _spec(sources, accounting="zcdp", budget={"rho": 0.5})
    with pytest.raises(ConfigurationError, match="accounting: pure-dp"):
        check_budget(spec, ledger)


def test_zcdp_release_states_its_epsilon_delta(sources: dict[str, str], cluster: DaskConfig, tmp_path: Path) -> None:
    with open_ledger(f"sqlite:///{tmp_path / 'z.db'}") as ledger:
        ledger.create_dataset("demo", "zcdp", Fraction(1), delta=1e-6)
        spec = _spec(sources, accounting="zcdp", budget={"rho": 0.25, "delta": 1e-6})
        result = run_release(spec, ledger, tmp_path / "out", dask=cluster)
    loss = result.bundle["loss"]
    assert loss["exact"] == "1/4"
    assert loss["epsilon_delta"]["epsilon"] == pytest.approx(0.25 + 2 * np.sqrt(0.25 * np.log(1e6)))
    mechanisms = {s["noise"]["mechanism"] for q in result.bundle["queries"] for s in q["statistics"]}
    assert mechanisms == {"discrete-gaussian"}


def test_no_true_value_reaches_the_bundle_or_the_ledger(
    sources: dict[str, str], ledger: BudgetLedger, cluster: DaskConfig, tmp_path: Path
) -> None:
    """The exact sum image (computed here independently, with zarr) is nowhere in what the release wrote."""
    spec = _spec(sources)
    result = run_release(spec, ledger, tmp_path / "out", dask=cluster)
    exact = _exact_sum_image(sources["zarr"], spec)
    released = np.load(tmp_path / "out" / "image-sum.npy")
    noise_std = next(q for q in result.bundle["queries"] if q["name"] == "image")["statistics"][0]["noise"]["noise_std"]
    assert released.shape == exact.shape
    assert np.mean(released != exact) > 0.5  # noise on (almost) every voxel
    assert np.abs(released - exact).max() < 12 * noise_std  # and only noise: the sums themselves agree
    written = b"".join(p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file())
    stored = json.dumps([e.payload for e in ledger.entries("demo")]).encode()
    assert exact.astype(np.float64).tobytes() not in written + stored


def _exact_sum_image(store: str, spec: ReleaseSpec) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Sum of the arrays of the voxel query's shape, at most 2 per patient, read with zarr directly."""
    import hashlib

    import zarr

    from privacy_core.imaging.zarr_store import list_series, read_record

    shape = next(q.shape for q in spec.queries if q.name == "image")
    by_patient: dict[str, list[tuple[bytes, str]]] = {}
    for url in list_series(store):
        record = read_record(url)
        if tuple(record["shape"]) == shape and record["patient"]:
            key = hashlib.sha256(record["series_uid"].encode()).digest()
            by_patient.setdefault(record["patient"], []).append((key, url))
    total = np.zeros(shape, dtype=np.int64)
    for urls in by_patient.values():
        for _key, url in sorted(urls)[:2]:
            total += np.clip(np.asarray(zarr.open_array(f"{url}/0", mode="r")[...]), 0, 4095).astype(np.int64)
    return total
