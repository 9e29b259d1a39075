"""The de-identification engine: one recursive walk over a dataset, one dispatch-table lookup per element.

Order per file: read the facts that need the original header (burned-in rules, patient key, text tokens),
walk the header once (sequences at any depth, private blocks, overlays and curves, file meta), blank the
burned-in pixel regions, then stamp what was done (PatientIdentityRemoved, DeidentificationMethod and its
CID 7050 code sequence). Elements nobody needs to look at stay raw, so they are never even decoded.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

# The engine is the part that needs pydicom; it is imported only when files are processed (operators
# import it inside execute), so these imports never slow a DAG file's parse.
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from privacy_core import __version__
from privacy_core.deid._safe_private import SAFE_PRIVATE
from privacy_core.deid.burned_in import BurnedInError, BurnedInRule, apply_regions, load_rules, match_regions
from privacy_core.deid.profile import CURVE_GROUPS, OVERLAY_GROUPS, Action, Option, Profile
from privacy_core.deid.pseudonym import Pseudonymizer, shift_date, shift_datetime
from privacy_core.deid.values import TEXT_VRS, clean_text, dummy_for, identifying_tokens
from privacy_core.errors import QuarantineError
from privacy_core.keys import PseudonymKey

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

#: Sequences of vocabulary (SR concept names, coded answers, units): codes, not people, so they are walked
#: normally even inside a replaced subtree. Any other code (an Institution Code Sequence) is replaced.
VOCABULARY_SEQUENCES: frozenset[int] = frozenset({0x0040A043, 0x0040A168, 0x004008EA})
#: File meta attributes that name the sending or receiving device or carry private data.
META_REMOVE: frozenset[int] = frozenset({0x00020016, 0x00020017, 0x00020018, 0x00020100, 0x00020102})
#: Maximum value lengths of text VRs, so cleaned text stays valid.
MAX_LEN = {"SH": 16, "LO": 64, "ST": 1024, "LT": 10240, "PN": 64, "AE": 16, "CS": 16}
#: Syntax of the VRs checked when ``strict_values`` is on (PS3.5 6.2), matched on the raw bytes of each value
#: so that a kept element is validated without being decoded (and then re-encoded on write).
RAW_SYNTAX: dict[str, re.Pattern[bytes]] = {
    "IS": re.compile(rb" *[+-]?[0-9]{1,11} *"),
    "DS": re.compile(rb" *[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)? *"),
    "DA": re.compile(rb"[0-9]{8}|[0-9]{4}\.[0-9]{2}\.[0-9]{2}"),
    "TM": re.compile(rb"[0-9]{2}(:?[0-9]{2}(:?[0-9]{2}(\.[0-9]{1,6})?)?)? *"),
    "DT": re.compile(
        rb"[0-9]{4}([0-9]{2}([0-9]{2}([0-9]{2}([0-9]{2}([0-9]{2}(\.[0-9]{1,6})?)?)?)?)?)?([+-][0-9]{4})? *"
    ),
    "UI": re.compile(rb"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*"),
    "AS": re.compile(rb"[0-9]{3}[DWMY]"),
}
#: Longest value per checked VR.
RAW_MAX = {"IS": 12, "DS": 16, "DA": 10, "TM": 16, "DT": 26, "UI": 64, "AS": 4}
_IDENTIFYING_VRS = TEXT_VRS | {"DA", "DT"}
#: Every VR of PS3.5 6.2; an explicit VR outside it means the parser cannot trust what follows.
VALID_VRS: frozenset[str] = frozenset(
    "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split()  # noqa: SIM905
)
#: Fixed value sizes: a length that is not a multiple means a corrupt element.
FIXED_SIZE = {"AT": 4, "FD": 8, "FL": 4, "SL": 4, "SS": 2, "SV": 8, "UL": 4, "US": 2, "UV": 8}


class Mode(Enum):
    """How free text not listed in Table E.1-1 is treated in a subtree."""

    NORMAL = 0  # kept
    DUMMY = 1  # replaced: inside a sequence whose action is D (e.g. Content Sequence, basic profile)
    CLEAN = 2  # cleaned: inside a sequence whose action is C (Clean Structured Content / Graphics)


@dataclass(frozen=True)
class DeidOutcome:
    """What the engine did to one dataset. Holds new (pseudonymous) UIDs only, never input values."""

    study_uid: str
    series_uid: str
    sop_uid: str
    pixel_regions: int
    removed_private: int
    method_codes: tuple[str, ...]


@dataclass
class _FileState:
    """Per-file facts gathered from the original header before anything changes."""

    patient: str
    shift_days: int
    tokens: re.Pattern[str] | None = None
    removed_private: int = 0


class DeidEngine:
    """Applies a :class:`Profile` with keyed pseudonyms; build once per process and reuse for every file.

    :param profile: Table E.1-1 and the options.
    :param key: the project secret for UIDs, IDs and date shifts.
    :param rules: burned-in annotation rules; None loads RSNA CTP's library.
    :param strict_values: quarantine files whose IS/DS/DA/TM/DT/UI/AS values break their VR.
    """

    def __init__(
        self,
        profile: Profile,
        key: PseudonymKey,
        rules: list[BurnedInRule] | None = None,
        *,
        strict_values: bool = True,
    ) -> None:
        self.profile = profile
        self.pseudonyms = Pseudonymizer(key)
        self.rules = load_rules(None) if rules is None else rules
        self.strict_values = strict_values
        self._actions = profile.actions
        self._safe_private = SAFE_PRIVATE if profile.retain_safe_private else frozenset()
        self._needs_tokens = bool(
            profile.options
            & {
                Option.CLEAN_DESCRIPTORS,
                Option.CLEAN_STRUCTURED_CONTENT,
                Option.CLEAN_GRAPHICS,
                Option.RETAIN_PATIENT_CHARACTERISTICS,
            }
        )
        self._handlers: dict[Action, Callable[[Dataset, int, _FileState, Mode, int], None]] = {
            Action.KEEP: self._keep,
            Action.REMOVE: self._remove,
            Action.ZERO: self._zero,
            Action.DUMMY: self._dummy,
            Action.CLEAN: self._clean,
            Action.UID: self._uid,
            Action.RECURSE_UIDS: self._recurse_uids,
            Action.PSEUDONYM: self._pseudonym,
        }

    # ------------------------------------------------------------------ entry point
    def deidentify(self, ds: Dataset) -> DeidOutcome:
        """De-identify ``ds`` in place.

        :raises QuarantineError: burned-in text no rule covers, pixels that cannot be decoded, a value that
            breaks its VR (with ``strict_values``), or no SOP Instance UID to name the output by.
        """
        with _validation(self.strict_values):
            try:
                return self._deidentify(ds)
            except QuarantineError:
                raise
            except BurnedInError as exc:
                raise QuarantineError("pixel-decode-failed", str(exc)) from exc
            except NotImplementedError as exc:  # pydicom meets a VR it does not know
                raise QuarantineError("invalid-vr", f"{type(exc).__name__}: {exc}") from exc
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise QuarantineError("invalid-value", f"{type(exc).__name__}: {exc}") from exc

    def _deidentify(self, ds: Dataset) -> DeidOutcome:
        has_pixels = 0x7FE00010 in ds
        regions = match_regions(ds, self.rules) if has_pixels else []
        burned_in = _text(ds, 0x00280301).upper() == "YES"
        if burned_in and not regions and self.profile.quarantine_unhandled_burned_in:
            raise QuarantineError(
                "burned-in-unhandled",
                "BurnedInAnnotation is YES and no burned-in rule covers this image; add a rule "
                "(--burned-in-rules) or clean the pixels before release",
            )
        if _text(ds, 0x00080018) == "":
            raise QuarantineError("missing-sop-instance-uid", "no SOP Instance UID to name the output file by")
        patient = _text(ds, 0x00100020) or _text(ds, 0x00100010) or _text(ds, 0x0020000D)
        state = _FileState(patient=patient, shift_days=self.pseudonyms.shift_days(patient))
        if self._needs_tokens:
            state.tokens = identifying_tokens(self._identifying_values(ds))
        self._walk(ds, state, Mode.NORMAL, 0)
        if getattr(ds, "file_meta", None) is not None:
            self._walk_meta(ds.file_meta)
        if regions:
            lossy = _is_lossy(ds)
            apply_regions(ds, regions)
            ds.BurnedInAnnotation = "NO"
            if lossy:  # decoded from a lossy syntax, now stored uncompressed: the pixels were once lossy
                ds.LossyImageCompression = "01"
        codes = self._stamp(ds, pixels_cleaned=bool(regions))
        ds.preamble = b"\x00" * 128  # a preamble can carry a TIFF header or anything else: never pass it on
        return DeidOutcome(
            study_uid=_text(ds, 0x0020000D),
            series_uid=_text(ds, 0x0020000E),
            sop_uid=_text(ds, 0x00080018),
            pixel_regions=len(regions),
            removed_private=state.removed_private,
            method_codes=tuple(codes),
        )

    # ------------------------------------------------------------------ the walk
    def _walk(self, ds: Dataset, state: _FileState, mode: Mode, depth: int) -> None:
        """Visit every element of ``ds`` once, recursing into sequences; delete safely (keys copied first)."""
        actions = self._actions
        private_seen = False
        get_item = ds.get_item
        for tag in list(ds.keys()):
            raw = get_item(tag)
            if raw.is_raw and raw.VR is not None and (raw.VR not in VALID_VRS or raw.VR in FIXED_SIZE):
                _check_vr(ds, tag)
            group = tag >> 16
            if group & 1:
                private_seen = True
                self._private(ds, tag, state, mode, depth)
                continue
            if tag & 0xFFFF == 0:  # group lengths are retired and would be wrong after edits
                del ds[tag]
                continue
            action = actions.get(tag)
            if action is not None:
                self._handlers[action](ds, tag, state, mode, depth)
            elif group in OVERLAY_GROUPS or group in CURVE_GROUPS:
                self._graphics(ds, tag, state, depth)
            else:
                self._unlisted(ds, tag, state, mode, depth)
        if private_seen:
            self._drop_orphan_creators(ds)

    def _walk_meta(self, meta: Dataset) -> None:
        """File meta: the same UID map as the data set, minus device and private information."""
        for tag in list(meta.keys()):
            if tag in META_REMOVE:
                del meta[tag]
            elif tag == 0x00020003 and self._actions.get(tag) is Action.UID:
                meta[tag].value = self.pseudonyms.uid(str(meta[tag].value))

    def _recurse(self, ds: Dataset, tag: int, state: _FileState, mode: Mode, depth: int) -> None:
        for item in ds[tag].value or ():
            self._walk(item, state, mode, depth + 1)

    def _unlisted(self, ds: Dataset, tag: int, state: _FileState, mode: Mode, depth: int) -> None:
        """Not in Table E.1-1: kept; sequences are walked, free text follows the subtree's mode."""
        vr = _vr(ds, tag)
        if vr == "SQ":
            self._recurse(ds, tag, state, Mode.NORMAL if tag in VOCABULARY_SEQUENCES else mode, depth)
        elif mode is not Mode.NORMAL and vr in TEXT_VRS:
            if mode is Mode.DUMMY:
                if not _is_empty(ds, tag):
                    _replace(ds, tag, vr, dummy_for(vr))
            else:
                self._clean_text(ds, tag, vr, state)
        elif self.strict_values and vr in RAW_SYNTAX:
            _check_syntax(ds, tag, vr)

    # ------------------------------------------------------------------ actions (one callback each)
    def _keep(self, ds: Dataset, tag: int, state: _FileState, mode: Mode, depth: int) -> None:
        if _vr(ds, tag) == "SQ":
            self._recurse(ds, tag, state, mode, depth)

    def _remove(self, ds: Dataset, tag: int, state: _FileState, mode: Mode, depth: int) -> None:
        del ds[tag]

    def _zero(self, ds: Dataset, tag: int, state: _FileState, mode: Mode, depth: int) -> None:
        _replace(ds, tag, _vr(ds, tag), None)

    def _dummy(self, ds: Dataset, tag: int, state: _FileState, mode: Mode, depth: int) -> None:
        vr = _vr(ds, tag)
        if vr == "SQ":  # keep the structure (Type 1 sequences stay valid), replace what is inside
            self._recurse(ds, tag, state, Mode.DUMMY, depth)
        elif vr == "UI":
            self._uid(ds, tag, state, mode, depth)
        elif not _is_empty(ds, tag):
            _replace(ds, tag, vr, dummy_for(vr))

    def _clean(self, ds: Dataset, tag: int, state: _FileState, mode: Mode, depth: int) -> None:
        elem = ds[tag]
        vr = elem.VR
        if vr == "SQ":
            self._recurse(ds, tag, state, Mode.CLEAN, depth)
        elif elem.is_empty or vr == "TM":
            return  # times carry no date; the shift is whole days
        elif vr in ("DA", "DT"):
            shift = shift_date if vr == "DA" else shift_datetime
            values = [shift(str(v), state.shift_days) for v in _values(elem.value)]
            elem.value = None if any(v is None for v in values) else _join(values)
        elif vr == "AE":
            elem.value = self.pseudonyms.identifier("ae", str(elem.value))[:16]
        elif vr in TEXT_VRS:
            self._clean_text(ds, tag, vr, state)
        elif vr == "UI":
            self._uid(ds, tag, state, mode, depth)
        else:
            elem.value = dummy_for(vr)

    def _uid(self, ds: Dataset, tag: int, state: _FileState, mode: Mode, depth: int) -> None:
        vr = _vr(ds, tag)
        if vr == "SQ":
            self._recurse(ds, tag, state, mode, depth)
        elif vr != "UI":
            _replace(ds, tag, vr, dummy_for(vr))
        elif not _is_empty(ds, tag):
            raw = ds.get_item(tag)
            value = raw.value if getattr(raw, "is_raw", False) else None
            if isinstance(value, bytes):  # UIDs are ASCII: map them without decoding through pydicom
                uids = value.rstrip(b" \x00").decode("ascii", "replace").split("\\")
            else:
                uids = [str(v) for v in _values(ds[tag].value)]
            _replace(ds, tag, "UI", "\\".join(self.pseudonyms.uid(uid) for uid in uids))

    def _recurse_uids(self, ds: Dataset, tag: int, state: _FileState, mode: Mode, depth: int) -> None:
        self._uid(ds, tag, state, mode, depth)

    def _pseudonym(self, ds: Dataset, tag: int, state: _FileState, mode: Mode, depth: int) -> None:
        elem = ds[tag]
        if elem.is_empty:
            return
        if tag == 0x00080050:
            elem.value = self.pseudonyms.identifier("accession", str(elem.value))
        elif tag == 0x00100020 or depth > 0:
            elem.value = self.pseudonyms.identifier("patient", str(elem.value))
        else:  # the top-level Patient's Name follows the file's patient, so name and ID agree
            elem.value = self.pseudonyms.identifier("patient", state.patient)

    def _clean_text(self, ds: Dataset, tag: int, vr: str, state: _FileState) -> None:
        elem = ds[tag]
        if elem.is_empty:
            return
        cleaned = [clean_text(str(v), state.tokens) for v in _values(elem.value)]
        limit = MAX_LEN.get(vr)
        elem.value = _join([c[:limit] if limit else c for c in cleaned])

    # ------------------------------------------------------------------ private, graphics
    def _private(self, ds: Dataset, tag: int, state: _FileState, mode: Mode, depth: int) -> None:
        """Private attributes go, unless Retain Safe Private is on and RSNA CTP lists them as safe."""
        elem_no = tag & 0xFFFF
        if 0x0010 <= elem_no <= 0x00FF:
            return  # a private creator: decided once its block is known (see _drop_orphan_creators)
        if elem_no >= 0x1000 and self._safe_private:
            creator_tag = (tag & 0xFFFF0000) | (elem_no >> 8)
            creator = _text(ds, creator_tag).upper()
            if (creator, tag >> 16, elem_no & 0xFF) in self._safe_private:
                if _vr(ds, tag) == "SQ":
                    self._recurse(ds, tag, state, mode, depth)
                return
        state.removed_private += 1
        del ds[tag]

    def _drop_orphan_creators(self, ds: Dataset) -> None:
        """Remove private creators whose block no longer holds any element."""
        tags = [t for t in ds.keys() if (t >> 16) & 1]  # noqa: SIM118 - iterating a Dataset yields elements
        used = {(t & 0xFFFF0000) | ((t & 0xFFFF) >> 8) for t in tags if (t & 0xFFFF) >= 0x1000}
        for t in tags:
            if 0x0010 <= (t & 0xFFFF) <= 0x00FF and t not in used:
                del ds[t]

    def _graphics(self, ds: Dataset, tag: int, state: _FileState, depth: int) -> None:
        """Overlay and curve groups go whole (an overlay without data is invalid) unless Clean Graphics."""
        if self.profile.graphics_action is Action.REMOVE:
            del ds[tag]
            return
        vr = _vr(ds, tag)
        if vr in TEXT_VRS:
            self._clean_text(ds, tag, vr, state)
        elif vr == "SQ":
            self._recurse(ds, tag, state, Mode.CLEAN, depth)

    # ------------------------------------------------------------------ facts and stamps
    def _identifying_values(self, ds: Dataset) -> Iterator[str]:
        """Top-level text and date values the profile does not keep: the tokens cleaned text must lose."""
        for tag, action in self._actions.items():
            if action in (Action.KEEP, Action.UID, Action.CLEAN) or tag not in ds:
                continue
            _check_vr(ds, tag)
            elem = ds[tag]
            if elem.VR in _IDENTIFYING_VRS and not elem.is_empty:
                yield from (str(v) for v in _values(elem.value))

    def _stamp(self, ds: Dataset, *, pixels_cleaned: bool) -> list[str]:
        """Record the method the DICOM way (PS3.15 E.1.1, CID 7050)."""
        from pydicom.dataset import Dataset as DicomDataset

        codes = self.profile.method_codes(pixels_cleaned)
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = [f"airflow-imaging-privacy {__version__}"] + [m for _, m in codes]
        items = []
        for value, meaning in codes:
            item = DicomDataset()
            item.CodeValue = value
            item.CodingSchemeDesignator = "DCM"
            item.CodeMeaning = meaning
            items.append(item)
        ds.DeidentificationMethodCodeSequence = items
        ds.LongitudinalTemporalInformationModified = {
            "full": "UNMODIFIED",
            "modified": "MODIFIED",
            "removed": "REMOVED",
        }[self.profile.date_mode]
        return [value for value, _ in codes]


