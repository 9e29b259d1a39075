"""The pixels job: every series array transformed on a Dask cluster into a new store, with its record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from privacy_core.errors import ConfigurationError
from privacy_core.imaging.compute import DaskConfig
from privacy_core.imaging.zarr_store import list_series, open_series
from privacy_core.lineage.record import read_record
from privacy_core.pixels import reference
from privacy_core.pixels.job import check_parameters, run_pixels


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    import pydicom

    from privacy_core.imaging.zarr_store import convert_tree

    root = tmp_path_factory.mktemp("pix")
    src = Path(pydicom.__file__).parent / "data" / "test_files"
    (root / "in").mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm"):
        (root / "in" / name).write_bytes((src / name).read_bytes())
    convert_tree(root / "in", str(root / "store"))
    return str(root / "store")


@pytest.fixture(scope="module")
def cluster() -> Iterator[DaskConfig]:
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0") as local:
        yield DaskConfig(address=local.scheduler_address)


@pytest.mark.parametrize(
    ("method", "parameters", "expected"),
    [
        ("mask", {"regions": [[0, 0, 40, 20]]}, lambda a: reference.mask_regions(a, [(0, 0, 40, 20)])),
        ("blur", {"sigma": 1.5}, lambda a: reference.gaussian_blur(a, 1.5)),
        ("pixelate", {"block": 8}, lambda a: reference.pixelate(a, 8)),
    ],
)
def test_each_method_equals_its_reference(
    store: str, cluster: DaskConfig, tmp_path: Path, method: str, parameters: dict[str, Any], expected: Any
) -> None:
    job = run_pixels(store, str(tmp_path / "out"), method, parameters, dask=cluster)
    assert job.summary["arrays"] == 2
    for source, out in zip(list_series(store), list_series(str(tmp_path / "out")), strict=True):
        before = open_series(source).compute()
        np.testing.assert_allclose(open_series(out).compute(), expected(before), rtol=1e-6)
    record = read_record(job.lineage_path)
    assert record["privacy"]["pixels"]["method"] == method
    assert record["privacy"]["pixels"]["dp"] is None


def test_series_are_written_concurrently_not_one_after_another(
    store: str, cluster: DaskConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both series must be in flight at once: each write waits at a barrier that only the other can open.
    Written one after another, the first would wait alone and the barrier would time out."""
    import threading

    import privacy_core.pixels.job as job_module
    from privacy_core.imaging.zarr_store import write_array as real

    both = threading.Barrier(2, timeout=60)

    def write_together(*args: Any, **kwargs: Any) -> Any:
        both.wait()
        return real(*args, **kwargs)

    monkeypatch.setattr(job_module, "write_array", write_together)
    job = run_pixels(store, str(tmp_path / "out"), "pixelate", {"block": 4}, dask=cluster)

    assert job.summary["arrays"] == 2
    written = [a.url.rstrip("/").rsplit("/", 1)[-1] for a in job.arrays]
    assert written == [u.rstrip("/").rsplit("/", 1)[-1] for u in list_series(store)]  # input order kept


def test_dp_pix_records_its_spend_and_says_it_first(store: str, cluster: DaskConfig, tmp_path: Path) -> None:
    said: list[str] = []
    parameters = {"block": 4, "epsilon": 0.5, "m": 2, "bits_stored": 12}
    job = run_pixels(store, str(tmp_path / "out"), "dp-pix", parameters, dask=cluster, announce=said.append)
    dp = read_record(job.lineage_path)["privacy"]["pixels"]["dp"]
    assert dp["value_range"] == 4095
    assert dp["noise_scale"] == pytest.approx(4095 * 2 / (16 * 0.5))
    assert said
    assert "noise scale" in said[0]
    out = open_series(list_series(str(tmp_path / "out"))[0]).compute()
    cells = out[0, :64, :64].reshape(16, 4, 16, 4)
    assert np.all(cells == cells[:, :1, :, :1])  # one value per 4x4 cell


@pytest.mark.parametrize(
    ("method", "parameters", "match"),
    [
        ("sharpen", {}, "choose from mask, blur"),
        ("blur", {}, r"missing \['sigma'\]"),
        ("pixelate", {"block": 4, "epsilon": 1}, r"unknown \['epsilon'\]"),
        ("dp-pix", {"block": 4}, r"missing \['epsilon'\]"),
    ],
)
def test_bad_method_or_parameters(method: str, parameters: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        check_parameters(method, parameters)


def test_output_must_be_a_new_store(store: str) -> None:
    with pytest.raises(ConfigurationError, match="is the input store"):
        run_pixels(store, store, "pixelate", {"block": 2})


def test_empty_store_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigurationError, match="convert DICOM into it first"):
        run_pixels(str(tmp_path / "empty"), str(tmp_path / "out"), "pixelate", {"block": 2})


