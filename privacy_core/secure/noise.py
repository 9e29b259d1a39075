"""Distributed discrete Gaussian noise: how much each site adds, and what privacy the decrypted sum has.

Every site adds its own exact discrete Gaussian noise to its vector *before* encrypting it, so the first
thing anyone decrypts, the sum over sites, already carries enough noise. The noise is sized from the
honest sites alone: with at least ``min_sites`` uploads and up to ``C`` colluding sites (who know, and can
subtract, their own noise), at least ``k = min_sites - C`` independent shares remain. Each site therefore
draws ``N_Z(0, σ_site²)`` with ``σ_site² = σ²/k`` and ``σ² = Δ₂²/(2ρ)``, the variance one central discrete
Gaussian would need for ρ-zCDP.

A sum of discrete Gaussians is *not* a discrete Gaussian, so the release is accounted with the bound of
Kairouz, Liu and Steinke, "The Distributed Discrete Gaussian Mechanism for Federated Learning with Secure
Aggregation", ICML 2021 (arXiv:2102.06387), Proposition 14 (also behind their Theorem 1):

    Let σ ≥ 1/2 and let X_{i,j} ~ N_Z(0, σ²) be independent for i = 1..n and j = 1..d, and
    Z_j = Σ_i X_{i,j}. Then for every Δ ∈ Z^d and every α ≥ 1,

        D_α(Z + Δ ‖ Z) ≤ min{ α‖Δ‖₂²/(2nσ²) + τd,
                              (α/2)·(‖Δ‖₂²/(nσ²) + 2‖Δ‖₁τ/(√n σ) + τ²d),
                              (α/2)·(‖Δ‖₂/(√n σ) + τ√d)² },

        where τ := 10 · Σ_{k=1}^{n-1} exp(-2π²σ² · k/(k+1)).

Each term is at most ``α·ρ_i`` for α ≥ 1 (the first because ``τd ≤ ατd``), so the sum is ρ-zCDP with
``ρ = min(ρ_1, ρ_2, ρ_3)``: ``ρ_1 = Δ₂²/(2nσ²) + τd``, ``ρ_2 = ½(Δ₂²/(nσ²) + 2Δ₁τ/(√nσ) + τ²d)``,
``ρ_3 = ½(Δ₂/(√nσ) + τ√d)²``. For an integer vector ``‖Δ‖₁ ≤ min(√d·‖Δ‖₂, ‖Δ‖₂²)``. Adding further
independent noise is post-processing, so ``n`` honest sites are at least as private as any ``n' ≤ n`` of
them; :func:`distributed_rho` takes the best such ``n'``. For large σ, τ vanishes and ρ is the nominal
``Δ₂²/(2nσ²)``; for σ near 1/2 it is visibly larger, and the ledger is charged the larger value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from privacy_core.dp.accounting import zcdp_to_approx_dp
from privacy_core.dp.noise import MAX_SIGMA_SQ, discrete_gaussian
from privacy_core.errors import ConfigurationError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from privacy_core.dp.random import SecureRandom

__all__ = [
    "MECHANISM",
    "MIN_SIGMA_SQ",
    "NOISE_TAIL_PROBABILITY",
    "NoisePlan",
    "charged_rho",
    "distributed_rho",
    "draw_site_noise",
    "noise_tail_bound",
    "plan_noise",
    "tau",
]

#: The name results and lineage records give the mechanism.
MECHANISM = "distributed discrete Gaussian"
#: Proposition 14 holds for σ ≥ 1/2: smaller per-site noise has no accounting here, so it is refused.
MIN_SIGMA_SQ = Fraction(1, 4)
#: Probability, over the whole vector, that one site's noise leaves the slot's tail bound. The packing then
#: has room for it; a site whose noisy value still falls outside refuses to upload (it never clips).
NOISE_TAIL_PROBABILITY = 1e-40
#: Charged amounts above the exact nominal ρ are rounded up to this grid, so ledger entries stay short.
_CHARGE_GRID = 10**12
#: Relative safety margin on the float part of the bound (its rounding error is a few ulp, about 1e-15).
_FLOAT_MARGIN = 1e-9


def _positive_fraction(value: Fraction | int, setting: str) -> Fraction:
    exact = Fraction(value)
    if exact <= 0:
        raise ConfigurationError(setting, f"is {exact}, not above zero", f"give {setting} as a positive number")
    return exact


def _positive_int(value: int, setting: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(setting, f"is {value!r}, not a positive integer", f"give {setting} >= 1")
    return value


def tau(sigma_site_sq: Fraction | float, parties: int) -> float:
    """Kairouz-Liu-Steinke's ``τ = 10 Σ_{k=1}^{n-1} exp(-2π²σ²·k/(k+1))`` for ``n = parties``.

    >>> tau(1, 1)
    0.0
    >>> tau(Fraction(1, 4), 2) > tau(1, 2) > 0
    True
    """
    s = float(sigma_site_sq)
    return 10.0 * sum(math.exp(-2.0 * math.pi**2 * s * k / (k + 1)) for k in range(1, parties))


def _extra_over_nominal(l2_squared: Fraction, sigma_site_sq: Fraction, parties: int, dimension: int) -> float:
    """``min(ρ_1, ρ_2, ρ_3) - Δ₂²/(2nσ²)`` in float: what summing discrete Gaussians costs over one Gaussian."""
    t = tau(sigma_site_sq, parties)
    if t == 0.0:
        return 0.0
    l2 = math.sqrt(float(l2_squared))
    scale = math.sqrt(parties * float(sigma_site_sq))  # √n·σ
    l1 = min(math.sqrt(dimension) * l2, float(l2_squared))
    extra_1 = t * dimension
    extra_2 = l1 * t / scale + t * t * dimension / 2.0
    extra_3 = l2 * t * math.sqrt(dimension) / scale + t * t * dimension / 2.0
    return min(extra_1, extra_2, extra_3)


def _check(l2_squared: Fraction | int, sigma_site_sq: Fraction | int, honest_sites: int, dimension: int) -> None:
    _positive_fraction(l2_squared, "l2_squared")
    if Fraction(sigma_site_sq) < MIN_SIGMA_SQ:
        raise ConfigurationError(
            "sigma_site_sq",
            f"is {Fraction(sigma_site_sq)}, below 1/4 where the distributed discrete Gaussian bound holds",
            "lower rho, use fewer honest sites, or a finer resolution (a larger sensitivity in units)",
        )
    _positive_int(honest_sites, "honest_sites")
    _positive_int(dimension, "dimension")


def distributed_rho(
    l2_squared: Fraction | int, sigma_site_sq: Fraction | int, honest_sites: int, dimension: int
) -> float:
    """The ρ (zCDP) the sum of ``honest_sites`` sites' noise satisfies, by Proposition 14 (module docstring).

    :param l2_squared: squared L2 sensitivity of the summed integer vector for one privacy unit.
    :param sigma_site_sq: each site's discrete Gaussian variance parameter, at least 1/4.
    :param honest_sites: sites whose noise the adversary does not know.
    :param dimension: length of the vector.
    :returns: a ρ at least the nominal ``l2_squared / (2·honest_sites·sigma_site_sq)``.

    >>> distributed_rho(1, 100, 4, 10) == 1 / 800
    True
    >>> distributed_rho(1, Fraction(1, 4), 4, 10) > 1 / 2
    True
    """
    _check(l2_squared, sigma_site_sq, honest_sites, dimension)
    l2, s = Fraction(l2_squared), Fraction(sigma_site_sq)
    return min(float(l2 / (2 * n * s)) + _extra_over_nominal(l2, s, n, dimension) for n in range(1, honest_sites + 1))


def charged_rho(
    l2_squared: Fraction | int, sigma_site_sq: Fraction | int, honest_sites: int, dimension: int
) -> Fraction:
    """:func:`distributed_rho` as an exact Fraction rounded *up*: what the budget ledger is charged.

    The nominal part ``Δ₂²/(2nσ²)`` is exact; the float excess is inflated by a safety margin and rounded
    up to a multiple of 1e-12 (at least one unit whenever two or more sites sum, since τ > 0 then).

    >>> charged_rho(1, 100, 1, 10)
    Fraction(1, 200)
    >>> charged_rho(1, 100, 4, 10) - Fraction(1, 800)
    Fraction(1, 1000000000000)
    """
    _check(l2_squared, sigma_site_sq, honest_sites, dimension)
    l2, s = Fraction(l2_squared), Fraction(sigma_site_sq)
    best: Fraction | None = None
    for n in range(1, honest_sites + 1):
        amount = l2 / (2 * n * s)
        if n >= 2:
            extra = _extra_over_nominal(l2, s, n, dimension) * (1.0 + _FLOAT_MARGIN)
            amount += Fraction(max(1, math.ceil(extra * _CHARGE_GRID)), _CHARGE_GRID)
        best = amount if best is None else min(best, amount)
    assert best is not None
    return best


def noise_tail_bound(sigma_site_sq: Fraction | int, dimension: int) -> int:
    """A bound ``B`` with ``P(max_j |X_j| > B) < 1e-40`` for ``dimension`` draws of ``N_Z(0, σ²)``.

    The discrete Gaussian is sub-Gaussian with variance proxy σ² (Canonne, Kamath, Steinke 2020), so
    ``P(|X| > t) ≤ 2exp(-t²/(2σ²))``; with a union bound ``t = σ·sqrt(2 ln(2d/p))``, and at least ``14σ``.

    >>> noise_tail_bound(1, 1)
    15
    """
    _positive_int(dimension, "dimension")
    sigma = math.sqrt(float(_positive_fraction(sigma_site_sq, "sigma_site_sq")))
    z = max(14.0, math.sqrt(2.0 * math.log(2.0 * dimension / NOISE_TAIL_PROBABILITY)))
    return math.ceil(z * sigma) + 1


def draw_site_noise(sigma_site_sq: Fraction, size: int, rng: SecureRandom | None = None) -> NDArray[np.int64]:
    """One site's share of the noise: ``size`` exact ``N_Z(0, sigma_site_sq)`` draws (CKS 2020 sampler)."""
    return discrete_gaussian(sigma_site_sq, size, rng)


