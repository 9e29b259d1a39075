"""End to end on generated files with PHI in every Table E.1-1 attribute, nested sequences, private tags,
overlays, SR trees, burned-in pixels and file names: nothing identifying survives, and what must stay
consistent does."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path

import pydicom
import pytest

from privacy_core.deid.batch import BatchResult, deidentify_tree
from privacy_core.deid.profile import Profile
from privacy_core.deid.verify import verify_release
from privacy_core.keys import PseudonymKey
from privacy_core.samples import (
    SAFE_PRIVATE_ELEMENT,
    SAFE_PRIVATE_GROUP,
    SampleCorpus,
    make_phi_corpus,
)

OPTION_SETS = [
    (),
    ("retain_long_modified_dates",),
    ("retain_long_full_dates", "retain_patient_characteristics"),
    ("retain_device_identity", "retain_institution_identity"),
    ("retain_uids",),
    ("clean_descriptors", "clean_structured_content", "clean_graphics"),
    ("retain_safe_private",),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> SampleCorpus:
    return make_phi_corpus(tmp_path_factory.mktemp("phi") / "in", patients=3, bad_files=True, rows=32, columns=32)


_RELEASES: dict[tuple[str, ...], BatchResult] = {}


def release(corpus: SampleCorpus, key: PseudonymKey, options: tuple[str, ...], tmp: Path) -> BatchResult:
    """One release per option set, shared by the tests of this module."""
    if options not in _RELEASES:
        out = tmp / ("out-" + ("-".join(options) or "basic"))
        _RELEASES[options] = deidentify_tree(corpus.root, out, Profile.from_names(list(options)), key)
    return _RELEASES[options]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("releases")


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: "+".join(o) or "basic")
def test_verifier_finds_nothing_after_deid(
    corpus: SampleCorpus, key: PseudonymKey, workdir: Path, options: tuple[str, ...]
) -> None:
    result = release(corpus, key, options, workdir)
    report = verify_release(corpus.root, result.output, Profile.from_names(list(options)))
    assert report.needles > 1000  # the verifier really had something to look for
    assert report.hits == [], report.render()


def test_no_marker_of_the_corpus_survives_the_basic_profile(
    corpus: SampleCorpus, key: PseudonymKey, workdir: Path
) -> None:
    """A second, independent check: the generator's own list of PHI strings, searched byte by byte."""
    result = release(corpus, key, (), workdir)
    markers = [m.encode() for m in corpus.phi_markers if not m.isdigit()]
    for path in result.output.rglob("*"):
        rel = str(path.relative_to(result.output)).encode()
        blob = path.read_bytes() if path.is_file() else b""
        found = [m for m in markers if m in blob or m in rel]
        assert not found, (path.name, found[:5])


def test_bad_and_unhandled_files_are_quarantined_and_the_rest_released(
    corpus: SampleCorpus, key: PseudonymKey, workdir: Path
) -> None:
    result = release(corpus, key, (), workdir)
    by_kind = {f.path: f.kind for f in corpus.files}
    from privacy_core.deid.batch import list_inputs

    files = list_inputs(corpus.root)
    fates = {by_kind[files[r.index]]: r.category for r in result.quarantined}
    assert fates == {
        "not_dicom": "not-dicom",
        "truncated": "truncated",
        "bad_vr": "invalid-vr",
        "burned_in_unhandled": "burned-in-unhandled",
    }
    released_kinds = {by_kind[files[r.index]] for r in result.written}
    assert released_kinds == {"image", "sr", "burned_in_rule"}


def test_burned_in_rule_files_are_masked(corpus: SampleCorpus, key: PseudonymKey, workdir: Path) -> None:
    result = release(corpus, key, (), workdir)
    masked = [r for r in result.written if r.pixel_regions]
    assert masked
    for r in masked:
        ds = pydicom.dcmread(result.output / str(r.output))
        assert ds.BurnedInAnnotation == "NO"
        assert not ds.pixel_array[:135].any()
        assert "113101" in [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]


def _released(result: BatchResult) -> dict[int, pydicom.Dataset]:
    return {r.index: pydicom.dcmread(result.output / str(r.output)) for r in result.written}


def _references(ds: pydicom.Dataset) -> list[str]:
    return [
        item.ReferencedSOPInstanceUID
        for keyword in ("ReferencedImageSequence", "SourceImageSequence")
        for item in ds.get(keyword, [])
        if "ReferencedSOPInstanceUID" in item
    ]


