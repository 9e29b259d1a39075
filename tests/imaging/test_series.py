"""Series grouping, geometric slice order, geometry and pixel reading, against values computed here."""

from __future__ import annotations

import math
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from privacy_core.errors import ConfigurationError, QuarantineError
from privacy_core.imaging.series import (
    PROBLEM_CATEGORIES,
    SeriesVolume,
    group_series,
    iter_slabs,
    read_volume,
)
from tests.conftest import PYDICOM_FILES

CT_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2")
ENHANCED_CT_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2.1")
#: An oblique orientation, rounded as it is written (DS values are decimal strings).
ANGLE_A, ANGLE_B = math.radians(20.0), math.radians(15.0)
ROW = tuple(round(v, 6) for v in (math.cos(ANGLE_A), math.sin(ANGLE_A), 0.0))
COLUMN = tuple(
    round(v, 6)
    for v in (-math.sin(ANGLE_A) * math.cos(ANGLE_B), math.cos(ANGLE_A) * math.cos(ANGLE_B), math.sin(ANGLE_B))
)
PIXEL_SPACING = (0.7, 0.8)  # (row gap = y, column gap = x): different, so a swap shows


def _normal(row: tuple[float, ...], column: tuple[float, ...]) -> np.ndarray[Any, np.dtype[np.float64]]:
    n = np.cross(np.array(row), np.array(column))
    return np.asarray(n / np.linalg.norm(n), dtype=np.float64)


@dataclass
class Generated:
    """A written series and what a reader must find, computed independently of the code under test."""

    series_uid: str
    files_in_z_order: list[Path]
    pixels: np.ndarray[Any, np.dtype[np.int16]]  # stored values, (z, y, x), geometric order
    slopes: list[float]
    intercepts: list[float]
    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    direction: tuple[float, ...]


Mutator = Callable[[int, Dataset], None]


def write_ct_series(
    folder: Path,
    *,
    slices: int = 12,
    rows: int = 64,
    columns: int = 64,
    gap: float = 2.5,
    slopes: list[float] | None = None,
    intercept: float = -1024.0,
    seed: int = 0,
    mutate: Mutator | None = None,
) -> Generated:
    """Write an oblique CT series: shuffled file names, InstanceNumbers that disagree with geometry.

    :param mutate: called with (geometric index, dataset) before each file is saved, to build bad input.
    """
    rng = np.random.default_rng(seed)
    shuffle = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    series_uid, study_uid = generate_uid(prefix="2.25."), generate_uid(prefix="2.25.")
    normal = _normal(ROW, COLUMN)
    start = np.array([-120.5, 30.25, 77.0])
    positions = [tuple(round(float(v), 4) for v in start + i * gap * normal) for i in range(slices)]
    pixels = rng.integers(-2048, 2048, size=(slices, rows, columns), dtype=np.int16)  # 12 bits, signed
    pixels[:, 0, 0] = np.arange(slices)  # the geometric index, readable in the output
    slopes = slopes or [1.0] * slices
    names = [f"img{n:04d}.dcm" for n in shuffle.sample(range(1000), slices)]
    instance_numbers = list(range(1, slices + 1))
    shuffle.shuffle(instance_numbers)
    if instance_numbers == sorted(instance_numbers):
        instance_numbers.reverse()
    files: list[Path] = []
    for z in range(slices):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = CT_STORAGE
        sop_uid = generate_uid(prefix="2.25.")
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.SOPClassUID, ds.SOPInstanceUID = CT_STORAGE, sop_uid
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.Modality = "CT"
        ds.InstanceNumber = instance_numbers[z]
        ds.ImagePositionPatient = [str(v) for v in positions[z]]
        ds.ImageOrientationPatient = [str(v) for v in ROW + COLUMN]
        ds.PixelSpacing = [str(v) for v in PIXEL_SPACING]
        ds.SliceThickness = "9.9"  # deliberately not the gap: spacing must come from positions
        ds.RescaleSlope, ds.RescaleIntercept = str(slopes[z]), str(intercept)
        ds.Rows, ds.Columns = rows, columns
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 1
        ds.PixelData = pixels[z].tobytes()
        if mutate is not None:
            mutate(z, ds)
        path = folder / names[z]
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    first = np.array(positions[0])
    along = [float(np.dot(np.array(p) - first, normal)) for p in positions]
    return Generated(
        series_uid=series_uid,
        files_in_z_order=files,
        pixels=pixels,
        slopes=slopes,
        intercepts=[intercept] * slices,
        origin=(positions[0][0], positions[0][1], positions[0][2]),
        spacing=(float(np.median(np.diff(along))), *PIXEL_SPACING),
        direction=(*(np.array(ROW) / np.linalg.norm(ROW)), *(np.array(COLUMN) / np.linalg.norm(COLUMN)), *normal),
    )


