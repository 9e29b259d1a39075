"""Time the Dask pixel privacy transforms against their single-process references on a generated Zarr CT set.

A synthetic int16 CT-like volume of at least ``--gb`` GB on disk is written chunk by chunk as a Zarr v3 array
(chunks of 8 x 512 x 512, zstd level 1, no sharding). Each transform (copy, mask, mask-array, blur and DP-Pix
by default; pixelate when named) is then run once per configuration: the NumPy/SciPy reference in this
process, slab by slab (zarr read, reference, zarr write), and the Dask version on an embedded cluster of 1
and 2 single-threaded worker processes: ``da.from_zarr`` -> transform -> ``da.to_zarr`` for blur and DP-Pix,
and the product's stored-chunk path (one task per chunk file: read, decode, change in place, encode, write)
for copy and mask, with ``mask-array`` the same mask as an array graph for comparison. The same run is repeated
on a dataset twice as large to show that peak memory (RSS of the driver plus every child process, sampled
every 0.1 s) does not grow with the data. A few chunks of every output are checked against the reference.
See benchmarks/README.md.

    python benchmarks/bench_pixels.py [--gb 2] [--workers 1 2] [--transforms mask blur pixelate dp-pix]
                                      [--double | --no-double] [--repeat R] [--keep] [--workdir DIR]
                                      [--worker-env NAME=VALUE ...] [--results DIR]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _machine import SAMPLE_SECONDS, RssSampler, command_line, environment, machine_line, progress

if TYPE_CHECKING:
    import dask.array as da
    import numpy as np
    import zarr
    from distributed import Client
    from numpy.typing import NDArray

#: Decimal units throughout: GB = 1e9 bytes on disk, MB/s = 1e6 uncompressed input bytes per second.
GB = 1e9
MB = 1e6
DEFAULT_GB = 2.0
DEFAULT_WORKERS = (1, 2)
DEFAULT_REPEAT = 2
RESULTS_DIR = Path(__file__).resolve().parent / "results"

#: One chunk is 8 CT planes of 512 x 512 int16: 4 MiB uncompressed, about 2.9 MiB with zstd level 1.
CHUNK = (8, 512, 512)
#: Both sides work on slabs of this many stored chunks (64 planes, 32 MiB, the product's default chunk size,
#: ``plan_chunks(chunk_mb=32)``): the reference per read/transform/write step, Dask per task. Per-call zarr
#: and per-task Dask overheads are negligible at this size, which stays far below the dataset size.
SLAB_CHUNKS = 8
ZSTD_LEVEL = 1
#: Hounsfield range of 12-bit CT stored as int16; DP-Pix's value range R is its width.
HU_MIN, HU_MAX = -1024, 3071
SEED = 20260801
#: Coarse grid of the smooth field: 17 x 17 control points per plane, bilinear in-plane and linear along z.
FIELD_POINTS = 17
#: Uniform integer noise of +-NOISE HU on every voxel (about 23 HU standard deviation, like a CT scan), which
#: keeps the low byte near-random: zstd level 1 gets about 1.4x, not the 10x+ of a smooth field alone.
NOISE = 40

#: ``copy`` is the floor: read, decode, encode and write every chunk with no transform in between. No
#: transform can be faster than it, so it shows how much of the machine's I/O a transform leaves unused.
TRANSFORMS = ("copy", "mask", "mask-array", "blur", "pixelate", "dp-pix")
#: Transforms the 1.6x goal applies to (the floor is a measurement, not a feature, and ``mask-array`` is the
#: array-graph form of the mask, kept to show what the stored-chunk path gains; the product runs it only for
#: layouts the stored-chunk path does not reproduce).
GOAL_TRANSFORMS = ("mask", "blur", "pixelate", "dp-pix")
#: pixelate is left out of the default run to keep both sizes within 15 minutes on 2 cores: DP-Pix runs the
#: same Dask code (cell sums, spread back) plus one Laplace draw per cell, and measured within 8% of it.
DEFAULT_TRANSFORMS = ("copy", "mask", "mask-array", "blur", "dp-pix")
#: Burned-in text bands as (x, y, width, height): a top and a bottom banner and a box at the upper right.
MASK_REGIONS = ((0, 0, 512, 40), (0, 472, 512, 40), (352, 40, 150, 24))
#: In-plane blur; truncate 4 gives a 9-tap kernel. The blur is the slowest transform and sets the run time;
#: sigma 2 (17 taps) takes about 2.3x the filter time per slab and pushes the default run past 15 minutes.
BLUR_SIGMA = 1.0
PIXEL_BLOCK = 8
DP_BLOCK = 8
DP_EPSILON = 1.0
DP_VALUE_RANGE = float(HU_MAX - HU_MIN)

#: Chunks of every output compared with the reference: first, middle, last.
CHECK_CHUNKS = 3
#: dp-pix check: the mean |unit noise| of a Laplace(0, 1) is 1; over 3 x 32,768 cells its standard error is
#: 0.003, so 0.05 only fails when the scale is really wrong.
DP_TOLERANCE = 0.05
GOAL_SPEEDUP = 1.6
#: "About the same" peak memory when the data doubles: at most 25% higher.
GOAL_MEMORY_RATIO = 1.25


# ---------------------------------------------------------------------- dataset
@dataclass(frozen=True)
class Dataset:
    """The generated input: a Zarr v3 int16 array at ``path``."""

    path: Path
    shape: tuple[int, int, int]
    nbytes: int
    disk_bytes: int
    seconds: float

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "shape": list(self.shape),
            "chunks": list(CHUNK),
            "dtype": "int16",
            "codec": f"zstd level {ZSTD_LEVEL}, no sharding",
            "uncompressed_bytes": self.nbytes,
            "disk_bytes": self.disk_bytes,
            "compression_ratio": round(self.nbytes / self.disk_bytes, 3),
            "generate_seconds": round(self.seconds, 2),
            "generate_mb_per_s": round(self.nbytes / MB / self.seconds, 1),
        }


class VolumeGenerator:
    """Chunk ``i`` of a CT-like volume, computed from ``i`` alone, so nothing but one chunk is ever in memory.

    An elliptic body of soft tissue (40 HU) in air (-1000 HU), plus a smooth random field (bilinear
    interpolation of a 17 x 17 Gaussian grid, linear along z between chunk borders so the volume is continuous),
    plus uniform integer noise; clipped to [-1024, 3071]. Randomness is NumPy Philox seeded per chunk
    (this is test data, not privacy noise).
    """

    def __init__(self, seed: int = SEED) -> None:
        import numpy as np

        self.seed = seed
        depth, height, width = CHUNK
        self._interp_y = self._interpolation(height)
        self._interp_x = self._interpolation(width)
        yy, xx = np.mgrid[0:height, 0:width]
        body = ((yy - height / 2) / (0.43 * height)) ** 2 + ((xx - width / 2) / (0.35 * width)) ** 2 <= 1.0
        self._base: NDArray[np.float32] = np.where(body, 40.0, -1000.0).astype(np.float32)
        self._amplitude: NDArray[np.float32] = np.where(body, 500.0, 20.0).astype(np.float32)
        self._weights: NDArray[np.float32] = ((np.arange(depth) + 0.5) / depth).astype(np.float32)[:, None, None]

    @staticmethod
    def _interpolation(n: int) -> NDArray[np.float32]:
        """The (n, FIELD_POINTS) matrix that linearly interpolates control points onto n pixels."""
        import numpy as np

        position = np.linspace(0, FIELD_POINTS - 1, n)
        left = np.clip(np.floor(position).astype(int), 0, FIELD_POINTS - 2)
        t = position - left
        matrix = np.zeros((n, FIELD_POINTS), np.float32)
        matrix[np.arange(n), left] = 1 - t
        matrix[np.arange(n), left + 1] = t
        return matrix

    def _rng(self, stream: int, index: int) -> np.random.Generator:
        import numpy as np

        return np.random.Generator(np.random.Philox(np.random.SeedSequence([self.seed, stream, index])))

    def _field(self, index: int) -> NDArray[np.float32]:
        """The smooth plane at the start of chunk ``index`` (shared with the end of chunk ``index - 1``)."""
        import numpy as np

        grid = self._rng(1, index).standard_normal((FIELD_POINTS, FIELD_POINTS), dtype=np.float32)
        plane: NDArray[np.float32] = (self._interp_y @ grid @ self._interp_x.T).astype(np.float32, copy=False)
        return plane

    def chunk(self, index: int) -> NDArray[np.int16]:
        import numpy as np

        start, end = self._field(index), self._field(index + 1)
        values: NDArray[np.float32] = (
            self._base + self._amplitude * start + self._weights * (self._amplitude * (end - start))
        )
        out: NDArray[np.int16] = np.clip(values, HU_MIN + NOISE, HU_MAX - NOISE).astype(np.int16)
        out += self._rng(0, index).integers(-NOISE, NOISE + 1, CHUNK, dtype=np.int16)
        return out


def _disk_bytes(path: Path) -> int:
    """Sum of the file sizes under ``path`` (the compressed chunks plus a small zarr.json)."""
    return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())


def generate_dataset(path: Path, target_disk_bytes: int, seed: int = SEED) -> Dataset:
    """Write chunks until the array takes at least ``target_disk_bytes`` on disk.

    The first 8 chunks measure the compressed chunk size; the array is then resized to the estimated count and
    topped up if the estimate falls short. The array is only ever grown, one chunk at a time.
    """
    import zarr
    from zarr.codecs import ZstdCodec

    depth, height, width = CHUNK
    generator = VolumeGenerator(seed)
    start = time.perf_counter()
    planned = 8
    array = zarr.create_array(
        str(path),
        shape=(planned * depth, height, width),
        chunks=CHUNK,
        dtype="int16",
        compressors=ZstdCodec(level=ZSTD_LEVEL),
        fill_value=0,
        zarr_format=3,
    )
    written = 0
    # One thread computes the next chunk while this one compresses and writes the current one (NumPy and zstd
    # release the GIL): at most two chunks exist at a time.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate") as pool:
        pending = pool.submit(generator.chunk, 0)
        while True:
            if written == planned:
                disk = _disk_bytes(path)
                if disk >= target_disk_bytes:
                    break
                per_chunk = disk / written
                planned = written + max(1, math.ceil((target_disk_bytes - disk) / per_chunk * 1.002))
                array.resize((planned * depth, height, width))
            data = pending.result()
            pending = pool.submit(generator.chunk, written + 1)
            array[written * depth : (written + 1) * depth] = data
            written += 1
    seconds = time.perf_counter() - start
    shape = (planned * depth, height, width)
    return Dataset(path, shape, 2 * math.prod(shape), _disk_bytes(path), seconds)


# ---------------------------------------------------------------------- transforms
@dataclass(frozen=True)
class Transform:
    """One transform: its Dask form, its reference on an in-memory slab, and its parameters.

    ``stored`` is set for the pointwise transforms the product runs on stored chunks
    (:func:`privacy_core.imaging.stored_chunks.map_stored`, what ``run_pixels`` does for a mask): given the
    image's shape and dtype it returns the in-place chunk function (None copies). Then the Dask runs use it
    instead of ``dask``, the ``from_zarr -> transform -> to_zarr`` array graph.
    """

    name: str
    params: dict[str, Any]
    dask: Callable[[da.Array], da.Array]
    reference: Callable[[NDArray[Any]], NDArray[Any]]
    stored: Callable[[tuple[int, ...], Any], Any] | None = None


def build_transforms(names: Sequence[str]) -> dict[str, Transform]:
    from privacy_core import pixels
    from privacy_core.pixels import reference

    def dp_reference(image: NDArray[Any]) -> NDArray[Any]:
        cells = (image.shape[0], -(-image.shape[1] // DP_BLOCK), -(-image.shape[2] // DP_BLOCK))
        scale = pixels.dp_pix_sum_scale(DP_EPSILON, 1, DP_VALUE_RANGE, dtype=image.dtype)
        noise = pixels.CellNoise().draw(cells, scale)  # exact discrete Laplace, as the Dask version draws it
        return reference.dp_pix(image, DP_BLOCK, DP_EPSILON, value_range=DP_VALUE_RANGE, cell_noise=noise)

    regions = list(MASK_REGIONS)
    mask_params = {"regions": [list(r) for r in MASK_REGIONS], "value": "dtype minimum"}
    every = {
        "copy": Transform(
            "copy", {"path": "stored chunks"}, lambda image: image, lambda image: image, lambda shape, dtype: None
        ),
        "mask": Transform(
            "mask",
            {**mask_params, "path": "stored chunks"},
            lambda image: pixels.mask_regions(image, regions),
            lambda image: reference.mask_regions(image, regions),
            lambda shape, dtype: pixels.stored_mask(regions, shape, dtype),
        ),
        "mask-array": Transform(
            "mask-array",
            {**mask_params, "path": "Dask array graph"},
            lambda image: pixels.mask_regions(image, regions),
            lambda image: reference.mask_regions(image, regions),
        ),
        "blur": Transform(
            "blur",
            {"sigma": BLUR_SIGMA, "truncate": 4.0, "boundary": "reflect", "axes": "in-plane (y, x)"},
            lambda image: pixels.gaussian_blur(image, BLUR_SIGMA),
            lambda image: reference.gaussian_blur(image, BLUR_SIGMA),
        ),
        "pixelate": Transform(
            "pixelate",
            {"block": PIXEL_BLOCK},
            lambda image: pixels.pixelate(image, PIXEL_BLOCK),
            lambda image: reference.pixelate(image, PIXEL_BLOCK),
        ),
        "dp-pix": Transform(
            "dp-pix",
            {
                "block": DP_BLOCK,
                "epsilon": DP_EPSILON,
                "m": 1,
                "value_range": DP_VALUE_RANGE,
                "laplace_scale": pixels.dp_pix_scale(DP_BLOCK, DP_EPSILON, 1, DP_VALUE_RANGE),
                "noise": "exact discrete Laplace on cell sums (CellNoise, ChaCha20) in both",
            },
            lambda image: pixels.dp_pix(image, DP_BLOCK, DP_EPSILON, value_range=DP_VALUE_RANGE),
            dp_reference,
        ),
    }
    return {name: every[name] for name in names}


# ---------------------------------------------------------------------- runs
def _dask_array() -> Any:
    """``dask.array`` as Any: its functions are unannotated and mypy --strict refuses untyped calls."""
    import dask.array

    return dask.array


def _read(array: zarr.Array[Any], start: int, stop: int) -> NDArray[Any]:
    """Planes ``start:stop`` of a Zarr array as a NumPy array."""
    import numpy as np

    return np.asarray(array[start:stop])


def _output_array(path: Path, shape: tuple[int, ...], dtype: Any) -> Any:
    """A new output array with the input's stored chunks and codec, as every configuration writes."""
    import zarr
    from zarr.codecs import ZstdCodec

    return zarr.create_array(
        str(path), shape=shape, chunks=CHUNK, dtype=dtype, compressors=ZstdCodec(level=ZSTD_LEVEL), zarr_format=3
    )


