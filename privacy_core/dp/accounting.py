"""Privacy-loss accounting: pure ε-DP or ρ-zCDP, exact costs, and the (ε, δ) meaning of a zCDP total.

Costs are exact rationals (``fractions.Fraction``) so a sum of spends compares with a cap without rounding:
seven spends of ε = 1/7 fill a cap of 1 exactly. Only the conversion to (ε, δ) is a float, for reporting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Final, Literal, TypeGuard

from privacy_core.errors import ConfigurationError

#: ``pure-dp``: a cost is ε and costs add (basic composition). ``zcdp``: a cost is ρ and costs add.
Accounting = Literal["pure-dp", "zcdp"]
ACCOUNTINGS: Final[tuple[Accounting, ...]] = ("pure-dp", "zcdp")
#: The symbol of a cost in each accounting, for messages.
LOSS_NAME: Final[dict[Accounting, str]] = {"pure-dp": "epsilon", "zcdp": "rho"}


def is_accounting(value: object) -> TypeGuard[Accounting]:
    """Whether ``value`` names a known accounting.

    >>> is_accounting("zcdp"), is_accounting("renyi")
    (True, False)
    """
    return value in ACCOUNTINGS


def check_accounting(value: object) -> Accounting:
    """``value`` as an :data:`Accounting`, or ConfigurationError naming the setting ``accounting``."""
    if not is_accounting(value):
        raise ConfigurationError("accounting", f"{value!r} is unknown", f"use one of {', '.join(ACCOUNTINGS)}")
    return value


def zcdp_to_approx_dp(rho: Fraction | float, delta: float) -> float:
    """The ε for which ρ-zCDP implies (ε, δ)-DP: ε = ρ + 2·sqrt(ρ·ln(1/δ)) (Bun and Steinke 2016, Prop. 1.3).

    :param rho: the zCDP loss, at least 0.
    :param delta: the failure probability, strictly between 0 and 1.
    :raises ConfigurationError: for a negative ρ or a δ outside (0, 1).

    >>> round(zcdp_to_approx_dp(Fraction(1, 2), 1e-6), 4)
    5.7565
    >>> zcdp_to_approx_dp(0, 1e-6)
    0.0
    """
    if isinstance(rho, bool) or not math.isfinite(rho) or rho < 0:
        raise ConfigurationError("rho", f"is {rho!r}, not a finite number at least 0", "give rho >= 0")
    if isinstance(delta, bool) or not 0.0 < delta < 1.0:
        raise ConfigurationError("delta", f"is {delta!r}, not strictly between 0 and 1", "give e.g. delta=1e-6")
    r = float(rho)
    return r + 2.0 * math.sqrt(r * math.log(1.0 / delta))


@dataclass(frozen=True)
class Cost:
    """An exact privacy loss in one accounting; two costs add only in the same accounting.

    >>> Cost("pure-dp", Fraction(1, 3)) + Cost("pure-dp", Fraction(1, 6))
    Cost(accounting='pure-dp', amount=Fraction(1, 2))
    """

    accounting: Accounting
    amount: Fraction

    def __post_init__(self) -> None:
        check_accounting(self.accounting)
        if not isinstance(self.amount, Fraction):
            raise ConfigurationError(
                "amount",
                f"is {type(self.amount).__name__}, not Fraction",
                "give an exact Fraction, e.g. Fraction(1, 10)",
            )
        if self.amount < 0:
            raise ConfigurationError("amount", f"is {self.amount}, below zero", "give a loss of at least 0")

    def __add__(self, other: Cost) -> Cost:
        if not isinstance(other, Cost):
            return NotImplemented
        if other.accounting != self.accounting:
            raise ConfigurationError(
                "accounting",
                f"cannot add a {other.accounting} cost to a {self.accounting} cost",
                "convert both to one accounting first (pure ε-DP implies ε²/2-zCDP)",
            )
        return Cost(self.accounting, self.amount + other.amount)
