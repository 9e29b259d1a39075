"""Region masking as a Dask array operation: blank fixed rectangles in every plane.

The rectangles are the ``(x, y, width, height)`` of the burned-in rule library
(:class:`privacy_core.deid.burned_in.Region`). Masking is pointwise, so no halo is needed: each block learns its
(y, x) offset from ``block_info`` and blanks only the part of each rectangle that falls inside it.
:func:`stored_mask` is the same operation for stored chunks
(:func:`privacy_core.imaging.stored_chunks.map_stored`), where it runs in place on each decoded chunk.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from privacy_core.pixels._pixelate import _check_dask_volume
from privacy_core.pixels.reference import Rectangle, _fill_value, _rectangles

if TYPE_CHECKING:
    import dask.array as da
    from numpy.typing import NDArray

__all__ = ["mask_regions", "stored_mask"]


def _blank(
    chunk: NDArray[Any], origin: tuple[int, ...], rectangles: tuple[tuple[int, int, int, int], ...], fill: float
) -> bool:
    """Blank in place the parts of ``rectangles`` (``(y0, y1, x0, x1)`` in image pixels) inside ``chunk``, whose
    last two axes are (y, x) starting at ``origin[-2:]``. Returns whether anything was blanked."""
    top, left = origin[-2], origin[-1]
    bottom, right = top + chunk.shape[-2], left + chunk.shape[-1]
    touched = False
    for y0, y1, x0, x1 in rectangles:
        y_start, y_stop, x_start, x_stop = max(y0, top), min(y1, bottom), max(x0, left), min(x1, right)
        if y_start < y_stop and x_start < x_stop:
            chunk[..., y_start - top : y_stop - top, x_start - left : x_stop - left] = fill
            touched = True
    return touched


def _mask_block(
    block_data: NDArray[Any],
    rectangles: tuple[tuple[int, int, int, int], ...],
    fill: float,
    block_info: dict[Any, Any] | None = None,
) -> NDArray[Any]:
    """Blank the parts of ``rectangles`` (as ``(y0, y1, x0, x1)`` in image pixels) that fall in this block."""
    if block_info is None:  # only when called outside map_blocks
        raise ValueError("block_info: None; _mask_block needs Dask's block_info to know where the block sits")
    (top, bottom), (left, right) = block_info[0]["array-location"][1:3]
    inside = tuple(r for r in rectangles if max(r[0], top) < min(r[1], bottom) and max(r[2], left) < min(r[3], right))
    if not inside:
        return block_data
    out = block_data.copy()  # never write into Dask's input block
    planes = out if out.ndim == 3 else out.transpose(3, 0, 1, 2)  # (z, y, x, c): y and x last, as a view
    _blank(planes, (top, left), inside, fill)
    return out


def mask_regions(image: da.Array, regions: Sequence[Rectangle], *, value: float | None = None) -> da.Array:
    """Blank rectangles ``(x, y, width, height)`` in every plane and channel, clipped to the image.

    Matches :func:`privacy_core.pixels.reference.mask_regions`.

    :param image: a Dask ``(z, y, x)`` or ``(z, y, x, c)`` array.
    :param regions: tuples ``(x, y, width, height)`` in pixels from the top left, or objects with those
        attributes such as :class:`privacy_core.deid.burned_in.Region`. Parts outside the image are ignored.
    :param value: the fill. None means display-black: the dtype minimum for signed integers, 0 for unsigned
        and bool. Float images have no such value, so they need it explicitly.
    :return: the same dtype and chunks as ``image``.
    :raises ConfigurationError: a rectangle is malformed or negative, or ``value`` does not fit the dtype.

    >>> import dask.array as da
    >>> import numpy as np
    >>> image = da.ones((2, 3, 4), dtype=np.uint8, chunks=(1, 2, 2))
    >>> mask_regions(image, [(1, 1, 2, 9)]).compute()[1]
    array([[1, 1, 1, 1],
           [1, 0, 0, 1],
           [1, 0, 0, 1]], dtype=uint8)
    """
    import dask.array as da

    _check_dask_volume(image)
    fill = _fill_value(image.dtype, value)
    rectangles = _rectangles(regions, image.shape)
    result: da.Array = da.map_blocks(
        _mask_block, image, rectangles=rectangles, fill=fill, dtype=image.dtype, meta=image._meta
    )
    return result


def stored_mask(
    regions: Sequence[Rectangle], shape: tuple[int, ...], dtype: Any, *, value: float | None = None
) -> Callable[[NDArray[Any], tuple[int, ...]], None]:
    """:func:`mask_regions` as an in-place function of one stored chunk and its origin, for
    :func:`~privacy_core.imaging.stored_chunks.map_stored` (stored axes end in y, x, colour included).

    :param shape: the image's ``(z, y, x[, c])`` shape, to clip the rectangles as :func:`mask_regions` does.
    :raises ConfigurationError: as :func:`mask_regions`.
    """
    fill = _fill_value(dtype, value)
    rectangles = _rectangles(regions, shape)
    return functools.partial(_blank_stored, rectangles=rectangles, fill=fill)


def _blank_stored(
    chunk: NDArray[Any], origin: tuple[int, ...], rectangles: tuple[tuple[int, int, int, int], ...], fill: float
) -> None:
    _blank(chunk, origin, rectangles, fill)
