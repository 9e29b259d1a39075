"""The engine on hand-built datasets: each Table E.1-1 behaviour, option and stamp, one test each."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from privacy_core.deid.engine import DeidEngine
from privacy_core.deid.profile import Profile
from privacy_core.deid.pseudonym import Pseudonymizer
from privacy_core.errors import QuarantineError
from privacy_core.keys import PseudonymKey

CT = UID("1.2.840.10008.5.1.4.1.1.2")


def make_ct(patient_id: str = "MRN-4711", sop: str | None = None, **extra: object) -> Dataset:
    """A small CT image with identifying attributes, a reference sequence and pixel data."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = CT
    ds.SOPInstanceUID = UID(sop) if sop else generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.MediaStorageSOPClassUID = CT
    ds.file_meta.SourceApplicationEntityTitle = "HOSPITAL_PACS"
    ds.PatientName = "DOE^JANE^Q"
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700405"
    ds.PatientSex = "F"
    ds.PatientAge = "054Y"
    ds.AccessionNumber = "ACC998877"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.2.1125.1"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.2.1125.1.1"
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.2.1125.1.9"
    ds.StudyDate = "20240301"
    ds.ContentDate = "20240302"
    ds.AcquisitionDateTime = "20240301101500.25"
    ds.StudyTime = "101500"
    ds.StudyDescription = "CT chest for DOE JANE 4711234"
    ds.InstitutionName = "St Example Hospital"
    ds.ReferringPhysicianName = "HOUSE^GREGORY"
    ds.Modality = "CT"
    ds.Manufacturer = "ACME"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ref = Dataset()
    ref.ReferencedSOPClassUID = CT
    ref.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.2.1125.1.1.7"
    ds.ReferencedImageSequence = Sequence([ref])
    ds.Rows, ds.Columns = 16, 16
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.arange(256, dtype=np.uint16).tobytes()
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    return ds


@pytest.fixture
def engine(key: PseudonymKey) -> DeidEngine:
    return DeidEngine(Profile(), key)


def deid(ds: Dataset, key: PseudonymKey, *options: str) -> Dataset:
    DeidEngine(Profile.from_names(list(options)), key).deidentify(ds)
    return ds


def test_uids_map_consistently_including_references_and_file_meta(key: PseudonymKey) -> None:
    referenced = make_ct(sop="1.2.826.0.1.3680043.2.1125.1.1.7")
    referencing = make_ct()
    deid(referenced, key)
    deid(referencing, key)
    assert referencing.ReferencedImageSequence[0].ReferencedSOPInstanceUID == referenced.SOPInstanceUID
    assert referencing.StudyInstanceUID == referenced.StudyInstanceUID.strip()
    assert referencing.file_meta.MediaStorageSOPInstanceUID == referencing.SOPInstanceUID
    assert referencing.SOPInstanceUID.startswith("2.25.")
    assert referencing.SOPClassUID == CT  # class UIDs are not identifying
    assert referencing.ReferencedImageSequence[0].ReferencedSOPClassUID == CT


def test_same_secret_same_pseudonyms_other_secret_different(key: PseudonymKey) -> None:
    other = PseudonymKey.from_text("another-secret-0123456789abcdef")
    a, b, c = (make_ct(sop="1.2.3.4"), make_ct(sop="1.2.3.4"), make_ct(sop="1.2.3.4"))
    deid(a, key), deid(b, key), deid(c, other)
    assert a.SOPInstanceUID == b.SOPInstanceUID != c.SOPInstanceUID
    assert a.PatientID == b.PatientID != c.PatientID
    assert a.AccessionNumber == b.AccessionNumber != c.AccessionNumber


def test_patient_identifiers_become_keyed_pseudonyms(key: PseudonymKey) -> None:
    ds = deid(make_ct(), key)
    expected = Pseudonymizer(key).identifier("patient", "MRN-4711")
    assert ds.PatientID == expected
    assert str(ds.PatientName) == expected  # name and ID agree, so viewers stay usable
    assert "998877" not in ds.AccessionNumber and len(ds.AccessionNumber) <= 16


def test_basic_profile_removes_dates_and_identifying_text(key: PseudonymKey) -> None:
    ds = deid(make_ct(), key)
    assert ds["StudyDate"].is_empty  # X/Z, Type 2 in the CT IOD: zero length
    assert ds["PatientBirthDate"].is_empty
    assert "PatientAge" not in ds and "StudyDescription" not in ds
    assert ds.InstitutionName == "ANONYMIZED"  # X/Z/D in a standard IOD: a dummy keeps it valid
    assert ds["ReferringPhysicianName"].is_empty
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"


