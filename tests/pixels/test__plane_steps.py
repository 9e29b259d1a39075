"""Blocks reduced a few planes at a time (for cache) give exactly the pixels of the whole-block computation.

``CACHE_BYTES`` is set to 1 here so every plane is its own step, which the small test volumes elsewhere never
reach (their planes are far below the default 4 MiB). Results must equal the references bit for bit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest

from privacy_core.pixels import CellNoise, _pixelate, dp_pix, gaussian_blur, pixelate, reference


@pytest.fixture(autouse=True)
def _one_plane_per_step(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_pixelate, "CACHE_BYTES", 1)
    with dask.config.set(scheduler="synchronous"):
        yield


class SequentialStream:
    """One SHAKE-256 stream of integers read in order: as many per call as the shape asks, continuing where the
    last call stopped (so per-plane calls and one whole-volume call see the same integers)."""

    def __init__(self, seed: bytes, total: int = 1 << 17) -> None:
        words = np.frombuffer(hashlib.shake_256(seed).digest(8 * total), dtype="<u8")
        self.data = (words % np.uint64(4001)).astype(np.int64) - 2000
        self.offset = 0

    def __call__(self, shape: tuple[int, ...], scale: Fraction) -> np.ndarray[Any, Any]:
        n = int(np.prod(shape, dtype=np.int64))
        chunk = self.data[self.offset : self.offset + n]
        self.offset += n
        assert chunk.size == n, "stream exhausted"
        return chunk.reshape(shape)


def _volume(dtype: str, shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(17)
    if np.dtype(dtype).kind == "f":
        return rng.normal(100.0, 40.0, size=shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


def test_planes_per_step_follows_cache_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _pixelate._planes_per_step((64, 512, 512)) == 1
    monkeypatch.setattr(_pixelate, "CACHE_BYTES", 4 * 1024 * 1024)
    assert _pixelate._planes_per_step((64, 512, 512)) == 2  # 2 MiB of float64 per plane
    assert _pixelate._planes_per_step((64, 512, 512, 3)) == 1
    assert _pixelate._planes_per_step((3, 37, 29)) > 3  # small test planes: one step per block


@pytest.mark.parametrize("shape", [(5, 32, 24), (4, 37, 29), (3, 16, 16, 3)])
@pytest.mark.parametrize("dtype", ["int16", "uint8", "float32"])
def test_pixelate_in_steps_equals_reference(dtype: str, shape: tuple[int, ...]) -> None:
    image = _volume(dtype, shape)

    result = pixelate(da.from_array(image, chunks=(2, *shape[1:])), 4).compute()

    np.testing.assert_array_equal(result, reference.pixelate(image, 4))


@pytest.mark.parametrize("shape", [(5, 32, 24), (4, 37, 29)])
def test_dp_pix_in_steps_uses_the_cells_in_order(shape: tuple[int, ...]) -> None:
    image = _volume("int16", shape)

    output = dp_pix(da.from_array(image, chunks=-1), 4, 0.5, rng=CellNoise(SequentialStream(b"p"))).compute()

    cells = (shape[0], -(-shape[1] // 4), -(-shape[2] // 4))
    noise = SequentialStream(b"p")(cells, Fraction(1))
    expected = reference.dp_pix(image, 4, 0.5, value_range=65535.0, cell_noise=noise)
    np.testing.assert_array_equal(output, expected)


@pytest.mark.parametrize("sigma", [1.5, (0.7, 2.0), (1.0, 1.5, 0.5)])
@pytest.mark.parametrize("chunks", [(2, 40, 30), (5, 16, 16)])
def test_blur_in_steps_equals_reference(sigma: Any, chunks: tuple[int, ...]) -> None:
    image = _volume("int16", (5, 40, 30))

    result = gaussian_blur(da.from_array(image, chunks=chunks), sigma).compute()

    expected = reference.gaussian_blur(image, sigma)
    if chunks == (2, 40, 30):  # whole planes: the same filter on the same pixels, so bit for bit
        np.testing.assert_array_equal(result, expected)
    else:
        np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-6 * float(np.abs(expected).max()))