def _one(root: Path) -> SeriesVolume:
    volumes, problems = group_series(root)
    assert problems == []
    assert len(volumes) == 1
    return volumes[0]


def _copy(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name.removesuffix(".dcm")
    root.mkdir()
    shutil.copy(PYDICOM_FILES / name, root)
    return root


# ------------------------------------------------------------------------------------------- multi-slice


def test_slices_sorted_by_geometry_not_names_or_instance_numbers(tmp_path: Path) -> None:
    series = write_ct_series(tmp_path / "ct")

    volume = _one(tmp_path / "ct")

    assert volume.files == tuple(series.files_in_z_order)
    assert volume.shape == (12, 64, 64)
    assert volume.dtype == "int16"
    assert volume.series_uid == series.series_uid
    assert volume.modality == "CT"
    assert volume.frames == ()


def test_geometry_matches_independent_computation(tmp_path: Path) -> None:
    series = write_ct_series(tmp_path / "ct")

    geometry = _one(tmp_path / "ct").geometry

    assert geometry.spacing == pytest.approx(series.spacing, abs=1e-4)
    assert geometry.spacing[0] == pytest.approx(2.5, abs=1e-3)
    assert geometry.origin == pytest.approx(series.origin)
    assert geometry.direction == pytest.approx(series.direction, abs=1e-6)
    assert not geometry.partial
    assert geometry.uniform_spacing


def test_read_volume_stored_values_in_geometric_order(tmp_path: Path) -> None:
    series = write_ct_series(tmp_path / "ct")

    data = read_volume(_one(tmp_path / "ct"))

    assert data.dtype == np.int16
    np.testing.assert_array_equal(data, series.pixels)
    assert list(data[:, 0, 0]) == list(range(12))


def test_read_volume_integer_rescale_is_int16(tmp_path: Path) -> None:
    series = write_ct_series(tmp_path / "ct")
    volume = _one(tmp_path / "ct")

    data = read_volume(volume, rescale=True)

    assert volume.rescaled and volume.rescale_dtype == "int16"  # 12 bits stored, -1024: fits int16
    assert data.dtype == np.int16
    np.testing.assert_array_equal(data, series.pixels.astype(np.int64) - 1024)


def test_read_volume_per_slice_float_rescale(tmp_path: Path) -> None:
    slopes = [0.5 + 0.25 * z for z in range(12)]
    series = write_ct_series(tmp_path / "ct", slopes=slopes, intercept=-10.5)

    data = read_volume(_one(tmp_path / "ct"), rescale=True)

    expected = series.pixels * np.array(slopes)[:, None, None] - 10.5
    assert data.dtype == np.float32
    np.testing.assert_allclose(data, expected, rtol=1e-6)


def test_iter_slabs_cover_the_volume_in_order(tmp_path: Path) -> None:
    series = write_ct_series(tmp_path / "ct")
    volume = _one(tmp_path / "ct")

    slabs = list(iter_slabs(volume, slices_per_slab=5, rescale=False))

    assert [start for start, _ in slabs] == [0, 5, 10]
    assert [slab.shape[0] for _, slab in slabs] == [5, 5, 2]
    np.testing.assert_array_equal(np.concatenate([s for _, s in slabs]), series.pixels)


def test_iter_slabs_refuses_zero_slices(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "ct", slices=2)

    with pytest.raises(ConfigurationError, match="slices_per_slab"):
        next(iter_slabs(_one(tmp_path / "ct"), slices_per_slab=0, rescale=False))


def test_uneven_gaps_flagged_not_uniform(tmp_path: Path) -> None:
    def stretch(z: int, ds: Dataset) -> None:
        if z == 11:  # the last slice 3 gaps further out
            position = np.array([float(v) for v in ds.ImagePositionPatient])
            ds.ImagePositionPatient = [str(round(float(v), 4)) for v in position + 7.5 * _normal(ROW, COLUMN)]

    write_ct_series(tmp_path / "ct", mutate=stretch)

    geometry = _one(tmp_path / "ct").geometry

    assert not geometry.uniform_spacing
    assert geometry.spacing[0] == pytest.approx(2.5, abs=1e-3)  # the median ignores the one outlier


# ----------------------------------------------------------------------------------- pydicom's real files


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_single_slice_pydicom_files(tmp_path: Path, name: str) -> None:
    ds = pydicom.dcmread(PYDICOM_FILES / name)

    volume = _one(_copy(tmp_path, name))

    assert volume.shape == (1, ds.Rows, ds.Columns)
    assert volume.geometry.origin == pytest.approx([float(v) for v in ds.ImagePositionPatient])
    assert volume.geometry.spacing == pytest.approx(
        (float(ds.SliceThickness), float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1]))
    )
    assert volume.geometry.direction[:6] == pytest.approx([float(v) for v in ds.ImageOrientationPatient])
    assert not volume.geometry.partial
    np.testing.assert_array_equal(read_volume(volume)[0], ds.pixel_array)
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    np.testing.assert_array_equal(read_volume(volume, rescale=True)[0], ds.pixel_array * slope + intercept)


