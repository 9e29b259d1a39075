"""Synthetic DICOM corpus full of PHI, built to be as hard as possible for a de-identifier.

The demo, the tests and the benchmarks all run on it. Every attribute of DICOM PS3.15 Table E.1-1 carries
a value that identifies its patient, and so do private blocks, overlays, curves, SR content trees nested
three deep, burned-in pixel text, file names and folder names. Core identifiers (names, IDs, dates, UIDs)
stay consistent per patient, study and series, so a de-identifier's consistency can be checked as well as
its removal. Everything comes from ``seed``: rerunning with the same arguments writes the same bytes.

Marker scheme: a text value for Table E.1-1 tag ``tttttttt`` of patient ``i`` holds
``PHI_<iii>_<TTTTTTTT>`` (three-digit patient index, upper-case tag; 16 characters, so it fits SH, AE and
CS). Nested values add a suffix (``-L1``, ``^L2``, ...). :func:`phi_marker` builds it.

Command line: ``python -m privacy_core.samples OUT --patients 20 --bad-files`` (see :func:`main`).
"""

from __future__ import annotations

import argparse
import os
import random
import struct
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from pydicom.dataset import Dataset

__all__ = [
    "BURNED_IN_REGION",
    "BURNED_IN_RULE",
    "FILE_META_TABLE_TAGS",
    "KINDS",
    "MAX_PATIENTS",
    "PRIVATE_PHI_CREATOR",
    "PRIVATE_PHI_GROUP",
    "SAFE_PRIVATE_CREATOR",
    "SAFE_PRIVATE_ELEMENT",
    "SAFE_PRIVATE_GROUP",
    "SKIPPED_TABLE_TAGS",
    "UID_ROOT",
    "UNSAFE_PRIVATE_ELEMENT",
    "SampleCorpus",
    "SampleFile",
    "main",
    "make_phi_corpus",
    "phi_marker",
    "table_e1_1_tags",
    "unknown_table_tags",
]

#: Root of every UID in the corpus. Any UID under it in de-identified output is an original UID that leaked.
UID_ROOT = "1.2.826.0.1.3680043.10.999."

#: Markers carry a three-digit patient index, which keeps them at 16 characters (the SH/AE/CS limit).
MAX_PATIENTS = 1000

#: File kinds, in the order :class:`SampleFile` documents them.
KINDS: tuple[str, ...] = (
    "image",
    "sr",
    "burned_in_rule",
    "burned_in_unhandled",
    "not_dicom",
    "truncated",
    "bad_vr",
)

#: Table E.1-1 tags that no data set can hold, with the reason. Every other concrete tag is in every file.
SKIPPED_TABLE_TAGS: dict[str, str] = {
    # Command group 0000 belongs to DIMSE messages; pydicom refuses to write it into a data set.
    "00001000": "command group (0000,eeee): DIMSE messages only",
    "00001001": "command group (0000,eeee): DIMSE messages only",
}

#: Table E.1-1 tags that live in the file meta information (group 0002), not in the data set.
FILE_META_TABLE_TAGS: frozenset[str] = frozenset({"00020003"})

#: Private block full of PHI (removed by any de-identifier that does not keep private tags).
PRIVATE_PHI_CREATOR = "ACME PHI 1.0"
PRIVATE_PHI_GROUP = 0x0009

#: Private block with one element that RSNA CTP marks safe to keep (``SAFE_PRIVATE`` in
#: ``privacy_core.deid._safe_private``: GE "Cell spacing", DS) next to one that is not safe and holds PHI.
SAFE_PRIVATE_CREATOR = "GEMS_ACQU_01"
SAFE_PRIVATE_GROUP = 0x0019
SAFE_PRIVATE_ELEMENT = 0x04
UNSAFE_PRIVATE_ELEMENT = 0x01

#: RSNA CTP burned-in annotation rule that the ``burned_in_rule`` files satisfy, and its region
#: ``(x, y, width, height)``. ``burned_in_unhandled`` files match no rule in the library.
BURNED_IN_RULE = '{ Manufacturer.containsIgnoreCase("PHILIPS") * ImageType.containsIgnoreCase("DOSE") }'
BURNED_IN_REGION: tuple[int, int, int, int] = (0, 0, 512, 135)

# Burned-in images are big enough that the rule's 135 rows cover only part of them.
_BURNED_IN_MIN_ROWS = 160
_BURNED_IN_MIN_COLUMNS = 256

_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
_SERIES_TYPES: tuple[tuple[str, str], ...] = (
    ("CT", _CT_IMAGE_STORAGE),
    ("MR", _MR_IMAGE_STORAGE),
    ("OT", _SECONDARY_CAPTURE),
)
_SR_SERIES_NUMBER = 99

_SYLLABLES = (
    "vor", "lan", "dix", "qua", "zel", "mir", "tho", "kas", "bre", "nul", "pex", "jor",
    "wyn", "gal", "sor", "fen", "trux", "bel", "oxa", "riv",
)  # fmt: skip

# Nested-item attributes (all themselves in Table E.1-1).
_PERSON_NAME = 0x0040A123
_DATE = 0x0040A121
_DATETIME = 0x0040A120
_UID = 0x0040A124
_VERIFYING_ORGANIZATION = 0x0040A027
_INSTITUTION_CODE_SEQUENCE = 0x00080082
_CONTENT_SEQUENCE = 0x0040A730


def phi_marker(patient_index: int, tag: str) -> str:
    """Return the PHI marker that patient ``patient_index`` carries in attribute ``tag``.

    :param patient_index: 0-based patient index, below :data:`MAX_PATIENTS`.
    :param tag: 8 hex digits, e.g. ``"00100010"``.

    >>> phi_marker(7, "0008002a")
    'PHI_007_0008002A'
    """
    return f"{_marker_prefix(patient_index)}{tag.upper()}"


def _marker_prefix(patient_index: int) -> str:
    """Prefix shared by all markers of one patient (one entry in ``phi_markers`` covers them all)."""
    return f"PHI_{patient_index:03d}_"


def table_e1_1_tags() -> tuple[str, ...]:
    """Return the concrete tags of Table E.1-1 (no ``x`` repeating groups, no ``private`` row).

    >>> "00100010" in table_e1_1_tags()
    True
    """
    from privacy_core.deid._table_e1_1 import TABLE_E1_1

    return tuple(row[0] for row in TABLE_E1_1 if "x" not in row[0] and row[0] != "private")


