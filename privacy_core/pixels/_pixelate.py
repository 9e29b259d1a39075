"""Pixelation as a Dask array operation: each b x b cell, aligned to the image origin, becomes its mean.

Cells are anchored at pixel (0, 0) of the image, not at chunk borders, so the result does not depend on how the
array is chunked. To keep every cell inside one chunk, the (y, x) chunks are first rechunked to a multiple of
``block`` when their borders are not already on the cell grid; each block is then reduced on its own with
``map_blocks``, no halo needed. Also holds the Dask helpers DP-Pix shares.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from privacy_core.pixels.reference import _check_block, _check_shape, _float_dtype

if TYPE_CHECKING:
    import dask.array as da
    import numpy as np
    from numpy.typing import DTypeLike, NDArray

__all__ = ["pixelate"]


def _check_dask_volume(image: object) -> None:
    """Refuse anything but a Dask ``(z, y, x)`` or ``(z, y, x, c)`` array."""
    import dask.array as da

    if not isinstance(image, da.Array):
        raise TypeError(
            f"image: expected a dask.array.Array, got {type(image).__name__}; "
            "wrap it with dask.array.from_array(image, chunks=...)"
        )
    _check_shape(image.shape)


def _align_in_plane(image: da.Array, block: int) -> da.Array:
    """Rechunk (y, x) so every chunk border lies on the cell grid (a multiple of ``block`` from the origin).

    Already aligned axes keep their chunks. Others get a uniform chunk: the first chunk's size rounded up to a
    multiple of ``block``, so chunks grow by less than one cell.
    """
    new: dict[int, int] = {}
    for axis in (1, 2):
        chunks = image.chunks[axis]
        borders, total = [], 0
        for size in chunks[:-1]:
            total += size
            borders.append(total)
        if any(border % block for border in borders):
            new[axis] = -(-chunks[0] // block) * block
    return image.rechunk(new) if new else image


#: Planes are reduced a few at a time, about this many bytes of float64 each: a 64-plane slab at once
#: (134 MB of float64 for 512 x 512) runs from memory, a few planes run from cache, about 6x faster.
CACHE_BYTES = 4 * 1024 * 1024


def _planes_per_step(shape: tuple[int, ...]) -> int:
    """How many planes of a block make about :data:`CACHE_BYTES` of float64."""
    plane = 8
    for size in shape[1:]:
        plane *= size
    return max(1, CACHE_BYTES // max(plane, 1))


def _cell_sums(block_data: NDArray[Any], block: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-cell float64 sums and pixel counts of a block that starts on the cell grid.

    Sums have shape ``(z, ny, nx[, c])``; counts have ``(1, ny, nx[, 1])`` so they broadcast against them.
    Integer data whose planes hold whole cells is summed through a reshape, with no float64 copy of the block:
    float64 sums of integers are exact, so that path gives the same sums as the general one.
    """
    import numpy as np

    height, width = block_data.shape[1:3]
    rows, cols = np.arange(0, height, block), np.arange(0, width, block)
    counts = np.outer(np.diff(rows, append=height), np.diff(cols, append=width)).astype(np.float64)
    counts = counts.reshape((1, *counts.shape) + (1,) * (block_data.ndim - 3))
    if block_data.dtype.kind in "iub" and height % block == 0 and width % block == 0:
        cells = block_data.reshape(
            block_data.shape[0], height // block, block, width // block, block, *block_data.shape[3:]
        )
        return cells.sum(axis=(2, 4), dtype=np.float64), counts
    data = block_data.astype(np.float64)
    sums = np.add.reduceat(np.add.reduceat(data, rows, axis=1), cols, axis=2)
    return sums, counts


def _spread_cells(cells: NDArray[Any], block: int, shape: tuple[int, ...]) -> NDArray[Any]:
    """Each cell value over its pixels; the last cell in a row or column is cut to what the block holds."""
    import numpy as np

    return np.repeat(np.repeat(cells, block, axis=1), block, axis=2)[:, : shape[1], : shape[2]]


def _spread_into(out: NDArray[Any], cells: NDArray[Any], block: int) -> None:
    """Write each cell value over its pixels of ``out`` (a C-contiguous block slice), without temporaries when
    the planes hold whole cells."""
    height, width = out.shape[1:3]
    if height % block == 0 and width % block == 0 and out.flags.c_contiguous:
        view = out.reshape(out.shape[0], height // block, block, width // block, block, *out.shape[3:])
        view[...] = cells[:, :, None, :, None]
    else:
        out[...] = _spread_cells(cells, block, out.shape)


def _map_cells(
    block_data: NDArray[Any],
    block: int,
    cell_values: Callable[[NDArray[np.float64], NDArray[np.float64]], NDArray[Any]],
    out_dtype: DTypeLike,
) -> NDArray[Any]:
    """Replace every cell of a grid-aligned block by ``cell_values(sums, counts)``, a few planes at a time.

    Values are cast to ``out_dtype`` per cell before they are spread, which gives the same pixels as casting
    after: the cast is elementwise. Planes are independent, so the steps change speed, not results.
    """
    import numpy as np

    out = np.empty(block_data.shape, dtype=out_dtype)
    step = _planes_per_step(block_data.shape)
    for start in range(0, block_data.shape[0], step):
        sums, counts = _cell_sums(block_data[start : start + step], block)
        _spread_into(out[start : start + step], cell_values(sums, counts).astype(out_dtype), block)
    return out


def _pixelate_block(block_data: NDArray[Any], block: int, out_dtype: DTypeLike) -> NDArray[Any]:
    """Cell means of one grid-aligned block, spread back over the block."""
    if block_data.size == 0:
        return block_data.astype(out_dtype)
    return _map_cells(block_data, block, lambda sums, counts: sums / counts, out_dtype)


def pixelate(image: da.Array, block: int) -> da.Array:
    """Replace each ``block`` x ``block`` cell by its mean; cells start at the image origin, not at chunks.

    Cells at the bottom and right edges that are smaller than ``block`` use the mean of the pixels they have.
    In-plane chunks are rechunked to multiples of ``block`` if needed (see the module docstring). Matches
    :func:`privacy_core.pixels.reference.pixelate`.

    :param image: a Dask ``(z, y, x)`` or ``(z, y, x, c)`` array; every plane and channel is done alike.
    :param block: the cell side in pixels, at least 1.
    :return: float32 means (float64 input stays float64): rounding back would quantise a second time.
    :raises ConfigurationError: ``image`` is not a volume, or ``block`` is not a whole number >= 1.

    >>> import dask.array as da
    >>> import numpy as np
    >>> image = da.from_array(np.arange(12, dtype=np.uint8).reshape(1, 3, 4), chunks=(1, 1, 3))
    >>> pixelate(image, 2).compute()[0]
    array([[ 2.5,  2.5,  4.5,  4.5],
           [ 2.5,  2.5,  4.5,  4.5],
           [ 8.5,  8.5, 10.5, 10.5]], dtype=float32)
    """
    import dask.array as da

    _check_dask_volume(image)
    block = _check_block(block)
    out_dtype = _float_dtype(image.dtype)
    aligned = _align_in_plane(image, block)
    result: da.Array = da.map_blocks(
        _pixelate_block, aligned, block=block, out_dtype=out_dtype, dtype=out_dtype, meta=image._meta.astype(out_dtype)
    )
    return result
