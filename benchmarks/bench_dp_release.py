"""Time a DP release over a multi-GB Zarr store of CT series against the same reduction without noise.

A store of synthetic CT series arrays (64 x 512 x 512 int16, 1-3 per patient) taking at least ``--gb`` GB on
disk is written once, array by array, through the project's own writer (``zarr_store.write_array``, Blosc-zstd
5 with byte shuffle, one 32 MiB chunk per array) and cached under ``--root``. On one embedded Dask cluster of
``--workers`` single-threaded processes, started before any timing, each query runs ``--repeat`` times in two
configurations, interleaved (the order flips every round):

* exact: what a release computes before noise, on the cluster: ``zarr_rows`` -> ``bound_contributions`` ->
  ``zarr_statistics`` (the function the release calls, with the same contribution bound);
* dp: the whole ``run_release`` of a zCDP spec holding only that query, on an SQLite ledger: budget check,
  reservation, the same reduction (through a client of its own on the same cluster), exact noise on the
  driver, commit of the bundle (the image encoded in it) to the ledger, then the .npy, bundle and lineage.

The goal is DP/exact throughput near 1.0: noise is added once, after the reduction. The DP run's phases are
timed too, and the noise alone (``Mechanism.add_noise`` on the exact statistic). Inputs are read once before
timing, so they come from the page cache in every run: the figures are CPU-bound, not disk-bound.

    python benchmarks/bench_dp_release.py [--gb 2] [--workers 2] [--repeat 2] [--root DIR] [--results DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _machine import SAMPLE_SECONDS, RssSampler, command_line, environment, machine_line, other_benchmarks, progress

if TYPE_CHECKING:
    import numpy as np
    from distributed import Client
    from numpy.typing import NDArray

    from privacy_core.dp.ledger import BudgetLedger
    from privacy_core.dp.queries import Statistic
    from privacy_core.dp.spec import ReleaseSpec

#: Decimal units throughout: GB = 1e9 bytes, MB/s = 1e6 uncompressed input bytes per second.
GB = 1e9
MB = 1e6
DEFAULT_GB = 2.0
DEFAULT_WORKERS = 2
DEFAULT_REPEAT = 2
BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_ROOT = BENCH_DIR / ".data" / "dp"
RESULT_NAME = "dp-release"

#: One series array: 64 CT planes of 512 x 512 int16, 32 MiB uncompressed (one chunk, not sharded).
SHAPE = (64, 512, 512)
ARRAY_BYTES = 2 * math.prod(SHAPE)
#: Hounsfield range of 12-bit CT stored as int16: the voxel_mean clipping bounds and the histogram's range.
HU_MIN, HU_MAX = -1024, 3071
SEED = 20260802
#: Bump when the generated content or records change: the cache folder carries it in its name.
GENERATOR_VERSION = 1
#: Coarse (z, y, x) grid of Gaussian control points, linearly interpolated onto the volume: smooth anatomy.
FIELD_POINTS = (9, 17, 17)
#: Uniform integer noise of +-NOISE HU on every voxel (23 HU standard deviation, like a CT scan): Blosc-zstd
#: then stores about 2 bytes in 1, as for real CT, not the 10x+ of a smooth field alone.
NOISE = 40
MAX_SERIES_PER_PATIENT = 3
PSEUDONYM_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: Voxel spacing (z, y, x) in mm of the recorded geometry.
SPACING = (2.5, 0.7, 0.7)

DATASET = "bench-dp-release"
RHO = 1
MAX_RECORDS_PER_PATIENT = 2
BINS = (-1024, -500, -100, 0, 100, 500, 1000, 3071)
#: Cap of the ledger's dataset: every DP run spends RHO, and nothing here should ever hit the cap.
LEDGER_CAP = Fraction(10**6)
QUERIES: dict[str, dict[str, Any]] = {
    "voxel_mean": {"name": "image", "kind": "voxel_mean", "shape": list(SHAPE), "bounds": [HU_MIN, HU_MAX]},
    "intensity_histogram": {"name": "intensity", "kind": "intensity_histogram", "bins": list(BINS)},
}
CONFIGS = ("exact", "dp")
#: Block size when reading the store's files into the page cache before timing.
READ_BLOCK = 16 << 20


def _dask_array() -> Any:
    """``dask.array`` as Any: its functions are unannotated and mypy --strict refuses untyped calls."""
    import dask.array

    return dask.array


def _dask_config() -> Any:
    """``dask.config`` as Any: dask is unannotated and mypy --strict refuses untyped calls."""
    import dask

    return dask.config


# ---------------------------------------------------------------------- dataset
def _hash_int(*parts: object) -> int:
    """A 128-bit integer fixed by ``parts`` (and the seed passed among them): test identifiers, not secrets."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:16], "big")