def unknown_table_tags() -> tuple[str, ...]:
    """Return the Table E.1-1 tags missing from pydicom's dictionary; the corpus writes them as LO."""
    from pydicom.datadict import dictionary_has_tag

    return tuple(tag for tag in table_e1_1_tags() if not dictionary_has_tag(int(tag, 16)))


@dataclass(frozen=True)
class SampleFile:
    """One file of the corpus and what it stands for.

    :param path: where it was written.
    :param patient_index: 0-based patient the file belongs to.
    :param patient_id: that patient's original PatientID.
    :param study_uid: original StudyInstanceUID (empty for ``not_dicom``).
    :param series_uid: original SeriesInstanceUID (empty for ``not_dicom``).
    :param sop_uid: original SOPInstanceUID (empty for ``not_dicom``).
    :param kind: one of :data:`KINDS`.
    """

    path: Path
    patient_index: int
    patient_id: str
    study_uid: str
    series_uid: str
    sop_uid: str
    kind: str


@dataclass(frozen=True)
class SampleCorpus:
    """A written corpus: its root, its files and every string that must not survive de-identification.

    :param root: the output folder.
    :param files: every file, in generation order.
    :param phi_markers: sorted, distinct strings a leak scanner must not find in de-identified output:
        the per-patient marker prefixes ``PHI_<iii>_``, patient names and name parts, patient IDs,
        accession numbers, original dates (``YYYYMMDD``), every original UID and :data:`UID_ROOT`.
    """

    root: Path
    files: tuple[SampleFile, ...]
    phi_markers: tuple[str, ...]

    def by_kind(self, kind: str) -> tuple[SampleFile, ...]:
        """Return the files of one kind (see :data:`KINDS`)."""
        return tuple(f for f in self.files if f.kind == kind)


# --------------------------------------------------------------------------------------------- plan


@dataclass
class _Patient:
    """Per-patient identity; all values are original PHI."""

    index: int
    family: str
    given: str
    patient_id: str
    other_patient_id: str
    birth_date: str
    event_date: str
    age: str
    uid_tail: int
    uids: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """PatientName in DICOM PN form."""
        return f"{self.family}^{self.given}"

    @property
    def folder(self) -> str:
        """Folder name; it leaks the name and the ID on purpose."""
        return _safe_name(f"{self.family}_{self.given}_{self.patient_id}")

    def marker(self, tag: str) -> str:
        """:func:`phi_marker` for this patient."""
        return phi_marker(self.index, tag)

    def uid(self, *parts: int) -> str:
        """A UID under :data:`UID_ROOT` for this patient, remembered for ``phi_markers``."""
        value = UID_ROOT + ".".join(str(p) for p in (*parts, self.uid_tail))
        if len(value) > 64:
            raise ValueError(f"UID {value!r} is longer than 64 characters; shorten its parts")
        self.uids.append(value)
        return value

    def free_text(self, tag: str) -> str:
        """Free text as a clinician would type it: the marker, name, ID and birth date."""
        return f"{self.marker(tag)} re {self.family}, {self.given} (MRN {self.patient_id}) DOB {self.birth_date}"


@dataclass
class _Instance:
    """One planned file."""

    kind: str
    number: int
    sop_uid: str
    path: Path


@dataclass
class _Series:
    """One planned series."""

    number: int
    modality: str
    sop_class: str
    uid: str
    frame_of_reference_uid: str
    time: str
    instances: list[_Instance] = field(default_factory=list)


@dataclass
class _Study:
    """One planned study."""

    index: int
    uid: str
    date: str
    time: str
    accession: str
    age: str
    folder: Path
    series: list[_Series] = field(default_factory=list)


def _safe_name(text: str) -> str:
    """Keep letters, digits, ``-``, ``_`` and ``.`` so the name is valid on every file system."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _dicom_date(day: date) -> str:
    """``YYYYMMDD``."""
    return day.strftime("%Y%m%d")


def _pseudo_word(rng: random.Random, syllables: int) -> str:
    """A made-up, capitalised word: distinctive, so it never occurs by chance in clean output."""
    return "".join(rng.choice(_SYLLABLES) for _ in range(syllables)).capitalize()


def _age(birth: date, on: date) -> str:
    """Age string (AS) on a given day."""
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return f"{years:03d}Y"


# ------------------------------------------------------------------------------------ value builders


def _table_vr_vm(tag: int) -> tuple[str, str]:
    """VR and VM from pydicom's dictionary, or ``("LO", "1")`` for a tag it does not know."""
    from pydicom.datadict import dictionary_has_tag, dictionary_VM, dictionary_VR

    if not dictionary_has_tag(tag):
        return "LO", "1"
    vr = str(dictionary_VR(tag)).split(" or ")[0]
    return vr, str(dictionary_VM(tag))


def _multiplicity(vm: str) -> int:
    """How many values to write: exactly ``vm`` if fixed, two if it may repeat (exercise backslashes)."""
    return int(vm) if vm.isdigit() else 2


def _binary(text: str, multiple: int = 2) -> bytes:
    """ASCII ``text`` as bytes, zero-padded to a multiple of ``multiple``."""
    data = text.encode("ascii")
    return data + b"\0" * (-len(data) % multiple)


_DS_SPECIAL: dict[str, str] = {"00101020": "1.72", "00101030": "71.5"}