def run_reference(transform: Transform, source: Path, output: Path) -> float:
    """The reference in this process, ``SLAB_CHUNKS`` chunks at a time, into a new array with the same chunks."""
    import zarr

    start = time.perf_counter()
    src = zarr.open_array(str(source), mode="r")
    out: Any = None
    step = SLAB_CHUNKS * CHUNK[0]
    for z in range(0, src.shape[0], step):
        result = transform.reference(_read(src, z, z + step))
        if out is None:
            out = _output_array(output, src.shape, result.dtype)
        out[z : z + step] = result
    return time.perf_counter() - start


def _set_affinity(cpus: set[int]) -> None:
    """Set the CPU affinity of every thread of this process (zarr's codec threads included); Linux only."""
    for task in os.listdir("/proc/self/task"):
        os.sched_setaffinity(int(task), cpus)


def run_reference_one_core(transform: Transform, source: Path, output: Path) -> float:
    """The reference with this process (and zarr's codec threads) pinned to one CPU: a single-core baseline.

    The unpinned reference keeps about 1.5 cores busy through zarr's own threads; this one shows what one core
    does, so the table separates Dask's scaling from the parallelism zarr already gives a single process.
    """
    everything = os.sched_getaffinity(0)
    _set_affinity({min(everything)})
    try:
        return run_reference(transform, source, output)
    finally:
        _set_affinity(everything)


