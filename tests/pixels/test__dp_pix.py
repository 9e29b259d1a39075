"""dp_pix: cell sums plus one exact discrete Laplace draw per cell at the right scale, fresh and independent.

The integer noise of a run is recovered exactly as round(output cell value * cell pixels - true cell sum); the
reference given that noise must reproduce the output bit for bit, and its distribution must be the exact
discrete Laplace of scale m * R * c / epsilon.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
from scipy import stats

from privacy_core.dp.noise import laplace_pmf
from privacy_core.errors import ConfigurationError
from privacy_core.pixels import CellNoise, default_value_range, dp_pix, dp_pix_scale, dp_pix_sum_scale, reference
from privacy_core.pixels.reference import dp_pix_unit

SHAPE = (3, 37, 29)
CHUNKINGS = [(1, 7, 5), (2, 16, 16), SHAPE, (1, 2, 3)]
#: A (5, 256, 256) plane stack in 2 x 2 cells: 81,920 cells, so the sample variance of the draws has relative sd
#: sqrt(5 / 81920) = 0.8% and the 5% bound is 6 sd; correlations are bounded at 5 / sqrt(pairs).
BIG = (5, 256, 256)
BIG_CHUNKS = (1, 64, 50)


@pytest.fixture(autouse=True)
def _synchronous() -> Iterator[None]:
    with dask.config.set(scheduler="synchronous"):
        yield


class ShakeSource:
    """A deterministic, picklable noise source for tests: integers in [-1000, 1000] from SHAKE-256 of
    (seed, call number). Counts its calls."""

    def __init__(self, seed: bytes) -> None:
        self.seed = seed
        self.calls = 0

    def __call__(self, shape: tuple[int, ...], scale: Fraction) -> np.ndarray[Any, Any]:
        self.calls += 1
        count = int(np.prod(shape, dtype=np.int64))
        words = np.frombuffer(hashlib.shake_256(self.seed + self.calls.to_bytes(8, "little")).digest(8 * count), "<u8")
        return (words % np.uint64(2001)).astype(np.int64).reshape(shape) - 1000


def echo_scale(shape: tuple[int, ...], scale: Fraction) -> np.ndarray[Any, Any]:
    """Every draw is the scale asked for, rounded: the output then shows the scale."""
    return np.full(shape, round(scale), dtype=np.int64)


def float_zeros(shape: tuple[int, ...], scale: Fraction) -> Any:
    """A broken source: floats, not integers."""
    return np.zeros(shape)


def four(shape: tuple[int, ...], scale: Fraction) -> np.ndarray[Any, Any]:
    return np.full(shape, 4, dtype=np.int64)


def _volume(dtype: str, shape: tuple[int, ...] = SHAPE, high: int | None = None) -> np.ndarray[Any, Any]:
    info = np.iinfo(dtype)
    top = info.max if high is None else high
    return (
        np.random.default_rng(3).integers(info.min if high is None else 0, top, size=shape, endpoint=True).astype(dtype)
    )


def _cell_values(output: np.ndarray[Any, Any], block: int) -> np.ndarray[Any, Any]:
    """The value at each cell's top-left pixel, shape (z, ny, nx[, c])."""
    return output[:, ::block, ::block].astype(np.float64)


