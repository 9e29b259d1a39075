"""mask_regions: equal to the NumPy reference on every chunking, display-black defaults, and bad-argument errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest

from privacy_core.deid.burned_in import Region
from privacy_core.errors import ConfigurationError
from privacy_core.pixels import mask_regions, reference

SHAPE = (3, 37, 29)
CHUNKINGS = [(1, 7, 5), (2, 16, 16), SHAPE, (1, 2, 3)]
REGIONS: list[Any] = [(0, 0, 5, 3), (10, 20, 100, 100), Region(x=3, y=30, width=2, height=4), (100, 100, 5, 5)]


@pytest.fixture(autouse=True)
def _synchronous() -> Iterator[None]:
    with dask.config.set(scheduler="synchronous"):
        yield


def _volume(dtype: str, shape: tuple[int, ...] = SHAPE) -> np.ndarray[Any, Any]:
    info = np.iinfo(dtype)
    return np.random.default_rng(7).integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("dtype", ["int16", "uint8"])
def test_matches_reference_on_every_chunking(dtype: str, chunks: tuple[int, ...]) -> None:
    image = _volume(dtype)

    result = mask_regions(da.from_array(image, chunks=chunks), REGIONS)

    assert result.dtype == image.dtype
    assert result.chunks == da.from_array(image, chunks=chunks).chunks
    np.testing.assert_array_equal(result.compute(), reference.mask_regions(image, REGIONS))


@pytest.mark.parametrize("chunks", [(1, 7, 5, 1), (2, 16, 16, 3)])
def test_colour_masks_every_channel(chunks: tuple[int, ...]) -> None:
    image = _volume("uint8", (2, 20, 18, 3))

    result = mask_regions(da.from_array(image, chunks=chunks), [(4, 5, 6, 7)], value=9).compute()

    np.testing.assert_array_equal(result, reference.mask_regions(image, [(4, 5, 6, 7)], value=9))
    assert (result[:, 5:12, 4:10, :] == 9).all()


@pytest.mark.parametrize(("dtype", "fill"), [("int16", -32768), ("uint8", 0), ("uint16", 0), ("int32", -(2**31))])
def test_default_value_is_display_black(dtype: str, fill: int) -> None:
    image = da.from_array(np.full((1, 4, 4), 5, dtype=dtype), chunks=(1, 3, 3))

    result = mask_regions(image, [(1, 1, 2, 2)]).compute()

    assert (result[0, 1:3, 1:3] == fill).all()
    assert (result[0, 0] == 5).all()


def test_region_objects_and_tuples_agree() -> None:
    image = da.from_array(_volume("int16"), chunks=(1, 7, 5))
    regions = [Region(x=2, y=3, width=4, height=5), Region(x=20, y=30, width=50, height=50)]

    as_objects = mask_regions(image, regions, value=0).compute()
    as_tuples = mask_regions(image, [(2, 3, 4, 5), (20, 30, 50, 50)], value=0).compute()

    np.testing.assert_array_equal(as_objects, as_tuples)


def test_rectangles_are_clipped_to_the_image() -> None:
    image = da.ones((1, 4, 5), dtype=np.uint8, chunks=(1, 2, 2))

    result = mask_regions(image, [(3, 2, 100, 100), (50, 50, 1, 1)]).compute()

    expected = np.ones((1, 4, 5), dtype=np.uint8)
    expected[0, 2:, 3:] = 0
    np.testing.assert_array_equal(result, expected)


def test_input_array_is_not_modified() -> None:
    image = _volume("int16")
    before = image.copy()

    mask_regions(da.from_array(image, chunks=(1, 7, 5)), REGIONS).compute()

    np.testing.assert_array_equal(image, before)


def test_float_image_with_explicit_value() -> None:
    image = np.linspace(0, 1, 3 * 6 * 6, dtype=np.float32).reshape(3, 6, 6)

    result = mask_regions(da.from_array(image, chunks=(1, 4, 4)), [(1, 1, 3, 3)], value=-1.5).compute()

    np.testing.assert_array_equal(result, reference.mask_regions(image, [(1, 1, 3, 3)], value=-1.5))


@pytest.mark.parametrize(
    ("error_type", "kwargs", "match"),
    [
        (ConfigurationError, {"regions": [(-1, 0, 2, 2)]}, r"regions\[0\]: x=-1, y=0 must not be negative"),
        (ConfigurationError, {"regions": [(0, 0, 0, 2)]}, r"width=0, height=2 must both be at least 1"),
        (ConfigurationError, {"regions": [(0, 0, 2)]}, r"regions\[0\]: \(0, 0, 2\) is not a rectangle"),
        (ConfigurationError, {"regions": (0, 0, 5, 5)}, r"regions\[0\]: 0 is not a rectangle"),
        (ConfigurationError, {"regions": [(0.5, 0, 2, 2)]}, r"non-integer coordinate"),
        (ConfigurationError, {"regions": "0,0,5,5"}, r"regions: '0,0,5,5' is not a sequence"),
        (ConfigurationError, {"regions": [], "value": 300}, r"value=300 does not fit uint8 \(0..255\)"),
        (ConfigurationError, {"regions": [], "value": -1}, r"value=-1 does not fit uint8"),
        (ConfigurationError, {"regions": [], "value": 1.5}, r"value=1.5 does not fit uint8"),
    ],
)
def test_bad_arguments(error_type: type[Exception], kwargs: dict[str, Any], match: str) -> None:
    image = da.zeros((1, 4, 4), dtype=np.uint8, chunks=2)

    with pytest.raises(error_type, match=match):
        mask_regions(image, **kwargs)


@pytest.mark.parametrize(
    ("error_type", "image", "match"),
    [
        (ConfigurationError, da.zeros((4, 4), dtype=np.uint8), r"image: has shape \(4, 4\) \(ndim 2\).*image\[None\]"),
        (TypeError, np.zeros((1, 4, 4), dtype=np.uint8), r"image: expected a dask.array.Array, got ndarray"),
        (ConfigurationError, da.zeros((1, 4, 4), dtype=np.float32), r"value=None has no display-black for float32"),
    ],
)
def test_bad_images(error_type: type[Exception], image: Any, match: str) -> None:
    with pytest.raises(error_type, match=match):
        mask_regions(image, [(0, 0, 1, 1)])
