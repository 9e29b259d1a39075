"""The leak verifier: trusts nothing the engine says.

It reads the INPUT files with its own walk (pydicom's ``Dataset.walk``, not the engine's), decides from the
profile table alone which values must not survive, and searches every byte and every path under OUTPUT for
them with one Aho-Corasick automaton. Findings show the attribute and a masked preview, never the whole value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from privacy_core.deid._safe_private import SAFE_PRIVATE
from privacy_core.deid.profile import CURVE_GROUPS, OVERLAY_GROUPS, Action, Profile
from privacy_core.storage import atomic_write_json

if TYPE_CHECKING:
    from pydicom.dataelem import DataElement
    from pydicom.dataset import Dataset

#: Shorter values occur everywhere by chance ("M", "CT", "512") and would drown real leaks.
MIN_NEEDLE = 4
#: Pure numbers need more digits to mean anything (IDs and dates do; slice counts do not).
MIN_NUMERIC_NEEDLE = 6
#: Text-like VRs whose values are searched for.
SEARCHED_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"})
_REMOVING = frozenset({Action.REMOVE, Action.ZERO, Action.DUMMY, Action.UID, Action.PSEUDONYM, Action.RECURSE_UIDS})
_PRINTABLE_RUN = re.compile(rb"[\x20-\x7e]{6,}")
_CHUNK = 8 << 20


@dataclass(frozen=True)
class Needle:
    """A value that must not appear in the release, and where it came from (tag and input file index)."""

    text: str
    tag: str
    input_index: int


@dataclass(frozen=True)
class Hit:
    """One occurrence of a needle in the release."""

    tag: str
    input_index: int
    location: str  # output path relative to OUTPUT
    where: str  # "content" or "path"
    offset: int
    preview: str  # masked: the length only, never characters of the value


@dataclass
class LeakReport:
    """What the verifier searched and found."""

    inputs: int = 0
    unreadable_inputs: int = 0
    outputs: int = 0
    needles: int = 0
    hits: list[Hit] = field(default_factory=list)

    def render(self) -> str:
        """One screen: the verdict, then up to 50 hits."""
        head = (
            f"searched {self.outputs} output files and their paths for {self.needles} values from "
            f"{self.inputs} input files ({self.unreadable_inputs} unreadable, skipped)"
        )
        if not self.hits:
            return head + "\nverdict: no leak found"
        lines = [head, f"verdict: LEAK: {len(self.hits)} hits"]
        for hit in self.hits[:50]:
            lines.append(
                f"  {hit.where:7s} {hit.location} @{hit.offset}: value of {hit.tag} "
                f"from input #{hit.input_index} ({hit.preview})"
            )
        if len(self.hits) > 50:
            lines.append(f"  ... {len(self.hits) - 50} more (see --report)")
        return "\n".join(lines)


def _mask(text: str) -> str:
    return f"{len(text)} chars"


def collect_needles(input_root: Path, profile: Profile) -> tuple[list[Needle], int, int]:
    """Every value under ``input_root`` that the profile does not keep, minus values it keeps elsewhere.

    :returns: (needles, files read, files unreadable).
    """
    from privacy_core.deid.batch import list_inputs
    from privacy_core.deid.engine import quiet_pydicom

    needles: dict[str, Needle] = {}
    kept: set[str] = set()
    read = unreadable = 0
    for index, path in enumerate(list_inputs(input_root)):
        ds = _read(path)
        if ds is None:
            unreadable += 1
            continue
        read += 1
        with quiet_pydicom():
            values = list(_values_of(ds, profile))
        for text, tag, removed in values:
            if removed:
                needles.setdefault(text, Needle(text, tag, index))
            else:
                kept.add(text)
    kept_blob = "\n".join(kept).lower()
    result = [n for n in needles.values() if n.text.lower() not in kept_blob]
    return result, read, unreadable


def _read(path: Path) -> Dataset | None:
    """Read a DICOM file (with or without preamble); anything else, including garbage forced through, is None."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    from privacy_core.deid.engine import quiet_pydicom

    with quiet_pydicom():
        try:
            return dcmread(path)
        except InvalidDicomError:
            try:
                ds = dcmread(path, force=True)
            except Exception:
                return None
            return ds if 0x00080016 in ds or 0x00100020 in ds else None
        except Exception:
            return None


