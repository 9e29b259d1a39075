"""Exact statistics of bounded rows, quantized to integers, with their sensitivity for one patient.

Each query becomes one or two :class:`Statistic` (a mean is a sum and a count). Values here are the true,
non-private numbers: they live only in this process, are never logged or written, and leave only through a
mechanism's :meth:`~privacy_core.dp.mechanisms.Mechanism.add_noise`.

Sensitivities, for a patient contributing at most ``k`` rows, each clipped so its quantized magnitude is at
most ``b``: a count or histogram vector changes by at most ``k`` in L1 and in L2 (all ``k`` rows may land in
one cell); a sum by ``k·b``; a voxel sum over ``P`` voxels by ``k·P·b`` in L1 and ``k·√P·b`` in L2. Rows of
one patient fall into disjoint partitions or bins, so a partitioned query costs what one partition costs:
parallel composition is in the vector sensitivity, not a separate rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from privacy_core.dp.spec import Query
from privacy_core.dp.tables import Row
from privacy_core.errors import ConfigurationError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


@dataclass(frozen=True)
class Statistic:
    """One integer vector to protect, its fixed-point step and the sensitivities of one patient.

    :param part: ``count``, ``sum`` or ``histogram``: what the integers count.
    :param labels: the public name of each cell (partitions, bins), or empty for one cell or an image.
    :param l1: L1 sensitivity in quantized units.
    :param l2_squared: squared L2 sensitivity in quantized units.
    """

    part: str
    values: NDArray[np.int64]
    resolution: Fraction
    l1: Fraction
    l2_squared: Fraction
    labels: tuple[str, ...] = ()

    def sensitivity(self, accounting: str) -> Fraction:
        """What the mechanism of ``accounting`` needs: L1, or squared L2."""
        return self.l1 if accounting == "pure-dp" else self.l2_squared


def quantized_bound(bounds: tuple[float, float], resolution: Fraction) -> tuple[int, int, int]:
    """Clipping bounds in fixed-point units and the largest magnitude ``b`` a clipped row can have.

    >>> quantized_bound((-1024.0, 3071.0), Fraction(1))
    (-1024, 3071, 3071)
    >>> quantized_bound((0.0, 10.0), Fraction(1, 100))
    (0, 1000, 1000)
    """
    low = round(Fraction(bounds[0]) / resolution)
    high = round(Fraction(bounds[1]) / resolution)
    magnitude = max(abs(low), abs(high))
    if magnitude == 0:
        raise ConfigurationError("bounds", f"{bounds} round to zero at step {resolution}", "use a finer resolution")
    return low, high, magnitude


def dicom_statistics(query: Query, rows: list[Row], k: int) -> list[Statistic]:
    """The statistics of a header query over rows already bounded to ``k`` per patient."""
    import numpy as np

    cells, labels = _cells(query, rows)
    count = np.zeros(max(len(labels), 1), dtype=np.int64)
    total = np.zeros_like(count)
    if query.kind == "histogram":
        edges = np.asarray(query.bins)
        bins = len(edges) - 1
        width = len(labels) or 1
        hist = np.zeros(width * bins, dtype=np.int64)
        for cell, row in cells:
            value = row.values.get(query.field or "")
            if isinstance(value, float) and math.isfinite(value):
                index = int(np.clip(np.searchsorted(edges, value, side="right") - 1, 0, bins - 1))
                hist[cell * bins + index] += 1
        bin_labels = [f"[{a:g}, {b:g})" for a, b in zip(query.bins, query.bins[1:], strict=False)]
        full = tuple(f"{p} {b}" if labels else b for p in (labels or ("",)) for b in bin_labels)
        return [Statistic("histogram", hist, Fraction(1), Fraction(k), Fraction(k * k), full)]
    if query.kind == "count":
        for cell, _row in cells:
            count[cell] += 1
        return [Statistic("count", count, Fraction(1), Fraction(k), Fraction(k * k), labels)]
    assert query.bounds is not None  # the spec requires bounds for sums and means
    low, high, magnitude = quantized_bound(query.bounds, query.resolution)
    for cell, row in cells:
        value = row.values.get(query.field or "")
        if isinstance(value, float) and math.isfinite(value):
            quantized = round(Fraction(value) / query.resolution)
            total[cell] += min(max(quantized, low), high)
            count[cell] += 1
    statistics = [
        Statistic("sum", total, query.resolution, Fraction(k * magnitude), Fraction((k * magnitude) ** 2), labels)
    ]
    if query.kind == "mean":
        statistics.append(Statistic("count", count, Fraction(1), Fraction(k), Fraction(k * k), labels))
    return statistics


def _cells(query: Query, rows: list[Row]) -> tuple[list[tuple[int, Row]], tuple[str, ...]]:
    """Each row with its partition index; rows outside the declared partitions are left out."""
    if not query.partition_by:
        return [(0, row) for row in rows], ()
    index = {name: i for i, name in enumerate(query.partitions)}
    cells = []
    for row in rows:
        value = row.values.get(query.partition_by)
        if isinstance(value, str) and value in index:
            cells.append((index[value], row))
    return cells, query.partitions


def zarr_statistics(
    query: Query, rows: list[Row], k: int, storage_options: dict[str, Any] | None = None
) -> list[Statistic]:
    """The statistics of an array query over rows (series arrays) bounded to ``k`` per patient.

    Runs as Dask graphs on the current scheduler; only the reduced result (one image or one histogram per
    array) reaches this process.
    """
    import dask.array as da
    import numpy as np
    from dask.base import compute

    from privacy_core.imaging.zarr_store import open_series

    if query.kind == "intensity_histogram":
        edges = np.asarray(query.bins, dtype=np.float64)
        per_array = []
        for row in rows:
            image = open_series(str(row.values["url"]), storage_options=storage_options)
            clipped = da.clip(image.astype(np.float64), edges[0], edges[-1])
            per_array.append(da.histogram(clipped, bins=edges)[0])
        computed = compute(*per_array) if per_array else ()
        # Each array adds its own distribution, floor(R * count / voxels): at most R in L1, whatever its size.
        scale = 1 / query.resolution
        if scale.denominator != 1:
            raise ConfigurationError("resolution", f"is {query.resolution}", "use 1/N, e.g. 0.0001")
        units = int(scale)
        hist = np.zeros(len(edges) - 1, dtype=np.int64)
        for counts in computed:
            voxels = int(counts.sum())
            if voxels:
                hist += (counts.astype(object) * units // voxels).astype(np.int64)
        labels = tuple(f"[{a:g}, {b:g})" for a, b in zip(query.bins, query.bins[1:], strict=False))
        return [Statistic("histogram", hist, query.resolution, Fraction(k * units), Fraction((k * units) ** 2), labels)]
    assert query.bounds is not None
    shape = query.shape
    matching = [row for row in rows if tuple(row.values["shape"]) == shape]
    low, high, magnitude = quantized_bound(query.bounds, query.resolution)
    voxels = math.prod(shape)
    if matching:
        step = float(query.resolution)
        stacked = da.stack(
            [
                da.clip(da.round(open_series(str(r.values["url"]), storage_options=storage_options) / step), low, high)
                .astype(np.int64)
                .rechunk(_plane_chunks(shape))
                for r in matching
            ]
        )
        total = np.asarray(stacked.sum(axis=0, dtype=np.int64).compute(), dtype=np.int64)
    else:
        total = np.zeros(shape, dtype=np.int64)
    statistics = [
        Statistic(
            "sum",
            total,
            query.resolution,
            Fraction(k * voxels * magnitude),
            Fraction(k * k * voxels * magnitude * magnitude),
        )
    ]
    if query.kind == "voxel_mean":
        count = np.array([len(matching)], dtype=np.int64)
        statistics.append(Statistic("count", count, Fraction(1), Fraction(k), Fraction(k * k)))
    return statistics


def _plane_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Chunks of about 32 MB of int64 along the first axis, so every array in the stack lines up."""
    plane = math.prod(shape[1:]) * 8 if len(shape) > 1 else 8
    return (max(1, (32 << 20) // plane), *shape[1:])
