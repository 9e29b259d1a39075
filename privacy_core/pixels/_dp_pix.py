"""DP-Pix (Fan 2018, "Image pixelization with differential privacy") as a Dask array operation.

Pixelate in b x b cells with noise. A neighbouring image differs in at most ``m`` pixels, each by at most the
data's dynamic range R, so the vector of all cell *sums* moves by at most ``m * R * c`` in L1 (c channels: a
pixel is c values). The noise goes on the sums, which are integers for integer data: exact discrete Laplace of
scale ``t = m * R * c / eps`` per cell sum gives exactly epsilon-DP for the whole array (all planes together),
and the released mean, ``(sum + noise) / k`` for a cell of k pixels, is post-processing. A full cell's mean thus
gets Fan's noise scale ``m * R * c / (b**2 * eps)``, and an edge cell of k < b**2 pixels ``b**2 / k`` times it.
Float data is first rounded to the grid ``R / 2**16``; rounding can move a pixel by one more step, so its
sensitivity is ``(2**16 + 1) * m * c`` steps and its noise 0.0015% above Fan's.

R must be the real dynamic range of the data: 4095 for 12-bit CT stored in uint16, not 255 (noise 16x too
small) and not 65535 (16x too large). Noise is drawn on the worker, per block, by :class:`CellNoise` from
that process's ChaCha20 source, so nothing in the task graph holds it. Each compute draws fresh noise:
releasing two computes of the same result spends 2 epsilon, so compute once and store.
"""

from __future__ import annotations

import secrets
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from privacy_core.errors import ConfigurationError
from privacy_core.pixels._noise import CellNoise
from privacy_core.pixels._pixelate import _align_in_plane, _check_dask_volume, _map_cells
from privacy_core.pixels.reference import FLOAT_STEPS, _check_block, _check_int, _check_positive, dp_pix_unit

if TYPE_CHECKING:
    import dask.array as da
    import numpy as np
    from numpy.typing import DTypeLike, NDArray

__all__ = ["default_value_range", "dp_pix", "dp_pix_scale", "dp_pix_sum_scale"]


def default_value_range(dtype: DTypeLike, *, bits_stored: int | None = None) -> float:
    """The dynamic range R DP-Pix assumes when the caller gives none.

    ``2**bits_stored - 1`` when DICOM BitsStored is given; else 255 for uint8, the full dtype range
    (max - min) for other integers, 1 for bool. Floats have no implied range and must pass one.

    :param dtype: the image dtype.
    :param bits_stored: DICOM BitsStored (0028,0101), e.g. 12 for CT in uint16 or int16.
    :raises ConfigurationError: a float dtype, or ``bits_stored`` outside 1 .. the dtype's bits.

    >>> default_value_range("uint16", bits_stored=12)
    4095.0
    >>> default_value_range("int16")
    65535.0
    """
    import numpy as np

    dtype = np.dtype(dtype)
    if dtype.kind not in "iub":
        raise ConfigurationError(
            "value_range",
            f"value_range=None for {dtype} data, which has no implied range",
            "pass value_range=, the real max - min of the data (e.g. 4095.0 for 12-bit)",
        )
    if bits_stored is not None:
        bits = _check_int("bits_stored", bits_stored, 1, "pass DICOM BitsStored, e.g. bits_stored=12")
        if bits > 8 * dtype.itemsize:
            raise ConfigurationError(
                "bits_stored",
                f"bits_stored={bits} exceeds the {8 * dtype.itemsize} bits of {dtype}",
                "pass the BitsStored of this data, or value_range= directly",
            )
        return float(2**bits - 1)
    if dtype.kind == "b":
        return 1.0
    info = np.iinfo(dtype)
    return float(int(info.max) - int(info.min))


def dp_pix_scale(
    block: int, epsilon: float, m: int, value_range: float, *, channels: int = 1, dtype: DTypeLike | None = None
) -> float:
    """The Laplace scale DP-Pix adds to a full cell's mean: ``value_range * m * channels / (block**2 * epsilon)``
    (for float ``dtype``, ``1 + 2**-16`` times that, see the module docstring).

    Report it before running. ``value_range`` has no default on purpose: 255 would be 16x too little noise for
    12-bit data. The noise standard deviation is about ``sqrt(2)`` times this; edge cells smaller
    than ``block**2`` pixels get proportionally more.

    :param block: cell side b in pixels.
    :param epsilon: the privacy loss, > 0.
    :param m: number of pixels protected (neighbouring images differ in at most m pixels), >= 1.
    :param value_range: the data's real dynamic range R, e.g. :func:`default_value_range`.
    :param channels: values per pixel (3 for RGB).
    :param dtype: the image dtype; None means integer data.
    :raises ConfigurationError: an argument is out of range; the message names it and the fix.

    >>> dp_pix_scale(4, 1.0, m=1, value_range=4095.0)
    255.9375
    """
    block = _check_block(block)
    sum_scale = dp_pix_sum_scale(epsilon, m, value_range, channels=channels, dtype=dtype)
    unit = 1.0 if dtype is None else dp_pix_unit(dtype, value_range)
    return float(sum_scale) * unit / (block * block)