def pseudonym(seed: int, patient: int) -> str:
    """``PAT`` + 13 Crockford base-32 characters, the form the project's pseudonymizer writes."""
    value = _hash_int("patient", seed, patient)
    return "PAT" + "".join(PSEUDONYM_ALPHABET[(value >> (5 * i)) & 31] for i in range(13))


class SeriesGenerator:
    """Series ``i`` of the store, computed from ``i`` alone, so one series at a time is ever in memory.

    Each series is an elliptic body of soft tissue (40 HU) in air (-1000 HU) whose size varies per series,
    plus a smooth random field (trilinear interpolation of a 9 x 17 x 17 Gaussian grid; +-500 HU amplitude
    inside the body, +-20 outside), plus uniform integer noise, clipped to [-1024, 3071]. Series belong to
    patients in runs of 1-3. Randomness is NumPy Philox seeded per series (test data, not privacy noise).
    """

    def __init__(self, seed: int = SEED) -> None:
        import numpy as np

        self.seed = seed
        _, height, width = SHAPE
        self._interp = [self._interpolation(n, p) for n, p in zip(SHAPE, FIELD_POINTS, strict=True)]
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        self._yy: NDArray[np.float32] = (yy - height / 2) / height
        self._xx: NDArray[np.float32] = (xx - width / 2) / width
        self._patients: list[int] = []  # patient number of each series, extended on demand

    @staticmethod
    def _interpolation(n: int, points: int) -> NDArray[np.float32]:
        """The (n, points) matrix that linearly interpolates control points onto n voxels."""
        import numpy as np

        position = np.linspace(0, points - 1, n)
        left = np.clip(np.floor(position).astype(int), 0, points - 2)
        t = position - left
        matrix = np.zeros((n, points), np.float32)
        matrix[np.arange(n), left] = 1 - t
        matrix[np.arange(n), left + 1] = t
        return matrix

    def _rng(self, stream: int, index: int) -> np.random.Generator:
        import numpy as np

        return np.random.Generator(np.random.Philox(np.random.SeedSequence([self.seed, stream, index])))

    def patient(self, index: int) -> int:
        """The patient number of series ``index``: patients hold 1 to 3 consecutive series."""
        while len(self._patients) <= index:
            number = self._patients[-1] + 1 if self._patients else 0
            count = 1 + _hash_int("series-per-patient", self.seed, number) % MAX_SERIES_PER_PATIENT
            self._patients.extend([number] * count)
        return self._patients[index]

    def record(self, index: int) -> dict[str, Any]:
        """The source record ``write_array`` copies into the array's ``imaging_privacy`` attribute."""
        patient = self.patient(index)
        depth, height, width = SHAPE
        return {
            "series_uid": f"2.25.{_hash_int('series', self.seed, index)}",
            "study_uid": f"2.25.{_hash_int('study', self.seed, patient)}",
            "modality": "CT",
            "patient": pseudonym(self.seed, patient),
            "geometry": {
                "spacing": list(SPACING),
                "origin": [-SPACING[2] * width / 2, -SPACING[1] * height / 2, -SPACING[0] * depth * (index % 3)],
                "direction": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                "partial": False,
                "uniform_spacing": True,
            },
            "bits_stored": 12,
            "rescaled": True,
            "stored_dtype": "int16",
        }

    def volume(self, index: int) -> NDArray[np.int16]:
        import numpy as np

        rng = self._rng(0, index)
        iz, iy, ix = self._interp
        grid = rng.standard_normal(FIELD_POINTS, dtype=np.float32)
        field = np.einsum("zi,ijk->zjk", iz, grid)  # (64, 17, 17)
        field = np.einsum("zjk,yj->zyk", field, iy)  # (64, 512, 17)
        smooth: NDArray[np.float32] = field @ ix.T  # (64, 512, 512)
        ry, rx = 0.38 + 0.08 * rng.random(), 0.30 + 0.08 * rng.random()
        body = (self._yy / ry) ** 2 + (self._xx / rx) ** 2 <= 1.0
        smooth *= np.where(body, 500.0, 20.0).astype(np.float32)
        smooth += np.where(body, 40.0, -1000.0).astype(np.float32)
        out: NDArray[np.int16] = np.clip(smooth, HU_MIN + NOISE, HU_MAX - NOISE).astype(np.int16)
        out += rng.integers(-NOISE, NOISE + 1, SHAPE, dtype=np.int16)
        return out