def test_uid_references_stay_consistent_across_files(corpus: SampleCorpus, key: PseudonymKey, workdir: Path) -> None:
    from privacy_core.deid.batch import list_inputs
    from privacy_core.deid.pseudonym import Pseudonymizer

    pseudonyms = Pseudonymizer(key)
    files = list_inputs(corpus.root)
    released = _released(release(corpus, key, (), workdir))
    originals = {index: pydicom.dcmread(files[index]) for index in released}
    sop_uids = {ds.SOPInstanceUID for ds in released.values()}
    original_sops = {ds.SOPInstanceUID for ds in originals.values()}
    internal = 0
    for index, ds in released.items():
        before = _references(originals[index])
        assert _references(ds) == [pseudonyms.uid(uid) for uid in before]
        for uid in before:
            if uid in original_sops:  # a reference to another released file lands on its new UID
                internal += 1
                assert pseudonyms.uid(uid) in sop_uids
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert internal > 0
    series = defaultdict(set)
    for ds in released.values():
        series[ds.SeriesInstanceUID].add(ds.get("FrameOfReferenceUID"))
    assert all(len(frames) == 1 for frames in series.values())


def test_one_patient_one_date_shift(corpus: SampleCorpus, key: PseudonymKey, workdir: Path) -> None:
    result = release(corpus, key, ("retain_long_modified_dates",), workdir)
    from privacy_core.deid.batch import list_inputs

    files = list_inputs(corpus.root)
    shifts: dict[str, set[int]] = defaultdict(set)
    for index, ds in _released(result).items():
        original = pydicom.dcmread(files[index])
        for keyword in ("StudyDate", "SeriesDate", "ContentDate", "PatientBirthDate"):
            before, after = original.get(keyword), ds.get(keyword)
            if before and after:
                delta = dt.datetime.strptime(after, "%Y%m%d") - dt.datetime.strptime(before, "%Y%m%d")
                shifts[original.PatientID].add(delta.days)
    assert len(shifts) == 3
    assert all(len(days) == 1 for days in shifts.values()), shifts
    assert len({next(iter(d)) for d in shifts.values()}) == 3  # different patients, different shifts


def test_patient_pseudonym_is_the_same_in_every_file_of_a_patient(
    corpus: SampleCorpus, key: PseudonymKey, workdir: Path
) -> None:
    from privacy_core.deid.batch import list_inputs

    result = release(corpus, key, (), workdir)
    files = list_inputs(corpus.root)
    pseudonyms: dict[str, set[str]] = defaultdict(set)
    for index, ds in _released(result).items():
        pseudonyms[pydicom.dcmread(files[index]).PatientID].add(ds.PatientID)
    assert all(len(p) == 1 for p in pseudonyms.values())
    assert len({next(iter(p)) for p in pseudonyms.values()}) == len(pseudonyms)


def test_options_change_exactly_what_they_should(corpus: SampleCorpus, key: PseudonymKey, workdir: Path) -> None:
    basic = _released(release(corpus, key, (), workdir))
    kept = _released(release(corpus, key, ("retain_long_full_dates", "retain_patient_characteristics"), workdir))
    index = next(i for i, ds in basic.items() if ds.Modality in ("CT", "MR"))
    before, after = basic[index], kept[index]
    assert "PatientAge" not in before
    assert after.PatientAge
    assert before["StudyDate"].is_empty
    assert after.StudyDate
    assert before.SOPInstanceUID == after.SOPInstanceUID  # UIDs do not depend on unrelated options
    uids = _released(release(corpus, key, ("retain_uids",), workdir))
    from privacy_core.deid.batch import list_inputs

    original = pydicom.dcmread(list_inputs(corpus.root)[index])
    assert uids[index].SOPInstanceUID == original.SOPInstanceUID


def test_safe_private_option_keeps_only_the_safe_element(
    corpus: SampleCorpus, key: PseudonymKey, workdir: Path
) -> None:
    for options, expect_safe in (((), False), (("retain_safe_private",), True)):
        for ds in _released(release(corpus, key, options, workdir)).values():
            private = [e for e in ds if e.tag.is_private and e.tag.element >= 0x1000]
            if expect_safe:
                assert [(e.tag.group, e.tag.element & 0xFF) for e in private] == [
                    (SAFE_PRIVATE_GROUP, SAFE_PRIVATE_ELEMENT)
                ]
            else:
                assert private == []
