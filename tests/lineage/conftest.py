"""A small real run for the audit and report tests: de-identified release, Zarr store, DP-Pix store, DP
release and its ledger, written by privacy_core's own jobs."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest

from privacy_core.deid.job import run_deidentification
from privacy_core.dp.ledger import open_ledger
from privacy_core.dp.release import run_release
from privacy_core.dp.spec import parse_spec
from privacy_core.imaging.compute import DaskConfig
from privacy_core.imaging.job import run_to_zarr
from privacy_core.keys import PseudonymKey
from privacy_core.pixels.job import run_pixels
from privacy_core.samples import make_phi_corpus
from tests.conftest import TEST_SECRET


@pytest.fixture(scope="module")
def cluster() -> Iterator[DaskConfig]:
    from distributed import LocalCluster

    with LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
    ) as local:
        yield DaskConfig(address=local.scheduler_address)


def build_run(base: Path, cluster: DaskConfig, *, rows: int, burned_in: bool) -> Path:
    """Write ``base/input`` (PHI corpus), ``base/releases/{release,zarr,dp-pix,dp-release}-1`` and
    ``base/ledger.db`` (dataset ``cohort``, pure DP, cap 3, one release of epsilon 1/2); returns ``base``."""
    corpus = make_phi_corpus(base / "input", patients=2, rows=rows, columns=rows, burned_in=burned_in)
    releases = base / "releases"
    release = releases / "release-1"
    run_deidentification(corpus.root, release, PseudonymKey.from_text(TEST_SECRET))
    run_to_zarr(release, str(releases / "zarr-1"))
    run_pixels(
        str(releases / "zarr-1"), str(releases / "dp-pix-1"), "dp-pix", {"epsilon": 1.0, "block": 4}, dask=cluster
    )
    spec = parse_spec(
        {
            "dataset": "cohort",
            "accounting": "pure-dp",
            "budget": {"epsilon": 0.5},
            "privacy_unit": {"max_records_per_patient": 2},
            "sources": {"dicom": str(release)},
            "queries": [{"name": "series", "kind": "count", "partition_by": "Modality", "partitions": ["CT", "MR"]}],
        }
    )
    with open_ledger(f"sqlite:///{base / 'ledger.db'}") as ledger:
        ledger.create_dataset("cohort", "pure-dp", Fraction(3))
        run_release(spec, ledger, releases / "dp-release-1", dask=cluster)
    return base