@dataclass(frozen=True)
class Dataset:
    """The generated store: ``series`` arrays of ``patients`` patients, and what it took to make them."""

    store: Path
    series: int
    patients: int
    nbytes: int
    disk_bytes: int
    generate_seconds: float
    cached: bool

    def describe(self) -> dict[str, Any]:
        return {
            "store": str(self.store),
            "series": self.series,
            "patients": self.patients,
            "series_shape": list(SHAPE),
            "dtype": "int16",
            "codec": "Blosc zstd level 5, byte shuffle; one 32 MiB chunk per array, not sharded (write_array)",
            "content": f"smooth CT-like field + uniform +-{NOISE} HU noise in [{HU_MIN}, {HU_MAX}]",
            "uncompressed_bytes": self.nbytes,
            "disk_bytes": self.disk_bytes,
            "compression_ratio": round(self.nbytes / self.disk_bytes, 3),
            "generate_seconds": round(self.generate_seconds, 1),
            "cached": self.cached,
        }


def _disk_bytes(path: Path) -> int:
    return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())


def generate_dataset(root: Path, target_disk_bytes: int, seed: int = SEED) -> Dataset:
    """The store under ``root`` for this size, written series by series until it takes ``target_disk_bytes``.

    Cached: a finished store has a manifest beside it and is reused as is. An interrupted generation resumes,
    keeping the series already complete (series ``i`` is a pure function of ``i``).
    """
    from privacy_core.errors import ConfigurationError
    from privacy_core.imaging.zarr_store import PARTIAL, read_record, write_array
    from privacy_core.storage import atomic_write_json

    da = _dask_array()

    name = f"ct-{target_disk_bytes / GB:g}gb-seed{seed}-v{GENERATOR_VERSION}"
    store, manifest = root / name, root / f"{name}.json"
    if manifest.is_file():
        saved = json.loads(manifest.read_text())
        return Dataset(
            store,
            saved["series"],
            saved["patients"],
            saved["uncompressed_bytes"],
            _disk_bytes(store),
            saved["generate_seconds"],
            cached=True,
        )
    root.mkdir(parents=True, exist_ok=True)
    ignore = root / ".gitignore"  # the cache never shows in git status, whatever the repository ignores
    if not ignore.exists():
        ignore.write_text("# benchmark data generated by bench_dp_release.py\n*\n")
    store.mkdir(exist_ok=True)
    for leftover in store.glob(f"*{PARTIAL}*"):  # a generation killed mid-write
        shutil.rmtree(leftover)
    generator = SeriesGenerator(seed)
    start = time.perf_counter()
    disk, index = 0, 0
    while disk < target_disk_bytes:
        source = generator.record(index)
        folder = store / source["series_uid"]
        try:
            complete = read_record(str(folder))["series_uid"] == source["series_uid"]
        except ConfigurationError:  # not there, or not complete
            complete = False
        if not complete:
            volume = generator.volume(index)
            image = da.from_array(volume, chunks=volume.shape)
            derived = {"method": "synthetic", "generator": f"bench_dp_release v{GENERATOR_VERSION}", "seed": seed}
            write_array(image, str(store), source, derived=derived)
        disk += _disk_bytes(folder)
        index += 1
        if index % 10 == 0:
            progress(f"  {index} series, {disk / GB:.2f} GB on disk")
    seconds = time.perf_counter() - start
    series, patients = index, generator.patient(index - 1) + 1
    summary = {
        "series": series,
        "patients": patients,
        "uncompressed_bytes": series * ARRAY_BYTES,
        "generate_seconds": round(seconds, 1),
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
    }
    atomic_write_json(manifest, summary)
    return Dataset(store, series, patients, series * ARRAY_BYTES, _disk_bytes(store), seconds, cached=False)