def test_ct_small_16_bits_stored_rescales_to_int32(tmp_path: Path) -> None:
    volume = _one(_copy(tmp_path, "CT_small.dcm"))

    assert volume.rescale_dtype == "int32"  # 16 bits stored minus 1024 does not fit int16
    assert read_volume(volume, rescale=True).dtype == np.int32


def test_rtdose_multiframe_uses_grid_frame_offsets(tmp_path: Path) -> None:
    ds = pydicom.dcmread(PYDICOM_FILES / "rtdose.dcm")

    volume = _one(_copy(tmp_path, "rtdose.dcm"))

    assert volume.shape == (15, 10, 10)
    assert volume.frames == tuple(range(15))
    assert volume.geometry.spacing == pytest.approx((5.0, 10.0, 10.0))
    assert volume.geometry.origin == pytest.approx([float(v) for v in ds.ImagePositionPatient])
    assert not volume.geometry.partial
    np.testing.assert_array_equal(read_volume(volume), ds.pixel_array)
    dose = read_volume(volume, rescale=True)
    assert dose.dtype == np.float32
    np.testing.assert_allclose(dose, ds.pixel_array * float(ds.DoseGridScaling), rtol=1e-6)


def test_colour_multiframe_without_geometry_is_partial(tmp_path: Path) -> None:
    ds = pydicom.dcmread(PYDICOM_FILES / "SC_rgb_rle_2frame.dcm")

    volume = _one(_copy(tmp_path, "SC_rgb_rle_2frame.dcm"))

    assert volume.shape == (2, 100, 100, 3)
    assert volume.dtype == "uint8"
    assert volume.geometry.partial
    assert volume.geometry.spacing[0] == 1.0
    assert not volume.rescaled
    np.testing.assert_array_equal(read_volume(volume, rescale=True), ds.pixel_array)