# ---------------------------------------------------------------------- helpers
def _text(ds: Dataset, tag: int) -> str:
    """The value of ``tag`` as stripped text, ``""`` when absent, empty or binary; VM > 1 joined by ``\\``."""
    if tag not in ds:
        return ""
    value = ds[tag].value
    if value is None or isinstance(value, bytes):
        return ""
    if isinstance(value, str):
        return value.strip()

    if isinstance(value, Sequence):
        return ""
    if isinstance(value, MultiValue):
        return "\\".join(str(v) for v in value).strip()
    return str(value).strip()


def _replace(ds: Dataset, tag: int, vr: str, value: object) -> None:
    """Put a new element in place of ``tag`` without decoding the old value (empty when ``value`` is None).

    Dummies are text or zeros, the same bytes in either byte order, so when the old element is still raw the
    new one is stored pre-encoded as raw too and written straight through, as pydicom writes untouched ones.
    """

    if vr == "SQ":
        ds[tag] = DataElement(tag, vr, Sequence([]))
        return
    old = ds.get_item(tag)
    encoded = _encode_dummy(vr, value)
    if encoded is None or not getattr(old, "is_raw", False):
        ds[tag] = DataElement(tag, vr, value)
        return
    raw = cast(RawDataElement, old)
    ds[tag] = RawDataElement(BaseTag(tag), vr, len(encoded), encoded, 0, raw.is_implicit_VR, raw.is_little_endian)


