"""Mechanisms: exact noise parameters from loss and sensitivity, honest error bars, costs stated up front."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from privacy_core.dp.mechanisms import Mechanism, as_fraction
from privacy_core.errors import ConfigurationError


def test_laplace_scale_is_sensitivity_over_epsilon_exactly() -> None:
    mechanism = Mechanism("pure-dp", Fraction(1, 3), Fraction(7))
    assert mechanism.noise_parameter == Fraction(21)
    assert mechanism.describe()["scale_exact"] == "21"
    assert mechanism.name == "discrete-laplace"


def test_gaussian_variance_grows_with_the_number_of_cells_not_its_square() -> None:
    k, b, rho = 2, 100, Fraction(1, 2)
    small = Mechanism("zcdp", rho, Fraction(k * k * 1 * b * b))
    large = Mechanism("zcdp", rho, Fraction(k * k * 10_000 * b * b))
    assert large.noise_std / small.noise_std == pytest.approx(math.sqrt(10_000))


@pytest.mark.parametrize(
    "mechanism",
    [Mechanism("pure-dp", Fraction(1, 2), Fraction(3)), Mechanism("zcdp", Fraction(1, 8), Fraction(25))],
)
def test_interval_covers_at_least_its_confidence_and_std_matches(mechanism: Mechanism) -> None:
    noisy = mechanism.add_noise(np.zeros(400_000, dtype=np.int64))
    width = mechanism.interval(0.95)
    coverage = float(np.mean(np.abs(noisy) <= width))
    assert coverage >= 0.945
    assert float(noisy.std()) == pytest.approx(mechanism.noise_std, rel=0.03)


def test_noise_is_added_to_every_cell_independently() -> None:
    mechanism = Mechanism("pure-dp", Fraction(1), Fraction(1))
    values = np.arange(100_000, dtype=np.int64).reshape(100, 1000)
    noisy = mechanism.add_noise(values)
    assert noisy.shape == values.shape and noisy.dtype == np.int64
    noise = (noisy - values).ravel()
    assert abs(np.corrcoef(noise[:-1], noise[1:])[0, 1]) < 0.02
    assert not np.array_equal(mechanism.add_noise(values), noisy)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "abc", True])
def test_losses_must_be_positive_finite_numbers(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="epsilon"):
        as_fraction(bad, "epsilon")  # type: ignore[arg-type]
