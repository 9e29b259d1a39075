"""map_stored: chunk-by-chunk rewrites equal zarr's own result on every supported layout, byte for byte where
zarr's bytes are defined; unsupported layouts and damaged shards are refused; S3 and a killed worker work."""

from __future__ import annotations

import functools
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, BytesCodec, GzipCodec, TransposeCodec, ZstdCodec

from privacy_core.imaging.compute import DaskConfig, dask_client
from privacy_core.imaging.stored_chunks import StoredLayout, UnsupportedLayout, map_stored
from privacy_core.pixels import reference, stored_mask

SHAPE = (37, 20, 22)
REGIONS = [(5, 3, 10, 6), (0, 17, 22, 9)]
BLOSC = BloscCodec(cname="zstd", clevel=5, shuffle="shuffle")
LAYOUTS: dict[str, dict[str, Any]] = {
    "zstd": {"chunks": (8, 10, 11), "compressors": ZstdCodec(level=1)},
    "uncompressed": {"chunks": (5, 7, 9), "compressors": None},
    "blosc-sharded": {"chunks": (8, 20, 22), "shards": (16, 20, 22), "compressors": [BLOSC]},
    "lz4-partial-shards": {
        "chunks": (4, 10, 11),
        "shards": (8, 20, 22),
        "compressors": [BloscCodec(cname="lz4", clevel=3, shuffle="bitshuffle")],
    },
    "v2-keys": {"chunks": (8, 20, 22), "compressors": [BLOSC], "chunk_key_encoding": {"name": "v2"}},
    "dot-separator": {
        "chunks": (8, 20, 22),
        "compressors": [BLOSC],
        "chunk_key_encoding": {"name": "default", "separator": "."},
    },
}


@pytest.fixture(autouse=True)
def _synchronous() -> Iterator[None]:
    with dask.config.set(scheduler="synchronous"):
        yield


def _volume(shape: tuple[int, ...] = SHAPE) -> np.ndarray[Any, Any]:
    data = np.random.default_rng(3).integers(-1024, 3071, size=shape).astype(np.int16)
    data[8:16] = 0  # whole chunks of fill value: zarr stores none, the rewrite must still read them
    return data


def _create(path: Path, data: np.ndarray[Any, Any], *, write: bool = True, **layout: Any) -> zarr.Array[Any]:
    array = zarr.create_array(str(path), shape=data.shape, dtype=data.dtype, fill_value=0, zarr_format=3, **layout)
    if write:
        array[:] = data
    return array


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name != "zarr.json"}


@pytest.mark.parametrize("name", LAYOUTS)
def test_mask_equals_the_reference_on_every_layout(tmp_path: Path, name: str) -> None:
    layout = LAYOUTS[name]
    data = _volume()
    source = _create(tmp_path / "src", data, **layout)
    target = _create(tmp_path / "out", data, write=False, **layout)

    written = map_stored(source, target, stored_mask(REGIONS, data.shape, data.dtype)).sum().compute()

    expected = reference.mask_regions(data, REGIONS)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "out"), mode="r")[:], expected)
    assert written == sum(len(b) for b in _files(tmp_path / "out").values())


@pytest.mark.parametrize("name", ["zstd", "uncompressed", "blosc-sharded", "v2-keys"])
def test_files_are_byte_identical_to_what_zarr_writes(tmp_path: Path, name: str) -> None:
    layout = LAYOUTS[name]
    data = _volume()
    source = _create(tmp_path / "src", data, **layout)
    target = _create(tmp_path / "out", data, write=False, **layout)
    map_stored(source, target, stored_mask(REGIONS, data.shape, data.dtype)).compute()
    # zarr writes every chunk here (write_empty_chunks), as the rewrite does
    _create(tmp_path / "zarr", reference.mask_regions(data, REGIONS), config={"write_empty_chunks": True}, **layout)

    assert _files(tmp_path / "out") == _files(tmp_path / "zarr")


def test_copy_keeps_every_value_and_colour_chunks_mask_every_channel(tmp_path: Path) -> None:
    data = np.random.default_rng(5).integers(0, 255, size=(3, 9, 20, 22)).astype(np.uint8)  # (c, z, y, x)
    layout: dict[str, Any] = {"chunks": (1, 4, 20, 22), "shards": (1, 8, 20, 22), "compressors": [BLOSC]}
    source = _create(tmp_path / "src", data, **layout)
    copy = _create(tmp_path / "copy", data, write=False, **layout)
    masked = _create(tmp_path / "mask", data, write=False, **layout)
    image_shape = (9, 20, 22, 3)  # the (z, y, x, c) image the stored array holds

    map_stored(source, copy, None).compute()
    map_stored(source, masked, stored_mask(REGIONS, image_shape, data.dtype)).compute()

    np.testing.assert_array_equal(copy[:], data)
    expected = reference.mask_regions(np.moveaxis(data, 0, -1), REGIONS)
    np.testing.assert_array_equal(np.moveaxis(np.asarray(masked[:]), 0, -1), expected)


def test_padding_past_the_array_end_stays_fill_value(tmp_path: Path) -> None:
    data = _volume()
    layout = LAYOUTS["zstd"]
    source = _create(tmp_path / "src", data, **layout)
    target = _create(tmp_path / "out", data, write=False, **layout)

    def paint(chunk: np.ndarray[Any, Any], origin: tuple[int, ...]) -> None:
        chunk[...] = 9  # everything, padding included

    map_stored(source, target, paint).compute()

    last = StoredLayout.of(target).key((4, 1, 1))
    decoded = np.frombuffer(ZstdCodec(level=1)._zstd_codec.decode((tmp_path / "out" / last).read_bytes()), np.int16)
    block = decoded.reshape(8, 10, 11)
    assert (block[: SHAPE[0] - 32] == 9).all() and (block[SHAPE[0] - 32 :] == 0).all()