def read_into_page_cache(store: Path) -> float:
    """Read every file of the store once, so no timed run pays for the disk (they all read from memory)."""
    start = time.perf_counter()
    for path in sorted(store.rglob("*")):
        if path.is_file():
            with path.open("rb", buffering=0) as handle:
                while handle.read(READ_BLOCK):
                    pass
    return time.perf_counter() - start


# ---------------------------------------------------------------------- runs
def release_spec(query: str, store: Path, dataset: str = DATASET) -> ReleaseSpec:
    """A zCDP spec (rho 1, at most 2 series per patient) holding only ``query``, spending ``dataset``'s budget."""
    from privacy_core.dp.spec import parse_spec

    return parse_spec(
        {
            "dataset": dataset,
            "accounting": "zcdp",
            "budget": {"rho": RHO},
            "privacy_unit": {"max_records_per_patient": MAX_RECORDS_PER_PATIENT},
            "sources": {"zarr": str(store)},
            "queries": [QUERIES[query]],
        }
    )


def run_exact(spec: ReleaseSpec, client: Client, limit: int | None = None) -> tuple[list[Statistic], int]:
    """The exact statistics as ``run_release`` computes them (rows, contribution bound, ``zarr_statistics``).

    :param limit: read only the first ``limit`` rows (the untimed warm-up).
    """
    from privacy_core.dp.queries import zarr_statistics
    from privacy_core.dp.tables import bound_contributions, zarr_rows

    k = spec.max_records_per_patient
    rows = bound_contributions(zarr_rows(spec.sources["zarr"]), k)[:limit]
    with _dask_config().set(scheduler=client.get):
        return zarr_statistics(spec.queries[0], rows, k), len(rows)


#: Phases of a DP run, in order, with what each covers.
PHASES = {
    "check": "check_budget: the ledger's status and the over-cap check",
    "reserve": "ledger reservation of the loss",
    "exact": "rows, bound, zarr_statistics on Dask (with its own client connection)",
    "noise": "Mechanism.add_noise, on the driver",
    "encode": "the noisy image as zlib'd, base64 .npy in the bundle",
    "commit": "ledger commit of the bundle (SQLite)",
    "publish": "decode, .npy + release.json + lineage written atomically",
}


@contextlib.contextmanager
def phase_timers(ledger: BudgetLedger) -> Iterator[dict[str, float]]:
    """Seconds spent in each phase of the ``run_release`` calls made inside the ``with`` body.

    Wraps, for the duration only, the functions the release calls (budget check, reservation, exact
    statistics, noise, image encoding, ledger commit, publishing of files); what is left is the bundle's JSON.
    """
    from unittest import mock

    from privacy_core.dp import release
    from privacy_core.dp.mechanisms import Mechanism

    seconds: dict[str, float] = dict.fromkeys(PHASES, 0.0)

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[name] += time.perf_counter() - start

        return wrapper

    targets: list[tuple[object, str, str]] = [
        (release, "check_budget", "check"),
        (ledger, "reserve", "reserve"),
        (release, "_zarr_exact", "exact"),
        (Mechanism, "add_noise", "noise"),
        (release, "_encode", "encode"),
        (ledger, "commit", "commit"),
        (release, "_publish", "publish"),
    ]
    with contextlib.ExitStack() as stack:
        for owner, attribute, name in targets:
            stack.enter_context(mock.patch.object(owner, attribute, timed(name, getattr(owner, attribute))))
        yield seconds