def _encode_dummy(vr: str, value: object) -> bytes | None:
    """The bytes of an empty, ASCII text or zero value, padded to even length (UIDs with NUL, as PS3.5 says);
    None for anything else, which then goes through pydicom's encoder."""
    if value is None:
        return b""
    if isinstance(value, str) and len(vr) == 2 and value.isascii():
        data = value.encode("ascii")
        return data + (b"\x00" if vr == "UI" else b" ") if len(data) % 2 else data
    if value == 0 and vr in FIXED_SIZE:
        return bytes(FIXED_SIZE[vr])
    if value == b"":
        return b""
    return None


def _is_empty(ds: Dataset, tag: int) -> bool:
    """Whether the element has no value, read from the raw bytes when it has not been decoded yet."""
    elem = ds.get_item(tag)
    if getattr(elem, "is_raw", False):
        value = getattr(elem, "value", None)
        return not value or not value.strip(b" \x00")
    return bool(ds[tag].is_empty)


def _check_syntax(ds: Dataset, tag: int, vr: str) -> None:
    """Refuse a kept value that breaks its VR's syntax, reading the raw bytes (decoded elements passed already)."""
    raw = ds.get_item(tag)
    value = getattr(raw, "value", None)
    if not getattr(raw, "is_raw", False) or not isinstance(value, bytes):
        return
    pattern, limit = RAW_SYNTAX[vr], RAW_MAX[vr]
    for part in value.rstrip(b" \x00").split(b"\\"):
        if part and (len(part) > limit or pattern.fullmatch(part) is None):
            raise QuarantineError(
                "invalid-value", f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) {vr} value {part!r} breaks its VR"
            )