def codec_ceiling(source: Path, work: Path, chunks: int = 64) -> dict[str, Any]:
    """The work every chunk of a copy or mask must do, whatever runs it, timed stage by stage on one thread:
    read the chunk's file, decode it, encode it, write it to a new file (on the outputs' file system).
    ``cores x`` the combined rate bounds any I/O-bound transform's throughput from above."""
    import numpy as np
    from numcodecs import Zstd  # type: ignore[import-untyped]

    files = sorted(p for p in (source / "c").rglob("*") if p.is_file())[:chunks]
    codec = Zstd(level=ZSTD_LEVEL)
    scratch = Path(tempfile.mkdtemp(prefix="ceiling-", dir=work))
    try:
        start = time.perf_counter()
        raw = [f.read_bytes() for f in files]
        read = time.perf_counter() - start
        start = time.perf_counter()
        planes = [np.frombuffer(codec.decode(r), dtype=np.int16) for r in raw]
        decode = time.perf_counter() - start
        start = time.perf_counter()
        encoded = [codec.encode(p) for p in planes]
        encode = time.perf_counter() - start
        start = time.perf_counter()
        for i, data in enumerate(encoded):
            (scratch / str(i)).write_bytes(data)
        write = time.perf_counter() - start
    finally:
        shutil.rmtree(scratch)
    mb = sum(p.nbytes for p in planes) / MB
    return {
        "chunks": len(files),
        "read_mb_per_s_one_core": round(mb / read, 1),
        "decode_mb_per_s_one_core": round(mb / decode, 1),
        "encode_mb_per_s_one_core": round(mb / encode, 1),
        "write_new_file_mb_per_s_one_core": round(mb / write, 1),
        "decode_plus_encode_mb_per_s_one_core": round(mb / (decode + encode), 1),
        "all_mb_per_s_one_core": round(mb / (read + decode + encode + write), 1),
    }