def test_modified_dates_shift_every_date_of_a_patient_by_one_amount(key: PseudonymKey) -> None:
    first = deid(make_ct(), key, "retain_long_modified_dates")
    second = deid(make_ct(StudyDate="20230115", ContentDate="20230116"), key, "retain_long_modified_dates")
    shift = Pseudonymizer(key).shift_days("MRN-4711")
    from datetime import date, timedelta

    def moved(original: str) -> str:
        d = date(int(original[:4]), int(original[4:6]), int(original[6:]))
        return (d + timedelta(days=shift)).strftime("%Y%m%d")

    assert first.StudyDate == moved("20240301")
    assert first.ContentDate == moved("20240302")
    assert second.StudyDate == moved("20230115")
    assert first.AcquisitionDateTime == moved("20240301") + "101500.25"
    assert first.StudyTime == "101500"  # times stay: the shift is whole days
    assert first.LongitudinalTemporalInformationModified == "MODIFIED"
    other = deid(make_ct(patient_id="MRN-0001"), key, "retain_long_modified_dates")
    assert other.StudyDate != first.StudyDate  # another patient, another shift (with this key)


def test_full_dates_option_keeps_dates(key: PseudonymKey) -> None:
    ds = deid(make_ct(), key, "retain_long_full_dates")
    assert ds.StudyDate == "20240301" and ds.LongitudinalTemporalInformationModified == "UNMODIFIED"


def test_patient_characteristics_option(key: PseudonymKey) -> None:
    assert deid(make_ct(), key, "retain_patient_characteristics").PatientAge == "054Y"
    assert deid(make_ct(), key)["PatientSex"].is_empty


def test_institution_and_uid_options(key: PseudonymKey) -> None:
    ds = deid(make_ct(sop="1.2.3.4.5"), key, "retain_institution_identity", "retain_uids")
    assert ds.InstitutionName == "St Example Hospital"
    assert ds.SOPInstanceUID == "1.2.3.4.5"


def test_clean_descriptors_scrubs_names_ids_and_dates(key: PseudonymKey) -> None:
    ds = deid(make_ct(), key, "clean_descriptors")
    text = ds.StudyDescription
    assert text.startswith("CT chest for")
    for leaked in ("DOE", "JANE", "4711234"):
        assert leaked not in text


def test_private_tags_removed_by_default_creators_too(key: PseudonymKey) -> None:
    ds = make_ct()
    block = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
    block.add_new(0x23, "DS", "1.5")  # CTP: safe (K)
    block.add_new(0x80, "LO", "DOE^JANE")
    other = ds.private_block(0x0029, "ACME PHI 1.0", create=True)
    other.add_new(0x10, "LO", "MRN-4711")
    deid(ds, key)
    assert not [elem for elem in ds if elem.tag.is_private]


def test_retain_safe_private_keeps_only_the_safe_list(key: PseudonymKey) -> None:
    ds = make_ct()
    block = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
    block.add_new(0x23, "DS", "1.5")
    block.add_new(0x80, "LO", "DOE^JANE")
    other = ds.private_block(0x0029, "ACME PHI 1.0", create=True)
    other.add_new(0x10, "LO", "MRN-4711")
    deid(ds, key, "retain_safe_private")
    private = {int(elem.tag): elem.value for elem in ds if elem.tag.is_private}
    assert private == {0x00190010: "GEMS_ACQU_01", 0x00191023: "1.5"}


def test_overlays_and_curves_removed_whole_unless_clean_graphics(key: PseudonymKey) -> None:
    def with_graphics() -> Dataset:
        ds = make_ct()
        ds.add_new(0x60000010, "US", 16)
        ds.add_new(0x60000011, "US", 16)
        ds.add_new(0x60003000, "OW", b"\xff" * 32)
        ds.add_new(0x60004000, "LT", "drawn by DOE JANE")
        ds.add_new(0x50002500, "LO", "curve of DOE")
        return ds

    plain = deid(with_graphics(), key)
    assert not [e for e in plain if e.tag.group in (0x6000, 0x5000)]
    kept = deid(with_graphics(), key, "clean_graphics")
    assert kept[0x60003000].value == b"\xff" * 32
    assert "DOE" not in kept[0x60004000].value and "DOE" not in kept[0x50002500].value