def _single_value(patient: _Patient, tag: str, vr: str, k: int) -> Any:
    """The ``k``-th value of ``tag`` for ``patient``: valid for ``vr``, marked where the VR allows text."""
    marker = patient.marker(tag)
    if vr in ("AE", "SH", "CS"):
        # A later value is one character shorter: with 16 + 1 + 16 characters pydicom would pad the last
        # value to 17 and then reject it as too long when reading it back.
        return marker if k == 0 else marker[:-1]
    if vr == "LO":
        return marker if k == 0 else f"{marker}-{k + 1}"
    if vr == "PN":
        return f"{marker}^{patient.given}" if k == 0 else f"{marker}^{patient.given}{k + 1}"
    if vr in ("LT", "ST", "UT", "UC"):
        return patient.free_text(tag)
    if vr == "DA":
        return patient.event_date
    if vr == "TM":
        return "101530.123456" if k == 0 else "111500"
    if vr == "DT":
        return f"{patient.event_date}101530.123456+0100"
    if vr == "UI":
        return patient.uid(5, patient.index, int(tag, 16), k)
    if vr == "AS":
        return patient.age
    if vr == "DS":
        return _DS_SPECIAL.get(tag, f"{12 + patient.index % 50}.{k + 5}")
    if vr == "IS":
        return str(patient.index + 1)
    if vr in ("US", "UL", "SS", "SL", "SV", "UV"):
        return patient.index % 4 + 1
    if vr in ("FL", "FD"):
        return float(patient.index) + 0.5
    if vr == "UR":
        return f"https://ehr.example.org/patients/{patient.patient_id}/{marker}"
    # OB, OW, OF, OD, OL, OV, UN: bytes that contain the marker and the name.
    return _binary(f"{marker} {patient.name} {patient.patient_id}", 8)


def _table_value(patient: _Patient, tag: str, vr: str, vm: str) -> Any:
    """Full value of a Table E.1-1 attribute for ``patient`` (a list when VM > 1)."""
    if vr == "SQ":
        return [_nested_item(patient, tag, depth=1)]
    count = _multiplicity(vm)
    values = [_single_value(patient, tag, vr, k) for k in range(count)]
    if vr in ("OB", "OW", "OF", "OD", "OL", "OV", "UN", "LT", "ST", "UT", "UR"):
        return values[0]  # these VRs never hold more than one value
    return values[0] if count == 1 else values


def _put(ds: Dataset, tag: int, vr: str, value: Any) -> None:
    """Add a new element (never mutate an existing one: template elements are shared between files)."""
    from pydicom.dataelem import DataElement

    ds.add(DataElement(tag, vr, value))


def _item(*elements: tuple[int, str, Any]) -> Dataset:
    """A sequence item from ``(tag, vr, value)`` triples."""
    from pydicom.dataset import Dataset

    item = Dataset()
    for tag, vr, value in elements:
        _put(item, tag, vr, value)
    return item


def _nested_item(patient: _Patient, tag: str, depth: int) -> Dataset:
    """Item with PN, DA, UI, LO and, below it, one more level of PHI (depth 2 from the top sequence)."""
    marker = patient.marker(tag)
    level2 = _item(
        (0x00080100, "SH", marker),
        (0x00080102, "SH", "99PHI"),
        (0x00080104, "LO", f"{marker}-L{depth + 1} {patient.family}"),
        (_PERSON_NAME, "PN", f"{marker}^L{depth + 1}"),
    )
    return _item(
        (_INSTITUTION_CODE_SEQUENCE, "SQ", [level2]),
        (_VERIFYING_ORGANIZATION, "LO", f"{marker}-L{depth}"),
        (_DATE, "DA", patient.event_date),
        (_PERSON_NAME, "PN", f"{marker}^L{depth}"),
        (_UID, "UI", patient.uid(6, patient.index, int(tag, 16))),
    )


def _code(value: str, meaning: str) -> list[Dataset]:
    """A one-item code sequence (DCM scheme)."""
    return [_item((0x00080100, "SH", value), (0x00080102, "SH", "DCM"), (0x00080104, "LO", meaning))]


def _content_tree(patient: _Patient, study: _Study) -> list[Dataset]:
    """SR content: TEXT, PNAME, DATETIME, DATE, UIDREF and a CONTAINER whose TEXT has PNAME below it."""
    marker = patient.marker("0040a730")
    deepest = _item(
        (0x0040A010, "CS", "HAS OBS CONTEXT"),
        (0x0040A040, "CS", "PNAME"),
        (0x0040A043, "SQ", _code("121008", "Person Observer Name")),
        (_PERSON_NAME, "PN", f"{patient.family}^{patient.given}^L3"),
    )
    nested_text = _item(
        (0x0040A010, "CS", "CONTAINS"),
        (0x0040A040, "CS", "TEXT"),
        (0x0040A043, "SQ", _code("121071", "Finding")),
        (0x0040A160, "UT", f"{marker}-L2 {patient.name} MRN {patient.patient_id} seen {study.date}"),
        (_CONTENT_SEQUENCE, "SQ", [deepest]),
    )
    return [
        _item(
            (0x0040A010, "CS", "CONTAINS"),
            (0x0040A040, "CS", "TEXT"),
            (0x0040A043, "SQ", _code("121071", "Finding")),
            (0x0040A160, "UT", patient.free_text("0040a730")),
        ),
        _item(
            (0x0040A010, "CS", "HAS OBS CONTEXT"),
            (0x0040A040, "CS", "PNAME"),
            (0x0040A043, "SQ", _code("121008", "Person Observer Name")),
            (_PERSON_NAME, "PN", f"{marker}^Observer"),
        ),
        _item(
            (0x0040A010, "CS", "HAS OBS CONTEXT"),
            (0x0040A040, "CS", "DATETIME"),
            (0x0040A043, "SQ", _code("111526", "DateTime Started")),
            (_DATETIME, "DT", f"{study.date}{study.time}"),
        ),
        _item(
            (0x0040A010, "CS", "HAS OBS CONTEXT"),
            (0x0040A040, "CS", "DATE"),
            (0x0040A043, "SQ", _code("111060", "Study Date")),
            (_DATE, "DA", study.date),
        ),
        _item(
            (0x0040A010, "CS", "HAS OBS CONTEXT"),
            (0x0040A040, "CS", "UIDREF"),
            (0x0040A043, "SQ", _code("110180", "Study Instance UID")),
            (_UID, "UI", study.uid),
        ),
        _item(
            (0x0040A010, "CS", "CONTAINS"),
            (0x0040A040, "CS", "CONTAINER"),
            (0x0040A043, "SQ", _code("111028", "Image Library")),
            (0x0040A050, "CS", "SEPARATE"),
            (_CONTENT_SEQUENCE, "SQ", [nested_text]),
        ),
    ]