def _check_vr(ds: Dataset, tag: int) -> None:
    """Refuse an element whose explicit VR is not a VR, or whose length does not fit its fixed-size VR.

    Checked before the element's fate is decided, because such a file may have been parsed out of step:
    removing the bad element would hide the corruption, not cure it.
    """
    raw = ds.get_item(tag)
    vr = getattr(raw, "VR", None)
    if vr is None or not getattr(raw, "is_raw", False):
        return  # implicit VR, or already decoded by pydicom (which may hold "OB or OW")
    if vr not in VALID_VRS:
        raise QuarantineError("invalid-vr", f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) has VR {vr!r}")
    size = FIXED_SIZE.get(vr)
    value = getattr(raw, "value", None)
    if size and isinstance(value, bytes) and len(value) % size:
        raise QuarantineError("invalid-vr", f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) {vr} has {len(value)} bytes")


_VR_CACHE: dict[int, str] = {}


def _vr(ds: Dataset, tag: int) -> str:
    """The element's VR without converting its value; UN and implicit VR fall back to the dictionary."""
    vr = getattr(ds.get_item(tag), "VR", None)
    if vr and vr != "UN":
        return str(vr)
    if tag not in _VR_CACHE:
        from pydicom.datadict import dictionary_VR

        try:
            _VR_CACHE[tag] = dictionary_VR(tag)
        except KeyError:
            _VR_CACHE[tag] = "UN"
    return _VR_CACHE[tag]


