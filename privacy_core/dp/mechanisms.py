"""The two noise mechanisms of a release, each stating its loss before it runs.

A mechanism is built from the privacy loss it may spend and the sensitivity of the integer statistic it
protects, both exact rationals, so its noise parameter is exact too: the discrete Laplace scale ``Δ₁/ε`` for
pure ε-DP, and the discrete Gaussian variance ``Δ₂²/(2ρ)`` for ρ-zCDP (Canonne, Kamath, Steinke 2020). The
Gaussian takes the *squared* L2 sensitivity, which stays rational for a vector of ``P`` cells (``k²·P·b²``),
so its noise grows with ``√P`` where per-cell ε splitting would grow with ``P``.

Noise is added once, to the finished reduction, on the driver: how the reduction was split across chunks
and workers changes nothing about privacy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

from privacy_core.dp.accounting import Accounting
from privacy_core.errors import ConfigurationError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from privacy_core.dp.random import SecureRandom

MechanismName = Literal["discrete-laplace", "discrete-gaussian"]


def as_fraction(value: float | int | str | Fraction, setting: str) -> Fraction:
    """``value`` as an exact positive rational (floats convert exactly, strings like ``"1/3"`` parse).

    >>> as_fraction(0.5, "epsilon"), as_fraction("1/3", "rho")
    (Fraction(1, 2), Fraction(1, 3))
    """
    if isinstance(value, bool):
        raise ConfigurationError(setting, f"{value!r} is not a number", f"give {setting} as a positive number")
    try:
        exact = Fraction(value)
    except (TypeError, ValueError, OverflowError, ZeroDivisionError):
        raise ConfigurationError(
            setting, f"{value!r} is not a finite number", f"give {setting} as a positive number"
        ) from None
    if exact <= 0:
        raise ConfigurationError(setting, f"is {value}, not above zero", f"give {setting} a value above zero")
    return exact


@dataclass(frozen=True)
class Mechanism:
    """Additive integer noise for one statistic with a declared loss.

    :param accounting: ``pure-dp`` (discrete Laplace, loss ε) or ``zcdp`` (discrete Gaussian, loss ρ).
    :param loss: ε or ρ this statistic spends.
    :param sensitivity: L1 sensitivity for ``pure-dp``; the *squared* L2 sensitivity for ``zcdp``, in
        quantized units, for one privacy unit (a patient with all the records it may contribute).
    """

    accounting: Accounting
    loss: Fraction
    sensitivity: Fraction

    def __post_init__(self) -> None:
        if self.accounting not in ("pure-dp", "zcdp"):
            raise ConfigurationError("accounting", f"{self.accounting!r} is unknown", "use pure-dp or zcdp")
        if self.loss <= 0:
            raise ConfigurationError("loss", f"is {self.loss}, not above zero", "give each statistic a positive share")
        if self.sensitivity <= 0:
            raise ConfigurationError("sensitivity", f"is {self.sensitivity}", "bounds must leave a positive range")

    @property
    def name(self) -> MechanismName:
        """The noise distribution."""
        return "discrete-laplace" if self.accounting == "pure-dp" else "discrete-gaussian"

    @property
    def noise_parameter(self) -> Fraction:
        """Exact discrete Laplace scale ``Δ₁/ε``, or discrete Gaussian variance parameter ``Δ₂²/(2ρ)``.

        >>> Mechanism("pure-dp", Fraction(1, 2), Fraction(3)).noise_parameter
        Fraction(6, 1)
        >>> Mechanism("zcdp", Fraction(1, 8), Fraction(4)).noise_parameter
        Fraction(16, 1)
        """
        if self.accounting == "pure-dp":
            return self.sensitivity / self.loss
        return self.sensitivity / (2 * self.loss)

    @property
    def noise_std(self) -> float:
        """Standard deviation of the noise in quantized units (for error bars; the Gaussian's is ≤ σ).

        >>> round(Mechanism("pure-dp", Fraction(1), Fraction(1)).noise_std, 4)
        1.357
        """
        if self.accounting == "zcdp":
            return math.sqrt(self.noise_parameter)
        q = math.exp(-1 / float(self.noise_parameter))
        return math.sqrt(2 * q) / (1 - q)

    def interval(self, confidence: float = 0.95) -> float:
        """Half-width ``w`` in quantized units with P(|noise| ≤ w) ≥ ``confidence``, from the exact distribution.

        >>> Mechanism("pure-dp", Fraction(1), Fraction(1)).interval(0.95)
        3.0
        """
        if not 0 < confidence < 1:
            raise ConfigurationError("confidence", f"is {confidence}", "give a probability between 0 and 1")
        if self.accounting == "pure-dp":
            # P(|X| > w) = 2 q^(w+1) / (1 + q) for the discrete Laplace with q = exp(-1/t).
            t = float(self.noise_parameter)
            q = math.exp(-1 / t)
            tail = (1 - confidence) * (1 + q) / 2
            return float(max(0, math.ceil(t * math.log(1 / tail) - 1)))
        # The discrete Gaussian is sub-Gaussian with variance proxy σ²: P(|X| > w) ≤ 2 exp(-w²/(2σ²)).
        sigma = math.sqrt(float(self.noise_parameter))
        return float(math.ceil(sigma * math.sqrt(2 * math.log(2 / (1 - confidence)))))

    def describe(self) -> dict[str, Any]:
        """What a reader needs to interpret the noise, as JSON (exact values as ``"num/den"`` strings too)."""
        parameter = "scale" if self.accounting == "pure-dp" else "sigma_squared"
        described: dict[str, Any] = {
            "mechanism": self.name,
            "accounting": self.accounting,
            "epsilon" if self.accounting == "pure-dp" else "rho": float(self.loss),
            "loss_exact": str(self.loss),
            "l1_sensitivity" if self.accounting == "pure-dp" else "l2_sensitivity": (
                float(self.sensitivity) if self.accounting == "pure-dp" else math.sqrt(self.sensitivity)
            ),
            parameter: float(self.noise_parameter),
            f"{parameter}_exact": str(self.noise_parameter),
            "noise_std": self.noise_std,
        }
        return described

    def add_noise(self, values: NDArray[np.int64], rng: SecureRandom | None = None) -> NDArray[np.int64]:
        """``values`` plus fresh exact noise, one independent draw per cell; the input is not changed."""
        import numpy as np

        from privacy_core.dp.noise import discrete_gaussian, discrete_laplace

        exact = np.asarray(values, dtype=np.int64)
        if self.accounting == "pure-dp":
            noise = discrete_laplace(self.noise_parameter, exact.shape, rng)
        else:
            noise = discrete_gaussian(self.noise_parameter, exact.shape, rng)
        noisy: NDArray[np.int64] = exact + noise.reshape(exact.shape)
        return noisy