def _values_of(ds: Dataset, profile: Profile) -> Iterator[tuple[str, str, bool]]:
    """(value text, tag, must-not-survive) for every searchable value in ``ds``, nested ones included."""
    stack: list[tuple[Dataset, bool, bool]] = [(ds, False, False)]
    if getattr(ds, "file_meta", None) is not None:
        stack.append((ds.file_meta, False, False))
    while stack:
        current, removed_above, dummy_above = stack.pop()
        for elem in _elements(current):
            removed, dummy = _fate(current, elem, profile, removed_above, dummy_above)
            if elem.VR == "SQ":
                for item in elem.value or ():
                    stack.append((item, removed, dummy))
                continue
            tag = f"({elem.tag.group:04X},{elem.tag.element:04X})"
            for text in _texts(elem):
                yield text, tag, removed


def _elements(ds: Dataset) -> Iterator[DataElement]:
    for tag in list(ds.keys()):
        try:
            yield ds[tag]
        except Exception:  # an undecodable value: its raw bytes are still searched for below
            raw = ds.get_item(tag)
            if raw is not None and isinstance(getattr(raw, "value", None), bytes):
                from pydicom.dataelem import DataElement

                yield DataElement(tag, "UN", raw.value)


def _fate(
    ds: Dataset, elem: DataElement, profile: Profile, removed_above: bool, dummy_above: bool
) -> tuple[bool, bool]:
    """(must not survive, inside a replaced subtree) for one element, from the profile table alone."""
    tag = int(elem.tag)
    group = tag >> 16
    if group & 1:
        if 0x0010 <= (tag & 0xFFFF) <= 0x00FF:
            return False, dummy_above  # creator names identify a vendor, not a person
        return removed_above or not _safe_private(ds, tag, profile), dummy_above
    if group in OVERLAY_GROUPS or group in CURVE_GROUPS:
        return removed_above or profile.graphics_action is Action.REMOVE, dummy_above
    action = profile.action_for(tag)
    if action is None:
        if tag in _VOCABULARY:  # concept names and units are walked as they are, even in replaced trees
            return removed_above, False
        free_text = elem.VR in ("LO", "LT", "SH", "ST", "UT", "UC", "PN")
        return removed_above or (dummy_above and free_text), dummy_above
    if action is Action.CLEAN:
        return removed_above or elem.VR in ("DA", "DT"), dummy_above
    if action is Action.KEEP:
        return removed_above, dummy_above
    whole = action in (Action.REMOVE, Action.ZERO)
    return removed_above or whole or elem.VR != "SQ", dummy_above or action is Action.DUMMY


#: ConceptNameCodeSequence, ConceptCodeSequence, MeasurementUnitsCodeSequence.
_VOCABULARY = frozenset({0x0040A043, 0x0040A168, 0x004008EA})


def _safe_private(ds: Dataset, tag: int, profile: Profile) -> bool:
    if not profile.retain_safe_private or (tag & 0xFFFF) < 0x1000:
        return False
    creator_tag = (tag & 0xFFFF0000) | ((tag & 0xFFFF) >> 8)
    creator = str(ds[creator_tag].value).strip().upper() if creator_tag in ds else ""
    return (creator, tag >> 16, tag & 0xFF) in SAFE_PRIVATE


