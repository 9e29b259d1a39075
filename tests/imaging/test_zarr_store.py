"""OME-Zarr series arrays: round trips, NGFF metadata, chunk and shard policy, atomicity, S3, no PHI."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import zarr
from pydicom.dataset import Dataset

from privacy_core.errors import ConfigurationError, QuarantineError
from privacy_core.imaging import zarr_store
from privacy_core.imaging.series import SeriesVolume, group_series, iter_slabs, read_volume
from privacy_core.imaging.zarr_store import (
    MARKER,
    convert_tree,
    open_series,
    plan_chunks,
    read_geometry,
    write_series,
)
from tests.conftest import PYDICOM_FILES
from tests.imaging.test_series import BAD_SERIES, write_ct_series


def _volume(root: Path) -> SeriesVolume:
    volumes, problems = group_series(root)
    assert problems == [] and len(volumes) == 1
    return volumes[0]


def _leftovers(store: Path) -> list[str]:
    return sorted(p.name for p in store.iterdir() if zarr_store.PARTIAL in p.name) if store.exists() else []


# ------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("rescale", [False, True])
def test_multislice_round_trip(tmp_path: Path, rescale: bool) -> None:
    series = write_ct_series(tmp_path / "ct")
    volume = _volume(tmp_path / "ct")
    store = tmp_path / "store"

    info = write_series(volume, str(store), rescale=rescale)

    expected = series.pixels.astype(np.int64) - 1024 if rescale else series.pixels
    data = open_series(info.url).compute()
    np.testing.assert_array_equal(data, expected)
    assert data.dtype == np.int16
    assert list(data[:, 0, 0] - (-1024 if rescale else 0)) == list(range(12))  # geometric order kept
    assert info.url == f"{store}/{series.series_uid}"
    assert info.rescaled is rescale
    assert read_geometry(info.url) == volume.geometry
    assert _leftovers(store) == []


def test_zarr_reads_it_directly(tmp_path: Path) -> None:
    series = write_ct_series(tmp_path / "ct")
    info = write_series(_volume(tmp_path / "ct"), str(tmp_path / "store"))

    group = zarr.open_group(info.url, mode="r")

    array = group["0"]
    assert isinstance(array, zarr.Array)
    np.testing.assert_array_equal(array[:], series.pixels)
    assert json.loads(json.dumps(group.attrs[MARKER]))["complete"] is True
    assert array.metadata.zarr_format == 3
    assert getattr(array.metadata, "dimension_names", None) == ("z", "y", "x")


def test_ome_zarr_reader_sees_ngff_axes_and_transforms(tmp_path: Path) -> None:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    series = write_ct_series(tmp_path / "ct")
    info = write_series(_volume(tmp_path / "ct"), str(tmp_path / "store"))

    location = parse_url(info.url)
    assert location is not None
    node = next(iter(Reader(location)()))

    axes = node.metadata["axes"]
    assert [a["name"] for a in axes] == ["z", "y", "x"]
    assert {a["type"] for a in axes} == {"space"} and {a["unit"] for a in axes} == {"millimeter"}
    transforms = {t["type"]: t for t in node.metadata["coordinateTransformations"][0]}
    assert transforms["scale"]["scale"] == pytest.approx(series.spacing, abs=1e-4)
    x, y, z = series.origin
    assert transforms["translation"]["translation"] == pytest.approx([z, y, x])
    np.testing.assert_array_equal(np.asarray(node.data[0]), series.pixels)
    ome = json.loads((Path(info.url) / "zarr.json").read_text())["attributes"]["ome"]
    assert ome["version"] == "0.5"


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_pydicom_single_slice_round_trip(tmp_path: Path, name: str) -> None:
    (tmp_path / "in").mkdir()
    shutil.copy(PYDICOM_FILES / name, tmp_path / "in")
    ds = pydicom.dcmread(PYDICOM_FILES / name)

    written, problems = convert_tree(tmp_path / "in", str(tmp_path / "store"), rescale=True)

    assert problems == []
    (info,) = written
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    np.testing.assert_array_equal(open_series(info.url).compute()[0], ds.pixel_array * slope + intercept)
    assert read_geometry(info.url).origin == pytest.approx([float(v) for v in ds.ImagePositionPatient])


def test_colour_multiframe_stored_channel_first(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    shutil.copy(PYDICOM_FILES / "SC_rgb_rle_2frame.dcm", tmp_path / "in")
    expected = pydicom.dcmread(PYDICOM_FILES / "SC_rgb_rle_2frame.dcm").pixel_array

    (info,), problems = convert_tree(tmp_path / "in", str(tmp_path / "store"))

    assert problems == []
    assert info.axes == "czyx" and info.shape == (3, 2, 100, 100)
    data = open_series(info.url)
    assert data.shape == (2, 100, 100, 3)
    np.testing.assert_array_equal(data.compute(), expected)
    ome = json.loads((Path(info.url) / "zarr.json").read_text())["attributes"]["ome"]
    assert [a["name"] for a in ome["multiscales"][0]["axes"]] == ["c", "z", "y", "x"]
    assert read_geometry(info.url).partial


def test_rtdose_round_trip_with_dose_scaling(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    shutil.copy(PYDICOM_FILES / "rtdose.dcm", tmp_path / "in")
    volume = _volume(tmp_path / "in")

    info = write_series(volume, str(tmp_path / "store"), rescale=True)

    assert info.dtype == "float32"
    np.testing.assert_array_equal(open_series(info.url).compute(), read_volume(volume, rescale=True))


def test_info_is_json_and_fits_the_lineage_storage_entry(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "ct")
    info = write_series(_volume(tmp_path / "ct"), str(tmp_path / "store"))

    record = json.loads(json.dumps(info.as_dict()))

    assert record["shape"] == [12, 64, 64] and record["bytes_written"] > 0
    assert set(info.lineage_entry()) == {"url", "shape", "dtype", "chunks", "shards"}


# --------------------------------------------------------------------------------------- chunks and shards


def test_chunks_hold_whole_planes_near_chunk_mb(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "ct", slices=40, rows=64, columns=64)
    chunk_mb = 0.05
    plane = 64 * 64 * 2

    info = write_series(_volume(tmp_path / "ct"), str(tmp_path / "store"), chunk_mb=chunk_mb, shard=False)

    assert info.chunks[1:] == (64, 64)
    chunk_bytes = info.chunks[0] * plane
    assert chunk_mb * 2**20 - plane < chunk_bytes <= chunk_mb * 2**20
    assert info.shards is None
    assert open_series(info.url).chunks[0][0] == info.chunks[0]


def test_sharded_array_reads_with_shard_chunks(tmp_path: Path) -> None:
    series = write_ct_series(tmp_path / "ct", slices=40, rows=64, columns=64)

    info = write_series(_volume(tmp_path / "ct"), str(tmp_path / "store"), chunk_mb=0.05)

    assert info.chunks == (6, 64, 64)  # 7 chunks: more than a few, so sharded
    assert info.shards == (24, 64, 64)  # 4 chunks per shard, 2 shards
    data = open_series(info.url)
    assert data.chunks[0] == (24, 16)  # Dask chunks are whole shards
    np.testing.assert_array_equal(data.compute(), series.pixels)
    codecs = json.loads((Path(info.url) / "0" / "zarr.json").read_text())["codecs"]
    assert codecs[0]["name"] == "sharding_indexed"


def test_few_chunks_are_not_sharded() -> None:
    chunks, shards = plan_chunks((12, 64, 64), itemsize=2, chunk_mb=0.05)

    assert chunks == (6, 64, 64) and shards is None


@pytest.mark.parametrize("chunk_mb", [0.0, -1.0, float("nan")])
def test_bad_chunk_mb_refused(tmp_path: Path, chunk_mb: float) -> None:
    with pytest.raises(ConfigurationError, match="chunk_mb"):
        convert_tree(tmp_path, str(tmp_path / "store"), chunk_mb=chunk_mb)


# --------------------------------------------------------------------------------------------- atomicity


def test_failed_write_leaves_nothing_that_opens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_ct_series(tmp_path / "ct", slices=40)
    volume = _volume(tmp_path / "ct")
    store = tmp_path / "store"
    real = iter_slabs

    def fail_after_first(*args: Any, **kwargs: Any) -> Iterator[tuple[int, Any]]:
        slabs = real(*args, **kwargs)
        yield next(slabs)
        raise QuarantineError("unreadable-pixels", "simulated decode failure")

    monkeypatch.setattr(zarr_store, "iter_slabs", fail_after_first)

    with pytest.raises(QuarantineError):
        write_series(volume, str(store), chunk_mb=0.05)

    assert list(store.iterdir()) == []
    with pytest.raises(ConfigurationError, match="no series array"):
        open_series(f"{store}/{volume.series_uid}")


def test_array_without_completion_marker_refused(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "ct", slices=3)
    info = write_series(_volume(tmp_path / "ct"), str(tmp_path / "store"))
    group = zarr.open_group(info.url, mode="r+")
    record = json.loads(json.dumps(group.attrs[MARKER]))
    record["complete"] = False
    group.attrs[MARKER] = record

    with pytest.raises(ConfigurationError, match=r"incomplete.*rerun"):
        open_series(info.url)
    with pytest.raises(ConfigurationError, match="incomplete"):
        read_geometry(info.url)


def test_partial_folder_refused_even_with_marker(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "ct", slices=3)
    info = write_series(_volume(tmp_path / "ct"), str(tmp_path / "store"))
    partial = Path(info.url).with_name(Path(info.url).name + ".partial-deadbeef")
    shutil.copytree(info.url, partial)  # as a crash between the marker and the rename would leave it

    with pytest.raises(ConfigurationError, match="partial write"):
        open_series(str(partial))


def test_rewrite_replaces_the_old_array(tmp_path: Path) -> None:
    series = write_ct_series(tmp_path / "ct", slices=4)
    volume = _volume(tmp_path / "ct")
    store = tmp_path / "store"
    write_series(volume, str(store))

    info = write_series(volume, str(store), rescale=True)

    np.testing.assert_array_equal(open_series(info.url).compute(), series.pixels.astype(np.int64) - 1024)
    assert [p.name for p in store.iterdir()] == [series.series_uid]


def test_storage_options_for_local_path_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="storage_options"):
        convert_tree(tmp_path, str(tmp_path / "store"), storage_options={"anon": True})


# --------------------------------------------------------------------------------------------- bad input


def _truncated_pixels(folder: Path) -> None:
    def truncate(z: int, ds: Dataset) -> None:
        if z == 7:
            ds.PixelData = ds.PixelData[:64]

    write_ct_series(folder, mutate=truncate, seed=9)


CONVERT_BAD: list[tuple[str, Callable[[Path], None]]] = [*BAD_SERIES, ("unreadable-pixels", _truncated_pixels)]


@pytest.mark.parametrize(("category", "build"), CONVERT_BAD, ids=[c for c, _ in CONVERT_BAD])
def test_convert_tree_reports_bad_series_and_converts_the_rest(
    tmp_path: Path, category: str, build: Callable[[Path], None]
) -> None:
    good = write_ct_series(tmp_path / "in" / "good", slices=4)
    build(tmp_path / "in" / "bad")
    store = tmp_path / "store"

    written, problems = convert_tree(tmp_path / "in", str(store))

    assert [i.series_uid for i in written] == [good.series_uid]
    assert [p.category for p in problems] == [category]
    np.testing.assert_array_equal(open_series(written[0].url).compute(), good.pixels)
    assert sorted(p.name for p in store.iterdir()) == [good.series_uid]  # nothing of the bad one


# ---------------------------------------------------------------------------------------------------- S3


def _bucket(name: str, options: dict[str, Any]) -> None:
    import s3fs

    s3fs.S3FileSystem(**options).mkdir(name)


def test_s3_round_trip_through_fsspec(tmp_path: Path, s3_endpoint: str) -> None:
    options: dict[str, Any] = {"endpoint_url": s3_endpoint, "key": "x", "secret": "x"}
    _bucket("imaging", options)
    series = write_ct_series(tmp_path / "ct", slices=40, rows=32, columns=32)
    volume = _volume(tmp_path / "ct")

    info = write_series(volume, "s3://imaging/store", chunk_mb=0.01, storage_options=options)
    again = write_series(volume, "s3://imaging/store", chunk_mb=0.01, storage_options=options)  # replaces

    assert info.url == again.url == f"s3://imaging/store/{series.series_uid}"
    assert info.shards is not None
    data = open_series(info.url, storage_options=options)
    assert data.chunks[0][0] == info.shards[0]
    np.testing.assert_array_equal(data.compute(), series.pixels)
    assert read_geometry(info.url, storage_options=options) == volume.geometry


def test_s3_incomplete_array_refused(tmp_path: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    options: dict[str, Any] = {"endpoint_url": s3_endpoint, "key": "x", "secret": "x"}
    _bucket("broken", options)
    write_ct_series(tmp_path / "ct", slices=3)
    volume = _volume(tmp_path / "ct")
    monkeypatch.setattr(zarr_store, "_remove_remote", lambda fs, path: None)  # as if the process died
    monkeypatch.setattr(zarr_store, "_record", lambda volume, info: 1 / 0)

    with pytest.raises(ZeroDivisionError):
        write_series(volume, "s3://broken/store", storage_options=options)

    with pytest.raises(ConfigurationError, match="incomplete"):
        open_series(f"s3://broken/store/{volume.series_uid}", storage_options=options)


# ----------------------------------------------------------------------------------------------------- PHI


def test_store_metadata_holds_no_phi(tmp_path: Path) -> None:
    from privacy_core.deid.batch import deidentify_tree
    from privacy_core.deid.profile import Profile
    from privacy_core.keys import PseudonymKey
    from privacy_core.samples import make_phi_corpus

    corpus = make_phi_corpus(
        tmp_path / "phi", patients=2, studies_per_patient=1, series_per_study=2, instances_per_series=1
    )
    deidentify_tree(tmp_path / "phi", tmp_path / "deid", Profile(), PseudonymKey.from_text("x" * 32))
    store = tmp_path / "store"

    written, problems = convert_tree(tmp_path / "deid", str(store), rescale=True)

    assert len(written) >= 3  # two CT/MR images and the cleaned burned-in capture; SR series are reported
    texts = [p.read_text() for p in store.rglob("*.json")]
    texts += [json.dumps(i.as_dict()) for i in written] + [p.detail for p in problems]
    assert len(texts) >= 2 * len(written)
    input_names = {part for f in corpus.files for part in f.path.relative_to(corpus.root).parts}
    for text in texts:
        leaked = [m for m in corpus.phi_markers if m in text]
        assert leaked == []
        assert [n for n in input_names if n in text] == []