def run_dask(transform: Transform, client: Client, source: Path, output: Path) -> float:
    """``da.from_zarr`` -> transform -> ``da.to_zarr`` on the cluster, one slab of ``SLAB_CHUNKS`` stored chunks
    per task (the reference's slab), into an array with the same stored chunks as the input; or, for the
    transforms with a ``stored`` form, one task per stored chunk file, as the product runs a mask."""

    if transform.stored is not None:
        return run_stored(transform, client, source, output)
    da = _dask_array()
    compute: Any = client.compute
    start = time.perf_counter()

    slab = (SLAB_CHUNKS * CHUNK[0], *CHUNK[1:])
    image = da.from_zarr(str(source), chunks=slab)
    result = transform.dask(image)
    if any(c % s for chunks, s in zip(result.chunks, CHUNK, strict=True) for c in chunks[:-1]):
        raise RuntimeError(f"{transform.name}: Dask chunks {result.chunksize} are not whole stored chunks {CHUNK}")
    # Every task writes whole stored chunks of its own, and there is no sharding: no lock is needed.
    target = _output_array(output, result.shape, result.dtype)
    stored = da.to_zarr(result, target, compute=False)
    compute(stored).result()
    return time.perf_counter() - start


def run_stored(transform: Transform, client: Client, source: Path, output: Path) -> float:
    """:func:`~privacy_core.imaging.stored_chunks.map_stored` on the cluster: read, decode, transform in place,
    encode and write each stored chunk file, into an array with the source's layout."""
    import zarr

    from privacy_core.imaging.stored_chunks import map_stored

    if transform.stored is None:
        raise ValueError(f"{transform.name} has no stored-chunk form")
    compute: Any = client.compute
    start = time.perf_counter()
    src = zarr.open_array(str(source), mode="r")
    target = _output_array(output, src.shape, src.dtype)
    written: Any = map_stored(src, target, transform.stored(tuple(src.shape), src.dtype))
    compute(written.sum()).result()
    return time.perf_counter() - start


def _warm_up() -> None:
    """Import what the tasks use on a worker, so the first timed transform does not pay for it."""
    import dask.array  # noqa: F401
    import scipy.ndimage  # noqa: F401
    import zarr  # noqa: F401

    import privacy_core.pixels  # noqa: F401


#: Worker environment worth recording: glibc malloc tuning and the thread caps distributed sets.
WORKER_ENV_PREFIXES = ("MALLOC_", "OMP_", "MKL_", "OPENBLAS_")