def _values(value: Any) -> list[Any]:
    """A DICOM value as a list of its values: a MultiValue (VM > 1) is split, anything else is one value."""

    return list(value) if isinstance(value, MultiValue | list) else [value]


def _join(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else values


@contextlib.contextmanager
def _validation(strict: bool) -> Iterator[None]:
    """Make pydicom raise on values that break their VR, for the duration of one file."""
    from pydicom import config

    previous = config.settings.reading_validation_mode
    config.settings.reading_validation_mode = config.RAISE if strict else config.WARN
    try:
        yield
    finally:
        config.settings.reading_validation_mode = previous


@contextlib.contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's warnings and log lines: they quote input values ("Invalid value for VR IS: '1A'")."""
    import logging
    import warnings

    logger = logging.getLogger("pydicom")
    level, propagate = logger.level, logger.propagate
    logger.setLevel(logging.CRITICAL + 1)
    logger.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
        logger.propagate = propagate


def read_dicom(source: Path | BinaryIO) -> Dataset:
    """Read a DICOM file, with or without a preamble and file meta.

    :raises QuarantineError: ``not-dicom`` or ``truncated``; the detail names the problem, not values.
    """
    import struct

    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    try:
        try:
            ds = dcmread(source)
        except InvalidDicomError:
            if not isinstance(source, Path):
                source.seek(0)
            ds = dcmread(source, force=True)
            if len(ds) == 0 or 0x00080016 not in ds:
                raise QuarantineError("not-dicom", "not a DICOM file: no DICM prefix and no SOP Class UID") from None
    except QuarantineError:
        raise
    except (EOFError, struct.error) as exc:
        raise QuarantineError("truncated", f"the file ends inside an element ({type(exc).__name__})") from exc
    except Exception as exc:
        raise QuarantineError("not-dicom", f"pydicom cannot parse it ({type(exc).__name__})") from exc
    _check_complete(ds)
    return ds


def _check_complete(ds: Dataset) -> None:
    """Detect truncation pydicom reads through silently: short native pixel data, or a short last element."""
    meta = getattr(ds, "file_meta", None)
    syntax = str(getattr(meta, "TransferSyntaxUID", "") or "")
    if 0x7FE00010 in ds and not _is_compressed(syntax):
        rows, cols = _number(ds, 0x00280010, 0), _number(ds, 0x00280011, 0)
        frames, samples = _number(ds, 0x00280008, 1) or 1, _number(ds, 0x00280002, 1) or 1
        bits = _number(ds, 0x00280100, 8) or 8
        expected = (rows * cols * frames * samples * bits + 7) // 8
        if _text(ds, 0x00280004) == "YBR_FULL_422":
            expected = expected * 2 // 3  # chroma subsampled 2:1 horizontally: 2 samples a pixel, not 3
        actual = len(ds.get_item(0x7FE00010).value or b"")
        if actual < expected:
            raise QuarantineError("truncated", f"pixel data has {actual} of {expected} bytes")
    last = next(reversed(list(ds.keys())), None)  # elements sit in the order read: this is the last read
    if last is not None:
        raw = ds.get_item(last)
        declared = getattr(raw, "length", None)
        value = getattr(raw, "value", None)
        if isinstance(value, bytes) and declared not in (None, 0xFFFFFFFF) and len(value) < declared:
            raise QuarantineError("truncated", f"the last element has {len(value)} of {declared} bytes")


def _number(ds: Dataset, tag: int, default: int) -> int:
    """An US or IS element as an int, read from raw bytes when possible; ``default`` when absent or odd."""

    raw = ds.get_item(tag)
    if raw is None:
        return default
    value = getattr(raw, "value", None)
    if getattr(raw, "is_raw", False) and isinstance(value, bytes):
        if len(value) == 2 and _vr(ds, tag) == "US":  # Rows, Columns, Samples, Bits Allocated (not IS frames)
            little = cast(RawDataElement, raw).is_little_endian
            return int.from_bytes(value, "little" if little else "big")
        try:
            return int(value.strip(b" \x00") or default)  # IS (Number of Frames)
        except ValueError:
            return default
    try:
        return int(ds[tag].value)
    except (TypeError, ValueError):
        return default


#: Transfer syntaxes that are, or usually are, lossy: JPEG baseline/extended, JPEG-LS near-lossless, JPEG 2000
#: and HTJ2K (irreversible unless the header says otherwise).
LOSSY_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.81",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.4.203",
    }
)


def _is_lossy(ds: Dataset) -> bool:
    """Whether decoding this file's pixels undoes a lossy compression the header does not already declare."""
    meta = getattr(ds, "file_meta", None)
    syntax = str(getattr(meta, "TransferSyntaxUID", "") or "")
    return syntax in LOSSY_SYNTAXES and str(ds.get("LossyImageCompression", "") or "") != "00"


def _is_compressed(syntax: str) -> bool:
    from pydicom.uid import UID

    return bool(syntax) and UID(syntax).is_compressed