def dp_pix_sum_scale(
    epsilon: float, m: int, value_range: float, *, channels: int = 1, dtype: DTypeLike | None = None
) -> Fraction:
    """The exact discrete Laplace scale of each cell sum's noise, in units of :func:`dp_pix_unit`:
    ``m * value_range * channels / epsilon`` for integer data (None), ``m * (2**16 + 1) * channels / epsilon``
    for float data. Floats are taken at their exact binary value.

    :raises ConfigurationError: an argument is out of range; the message names it and the fix.

    >>> dp_pix_sum_scale(0.5, 2, 4095.0)
    Fraction(16380, 1)
    """
    import numpy as np

    epsilon = _check_positive("epsilon", epsilon, "pass a privacy loss greater than 0, e.g. epsilon=1.0")
    m = _check_int("m", m, 1, "pass how many pixels to protect, at least 1, e.g. m=1")
    value_range = _check_positive("value_range", value_range, "pass the data's max - min, e.g. 4095.0 for 12-bit")
    channels = _check_int("channels", channels, 1, "pass the number of values per pixel, e.g. 3 for RGB")
    integer = dtype is None or np.dtype(dtype).kind in "iub"
    steps = Fraction(value_range) if integer else Fraction(FLOAT_STEPS + 1)
    return steps * m * channels / Fraction(epsilon)


def _dp_pix_block(
    block_data: NDArray[Any],
    block: int,
    sum_scale: Fraction,
    unit: float,
    noise: CellNoise,
    clip: tuple[float, float] | None,
) -> NDArray[np.float32]:
    """Noisy cell means of one grid-aligned block; the noise is drawn here, on the worker, fresh per call.

    Sums of integers are exact in float64 (below 2**53), so ``sums + noise`` is the exact noisy integer sum.
    """
    import numpy as np

    if block_data.size == 0:
        return block_data.astype(np.float32)
    if block_data.dtype.kind not in "iub":
        block_data = np.rint(block_data.astype(np.float64) / unit)  # onto the integer grid

    def noisy_means(sums: NDArray[np.float64], counts: NDArray[np.float64]) -> NDArray[np.float64]:
        noisy: NDArray[np.float64] = (sums + noise.draw(sums.shape, sum_scale)) * unit / counts
        return np.clip(noisy, clip[0], clip[1]) if clip is not None else noisy

    return _map_cells(block_data, block, noisy_means, np.float32)


def dp_pix(
    image: da.Array,
    block: int,
    epsilon: float,
    *,
    m: int = 1,
    value_range: float | None = None,
    bits_stored: int | None = None,
    rng: CellNoise | None = None,
    clip: tuple[float, float] | None = None,
) -> da.Array:
    """Epsilon-DP pixelation: b x b cell means from cell sums plus one exact discrete Laplace draw per cell (and
    channel), cells at the origin.

    Every pixel of a cell gets the same value. The full-cell noise scale is :func:`dp_pix_scale`; with the
    same integer draws the result equals :func:`privacy_core.pixels.reference.dp_pix`.

    :param image: a Dask ``(z, y, x)`` or ``(z, y, x, c)`` array; the privacy unit is m pixels of the whole array.
    :param block: cell side b in pixels, >= 1.
    :param epsilon: the privacy loss of this release, > 0.
    :param m: the number of pixels protected, >= 1.
    :param value_range: the data's real dynamic range R; None uses :func:`default_value_range` (255 for uint8,
        ``2**bits_stored - 1`` if given, else the dtype's range). Never assume 255 for 12- or 16-bit data.
    :param bits_stored: DICOM BitsStored, used only when ``value_range`` is None.
    :param rng: the noise source; None means :class:`CellNoise` (exact, ChaCha20 on each worker).
    :param clip: optional ``(low, high)`` applied after the noise (post-processing, costs no privacy).
    :return: float32, whatever the input dtype: the noisy means are not integers, and float32 keeps fewer
        low-order bits for an attacker than float64.
    :raises ConfigurationError: an argument is out of range; the message names it, the value and the fix.

    >>> import dask.array as da
    >>> import numpy as np
    >>> image = da.full((1, 4, 4), 100, dtype=np.uint16, chunks=(1, 3, 3))
    >>> out = dp_pix(image, 2, epsilon=1.0, bits_stored=12).compute()
    >>> out.dtype, out.shape, bool((out[0, :2, :2] == out[0, 0, 0]).all())
    (dtype('float32'), (1, 4, 4), True)
    """
    import dask.array as da

    _check_dask_volume(image)
    block = _check_block(block)
    if value_range is None:
        value_range = default_value_range(image.dtype, bits_stored=bits_stored)
    channels = image.shape[3] if image.ndim == 4 else 1
    sum_scale = dp_pix_sum_scale(epsilon, m, value_range, channels=channels, dtype=image.dtype)
    unit = dp_pix_unit(image.dtype, value_range)
    if clip is not None:
        if len(clip) != 2 or not clip[0] < clip[1]:
            raise ConfigurationError("clip", f"clip={clip!r} is not (low, high) with low < high", "e.g. clip=(0, 4095)")
        clip = (float(clip[0]), float(clip[1]))
    if rng is None:
        rng = CellNoise()
    elif not isinstance(rng, CellNoise):
        raise ConfigurationError("rng", f"rng={rng!r} is not a CellNoise", "pass CellNoise(source=...) or None")
    aligned = _align_in_plane(image, block)
    # A random name: Dask must never merge two dp_pix calls with the same inputs into one task (same noise).
    result: da.Array = da.map_blocks(
        _dp_pix_block,
        aligned,
        block=block,
        sum_scale=sum_scale,
        unit=unit,
        noise=rng,
        clip=clip,
        dtype="float32",
        meta=image._meta.astype("float32"),
        name=f"dp-pix-{secrets.token_hex(16)}",
    )
    return result