def _worker_environ() -> dict[str, str]:
    """The environment a worker process really runs with (the variables of ``WORKER_ENV_PREFIXES``)."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith(WORKER_ENV_PREFIXES)}


def check_output(transform: Transform, source: Path, output: Path) -> dict[str, Any]:
    """Compare sampled chunks of ``output`` with the reference applied to the same input chunks.

    mask, blur and pixelate must match to float32 rounding. DP-Pix draws fresh noise, so instead every cell
    must be constant and (cell value - reference cell mean) / noise scale must have mean 0 and mean absolute
    value 1 (discrete Laplace of scale 4095 on a sum is Laplace(0, 1) to within 1e-7 there).
    """
    import numpy as np
    import zarr

    from privacy_core.pixels import dp_pix_scale, reference

    src = zarr.open_array(str(source), mode="r")
    out = zarr.open_array(str(output), mode="r")
    count = src.shape[0] // CHUNK[0]
    indices = sorted({0, count // 2, count - 1})[:CHECK_CHUNKS]
    max_diff = 0.0
    units: list[NDArray[np.float64]] = []
    constant = True
    for index in indices:
        image, got = (
            _read(src, index * CHUNK[0], (index + 1) * CHUNK[0]),
            _read(out, index * CHUNK[0], (index + 1) * CHUNK[0]),
        )
        if transform.name != "dp-pix":
            expected = transform.reference(image)
            if got.dtype != expected.dtype:
                return {"ok": False, "chunks": indices, "detail": f"dtype {got.dtype}, expected {expected.dtype}"}
            diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
            max_diff = max(max_diff, float(diff.max()))
            continue
        z, height, width = got.shape
        cells = got.reshape(z, height // DP_BLOCK, DP_BLOCK, width // DP_BLOCK, DP_BLOCK)
        constant = constant and bool((cells.max(axis=(2, 4)) == cells.min(axis=(2, 4))).all())
        means = reference.pixelate(image, DP_BLOCK)[:, ::DP_BLOCK, ::DP_BLOCK].astype(np.float64)
        units.append((got[:, ::DP_BLOCK, ::DP_BLOCK].astype(np.float64) - means).ravel())
    if transform.name != "dp-pix":
        # float32 outputs of values up to ~3000 carry ~2e-4 of rounding; anything real is far bigger.
        return {"ok": max_diff <= 1e-3, "chunks": indices, "max_abs_diff": max_diff}
    scale = dp_pix_scale(DP_BLOCK, DP_EPSILON, 1, DP_VALUE_RANGE)
    unit = np.concatenate(units) / scale
    mean_abs, mean = float(np.abs(unit).mean()), float(unit.mean())
    ok = constant and abs(mean_abs - 1.0) <= DP_TOLERANCE and abs(mean) <= DP_TOLERANCE
    return {
        "ok": ok,
        "chunks": indices,
        "cells": int(unit.size),
        "cells_constant": constant,
        "noise_mean_abs_over_scale": round(mean_abs, 4),
        "noise_mean_over_scale": round(mean, 4),
        "expected": "mean |noise| / scale = 1 and mean noise = 0, each within 0.05",
    }


@dataclass
class RunRecord:
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    #: CPU seconds other processes on the machine used during each run: a busy neighbour makes a run slow.
    other_cpu_seconds: list[float] = field(default_factory=list)
    peak_rss_bytes: int = 0
    peak_processes: int = 0
    check: dict[str, Any] = field(default_factory=dict)

    def result(self, nbytes: int) -> dict[str, Any]:
        best = min(self.seconds)
        at = self.seconds.index(best)
        return {
            "seconds": [round(s, 3) for s in self.seconds],
            "seconds_best": round(best, 3),
            "mb_per_s": round(nbytes / MB / best, 1),
            "cpu_seconds": [round(s, 2) for s in self.cpu_seconds],
            "cores_busy": round(self.cpu_seconds[at] / best, 2),
            "other_cpu_seconds": [round(s, 2) for s in self.other_cpu_seconds],
            "other_cores_busy": round(self.other_cpu_seconds[at] / best, 2),
            "peak_rss_mb": round(self.peak_rss_bytes / MB, 1),
            "peak_processes": self.peak_processes,
            "check": self.check,
        }


def timed_run(
    transform: Transform,
    run: Callable[[Path], float],
    dataset: Dataset,
    work: Path,
    sampler: RssSampler,
    record: RunRecord,
) -> None:
    """One timed run into a fresh output, added to ``record``; the output is checked the first time, then deleted."""
    output = work / f"out-{transform.name}.zarr"
    os.sync()  # write back the previous run's output now, not during this run's timing
    cpu_before, machine_before = sampler.cpu_seconds(), sampler.machine_busy_seconds()
    with sampler.window() as peak:
        record.seconds.append(run(output))
    cpu_after, machine_after = sampler.cpu_seconds(), sampler.machine_busy_seconds()
    ours = sum(t - cpu_before.get(pid, 0.0) for pid, t in cpu_after.items())
    record.cpu_seconds.append(ours)
    record.other_cpu_seconds.append(max(0.0, machine_after - machine_before - ours))
    if peak.rss_bytes > record.peak_rss_bytes:
        record.peak_rss_bytes, record.peak_processes = peak.rss_bytes, peak.processes
    if not record.check:
        record.check = check_output(transform, dataset.path, output)
    shutil.rmtree(output)


def bench_size(
    dataset: Dataset,
    transforms: dict[str, Transform],
    workers: Sequence[int],
    repeat: int,
    work: Path,
    sampler: RssSampler,
) -> dict[str, Any]:
    """Every transform in every configuration on one dataset, in ``repeat`` rounds: each round runs the
    references, then each cluster size, so a slow spell of the shared machine lands in one round of every
    configuration rather than in every run of one; each configuration keeps its best round."""
    from privacy_core.imaging.compute import DaskConfig, dask_client

    records: dict[str, dict[str, RunRecord]] = {name: {} for name in transforms}
    idle = {"driver_only_mb": round(sampler.sample() / MB, 1)}
    clusters: dict[str, Any] = {}
    ceiling: dict[str, Any] = {}
    for round_ in range(repeat):
        for name, transform in transforms.items():
            for config, runner in (("reference", run_reference), ("reference-1core", run_reference_one_core)):
                progress(f"  round {round_ + 1}: {config} {name}")
                run = functools.partial(runner, transform, dataset.path)
                timed_run(transform, run, dataset, work, sampler, records[name].setdefault(config, RunRecord()))
        if not ceiling:
            ceiling = codec_ceiling(dataset.path, work)
        for n in workers:
            config = f"dask-w{n}"
            start = time.perf_counter()
            with sampler.window() as cluster_peak, dask_client(DaskConfig(workers=n)) as client:
                client.wait_for_workers(n)
                client.run(_warm_up)
                started = time.perf_counter() - start
                environs: dict[str, dict[str, str]] = client.run(_worker_environ)
                idle[f"{config}_idle_mb"] = round(sampler.sample() / MB, 1)
                for name, transform in transforms.items():
                    progress(f"  round {round_ + 1}: {config} {name}")
                    run = functools.partial(run_dask, transform, client, dataset.path)
                    timed_run(transform, run, dataset, work, sampler, records[name].setdefault(config, RunRecord()))
            clusters[config] = {
                "workers": n,
                "threads_per_worker": 1,
                "startup_seconds": round(started, 2),
                "peak_rss_mb_while_up": round(cluster_peak.rss_bytes / MB, 1),
                # What the workers really ran with: dask_client may add its own settings to pre-spawn-environ.
                "worker_environ": next(iter(environs.values())) if environs else {},
                "worker_environ_same_on_all": len({tuple(e.items()) for e in environs.values()}) <= 1,
            }
    results = {
        name: {config: record.result(dataset.nbytes) for config, record in by_config.items()}
        for name, by_config in records.items()
    }
    speedups: dict[str, dict[str, float]] = {}
    for name, by_config in results.items():
        ref = by_config["reference"]["seconds_best"]
        speedups[name] = {
            f"{config}_over_reference": round(ref / r["seconds_best"], 2)
            for config, r in by_config.items()
            if config != "reference"
        }
        for config, r in by_config.items():
            if config.startswith("dask-w"):
                speedups[name][f"{config}_over_reference-1core"] = round(
                    by_config["reference-1core"]["seconds_best"] / r["seconds_best"], 2
                )
        if "dask-w1" in by_config and "dask-w2" in by_config:
            speedups[name]["dask-w2_over_dask-w1"] = round(
                by_config["dask-w1"]["seconds_best"] / by_config["dask-w2"]["seconds_best"], 2
            )
    return {
        "dataset": dataset.describe(),
        "transforms": results,
        "speedups": speedups,
        "clusters": clusters,
        "codec_ceiling": ceiling,
        "rss_baseline_mb": idle,
    }


# ---------------------------------------------------------------------- report
def _worst_speedup(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The lowest ``speedups[transform][key]`` over the goal transforms and sizes, against :data:`GOAL_SPEEDUP`."""
    worst = min(
        (run["speedups"][name][key], name, run["gb"])
        for run in runs
        for name in run["speedups"]
        if name in GOAL_TRANSFORMS
    )
    return {
        "target": GOAL_SPEEDUP,
        "min": worst[0],
        "min_at": f"{worst[1]} at {worst[2]:g} GB",
        "met": worst[0] >= GOAL_SPEEDUP,
    }