def _sr_content(person: str, text: str) -> Sequence:
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = "121008", "DCM", "Person Observer Name"
    name = Dataset()
    name.RelationshipType, name.ValueType = "HAS OBS CONTEXT", "PNAME"
    name.ConceptNameCodeSequence = Sequence([concept])
    name.PersonName = person
    note = Dataset()
    note.RelationshipType, note.ValueType = "CONTAINS", "TEXT"
    note.TextValue = text
    deeper = Dataset()
    deeper.ValueType = "CONTAINER"
    deeper.ContentSequence = Sequence([note])
    return Sequence([name, deeper])


def test_structured_content_basic_replaces_free_text_at_any_depth(key: PseudonymKey) -> None:
    ds = make_ct()
    ds.ContentSequence = _sr_content("HOUSE^GREGORY", "Patient DOE reports pain")
    deid(ds, key)
    name, deeper = ds.ContentSequence
    assert name.PersonName == "ANONYMIZED"
    assert deeper.ContentSequence[0].TextValue == "ANONYMIZED"
    assert name.ConceptNameCodeSequence[0].CodeMeaning == "Person Observer Name"  # codes survive


def test_clean_structured_content_keeps_text_without_identifiers(key: PseudonymKey) -> None:
    ds = make_ct()
    ds.ContentSequence = _sr_content("HOUSE^GREGORY", "Patient DOE reports pain since 2024-02-01")
    deid(ds, key, "clean_structured_content")
    text = ds.ContentSequence[1].ContentSequence[0].TextValue
    assert "reports pain" in text and "DOE" not in text and "2024" not in text


def test_group_lengths_and_device_meta_removed(key: PseudonymKey) -> None:
    ds = make_ct()
    ds.add_new(0x00080000, "UL", 100)
    deid(ds, key)
    assert 0x00080000 not in ds
    assert "SourceApplicationEntityTitle" not in ds.file_meta


def test_stamps_what_was_done(key: PseudonymKey) -> None:
    ds = deid(make_ct(), key, "retain_uids")
    assert ds.PatientIdentityRemoved == "YES"
    codes = [(item.CodeValue, item.CodingSchemeDesignator) for item in ds.DeidentificationMethodCodeSequence]
    assert codes == [("113100", "DCM"), ("113110", "DCM")]
    assert any("Basic Application Confidentiality Profile" in m for m in ds.DeidentificationMethod)


def test_preamble_is_never_passed_on(key: PseudonymKey) -> None:
    ds = make_ct()
    ds.preamble = b"II*\x00" + b"DOE JANE" + b"\x00" * 116
    deid(ds, key)
    assert ds.preamble == b"\x00" * 128


def test_burned_in_without_a_rule_is_quarantined(key: PseudonymKey) -> None:
    with pytest.raises(QuarantineError) as caught:
        deid(make_ct(BurnedInAnnotation="YES"), key)
    assert caught.value.category == "burned-in-unhandled"
    released = make_ct(BurnedInAnnotation="YES")
    DeidEngine(Profile(quarantine_unhandled_burned_in=False), key).deidentify(released)
    assert released.BurnedInAnnotation == "YES"


def test_burned_in_rule_blanks_region_and_records_clean_pixel_option(key: PseudonymKey) -> None:
    ds = make_ct(Manufacturer="PHILIPS", ImageType=["DERIVED", "SECONDARY", "DOSE"], BurnedInAnnotation="YES")
    outcome = DeidEngine(Profile(), key).deidentify(ds)
    assert outcome.pixel_regions >= 1
    assert not ds.pixel_array.any()  # PHILIPS dose rule covers (0,0,512,135): all of a 16x16 image
    assert ds.BurnedInAnnotation == "NO"
    assert "113101" in outcome.method_codes


def test_value_breaking_its_vr_is_quarantined_unless_lenient(key: PseudonymKey) -> None:
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    def bad() -> Dataset:
        ds = make_ct()
        ds[0x00200013] = RawDataElement(Tag(0x00200013), "IS", 2, b"1A", 0, False, True)  # InstanceNumber
        return ds

    with pytest.raises(QuarantineError) as caught:
        DeidEngine(Profile(), key).deidentify(bad())
    assert caught.value.category == "invalid-value"
    DeidEngine(Profile(), key, strict_values=False).deidentify(bad())


def test_missing_sop_instance_uid_is_quarantined(engine: DeidEngine) -> None:
    ds = make_ct()
    del ds.SOPInstanceUID
    with pytest.raises(QuarantineError, match="missing-sop-instance-uid"):
        engine.deidentify(ds)
