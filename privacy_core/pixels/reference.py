"""Single-process definitions of the pixel transforms on a whole in-memory NumPy array, and the rules they share.

Each function here is the plain NumPy/SciPy meaning of its Dask namesake in :mod:`privacy_core.pixels`; the
chunked versions must give the same result on every chunk layout, and the tests check exactly that. The argument
checks and the output dtype rule live here too, so the two layers cannot disagree about them. The computations
themselves share no code with the chunked ones: cell means here pad with NaN and reshape, the Dask blocks use
``np.add.reduceat``; blur here filters the whole array, the Dask version filters blocks with a halo.

Images are volumes ``(z, y, x)`` or ``(z, y, x, c)``; transforms act in-plane on ``(y, x)``, every plane and
channel alike, unless a parameter says otherwise.

Output dtypes: masking keeps the input dtype. Blur and pixelation return float32 (float64 input stays float64):
a mean or a weighted sum is not an integer, and rounding back would add a second, silent quantisation; float32
holds every 16-bit value exactly. DP-Pix always returns float32 (see :func:`dp_pix`).
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from privacy_core.errors import ConfigurationError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import DTypeLike, NDArray

__all__ = ["BOUNDARIES", "RegionLike", "dp_pix", "gaussian_blur", "mask_regions", "pixelate"]


class RegionLike(Protocol):
    """Anything with ``x``, ``y``, ``width`` and ``height``, such as :class:`privacy_core.deid.burned_in.Region`."""

    @property
    def x(self) -> int: ...

    @property
    def y(self) -> int: ...

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...


#: A rectangle as ``(x, y, width, height)`` in pixels from the top left, or an object with those attributes.
Rectangle: TypeAlias = "tuple[int, int, int, int] | RegionLike"

#: Our boundary names -> (Dask ``map_overlap`` boundary, ``scipy.ndimage`` mode) that pad identically.
#: Dask's "reflect" repeats the edge pixel (``d c b a | a b c d``, NumPy's "symmetric"), which is SciPy's "reflect";
#: Dask's "periodic" is SciPy's "wrap" (for filters, which is all we use it for); a Dask constant boundary of 0
#: is SciPy's "constant" with ``cval=0``.
BOUNDARIES: dict[str, tuple[str | float, str]] = {
    "reflect": ("reflect", "reflect"),
    "nearest": ("nearest", "nearest"),
    "periodic": ("periodic", "wrap"),
    "constant": (0, "constant"),
}


# ---------------------------------------------------------------------------------------------------------------
# Argument rules shared with the Dask transforms.


def _check_shape(shape: tuple[int, ...], name: str = "image") -> None:
    """Refuse anything but a ``(z, y, x)`` or ``(z, y, x, c)`` volume."""
    if len(shape) not in (3, 4):
        raise ConfigurationError(
            name,
            f"has shape {shape} (ndim {len(shape)}), not (z, y, x) or (z, y, x, c)",
            "pass a volume; add a z axis to a single plane with image[None]",
        )


def _float_dtype(dtype: DTypeLike) -> np.dtype[Any]:
    """The output dtype of blur and pixelation: float64 stays float64, everything else becomes float32."""
    import numpy as np

    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


def _check_int(name: str, value: object, minimum: int, fix: str) -> int:
    """``value`` as an int of at least ``minimum``; bools and non-integers are refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigurationError(name, f"{name}={value!r} is not a whole number", fix)
    number = operator.index(value)
    if number < minimum:
        raise ConfigurationError(name, f"{name}={number} is below {minimum}", fix)
    return number