def _original_attributes(patient: _Patient, study: _Study) -> list[Dataset]:
    """OriginalAttributesSequence keeping the original name and IDs three levels down, as real PACS do."""
    marker = patient.marker("04000561")
    other_ids = _item(
        (0x00100020, "LO", patient.other_patient_id),
        (0x00100021, "LO", f"{marker}-ISSUER"),
        (0x00100022, "CS", "TEXT"),
    )
    modified = _item(
        (0x00080050, "SH", study.accession),
        (0x00100010, "PN", patient.name),
        (0x00100020, "LO", patient.patient_id),
        (0x00100030, "DA", patient.birth_date),
        (0x00101002, "SQ", [other_ids]),
    )
    return [
        _item(
            (0x04000550, "SQ", [modified]),
            (0x04000562, "DT", f"{patient.event_date}120000"),
            (0x04000563, "LO", f"{marker}-SYSTEM"),
            (0x04000564, "LO", f"{marker}-SOURCE"),
            (0x04000565, "CS", "COERCE"),
        )
    ]


# --------------------------------------------------------------------------------------- templates

# Table E.1-1 attributes whose value comes from the study, series or instance, not the patient template.
_PER_FILE_TABLE_TAGS = frozenset(
    {
        "00020003", "00041511", "00080012", "00080013", "00080018", "00080020", "00080021", "00080022",
        "00080023", "0008002a", "00080030", "00080031", "00080032", "00080033", "00080050", "00081110",
        "00081140", "00081155", "00082112", "00100010", "00100020", "00100030", "00101010", "0020000d",
        "0020000e", "00200052", "30060024", "00640003", "0040a730", "04000561",
    }
)  # fmt: skip


def _patient_template(patient: _Patient) -> Dataset:
    """Everything that is the same in all of one patient's files: Table E.1-1, private tags, curves."""
    from pydicom.dataset import Dataset

    ds = Dataset()
    _put(ds, 0x00080005, "CS", "ISO_IR 100")
    for tag in table_e1_1_tags():
        if tag in SKIPPED_TABLE_TAGS or tag in _PER_FILE_TABLE_TAGS:
            continue
        vr, vm = _table_vr_vm(int(tag, 16))
        _put(ds, int(tag, 16), vr, _table_value(patient, tag, vr, vm))
    _add_private_blocks(ds, patient)
    _add_curve(ds, patient)
    return ds


def _add_private_blocks(ds: Dataset, patient: _Patient) -> None:
    """An ACME block full of PHI (with a three-level sequence) and a GE block with one safe element."""
    block = ds.private_block(PRIVATE_PHI_GROUP, PRIVATE_PHI_CREATOR, create=True)
    tag = f"{PRIVATE_PHI_GROUP:04x}10"
    deep = _item((0x00100020, "LO", patient.patient_id), (_PERSON_NAME, "PN", patient.name))
    middle = _item(
        (_VERIFYING_ORGANIZATION, "LO", f"{patient.marker(tag + '05')}-L2"), (_CONTENT_SEQUENCE, "SQ", [deep])
    )
    top = _item(
        (_VERIFYING_ORGANIZATION, "LO", f"{patient.marker(tag + '05')}-L1"),
        (_DATE, "DA", patient.birth_date),
        (_INSTITUTION_CODE_SEQUENCE, "SQ", [middle]),
    )
    block.add_new(0x01, "LO", patient.marker(tag + "01"))
    block.add_new(0x02, "PN", patient.name)
    block.add_new(0x03, "DA", patient.birth_date)
    block.add_new(0x04, "LO", patient.patient_id)
    block.add_new(0x05, "SQ", [top])
    block.add_new(0x06, "OB", _binary(f"{patient.marker(tag + '06')} {patient.name}"))
    block.add_new(0x07, "LT", patient.free_text(tag + "07"))

    ge = ds.private_block(SAFE_PRIVATE_GROUP, SAFE_PRIVATE_CREATOR, create=True)
    ge.add_new(SAFE_PRIVATE_ELEMENT, "DS", "0.75")  # safe: cell spacing, no PHI
    ge.add_new(
        UNSAFE_PRIVATE_ELEMENT,
        "LT",
        patient.free_text(f"{SAFE_PRIVATE_GROUP:04x}10{UNSAFE_PRIVATE_ELEMENT:02x}"),
    )


def _add_curve(ds: Dataset, patient: _Patient) -> None:
    """Retired curve group 5000 with PHI in its description, label and data."""
    _put(ds, 0x50000005, "US", 1)
    _put(ds, 0x50000010, "US", 4)
    _put(ds, 0x50000020, "CS", "TAC")
    _put(ds, 0x50000022, "LO", patient.marker("50000022"))
    _put(ds, 0x50000030, "SH", ["SEC", "CNTS"])
    _put(ds, 0x50000103, "US", 0)
    _put(ds, 0x50002500, "LO", f"{patient.marker('50002500')} {patient.name}")
    _put(ds, 0x50003000, "OB", _binary(f"{patient.marker('50003000')} {patient.name}"))


def _add_overlays(ds: Dataset, patient: _Patient, rows: int, columns: int) -> None:
    """Overlay planes 6000 and 6002: a frame in packed bits, the marker in the bit stream, PHI comments."""
    import numpy as np

    mask = np.zeros((rows, columns), dtype=np.uint8)
    mask[2:-2, 2] = mask[2:-2, -3] = 1
    mask[2, 2:-2] = mask[-3, 2:-2] = 1
    packed = np.packbits(mask.ravel(), bitorder="little").tobytes()
    for group in (0x6000, 0x6002):
        base = group << 16
        text = f"{patient.marker(f'{group:04x}3000')} {patient.name}".encode("ascii")
        data = (text + packed[len(text) :]) if len(packed) > len(text) else packed
        data += b"\0" * (len(data) % 2)
        _put(ds, base | 0x0010, "US", rows)
        _put(ds, base | 0x0011, "US", columns)
        _put(ds, base | 0x0040, "CS", "G")
        _put(ds, base | 0x0050, "SS", [1, 1])
        _put(ds, base | 0x0100, "US", 1)
        _put(ds, base | 0x0102, "US", 0)
        _put(ds, base | 0x1500, "LO", patient.marker(f"{group:04x}1500"))
        _put(ds, base | 0x3000, "OW", data)
        _put(ds, base | 0x4000, "LT", patient.free_text(f"{group:04x}4000"))


