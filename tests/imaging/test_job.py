"""The to-zarr job: a de-identified release becomes a store with its lineage record, nothing identifying."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from privacy_core.deid.batch import deidentify_tree
from privacy_core.deid.profile import Profile
from privacy_core.imaging.job import run_to_zarr, store_digest
from privacy_core.keys import PseudonymKey
from privacy_core.lineage.record import read_record
from privacy_core.samples import SampleCorpus, make_phi_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> SampleCorpus:
    return make_phi_corpus(tmp_path_factory.mktemp("phi") / "in", patients=2, rows=32, columns=32)


@pytest.fixture(scope="module")
def release(corpus: SampleCorpus, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rel") / "release"
    deidentify_tree(corpus.root, out, Profile(), PseudonymKey.from_text("k" * 32))
    return out


def test_release_becomes_a_store_with_a_lineage_record(release: Path, tmp_path: Path) -> None:
    job = run_to_zarr(release, str(tmp_path / "store"))
    assert job.summary["series"] == len(job.arrays) > 0
    record = read_record(job.lineage_path)
    assert record["operation"] == "to-zarr"
    assert record["counts"]["series"] == len(job.arrays)
    assert record["counts"]["reasons"] == job.summary["reasons"]
    assert {a["url"] for a in record["storage"]["arrays"]} == {a.url for a in job.arrays}
    assert record["outputs"][0]["digest"]["value"] == store_digest([a.url for a in job.arrays])
    json.dumps(job.summary)  # XCom-ready


def test_lineage_folder_of_the_release_is_not_read_as_dicom(release: Path, tmp_path: Path) -> None:
    job = run_to_zarr(release, str(tmp_path / "store"))
    assert "not-dicom" not in job.summary["reasons"]


def test_nothing_identifying_in_the_store_metadata(corpus: SampleCorpus, release: Path, tmp_path: Path) -> None:
    run_to_zarr(release, str(tmp_path / "store"))
    markers = [m for m in corpus.phi_markers if len(m) >= 6 and not m.isdigit()]
    for path in (tmp_path / "store").rglob("*.json"):
        text = path.read_text()
        assert not [m for m in markers if m in text], path
