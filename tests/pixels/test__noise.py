"""CellNoise: uniforms strictly inside (0, 1) at 53-bit resolution, Laplace by inverse CDF, fresh bytes per call."""

from __future__ import annotations

import hashlib
import os
import pickle

import numpy as np
import pytest
from scipy import stats

from privacy_core.pixels import CellNoise


class ShakeStream:
    """A deterministic, picklable byte source for tests: SHAKE-256 of (seed, call number)."""

    def __init__(self, seed: bytes) -> None:
        self.seed = seed
        self.calls = 0

    def __call__(self, n: int) -> bytes:
        self.calls += 1
        return hashlib.shake_256(self.seed + self.calls.to_bytes(8, "little")).digest(n)


class Scripted:
    """Returns the given byte patterns in turn (each repeated to length n), then the last one forever."""

    def __init__(self, *patterns: bytes) -> None:
        self.patterns = list(patterns)

    def __call__(self, n: int) -> bytes:
        pattern = self.patterns.pop(0) if len(self.patterns) > 1 else self.patterns[0]
        return (pattern * (n // len(pattern) + 1))[:n]


def short(n: int) -> bytes:
    """A broken source: always three bytes."""
    return b"abc"


def _word(value: int) -> bytes:
    return value.to_bytes(8, "little")


def test_default_source_is_os_urandom() -> None:
    assert CellNoise().source is os.urandom


def test_uniforms_are_strictly_inside_zero_one() -> None:
    u = CellNoise().uniform(1_000_000)

    assert u.min() > 0.0 and u.max() < 1.0


def test_uniforms_have_53_bit_resolution() -> None:
    u = CellNoise(ShakeStream(b"grid")).uniform(10_000)

    k = u * 2.0**53
    np.testing.assert_array_equal(k, np.floor(k))
    assert (u * 2.0**52 % 1 != 0).any()  # the 53rd bit is used


@pytest.mark.parametrize(
    ("word", "expected"),
    [(2**64 - 1, 1.0 - 2.0**-53), (1 << 11, 2.0**-53), (1 << 63, 0.5), ((1 << 11) - 1 | 1 << 11, 2.0**-53)],
)
def test_uniform_extremes(word: int, expected: float) -> None:
    u = CellNoise(Scripted(_word(word))).uniform(3)

    assert (u == expected).all()
    assert 0.0 < expected < 1.0


def test_zero_words_are_redrawn_not_returned() -> None:
    noise = CellNoise(Scripted(_word(0), _word(2**64 - 1)))

    u = noise.uniform(4)

    assert (u == 1.0 - 2.0**-53).all()


def test_a_source_of_only_zeros_is_refused() -> None:
    with pytest.raises(RuntimeError, match="returned only zero bits 8 times; it is broken"):
        CellNoise(Scripted(bytes(8))).uniform(2)


def test_a_source_returning_the_wrong_length_is_refused() -> None:
    with pytest.raises(RuntimeError, match="returned 3 for 16 bytes; it must return exactly n"):
        CellNoise(short).uniform(2)


def test_source_must_be_callable() -> None:
    with pytest.raises(TypeError, match="source: b'abc' is not callable"):
        CellNoise(b"abc")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("word", "expected"),
    [(1 << 63, 0.0), (1 << 62, np.log(0.5)), (3 << 62, -np.log(0.5)), (2**64 - 1, -np.log(2.0**-52))],
)
def test_laplace_is_the_inverse_cdf(word: int, expected: float) -> None:
    x = CellNoise(Scripted(_word(word))).laplace(2, scale=3.0)

    np.testing.assert_allclose(x, 3.0 * expected, rtol=1e-12)


def test_laplace_matches_the_distribution() -> None:
    x = CellNoise(ShakeStream(b"ks")).laplace(50_000, scale=2.5)

    assert stats.kstest(x, "laplace", args=(0.0, 2.5)).pvalue > 0.001


def test_laplace_variance_from_urandom() -> None:
    # 200k draws: the sample variance has relative sd sqrt(5 / n) = 0.5%, so 5% is 10 sd.
    x = CellNoise().laplace(200_000, scale=4.0)

    assert np.var(x) == pytest.approx(2 * 4.0**2, rel=0.05)
    assert abs(np.mean(x)) < 5 * np.sqrt(2) * 4.0 / np.sqrt(x.size)


def test_laplace_scale_may_be_an_array() -> None:
    x = CellNoise(Scripted(_word(1 << 62))).laplace((2, 2), scale=np.array([[1.0], [10.0]]))

    np.testing.assert_allclose(x, np.log(0.5) * np.array([[1.0, 1.0], [10.0, 10.0]]))


def test_every_call_draws_fresh_bytes() -> None:
    noise = CellNoise()

    assert not np.array_equal(noise.laplace(64), noise.laplace(64))


def test_picklable_with_default_and_module_level_sources() -> None:
    for noise in (CellNoise(), CellNoise(ShakeStream(b"p"))):
        clone = pickle.loads(pickle.dumps(noise))
        assert clone.laplace(3).shape == (3,)


def test_repr_names_the_source() -> None:
    assert "urandom" in repr(CellNoise())
    assert "ShakeStream" in repr(CellNoise(ShakeStream(b"r")))