@dataclass(frozen=True)
class NoisePlan:
    """The noise of a round, fixed when the round opens: who adds what, and what it will cost.

    :param l2_squared: squared L2 sensitivity of the summed vector for one privacy unit, in quantized units
        (a patient is at one site, so this is one site's worst change).
    :param rho: the target zCDP loss the honest sites' noise alone must reach.
    :param min_sites: fewest uploads the coordinator will combine.
    :param collusion: sites that may pool what they know of their own noise.
    :param dimension: length of the vector.
    """

    l2_squared: Fraction
    rho: Fraction
    min_sites: int
    collusion: int
    dimension: int

    @property
    def honest_sites(self) -> int:
        """Sites whose noise is certainly unknown to the adversary in a round that combines ``min_sites``."""
        return self.min_sites - self.collusion

    @property
    def sigma_sq(self) -> Fraction:
        """The central discrete Gaussian variance ``Δ₂²/(2ρ)`` the honest sites' noise adds up to."""
        return self.l2_squared / (2 * self.rho)

    @property
    def sigma_site_sq(self) -> Fraction:
        """Each site's variance ``σ²/(min_sites - C)``."""
        return self.sigma_sq / self.honest_sites

    @property
    def tail_bound(self) -> int:
        """How far one site's noise may move a value, with probability at least ``1 - 1e-40``."""
        return noise_tail_bound(self.sigma_site_sq, self.dimension)

    def rho_for(self, accepted: int) -> Fraction:
        """The ρ charged when ``accepted`` uploads are combined (``accepted - C`` honest noise shares)."""
        if accepted < self.min_sites:
            raise ConfigurationError(
                "accepted", f"is {accepted}, below min_sites={self.min_sites}", "combine at least min_sites uploads"
            )
        return charged_rho(self.l2_squared, self.sigma_site_sq, accepted - self.collusion, self.dimension)

    @property
    def planned_rho(self) -> Fraction:
        """The worst-case charge, with exactly ``min_sites`` uploads: what the ledger must be able to pay."""
        return self.rho_for(self.min_sites)

    def describe(self, accepted: int | None = None, delta: float | None = None) -> dict[str, Any]:
        """The plan as JSON, exact values as ``"num/den"`` strings beside floats; with ``accepted``, the charge."""
        sites = self.min_sites if accepted is None else accepted
        rho = self.rho_for(sites)
        described: dict[str, Any] = {
            "mechanism": MECHANISM,
            "sigma_sq": float(self.sigma_sq),
            "sigma_sq_exact": str(self.sigma_sq),
            "sigma_site_sq": float(self.sigma_site_sq),
            "sigma_site_sq_exact": str(self.sigma_site_sq),
            "honest_sites": sites - self.collusion,
            "collusion_tolerance": self.collusion,
            "tail_bound": self.tail_bound,
            "rho": float(rho),
            "rho_exact": str(rho),
            "reference": "Kairouz, Liu, Steinke, ICML 2021, arXiv:2102.06387, Proposition 14",
        }
        if delta is not None:
            described["epsilon_delta"] = {"epsilon": zcdp_to_approx_dp(rho, delta), "delta": delta}
        return described


