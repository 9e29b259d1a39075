"""Distributed discrete Gaussian sizing and accounting (Kairouz, Liu, Steinke 2021, Proposition 14)."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from privacy_core.errors import ConfigurationError
from privacy_core.secure.noise import (
    MIN_SIGMA_SQ,
    charged_rho,
    distributed_rho,
    draw_site_noise,
    noise_tail_bound,
    plan_noise,
    tau,
)


def _proposition_14(l2_sq: float, sigma_sq: float, n: int, d: int) -> float:
    """The three bounds of Proposition 14 for exactly n parties, written out independently of the module."""
    t = 10 * sum(math.exp(-2 * math.pi**2 * sigma_sq * k / (k + 1)) for k in range(1, n))
    l2 = math.sqrt(l2_sq)
    l1 = min(math.sqrt(d) * l2, l2_sq)
    scale = math.sqrt(n * sigma_sq)
    rho_1 = l2_sq / (2 * n * sigma_sq) + t * d
    rho_2 = 0.5 * (l2_sq / (n * sigma_sq) + 2 * l1 * t / scale + t * t * d)
    rho_3 = 0.5 * (l2 / scale + t * math.sqrt(d)) ** 2
    return min(rho_1, rho_2, rho_3)


def test_tau_is_the_papers_sum() -> None:
    assert tau(1, 1) == 0.0
    expected = 10 * (math.exp(-2 * math.pi**2 * 0.5 * 1 / 2) + math.exp(-2 * math.pi**2 * 0.5 * 2 / 3))
    assert tau(Fraction(1, 2), 3) == pytest.approx(expected, rel=1e-15)


def test_single_site_is_the_central_discrete_gaussian() -> None:
    assert distributed_rho(4, 8, 1, 100) == 0.25
    assert charged_rho(4, 8, 1, 100) == Fraction(1, 4)


@pytest.mark.parametrize("sigma_sq", [Fraction(1, 4), Fraction(1, 2), 1, 2, 5, 50])
@pytest.mark.parametrize(("n", "d"), [(2, 1), (3, 10), (5, 1000)])
def test_matches_proposition_14_at_best_party_count(sigma_sq: Fraction | int, n: int, d: int) -> None:
    best = min(_proposition_14(3.0, float(sigma_sq), m, d) for m in range(1, n + 1))
    assert distributed_rho(3, sigma_sq, n, d) == pytest.approx(best, rel=1e-12)


def test_equals_the_nominal_rho_for_large_sigma() -> None:
    nominal = 1 / (2 * 4 * 100)
    assert distributed_rho(1, 100, 4, 1000) == pytest.approx(nominal, rel=1e-15)
    assert charged_rho(1, 100, 4, 1000) - Fraction(1, 800) == Fraction(1, 10**12)  # one grid unit, rounded up


def test_is_larger_than_nominal_for_tiny_sigma() -> None:
    rho = distributed_rho(1, Fraction(1, 2), 4, 10)
    assert rho > 1.2 * (1 / (2 * 4 * 0.5))


def test_is_never_below_nominal_and_decreases_with_sigma() -> None:
    sigmas = [Fraction(k, 8) for k in range(2, 80)]
    values = [distributed_rho(2, s, 3, 50) for s in sigmas]
    assert all(v >= float(Fraction(2) / (2 * 3 * s)) for v, s in zip(values, sigmas, strict=True))
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_more_honest_sites_never_cost_more() -> None:
    values = [distributed_rho(2, Fraction(3, 4), n, 20) for n in range(1, 12)]
    assert all(a >= b for a, b in itertools.pairwise(values))


@pytest.mark.parametrize("sigma_sq", [Fraction(1, 4), Fraction(3, 5), 1, Fraction(7, 3), 40])
def test_charge_is_an_exact_fraction_rounded_up(sigma_sq: Fraction | int) -> None:
    charged = charged_rho(5, sigma_sq, 4, 64)
    assert isinstance(charged, Fraction)
    assert float(charged) >= distributed_rho(5, sigma_sq, 4, 64)
    assert charged >= Fraction(5) / (2 * 4 * Fraction(sigma_sq))
    # The float part carries a relative safety margin of 1e-9 and a 1e-12 grid, nothing more.
    assert float(charged) <= distributed_rho(5, sigma_sq, 4, 64) * (1 + 2e-9) + 2e-12


@pytest.mark.parametrize(
    ("setting", "kwargs"),
    [
        ("sigma_site_sq", {"sigma_site_sq": Fraction(1, 5)}),
        ("honest_sites", {"honest_sites": 0}),
        ("dimension", {"dimension": 0}),
        ("l2_squared", {"l2_squared": 0}),
    ],
)
def test_bad_accounting_arguments(setting: str, kwargs: dict[str, object]) -> None:
    arguments: dict[str, object] = {"l2_squared": 1, "sigma_site_sq": 1, "honest_sites": 2, "dimension": 3}
    arguments.update(kwargs)
    with pytest.raises(ConfigurationError) as caught:
        distributed_rho(**arguments)  # type: ignore[arg-type]
    assert caught.value.setting == setting


def test_plan_sizes_noise_from_the_honest_sites() -> None:
    plan = plan_noise(l2_squared=4, rho=Fraction(1, 8), min_sites=5, collusion=2, dimension=16)
    assert plan.sigma_sq == 16
    assert plan.honest_sites == 3
    assert plan.sigma_site_sq == Fraction(16, 3)
    # With exactly min_sites uploads, the 3 honest shares add up to the target variance: the nominal rho.
    assert float(plan.planned_rho) == pytest.approx(1 / 8, rel=1e-6)
    assert plan.planned_rho >= Fraction(1, 8)
    # More sites arrive: more honest noise, a smaller charge.
    assert plan.rho_for(7) < plan.planned_rho
    described = plan.describe(accepted=6, delta=1e-6)
    assert described["honest_sites"] == 4
    assert described["epsilon_delta"]["delta"] == 1e-6


@pytest.mark.parametrize(
    ("setting", "kwargs"),
    [
        ("collusion", {"collusion": 3}),
        ("collusion", {"collusion": -1}),
        ("min_sites", {"min_sites": 0}),
        ("rho", {"rho": 0}),
        ("rho", {"rho": 100}),  # sigma_site^2 below 1/4
        ("dimension", {"dimension": 0}),
    ],
)
def test_bad_plans_name_their_setting(setting: str, kwargs: dict[str, object]) -> None:
    arguments: dict[str, object] = {"l2_squared": 1, "rho": Fraction(1, 2), "min_sites": 3, "collusion": 1}
    arguments["dimension"] = 4
    arguments.update(kwargs)
    with pytest.raises(ConfigurationError) as caught:
        plan_noise(**arguments)  # type: ignore[arg-type]
    assert caught.value.setting == setting


def test_rho_for_fewer_than_min_sites_is_refused() -> None:
    plan = plan_noise(1, Fraction(1, 2), 3, 1, 4)
    with pytest.raises(ConfigurationError, match="min_sites"):
        plan.rho_for(2)


def test_tail_bound_covers_the_noise() -> None:
    assert noise_tail_bound(1, 1) >= 14
    assert noise_tail_bound(100, 1) >= 140
    assert noise_tail_bound(1, 10**9) > noise_tail_bound(1, 1)  # the union bound over more values
    draws = draw_site_noise(MIN_SIGMA_SQ * 4, 20_000)
    assert int(np.abs(draws).max()) <= noise_tail_bound(1, 20_000)


def test_site_noise_has_the_planned_variance() -> None:
    draws = draw_site_noise(Fraction(9, 2), 40_000)
    assert draws.dtype == np.int64
    assert abs(float(draws.mean())) < 0.1
    assert float(draws.var()) == pytest.approx(4.5, rel=0.05)