def _ultrasound(path: Path) -> None:
    """A Philips iU22 480-row ultrasound frame: RSNA CTP's library blanks its top 47 rows."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = UID("1.2.840.10008.5.1.4.1.1.6.1")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = UID("2.25.11")
    ds.SeriesInstanceUID, ds.StudyInstanceUID = "2.25.12", "2.25.13"
    ds.Modality, ds.Manufacturer, ds.ManufacturerModelName = "US", "Philips", "iU22"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 480, 640, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.full((480, 640), 200, np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_mask_with_the_burned_in_library_regions(tmp_path: Path, cluster: DaskConfig) -> None:
    from privacy_core.imaging.zarr_store import convert_tree, read_record

    (tmp_path / "in").mkdir()
    _ultrasound(tmp_path / "in" / "us.dcm")
    (info,), problems = convert_tree(tmp_path / "in", str(tmp_path / "store"))
    assert problems == []
    assert read_record(info.url)["burned_in_regions"] == [[0, 0, 640, 47]]
    run_pixels(str(tmp_path / "store"), str(tmp_path / "out"), "mask", {"regions": "burned-in"}, dask=cluster)
    out = open_series(list_series(str(tmp_path / "out"))[0]).compute()
    assert not out[0, :47].any()
    assert (out[0, 47:] == 200).all()


def _converted(tmp_path: Path, **options: Any) -> str:
    """A store of one sharded 40-slice CT series and one colour two-frame series."""
    import shutil

    from privacy_core.imaging.zarr_store import convert_tree
    from tests.conftest import PYDICOM_FILES
    from tests.imaging.test_series import write_ct_series

    write_ct_series(tmp_path / "in" / "ct", slices=40, rows=32, columns=48)
    shutil.copy(PYDICOM_FILES / "SC_rgb_rle_2frame.dcm", tmp_path / "in")
    infos, problems = convert_tree(tmp_path / "in", str(tmp_path / "store"), chunk_mb=0.01, **options)
    assert problems == [] and any(i.shards for i in infos) and any(i.axes == "czyx" for i in infos)
    return str(tmp_path / "store")


REGIONS = [[0, 0, 20, 5], [30, 10, 100, 3]]
RECTANGLES: list[Any] = [tuple(r) for r in REGIONS]


def _assert_masked(store: str, out: str) -> None:
    for source, masked in zip(list_series(store), list_series(out), strict=True):
        expected = reference.mask_regions(open_series(source).compute(), RECTANGLES)
        np.testing.assert_array_equal(open_series(masked).compute(), expected)


def test_mask_rewrites_stored_chunks_and_keeps_the_source_layout(tmp_path: Path, cluster: DaskConfig) -> None:
    import zarr

    store = _converted(tmp_path)
    job = run_pixels(store, str(tmp_path / "out"), "mask", {"regions": REGIONS}, dask=cluster)

    _assert_masked(store, str(tmp_path / "out"))
    for source, masked in zip(list_series(store), list_series(str(tmp_path / "out")), strict=True):
        before, after = zarr.open_array(source, path="0"), zarr.open_array(masked, path="0")
        assert after.metadata.to_dict()["codecs"] == before.metadata.to_dict()["codecs"]
        assert (after.chunks, after.shards) == (before.chunks, before.shards)
    assert job.summary["arrays"] == 2


def test_mask_of_a_layout_the_stored_path_cannot_copy_goes_through_the_array_graph(
    tmp_path: Path, cluster: DaskConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    import privacy_core.imaging.stored_chunks as stored_chunks
    import privacy_core.pixels.job as job_module

    def unsupported(array: Any) -> Any:
        raise stored_chunks.UnsupportedLayout("as if the codecs were foreign")

    from privacy_core.imaging.zarr_store import write_array as real

    used: list[str] = []

    def through_the_graph(*args: Any, **kwargs: Any) -> Any:
        used.append("array")
        return real(*args, **kwargs)

    monkeypatch.setattr(stored_chunks.StoredLayout, "of", staticmethod(unsupported))
    monkeypatch.setattr(job_module, "write_array", through_the_graph)
    store = _converted(tmp_path)

    run_pixels(store, str(tmp_path / "out"), "mask", {"regions": REGIONS}, dask=cluster)

    assert used == ["array", "array"]
    _assert_masked(store, str(tmp_path / "out"))


def test_mask_on_s3(tmp_path: Path, cluster: DaskConfig, s3_endpoint: str) -> None:
    import s3fs

    from privacy_core.imaging.zarr_store import convert_tree
    from tests.imaging.test_series import write_ct_series

    options: dict[str, Any] = {"endpoint_url": s3_endpoint, "key": "x", "secret": "x"}
    s3fs.S3FileSystem(**options).mkdir("masks")
    write_ct_series(tmp_path / "in", slices=40, rows=32, columns=48)
    (info,), _ = convert_tree(tmp_path / "in", "s3://masks/store", chunk_mb=0.01, storage_options=options)
    assert info.shards is not None

    run_pixels(
        "s3://masks/store", "s3://masks/out", "mask", {"regions": REGIONS}, dask=cluster, storage_options=options
    )

    (masked,) = list_series("s3://masks/out", storage_options=options)
    expected = reference.mask_regions(open_series(info.url, storage_options=options).compute(), RECTANGLES)
    np.testing.assert_array_equal(open_series(masked, storage_options=options).compute(), expected)