def test_enhanced_multiframe_frames_sorted_by_plane_position(tmp_path: Path) -> None:
    normal = _normal(ROW, COLUMN)
    order = [2, 0, 3, 1]  # geometric index of each stored frame
    pixels = np.stack([np.full((8, 8), z, dtype=np.int16) for z in order])
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ENHANCED_CT_STORAGE
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid(prefix="2.25.")
    ds.SOPClassUID = ENHANCED_CT_STORAGE
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(prefix="2.25."), generate_uid(prefix="2.25.")
    ds.Modality, ds.NumberOfFrames = "CT", 4
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 8, 8, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    measures, orientation, transform = Dataset(), Dataset(), Dataset()
    measures.PixelSpacing, measures.SliceThickness = ["0.5", "0.6"], "3.0"
    orientation.ImageOrientationPatient = [str(v) for v in ROW + COLUMN]
    transform.RescaleSlope, transform.RescaleIntercept = "2", "5"
    shared = Dataset()
    shared.PixelMeasuresSequence = DicomSequence([measures])
    shared.PlaneOrientationSequence = DicomSequence([orientation])
    shared.PixelValueTransformationSequence = DicomSequence([transform])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    frames = []
    for z in order:
        position, frame = Dataset(), Dataset()
        position.ImagePositionPatient = [str(round(float(v), 4)) for v in 1.5 * z * normal]
        frame.PlanePositionSequence = DicomSequence([position])
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(frames)
    ds.PixelData = pixels.tobytes()
    (tmp_path / "enh").mkdir()
    ds.save_as(tmp_path / "enh" / "x.dcm", enforce_file_format=True)

    volume = _one(tmp_path / "enh")

    assert volume.frames == (1, 3, 0, 2)
    assert volume.geometry.spacing == pytest.approx((1.5, 0.5, 0.6), abs=1e-4)
    assert volume.geometry.origin == pytest.approx((0.0, 0.0, 0.0))
    data = read_volume(volume, rescale=True)
    assert data.dtype == np.int32
    assert list(data[:, 0, 0]) == [5, 7, 9, 11]  # 2 * z + 5 in geometric order


# ------------------------------------------------------------------------------------------- bad input


def _wrong_rows(folder: Path) -> None:
    def smaller(z: int, ds: Dataset) -> None:
        if z == 3:
            ds.Rows = 32
            ds.PixelData = np.zeros((32, 64), dtype=np.int16).tobytes()

    write_ct_series(folder, mutate=smaller, seed=1)


def _no_position(folder: Path) -> None:
    def drop(z: int, ds: Dataset) -> None:
        if z == 5:
            del ds.ImagePositionPatient

    write_ct_series(folder, mutate=drop, seed=2)


def _two_modalities(folder: Path) -> None:
    def mr(z: int, ds: Dataset) -> None:
        if z == 0:
            ds.Modality = "MR"

    write_ct_series(folder, mutate=mr, seed=3)


def _same_position(folder: Path) -> None:
    kept: list[Any] = []

    def repeat(z: int, ds: Dataset) -> None:
        if z == 4:
            kept.append(ds.ImagePositionPatient)
        if z == 5:
            ds.ImagePositionPatient = kept[0]

    write_ct_series(folder, mutate=repeat, seed=4)


def _not_dicom(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("DOE^JANE was here\n")


BAD_SERIES: list[tuple[str, Callable[[Path], None]]] = [
    ("inconsistent-shape", _wrong_rows),
    ("missing-geometry", _no_position),
    ("mixed-modality", _two_modalities),
    ("duplicate-position", _same_position),
    ("not-dicom", _not_dicom),
]


@pytest.mark.parametrize(("category", "build"), BAD_SERIES, ids=[c for c, _ in BAD_SERIES])
def test_bad_series_reported_rest_grouped(tmp_path: Path, category: str, build: Callable[[Path], None]) -> None:
    good = write_ct_series(tmp_path / "in" / "good")
    build(tmp_path / "in" / "DOE^JANE")  # a folder name that is PHI: it must not reach any detail

    volumes, problems = group_series(tmp_path / "in")

    assert [v.series_uid for v in volumes] == [good.series_uid]
    assert [p.category for p in problems] == [category]
    assert category in PROBLEM_CATEGORIES
    assert "DOE" not in problems[0].detail and str(tmp_path) not in problems[0].detail
    assert problems[0].files >= 1


def test_truncated_pixels_are_unreadable_without_values(tmp_path: Path) -> None:
    def truncate(z: int, ds: Dataset) -> None:
        if z == 2:
            ds.PixelData = ds.PixelData[:100]

    write_ct_series(tmp_path / "ct", mutate=truncate)
    volume = _one(tmp_path / "ct")  # headers are fine: the problem shows when pixels are read

    with pytest.raises(QuarantineError) as caught:
        read_volume(volume)

    assert caught.value.category == "unreadable-pixels"
    assert str(tmp_path) not in caught.value.detail
    assert caught.value.__cause__ is None  # pydicom's message is not chained into logs


def test_missing_root_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        group_series(tmp_path / "nowhere")