def goals(runs: list[dict[str, Any]], workers: Sequence[int]) -> dict[str, Any]:
    """Speed-up of 2 workers over the reference per transform (each size), and peak RSS growth when doubling."""
    out: dict[str, Any] = {}
    if 2 in workers:
        out["speedup_w2_over_reference"] = _worst_speedup(runs, "dask-w2_over_reference")
        out["speedup_w2_over_reference_1core"] = _worst_speedup(runs, "dask-w2_over_reference-1core")
        # The most any 2-core run of an I/O-bound transform can reach: every chunk read, decoded, encoded, written.
        out["codec_ceiling_2_cores_over_reference"] = {
            f"{name} at {run['gb']:g} GB": round(
                2 * run["codec_ceiling"]["all_mb_per_s_one_core"] / run["transforms"][name]["reference"]["mb_per_s"],
                2,
            )
            for run in runs
            for name in ("copy", "mask")
            if name in run["transforms"]
        }
    if len(runs) == 2:
        small, large = runs
        ratios = {
            f"{name}/{config}": round(large["transforms"][name][config]["peak_rss_mb"] / r["peak_rss_mb"], 3)
            for name, config, r in _rows(small)
        }
        worst_key = max(ratios, key=lambda k: ratios[k])
        out["memory_when_doubling"] = {
            "target_max_ratio": GOAL_MEMORY_RATIO,
            "peak_rss_ratio_large_over_small": ratios,
            "max": ratios[worst_key],
            "max_at": worst_key,
            "whole_run_peak_mb": [small["whole_run_peak_rss_mb"], large["whole_run_peak_rss_mb"]],
            "met": ratios[worst_key] <= GOAL_MEMORY_RATIO,
        }
    return out


def _configs(by_config: dict[str, Any]) -> list[str]:
    """Configurations in table order: the reference, then clusters by size (JSON sorts keys alphabetically)."""
    order = {"reference": -2, "reference-1core": -1}
    return sorted(by_config, key=lambda c: order.get(c, 0) or int(c.removeprefix("dask-w")))