def _sums_and_counts(values: np.ndarray[Any, Any], block: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Exact integer cell sums (by a loop over cells, independent of both implementations) and pixel counts."""
    z, height, width = values.shape[:3]
    ny, nx = -(-height // block), -(-width // block)
    sums = np.zeros((z, ny, nx, *values.shape[3:]), dtype=np.int64)
    counts = np.zeros((1, ny, nx, *([1] * (values.ndim - 3))), dtype=np.int64)
    for i in range(ny):
        for j in range(nx):
            cell = values[:, i * block : (i + 1) * block, j * block : (j + 1) * block].astype(np.int64)
            sums[:, i, j] = cell.sum(axis=(1, 2))
            counts[0, i, j] = cell.shape[1] * cell.shape[2]
    return sums, counts


def _integer_noise(image: np.ndarray[Any, Any], output: np.ndarray[Any, Any], block: int, unit: float = 1.0) -> Any:
    """The integer draw behind each cell of ``output``, checked to be an integer (float32 rounding aside)."""
    values = image if image.dtype.kind in "iub" else np.rint(image.astype(np.float64) / unit)
    sums, counts = _sums_and_counts(values, block)
    raw = _cell_values(output, block) * counts / unit - sums
    noise = np.rint(raw).astype(np.int64)
    assert np.abs(raw - noise).max() < 0.25  # float32 keeps the noisy sum to well within one unit here
    return noise


def _noise_of_run(dtype: str = "uint8", block: int = 2, epsilon: float = 1.0, **kwargs: Any) -> Any:
    image = _volume(dtype, BIG, high=kwargs.pop("high", None))
    output = dp_pix(da.from_array(image, chunks=BIG_CHUNKS), block, epsilon, **kwargs).compute()
    return _integer_noise(image, output, block)


def _correlation(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def _chi_square_pvalue(draws: np.ndarray[Any, Any], scale: Fraction, bins: int = 60) -> float:
    """Goodness of fit of integer ``draws`` to the exact discrete Laplace PMF, in about equally likely bins."""
    reach = int(40 * scale) + 1
    support = np.arange(-reach, reach + 1)
    pmf = laplace_pmf(support, scale)
    cdf = np.cumsum(pmf)
    edges = np.searchsorted(cdf, np.linspace(0, 1, bins + 1)[1:-1])  # bin i holds support[edges[i-1]+1 .. edges[i]]
    index = np.searchsorted(support[edges], draws.ravel(), side="left")
    observed = np.bincount(index, minlength=bins)
    expected = np.add.reduceat(pmf, np.concatenate([[0], edges + 1]))
    expected = expected / expected.sum() * draws.size
    return float(stats.chisquare(observed, expected).pvalue)


# --- equal to the reference given the same noise ----------------------------------------------------------------


@pytest.mark.parametrize("block", [1, 3, 4])
@pytest.mark.parametrize("chunks", CHUNKINGS)
@pytest.mark.parametrize("dtype", ["int16", "uint8"])
def test_matches_reference_given_the_same_noise(dtype: str, chunks: tuple[int, ...], block: int) -> None:
    image = _volume(dtype)

    output = dp_pix(da.from_array(image, chunks=chunks), block, 2.0).compute()

    noise = _integer_noise(image, output, block)
    expected = reference.dp_pix(image, block, 2.0, value_range=default_value_range(dtype), cell_noise=noise)
    assert output.dtype == np.float32
    np.testing.assert_array_equal(output, expected)
    # Every pixel of a cell carries the same value.
    np.testing.assert_array_equal(output, reference.pixelate(output, block))


@pytest.mark.parametrize("chunks", [(1, 7, 5), SHAPE])
def test_float_data_is_summed_on_a_grid_of_range_over_2_16(chunks: tuple[int, ...]) -> None:
    image = np.random.default_rng(4).normal(40.0, 300.0, size=SHAPE).astype(np.float32)
    unit = dp_pix_unit(image.dtype, 4096.0)

    output = dp_pix(da.from_array(image, chunks=chunks), 2, 1.0, value_range=4096.0, rng=CellNoise(echo_scale))

    assert unit == 4096.0 / 2**16
    noise = _integer_noise(image, output.compute(), 2, unit)
    assert (noise == 2**16 + 1).all()  # (2**16 + 1) steps: rounding may add one to a pixel's reach
    expected = reference.dp_pix(image, 2, 1.0, value_range=4096.0, cell_noise=noise)
    np.testing.assert_array_equal(output.compute(), expected)


def test_single_chunk_equals_reference_with_the_same_source() -> None:
    image = _volume("int16")

    output = dp_pix(da.from_array(image, chunks=-1), 4, 0.5, rng=CellNoise(ShakeSource(b"s"))).compute()

    noise = ShakeSource(b"s")((3, 10, 8), Fraction(1))
    expected = reference.dp_pix(image, 4, 0.5, value_range=65535.0, cell_noise=noise)
    np.testing.assert_array_equal(output, expected)


@pytest.mark.parametrize("chunks", [(1, 7, 5, 1), (2, 16, 16, 3)])
def test_colour_noise_is_per_channel_and_scaled_by_channels(chunks: tuple[int, ...]) -> None:
    image = _volume("uint8", (2, 20, 18, 3))

    output = dp_pix(da.from_array(image, chunks=chunks), 2, 1.0, rng=CellNoise(echo_scale)).compute()

    assert (_integer_noise(image, output, 2) == 3 * 255).all()
    assert dp_pix_scale(2, 1.0, 1, 255.0, channels=3) == 3 * dp_pix_scale(2, 1.0, 1, 255.0)
    noise = _integer_noise(image, dp_pix(da.from_array(image, chunks=chunks), 2, 1.0).compute(), 2)
    assert np.mean(noise[..., 0] == noise[..., 1]) < 0.05


# --- the noise scale -----------------------------------------------------------------------------------------------


def test_noise_is_exactly_discrete_laplace_of_scale_range_over_epsilon() -> None:
    noise = _noise_of_run()

    assert noise.size == 81_920
    scale = dp_pix_sum_scale(1.0, 1, 255.0)
    assert scale == 255
    assert _chi_square_pvalue(noise, scale) > 0.001
    assert np.var(noise) == pytest.approx(2 * 255**2, rel=0.05)
    assert abs(np.mean(noise)) < 5 * np.sqrt(2 * 255**2 / noise.size)


def test_twelve_bit_data_uses_its_real_dynamic_range() -> None:
    image = _volume("uint16", BIG, high=4095)
    chunked = da.from_array(image, chunks=BIG_CHUNKS)

    output = dp_pix(chunked, 2, 1.0, bits_stored=12).compute()

    noise = _integer_noise(image, output, 2)
    assert np.var(noise) == pytest.approx(2 * 4095**2, rel=0.05)
    assert _chi_square_pvalue(noise, Fraction(4095)) > 0.001
    assert dp_pix_scale(2, 1.0, 1, default_value_range("uint16", bits_stored=12)) == 4095 / 4


@pytest.mark.parametrize(
    ("kwargs", "value_range"),
    [
        ({"bits_stored": 12}, 4095.0),
        ({}, 65535.0),
        ({"value_range": 4096.0}, 4096.0),
        ({"value_range": 1000.0, "bits_stored": 12}, 1000.0),
    ],
)
def test_value_range_sets_the_scale_exactly(kwargs: dict[str, Any], value_range: float) -> None:
    image = _volume("uint16", (1, 8, 8), high=4095)

    output = dp_pix(da.from_array(image, chunks=(1, 4, 4)), 2, 1.0, rng=CellNoise(echo_scale), **kwargs).compute()

    assert (_integer_noise(image, output, 2) == value_range).all()


@pytest.mark.parametrize("m", [1, 3])
@pytest.mark.parametrize("epsilon", [0.5, 2.0])
def test_scale_grows_with_m_and_shrinks_with_epsilon(m: int, epsilon: float) -> None:
    image = _volume("uint8", (1, 8, 8))

    output = dp_pix(da.from_array(image, chunks=4), 2, epsilon, m=m, rng=CellNoise(echo_scale)).compute()

    assert (_integer_noise(image, output, 2) == round(255 * m / epsilon)).all()
    assert dp_pix_sum_scale(epsilon, m, 255.0) == Fraction(255 * m) / Fraction(epsilon)


def test_edge_cells_get_more_noise() -> None:
    image = np.zeros((1, 5, 5), dtype=np.uint8)

    output = dp_pix(da.from_array(image, chunks=3), 2, 1.0, value_range=4.0, rng=CellNoise(four)).compute()

    np.testing.assert_array_equal(_cell_values(output, 2)[0], [[1, 1, 2], [1, 1, 2], [2, 2, 4]])


# --- independence --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_noise() -> np.ndarray[Any, Any]:
    with dask.config.set(scheduler="synchronous"):
        return _noise_of_run().astype(np.float64)  # type: ignore[no-any-return]


def test_neighbouring_cells_are_uncorrelated(run_noise: np.ndarray[Any, Any]) -> None:
    across = _correlation(run_noise[:, :, :-1], run_noise[:, :, 1:])
    down = _correlation(run_noise[:, :-1, :], run_noise[:, 1:, :])
    planes = _correlation(run_noise[:-1], run_noise[1:])

    bound = 5 / np.sqrt(run_noise.size)
    assert abs(across) < bound and abs(down) < bound and abs(planes) < bound


def test_cells_at_chunk_borders_are_uncorrelated(run_noise: np.ndarray[Any, Any]) -> None:
    # Chunks are 64 rows x 50 columns: cell rows 31|32 and cell columns 24|25 sit on either side of a border.
    left, right = run_noise[:, :, 24:-1:25], run_noise[:, :, 25::25]
    top, bottom = run_noise[:, 31:-1:32, :], run_noise[:, 32::32, :]

    assert abs(_correlation(left, right)) < 5 / np.sqrt(left.size)
    assert abs(_correlation(top, bottom)) < 5 / np.sqrt(top.size)
    # Reused noise would repeat in every cell; independent draws of scale 255 coincide with probability
    # about 1 / (4 * 255) = 0.1%, so bound the share of equal cells rather than demand none.
    assert np.equal(run_noise[:, :32, :25], run_noise[:, :32, 25:50]).mean() < 0.01
    assert np.equal(run_noise[0], run_noise[1]).mean() < 0.01


def test_two_runs_differ() -> None:
    image = da.from_array(_volume("uint8"), chunks=(1, 7, 5))

    first = dp_pix(image, 2, 1.0).compute()
    second = dp_pix(image, 2, 1.0).compute()

    assert np.mean(first != second) > 0.95  # equal cells: about 0.1% each, by chance


def test_two_identical_calls_in_one_graph_are_not_merged() -> None:
    image = da.from_array(_volume("uint8"), chunks=(1, 7, 5))

    first, second = da.compute(dp_pix(image, 2, 1.0), dp_pix(image, 2, 1.0))

    assert np.mean(first != second) > 0.95


def test_noise_is_drawn_when_blocks_run_not_when_the_graph_is_built() -> None:
    source = ShakeSource(b"lazy")
    result = dp_pix(da.from_array(_volume("uint8"), chunks=(1, 16, 16)), 2, 1.0, rng=CellNoise(source))

    assert source.calls == 0
    result.compute()
    assert source.calls == result.npartitions


def test_threaded_scheduler_and_pickled_graph() -> None:
    result = dp_pix(da.from_array(_volume("uint8"), chunks=(1, 16, 16)), 2, 1.0)

    assert pickle.loads(pickle.dumps(result)).compute(scheduler="threads").shape == SHAPE
    assert np.isfinite(result.compute(scheduler="threads")).all()


def test_clip_bounds_the_output() -> None:
    image = da.from_array(_volume("uint8"), chunks=(1, 7, 5))

    output = dp_pix(image, 2, 0.1, clip=(0, 255)).compute()

    assert output.min() >= 0 and output.max() <= 255
    assert (output == 0).any() and (output == 255).any()


# --- defaults and bad arguments ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "bits_stored", "expected"),
    [
        ("uint8", None, 255.0),
        ("uint16", None, 65535.0),
        ("int16", None, 65535.0),
        ("uint16", 12, 4095.0),
        ("int16", 12, 4095.0),
        ("bool", None, 1.0),
        ("uint16", 16, 65535.0),
    ],
)
def test_default_value_range(dtype: str, bits_stored: int | None, expected: float) -> None:
    assert default_value_range(dtype, bits_stored=bits_stored) == expected


def test_dp_pix_scale_formula() -> None:
    assert dp_pix_scale(4, 1.0, 1, 4095.0) == 4095.0 / 16
    assert dp_pix_scale(2, 0.5, 3, 255.0, channels=3) == 255.0 * 3 * 3 / (4 * 0.5)
    assert dp_pix_scale(4, 1.0, 1, 4095.0, dtype="float32") == pytest.approx(4095.0 / 16 * (1 + 2**-16), rel=1e-12)
    assert dp_pix_scale(4, 1.0, 1, 4095.0, dtype="uint16") == 4095.0 / 16


def test_sum_scale_is_exact_for_binary_fractions_and_floats() -> None:
    assert dp_pix_sum_scale(0.1, 1, 255.0) == Fraction(255) / Fraction(0.1)  # 0.1 at its binary value
    assert dp_pix_sum_scale(0.25, 2, 4095.0, channels=3) == 4095 * 2 * 3 * 4
    assert dp_pix_sum_scale(1.0, 1, 4095.0, dtype="float32") == 2**16 + 1


def test_a_noise_source_returning_the_wrong_thing_fails_the_block() -> None:
    image = da.zeros((1, 4, 4), dtype=np.uint8, chunks=2)

    with pytest.raises(RuntimeError, match="it must return int64"):
        dp_pix(image, 2, 1.0, rng=CellNoise(float_zeros)).compute()


@pytest.mark.parametrize(
    ("error_type", "kwargs", "match"),
    [
        (ConfigurationError, {"epsilon": 0}, r"epsilon: epsilon=0.0 must be finite and greater than 0; pass a priv"),
        (ConfigurationError, {"epsilon": -1.0}, r"epsilon: epsilon=-1.0 must be finite"),
        (ConfigurationError, {"epsilon": float("inf")}, r"epsilon: epsilon=inf must be finite"),
        (ConfigurationError, {"epsilon": "1"}, r"epsilon: epsilon='1' is not a number"),
        (ConfigurationError, {"block": 0}, r"block: block=0 is below 1; pass the cell side"),
        (ConfigurationError, {"block": 1.5}, r"block: block=1.5 is not a whole number"),
        (ConfigurationError, {"m": 0}, r"m: m=0 is below 1; pass how many pixels to protect"),
        (ConfigurationError, {"m": 1.5}, r"m: m=1.5 is not a whole number"),
        (ConfigurationError, {"value_range": 0.0}, r"value_range: value_range=0.0 must be finite and greater"),
        (ConfigurationError, {"bits_stored": 17}, r"bits_stored: bits_stored=17 exceeds the 16 bits of uint16"),
        (ConfigurationError, {"bits_stored": 0}, r"bits_stored: bits_stored=0 is below 1"),
        (ConfigurationError, {"clip": (5.0, 1.0)}, r"clip: clip=\(5.0, 1.0\) is not \(low, high\) with low < high"),
        (ConfigurationError, {"rng": np.random.default_rng()}, r"rng: rng=Generator.* is not a CellNoise"),
    ],
)
def test_bad_arguments(error_type: type[Exception], kwargs: dict[str, Any], match: str) -> None:
    arguments: dict[str, Any] = {"block": 2, "epsilon": 1.0} | kwargs
    image = da.zeros((1, 4, 4), dtype=np.uint16, chunks=2)

    with pytest.raises(error_type, match=match):
        dp_pix(image, **arguments)


@pytest.mark.parametrize(
    ("error_type", "image", "match"),
    [
        (ConfigurationError, da.zeros((1, 4, 4), dtype=np.float32), r"value_range=None for float32 data.*pass value"),
        (ConfigurationError, da.zeros((4, 4), dtype=np.uint8), r"image: has shape \(4, 4\)"),
        (TypeError, np.zeros((1, 4, 4), dtype=np.uint8), r"image: expected a dask.array.Array"),
    ],
)
def test_bad_images(error_type: type[Exception], image: Any, match: str) -> None:
    with pytest.raises(error_type, match=match):
        dp_pix(image, 2, 1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"channels": 0}, r"channels: channels=0 is below 1"),
        ({"value_range": -5.0}, r"value_range: value_range=-5.0 must be finite"),
        ({"epsilon": 0.0}, r"epsilon: epsilon=0.0 must be finite"),
    ],
)
def test_dp_pix_scale_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    arguments: dict[str, Any] = {"block": 2, "epsilon": 1.0, "m": 1, "value_range": 255.0} | kwargs

    with pytest.raises(ConfigurationError, match=match):
        dp_pix_scale(**arguments)