def _study_template(patient_template: Dataset, patient: _Patient, study: _Study) -> Dataset:
    """The patient template plus everything that one study shares."""
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.update(patient_template)
    _put(ds, 0x00080020, "DA", study.date)
    _put(ds, 0x00080030, "TM", study.time)
    _put(ds, 0x00080050, "SH", study.accession)
    _put(ds, 0x00100010, "PN", patient.name)
    _put(ds, 0x00100020, "LO", patient.patient_id)
    _put(ds, 0x00100030, "DA", patient.birth_date)
    _put(ds, 0x00101010, "AS", study.age)
    _put(ds, 0x0020000D, "UI", study.uid)
    _put(ds, 0x00081110, "SQ", [_referenced_study_item(patient, study)])
    _put(ds, 0x0040A730, "SQ", _content_tree(patient, study))
    _put(ds, 0x04000561, "SQ", _original_attributes(patient, study))
    return ds


def _referenced_study_item(patient: _Patient, study: _Study) -> Dataset:
    """ReferencedStudySequence item pointing at this study's UID (plus PHI)."""
    return _item(
        (0x00081150, "UI", "1.2.840.10008.3.1.2.3.1"),
        (0x00081155, "UI", study.uid),
        (_PERSON_NAME, "PN", f"{patient.marker('00081110')}^Ref"),
    )


def _reference_item(sop_class: str, sop_uid: str, patient: _Patient, tag: str) -> Dataset:
    """Image reference item (SOP class + instance UID) that also carries PHI, as U* items may."""
    return _item(
        (0x00081150, "UI", sop_class),
        (0x00081155, "UI", sop_uid),
        (0x00204000, "LT", patient.free_text(tag)),
    )


# --------------------------------------------------------------------------------------------- pixels