@dataclass
class RunRecord:
    """Every timed run of one query in one configuration."""

    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    #: CPU seconds other processes on the machine used during each run: a busy neighbour makes a run slow.
    other_cpu_seconds: list[float] = field(default_factory=list)
    phases: list[dict[str, float]] = field(default_factory=list)
    peak_rss_bytes: int = 0
    peak_processes: int = 0
    check: dict[str, Any] = field(default_factory=dict)

    def result(self, input_bytes: int) -> dict[str, Any]:
        best = min(self.seconds)
        at = self.seconds.index(best)
        out: dict[str, Any] = {
            "seconds": [round(s, 3) for s in self.seconds],
            "seconds_best": round(best, 3),
            "mb_per_s": round(input_bytes / MB / best, 1),
            "cpu_seconds": [round(s, 2) for s in self.cpu_seconds],
            "cores_busy": round(self.cpu_seconds[at] / best, 2),
            "other_cpu_seconds": [round(s, 2) for s in self.other_cpu_seconds],
            "other_cores_busy": round(self.other_cpu_seconds[at] / best, 2),
            "peak_rss_mb": round(self.peak_rss_bytes / MB, 1),
            "peak_processes": self.peak_processes,
            "check": self.check,
        }
        if self.phases:
            phases = {name: round(s, 3) for name, s in self.phases[at].items()}
            phases["other"] = round(best - sum(self.phases[at].values()), 3)
            out["phases_of_best"] = phases
        return out


def timed(record: RunRecord, sampler: RssSampler, run: Callable[[], Any]) -> Any:
    """Run ``run`` once, adding its time, CPU (ours and the machine's others') and peak RSS to ``record``."""
    cpu_before, machine_before = sampler.cpu_seconds(), sampler.machine_busy_seconds()
    with sampler.window() as peak:
        start = time.perf_counter()
        value = run()
        record.seconds.append(time.perf_counter() - start)
    cpu_after, machine_after = sampler.cpu_seconds(), sampler.machine_busy_seconds()
    ours = sum(t - cpu_before.get(pid, 0.0) for pid, t in cpu_after.items())
    record.cpu_seconds.append(ours)
    record.other_cpu_seconds.append(max(0.0, machine_after - machine_before - ours))
    if peak.rss_bytes > record.peak_rss_bytes:
        record.peak_rss_bytes, record.peak_processes = peak.rss_bytes, peak.processes
    return value


def check_exact(query: str, statistics: list[Statistic], rows: int) -> dict[str, Any]:
    """Sanity of the exact result: the shape and count of the voxel sum; the histogram's total.

    Each array adds floor(10000 * count / voxels) per bin, so the histogram sums to between
    rows * (10000 - bins) and rows * 10000.
    """
    import numpy as np

    if query == "voxel_mean":
        total, count = statistics[0].values, int(statistics[1].values[0])
        mean = total / max(count, 1)
        ok = total.shape == SHAPE and count == rows and HU_MIN <= float(mean.min()) <= float(mean.max()) <= HU_MAX
        return {"ok": ok, "count": count, "mean_image_range_hu": [round(float(mean.min()), 1), float(mean.max())]}
    hist = statistics[0].values
    units = int(1 / statistics[0].resolution)
    summed = int(np.sum(hist))
    ok = rows * (units - len(hist)) <= summed <= rows * units
    return {"ok": ok, "histogram_total": summed, "expected": f"in [{rows * (units - len(hist))}, {rows * units}]"}


def check_dp(query: str, bundle: dict[str, Any], output: Path) -> dict[str, Any]:
    """The bundle holds the query, charged once; the voxel sum .npy has the image's shape. Also the noise size."""
    import numpy as np

    statistics = bundle["queries"][0]["statistics"]
    out: dict[str, Any] = {"noise_std": {s["part"]: round(s["noise"]["noise_std"], 3) for s in statistics}}
    ok = bundle["queries"][0]["kind"] == query and bundle["ledger"]["commit_sequence"] > 0
    if query == "voxel_mean":
        file = statistics[0]["file"]
        saved = np.load(output / file["name"], mmap_mode="r")
        ok = ok and saved.shape == SHAPE
        divisor = bundle["queries"][0]["estimate"]["mean_image_divisor"]
        # The mean image is sum / noisy count: its noise is the sum's noise over that count, in HU.
        out["mean_image_noise_std_hu"] = round(statistics[0]["noise"]["noise_std"] / divisor, 1)
    out["ok"] = bool(ok)
    return out


