"""Exact discrete Laplace and Gaussian samplers: goodness of fit against the exact PMF on every route (fast
float decisions, the slow exact path, the large-scale decomposition), moments, the exact comparison itself,
and the parameter checks."""

from __future__ import annotations

import decimal
import math
from collections.abc import Callable
from fractions import Fraction
from functools import partial

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import stats

from privacy_core.dp import noise
from privacy_core.dp.noise import (
    LazyUniform,
    discrete_gaussian,
    discrete_laplace,
    exp_neg_enclosure,
    gaussian_pmf,
    laplace_pmf,
    quantize,
)
from privacy_core.dp.random import SecureRandom
from privacy_core.errors import ConfigurationError

#: A correct sampler fails one chi-square test with probability 1e-6; this file runs about 15 of them, so a
#: false failure happens about once in 60,000 runs. Real errors score far lower: a 2% scale error gives
#: p < 1e-30 at 10**6 draws (see test_goodness_of_fit_detects_a_two_percent_scale_error).
P_MIN = 1e-6
#: Moments must lie within this many standard errors (false failure about 2e-9 per check).
SIGMAS = 6.0
N_FAST = 1_000_000
#: Slow-path draws cost about 10-25 µs per exact comparison; this keeps each such test near 2 s.
N_SLOW = 40_000

LAPLACE_SCALES = [Fraction(1, 2), Fraction(1), Fraction(37, 10), Fraction(100)]
GAUSSIAN_VARIANCES = [Fraction(1, 4), Fraction(1), Fraction(10), Fraction(1000)]

Pmf = Callable[[NDArray[np.int64]], NDArray[np.float64]]


@pytest.fixture
def rng() -> SecureRandom:
    return SecureRandom()