def plan_noise(
    l2_squared: Fraction | int, rho: Fraction | int, min_sites: int, collusion: int, dimension: int
) -> NoisePlan:
    """Check the round's privacy settings and return its :class:`NoisePlan`.

    :raises ConfigurationError: a setting out of range, naming it and the fix (e.g. ``collusion >= min_sites``
        leaves no honest noise; per-site noise below σ² = 1/4 has no accounting).

    >>> plan = plan_noise(1, Fraction(1, 2), min_sites=3, collusion=1, dimension=4)
    >>> plan.sigma_sq, plan.sigma_site_sq
    (Fraction(1, 1), Fraction(1, 2))
    """
    l2 = _positive_fraction(l2_squared, "l2_squared")
    loss = _positive_fraction(rho, "rho")
    _positive_int(min_sites, "min_sites")
    _positive_int(dimension, "dimension")
    if isinstance(collusion, bool) or not isinstance(collusion, int) or not 0 <= collusion < min_sites:
        raise ConfigurationError(
            "collusion",
            f"is {collusion!r} with min_sites={min_sites}; at least one honest site's noise must remain",
            f"give 0 <= collusion <= {min_sites - 1}, or raise min_sites",
        )
    plan = NoisePlan(l2, loss, min_sites, collusion, dimension)
    if plan.sigma_site_sq < MIN_SIGMA_SQ:
        raise ConfigurationError(
            "rho",
            f"rho={loss} gives each of {plan.honest_sites} honest sites σ_site² = {plan.sigma_site_sq}, below 1/4, "
            "where the distributed discrete Gaussian bound (Kairouz, Liu, Steinke 2021) does not hold",
            "lower rho, or quantize more finely (a smaller resolution makes the sensitivity larger in units)",
        )
    if plan.sigma_site_sq > MAX_SIGMA_SQ:
        raise ConfigurationError(
            "rho", f"is {loss}, so σ_site² = {float(plan.sigma_site_sq):.3g} is above 2**80", "raise rho"
        )
    return plan
