"""DICOM series to volumes: group files by series, order slices by geometry, read pixels slab by slab.

Slices are ordered by where they are, not by what they are called: the projection of ImagePositionPatient
onto the slice normal (row cosines x column cosines). File names and InstanceNumber are often shuffled or
restarted by de-identification and PACS exports, so InstanceNumber only breaks ties. A series that cannot be
ordered or stacked is left out with a :class:`SeriesProblem` whose category is a fixed word, safe for logs;
details never quote attribute values or input paths (paths may hold patient names).

Headers are read without pixels (``stop_before_pixels``), so grouping a large tree costs little memory;
pixels are decoded later, one slab at a time (:func:`iter_slabs`).
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from privacy_core.errors import ConfigurationError, QuarantineError

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from pydicom.dataset import Dataset

__all__ = [
    "PROBLEM_CATEGORIES",
    "SeriesGeometry",
    "SeriesProblem",
    "SeriesVolume",
    "group_series",
    "is_uid",
    "iter_slabs",
    "read_volume",
]

LOG = logging.getLogger(__name__)

#: The fixed words a :class:`SeriesProblem` is filed under.
PROBLEM_CATEGORIES: tuple[str, ...] = (
    "inconsistent-shape",
    "missing-geometry",
    "mixed-modality",
    "unreadable-pixels",
    "not-dicom",
    "duplicate-position",
)
#: Two slices closer than this along the normal (mm) are at the same position.
POSITION_TOLERANCE_MM = 1e-3
#: A gap may differ from the median gap by this fraction before the spacing counts as non-uniform.
SPACING_TOLERANCE = 0.01
#: Direction cosines of one stack may differ by this much (they are rounded decimal strings).
ORIENTATION_TOLERANCE = 1e-4
#: Slices read at a time by :func:`read_volume`.
_READ_SLAB = 64
_IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@dataclass(frozen=True)
class SeriesGeometry:
    """Where the voxels are in patient space (DICOM LPS, millimetres).

    :param spacing: voxel size (z, y, x): slice gap, then PixelSpacing (row gap, column gap).
    :param origin: patient coordinates (x, y, z) of the first voxel of the first slice.
    :param direction: 9 numbers: row cosines, column cosines, slice normal.
    :param partial: some of the above was defaulted (1.0 mm, origin 0, identity) because the header lacks it,
        e.g. plain multi-frame files (RT dose without offsets, US cine, secondary capture).
    :param uniform_spacing: every slice gap is within 1% of the median; False means ``spacing[0]`` is the
        median of uneven gaps, so resampling is needed before the spacing can be trusted.
    """

    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    partial: bool = False
    uniform_spacing: bool = True

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (lists for tuples)."""
        return {
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "direction": list(self.direction),
            "partial": self.partial,
            "uniform_spacing": self.uniform_spacing,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeriesGeometry:
        """Inverse of :meth:`as_dict`."""
        spacing = tuple(float(v) for v in data["spacing"])
        origin = tuple(float(v) for v in data["origin"])
        return cls(
            spacing=(spacing[0], spacing[1], spacing[2]),
            origin=(origin[0], origin[1], origin[2]),
            direction=tuple(float(v) for v in data["direction"]),
            partial=bool(data.get("partial", False)),
            uniform_spacing=bool(data.get("uniform_spacing", True)),
        )


@dataclass(frozen=True)
class SeriesVolume:
    """One series as a volume, described from headers; :func:`read_volume` or :func:`iter_slabs` read pixels.

    :param series_uid: SeriesInstanceUID (de-identified input: the new UID).
    :param study_uid: StudyInstanceUID.
    :param modality: Modality (e.g. ``CT``); empty when absent.
    :param files: the files, in geometric slice order (one file for a multi-frame series).
    :param shape: (z, y, x), or (z, y, x, c) for colour.
    :param dtype: numpy dtype name of the stored values.
    :param geometry: spacing, origin and direction.
    :param rescaled: the series has a modality rescale (RescaleSlope/Intercept other than 1/0, or RT dose
        grid scaling), so ``rescale=True`` changes values. Colour images never have one.
    :param rescale_dtype: dtype of the values ``rescale=True`` returns: int16 or int32 when every slope and
        intercept is an integer and the rescaled range of BitsStored fits, float32 otherwise.
    :param frames: for a single (multi-frame) file, the frame index at each z; empty for one file per slice.
    :param bits_stored: DICOM BitsStored (0 when unknown): the real dynamic range of stored values.
    :param patient: the patient pseudonym (PatientID as de-identification wrote it), the unit of DP releases;
        empty when PatientID is absent or does not have the pseudonym's form (see :func:`patient_pseudonym`).
    """

    series_uid: str
    study_uid: str
    modality: str
    files: tuple[Path, ...]
    shape: tuple[int, ...]
    dtype: str
    geometry: SeriesGeometry
    rescaled: bool
    rescale_dtype: str = "float32"
    frames: tuple[int, ...] = ()
    bits_stored: int = 0
    patient: str = ""

    def output_dtype(self, rescale: bool) -> str:
        """The dtype :func:`read_volume` returns for this ``rescale`` flag."""
        return self.rescale_dtype if rescale and self.rescaled else self.dtype


@dataclass(frozen=True)
class SeriesProblem:
    """A series (or files) left out, and why.

    :param series_uid: the series, or None for files that could not be assigned to one.
    :param files: how many files it concerns.
    :param category: one of :data:`PROBLEM_CATEGORIES`; safe for logs.
    :param detail: what is wrong and what to do; names attributes and counts, never values or paths.
    """

    series_uid: str | None
    files: int
    category: str
    detail: str


# --------------------------------------------------------------------------------------------- headers


@dataclass(frozen=True)
class _Frame:
    """Geometry and rescale of one frame (or of the one frame of a single-frame file)."""

    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    thickness: float | None
    between: float | None
    slope: float
    intercept: float


@dataclass(frozen=True)
class _Header:
    """What grouping needs from one file's header."""

    path: Path
    series_uid: str
    study_uid: str
    modality: str
    patient: str
    rows: int
    columns: int
    samples: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    number_of_frames: int
    instance_number: int
    frames: tuple[_Frame, ...]

    @property
    def has_image(self) -> bool:
        return self.rows > 0 and self.columns > 0


def _read_header(path: Path) -> _Header:
    """Read one header without pixels.

    :raises QuarantineError: ``not-dicom`` when pydicom cannot parse it or it names no series.
    """
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    from privacy_core.deid.engine import quiet_pydicom

    with quiet_pydicom():
        try:
            try:
                ds = dcmread(path, stop_before_pixels=True)
            except InvalidDicomError:
                ds = dcmread(path, stop_before_pixels=True, force=True)
                if 0x00080016 not in ds:
                    raise QuarantineError("not-dicom", "no DICM prefix and no SOP Class UID") from None
            return _header(path, ds)
        except QuarantineError:
            raise
        except Exception as exc:
            raise QuarantineError("not-dicom", f"pydicom cannot parse the header ({type(exc).__name__})") from None


def is_uid(text: str) -> bool:
    """Whether ``text`` looks like a DICOM UID: digits and dots, at most 64 characters.

    Only such values name arrays or go into metadata; anything else may be free text from a bad header.

    >>> is_uid("2.25.1234"), is_uid("DOE^JOHN"), is_uid("")
    (True, False, False)
    """
    return 0 < len(text) <= 64 and all(part.isascii() and part.isdigit() for part in text.split("."))


#: The form of a patient pseudonym written by :class:`privacy_core.deid.pseudonym.Pseudonymizer`.
_PSEUDONYM = re.compile(r"PAT[0-9A-HJ-NP-TV-Z]{13}")


def patient_pseudonym(value: str) -> str:
    """``value`` if it has the form of our patient pseudonym, else ``""``: only pseudonyms reach metadata.

    >>> patient_pseudonym("PAT0123456789ABC"), patient_pseudonym("DOE^JOHN")
    ('PAT0123456789ABC', '')
    """
    return value if _PSEUDONYM.fullmatch(value) else ""


def _header(path: Path, ds: Dataset) -> _Header:
    series_uid = _text(ds, "SeriesInstanceUID")
    if not is_uid(series_uid):
        raise QuarantineError("not-dicom", "no SeriesInstanceUID, or one that is not digits and dots")
    study_uid = _text(ds, "StudyInstanceUID")
    frames = max(_int(ds, "NumberOfFrames", 1), 1)
    bits_allocated = _int(ds, "BitsAllocated", 0)
    return _Header(
        path=path,
        series_uid=series_uid,
        study_uid=study_uid if is_uid(study_uid) else "",
        modality=_text(ds, "Modality"),
        patient=patient_pseudonym(_text(ds, "PatientID")),
        rows=_int(ds, "Rows", 0),
        columns=_int(ds, "Columns", 0),
        samples=max(_int(ds, "SamplesPerPixel", 1), 1),
        bits_allocated=bits_allocated,
        bits_stored=_int(ds, "BitsStored", bits_allocated),
        pixel_representation=_int(ds, "PixelRepresentation", 0),
        number_of_frames=frames,
        instance_number=_int(ds, "InstanceNumber", 0),
        frames=_frames(ds, frames),
    )


def _frames(ds: Dataset, count: int) -> tuple[_Frame, ...]:
    """Per-frame geometry and rescale: functional groups (enhanced objects) first, then the top level.

    RT dose grids give frame positions as GridFrameOffsetVector along the normal from ImagePositionPatient;
    either form of the vector (relative, first value 0, or absolute z) becomes an offset from frame 0.
    """
    top_position = _floats(ds, "ImagePositionPatient", 3)
    top_orientation = _floats(ds, "ImageOrientationPatient", 6)
    top_spacing = _floats(ds, "PixelSpacing", 2) or _floats(ds, "ImagerPixelSpacing", 2)
    top_thickness = _float(ds, "SliceThickness")
    top_between = _float(ds, "SpacingBetweenSlices")
    top_slope = _float(ds, "RescaleSlope")
    top_intercept = _float(ds, "RescaleIntercept")
    if top_slope is None and _text(ds, "Modality") == "RTDOSE":
        top_slope = _float(ds, "DoseGridScaling")
    offsets = _floats(ds, "GridFrameOffsetVector", count) if count > 1 else None
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared = ds.get("SharedFunctionalGroupsSequence")
    shared_item = shared[0] if shared else None

    result: list[_Frame] = []
    for index in range(count):
        items = (per_frame[index] if per_frame and index < len(per_frame) else None, shared_item)
        plane_position = _group_item(items, "PlanePositionSequence")
        plane_orientation = _group_item(items, "PlaneOrientationSequence")
        measures = _group_item(items, "PixelMeasuresSequence")
        transform = _group_item(items, "PixelValueTransformationSequence")
        orientation = _floats(plane_orientation, "ImageOrientationPatient", 6) or top_orientation
        position = _floats(plane_position, "ImagePositionPatient", 3)
        if position is None and top_position is not None:
            if index == 0:
                position = top_position
            elif offsets is not None and orientation is not None:
                normal = _normal(orientation)
                step = offsets[index] - offsets[0]
                position = (
                    top_position[0] + step * normal[0],
                    top_position[1] + step * normal[1],
                    top_position[2] + step * normal[2],
                )
        spacing = _floats(measures, "PixelSpacing", 2) or top_spacing
        thickness = _float(measures, "SliceThickness")
        between = _float(measures, "SpacingBetweenSlices")
        slope, intercept = _float(transform, "RescaleSlope"), _float(transform, "RescaleIntercept")
        result.append(
            _Frame(
                position=_vector3(position),
                orientation=orientation,
                pixel_spacing=(spacing[0], spacing[1]) if spacing else None,
                thickness=thickness if thickness is not None else top_thickness,
                between=between if between is not None else top_between,
                slope=slope if slope is not None else (top_slope if top_slope is not None else 1.0),
                intercept=intercept if intercept is not None else (top_intercept or 0.0),
            )
        )
    return tuple(result)


def _group_item(items: tuple[Dataset | None, Dataset | None], keyword: str) -> Dataset | None:
    """The first item of a functional group macro: per-frame item first, then the shared one."""
    for item in items:
        sequence = item.get(keyword) if item is not None else None
        if sequence:
            return sequence[0]  # type: ignore[no-any-return]
    return None


def _text(ds: Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except Exception:
        return ""
    return str(value).strip() if value is not None else ""


def _int(ds: Dataset, keyword: str, default: int) -> int:
    try:
        value = ds.get(keyword)
        return default if value is None or value == "" else int(value)
    except (TypeError, ValueError, OverflowError):
        return default


def _float(ds: Dataset | None, keyword: str) -> float | None:
    if ds is None:
        return None
    try:
        value = ds.get(keyword)
        number = None if value is None or value == "" else float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number is not None and math.isfinite(number) else None


def _floats(ds: Dataset | None, keyword: str, count: int) -> tuple[float, ...] | None:
    """``count`` finite numbers, or None when absent, short or malformed."""
    if ds is None:
        return None
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return None
        items = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
        numbers = tuple(float(v) for v in items)
    except (TypeError, ValueError, OverflowError):
        return None
    if len(numbers) != count or not all(math.isfinite(v) for v in numbers):
        return None
    return numbers


def _vector3(values: tuple[float, ...] | None) -> tuple[float, float, float] | None:
    return (values[0], values[1], values[2]) if values is not None else None


# -------------------------------------------------------------------------------------------- geometry


def _unit(v: Sequence[float]) -> tuple[float, float, float]:
    norm = math.sqrt(sum(x * x for x in v))
    if norm == 0:
        raise QuarantineError("missing-geometry", "ImageOrientationPatient has zero-length cosines")
    return (v[0] / norm, v[1] / norm, v[2] / norm)


def _normal(orientation: Sequence[float]) -> tuple[float, float, float]:
    """Slice normal: row cosines x column cosines, unit length."""
    r, c = orientation[:3], orientation[3:6]
    return _unit((r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]))


def _direction(orientation: Sequence[float]) -> tuple[float, ...]:
    return (*_unit(orientation[:3]), *_unit(orientation[3:6]), *_normal(orientation))


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _same_orientation(frames: Sequence[_Frame]) -> bool:
    first = frames[0].orientation
    assert first is not None
    return all(
        f.orientation is not None
        and max(abs(a - b) for a, b in zip(first, f.orientation, strict=True)) <= ORIENTATION_TOLERANCE
        for f in frames
    )


def _geometric_order(frames: Sequence[_Frame], ties: Sequence[tuple[int, str]]) -> tuple[list[int], float, bool]:
    """Order frames along the normal; return (order, median gap, uniform).

    :raises QuarantineError: ``inconsistent-shape`` for mixed orientations, ``duplicate-position`` for
        two frames at one position.
    """
    if not _same_orientation(frames):
        raise QuarantineError(
            "inconsistent-shape",
            "slices differ in ImageOrientationPatient, so they are not one stack; split the series by orientation",
        )
    orientation = frames[0].orientation
    assert orientation is not None
    normal = _normal(orientation)
    along = [_dot(f.position or (0.0, 0.0, 0.0), normal) for f in frames]
    order = sorted(range(len(frames)), key=lambda i: (along[i], ties[i]))
    gaps = [along[b] - along[a] for a, b in itertools.pairwise(order)]
    duplicates = sum(1 for g in gaps if g <= POSITION_TOLERANCE_MM)
    if duplicates:
        raise QuarantineError(
            "duplicate-position",
            f"{duplicates} slice(s) share a position along the normal with another slice; "
            "remove repeated acquisitions or split the series (e.g. by time or echo)",
        )
    gap = statistics.median(gaps)
    uniform = all(abs(g - gap) <= SPACING_TOLERANCE * gap for g in gaps)
    return order, gap, uniform


def _in_plane(frames: Sequence[_Frame]) -> tuple[float, float] | None:
    """PixelSpacing shared by every frame, None when any lacks it.

    :raises QuarantineError: ``inconsistent-shape`` when frames disagree.
    """
    spacings = {f.pixel_spacing for f in frames}
    if None in spacings:
        return None
    if len(spacings) > 1:
        first = frames[0].pixel_spacing
        assert first is not None
        if any(
            s is not None and max(abs(a - b) for a, b in zip(first, s, strict=True)) > 1e-4 * max(first)
            for s in spacings
        ):
            raise QuarantineError("inconsistent-shape", "slices differ in PixelSpacing; resample or split the series")
    return frames[0].pixel_spacing


def _geometry(
    first: _Frame, gap: float | None, in_plane: tuple[float, float] | None, *, uniform: bool = True
) -> SeriesGeometry:
    """Geometry from the first frame in order; missing parts default and mark it partial."""
    z = gap if gap is not None else (first.between or first.thickness)
    partial = z is None or in_plane is None or first.position is None or first.orientation is None
    return SeriesGeometry(
        spacing=(float(z or 1.0), *(in_plane or (1.0, 1.0))),
        origin=first.position or (0.0, 0.0, 0.0),
        direction=_direction(first.orientation or _IDENTITY),
        partial=partial,
        uniform_spacing=uniform,
    )


def _stack(uid: str, headers: list[_Header]) -> tuple[list[_Header], SeriesGeometry]:
    """One file per slice: every slice must have a position and orientation."""
    frames = [h.frames[0] for h in headers]
    missing = sum(1 for f in frames if f.position is None or f.orientation is None)
    if missing:
        raise QuarantineError(
            "missing-geometry",
            f"{missing} of {len(frames)} slices lack ImagePositionPatient or ImageOrientationPatient, "
            "so the slices cannot be ordered; restore them or convert the files one by one",
        )
    order, gap, uniform = _geometric_order(frames, [(h.instance_number, str(h.path)) for h in headers])
    if not uniform:
        LOG.warning("series %s: slice gaps vary by more than 1%%; spacing is their median", uid)
    ordered = [headers[i] for i in order]
    geometry = _geometry(ordered[0].frames[0], gap, _in_plane(frames), uniform=uniform)
    return ordered, geometry


def _one_file(uid: str, header: _Header) -> tuple[tuple[int, ...], SeriesGeometry]:
    """A single file: its frames are the slices, ordered by position when every frame has one."""
    frames = header.frames
    if len(frames) > 1 and all(f.position is not None and f.orientation is not None for f in frames):
        order, gap, uniform = _geometric_order(frames, [(i, "") for i in range(len(frames))])
        if not uniform:
            LOG.warning("series %s: frame gaps vary by more than 1%%; spacing is their median", uid)
        return tuple(order), _geometry(frames[order[0]], gap, _in_plane(frames), uniform=uniform)
    geometry = _geometry(frames[0], None, _in_plane(frames))
    if len(frames) > 1 and not geometry.partial:
        geometry = SeriesGeometry(geometry.spacing, geometry.origin, geometry.direction, partial=True)
    return tuple(range(len(frames))), geometry


def _stored_dtype(bits_allocated: int, pixel_representation: int) -> str:
    if bits_allocated == 1:
        return "uint8"  # pydicom unpacks bit-packed frames to one byte per pixel
    if bits_allocated in (8, 16, 32, 64):
        return f"{'int' if pixel_representation == 1 else 'uint'}{bits_allocated}"
    raise QuarantineError(
        "unreadable-pixels", "BitsAllocated is not 1, 8, 16, 32 or 64; re-encode the series with a standard depth"
    )


def _stored_range(header: _Header) -> tuple[int, int]:
    if header.bits_allocated == 1:
        return 0, 1
    bits = min(max(header.bits_stored, 1), header.bits_allocated)
    if header.pixel_representation == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _rescale_dtype(header: _Header, pairs: set[tuple[float, float]]) -> str:
    """int16/int32 when integer slopes and intercepts map BitsStored's range into it, else float32."""
    if not all(s.is_integer() and i.is_integer() for s, i in pairs):
        return "float32"
    lo, hi = _stored_range(header)
    ends = [s * v + i for s, i in pairs for v in (lo, hi)]
    low, high = min(ends), max(ends)
    for name, bits in (("int16", 16), ("int32", 32)):
        if -(2 ** (bits - 1)) <= low and high <= 2 ** (bits - 1) - 1:
            return name
    return "float32"


def _assemble(uid: str, headers: list[_Header]) -> SeriesVolume:
    """Check one series' headers and describe its volume.

    :raises QuarantineError: with one of :data:`PROBLEM_CATEGORIES`.
    """
    modalities = {h.modality for h in headers}
    if len(modalities) > 1:
        raise QuarantineError(
            "mixed-modality", f"{len(modalities)} different Modality values in one series; split the series"
        )
    no_image = sum(1 for h in headers if not h.has_image)
    if no_image:
        raise QuarantineError(
            "unreadable-pixels",
            f"{no_image} of {len(headers)} files have no Rows/Columns (not an image, e.g. SR or RT plan)",
        )
    fields = ("rows", "columns", "samples", "bits_allocated", "pixel_representation")
    names = ("Rows", "Columns", "SamplesPerPixel", "BitsAllocated", "PixelRepresentation")
    differing = [name for f, name in zip(fields, names, strict=True) if len({getattr(h, f) for h in headers}) > 1]
    if differing:
        raise QuarantineError(
            "inconsistent-shape", f"files differ in {', '.join(differing)}; split or resample the series"
        )
    first = headers[0]
    dtype = _stored_dtype(first.bits_allocated, first.pixel_representation)
    if len(headers) == 1:
        frames, geometry = _one_file(uid, first)
        ordered = headers
        depth = len(frames)
    else:
        multi = sum(1 for h in headers if h.number_of_frames > 1)
        if multi:
            raise QuarantineError(
                "inconsistent-shape",
                f"{multi} multi-frame file(s) among {len(headers)} files; each multi-frame file is a volume "
                "of its own, so give each its own series",
            )
        ordered, geometry = _stack(uid, headers)
        frames, depth = (), len(ordered)
    pairs = {(f.slope, f.intercept) for h in headers for f in h.frames}
    colour = first.samples > 1
    rescaled = not colour and any(s != 1.0 or i != 0.0 for s, i in pairs)
    shape: tuple[int, ...] = (depth, first.rows, first.columns) + ((first.samples,) if colour else ())
    return SeriesVolume(
        series_uid=uid,
        study_uid=first.study_uid,
        modality=first.modality,
        files=tuple(h.path for h in ordered),
        shape=shape,
        dtype=dtype,
        geometry=geometry,
        rescaled=rescaled,
        rescale_dtype=_rescale_dtype(first, pairs) if rescaled else dtype,
        frames=frames,
        bits_stored=first.bits_stored,
        patient=first.patient if len({h.patient for h in headers}) == 1 else "",
    )


def group_series(root: Path, *, exclude: Sequence[str] = ()) -> tuple[list[SeriesVolume], list[SeriesProblem]]:
    """Group the DICOM files under ``root`` into series volumes, reading headers only.

    Files that are not DICOM (or name no series) are counted in one ``not-dicom`` problem; a series that
    cannot be stacked is reported and the others still come back. Both lists are sorted by series UID.

    :param root: a folder (searched recursively) or one file.
    :return: (volumes, problems).
    :raises ConfigurationError: ``root`` does not exist.

    >>> import shutil, tempfile, pydicom
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = shutil.copy(Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm", root)
    >>> volumes, problems = group_series(root)
    >>> volumes[0].shape, volumes[0].dtype, volumes[0].rescale_dtype, problems
    ((1, 128, 128), 'int16', 'int32', [])
    """
    from privacy_core.deid.batch import list_inputs

    by_series: dict[str, list[_Header]] = {}
    unreadable = 0
    for path in list_inputs(Path(root)):
        if exclude and set(path.relative_to(root).parts[:-1]) & set(exclude):
            continue  # e.g. a release's lineage/ folder: records, not images
        try:
            header = _read_header(path)
        except QuarantineError:
            unreadable += 1
            continue
        by_series.setdefault(header.series_uid, []).append(header)

    volumes: list[SeriesVolume] = []
    problems: list[SeriesProblem] = []
    if unreadable:
        problems.append(
            SeriesProblem(
                None, unreadable, "not-dicom", f"{unreadable} file(s) are not DICOM or name no valid SeriesInstanceUID"
            )
        )
    for uid in sorted(by_series):
        headers = by_series[uid]
        try:
            volumes.append(_assemble(uid, headers))
        except QuarantineError as exc:
            problems.append(SeriesProblem(uid, len(headers), exc.category, exc.detail))
    return volumes, problems


# ---------------------------------------------------------------------------------------------- pixels


def _decode(path: Path, volume: SeriesVolume, rescale: bool) -> NDArray[Any]:
    """All frames of one file as (frames, y, x[, c]) in the output dtype.

    :raises QuarantineError: ``unreadable-pixels``; the detail names the problem, never values.
    """
    import numpy as np
    from pydicom import dcmread

    from privacy_core.deid.engine import quiet_pydicom

    # dcmread, not engine.read_dicom: the latter's truncation check misreads a two-character NumberOfFrames
    # in implicit VR as US (pydicom's rtdose.dcm). pixel_array itself refuses short pixel data.
    with quiet_pydicom():
        try:
            ds = dcmread(path, force=True)
            pixels = np.asarray(ds.pixel_array)
            frames = _frames(ds, max(_int(ds, "NumberOfFrames", 1), 1))
        except Exception as exc:
            raise QuarantineError("unreadable-pixels", f"pixel data cannot be decoded ({type(exc).__name__})") from None
    plane = volume.shape[1:]
    if pixels.shape == plane:
        pixels = pixels[np.newaxis]
    if pixels.shape[1:] != plane or pixels.shape[0] != len(frames):
        raise QuarantineError(
            "unreadable-pixels", "decoded pixels do not match Rows, Columns, SamplesPerPixel and NumberOfFrames"
        )
    pixels = _as_dtype(pixels, volume.dtype)
    if not (rescale and volume.rescaled):
        return pixels
    return _apply_rescale(pixels, frames, volume.rescale_dtype)


def _as_dtype(pixels: NDArray[Any], dtype: str) -> NDArray[Any]:
    """Cast decoded pixels to the dtype the header promised, refusing any cast that changes values."""
    import numpy as np

    if pixels.dtype == np.dtype(dtype):
        return pixels
    target = np.dtype(dtype)
    fits = np.can_cast(pixels.dtype, target)
    if not fits and pixels.dtype.kind in "iu" and target.kind in "iu" and pixels.size:
        info = np.iinfo(target)
        fits = info.min <= int(pixels.min()) and int(pixels.max()) <= info.max
    if not fits:
        raise QuarantineError(
            "unreadable-pixels",
            "decoded pixel type does not match BitsAllocated/PixelRepresentation; fix the header or re-encode",
        )
    return pixels.astype(target)


def _apply_rescale(pixels: NDArray[Any], frames: Sequence[_Frame], dtype: str) -> NDArray[Any]:
    """value * slope + intercept per frame, in ``dtype`` (checked, not wrapped, for integer types)."""
    import numpy as np

    shape = (len(frames),) + (1,) * (pixels.ndim - 1)
    target = np.dtype(dtype)
    if target.kind == "i":
        slopes = np.array([int(f.slope) for f in frames], dtype=np.int64).reshape(shape)
        intercepts = np.array([int(f.intercept) for f in frames], dtype=np.int64).reshape(shape)
        wide = pixels.astype(np.int64) * slopes + intercepts
        info = np.iinfo(target)
        if wide.size and (int(wide.min()) < info.min or int(wide.max()) > info.max):
            raise QuarantineError(
                "unreadable-pixels",
                f"rescaled values do not fit {dtype}: stored values exceed BitsStored; fix BitsStored",
            )
        return wide.astype(target)
    slopes_f = np.array([f.slope for f in frames], dtype=np.float64).reshape(shape)
    intercepts_f = np.array([f.intercept for f in frames], dtype=np.float64).reshape(shape)
    return (pixels.astype(np.float64) * slopes_f + intercepts_f).astype(target)


def iter_slabs(volume: SeriesVolume, *, slices_per_slab: int, rescale: bool) -> Iterator[tuple[int, NDArray[Any]]]:
    """Yield ``(z_start, slab)`` in geometric order, ``slices_per_slab`` slices at a time (the last may be short).

    One file per slice: only a slab's files are decoded at once. A multi-frame file is decoded once (pydicom
    holds its pixel data in memory anyway) and sliced.

    :param slices_per_slab: slices per slab, at least 1.
    :param rescale: apply RescaleSlope/Intercept per slice (see :attr:`SeriesVolume.rescale_dtype`).
    :raises ConfigurationError: ``slices_per_slab`` below 1.
    :raises QuarantineError: ``unreadable-pixels`` when a file's pixels cannot be decoded.
    """
    import numpy as np

    if slices_per_slab < 1:
        raise ConfigurationError(
            "slices_per_slab", f"must be at least 1, got {slices_per_slab}", "pass a positive number of slices"
        )
    depth = volume.shape[0]
    if volume.frames:
        data = _decode(volume.files[0], volume, rescale)
        if volume.frames != tuple(range(len(volume.frames))):
            data = data[list(volume.frames)]
        for start in range(0, depth, slices_per_slab):
            yield start, np.ascontiguousarray(data[start : start + slices_per_slab])
        return
    for start in range(0, depth, slices_per_slab):
        parts = [_decode(path, volume, rescale) for path in volume.files[start : start + slices_per_slab]]
        yield start, np.concatenate(parts, axis=0)


def read_volume(volume: SeriesVolume, *, rescale: bool = False) -> NDArray[Any]:
    """The whole volume as (z, y, x[, c]), slices in geometric order.

    :param rescale: apply RescaleSlope/Intercept per slice. The result is int16 or int32 when every slope
        and intercept is an integer and the rescaled BitsStored range fits (HU of 12-bit CT fit int16; of
        16-bit CT, such as pydicom's CT_small, only int32), float32 otherwise. A series without a rescale
        keeps its stored dtype (:meth:`SeriesVolume.output_dtype`).
    :raises QuarantineError: ``unreadable-pixels`` when pixel data cannot be decoded.

    >>> import shutil, tempfile, pydicom
    >>> root = Path(tempfile.mkdtemp())
    >>> _ = shutil.copy(Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm", root)
    >>> (volume,), _ = group_series(root)
    >>> hu = read_volume(volume, rescale=True)
    >>> hu.shape, str(hu.dtype), int(hu.min() - read_volume(volume).min())
    ((1, 128, 128), 'int32', -1024)
    """
    import numpy as np

    out = np.empty(volume.shape, dtype=volume.output_dtype(rescale))
    for start, slab in iter_slabs(volume, slices_per_slab=_READ_SLAB, rescale=rescale):
        out[start : start + slab.shape[0]] = slab
    return out