def _pixels(
    rng: np.random.Generator, rows: int, columns: int, rgb: bool
) -> tuple[np.ndarray[Any, np.dtype[Any]], dict[int, tuple[str, Any]]]:
    """Deterministic image (smooth gradient plus noise) and its Image Pixel module attributes."""
    import numpy as np

    y, x = np.mgrid[0:rows, 0:columns]
    if rgb:
        base = (x * 255 // max(columns - 1, 1) + y * 64 // max(rows - 1, 1)) % 256
        noise = rng.integers(0, 32, size=(rows, columns, 3))
        image = ((base[..., None] // 2 + noise) % 256).astype(np.uint8)
        attrs: dict[int, tuple[str, Any]] = {
            0x00280002: ("US", 3),
            0x00280004: ("CS", "RGB"),
            0x00280006: ("US", 0),
            0x00280100: ("US", 8),
            0x00280101: ("US", 8),
            0x00280102: ("US", 7),
        }
    else:
        base = 1024 + (x + y) * 1500 // max(rows + columns - 2, 1)
        image = (base + rng.integers(0, 200, size=(rows, columns))).clip(0, 4095).astype(np.uint16)
        attrs = {
            0x00280002: ("US", 1),
            0x00280004: ("CS", "MONOCHROME2"),
            0x00280100: ("US", 16),
            0x00280101: ("US", 12),
            0x00280102: ("US", 11),
            0x00281050: ("DS", "1040"),
            0x00281051: ("DS", "400"),
            0x00281052: ("DS", "-1024"),
            0x00281053: ("DS", "1"),
        }
    attrs[0x00280010] = ("US", rows)
    attrs[0x00280011] = ("US", columns)
    attrs[0x00280103] = ("US", 0)
    return image, attrs


def _burn_in(image: np.ndarray[Any, np.dtype[Any]], patient: _Patient) -> None:
    """Paint the CTP rule region bright and write the patient's PHI as ASCII into its pixel rows.

    The text bytes land verbatim in PixelData, so a byte scan finds them unless the region is masked.
    """
    x, y, width, height = BURNED_IN_REGION
    rows, columns = image.shape[:2]
    bottom, right = min(y + height, rows), min(x + width, columns)
    image[y:bottom, x:right] = 250
    text = f" {patient.name} MRN {patient.patient_id} DOB {patient.birth_date} {patient.marker('7fe00010')} "
    data = text.encode("ascii")
    flat = image.reshape(rows, -1)
    row_bytes = flat.shape[1]
    for row in range(y + 8, bottom - 4, 16):
        start = x * (flat.shape[1] // columns) + 8
        end = min(start + len(data), row_bytes)
        flat[row, start:end] = list(data[: end - start])


# ------------------------------------------------------------------------------------------- writing


def _serialize(ds: Dataset, cache: dict[int, bytes] | None = None) -> bytes:
    """Explicit VR Little Endian Part 10 bytes, as ``dcmwrite(..., enforce_file_format=True)`` writes them.

    pydicom encodes every element; ``cache`` maps ``id(element)`` to bytes already encoded for elements
    shared from a template that outlives the call, so the ~600 Table E.1-1 elements are encoded once per
    study instead of once per file (encoding dominates the run time).
    """
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_file_meta_info

    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    out.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(out, ds.file_meta, enforce_standard=True)
    encoding = ds.get("SpecificCharacterSet", "iso8859")
    for tag in sorted(ds.keys()):
        elem = ds.get_item(tag)
        encoded = cache.get(id(elem)) if cache is not None else None
        if encoded is None:
            encoded = _encode_element(elem, encoding)
        out.write(encoded)
    return bytes(out.getvalue())


def _encode_element(elem: Any, encoding: Any) -> bytes:
    """One element (sequences included) in Explicit VR Little Endian."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_data_element

    part = DicomBytesIO()
    part.is_little_endian, part.is_implicit_VR = True, False
    write_data_element(part, elem, encoding)
    return bytes(part.getvalue())


def _encoded_template(template: Dataset) -> dict[int, bytes]:
    """Pre-encoded elements of a template, keyed by ``id``; valid while ``template`` is alive."""
    encoding = template.get("SpecificCharacterSet", "iso8859")
    return {id(elem): _encode_element(elem, encoding) for elem in template}


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, then rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _file_meta(sop_class: str, sop_uid: str) -> Any:
    """File meta information; MediaStorageSOPInstanceUID (in Table E.1-1) equals the SOPInstanceUID."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def _instance_dataset(
    study_template: Dataset,
    patient: _Patient,
    study: _Study,
    series: _Series,
    instance: _Instance,
    *,
    seed: int,
    rows: int,
    columns: int,
) -> Dataset:
    """One image or SR data set: the study template plus series, instance and pixel attributes."""
    import numpy as np
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.update(study_template)
    is_sr = instance.kind == "sr"
    burned = instance.kind in ("burned_in_rule", "burned_in_unhandled")
    sop_class = _BASIC_TEXT_SR if is_sr else (_SECONDARY_CAPTURE if burned else series.sop_class)
    ds.file_meta = _file_meta(sop_class, instance.sop_uid)
    content_time = f"{series.time[:4]}{instance.number % 60:02d}"
    _put(ds, 0x00041511, "UI", instance.sop_uid)
    _put(ds, 0x00080012, "DA", study.date)
    _put(ds, 0x00080013, "TM", content_time)
    _put(ds, 0x00080016, "UI", sop_class)
    _put(ds, 0x00080018, "UI", instance.sop_uid)
    _put(ds, 0x00080021, "DA", study.date)
    _put(ds, 0x00080022, "DA", study.date)
    _put(ds, 0x00080023, "DA", study.date)
    _put(ds, 0x0008002A, "DT", f"{study.date}{content_time}")
    _put(ds, 0x00080031, "TM", series.time)
    _put(ds, 0x00080032, "TM", content_time)
    _put(ds, 0x00080033, "TM", content_time)
    _put(ds, 0x00080060, "CS", series.modality)
    _put(ds, 0x0020000E, "UI", series.uid)
    _put(ds, 0x00200011, "IS", str(series.number))
    _put(ds, 0x00200013, "IS", str(instance.number))
    _put(ds, 0x00200052, "UI", series.frame_of_reference_uid)
    _put(ds, 0x30060024, "UI", series.frame_of_reference_uid)
    _put(ds, 0x00640003, "UI", series.frame_of_reference_uid)

    siblings = [i for i in series.instances if i.sop_uid != instance.sop_uid] or [instance]
    referenced = siblings[instance.number % len(siblings)]
    _put(ds, 0x00081155, "UI", referenced.sop_uid)
    _put(ds, 0x00081140, "SQ", [_reference_item(series.sop_class, referenced.sop_uid, patient, "00081140")])
    _put(ds, 0x00082112, "SQ", [_reference_item(series.sop_class, siblings[0].sop_uid, patient, "00082112")])

    if is_sr:
        _put(ds, 0x00080070, "LO", "ACME Medical Imaging")
        _put(ds, 0x0040A040, "CS", "CONTAINER")
        _put(ds, 0x0040A043, "SQ", _code("11528-7", "Radiology Report"))
        _put(ds, 0x0040A050, "CS", "SEPARATE")
        _put(ds, 0x0040A491, "CS", "COMPLETE")
        _put(ds, 0x0040A493, "CS", "UNVERIFIED")
        _put(ds, 0x0040A375, "SQ", [_evidence_item(study)])
        return ds

    rng = np.random.default_rng([seed, patient.index, study.index, series.number, instance.number])
    if burned:
        height, width = max(rows, _BURNED_IN_MIN_ROWS), max(columns, _BURNED_IN_MIN_COLUMNS)
        image, attrs = _pixels(rng, height, width, rgb=True)
        _burn_in(image, patient)
        matched = instance.kind == "burned_in_rule"
        _put(ds, 0x00080008, "CS", ["DERIVED", "SECONDARY", "DOSE_INFO" if matched else "SCREEN_CAPTURE"])
        _put(ds, 0x00080070, "LO", "Philips Medical Systems" if matched else "ACME Medical Imaging")
        _put(ds, 0x00280301, "CS", "YES")
    else:
        height, width = rows, columns
        image, attrs = _pixels(rng, height, width, rgb=series.sop_class == _SECONDARY_CAPTURE)
        _put(ds, 0x00080008, "CS", ["ORIGINAL", "PRIMARY", "AXIAL"])
        _put(ds, 0x00080070, "LO", "ACME Medical Imaging")
        _put(ds, 0x00280301, "CS", "NO")
        # Image Plane module, so series stack into volumes (slices 2.5 mm apart along z, axial).
        _put(ds, 0x00200037, "DS", ["1", "0", "0", "0", "1", "0"])
        _put(ds, 0x00200032, "DS", ["-100", "-100", f"{2.5 * instance.number:g}"])
        _put(ds, 0x00280030, "DS", ["0.7", "0.7"])
    _put(ds, 0x00081090, "LO", "ACME X1")
    for tag, (vr, value) in attrs.items():
        _put(ds, tag, vr, value)
    _put(ds, 0x7FE00010, "OB" if image.dtype == np.uint8 else "OW", image.tobytes())
    _add_overlays(ds, patient, height, width)
    return ds


def _evidence_item(study: _Study) -> Dataset:
    """CurrentRequestedProcedureEvidenceSequence item listing every image of the study (UIDs three deep)."""
    series_items = []
    for series in study.series:
        sops = [
            _item((0x00081150, "UI", series.sop_class), (0x00081155, "UI", inst.sop_uid))
            for inst in series.instances
            if inst.kind != "sr"
        ]
        if sops:
            series_items.append(_item((0x0020000E, "UI", series.uid), (0x00081199, "SQ", sops)))
    return _item((0x0020000D, "UI", study.uid), (0x00081115, "SQ", series_items))


# ------------------------------------------------------------------------------------------ bad files


def _truncate(data: bytes) -> bytes:
    """Cut a valid file in the middle of the data set, inside the 4-byte length of a sequence header.

    The cut lands in RequestAttributesSequence (0040,0275), well before the pixel data. pydicom reads
    the top-level element headers while parsing, so ``dcmread`` itself raises ``struct.error``.
    """
    header = struct.pack("<HH", 0x0040, 0x0275) + b"SQ\0\0"
    start = data.index(header)
    return data[: start + len(header) + 2]


def _corrupt_vrs(data: bytes) -> bytes:
    """Give PatientAddress (0010,1040) the unknown VR ``QQ`` and PregnancyStatus (0010,21C0) a 3-byte US.

    ``dcmread`` succeeds (values are parsed lazily); reading either value raises.
    """
    address = struct.pack("<HH", 0x0010, 0x1040) + b"LO"
    start = data.index(address)
    data = data[:start] + struct.pack("<HH", 0x0010, 0x1040) + b"QQ" + data[start + 6 :]
    pregnancy = struct.pack("<HH", 0x0010, 0x21C0) + b"US" + struct.pack("<H", 2)
    start = data.index(pregnancy)
    old_end = start + len(pregnancy) + 2
    return data[:start] + pregnancy[:6] + struct.pack("<H", 3) + b"\x04\x00\x00" + data[old_end:]


# -------------------------------------------------------------------------------------------- public


def make_phi_corpus(
    root: str | Path,
    *,
    patients: int = 3,
    studies_per_patient: int = 2,
    series_per_study: int = 2,
    instances_per_series: int = 3,
    seed: int = 0,
    bad_files: bool = False,
    burned_in: bool = True,
    rows: int = 64,
    columns: int = 64,
    burned_in_fraction: float = 0.1,
) -> SampleCorpus:
    """Write a PHI-laden DICOM corpus under ``root`` and describe it.

    Per study there are ``series_per_study`` image series of ``instances_per_series`` files, plus one
    Basic Text SR. With ``burned_in``, ``burned_in_fraction`` of the images (at least two) become 8-bit
    screen captures with ``BurnedInAnnotation = YES``: every fourth of them (at least one) matches no
    RSNA CTP rule (``burned_in_unhandled``), the rest match :data:`BURNED_IN_RULE` (``burned_in_rule``).

    :param root: output folder; created if missing, existing files with the same names are replaced.
    :param patients: number of patients, 1 to :data:`MAX_PATIENTS`.
    :param studies_per_patient: studies per patient.
    :param series_per_study: image series per study.
    :param instances_per_series: image files per series.
    :param seed: everything (names, dates, UIDs, pixels) derives from it; same seed, same bytes.
    :param bad_files: also write one non-DICOM file, one truncated file and one with a bad VR.
    :param burned_in: turn some images into burned-in annotation cases.
    :param rows: image rows (burned-in images are at least 160).
    :param columns: image columns (burned-in images are at least 256).
    :param burned_in_fraction: share of images made burned-in, 0 to 1.
    :return: the corpus description.
    :raises ValueError: if a count or size is out of range.

    >>> import tempfile
    >>> corpus = make_phi_corpus(tempfile.mkdtemp(), patients=1, studies_per_patient=1,
    ...                          series_per_study=1, instances_per_series=2)
    >>> sorted(f.kind for f in corpus.files)
    ['burned_in_rule', 'burned_in_unhandled', 'sr']
    """
    _validate(
        patients=patients,
        studies_per_patient=studies_per_patient,
        series_per_study=series_per_study,
        instances_per_series=instances_per_series,
        rows=rows,
        columns=columns,
        burned_in_fraction=burned_in_fraction,
    )
    out = Path(root)
    rng = random.Random(f"privacy_core.samples:{seed}")
    plan = _plan(out, rng, patients, studies_per_patient, series_per_study, instances_per_series)
    if burned_in:
        _choose_burned_in(plan, rng, burned_in_fraction)

    files: list[SampleFile] = []
    for patient, studies in plan:
        template = _patient_template(patient)
        for study in studies:
            study_ds = _study_template(template, patient, study)
            cache = _encoded_template(study_ds)
            for series in study.series:
                for instance in series.instances:
                    ds = _instance_dataset(
                        study_ds, patient, study, series, instance, seed=seed, rows=rows, columns=columns
                    )
                    _write_atomic(instance.path, _serialize(ds, cache))
                    files.append(
                        SampleFile(
                            instance.path,
                            patient.index,
                            patient.patient_id,
                            study.uid,
                            series.uid,
                            instance.sop_uid,
                            instance.kind,
                        )
                    )
    if bad_files:
        files.extend(_write_bad_files(plan[0], seed=seed, rows=rows, columns=columns))

    markers: set[str] = {UID_ROOT}
    for patient, studies in plan:
        markers.update(_patient_markers(patient, studies))
    return SampleCorpus(root=out, files=tuple(files), phi_markers=tuple(sorted(markers)))


def _validate(**values: float) -> None:
    """Check counts and sizes, naming the argument and the fix."""
    for name in ("patients", "studies_per_patient", "series_per_study", "instances_per_series"):
        if int(values[name]) < 1:
            raise ValueError(f"{name}={values[name]} must be at least 1")
    if values["patients"] > MAX_PATIENTS:
        raise ValueError(f"patients={values['patients']} exceeds {MAX_PATIENTS}; markers carry a 3-digit patient index")
    for name in ("rows", "columns"):
        if not 8 <= values[name] <= 4096:
            raise ValueError(f"{name}={values[name]} must be between 8 and 4096")
    if not 0.0 <= values["burned_in_fraction"] <= 1.0:
        raise ValueError(f"burned_in_fraction={values['burned_in_fraction']} must be between 0 and 1")


def _plan(
    out: Path, rng: random.Random, patients: int, studies: int, series: int, instances: int
) -> list[tuple[_Patient, list[_Study]]]:
    """Decide every identity, date, UID and path before writing anything (references need them all)."""
    plan: list[tuple[_Patient, list[_Study]]] = []
    used_names: set[str] = set()
    for p in range(patients):
        family, given = _pseudo_word(rng, 3), _pseudo_word(rng, 2) + rng.choice(("a", "o", "en"))
        while f"{family}^{given}" in used_names:
            family = _pseudo_word(rng, 3)
        used_names.add(f"{family}^{given}")
        birth = date(1940, 1, 1) + timedelta(days=rng.randrange(0, 55 * 365))
        study_days = sorted(date(2015, 1, 1) + timedelta(days=rng.randrange(0, 8 * 365)) for _ in range(studies))
        event = study_days[0] - timedelta(days=rng.randrange(1, 30))
        patient = _Patient(
            index=p,
            family=family,
            given=given,
            patient_id=f"MRN{p:03d}{rng.randrange(100000, 1000000)}",
            other_patient_id=f"OPI{p:03d}{rng.randrange(100000, 1000000)}",
            birth_date=_dicom_date(birth),
            event_date=_dicom_date(event),
            age=_age(birth, study_days[0]),
            uid_tail=rng.randrange(10**9, 10**10),
        )
        plan.append((patient, []))
        for s, day in enumerate(study_days):
            accession = f"ACC{p:03d}{s:02d}{rng.randrange(100000, 1000000)}"
            study = _Study(
                index=s,
                uid=patient.uid(1, p, s),
                date=_dicom_date(day),
                time=f"{8 + rng.randrange(0, 10):02d}{rng.randrange(0, 60):02d}00",
                accession=accession,
                age=_age(birth, day),
                folder=out / patient.folder / _safe_name(f"{_dicom_date(day)}_{accession}"),
            )
            plan[-1][1].append(study)
            for se in range(series):
                modality, sop_class = _SERIES_TYPES[(p + s + se) % len(_SERIES_TYPES)]
                minute = min(59, int(study.time[2:4]) + se + 1)
                current = _Series(
                    number=se + 1,
                    modality=modality,
                    sop_class=sop_class,
                    uid=patient.uid(2, p, s, se + 1),
                    frame_of_reference_uid=patient.uid(4, p, s, se + 1),
                    time=f"{study.time[:2]}{minute:02d}00",
                )
                for i in range(instances):
                    sop_uid = patient.uid(3, p, s, se + 1, i + 1)
                    current.instances.append(_Instance("image", i + 1, sop_uid, study.folder / f"{sop_uid}.dcm"))
                study.series.append(current)
            sr_uid = patient.uid(3, p, s, _SR_SERIES_NUMBER, 1)
            sr = _Series(
                number=_SR_SERIES_NUMBER,
                modality="SR",
                sop_class=_BASIC_TEXT_SR,
                uid=patient.uid(2, p, s, _SR_SERIES_NUMBER),
                frame_of_reference_uid=patient.uid(4, p, s, _SR_SERIES_NUMBER),
                time=f"{study.time[:2]}5900",
                instances=[_Instance("sr", 1, sr_uid, study.folder / f"{sr_uid}.dcm")],
            )
            study.series.append(sr)
    return plan


def _choose_burned_in(plan: list[tuple[_Patient, list[_Study]]], rng: random.Random, fraction: float) -> None:
    """Mark ``fraction`` of the images (at least two) as burned-in; every fourth chosen one is unhandled."""
    images = [
        inst
        for _, studies in plan
        for study in studies
        for series in study.series
        for inst in series.instances
        if inst.kind == "image"
    ]
    count = min(len(images), max(2, round(fraction * len(images))))
    chosen = sorted(rng.sample(range(len(images)), count))
    for n, index in enumerate(chosen):
        images[index].kind = "burned_in_unhandled" if n % 4 == 0 else "burned_in_rule"
    if count == 1:
        images[chosen[0]].kind = "burned_in_rule"


def _write_bad_files(first: tuple[_Patient, list[_Study]], *, seed: int, rows: int, columns: int) -> list[SampleFile]:
    """A text file named ``.dcm``, a truncated file and a file with a bad VR, in the first study's folder."""
    patient, studies = first
    study = studies[0]
    series = study.series[0]
    template = _study_template(_patient_template(patient), patient, study)
    written: list[SampleFile] = []

    text_path = study.folder / f"NOTDICOM_{patient.patient_id}.dcm"
    report = f"Radiology report\nPatient: {patient.name}\nMRN: {patient.patient_id}\nDOB: {patient.birth_date}\n"
    _write_atomic(text_path, report.encode("ascii"))
    written.append(SampleFile(text_path, patient.index, patient.patient_id, "", "", "", "not_dicom"))

    for number, kind, damage in ((900, "truncated", _truncate), (901, "bad_vr", _corrupt_vrs)):
        sop_uid = patient.uid(3, patient.index, study.index, series.number, number)
        instance = _Instance("image", number, sop_uid, study.folder / f"{sop_uid}_{kind}.dcm")
        ds = _instance_dataset(template, patient, study, series, instance, seed=seed, rows=rows, columns=columns)
        _write_atomic(instance.path, damage(_serialize(ds)))
        written.append(
            SampleFile(instance.path, patient.index, patient.patient_id, study.uid, series.uid, sop_uid, kind)
        )
    return written


def _patient_markers(patient: _Patient, studies: SequenceABC[_Study]) -> set[str]:
    """Every distinctive original string of one patient."""
    markers = {
        _marker_prefix(patient.index),
        patient.name,
        patient.family,
        patient.given,
        patient.patient_id,
        patient.other_patient_id,
        patient.birth_date,
        patient.event_date,
        *patient.uids,
    }
    for study in studies:
        markers.update((study.date, study.accession))
    return markers


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m privacy_core.samples OUT [--patients N ...]``; prints a one-line summary."""
    parser = argparse.ArgumentParser(
        prog="python -m privacy_core.samples", description="Write a synthetic DICOM corpus full of PHI."
    )
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument("--patients", type=int, default=3)
    parser.add_argument("--studies-per-patient", type=int, default=2)
    parser.add_argument("--series-per-study", type=int, default=2)
    parser.add_argument("--instances-per-series", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--columns", type=int, default=64)
    parser.add_argument("--bad-files", action="store_true", help="add a non-DICOM, a truncated and a bad-VR file")
    parser.add_argument("--no-burned-in", action="store_true", help="no burned-in annotation images")
    parser.add_argument("--burned-in-fraction", type=float, default=0.1)
    args = parser.parse_args(argv)
    try:
        corpus = make_phi_corpus(
            args.out,
            patients=args.patients,
            studies_per_patient=args.studies_per_patient,
            series_per_study=args.series_per_study,
            instances_per_series=args.instances_per_series,
            seed=args.seed,
            bad_files=args.bad_files,
            burned_in=not args.no_burned_in,
            rows=args.rows,
            columns=args.columns,
            burned_in_fraction=args.burned_in_fraction,
        )
    except ValueError as exc:
        parser.error(str(exc))
    kinds = {kind: len(corpus.by_kind(kind)) for kind in KINDS if corpus.by_kind(kind)}
    summary = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
    print(f"wrote {len(corpus.files)} files under {corpus.root} ({summary})")
    print(f"{len(corpus.phi_markers)} PHI markers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