@pytest.fixture
def slow_comparisons(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count exact comparisons made on the slow path."""
    count = [0]
    original = LazyUniform.less_than

    def counting(self: LazyUniform, threshold: noise.Enclosure) -> bool:
        count[0] += 1
        return original(self, threshold)

    monkeypatch.setattr(LazyUniform, "less_than", counting)
    return count


def chi_square_p(samples: NDArray[np.int64], pmf: Pmf) -> float:
    """Chi-square p-value of integer samples from a symmetric PMF: one bin per value in the centre, where
    every expected count is at least 5, and the two tails merged into one bin each (also at least 5)."""
    n = samples.size
    reach = 0
    while n * float(pmf(np.array([reach + 1]))[0]) >= 5:
        reach += 1
    while True:
        centre = np.arange(-reach, reach + 1)
        probs = pmf(centre)
        tail = (1.0 - float(probs.sum())) / 2.0
        if n * tail >= 5 or reach == 0:
            break
        reach -= 1
    inside = samples[np.abs(samples) <= reach]
    observed = np.concatenate(
        [
            [np.count_nonzero(samples < -reach)],
            np.bincount(inside + reach, minlength=2 * reach + 1),
            [np.count_nonzero(samples > reach)],
        ]
    )
    expected = n * np.concatenate([[tail], probs, [tail]])
    if n * tail < 5:  # everything sits in the centre (tiny scales): drop the empty tail bins
        observed, expected = observed[1:-1], expected[1:-1] * n / expected[1:-1].sum()
    return float(stats.chisquare(observed, expected).pvalue)


def binned_chi_square_p(
    samples: NDArray[np.int64], edges: NDArray[np.int64], upper_tail: Callable[[int], float]
) -> float:
    """Chi-square p-value on bins ``[edges[i], edges[i+1])`` plus two tails, for a symmetric distribution
    given by ``upper_tail(k) = P(X >= k)`` (wide scales, where one bin per value is too many)."""
    n = samples.size
    cdf = np.array([1.0 - upper_tail(int(e)) for e in edges])  # P(X < e)
    probs = np.concatenate([[cdf[0]], np.diff(cdf), [1.0 - cdf[-1]]])
    index = np.searchsorted(edges, samples, side="right")
    observed = np.bincount(index, minlength=edges.size + 1)
    return float(stats.chisquare(observed, n * probs / probs.sum()).pvalue)


def laplace_tail(scale: Fraction) -> Callable[[int], float]:
    """``P(X >= k)`` of the discrete Laplace: ``q**k/(1+q)`` for k >= 0, by symmetry below."""
    q = math.exp(-1 / float(scale))

    def upper(k: int) -> float:
        return q**k / (1 + q) if k >= 0 else 1.0 - q ** (1 - k) / (1 + q)

    return upper


def exact_moments(pmf: Pmf, reach: int) -> tuple[float, float]:
    """Variance and fourth central moment (mean 0) from the PMF summed over ``[-reach, reach]``."""
    k = np.arange(-reach, reach + 1, dtype=np.float64)
    p = pmf(k.astype(np.int64))
    return float((k**2 * p).sum()), float((k**4 * p).sum())


def laplace_pmf_of(scale: Fraction) -> Pmf:
    return lambda k: laplace_pmf(k, scale)


def gaussian_pmf_of(sigma_sq: Fraction) -> Pmf:
    return lambda k: gaussian_pmf(k, sigma_sq)


# ---------------------------------------------------------------------------------------------------------
# Distribution on the fast path


@pytest.mark.parametrize("scale", LAPLACE_SCALES, ids=str)
def test_laplace_matches_exact_pmf(scale: Fraction, rng: SecureRandom) -> None:
    samples = discrete_laplace(scale, N_FAST, rng)

    assert chi_square_p(samples, laplace_pmf_of(scale)) > P_MIN


@pytest.mark.parametrize("sigma_sq", GAUSSIAN_VARIANCES, ids=str)
def test_gaussian_matches_exact_pmf(sigma_sq: Fraction, rng: SecureRandom) -> None:
    samples = discrete_gaussian(sigma_sq, N_FAST, rng)

    assert chi_square_p(samples, gaussian_pmf_of(sigma_sq)) > P_MIN


@pytest.mark.parametrize("scale", LAPLACE_SCALES, ids=str)
def test_laplace_mean_zero_and_closed_form_variance(scale: Fraction, rng: SecureRandom) -> None:
    samples = discrete_laplace(scale, N_FAST, rng).astype(np.float64)
    q = math.exp(-1 / float(scale))
    variance = 2 * q / (1 - q) ** 2
    _, fourth = exact_moments(laplace_pmf_of(scale), int(80 * scale) + 50)

    assert abs(samples.mean()) < SIGMAS * math.sqrt(variance / N_FAST)
    assert abs(samples.var() - variance) < SIGMAS * math.sqrt((fourth - variance**2) / N_FAST)


@pytest.mark.parametrize("sigma_sq", GAUSSIAN_VARIANCES, ids=str)
def test_gaussian_mean_zero_and_exact_variance(sigma_sq: Fraction, rng: SecureRandom) -> None:
    samples = discrete_gaussian(sigma_sq, N_FAST, rng).astype(np.float64)
    variance, fourth = exact_moments(gaussian_pmf_of(sigma_sq), int(40 * math.sqrt(sigma_sq)) + 10)

    assert variance <= float(sigma_sq)  # CKS Corollary 9: the discrete Gaussian's variance is at most σ²
    assert abs(samples.mean()) < SIGMAS * math.sqrt(variance / N_FAST)
    assert abs(samples.var() - variance) < SIGMAS * math.sqrt((fourth - variance**2) / N_FAST)


def test_goodness_of_fit_detects_a_two_percent_scale_error(rng: SecureRandom) -> None:
    samples = discrete_laplace(Fraction(102, 100) * 10, N_FAST, rng)

    assert chi_square_p(samples, laplace_pmf_of(Fraction(10))) < P_MIN


def test_wide_laplace_uses_the_decomposition_and_matches_the_exact_cdf(rng: SecureRandom) -> None:
    scale = Fraction(2**21) + Fraction(1, 3)
    assert scale > noise._INVERSION_MAX_SCALE
    samples = discrete_laplace(scale, N_FAST, rng)
    edges = np.arange(-8 * 2**21, 8 * 2**21 + 1, 2**19, dtype=np.int64) + 1  # bins straddle 0 off-centre

    assert binned_chi_square_p(samples, edges, laplace_tail(scale)) > P_MIN


def test_decomposition_at_small_scale_matches_exact_pmf(monkeypatch: pytest.MonkeyPatch, rng: SecureRandom) -> None:
    # m = floor(3.7) = 3: A ~ Geometric(exp(-3/3.7)) and B on {0, 1, 2}; every residue class is checked.
    monkeypatch.setattr(noise, "_INVERSION_MAX_SCALE", Fraction(1))
    scale = Fraction(37, 10)
    samples = discrete_laplace(scale, N_FAST, rng)

    assert chi_square_p(samples, laplace_pmf_of(scale)) > P_MIN


def test_wide_gaussian_matches_the_normal_cdf(rng: SecureRandom) -> None:
    # σ = 2**20.5: t = floor(σ) + 1 is above the inversion limit, so the inner Laplace is decomposed. At this σ
    # the discrete Gaussian's bin masses equal the continuous ones with continuity correction to ~exp(-2π²σ²).
    sigma_sq = Fraction(2**41)
    sigma = math.sqrt(2**41)
    samples = discrete_gaussian(sigma_sq, N_FAST, rng)
    edges = np.round(np.linspace(-4 * sigma, 4 * sigma, 101)).astype(np.int64)

    def upper(k: int) -> float:
        return float(stats.norm.sf((k - 0.5) / sigma))

    assert binned_chi_square_p(samples, edges, upper) > P_MIN


# ---------------------------------------------------------------------------------------------------------
# The slow exact path


def test_slow_path_laplace_matches_exact_pmf(
    monkeypatch: pytest.MonkeyPatch, slow_comparisons: list[int], rng: SecureRandom
) -> None:
    # A margin of 0.5 leaves most geometric draws undecided in float, so the slow path makes them.
    monkeypatch.setattr(noise, "_REL_MARGIN", 0.5)
    scale = Fraction(37, 10)
    samples = discrete_laplace(scale, N_SLOW, rng)

    assert slow_comparisons[0] > N_SLOW // 2
    assert chi_square_p(samples, laplace_pmf_of(scale)) > P_MIN


def test_slow_path_gaussian_matches_exact_pmf(
    monkeypatch: pytest.MonkeyPatch, slow_comparisons: list[int], rng: SecureRandom
) -> None:
    monkeypatch.setattr(noise, "_REL_MARGIN", 0.5)
    samples = discrete_gaussian(1, N_SLOW, rng)

    assert slow_comparisons[0] > N_SLOW // 2
    assert chi_square_p(samples, gaussian_pmf_of(Fraction(1))) > P_MIN


def test_slow_path_decomposition_matches_exact_pmf(
    monkeypatch: pytest.MonkeyPatch, slow_comparisons: list[int], rng: SecureRandom
) -> None:
    monkeypatch.setattr(noise, "_REL_MARGIN", 0.5)
    monkeypatch.setattr(noise, "_INVERSION_MAX_SCALE", Fraction(1))
    scale = Fraction(37, 10)
    samples = discrete_laplace(scale, N_SLOW, rng)

    assert slow_comparisons[0] > N_SLOW // 2
    assert chi_square_p(samples, laplace_pmf_of(scale)) > P_MIN


def test_float_exp_and_log_errors_are_far_inside_the_margin(rng: SecureRandom) -> None:
    # The margin assumes NumPy's exp/log are within a few ulp; measure them here against decimal.
    x = rng.uniform53(2000).astype(np.float64) * 2.0**-53
    context = decimal.Context(prec=40)
    worst = 0.0
    for value, got_exp in zip(x * 40, np.exp(-(x * 40)), strict=True):
        exact_exp = context.exp(context.minus(decimal.Decimal(float(value))))
        worst = max(worst, abs(float((decimal.Decimal(float(got_exp)) - exact_exp) / exact_exp)))
    for value, got_log in zip(x, np.log(x), strict=True):
        exact_log = context.ln(decimal.Decimal(float(value)))
        worst = max(worst, abs(float((decimal.Decimal(float(got_log)) - exact_log) / exact_log)))

    assert worst < noise._REL_MARGIN / 100


@pytest.mark.parametrize(
    "exponent", [Fraction(1, 3), Fraction(1), Fraction(37, 10), Fraction(100), Fraction(12345, 37)]
)
def test_exp_enclosure_contains_the_value_and_tightens(exponent: Fraction) -> None:
    context = decimal.Context(prec=300, Emin=decimal.MIN_EMIN, Emax=decimal.MAX_EMAX)
    reference = Fraction(context.exp(context.minus(context.divide(exponent.numerator, exponent.denominator))))

    lo, hi = exp_neg_enclosure(exponent, 40)
    lo2, hi2 = exp_neg_enclosure(exponent, 80)

    assert lo < reference < hi and lo2 < reference < hi2
    assert (hi2 - lo2) < (hi - lo) * Fraction(1, 10**30)
    assert (hi - lo) / reference < Fraction(1, 10**37)


def test_exp_enclosure_ignores_the_callers_decimal_context() -> None:
    exponent = Fraction(1, 3)
    reference_lo, reference_hi = exp_neg_enclosure(exponent, 40)

    exp_neg_enclosure.cache_clear()
    with decimal.localcontext() as caller:
        caller.prec, caller.rounding = 6, decimal.ROUND_FLOOR
        lo, hi = exp_neg_enclosure(exponent, 40)

    assert (lo, hi) == (reference_lo, reference_hi)


@pytest.mark.parametrize("exponent", [Fraction(600), Fraction(10**6), Fraction(10**400, 3)], ids=str)
def test_exp_enclosure_of_a_vanishing_value_stays_small_and_tightens(exponent: Fraction) -> None:
    lo, hi = exp_neg_enclosure(exponent, 40)
    lo2, hi2 = exp_neg_enclosure(exponent, 60)

    assert lo == lo2 == 0 and hi == Fraction(1, 10**160) and hi2 == Fraction(1, 10**240)


def test_degenerate_tiny_parameters_give_zero_noise() -> None:
    # float(1e-400) underflows to 0: every float check is undecided and the exact path decides each draw.
    tiny = Fraction(1, 10**400)

    assert not discrete_laplace(tiny, 20).any()
    assert not discrete_gaussian(tiny, 20).any()


def test_exp_enclosure_of_zero_is_exactly_one_and_negative_is_refused() -> None:
    assert exp_neg_enclosure(Fraction(0), 40) == (Fraction(1), Fraction(1))
    with pytest.raises(ValueError, match="negative"):
        exp_neg_enclosure(Fraction(-1), 40)


def exactly(threshold: Fraction, digits: int) -> tuple[Fraction, Fraction]:
    """The enclosure of a rational threshold: the threshold itself, at any precision."""
    return threshold, threshold


def test_lazy_comparison_agrees_with_exact_fraction_arithmetic(rng: SecureRandom) -> None:
    for _ in range(300):
        threshold = Fraction(rng.randbelow(10**30) + 1, 10**30)
        # A prefix whose 2**-53 interval holds the threshold half the time, so both paths are exercised.
        prefix = math.floor(threshold * 2**53) - rng.randbelow(2)
        u = LazyUniform(prefix, 53, rng)

        answer = u.less_than(partial(exactly, threshold))

        assert u.numer >> (u.bits - 53) == prefix  # the same uniform, extended, never a new one
        if answer:
            assert Fraction(u.numer + 1, 2**u.bits) <= threshold
        else:
            assert Fraction(u.numer, 2**u.bits) >= threshold


def test_lazy_comparison_extends_the_uniform_without_bias(rng: SecureRandom) -> None:
    # U in [R, R+1)/2**53 and the threshold one third of the way in: P(U < p) must be exactly 1/3.
    prefix, trials = 2**52 + 12345, 30_000
    threshold = (prefix + Fraction(1, 3)) / 2**53

    hits = sum(LazyUniform(prefix, 53, rng).less_than(partial(exactly, threshold)) for _ in range(trials))

    assert stats.binomtest(hits, trials, 1 / 3).pvalue > P_MIN


def folded_threshold(scale: Fraction) -> Callable[[int], noise.Enclosure]:
    """``P(|X| >= k)`` of the discrete Laplace as an enclosure function (1 for k = 0)."""

    def threshold(k: int) -> noise.Enclosure:
        return partial(exactly, Fraction(1)) if k == 0 else partial(noise.folded_enclosure, k, scale)

    return threshold


def geometric_threshold(scale: Fraction) -> Callable[[int], noise.Enclosure]:
    """``P(G >= k) = exp(-k/s)`` of the geometric as an enclosure function."""

    def threshold(k: int) -> noise.Enclosure:
        return noise._exp_neg(k / scale)

    return threshold


def no_offset(scale: Fraction) -> float:
    """The geometric's inversion has no offset: ``G = floor(s·(0 - ln U))``."""
    return 0.0


SlowSearch = Callable[[LazyUniform, Fraction, int | None], int]
SLOW_SEARCHES: dict[
    str, tuple[SlowSearch, Callable[[Fraction], Callable[[int], noise.Enclosure]], Callable[[Fraction], float]]
] = {
    "geometric": (noise._geometric_slow, geometric_threshold, no_offset),
    "folded": (noise._folded_slow, folded_threshold, noise._folded_offset),
}


@pytest.mark.parametrize("kind", sorted(SLOW_SEARCHES))
@pytest.mark.parametrize("scale", [Fraction(1, 3), Fraction(37, 10), Fraction(1000)], ids=str)
@pytest.mark.parametrize("guess_offset", [-3, 0, 5, None])
def test_slow_search_finds_the_exact_bucket_from_any_guess(
    kind: str, scale: Fraction, guess_offset: int | None, rng: SecureRandom
) -> None:
    search, threshold_of, offset_of = SLOW_SEARCHES[kind]
    threshold = threshold_of(scale)
    for _ in range(10):
        u = LazyUniform(int(rng.uniform53(1)[0]), 53, rng)
        estimate = max(0, math.floor(float(scale) * (offset_of(scale) - u.log_estimate())))
        guess = None if guess_offset is None else estimate + guess_offset

        k = search(u, scale, guess)

        # T(k+1) <= U < T(k) on the refined uniform, against enclosures at a wider precision.
        u_lo, u_hi = Fraction(u.numer, 2**u.bits), Fraction(u.numer + 1, 2**u.bits)
        assert k >= 0
        assert u_hi <= threshold(k)(60)[1] and u_lo >= threshold(k + 1)(60)[0]
        assert u.less_than(threshold(k)) and not u.less_than(threshold(k + 1))


def test_folded_enclosure_contains_the_tail_probability() -> None:
    scale, k = Fraction(37, 10), 4
    context = decimal.Context(prec=300)
    q = context.exp(context.minus(context.divide(10, 37)))
    reference = Fraction(context.divide(context.multiply(2, context.power(q, k)), context.add(1, q)))

    lo, hi = noise.folded_enclosure(k, scale, 40)

    assert lo < reference < hi and (hi - lo) / reference < Fraction(1, 10**37)


@pytest.mark.parametrize("scale", [Fraction(1, 7), Fraction(1), Fraction(37, 10), Fraction(2**20)], ids=str)
def test_folded_offset_is_accurate_even_when_it_is_tiny(scale: Fraction) -> None:
    # c = ln(2/(1+q)) is about 1/(2s) for wide scales; naive float evaluation loses ~s ulp to cancellation.
    context = decimal.Context(prec=60)
    q = context.exp(context.minus(context.divide(scale.denominator, scale.numerator)))
    reference = context.ln(context.divide(2, context.add(1, q)))

    offset = noise._folded_offset(scale)

    assert abs(float((decimal.Decimal(offset) - reference) / reference)) < 1e-15


class ZeroFirst(SecureRandom):
    """A source whose first ``uint64`` call returns only zeros: every U there starts in [0, 2**-53)."""

    def __init__(self) -> None:
        super().__init__()
        self.first = True

    def uint64(self, n: int) -> NDArray[np.uint64]:
        if self.first:
            self.first = False
            return np.zeros(n, dtype=np.uint64)
        return super().uint64(n)


def test_geometric_with_zero_prefix_lands_in_the_exact_far_tail() -> None:
    draws = noise._geometric_inversion(50, Fraction(3, 2), ZeroFirst())

    # U < 2**-53 means G = floor(-s ln U) >= floor(s · 53 ln 2), the geometric's far tail.
    assert (draws >= math.floor(1.5 * 53 * math.log(2))).all()
    assert (draws < 200).all()


def test_laplace_with_zero_prefix_lands_in_the_exact_far_tail() -> None:
    draws = noise._laplace_inversion(50, Fraction(3, 2), ZeroFirst())

    # Zero words: U < 2**-53 and sign bit 0, so X = floor(s·(c - ln U)) >= floor(s · 53 ln 2) > 0.
    assert (draws >= math.floor(1.5 * 53 * math.log(2))).all()
    assert (draws < 200).all()


def test_draws_are_uncorrelated_within_and_across_calls(rng: SecureRandom) -> None:
    first = discrete_laplace(10, N_FAST, rng).astype(np.float64)
    second = discrete_gaussian(100, N_FAST, rng).astype(np.float64)
    bound = SIGMAS / math.sqrt(N_FAST)

    assert abs(np.corrcoef(first[:-1], first[1:])[0, 1]) < bound
    assert abs(np.corrcoef(first, second)[0, 1]) < bound


# ---------------------------------------------------------------------------------------------------------
# Shapes, parameters and helpers


@pytest.mark.parametrize("size", [0, 1, 7, (), (2, 3), (0, 4)])
def test_output_shape_and_dtype(size: int | tuple[int, ...]) -> None:
    shape = size if isinstance(size, tuple) else (size,)

    for sample in (discrete_laplace(2, size), discrete_gaussian(2, size)):
        assert sample.shape == shape and sample.dtype == np.int64


@pytest.mark.parametrize("value", [0.1, 3, Fraction(7, 3), decimal.Decimal("2.5"), np.float64(1.5), np.int64(4)])
def test_parameters_convert_exactly(value: noise.Number) -> None:
    exact = noise._exact_positive("scale", value)

    assert exact == Fraction(value)
    assert discrete_laplace(value, 3).shape == (3,)


BAD_NUMBERS = [0, -1, Fraction(-1, 2), 0.0, float("nan"), float("inf"), -float("inf"), "1", None, True]


@pytest.mark.parametrize("value", BAD_NUMBERS, ids=repr)
def test_bad_laplace_scale_is_refused(value: object) -> None:
    with pytest.raises(ConfigurationError) as caught:
        discrete_laplace(value, 3)  # type: ignore[arg-type]

    assert caught.value.setting == "scale"


@pytest.mark.parametrize("value", BAD_NUMBERS, ids=repr)
def test_bad_gaussian_sigma_sq_is_refused(value: object) -> None:
    with pytest.raises(ConfigurationError) as caught:
        discrete_gaussian(value, 3)  # type: ignore[arg-type]

    assert caught.value.setting == "sigma_sq"


def test_scales_that_could_overflow_int64_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="overflow") as laplace:
        discrete_laplace(noise.MAX_LAPLACE_SCALE + 1, 3)
    with pytest.raises(ConfigurationError, match="overflow") as gaussian:
        discrete_gaussian(noise.MAX_SIGMA_SQ * 2, 3)

    assert laplace.value.setting == "scale" and gaussian.value.setting == "sigma_sq"


