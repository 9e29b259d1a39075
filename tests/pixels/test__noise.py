"""CellNoise: exact discrete Laplace integers from the process's ChaCha20 source, fresh per call and per process;
deterministic sources for tests must be picklable and return int64 of the asked shape."""

from __future__ import annotations

import pickle
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from scipy import stats

from privacy_core.dp.noise import laplace_pmf
from privacy_core.pixels import CellNoise


def fixed(shape: tuple[int, ...], scale: Fraction) -> np.ndarray[Any, Any]:
    """A deterministic test source: the rounded scale in every cell."""
    return np.full(shape, round(scale), dtype=np.int64)


def floats(shape: tuple[int, ...], scale: Fraction) -> np.ndarray[Any, Any]:
    return np.zeros(shape, dtype=np.float64)


def _draw_in_child(_: int) -> list[int]:
    return [int(v) for v in CellNoise().draw((64,), Fraction(1000))]


def test_default_draws_are_int64_of_the_asked_shape() -> None:
    draws = CellNoise().draw((2, 3, 4), Fraction(7, 2))

    assert draws.dtype == np.int64 and draws.shape == (2, 3, 4)


def test_default_draws_follow_the_exact_discrete_laplace_pmf() -> None:
    scale = Fraction(3, 2)
    draws = CellNoise().draw((200_000,), scale)

    support = np.arange(-12, 13)
    observed = np.array([np.sum(draws == k) for k in support] + [np.sum(np.abs(draws) > 12)])
    pmf = laplace_pmf(support, scale)
    expected = np.append(pmf, 1 - pmf.sum()) * draws.size
    assert stats.chisquare(observed, expected).pvalue > 0.001


def test_every_call_draws_fresh_noise() -> None:
    noise = CellNoise()

    first, second = noise.draw((1000,), Fraction(10**6)), noise.draw((1000,), Fraction(10**6))

    assert np.mean(first == second) < 0.01


def test_each_process_draws_its_own_noise() -> None:
    with ProcessPoolExecutor(2) as pool:
        one, two = pool.map(_draw_in_child, [0, 1])

    assert one != two


def test_picklable_with_default_and_module_level_sources() -> None:
    for noise in (CellNoise(), CellNoise(fixed)):
        again = pickle.loads(pickle.dumps(noise))
        assert again.draw((2,), Fraction(5)).shape == (2,)
    assert CellNoise(fixed).draw((2,), Fraction(5)).tolist() == [5, 5]


def test_repr_and_description_name_the_source() -> None:
    assert repr(CellNoise()) == "CellNoise(discrete Laplace, ChaCha20)"
    assert "ChaCha20" in CellNoise().description and "exact discrete Laplace" in CellNoise().description
    assert "test_source" not in repr(CellNoise(fixed)) and "fixed" in repr(CellNoise(fixed))
    assert CellNoise(fixed).description.startswith("test source")


def test_source_must_be_callable() -> None:
    with pytest.raises(TypeError, match="is not callable; pass None, or a function"):
        CellNoise(source=42)  # type: ignore[arg-type]


def test_a_source_returning_floats_is_refused() -> None:
    with pytest.raises(RuntimeError, match=r"returned float64 \(3,\); it must return int64 of shape \(3,\)"):
        CellNoise(floats).draw((3,), Fraction(1))