def _check_positive(name: str, value: object, fix: str) -> float:
    """``value`` as a finite float greater than 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigurationError(name, f"{name}={value!r} is not a number", fix)
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ConfigurationError(name, f"{name}={number} must be finite and greater than 0", fix)
    return number


def _check_block(block: object) -> int:
    return _check_int("block", block, 1, "pass the cell side in pixels as a whole number, e.g. block=8")


def _rectangles(regions: Sequence[Rectangle], shape: tuple[int, ...]) -> tuple[tuple[int, int, int, int], ...]:
    """Regions as ``(y0, y1, x0, x1)`` clipped to the image plane; rectangles wholly outside it are dropped."""
    if isinstance(regions, str | bytes) or not isinstance(regions, Sequence):
        raise ConfigurationError(
            "regions", f"{regions!r} is not a sequence of rectangles", "pass e.g. [(x, y, width, height), ...]"
        )
    height, width = shape[1], shape[2]
    out = []
    for index, region in enumerate(regions):
        name = f"regions[{index}]"
        if all(hasattr(region, attr) for attr in ("x", "y", "width", "height")):
            values: tuple[object, ...] = (region.x, region.y, region.width, region.height)  # type: ignore[union-attr]
        elif isinstance(region, Sequence) and not isinstance(region, str | bytes) and len(region) == 4:
            values = tuple(region)
        else:
            raise ConfigurationError(
                name, f"{region!r} is not a rectangle", "give (x, y, width, height) or a burned_in.Region"
            )
        if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in values):
            raise ConfigurationError(name, f"{region!r} has a non-integer coordinate", "use whole pixel numbers")
        x, y, w, h = (operator.index(v) for v in values)  # type: ignore[arg-type]
        if x < 0 or y < 0:
            raise ConfigurationError(name, f"x={x}, y={y} must not be negative", "start rectangles at 0 or more")
        if w < 1 or h < 1:
            raise ConfigurationError(name, f"width={w}, height={h} must both be at least 1", "drop empty rectangles")
        y0, y1, x0, x1 = min(y, height), min(y + h, height), min(x, width), min(x + w, width)
        if y0 < y1 and x0 < x1:
            out.append((y0, y1, x0, x1))
    return tuple(out)


def _fill_value(dtype: DTypeLike, value: float | None) -> int | float:
    """The value masked pixels get: ``value``, or display-black (signed minimum, 0 unsigned) when None."""
    import numpy as np

    dtype = np.dtype(dtype)
    if dtype.kind in "iub":
        low, high = (0, 1) if dtype.kind == "b" else (int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
        if value is None:
            return low
        if not float(value).is_integer() or not low <= value <= high:
            raise ConfigurationError(
                "value", f"value={value!r} does not fit {dtype} ({low}..{high})", f"pass a whole number {low}..{high}"
            )
        return int(value)
    if value is None:
        raise ConfigurationError(
            "value",
            f"value=None has no display-black for {dtype} images",
            "pass the fill value explicitly, e.g. value=0.0 or the data's minimum",
        )
    return float(value)


def _sigmas(sigma: float | Sequence[float], ndim: int) -> tuple[float, ...]:
    """One sigma per image axis: a number blurs (y, x); a pair is (y, x); a triple is (z, y, x); channels never."""
    if isinstance(sigma, numbers.Real):
        spatial: tuple[object, ...] = (0.0, sigma, sigma)
    elif isinstance(sigma, Sequence) and not isinstance(sigma, str) and len(sigma) in (2, 3):
        spatial = (0.0, *sigma) if len(sigma) == 2 else tuple(sigma)
    else:
        raise ConfigurationError(
            "sigma",
            f"sigma={sigma!r} is neither a number nor a (y, x) or (z, y, x) tuple",
            "pass e.g. sigma=2.0 (in-plane) or sigma=(1.0, 2.0, 2.0)",
        )
    out = []
    for s in spatial:
        if isinstance(s, bool) or not isinstance(s, numbers.Real) or not math.isfinite(s) or s < 0:
            raise ConfigurationError(
                "sigma", f"sigma={sigma!r} has {s!r}, not a finite number >= 0", "use 0 for an axis to leave alone"
            )
        out.append(float(s))
    return tuple(out) + (0.0,) * (ndim - 3)


def _check_truncate(truncate: object) -> float:
    return _check_positive("truncate", truncate, "pass the kernel radius in sigmas, e.g. truncate=4.0")


def _check_boundary(boundary: object) -> tuple[str | float, str]:
    if boundary not in BOUNDARIES:
        raise ConfigurationError(
            "boundary", f"boundary={boundary!r} is not supported", f"use one of {', '.join(sorted(BOUNDARIES))}"
        )
    return BOUNDARIES[str(boundary)]


# ---------------------------------------------------------------------------------------------------------------
# The references.


def mask_regions(image: NDArray[Any], regions: Sequence[Rectangle], *, value: float | None = None) -> NDArray[Any]:
    """Blank ``(x, y, width, height)`` rectangles in every plane and channel, clipped to the image.

    :param image: a ``(z, y, x)`` or ``(z, y, x, c)`` array; not modified.
    :param regions: rectangles as tuples or objects with ``x``, ``y``, ``width``, ``height``.
    :param value: the fill; None means the dtype minimum for signed integers and 0 for unsigned.
    :return: a copy with the input dtype.

    >>> import numpy as np
    >>> mask_regions(np.ones((1, 2, 3), np.int16), [(1, 0, 5, 1)])[0]
    array([[     1, -32768, -32768],
           [     1,      1,      1]], dtype=int16)
    """
    import numpy as np

    _check_shape(image.shape)
    fill = _fill_value(image.dtype, value)
    out = np.array(image, copy=True)
    for y0, y1, x0, x1 in _rectangles(regions, image.shape):
        out[:, y0:y1, x0:x1] = fill
    return out


def gaussian_blur(
    image: NDArray[Any], sigma: float | Sequence[float], *, truncate: float = 4.0, boundary: str = "reflect"
) -> NDArray[Any]:
    """``scipy.ndimage.gaussian_filter`` on the whole array, in float64, returned as float32 (float64 stays).

    :param image: a ``(z, y, x)`` or ``(z, y, x, c)`` array.
    :param sigma: a number blurs in-plane; ``(y, x)`` or ``(z, y, x)`` per axis. Channels are never blurred.
    :param truncate: kernel radius in sigmas.
    :param boundary: a key of :data:`BOUNDARIES`, passed to SciPy as the matching ``mode``.

    >>> import numpy as np
    >>> gaussian_blur(np.eye(3, dtype=np.uint8)[None] * 9, 1.0).dtype
    dtype('float32')
    """
    import numpy as np
    from scipy import ndimage

    _check_shape(image.shape)
    sigmas = _sigmas(sigma, image.ndim)
    _, mode = _check_boundary(boundary)
    out = ndimage.gaussian_filter(
        np.asarray(image, dtype=np.float64), sigmas, mode=mode, cval=0.0, truncate=_check_truncate(truncate)
    )
    result: NDArray[Any] = out.astype(_float_dtype(image.dtype))
    return result


def _cell_sums(image: NDArray[Any], block: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-cell sums and pixel counts, shape ``(z, ny, nx[, c])``; cells start at the image origin."""
    import numpy as np

    z, height, width = image.shape[:3]
    rest = image.shape[3:]
    ny, nx = -(-height // block), -(-width // block)
    padded = np.full((z, ny * block, nx * block, *rest), np.nan)
    padded[:, :height, :width] = image
    cells = padded.reshape(z, ny, block, nx, block, *rest)
    counts = np.sum(~np.isnan(cells), axis=(2, 4)).astype(np.float64)
    return np.nansum(cells, axis=(2, 4)), counts


def _cells(image: NDArray[Any], block: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-cell means and pixel counts, shape ``(z, ny, nx[, c])``; cells start at the image origin."""
    sums, counts = _cell_sums(image, block)
    means: NDArray[np.float64] = sums / counts
    return means, counts


#: DP-Pix puts float data on a grid of ``value_range / FLOAT_STEPS`` before summing cells, so that its noise
#: can be exact integer noise (integer data is summed as it is).
FLOAT_STEPS = 2**16


def dp_pix_unit(dtype: DTypeLike, value_range: float) -> float:
    """The value of one integer unit of DP-Pix's cell sums: 1 for integer data, ``value_range / 2**16`` for
    float data (a power-of-two division, so exact)."""
    import numpy as np

    return 1.0 if np.dtype(dtype).kind in "iub" else float(value_range) / FLOAT_STEPS


def _spread(cells: NDArray[Any], block: int, shape: tuple[int, ...]) -> NDArray[Any]:
    """Each cell value repeated over its b x b pixels, cut to ``shape``."""
    import numpy as np

    full = np.repeat(np.repeat(cells, block, axis=1), block, axis=2)
    return full[:, : shape[1], : shape[2]]


def pixelate(image: NDArray[Any], block: int) -> NDArray[Any]:
    """Replace each ``block`` x ``block`` cell, aligned to the image origin, by its mean; edge cells by theirs.

    :param image: a ``(z, y, x)`` or ``(z, y, x, c)`` array.
    :param block: the cell side in pixels.
    :return: float32 (float64 input stays float64).

    >>> import numpy as np
    >>> pixelate(np.arange(6, dtype=np.uint8).reshape(1, 2, 3), 2)[0]
    array([[2. , 2. , 3.5],
           [2. , 2. , 3.5]], dtype=float32)
    """
    _check_shape(image.shape)
    means, _ = _cells(image, _check_block(block))
    result: NDArray[Any] = _spread(means, block, image.shape).astype(_float_dtype(image.dtype))
    return result


def dp_pix(
    image: NDArray[Any],
    block: int,
    epsilon: float,
    *,
    m: int = 1,
    value_range: float,
    cell_noise: NDArray[Any],
    clip: tuple[float, float] | None = None,
) -> NDArray[np.float32]:
    """DP-Pix (Fan 2018) given the noise: each cell's sum plus its integer draw, over the cell's pixel count.

    Integer data is summed as it is; float data is first rounded to the grid ``value_range / 2**16``
    (:func:`dp_pix_unit`) and the noisy sum is scaled back. The noise is exact discrete Laplace of the scale
    :func:`privacy_core.pixels.dp_pix_sum_scale` gives, so a full cell's mean gets noise of scale
    ``value_range * m * c / (block**2 * epsilon)`` and an edge cell of ``k`` pixels ``block**2 / k`` times that.
    ``epsilon`` and ``m`` fix that scale; here they are only checked, the scale is in ``cell_noise``.

    :param cell_noise: integer draws, one per cell, shape ``(z, ny, nx[, c])`` with ``ny = ceil(y / block)``.
    :param clip: optional ``(low, high)`` bounds applied after the noise.
    :return: float32, every pixel of a cell equal.

    >>> import numpy as np
    >>> dp_pix(np.zeros((1, 2, 3), np.uint8), 2, 1.0, value_range=4.0, cell_noise=np.ones((1, 1, 2), np.int64))[0]
    array([[0.25, 0.25, 0.5 ],
           [0.25, 0.25, 0.5 ]], dtype=float32)
    """
    import numpy as np

    _check_shape(image.shape)
    block = _check_block(block)
    _check_positive("epsilon", epsilon, "pass a privacy loss greater than 0, e.g. epsilon=1.0")
    _check_int("m", m, 1, "pass how many pixels to protect, at least 1, e.g. m=1")
    unit = dp_pix_unit(image.dtype, _check_positive("value_range", value_range, "pass the data's max - min"))
    values = image if image.dtype.kind in "iub" else np.rint(image.astype(np.float64) / unit)
    sums, counts = _cell_sums(values, block)
    if cell_noise.shape != sums.shape or cell_noise.dtype.kind not in "iu":
        raise ConfigurationError(
            "cell_noise",
            f"is {cell_noise.dtype} of shape {cell_noise.shape}",
            f"pass one integer draw per cell, shape {sums.shape}",
        )
    noisy = (sums + cell_noise) * unit / counts
    if clip is not None:
        noisy = np.clip(noisy, clip[0], clip[1])
    result: NDArray[np.float32] = _spread(noisy, block, image.shape).astype(np.float32)
    return result