def noise_alone(spec: ReleaseSpec, statistics: list[Statistic], repeat: int) -> dict[str, Any]:
    """Best time of ``Mechanism.add_noise`` on each exact statistic, with the mechanism the release uses."""
    from privacy_core.dp.release import mechanisms_for

    out: dict[str, Any] = {}
    for statistic, mechanism in zip(statistics, mechanisms_for(spec, spec.queries[0], statistics), strict=True):
        best = math.inf
        for _ in range(repeat):
            start = time.perf_counter()
            mechanism.add_noise(statistic.values)
            best = min(best, time.perf_counter() - start)
        out[statistic.part] = {
            "shape": list(statistic.values.shape),
            "cells": int(statistic.values.size),
            "mechanism": mechanism.name,
            "sigma_squared": float(mechanism.noise_parameter),
            "seconds_best": round(best, 4),
            "cells_per_s": round(statistic.values.size / best),
        }
    return out


def ledger_after_release(ledger: BudgetLedger, datasets: dict[str, str]) -> dict[str, Any]:
    """Best of 3 of a budget check on each dataset, whose last entry is the commit of that query's release.

    Every ledger operation reads and checks the dataset's last entry, and a commit holds the whole bundle, the
    encoded image included: so after a voxel_mean release, the next check, reserve or commit pays for it.
    """
    out: dict[str, Any] = {}
    for query, dataset in datasets.items():
        best = math.inf
        for _ in range(3):
            start = time.perf_counter()
            ledger.check(dataset, Fraction(RHO))
            best = min(best, time.perf_counter() - start)
        entry = ledger.entries(dataset)[-1]
        out[query] = {
            "last_entry": entry.kind,
            "last_entry_json_mb": round(len(json.dumps(entry.payload)) / MB, 1),
            "check_seconds_best": round(best, 4),
        }
    return out


def _warm_up() -> None:
    """Import what the tasks use on a worker, so the first timed run does not pay for it."""
    import dask.array  # noqa: F401
    import zarr  # noqa: F401

    import privacy_core.imaging.zarr_store  # noqa: F401


def bench(dataset: Dataset, workers: int, repeat: int, sampler: RssSampler, work: Path) -> dict[str, Any]:
    """Start the cluster, then every query in both configurations, ``repeat`` rounds, order flipped each round."""
    from privacy_core.dp.ledger import open_ledger
    from privacy_core.dp.release import run_release
    from privacy_core.imaging.compute import DaskConfig, dask_client

    records = {query: {config: RunRecord() for config in CONFIGS} for query in QUERIES}
    specs = {query: release_spec(query, dataset.store) for query in QUERIES}
    created: list[str] = []
    released: dict[str, str] = {}  # query -> ledger dataset of its last DP run
    rows_read: dict[str, int] = {}
    noise: dict[str, Any] = {}
    idle = {"driver_only_mb": round(sampler.sample() / MB, 1)}
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        ledger = stack.enter_context(open_ledger(f"sqlite:///{work / 'ledger.db'}"))
        cluster_peak = stack.enter_context(sampler.window())
        cluster = stack.enter_context(dask_client(DaskConfig(workers=workers)))
        cluster.wait_for_workers(workers)
        cluster.run(_warm_up)
        address = str(cluster.scheduler_info()["address"])
        # The exact runs get a client of their own, connected to the cluster's address as run_release connects
        # (the client made with the LocalCluster shares the scheduler's event-loop thread in this process).
        client = stack.enter_context(dask_client(DaskConfig(address=address)))
        startup = time.perf_counter() - start
        idle["cluster_idle_mb"] = round(sampler.sample() / MB, 1)
        progress(f"cluster of {workers} workers at {address} up in {startup:.1f} s; warming up on 2 series")
        for spec in specs.values():  # first-call costs on the workers and here, untimed
            run_exact(spec, client, limit=2)
        for round_ in range(repeat):
            order = [(q, c) for q in QUERIES for c in CONFIGS]
            for query, config in order if round_ % 2 == 0 else order[::-1]:
                spec, record = specs[query], records[query][config]
                progress(f"  round {round_ + 1}/{repeat}: {query} {config}")
                if config == "exact":
                    statistics, rows = timed(record, sampler, functools.partial(run_exact, spec, client))
                    rows_read[query] = rows
                    if round_ == 0:
                        record.check = check_exact(query, statistics, rows)
                        noise[query] = noise_alone(spec, statistics, repeat)
                    del statistics
                    continue
                # A fresh ledger dataset per run: each release is timed on its own chain (see ledger_after_release).
                name = f"{DATASET}-{query}-{round_}"
                ledger.create_dataset(name, "zcdp", LEDGER_CAP)
                created.append(name)
                released[query] = name
                output = work / f"release-{query}-{round_}"
                release = functools.partial(
                    run_release,
                    release_spec(query, dataset.store, name),
                    ledger,
                    output,
                    key=f"bench:{query}:{round_}",
                    dask=DaskConfig(address=address),
                )
                with phase_timers(ledger) as phases:
                    result = timed(record, sampler, release)
                record.phases.append(dict(phases))
                if round_ == 0:
                    record.check = check_dp(query, result.bundle, output)
                shutil.rmtree(output)
        spent = sum(float(ledger.status(name).spent) for name in created)
        after = ledger_after_release(ledger, released)
    results = {
        query: {config: records[query][config].result(rows_read[query] * ARRAY_BYTES) for config in CONFIGS}
        for query in QUERIES
    }
    ratios = {
        query: round(by_config["exact"]["seconds_best"] / by_config["dp"]["seconds_best"], 3)
        for query, by_config in results.items()
    }
    return {
        "queries": results,
        "dp_over_exact_throughput": ratios,
        "series_read": rows_read,
        "input_bytes_read": {query: rows * ARRAY_BYTES for query, rows in rows_read.items()},
        "noise_alone": noise,
        "cluster": {
            "workers": workers,
            "threads_per_worker": 1,
            "address": address,
            "startup_seconds": round(startup, 2),
            "peak_rss_mb_while_up": round(cluster_peak.rss_bytes / MB, 1),
        },
        "rss_baseline_mb": idle,
        "ledger_rho_spent": spent,
        "ledger_check_after_release": after,
    }


