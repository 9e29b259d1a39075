"""The data a release reads, as rows keyed by patient: de-identified DICOM headers, and series arrays.

Every row carries its patient pseudonym, the privacy unit. Rows without one cannot be bounded per patient,
so they never reach a statistic. :func:`bound_contributions` then keeps at most ``k`` rows per patient, in an
order fixed by the rows' own (de-identified) UIDs, so the choice depends on nothing but that patient's data.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from privacy_core.errors import ConfigurationError

_BASE_TAGS = ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


@dataclass(frozen=True)
class Row:
    """One record at a level (an instance, a series or a study) and the values the queries read."""

    patient: str
    key: str
    values: dict[str, Any] = field(default_factory=dict)


def dicom_rows(root: str | Path, level: str, fields: Iterable[str]) -> list[Row]:
    """One row per instance, series or study of a de-identified DICOM tree, with ``fields`` read as values.

    A series or study row takes its values from its first instance (in path order). Files that are not
    DICOM (no ``DICM`` preamble) are skipped; a DICOM file that cannot be read stops the release, since
    dropping it would change the statistic unannounced.

    :raises ConfigurationError: the folder is missing or empty, or a DICOM file is unreadable.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    from privacy_core.imaging.series import patient_pseudonym

    folder = Path(root)
    if not folder.is_dir():
        raise ConfigurationError("sources.dicom", f"{folder} is not a folder", "give the de-identified DICOM tree")
    wanted = list(dict.fromkeys([*_BASE_TAGS, *fields]))
    rows: dict[str, Row] = {}
    seen = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if not _is_dicom(path):
            continue
        seen += 1
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=wanted)
        except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
            raise ConfigurationError(
                "sources.dicom",
                f"{path.relative_to(folder)} cannot be read ({exc.__class__.__name__})",
                "verify the de-identified release (imaging-privacy verify) and remove or repair the file",
            ) from None
        key = {
            "instance": str(ds.get("SOPInstanceUID", "")),
            "series": str(ds.get("SeriesInstanceUID", "")),
            "study": str(ds.get("StudyInstanceUID", "")),
        }[level]
        if not key or key in rows:
            continue
        values = {name: _value(ds, name) for name in fields}
        rows[key] = Row(patient_pseudonym(str(ds.get("PatientID", ""))), key, values)
    if not seen:
        raise ConfigurationError("sources.dicom", f"{folder} holds no DICOM files", "point it at de-identified output")
    return list(rows.values())


def zarr_rows(store_url: str, storage_options: dict[str, Any] | None = None) -> list[Row]:
    """One row per complete series array of a store: its URL as key, its shape and modality as values."""
    from privacy_core.imaging.zarr_store import list_series, read_record

    rows = []
    for url in list_series(store_url, storage_options=storage_options):
        record = read_record(url, storage_options=storage_options)
        values = {
            "url": url,
            "shape": tuple(record["shape"]),
            "modality": record.get("modality", ""),
            "rescaled": bool(record.get("rescaled")),
        }
        rows.append(Row(str(record.get("patient", "")), str(record["series_uid"]), values))
    return rows


def bound_contributions(rows: Sequence[Row], max_per_patient: int) -> list[Row]:
    """Keep at most ``max_per_patient`` rows of each patient; drop rows with no patient.

    Which rows stay is fixed by a hash of each row's key, so it does not depend on other patients.

    >>> rows = [Row("P1", "a"), Row("P1", "b"), Row("P1", "c"), Row("", "d"), Row("P2", "e")]
    >>> sorted(r.key for r in bound_contributions(rows, 2)) in (["a", "b", "e"], ["a", "c", "e"], ["b", "c", "e"])
    True
    """
    if max_per_patient < 1:
        raise ConfigurationError("max_records_per_patient", f"is {max_per_patient}", "give 1 or more")
    by_patient: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        if row.patient:
            by_patient[row.patient].append(row)
    kept: list[Row] = []
    for patient in sorted(by_patient):
        ordered = sorted(by_patient[patient], key=lambda r: hashlib.sha256(r.key.encode()).digest())
        kept.extend(ordered[:max_per_patient])
    return kept


def _is_dicom(path: Path) -> bool:
    """A Part 10 file: 128-byte preamble then ``DICM``."""
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def _value(ds: Any, name: str) -> Any:
    """A header value as a number or string (the first of a multi-value; AS ages as years), or None."""
    element = ds.data_element(name) if name in ds else None
    if element is None or element.value in (None, ""):
        return None
    value = element.value
    if element.VR == "AS":
        return _age_years(str(value))
    if isinstance(value, list | tuple) or value.__class__.__name__ == "MultiValue":
        value = value[0] if len(value) else None
    if element.VR in ("CS", "LO", "SH"):
        return str(value).strip()
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _age_years(text: str) -> float | None:
    """An AS value (``045Y``, ``006M``, ``010W``, ``003D``) in years.

    >>> _age_years("045Y"), _age_years("006M"), _age_years("bad")
    (45.0, 0.5, None)
    """
    units = {"Y": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}
    if len(text) == 4 and text[:3].isdigit() and text[3] in units:
        return int(text[:3]) * units[text[3]]
    return None
