"""The batch on pydicom's 86 real files: quarantine with reasons, atomic output, names from new UIDs only."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pydicom
import pytest

from privacy_core.deid import batch as batch_module
from privacy_core.deid.batch import deidentify_tree, dump_summary, list_inputs
from privacy_core.deid.profile import Profile
from privacy_core.errors import ConfigurationError
from privacy_core.keys import PseudonymKey
from privacy_core.schemas import validate

KNOWN_CATEGORIES = {
    "not-dicom",
    "truncated",
    "invalid-value",
    "invalid-vr",
    "dicomdir",
    "duplicate-sop-instance-uid",
    "missing-sop-instance-uid",
    "pixel-decode-failed",
    "burned-in-unhandled",
}
UID_PATH = re.compile(r"^(?:[0-9.]+|x[0-9a-f]{32})/(?:[0-9.]+|x[0-9a-f]{32})/(?:[0-9.]+|x[0-9a-f]{32})\.dcm$")


@pytest.fixture(scope="module")
def real_release(tmp_path_factory: pytest.TempPathFactory, key: PseudonymKey) -> batch_module.BatchResult:
    from tests.conftest import PYDICOM_FILES

    root = tmp_path_factory.mktemp("real")
    source = root / "in"
    shutil.copytree(PYDICOM_FILES, source)
    return deidentify_tree(source, root / "out", Profile(), key)


def test_every_real_file_is_released_or_quarantined_with_a_known_reason(
    real_release: batch_module.BatchResult,
) -> None:
    assert real_release.inputs == len(real_release.results)
    assert len(real_release.written) > 60
    categories = {r.category for r in real_release.quarantined}
    assert categories <= KNOWN_CATEGORIES
    assert not any(r.category == "deid-failed" for r in real_release.results)


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("MR_truncated.dcm", "truncated"),
        ("rtplan_truncated.dcm", "truncated"),
        ("README.txt", "not-dicom"),
        ("badVR.dcm", "invalid-value"),
        ("dicomdirtests/DICOMDIR", "dicomdir"),
    ],
)
def test_bad_inputs_get_their_reason(real_release: batch_module.BatchResult, name: str, category: str) -> None:
    assert real_release.quarantine is not None
    report = json.loads((real_release.quarantine / "report.json").read_text())
    entry = next(e for e in report["entries"] if e["input"] == name)
    assert entry["category"] == category
    copy = real_release.quarantine / entry["copy"]
    original = real_release.output.parent / "in" / name
    assert copy.read_bytes() == original.read_bytes()  # nothing lost


def test_quarantine_report_validates_and_lives_outside_the_release(real_release: batch_module.BatchResult) -> None:
    assert real_release.quarantine is not None
    assert real_release.output not in real_release.quarantine.parents
    validate("QuarantineReport", json.loads((real_release.quarantine / "report.json").read_text()))


def test_outputs_are_named_by_new_uids_and_read_back(real_release: batch_module.BatchResult) -> None:
    for r in real_release.written:
        assert r.output is not None
        assert UID_PATH.match(r.output), r.output
        ds = pydicom.dcmread(real_release.output / r.output)
        assert ds.PatientIdentityRemoved == "YES"
        assert r.output.endswith(f"/{ds.SOPInstanceUID}.dcm")
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_no_temporary_or_staging_files_left(real_release: batch_module.BatchResult) -> None:
    leftovers = [p for p in real_release.output.parent.rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_summary_has_no_input_names_and_validates(real_release: batch_module.BatchResult, tmp_path: Path) -> None:
    dump_summary(real_release, tmp_path / "summary.json")
    text = (tmp_path / "summary.json").read_text()
    validate("DeidSummary", json.loads(text))
    assert "MR_truncated" not in text
    assert "dcm" not in text


def test_two_workers_give_the_same_release_as_one(
    tmp_path: Path, key: PseudonymKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import PYDICOM_FILES

    monkeypatch.setattr(batch_module, "CHUNK_FILES", 1)  # six chunks: the pool and this process share them
    source = tmp_path / "in"
    source.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "rtstruct.dcm", "test-SR.dcm", "JPEG2000.dcm"):
        shutil.copy(PYDICOM_FILES / name, source / name)
    one = deidentify_tree(source, tmp_path / "one", Profile(), key, workers=1)
    two = deidentify_tree(source, tmp_path / "two", Profile(), key, workers=2)
    assert len(one.written) == 6
    assert one.output_digest() == two.output_digest()
    assert [r.index for r in two.results] == list(range(6))


def test_identical_duplicate_is_counted_not_quarantined(tmp_path: Path, key: PseudonymKey) -> None:
    from tests.conftest import PYDICOM_FILES

    source = tmp_path / "in"
    source.mkdir()
    shutil.copy(PYDICOM_FILES / "CT_small.dcm", source / "a.dcm")
    shutil.copy(PYDICOM_FILES / "CT_small.dcm", source / "b.dcm")
    result = deidentify_tree(source, tmp_path / "out", Profile(), key)
    assert [r.status for r in result.results] == ["written", "duplicate"]


def test_crash_leaves_no_release_that_looks_complete(
    tmp_path: Path, key: PseudonymKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import PYDICOM_FILES

    source = tmp_path / "in"
    source.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm"):
        shutil.copy(PYDICOM_FILES / name, source / name)
    calls = []
    real = batch_module.process_file

    def dies_on_third(*args: object, **kwargs: object) -> batch_module.FileResult:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(batch_module, "process_file", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        deidentify_tree(source, tmp_path / "out", Profile(), key)
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("output-not-empty", "is not an empty folder"),
        ("output-inside-input", "overlaps INPUT"),
        ("quarantine-inside-output", "keep them outside the release"),
        ("missing-input", "does not exist"),
        ("zero-workers", "must be at least 1"),
    ],
)
def test_bad_settings_fail_before_any_file_is_touched(
    tmp_path: Path, key: PseudonymKey, setup: str, message: str
) -> None:
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    (source / "x.dcm").write_bytes(b"not dicom")
    kwargs: dict[str, object] = {}
    if setup == "output-not-empty":
        out.mkdir()
        (out / "keep.txt").write_text("precious")
    elif setup == "output-inside-input":
        out = source / "release"
    elif setup == "quarantine-inside-output":
        kwargs["quarantine_path"] = out / "q"
    elif setup == "missing-input":
        source = tmp_path / "absent"
    elif setup == "zero-workers":
        kwargs["workers"] = 0
    with pytest.raises(ConfigurationError, match=message):
        deidentify_tree(source, out, Profile(), key, **kwargs)  # type: ignore[arg-type]
    if setup == "output-not-empty":
        assert (out / "keep.txt").read_text() == "precious"
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


def test_list_inputs_is_sorted_and_recursive(tmp_path: Path) -> None:
    for rel in ("b/2", "a/1", "c"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    assert [p.relative_to(tmp_path).as_posix() for p in list_inputs(tmp_path)] == ["a/1", "b/2", "c"]


@pytest.mark.parametrize("workers", [1, 2])
def test_conflicting_instances_are_both_quarantined_whatever_the_workers(
    tmp_path: Path, key: PseudonymKey, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import PYDICOM_FILES

    monkeypatch.setattr(batch_module, "CHUNK_FILES", 1)
    source = tmp_path / "in"
    source.mkdir()
    shutil.copy(PYDICOM_FILES / "CT_small.dcm", source / "a.dcm")
    other = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    other.SliceThickness = "9.5"  # kept by the profile: same SOP Instance UID, different released content
    other.save_as(source / "b.dcm")
    shutil.copy(PYDICOM_FILES / "MR_small.dcm", source / "c.dcm")
    result = deidentify_tree(source, tmp_path / "out", Profile(), key, workers=workers)
    assert [(r.status, r.category) for r in result.results] == [
        ("quarantined", "duplicate-sop-instance-uid"),
        ("quarantined", "duplicate-sop-instance-uid"),
        ("written", None),
    ]
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 1


@pytest.mark.parametrize("name", ["rtdose.dcm", "rtdose_1frame.dcm", "SC_rgb_rle_2frame.dcm", "MR_small_implicit.dcm"])
def test_complete_files_are_not_called_truncated(name: str) -> None:
    """Implicit VR files hold Number of Frames (IS) as text: "15" must not be read as a 2-byte integer."""
    from privacy_core.deid.engine import read_dicom
    from tests.conftest import PYDICOM_FILES

    assert read_dicom(PYDICOM_FILES / name).SOPClassUID
