"""gaussian_blur: equal to scipy.ndimage.gaussian_filter on the whole array, on every chunking and boundary."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
from scipy import ndimage

from privacy_core.errors import ConfigurationError
from privacy_core.pixels import BOUNDARIES, gaussian_blur, reference
from privacy_core.pixels._blur import _merge_small_chunks

SHAPE = (3, 37, 29)
#: The last is smaller than every halo used here (ceil(0.7 * 4) = 3 and up); see also the one-pixel chunks test.
CHUNKINGS = [(1, 7, 5), (2, 16, 16), SHAPE, (1, 2, 3)]
SIGMAS: list[Any] = [1.5, (0.7, 2.0), (1.0, 1.5, 0.5)]


@pytest.fixture(autouse=True)
def _synchronous() -> Iterator[None]:
    with dask.config.set(scheduler="synchronous"):
        yield


def _volume(dtype: str, shape: tuple[int, ...] = SHAPE) -> np.ndarray[Any, Any]:
    info = np.iinfo(dtype)
    return np.random.default_rng(11).integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


def _assert_float_equal(actual: np.ndarray[Any, Any], expected: np.ndarray[Any, Any]) -> None:
    assert actual.dtype == expected.dtype
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6 * float(np.abs(expected).max()))


@pytest.mark.parametrize("sigma", SIGMAS)
@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("dtype", ["int16", "uint8"])
def test_matches_reference_on_every_chunking(dtype: str, chunks: tuple[int, ...], sigma: Any) -> None:
    image = _volume(dtype)

    result = gaussian_blur(da.from_array(image, chunks=chunks), sigma).compute()

    _assert_float_equal(result, reference.gaussian_blur(image, sigma))


@pytest.mark.parametrize("chunks", [(1, 7, 5), (1, 2, 3)])
@pytest.mark.parametrize("boundary", sorted(BOUNDARIES))
def test_every_boundary_equals_scipy_mode_on_the_whole_array(boundary: str, chunks: tuple[int, ...]) -> None:
    image = _volume("int16")
    mode = BOUNDARIES[boundary][1]

    result = gaussian_blur(da.from_array(image, chunks=chunks), (1.0, 1.2, 0.8), boundary=boundary).compute()

    expected = ndimage.gaussian_filter(image.astype(np.float64), (1.0, 1.2, 0.8), mode=mode, truncate=4.0)
    _assert_float_equal(result, expected.astype(np.float32))


def test_reflect_boundary_repeats_the_edge_pixel() -> None:
    # Dask's "reflect" is NumPy's "symmetric" (d c b a | a b c d), which is SciPy's "reflect", not "mirror".
    image = _volume("int16", (1, 20, 20))

    result = gaussian_blur(da.from_array(image, chunks=(1, 6, 6)), 1.0, truncate=2.0).compute()

    padded = np.pad(image.astype(np.float64), ((0, 0), (2, 2), (2, 2)), mode="symmetric")
    by_padding = ndimage.gaussian_filter(padded, (0, 1.0, 1.0), truncate=2.0)[:, 2:-2, 2:-2]
    _assert_float_equal(result, by_padding.astype(np.float32))


@pytest.mark.parametrize("truncate", [1.0, 2.5, 4.0])
def test_truncate_sets_the_kernel_and_the_halo(truncate: float) -> None:
    image = _volume("uint8")

    result = gaussian_blur(da.from_array(image, chunks=(1, 4, 4)), 2.0, truncate=truncate).compute()

    _assert_float_equal(result, reference.gaussian_blur(image, 2.0, truncate=truncate))


def test_one_pixel_chunks() -> None:
    image = _volume("int16", (2, 19, 13))

    result = gaussian_blur(da.from_array(image, chunks=1), (0.6, 1.3, 0.9)).compute()

    _assert_float_equal(result, reference.gaussian_blur(image, (0.6, 1.3, 0.9)))


def test_chunks_smaller_than_the_halo_are_merged() -> None:
    image = da.from_array(_volume("uint8"), chunks=(1, 2, 3))
    halo = math.ceil(1.5 * 4.0)

    result = gaussian_blur(image, 1.5)

    assert min(result.chunks[1]) >= halo and min(result.chunks[2]) >= halo
    assert result.chunks[0] == (1, 1, 1)  # sigma_z = 0: z is left alone


def test_axis_shorter_than_the_halo() -> None:
    image = _volume("int16", (2, 5, 40))

    result = gaussian_blur(da.from_array(image, chunks=(1, 2, 8)), (3.0, 3.0, 1.0)).compute()

    _assert_float_equal(result, reference.gaussian_blur(image, (3.0, 3.0, 1.0)))


@pytest.mark.parametrize("chunks", [(1, 7, 5, 1), (2, 16, 16, 3), (1, 2, 3, 2)])
def test_colour_channels_are_not_mixed(chunks: tuple[int, ...]) -> None:
    image = _volume("uint8", (2, 20, 18, 3))
    image[..., 1] = 0

    result = gaussian_blur(da.from_array(image, chunks=chunks), 1.2).compute()

    _assert_float_equal(result, reference.gaussian_blur(image, 1.2))
    assert (result[..., 1] == 0).all()


def test_default_blurs_in_plane_only() -> None:
    image = np.zeros((3, 9, 9), dtype=np.uint8)
    image[1, 4, 4] = 100

    result = gaussian_blur(da.from_array(image, chunks=(1, 4, 4)), 1.0).compute()

    assert (result[0] == 0).all() and (result[2] == 0).all()
    assert result[1].sum() == pytest.approx(100.0, rel=1e-5)


@pytest.mark.parametrize(("dtype", "expected"), [("uint8", "float32"), ("int16", "float32"), ("float64", "float64")])
def test_output_dtype(dtype: str, expected: str) -> None:
    image = da.ones((1, 6, 6), dtype=dtype, chunks=3)

    result = gaussian_blur(image, 1.0)

    assert result.dtype == np.dtype(expected)
    assert result.compute().dtype == np.dtype(expected)


def test_zero_sigma_is_identity_as_float() -> None:
    image = _volume("int16")

    result = gaussian_blur(da.from_array(image, chunks=(1, 7, 5)), 0.0).compute()

    np.testing.assert_array_equal(result, image.astype(np.float32))


@pytest.mark.parametrize(
    ("chunks", "minimum", "expected"),
    [((5, 5, 5, 2), 4, (5, 5, 7)), ((1, 1, 1, 1, 1), 2, (2, 3)), ((10,), 20, (10,)), ((3, 8, 1), 3, (3, 9))],
)
def test_merge_small_chunks(chunks: tuple[int, ...], minimum: int, expected: tuple[int, ...]) -> None:
    merged = _merge_small_chunks(chunks, minimum)

    assert merged == expected
    assert sum(merged) == sum(chunks)


@pytest.mark.parametrize(
    ("error_type", "kwargs", "match"),
    [
        (ConfigurationError, {"sigma": -1.0}, r"sigma: sigma=-1.0 has -1.0, not a finite number >= 0"),
        (ConfigurationError, {"sigma": (1.0, math.nan)}, r"sigma: sigma=\(1.0, nan\) has nan"),
        (ConfigurationError, {"sigma": (1, 2, 3, 4)}, r"sigma: sigma=\(1, 2, 3, 4\) is neither a number"),
        (ConfigurationError, {"sigma": "2"}, r"sigma: sigma='2' is neither"),
        (ConfigurationError, {"sigma": 1.0, "truncate": 0}, r"truncate: truncate=0.0 must be finite and greater"),
        (ConfigurationError, {"sigma": 1.0, "boundary": "mirror"}, r"boundary='mirror' is not supported; use one"),
    ],
)
def test_bad_arguments(error_type: type[Exception], kwargs: dict[str, Any], match: str) -> None:
    image = da.zeros((1, 4, 4), dtype=np.uint8, chunks=2)

    with pytest.raises(error_type, match=match):
        gaussian_blur(image, **kwargs)


@pytest.mark.parametrize(
    ("error_type", "image", "match"),
    [
        (ConfigurationError, da.zeros((4, 4), dtype=np.uint8), r"image: has shape \(4, 4\)"),
        (TypeError, np.zeros((1, 4, 4), dtype=np.uint8), r"image: expected a dask.array.Array"),
    ],
)
def test_bad_images(error_type: type[Exception], image: Any, match: str) -> None:
    with pytest.raises(error_type, match=match):
        gaussian_blur(image, 1.0)