@pytest.mark.parametrize(
    ("layout", "why"),
    [
        ({"chunks": (8, 20, 22), "compressors": GzipCodec()}, "GzipCodec"),
        ({"chunks": (8, 20, 22), "filters": [TransposeCodec(order=(2, 1, 0))]}, "codec chain"),
        ({"chunks": (8, 20, 22), "serializer": BytesCodec(endian="big")}, "big-endian"),
    ],
)
def test_unsupported_layouts_are_refused_with_the_reason(tmp_path: Path, layout: dict[str, Any], why: str) -> None:
    data = _volume()
    source = _create(tmp_path / "src", data, **layout)
    target = _create(tmp_path / "out", data, write=False, **layout)

    with pytest.raises(UnsupportedLayout, match=why):
        map_stored(source, target, None)
    assert not _files(tmp_path / "out")


@pytest.mark.parametrize(("task_mib", "tasks"), [(32.0, 1), (0.01, 5), (0.002, 5)])
def test_small_files_are_grouped_into_tasks_of_about_task_mib(tmp_path: Path, task_mib: float, tasks: int) -> None:
    data = _volume()  # 5 files of 8 x 20 x 22 int16 (7 KiB) along z
    layout: dict[str, Any] = {"chunks": (8, 20, 22), "compressors": ZstdCodec(level=1)}
    source = _create(tmp_path / "src", data, **layout)
    target = _create(tmp_path / "out", data, write=False, **layout)

    graph = map_stored(source, target, None, task_mib=task_mib)

    assert graph.npartitions == tasks
    graph.compute()
    np.testing.assert_array_equal(target[:], data)


def test_a_target_with_another_layout_is_refused(tmp_path: Path) -> None:
    data = _volume()
    source = _create(tmp_path / "src", data, **LAYOUTS["zstd"])
    target = _create(tmp_path / "out", data, write=False, **LAYOUTS["blosc-sharded"])

    with pytest.raises(UnsupportedLayout, match="differs"):
        map_stored(source, target, None)


def test_a_damaged_shard_index_fails_the_task_and_says_so(tmp_path: Path) -> None:
    data = _volume()
    layout = LAYOUTS["blosc-sharded"]
    source = _create(tmp_path / "src", data, **layout)
    target = _create(tmp_path / "out", data, write=False, **layout)
    shard = tmp_path / "src" / StoredLayout.of(source).key((0, 0, 0))
    raw = bytearray(shard.read_bytes())
    raw[-10] ^= 0xFF  # inside the index
    shard.write_bytes(bytes(raw))

    with pytest.raises(ValueError, match="checksum"):
        map_stored(source, target, None).compute()


def test_works_on_s3_through_fsspec(s3_endpoint: str) -> None:
    import s3fs

    options = {"endpoint_url": s3_endpoint}
    s3fs.S3FileSystem(client_kwargs=options).mkdir("stored")
    storage = {"client_kwargs": options}
    data = _volume()
    layout = LAYOUTS["blosc-sharded"]
    source = zarr.create_array(
        "s3://stored/src", shape=data.shape, dtype=data.dtype, fill_value=0, storage_options=storage, **layout
    )
    source[:] = data
    target = zarr.create_array(
        "s3://stored/out", shape=data.shape, dtype=data.dtype, fill_value=0, storage_options=storage, **layout
    )

    map_stored(source, target, stored_mask(REGIONS, data.shape, data.dtype)).compute()

    reread = zarr.open_array("s3://stored/out", mode="r", storage_options=storage)
    np.testing.assert_array_equal(reread[:], reference.mask_regions(data, REGIONS))


def test_killed_worker_mid_run_still_gives_the_reference_result(tmp_path: Path) -> None:
    data = np.random.default_rng(9).integers(-1024, 3071, size=(96, 256, 256)).astype(np.int16)
    layout: dict[str, Any] = {"chunks": (2, 256, 256), "compressors": ZstdCodec(level=3)}
    source = _create(tmp_path / "src", data, **layout)
    target = _create(tmp_path / "out", data, write=False, **layout)
    slow = functools.partial(_slow_mask, apply=stored_mask(REGIONS, data.shape, data.dtype))
    with dask_client(DaskConfig(workers=2)) as client:
        pids = sorted(client.run(os.getpid).values())
        future = client.compute(map_stored(source, target, slow, task_mib=1).sum())  # 12 tasks of 4 files
        deadline = time.monotonic() + 30
        while not any(s == "memory" for s in client.run_on_scheduler(_states).values()):
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert not future.done()  # the kill lands mid-run
        os.kill(pids[0], signal.SIGKILL)
        future.result(timeout=180)
    np.testing.assert_array_equal(target[:], reference.mask_regions(data, REGIONS))


def _slow_mask(chunk: np.ndarray[Any, Any], origin: tuple[int, ...], apply: Any) -> None:
    time.sleep(0.05)  # keeps the run long enough for the kill to land inside it
    apply(chunk, origin)


def _states(dask_scheduler: Any) -> dict[str, str]:
    return {str(key): str(ts.state) for key, ts in dask_scheduler.tasks.items()}