# ---------------------------------------------------------------------- report
def format_tables(result: dict[str, Any]) -> str:
    d, run = result["dataset"], result["run"]
    lines = [
        f"Dataset: {d['series']} series arrays {tuple(d['series_shape'])} int16 of {d['patients']} patients, "
        f"{d['uncompressed_bytes'] / GB:.2f} GB uncompressed, {d['disk_bytes'] / GB:.2f} GB on disk "
        f"({d['compression_ratio']:.2f}x, {d['codec']}). Contribution bound "
        f"{MAX_RECORDS_PER_PATIENT} series per patient: "
        + ", ".join(f"{q} reads {n} series" for q, n in run["series_read"].items())
        + ".",
        "",
        "| query | config | seconds | MB/s | DP/exact throughput | cores busy (others) | peak RSS MB | check |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for query, by_config in run["queries"].items():
        for config, r in by_config.items():
            ratio = f"{run['dp_over_exact_throughput'][query]:.3f}" if config == "dp" else ""
            verdict = "ok" if r["check"].get("ok") else "FAILED"
            lines.append(
                f"| {query} | {config} | {r['seconds_best']:.2f} | {r['mb_per_s']:.0f} | {ratio} "
                f"| {r['cores_busy']:.2f} ({r['other_cores_busy']:.2f}) | {r['peak_rss_mb']:.0f} | {verdict} |"
            )
    lines += [
        "",
        "Where a DP run's time goes (its best run, seconds):",
        "",
        "| query | " + " | ".join(PHASES) + " | other | total |",
        "|---|" + "---:|" * (len(PHASES) + 2),
    ]
    for query, by_config in run["queries"].items():
        phases = by_config["dp"]["phases_of_best"]
        cells = " | ".join(f"{phases[name]:.2f}" for name in (*PHASES, "other"))
        lines.append(f"| {query} | {cells} | {by_config['dp']['seconds_best']:.2f} |")
    lines += ["", *(f"- {name}: {text}" for name, text in PHASES.items())]
    lines += ["- other: the rest (building the bundle's JSON)", "", "Noise alone (Mechanism.add_noise, best):", ""]
    for query, parts in run["noise_alone"].items():
        for part, n in parts.items():
            lines.append(
                f"- {query} {part}: {n['cells']:,} cells {tuple(n['shape'])}, {n['mechanism']} "
                f"sigma^2 {n['sigma_squared']:.3g}: {n['seconds_best']:.3f} s ({n['cells_per_s'] / 1e6:.1f} M cells/s)"
            )
    check = run["queries"]["voxel_mean"]["dp"]["check"]
    if "mean_image_noise_std_hu" in check:
        lines.append(
            f"- the DP mean image's noise: std {check['mean_image_noise_std_hu']:,.0f} HU per voxel "
            f"(rho {RHO}, {math.prod(SHAPE):,} voxels, bounds [{HU_MIN}, {HU_MAX}])"
        )
    checks = "; ".join(
        f"{query} {a['check_seconds_best']:.3f} s (last entry {a['last_entry']}, {a['last_entry_json_mb']:g} MB JSON)"
        for query, a in run["ledger_check_after_release"].items()
    )
    lines.append(f"- a ledger budget check on a dataset right after a release of: {checks}")
    c = run["cluster"]
    baseline = ", ".join(f"{k} {v:.0f}" for k, v in run["rss_baseline_mb"].items())
    lines += [
        "",
        f"cluster: {c['workers']} worker processes x 1 thread, start-up (not timed) {c['startup_seconds']:.1f} s; "
        f"idle RSS MB: {baseline}; whole-run peak {run['whole_run_peak_rss_mb']:.0f} MB; "
        f"page-cache read before timing {run['page_cache_read_seconds']:.1f} s",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------- CLI
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--gb", type=float, default=DEFAULT_GB, help="store size on disk in GB (default 2)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="Dask worker processes (default 2)")
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT, help="timed runs per query and config")
    parser.add_argument(
        "--root", type=Path, default=DEFAULT_ROOT, help="cache folder of generated stores (default benchmarks/.data/dp)"
    )
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="folder for dp-release.json and .md")
    args = parser.parse_args(argv)
    if args.gb <= 0:
        parser.error(f"--gb={args.gb} must be greater than 0")
    if args.workers < 1:
        parser.error(f"--workers={args.workers} must be at least 1")
    if args.repeat < 1:
        parser.error(f"--repeat={args.repeat} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    from privacy_core.storage import atomic_write_json

    args = parse_args(argv)
    env = environment(("numpy", "dask", "distributed", "zarr", "numcodecs", "psutil"))
    others = other_benchmarks()
    if others:
        progress(f"warning: other benchmarks are running and will spoil the figures: {others}")
    start = time.perf_counter()
    with RssSampler() as sampler:
        progress(f"dataset under {args.root} (>= {args.gb:g} GB on disk)")
        with sampler.window() as generate_peak:
            dataset = generate_dataset(args.root, int(args.gb * GB))
        progress(
            f"  {dataset.series} series of {dataset.patients} patients: {dataset.nbytes / GB:.2f} GB uncompressed, "
            f"{dataset.disk_bytes / GB:.2f} GB on disk ({'cached' if dataset.cached else 'generated'})"
        )
        cache_seconds = read_into_page_cache(dataset.store)
        with tempfile.TemporaryDirectory(prefix="bench-dp-release-") as work:
            run = bench(dataset, args.workers, args.repeat, sampler, Path(work))
    run["page_cache_read_seconds"] = round(cache_seconds, 2)
    run["generate_peak_rss_mb"] = round(generate_peak.rss_bytes / MB, 1)
    run["whole_run_peak_rss_mb"] = round(sampler.peak.rss_bytes / MB, 1)
    run["rss_samples"] = sampler.samples
    result = {
        "schema": "bench_dp_release/1.0",
        "command": command_line("benchmarks/bench_dp_release.py", argv),
        **env,
        "other_benchmarks_at_start": others,
        "dataset": dataset.describe(),
        "spec": {
            "accounting": "zcdp",
            "rho": RHO,
            "max_records_per_patient": MAX_RECORDS_PER_PATIENT,
            "queries": QUERIES,
        },
        "repeat": args.repeat,
        "rss_sample_seconds": SAMPLE_SECONDS,
        "phases": PHASES,
        "run": run,
        "total_seconds": round(time.perf_counter() - start, 1),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"{RESULT_NAME}.json"
    atomic_write_json(path, result)
    text = (
        f"`{result['command']}`\n\n"
        + machine_line(env)
        + f"MB = 1e6 bytes of uncompressed input read; best of {args.repeat}; total {result['total_seconds']:.0f} s\n\n"
        + format_tables(result)
        + "\n"
    )
    (args.results / f"{RESULT_NAME}.md").write_text(text, encoding="utf-8")
    print(text + f"(results: {path} and .md)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
