"""pixelate: cells at the image origin, equal to the NumPy reference on every chunking."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest

from privacy_core.errors import ConfigurationError
from privacy_core.pixels import pixelate, reference

SHAPE = (3, 37, 29)
CHUNKINGS = [(1, 7, 5), (2, 16, 16), SHAPE, (1, 2, 3)]


@pytest.fixture(autouse=True)
def _synchronous() -> Iterator[None]:
    with dask.config.set(scheduler="synchronous"):
        yield


def _volume(dtype: str, shape: tuple[int, ...] = SHAPE) -> np.ndarray[Any, Any]:
    info = np.iinfo(dtype)
    return np.random.default_rng(5).integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize("block", [1, 3, 4, 8, 64])
@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("dtype", ["int16", "uint8"])
def test_matches_reference_on_every_chunking(dtype: str, chunks: tuple[int, ...], block: int) -> None:
    image = _volume(dtype)

    result = pixelate(da.from_array(image, chunks=chunks), block).compute()

    expected = reference.pixelate(image, block)
    assert result.dtype == expected.dtype == np.float32
    np.testing.assert_allclose(result, expected, rtol=1e-7)


@pytest.mark.parametrize("chunks", [(1, 7, 5, 1), (2, 16, 16, 3)])
def test_colour(chunks: tuple[int, ...]) -> None:
    image = _volume("uint8", (2, 20, 18, 3))

    result = pixelate(da.from_array(image, chunks=chunks), 4).compute()

    np.testing.assert_allclose(result, reference.pixelate(image, 4), rtol=1e-7)


def test_edge_cells_use_the_mean_of_what_exists() -> None:
    image = np.arange(15, dtype=np.uint8).reshape(1, 3, 5)

    result = pixelate(da.from_array(image, chunks=(1, 2, 2)), 2).compute()[0]

    assert result[0, 0] == np.mean([0, 1, 5, 6])
    assert result[0, 4] == np.mean([4, 9])
    assert result[2, 0] == np.mean([10, 11])
    assert result[2, 4] == 14


def test_cells_follow_the_image_origin_not_the_chunks() -> None:
    image = da.from_array(_volume("int16"), chunks=(1, 5, 7))

    result = pixelate(image, 4)

    for axis in (1, 2):
        borders = np.cumsum(result.chunks[axis])[:-1]
        assert (borders % 4 == 0).all()


def test_aligned_chunks_are_kept() -> None:
    image = da.from_array(_volume("int16"), chunks=(1, 8, 12))

    assert pixelate(image, 4).chunks == image.chunks


def test_float64_stays_float64() -> None:
    image = np.linspace(0, 1, 2 * 9 * 9).reshape(2, 9, 9)

    result = pixelate(da.from_array(image, chunks=(1, 4, 4)), 3)

    assert result.dtype == np.float64
    np.testing.assert_allclose(result.compute(), reference.pixelate(image, 3), rtol=1e-12)


@pytest.mark.parametrize(
    ("error_type", "kwargs", "match"),
    [
        (ConfigurationError, {"block": 0}, r"block: block=0 is below 1; pass the cell side"),
        (ConfigurationError, {"block": 2.5}, r"block: block=2.5 is not a whole number"),
        (ConfigurationError, {"block": True}, r"block: block=True is not a whole number"),
        (ConfigurationError, {"block": "4"}, r"block: block='4' is not a whole number"),
    ],
)
def test_bad_arguments(error_type: type[Exception], kwargs: dict[str, Any], match: str) -> None:
    image = da.zeros((1, 4, 4), dtype=np.uint8, chunks=2)

    with pytest.raises(error_type, match=match):
        pixelate(image, **kwargs)


@pytest.mark.parametrize(
    ("error_type", "image", "match"),
    [
        (ConfigurationError, da.zeros((1, 1, 4, 4, 1), dtype=np.uint8), r"image: has shape \(1, 1, 4, 4, 1\)"),
        (TypeError, np.zeros((1, 4, 4), dtype=np.uint8), r"image: expected a dask.array.Array"),
    ],
)
def test_bad_images(error_type: type[Exception], image: Any, match: str) -> None:
    with pytest.raises(error_type, match=match):
        pixelate(image, 2)