def _rows(run: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(transform, config, result) in table order."""
    for name in sorted(run["transforms"], key=TRANSFORMS.index):
        by_config = run["transforms"][name]
        for config in _configs(by_config):
            yield name, config, by_config[config]


def format_tables(result: dict[str, Any]) -> str:
    lines: list[str] = []
    for run in result["runs"]:
        d = run["dataset"]
        lines += [
            f"### {run['gb']:g} GB on disk: shape {tuple(d['shape'])}, {d['uncompressed_bytes'] / GB:.2f} GB "
            f"uncompressed, {d['disk_bytes'] / GB:.2f} GB on disk ({d['compression_ratio']:.2f}x), "
            f"generated at {d['generate_mb_per_s']:.0f} MB/s",
            "",
            "| transform | config | seconds | MB/s | vs reference | cores busy (others) | peak RSS MB | check |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for name, config, r in _rows(run):
            speedup = "1.00x" if config == "reference" else f"{run['speedups'][name][config + '_over_reference']:.2f}x"
            check = r["check"]
            if "max_abs_diff" in check:
                detail = f"max diff {check['max_abs_diff']:.1g}"
            else:
                detail = f"mean abs noise/scale {check['noise_mean_abs_over_scale']:.3f}"
            verdict = "ok" if check["ok"] else "FAILED"
            lines.append(
                f"| {name} | {config} | {r['seconds_best']:.1f} | {r['mb_per_s']:.0f} | {speedup} "
                f"| {r['cores_busy']:.2f} ({r['other_cores_busy']:.2f}) | {r['peak_rss_mb']:.0f} "
                f"| {verdict} ({detail}) |"
            )
        baseline = ", ".join(f"{k} {v:.0f}" for k, v in run["rss_baseline_mb"].items())
        startups = ", ".join(f"{k} {v['startup_seconds']:.1f} s" for k, v in run["clusters"].items())
        mallocs = {
            ", ".join(f"{k}={v}" for k, v in c.get("worker_environ", {}).items() if k.startswith("MALLOC_"))
            or "glibc defaults"
            for c in run["clusters"].values()
        }
        c = run.get("codec_ceiling")
        if c:
            every = c["all_mb_per_s_one_core"]
            lines += [
                "",
                f"the work of every chunk on one core ({c['chunks']} chunks, MB/s of uncompressed data): read the "
                f"file {c['read_mb_per_s_one_core']:.0f}, decode {c['decode_mb_per_s_one_core']:.0f}, encode "
                f"{c['encode_mb_per_s_one_core']:.0f}, write a new file {c['write_new_file_mb_per_s_one_core']:.0f};"
                f" all four {every:.0f}: no copy or mask on 2 cores can pass {2 * every:.0f} MB/s",
            ]
        lines += [
            "",
            f"idle RSS MB: {baseline}; whole-run peak {run['whole_run_peak_rss_mb']:.0f} MB; "
            f"cluster start-up (not timed): {startups}; worker malloc: {'; '.join(sorted(mallocs))}",
            "",
        ]
    g = result["goals"]
    if "memory_when_doubling" in g:
        small, large = result["runs"]
        m = g["memory_when_doubling"]
        lines += [
            f"### Peak RSS when doubling: {small['gb']:g} GB -> {large['gb']:g} GB",
            "",
            f"| transform | config | {small['gb']:g} GB MB | {large['gb']:g} GB MB | ratio |",
            "|---|---|---:|---:|---:|",
        ]
        for name, config, r in _rows(small):
            big = large["transforms"][name][config]["peak_rss_mb"]
            ratio = m["peak_rss_ratio_large_over_small"][f"{name}/{config}"]
            lines.append(f"| {name} | {config} | {r['peak_rss_mb']:.0f} | {big:.0f} | {ratio:.2f} |")
        lines.append("")
    if "speedup_w2_over_reference" in g:
        s = g["speedup_w2_over_reference"]
        verdict = "met" if s["met"] else "NOT met"
        lines.append(f"goal 2 workers >= {s['target']}x reference: lowest {s['min']:.2f}x ({s['min_at']}) -> {verdict}")
    if "speedup_w2_over_reference_1core" in g:
        s = g["speedup_w2_over_reference_1core"]
        verdict = "met" if s["met"] else "NOT met"
        lines.append(
            f"goal 2 workers >= {s['target']}x reference pinned to one core: lowest {s['min']:.2f}x "
            f"({s['min_at']}) -> {verdict}"
        )
    if g.get("codec_ceiling_2_cores_over_reference"):
        ceilings = ", ".join(f"{k} {v:.2f}x" for k, v in g["codec_ceiling_2_cores_over_reference"].items())
        lines.append(
            f"ceiling of 2 cores that only read, decode, encode and write every chunk, over the reference: {ceilings}"
        )
    if "memory_when_doubling" in g:
        m = g["memory_when_doubling"]
        verdict = "met" if m["met"] else "NOT met"
        lines.append(
            f"goal peak RSS bounded when doubling (ratio <= {m['target_max_ratio']}): highest {m['max']:.2f} "
            f"({m['max_at']}) -> {verdict}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------- CLI
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--gb", type=float, default=DEFAULT_GB, help="dataset size on disk in GB (default 2)")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=list(DEFAULT_WORKERS), help="Dask cluster sizes (default 1 2)"
    )
    parser.add_argument(
        "--transforms",
        nargs="+",
        choices=TRANSFORMS,
        default=list(DEFAULT_TRANSFORMS),
        help="transforms to time (default mask blur dp-pix; pixelate only when named)",
    )
    parser.add_argument(
        "--double",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run on a dataset of 2 x --gb to compare peak memory (default on; --no-double skips it)",
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the Dask worker processes (distributed.nanny.pre-spawn-environ); repeatable",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=DEFAULT_REPEAT,
        help="rounds of every transform and config (each keeps its best round)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder and its input datasets")
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the work folder (default: /tmp)")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="folder for pixels-<gb>gb.json")
    args = parser.parse_args(argv)
    if args.gb <= 0:
        parser.error(f"--gb={args.gb} must be greater than 0")
    if any(n < 1 for n in args.workers):
        parser.error(f"--workers={args.workers}: every cluster size must be at least 1")
    if args.repeat < 1:
        parser.error(f"--repeat={args.repeat} must be at least 1")
    args.workers = sorted(set(args.workers))
    for item in args.worker_env:
        if "=" not in item or not item.partition("=")[0]:
            parser.error(f"--worker-env={item!r} is not NAME=VALUE, e.g. MALLOC_TRIM_THRESHOLD_=134217728")
    args.worker_env = dict(item.split("=", 1) for item in args.worker_env)
    args.transforms = [t for t in TRANSFORMS if t in args.transforms]
    return args


def run_one_size(
    gb: float,
    names: list[str],
    workers: list[int],
    repeat: int,
    work: str,
    keep: bool,
    out: str,
    worker_env: dict[str, str],
) -> None:
    """Everything for one dataset size, in its own interpreter: generate, time, check, write ``out`` as JSON.

    A fresh process per size means the larger run does not inherit the heap, imports and scheduler state of
    the smaller one, so their peak RSS can be compared; the sampler covers this process and all its children.
    """
    import dask
    import distributed  # noqa: F401  (loads the distributed.* config defaults read below)

    from privacy_core.storage import atomic_write_json

    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ"), **worker_env}
    dask.config.set({"distributed.nanny.pre-spawn-environ": environ})
    transforms = build_transforms(names)
    path = Path(work) / f"ct-{gb:g}gb.zarr"
    with RssSampler() as sampler:
        progress(f"generating {path} (>= {gb:g} GB on disk)")
        with sampler.window() as generate_peak:
            dataset = generate_dataset(path, int(gb * GB))
        progress(
            f"  {dataset.shape}: {dataset.nbytes / GB:.2f} GB uncompressed, {dataset.disk_bytes / GB:.2f} GB "
            f"on disk in {dataset.seconds:.1f} s"
        )
        run = bench_size(dataset, transforms, workers, repeat, Path(work), sampler)
    run["gb"] = gb
    run["generate_peak_rss_mb"] = round(generate_peak.rss_bytes / MB, 1)
    run["whole_run_peak_rss_mb"] = round(sampler.peak.rss_bytes / MB, 1)
    run["rss_samples"] = sampler.samples
    run["worker_env_requested"] = environ
    if not keep:
        shutil.rmtree(path)
    atomic_write_json(Path(out), run)


def main(argv: Sequence[str] | None = None) -> int:
    import multiprocessing

    from privacy_core.storage import atomic_write_json

    args = parse_args(argv)
    env = environment(("numpy", "scipy", "dask", "distributed", "zarr", "psutil"))
    transforms = build_transforms(args.transforms)
    sizes = [args.gb, 2 * args.gb] if args.double else [args.gb]
    parent = args.workdir or Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-pixels-", dir=parent))
    runs: list[dict[str, Any]] = []
    start = time.perf_counter()
    spawn = multiprocessing.get_context("spawn")
    try:
        for gb in sizes:
            out = work / f"run-{gb:g}gb.json"
            process = spawn.Process(
                target=run_one_size,
                args=(gb, args.transforms, args.workers, args.repeat, str(work), args.keep, str(out), args.worker_env),
                name=f"bench-pixels-{gb:g}gb",
            )
            process.start()
            process.join()
            if process.exitcode != 0:
                print(f"the {gb:g} GB run failed (exit code {process.exitcode}); see the error above", file=sys.stderr)
                return 1
            runs.append(json.loads(out.read_text()))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    result = {
        "schema": "bench_pixels/1.0",
        "command": command_line("benchmarks/bench_pixels.py", argv),
        **env,
        "chunks": list(CHUNK),
        "reference_slab_chunks": SLAB_CHUNKS,
        "rss_sample_seconds": SAMPLE_SECONDS,
        "workers": args.workers,
        "repeat": args.repeat,
        "worker_env_added": args.worker_env,
        "transform_params": {name: t.params for name, t in transforms.items()},
        "runs": runs,
        "goals": goals(runs, args.workers),
        "total_seconds": round(time.perf_counter() - start, 1),
        "workdir": str(work) if args.keep else None,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"pixels-{args.gb:g}gb.json"
    atomic_write_json(path, result)
    text = (
        f"`{result['command']}`\n\n"
        + machine_line(env)
        + f"chunks {CHUNK}; MB = 1e6 bytes of uncompressed input; best of {args.repeat} rounds; "
        f"total {result['total_seconds']:.0f} s\n\n" + format_tables(result) + "\n"
    )
    (args.results / f"pixels-{args.gb:g}gb.md").write_text(text, encoding="utf-8")
    print(text + f"(results: {path} and .md)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