def _texts(elem: DataElement) -> Iterator[str]:
    """Searchable strings of one element: text values, and printable runs inside binary values."""
    value: Any = elem.value
    if value is None:
        return
    if isinstance(value, bytes):
        for run in _PRINTABLE_RUN.findall(value):
            yield from _usable(run.decode("ascii"))
        return
    if elem.VR not in SEARCHED_VRS:
        return
    from pydicom.multival import MultiValue

    for v in list(value) if isinstance(value, MultiValue | list) else [value]:
        text = str(v)
        yield from _usable(text)
        if elem.VR == "PN":  # components are searched for separately: a name can be re-spelled
            for part in re.split(r"[\^=]+", text):
                yield from _usable(part)


def _usable(text: str) -> Iterator[str]:
    text = text.strip(" \x00")
    if len(text) < MIN_NEEDLE:
        return
    if text.replace(".", "").isdigit() and len(text) < MIN_NUMERIC_NEEDLE:
        return
    yield text


def verify_release(input_root: str | Path, output_root: str | Path, profile: Profile) -> LeakReport:
    """Search every byte and path under ``output_root`` for values of ``input_root`` the profile removes."""
    import ahocorasick

    needles, read, unreadable = collect_needles(Path(input_root), profile)
    report = LeakReport(inputs=read, unreadable_inputs=unreadable, needles=len(needles))
    if not needles:
        report.outputs = sum(1 for p in Path(output_root).rglob("*") if p.is_file())
        return report
    automaton = ahocorasick.Automaton()
    for needle in needles:
        for encoded in {needle.text.encode("utf-8"), needle.text.encode("latin-1", "replace")}:
            key = encoded.decode("latin-1").lower()
            automaton.add_word(key, (key, needle))
    automaton.make_automaton()
    longest = max(len(n.text.encode("utf-8")) for n in needles)
    out = Path(output_root)
    for path in sorted(out.rglob("*")):
        rel = str(path.relative_to(out))
        _scan(automaton, rel.lower(), rel, "path", 0, report)
        if path.is_file():
            report.outputs += 1
            _scan_file(automaton, path, rel, longest, report)
    return report


def _scan_file(automaton: Any, path: Path, rel: str, longest: int, report: LeakReport) -> None:
    """Scan in overlapping chunks so a value split across a chunk border is still found."""
    with open(path, "rb") as fh:
        base = 0
        tail = b""
        while chunk := fh.read(_CHUNK):
            data = tail + chunk
            _scan(
                automaton,
                data.decode("latin-1").lower(),
                rel,
                "content",
                base - len(tail),
                report,
                skip_before=len(tail),
            )
            tail = data[-(longest - 1) :] if longest > 1 else b""
            base += len(chunk)


def _scan(
    automaton: Any, haystack: str, rel: str, where: str, base: int, report: LeakReport, skip_before: int = 0
) -> None:
    for end, (key, needle) in automaton.iter(haystack):
        start = end - len(key) + 1
        if end < skip_before or not _bounded(haystack, start, end + 1, key):
            continue
        report.hits.append(Hit(needle.tag, needle.input_index, rel, where, base + start, _mask(needle.text)))


def _bounded(haystack: str, start: int, stop: int, key: str) -> bool:
    """Numbers and UIDs count only as whole tokens: ``20240101`` inside a longer digit run is chance."""
    if not key[0].isdigit():
        return True
    before = haystack[start - 1] if start > 0 else ""
    after = haystack[stop] if stop < len(haystack) else ""
    if before.isdigit() or before == ".":
        return False
    return not (after.isdigit() or (after == "." and stop + 1 < len(haystack) and haystack[stop + 1].isdigit()))


def write_findings(report: LeakReport, path: str | Path) -> None:
    """Write the findings as JSON (masked previews only)."""
    atomic_write_json(
        Path(path),
        {
            "inputs": report.inputs,
            "unreadable_inputs": report.unreadable_inputs,
            "outputs": report.outputs,
            "needles": report.needles,
            "hits": [hit.__dict__ for hit in report.hits],
        },
    )
