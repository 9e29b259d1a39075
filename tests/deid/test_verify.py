"""The leak verifier finds planted leaks in content and in paths, and stays quiet on clean releases."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from privacy_core.deid.batch import deidentify_tree
from privacy_core.deid.profile import Profile
from privacy_core.deid.verify import collect_needles, verify_release, write_findings
from privacy_core.keys import PseudonymKey
from tests.conftest import PYDICOM_FILES


@pytest.fixture
def clean_release(tmp_path: Path, key: PseudonymKey) -> tuple[Path, Path]:
    source = tmp_path / "in"
    source.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "test-SR.dcm"):
        shutil.copy(PYDICOM_FILES / name, source / name)
    out = tmp_path / "out"
    deidentify_tree(source, out, Profile(), key)
    return source, out


def test_clean_release_has_no_hits(clean_release: tuple[Path, Path]) -> None:
    source, out = clean_release
    report = verify_release(source, out, Profile())
    assert report.inputs == 4
    assert report.needles > 20
    assert report.hits == []
    assert "no leak found" in report.render()


def test_leak_in_content_is_found_with_its_attribute(clean_release: tuple[Path, Path]) -> None:
    source, out = clean_release
    victim = next(out.rglob("*.dcm"))
    victim.write_bytes(victim.read_bytes() + b"CompressedSamples^MR1")  # MR_small's Patient's Name
    report = verify_release(source, out, Profile())
    assert report.hits
    assert {hit.where for hit in report.hits} == {"content"}
    assert any(hit.tag == "(0010,0010)" for hit in report.hits)
    assert "LEAK" in report.render()


def test_leak_in_a_path_is_found(clean_release: tuple[Path, Path]) -> None:
    source, out = clean_release
    (out / "CT_small_patient_1CT1").mkdir()  # CT_small's Patient ID in a folder name
    report = verify_release(source, out, Profile())
    assert any(hit.where == "path" and hit.tag == "(0010,0020)" for hit in report.hits)


def test_original_uid_is_found_but_not_inside_a_longer_number(clean_release: tuple[Path, Path]) -> None:
    import pydicom

    source, out = clean_release
    uid = pydicom.dcmread(source / "CT_small.dcm").SOPInstanceUID
    (out / "note.txt").write_text(f"x9{uid}9 is not it, but {uid} is")
    hits = [h for h in verify_release(source, out, Profile()).hits if h.location == "note.txt"]
    assert len(hits) == 1


def test_findings_never_quote_the_value(clean_release: tuple[Path, Path], tmp_path: Path) -> None:
    source, out = clean_release
    (out / "leak.txt").write_text("CompressedSamples^MR1")
    report = verify_release(source, out, Profile())
    write_findings(report, tmp_path / "findings.json")
    assert "CompressedSamples" not in report.render()
    assert "CompressedSamples" not in (tmp_path / "findings.json").read_text()


def test_values_an_option_keeps_are_not_needles() -> None:
    basic, _, _ = collect_needles(PYDICOM_FILES / "CT_small.dcm", Profile())
    kept, _, _ = collect_needles(PYDICOM_FILES / "CT_small.dcm", Profile.from_names(["retain_uids"]))
    basic_texts, kept_texts = {n.text for n in basic}, {n.text for n in kept}
    import pydicom

    uid = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm").StudyInstanceUID
    assert uid in basic_texts
    assert uid not in kept_texts


def test_unreadable_inputs_are_counted_not_fatal(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    (source / "junk.txt").write_text("hello")
    out = tmp_path / "out"
    out.mkdir()
    report = verify_release(source, out, Profile())
    assert (report.inputs, report.unreadable_inputs, report.hits) == (0, 1, [])
