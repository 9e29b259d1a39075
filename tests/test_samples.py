"""Tests for privacy_core.samples: the synthetic PHI corpus must be as hostile, consistent and valid as claimed."""

from __future__ import annotations

import io
import os
import re
import struct
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom import config
from pydicom.datadict import tag_for_keyword
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.multival import MultiValue

from privacy_core.deid._safe_private import SAFE_PRIVATE
from privacy_core.samples import (
    BURNED_IN_REGION,
    FILE_META_TABLE_TAGS,
    KINDS,
    PRIVATE_PHI_CREATOR,
    PRIVATE_PHI_GROUP,
    SAFE_PRIVATE_CREATOR,
    SAFE_PRIVATE_ELEMENT,
    SAFE_PRIVATE_GROUP,
    SKIPPED_TABLE_TAGS,
    UID_ROOT,
    UNSAFE_PRIVATE_ELEMENT,
    SampleCorpus,
    SampleFile,
    main,
    make_phi_corpus,
    phi_marker,
    table_e1_1_tags,
    unknown_table_tags,
)

DICOM_KINDS = ("image", "sr", "burned_in_rule", "burned_in_unhandled")
PIXEL_KINDS = ("image", "burned_in_rule", "burned_in_unhandled")
# VRs that cannot hold a text marker; every other Table E.1-1 value must contain one of phi_markers.
NUMERIC_VRS = {"AS", "DS", "IS", "TM", "US", "SS", "UL", "SL", "FL", "FD"}
BURNED_IN_SCRIPT = "ctp-burned-in-annotation-regions.script"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> SampleCorpus:
    return make_phi_corpus(tmp_path_factory.mktemp("corpus"), bad_files=True)


@pytest.fixture(scope="module")
def datasets(corpus: SampleCorpus) -> dict[Path, Any]:
    return {f.path: pydicom.dcmread(f.path) for f in corpus.files if f.kind in DICOM_KINDS}


def _files(corpus: SampleCorpus, *kinds: str) -> list[SampleFile]:
    return [f for f in corpus.files if f.kind in kinds]


