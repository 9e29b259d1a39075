"""The privacy loss a round records in its lineage, and the ledger check before a round opens or combines.

Shared by :mod:`.round` (refuses a round the budget cannot pay) and :mod:`.combine` (charges it).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from privacy_core.errors import ConfigurationError
from privacy_core.secure.noise import MECHANISM


def _dp_facet(
    dataset: str, rho: Fraction, delta: float, sigma_site_sq: Fraction, honest: int, collusion: int
) -> dict[str, Any]:
    from privacy_core.dp.accounting import zcdp_to_approx_dp

    return {
        "mechanism": MECHANISM,
        "accounting": "zcdp",
        "dataset": dataset,
        "rho": float(rho),
        "rho_exact": str(rho),
        "epsilon_delta": {"epsilon": zcdp_to_approx_dp(rho, delta), "delta": delta},
        "sigma_site_sq_exact": str(sigma_site_sq),
        "honest_sites": honest,
        "collusion_tolerance": collusion,
    }


def _check_budget(ledger_url: str, dataset: str, cost: Fraction, key: str) -> None:
    from privacy_core.dp.ledger import open_ledger

    with open_ledger(ledger_url) as book:
        _check_budget_open(book, dataset, cost, key)


def _check_budget_open(book: Any, dataset: str, cost: Fraction, key: str) -> None:
    status = book.status(dataset)
    if status.accounting != "zcdp":
        raise ConfigurationError(
            "dataset",
            f"{dataset!r} is accounted in {status.accounting}, but the distributed discrete Gaussian costs rho",
            "use a zcdp dataset (imaging-privacy budget init DATASET --accounting zcdp)",
        )
    book.check(dataset, cost, key)