@pytest.mark.parametrize("size", [-1, 2.5, (2, -1), "3", (2, None), True])
def test_bad_size_is_refused(size: object) -> None:
    with pytest.raises(ConfigurationError) as caught:
        discrete_laplace(1, size)  # type: ignore[arg-type]

    assert caught.value.setting == "size"


def test_pmfs_sum_to_one() -> None:
    k = np.arange(-20_000, 20_001)

    assert math.isclose(float(laplace_pmf(k, Fraction(37, 10)).sum()), 1.0, rel_tol=1e-12)
    assert math.isclose(float(gaussian_pmf(k, Fraction(1, 4)).sum()), 1.0, rel_tol=1e-12)
    assert math.isclose(float(gaussian_pmf(k, 10**6).sum()), 1.0, rel_tol=1e-12)
    assert math.isclose(float(gaussian_pmf(k, 10**7).sum()), 1.0, rel_tol=1e-9)  # Z = sqrt(2πσ²) branch


def test_quantize_rounds_to_nearest_ties_to_even() -> None:
    ints, resolution = quantize([0.5, 1.5, 2.5, -0.5, 0.26, -0.74], Fraction(1, 2))

    assert resolution == Fraction(1, 2)
    assert ints.dtype == np.int64
    assert ints.tolist() == [1, 3, 5, -1, 1, -1]


def test_quantize_keeps_shape_and_handles_non_unit_numerators() -> None:
    ints, resolution = quantize(np.array([[10.0, -7.4], [0.0, 2.6]]), Fraction(5, 2))

    assert resolution == Fraction(5, 2)
    assert ints.tolist() == [[4, -3], [0, 1]]


@pytest.mark.parametrize(
    ("values", "resolution", "setting"),
    [
        ([1.0, float("nan")], Fraction(1), "values"),
        ([float("inf")], Fraction(1), "values"),
        ([1.0], 0, "resolution"),
        ([1.0], -0.5, "resolution"),
        ([1e300], Fraction(1, 1000), "resolution"),
    ],
)
def test_quantize_refuses_bad_input(values: list[float], resolution: noise.Number, setting: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        quantize(values, resolution)

    assert caught.value.setting == setting