def _text(value: Any) -> str:
    """Everything a value says, as text (bytes decoded, multi-values joined, sequences rendered)."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, pydicom.Sequence):
        return "\n".join(str(item) for item in value)
    if isinstance(value, list | MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value)


def _depth(ds: Any) -> int:
    """Deepest sequence nesting in a data set (a top-level SQ counts 1)."""
    deepest = 0
    for elem in ds:
        if elem.VR == "SQ":
            deepest = max(deepest, 1 + max((_depth(item) for item in elem.value), default=0))
    return deepest


# ------------------------------------------------------------------------------------------ layout


def test_default_corpus_has_every_kind(corpus: SampleCorpus) -> None:
    kinds = {f.kind for f in corpus.files}
    assert kinds == set(KINDS)
    # 3 patients x 2 studies x 2 series x 3 instances images, one SR per study, three bad files.
    assert len(corpus.files) == 36 + 6 + 3
    assert len(_files(corpus, "sr")) == 6


def test_files_exist_and_no_temporary_files_are_left(corpus: SampleCorpus) -> None:
    assert all(f.path.is_file() for f in corpus.files)
    written = {p for p in corpus.root.rglob("*") if p.is_file()}
    assert written == {f.path for f in corpus.files}


def test_paths_contain_phi(corpus: SampleCorpus, datasets: dict[Path, Any]) -> None:
    for f in corpus.files:
        relative = str(f.path.relative_to(corpus.root))
        assert f.patient_id in relative
        if f.kind in DICOM_KINDS:
            ds = datasets[f.path]
            assert str(ds.PatientName).split("^")[0] in relative
            assert ds.StudyDate in relative
            assert ds.AccessionNumber in relative
            assert f.path.name.startswith(f.sop_uid)
        assert re.fullmatch(r"[A-Za-z0-9._/\-]+", relative)


# --------------------------------------------------------------------------------- Table E.1-1


def test_skip_list_is_exactly_the_command_group() -> None:
    # Group 0000 is the DIMSE command set; pydicom refuses to write it into a data set, so these two are
    # the only Table E.1-1 tags a file cannot carry. (0002,0003) lives in the file meta instead.
    assert set(SKIPPED_TABLE_TAGS) == {"00001000", "00001001"}
    assert all(tag.startswith("0000") for tag in SKIPPED_TABLE_TAGS)
    assert set(SKIPPED_TABLE_TAGS) | FILE_META_TABLE_TAGS <= set(table_e1_1_tags())
    assert sorted(FILE_META_TABLE_TAGS) == ["00020003"]


def test_unknown_table_tags_are_few_and_still_written(datasets: dict[Path, Any]) -> None:
    unknown = unknown_table_tags()
    assert len(unknown) <= 10
    for ds in datasets.values():
        for tag in unknown:
            assert ds[int(tag, 16)].VR == "LO"


@pytest.mark.parametrize("kind", DICOM_KINDS)
def test_every_table_tag_is_present_with_a_value(corpus: SampleCorpus, datasets: dict[Path, Any], kind: str) -> None:
    tags = [t for t in table_e1_1_tags() if t not in SKIPPED_TABLE_TAGS]
    assert len(tags) == 615
    for f in _files(corpus, kind):
        ds = datasets[f.path]
        for tag in tags:
            where = ds.file_meta if tag in FILE_META_TABLE_TAGS else ds
            assert int(tag, 16) in where, f"{tag} missing from {f.path.name}"
            value = where[int(tag, 16)].value
            assert value not in (None, "", b""), tag
            assert len(value) > 0 if isinstance(value, list | MultiValue | pydicom.Sequence) else True, tag


def test_every_text_table_value_carries_a_phi_marker(corpus: SampleCorpus, datasets: dict[Path, Any]) -> None:
    unmarked_vrs: set[str] = set()
    for f in _files(corpus, "image", "sr"):
        ds = datasets[f.path]
        for tag in table_e1_1_tags():
            if tag in SKIPPED_TABLE_TAGS:
                continue
            elem = (ds.file_meta if tag in FILE_META_TABLE_TAGS else ds)[int(tag, 16)]
            text = _text(elem.value)
            if not any(marker in text for marker in corpus.phi_markers):
                unmarked_vrs.add(elem.VR)
    assert unmarked_vrs <= NUMERIC_VRS


def test_text_markers_follow_the_scheme(corpus: SampleCorpus, datasets: dict[Path, Any]) -> None:
    f = _files(corpus, "image")[0]
    ds = datasets[f.path]
    assert ds.InstitutionName == phi_marker(f.patient_index, "00080080")
    assert ds.StationName == phi_marker(f.patient_index, "00081010")  # SH: exactly 16 characters
    assert len(ds.StationName) == 16
    assert ds.PatientSex == phi_marker(f.patient_index, "00100040")  # CS: upper case, digits, underscore
    assert phi_marker(f.patient_index, "00102000") in ds.MedicalAlerts
    assert phi_marker(f.patient_index, "00420011").encode() in ds.EncapsulatedDocument
    assert ds.StudyInstanceUID.startswith(UID_ROOT)
    assert ds[0x00080015].value.startswith(ds.OverlayDate)  # DT carries the patient's event date


def test_values_are_valid_for_their_vr(
    corpus: SampleCorpus, monkeypatch: pytest.MonkeyPatch, datasets: dict[Path, Any]
) -> None:
    monkeypatch.setattr(config.settings, "reading_validation_mode", config.RAISE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for f in _files(corpus, *DICOM_KINDS):
            ds = pydicom.dcmread(f.path)
            for elem in ds.iterall():
                assert elem.value is not None
            if f.kind in PIXEL_KINDS:
                assert ds.pixel_array.shape[:2] == (ds.Rows, ds.Columns)


def test_bytes_are_what_pydicom_itself_writes(corpus: SampleCorpus) -> None:
    for f in _files(corpus, *DICOM_KINDS)[:12]:
        data = f.path.read_bytes()
        rewritten = io.BytesIO()
        pydicom.dcmwrite(rewritten, pydicom.dcmread(io.BytesIO(data)), enforce_file_format=True)
        assert rewritten.getvalue() == data


# --------------------------------------------------------------------------------- consistency


def test_core_identity_is_consistent(corpus: SampleCorpus, datasets: dict[Path, Any]) -> None:
    per_patient: dict[int, set[tuple[str, str, str]]] = defaultdict(set)
    per_study: dict[str, set[tuple[str, str]]] = defaultdict(set)
    per_series: dict[str, set[str]] = defaultdict(set)
    for f in _files(corpus, *DICOM_KINDS):
        ds = datasets[f.path]
        per_patient[f.patient_index].add((str(ds.PatientName), ds.PatientID, ds.PatientBirthDate))
        per_study[ds.StudyInstanceUID].add((ds.StudyDate, ds.AccessionNumber))
        per_series[ds.SeriesInstanceUID].add(ds.FrameOfReferenceUID)
        assert ds.PatientID == f.patient_id
        assert (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID) == (
            f.study_uid,
            f.series_uid,
            f.sop_uid,
        )
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SeriesDate == ds.AcquisitionDate == ds.ContentDate == ds.StudyDate
        assert ds.ReferencedFrameOfReferenceUID == ds.FrameOfReferenceUID
        assert ds.ReferencedStudySequence[0].ReferencedSOPInstanceUID == ds.StudyInstanceUID
    assert len(per_patient) == 3
    assert all(len(v) == 1 for v in per_patient.values())
    assert len(per_study) == 6
    assert all(len(v) == 1 for v in per_study.values())
    assert all(len(v) == 1 for v in per_series.values())
    names = [next(iter(v))[0] for v in per_patient.values()]
    assert len(set(names)) == len(names)


def test_image_references_point_into_the_same_series(corpus: SampleCorpus, datasets: dict[Path, Any]) -> None:
    series_members: dict[str, set[str]] = defaultdict(set)
    for f in _files(corpus, *PIXEL_KINDS):
        series_members[f.series_uid].add(f.sop_uid)
    for f in _files(corpus, *PIXEL_KINDS):
        ds = datasets[f.path]
        referenced = {
            ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID,
            ds.SourceImageSequence[0].ReferencedSOPInstanceUID,
            ds.ReferencedSOPInstanceUID,
        }
        assert referenced <= series_members[f.series_uid]
        assert f.sop_uid not in referenced


def test_sr_evidence_lists_the_study_images(corpus: SampleCorpus, datasets: dict[Path, Any]) -> None:
    for f in _files(corpus, "sr"):
        ds = datasets[f.path]
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.11"
        assert ds.Modality == "SR"
        assert "PixelData" not in ds
        evidence = ds.CurrentRequestedProcedureEvidenceSequence[0]
        listed = {
            sop.ReferencedSOPInstanceUID
            for series in evidence.ReferencedSeriesSequence
            for sop in series.ReferencedSOPSequence
        }
        expected = {g.sop_uid for g in _files(corpus, *PIXEL_KINDS) if g.study_uid == f.study_uid}
        assert listed == expected


# ------------------------------------------------------------------------- private, overlay, curve


def test_private_blocks(corpus: SampleCorpus, datasets: dict[Path, Any]) -> None:
    assert (SAFE_PRIVATE_CREATOR.upper(), SAFE_PRIVATE_GROUP, SAFE_PRIVATE_ELEMENT) in SAFE_PRIVATE
    assert (SAFE_PRIVATE_CREATOR.upper(), SAFE_PRIVATE_GROUP, UNSAFE_PRIVATE_ELEMENT) not in SAFE_PRIVATE
    for f in _files(corpus, *DICOM_KINDS):
        ds = datasets[f.path]
        acme = ds.private_block(PRIVATE_PHI_GROUP, PRIVATE_PHI_CREATOR)
        assert acme[0x01].value == phi_marker(f.patient_index, "00091001")
        assert acme[0x02].VR == "PN"
        assert str(acme[0x02].value) == str(ds.PatientName)
        assert acme[0x03].VR == "DA"
        assert acme[0x03].value == ds.PatientBirthDate
        assert _depth(acme[0x05].value[0]) >= 2  # private SQ three levels deep in total
        assert ds.PatientID in _text(acme[0x05].value)
        ge = ds.private_block(SAFE_PRIVATE_GROUP, SAFE_PRIVATE_CREATOR)
        assert ds[ge.get_tag(SAFE_PRIVATE_ELEMENT)].VR == "DS"
        assert float(ge[SAFE_PRIVATE_ELEMENT].value) > 0
        assert not any(m in str(ge[SAFE_PRIVATE_ELEMENT].value) for m in corpus.phi_markers)
        assert ds.PatientID in ge[UNSAFE_PRIVATE_ELEMENT].value


def test_overlays_and_curves(corpus: SampleCorpus, datasets: dict[Path, Any]) -> None:
    for f in _files(corpus, *PIXEL_KINDS):
        ds = datasets[f.path]
        for group in (0x6000, 0x6002):
            base = group << 16
            assert (ds[base | 0x0010].value, ds[base | 0x0011].value) == (ds.Rows, ds.Columns)
            data = ds[base | 0x3000].value
            assert len(data) >= ds.Rows * ds.Columns // 8
            assert phi_marker(f.patient_index, f"{group:04x}3000").encode() in data
            assert ds.PatientID in ds[base | 0x4000].value
        curve_label = ds[0x50002500]
        assert curve_label.VR == "LO"
        assert phi_marker(f.patient_index, "50002500") in curve_label.value
        assert phi_marker(f.patient_index, "50003000").encode() in ds[0x50003000].value


def test_nesting_is_at_least_three_deep(corpus: SampleCorpus, datasets: dict[Path, Any]) -> None:
    for f in _files(corpus, *DICOM_KINDS):
        ds = datasets[f.path]
        assert _depth(ds) >= 3
        assert _depth(ds.ContentSequence[-1]) >= 2
        assert _depth(ds.OriginalAttributesSequence[0]) >= 2
        deepest_ids = ds.OriginalAttributesSequence[0].ModifiedAttributesSequence[0].OtherPatientIDsSequence
        assert deepest_ids[0].PatientID in corpus.phi_markers


def test_sr_content_tree_has_phi_items(corpus: SampleCorpus, datasets: dict[Path, Any]) -> None:
    for f in _files(corpus, *DICOM_KINDS):
        ds = datasets[f.path]
        by_type = {item.ValueType: item for item in ds.ContentSequence}
        assert {"TEXT", "PNAME", "DATETIME", "DATE", "UIDREF", "CONTAINER"} <= set(by_type)
        assert ds.PatientID in by_type["TEXT"].TextValue
        assert phi_marker(f.patient_index, "0040a730") in str(by_type["PNAME"].PersonName)
        assert by_type["DATETIME"].DateTime.startswith(ds.StudyDate)
        assert ds.StudyInstanceUID == by_type["UIDREF"].UID
        nested = by_type["CONTAINER"].ContentSequence[0]
        assert str(ds.PatientName) in nested.TextValue
        assert str(nested.ContentSequence[0].PersonName).startswith(str(ds.PatientName))


# ---------------------------------------------------------------------------------------- pixels


def _ctp_rules(path: Path) -> list[str]:
    """Condition expressions of the RSNA CTP burned-in annotation library."""
    return re.findall(r"\{([^}]*)\}", path.read_text(encoding="latin-1"))


def _ctp_matches(condition: str, ds: Any) -> bool:
    """Evaluate one CTP condition (``*`` and, ``+`` or, parentheses) on a data set."""

    def attribute(name: str) -> str:
        found = int(name.strip("[]").replace(",", ""), 16) if name.startswith("[") else tag_for_keyword(name)
        assert found is not None, name
        tag = found
        where = ds.file_meta if tag >> 16 == 0x0002 else ds
        return _text(where[tag].value) if tag in where else ""

    def test(match: re.Match[str]) -> str:
        name, method, literal = match.groups()
        value = attribute(name)
        result = {
            "contains": literal in value,
            "containsIgnoreCase": literal.lower() in value.lower(),
            "equals": value == literal,
        }[method]
        return f" {result} "

    python = re.sub(r'(\[\w{4},\w{4}\]|\w+)\.(\w+)\s*\("([^"]*)"\)', test, condition)
    python = python.replace("*", " and ").replace("+", " or ")
    assert re.fullmatch(r"[\sa-zA-Z()]*", python), python
    return bool(eval(f"({python})"))  # only True/False/and/or/parentheses remain


def _reference_dir() -> Path:
    env = os.environ.get("DICOM_REFERENCE_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "reference" / "dicom"


def test_burned_in_files_match_exactly_the_intended_ctp_rules(corpus: SampleCorpus, datasets: dict[Path, Any]) -> None:
    script = _reference_dir() / BURNED_IN_SCRIPT
    if not script.is_file():
        pytest.skip(f"{script} not available")
    rules = _ctp_rules(script)
    assert len(rules) > 20
    assert _files(corpus, "burned_in_rule")
    assert _files(corpus, "burned_in_unhandled")
    for f in _files(corpus, *PIXEL_KINDS):
        ds = datasets[f.path]
        matched = [r for r in rules if _ctp_matches(r, ds)]
        if f.kind == "burned_in_rule":
            assert len(matched) == 1
            assert "PHILIPS" in matched[0]
            assert "DOSE" in matched[0]
            assert ds.BurnedInAnnotation == "YES"
        elif f.kind == "burned_in_unhandled":
            assert matched == []
            assert ds.BurnedInAnnotation == "YES"
        else:
            assert matched == []
            assert ds.BurnedInAnnotation == "NO"


def test_burned_in_text_sits_in_the_rule_region(corpus: SampleCorpus, datasets: dict[Path, Any]) -> None:
    x, y, width, height = BURNED_IN_REGION
    for f in _files(corpus, "burned_in_rule", "burned_in_unhandled"):
        ds = datasets[f.path]
        assert ds.Rows > y + height  # the region covers only part of the image
        pixels = ds.pixel_array
        assert pixels[y : y + height, x : x + width].mean() > 200
        assert pixels[y + height :].mean() < 150
        assert ds.PatientID.encode() in ds.PixelData
        assert phi_marker(f.patient_index, "7fe00010").encode() in ds.PixelData


def test_plain_images_are_12_bit_or_rgb(corpus: SampleCorpus, datasets: dict[Path, Any]) -> None:
    seen = set()
    for f in _files(corpus, "image"):
        ds = datasets[f.path]
        seen.add(ds.Modality)
        if ds.Modality in ("CT", "MR"):
            assert (ds.BitsAllocated, ds.BitsStored, ds.PhotometricInterpretation) == (16, 12, "MONOCHROME2")
            assert int(ds.pixel_array.max()) < 4096
        else:
            assert (ds.BitsAllocated, ds.SamplesPerPixel, ds.PhotometricInterpretation) == (8, 3, "RGB")
        assert (ds.Rows, ds.Columns) == (64, 64)
    assert seen == {"CT", "MR", "OT"}


def test_no_burned_in_when_disabled(tmp_path: Path) -> None:
    corpus = make_phi_corpus(tmp_path, patients=1, studies_per_patient=1, burned_in=False)
    assert {f.kind for f in corpus.files} == {"image", "sr"}


def test_burned_in_fraction(tmp_path: Path) -> None:
    corpus = make_phi_corpus(
        tmp_path, patients=2, studies_per_patient=1, instances_per_series=5, burned_in_fraction=0.5
    )
    burned = _files(corpus, "burned_in_rule", "burned_in_unhandled")
    assert len(burned) == 10
    assert len(_files(corpus, "burned_in_unhandled")) == 3  # every fourth of the chosen ones


# ------------------------------------------------------------------------------------- bad files


def test_not_dicom_fails_to_read(corpus: SampleCorpus) -> None:
    (f,) = _files(corpus, "not_dicom")
    assert f.path.suffix == ".dcm"
    with pytest.raises(InvalidDicomError):
        pydicom.dcmread(f.path)
    assert f.patient_id in f.path.read_text()


def test_truncated_fails_in_dcmread(corpus: SampleCorpus) -> None:
    (f,) = _files(corpus, "truncated")
    with pytest.raises(struct.error):
        pydicom.dcmread(f.path)
    assert f.path.read_bytes()[128:132] == b"DICM"


def test_bad_vr_fails_on_value_access(corpus: SampleCorpus) -> None:
    (f,) = _files(corpus, "bad_vr")
    ds = pydicom.dcmread(f.path)  # parsing is lazy: reading succeeds
    assert ds.SOPInstanceUID == f.sop_uid
    with pytest.raises(NotImplementedError, match="Unknown Value Representation 'QQ'"):
        _ = ds[0x00101040].value
    with pytest.raises(BytesLengthException):
        _ = ds[0x001021C0].value
    with pytest.raises((NotImplementedError, BytesLengthException)):
        _ = [elem.value for elem in ds.iterall()]


# ---------------------------------------------------------------------------------- determinism


def _snapshot(corpus: SampleCorpus) -> dict[str, bytes]:
    return {str(f.path.relative_to(corpus.root)): f.path.read_bytes() for f in corpus.files}


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    kwargs: dict[str, Any] = {"patients": 2, "studies_per_patient": 1, "bad_files": True, "seed": 7}
    first = make_phi_corpus(tmp_path / "a", **kwargs)
    second = make_phi_corpus(tmp_path / "b", **kwargs)
    assert _snapshot(first) == _snapshot(second)
    assert first.phi_markers == second.phi_markers
    rerun = make_phi_corpus(tmp_path / "a", **kwargs)
    assert _snapshot(rerun) == _snapshot(first)


def test_other_seed_other_corpus(tmp_path: Path) -> None:
    first = make_phi_corpus(tmp_path / "a", patients=1, studies_per_patient=1, seed=1)
    second = make_phi_corpus(tmp_path / "b", patients=1, studies_per_patient=1, seed=2)
    assert set(first.phi_markers) != set(second.phi_markers)


# --------------------------------------------------------------------------------------- markers


def test_phi_markers_are_distinctive_and_present(corpus: SampleCorpus) -> None:
    markers = corpus.phi_markers
    assert list(markers) == sorted(set(markers))
    assert min(len(m) for m in markers) >= 7
    assert UID_ROOT in markers
    everything = b"".join(f.path.read_bytes() for f in corpus.files)
    missing = [m for m in markers if m.encode() not in everything]
    assert missing == []
    for f in corpus.files:
        assert f.patient_id in markers
        if f.kind in DICOM_KINDS:
            assert {f.study_uid, f.series_uid, f.sop_uid} <= set(markers)


def test_phi_marker_scheme() -> None:
    assert phi_marker(0, "00100010") == "PHI_000_00100010"
    assert phi_marker(999, "0008002a") == "PHI_999_0008002A"


# ------------------------------------------------------------------------------------ arguments


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"patients": 0}, "patients=0 must be at least 1"),
        ({"patients": 1001}, "patients=1001 exceeds 1000"),
        ({"studies_per_patient": 0}, "studies_per_patient=0"),
        ({"series_per_study": 0}, "series_per_study=0"),
        ({"instances_per_series": 0}, "instances_per_series=0"),
        ({"rows": 4}, "rows=4 must be between 8 and 4096"),
        ({"columns": 5000}, "columns=5000"),
        ({"burned_in_fraction": 1.5}, "burned_in_fraction=1.5"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_phi_corpus(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())


def test_main_writes_a_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main([str(tmp_path / "out"), "--patients", "1", "--studies-per-patient", "1", "--bad-files"])
    assert code == 0
    out = capsys.readouterr().out
    # 1 patient x 1 study x 2 series x 3 images, 1 SR, 3 bad files (all named .dcm).
    assert "wrote 10 files" in out
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 10


def test_main_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main([str(tmp_path), "--patients", "0"])
    assert excinfo.value.code == 2
