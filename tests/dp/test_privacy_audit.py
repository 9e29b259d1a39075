"""Black-box privacy audit: run each release mechanism many times on two neighbouring datasets (one patient
added, contributing as much as the bound allows) and check that the empirical ε lower bound, from
Clopper-Pearson intervals on threshold events, stays below the claimed ε. A mechanism with a deliberately
understated sensitivity must fail the same audit, which shows the audit has the power to catch a bug.

The exact statistics and the mechanisms come from the release's own code path (bounding, statistics,
:func:`mechanisms_for`); only the noise draws are batched: one call draws N independent releases.
"""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from scipy.stats import beta

from privacy_core.dp.accounting import zcdp_to_approx_dp
from privacy_core.dp.mechanisms import Mechanism
from privacy_core.dp.queries import Statistic, dicom_statistics
from privacy_core.dp.release import mechanisms_for
from privacy_core.dp.spec import ReleaseSpec, parse_spec
from privacy_core.dp.tables import Row, bound_contributions

TRIALS = 2_000_000
K = 3


def _spec(accounting: str, loss: float, query: dict[str, Any]) -> ReleaseSpec:
    unit = "epsilon" if accounting == "pure-dp" else "rho"
    return parse_spec(
        {
            "dataset": "audit",
            "accounting": accounting,
            "budget": {unit: loss},
            "privacy_unit": {"max_records_per_patient": K},
            "sources": {"dicom": "/unused"},
            "queries": [{"name": "q", **query}],
        }
    )


def _neighbours() -> tuple[list[Row], list[Row]]:
    """D: ten patients; D': D plus one patient with more rows than the bound, all at the clipping bound."""
    modalities = ["CT", "MR"]
    base = [
        Row(f"P{p:02d}", f"1.{p}.{i}", {"Modality": modalities[(p + i) % 2], "SliceThickness": 1.0 + (p % 4)})
        for p in range(10)
        for i in range(1 + p % 4)
    ]
    added = [Row("PNEW", f"9.{i}", {"Modality": "CT", "SliceThickness": 50.0}) for i in range(K + 2)]
    return base, base + added


def _releases(
    spec: ReleaseSpec, rows: list[Row], scale_sensitivity: Fraction = Fraction(1)
) -> list[np.ndarray[Any, Any]]:
    """TRIALS independent noisy releases of each statistic of the spec's one query, on ``rows``."""
    query = spec.queries[0]
    statistics = dicom_statistics(query, bound_contributions(rows, K), K)
    mechanisms = mechanisms_for(spec, query, statistics)
    out = []
    for statistic, mechanism in zip(statistics, mechanisms, strict=True):
        if scale_sensitivity != 1:
            mechanism = replace(mechanism, sensitivity=mechanism.sensitivity * scale_sensitivity)
        batch = np.broadcast_to(statistic.values, (TRIALS, *statistic.values.shape))
        out.append(mechanism.add_noise(np.ascontiguousarray(batch)))
    return out


def _epsilon_lower_bound(
    on_d: np.ndarray[Any, Any], on_d2: np.ndarray[Any, Any], delta: float = 0.0, alpha: float = 1e-4
) -> float:
    """Largest ε any threshold event proves at confidence 1 - alpha (Bonferroni over events, both directions).

    alpha = 1e-4 keeps a false alarm on a correct mechanism below one CI run in ten thousand.
    """
    low, high = np.percentile(np.concatenate([on_d, on_d2]), [5, 95])
    thresholds = np.unique(np.linspace(low, high, 12).round())
    tests = 2 * len(thresholds)
    best = 0.0
    for t in thresholds:
        for first, second in ((on_d2, on_d), (on_d, on_d2)):
            for events in ((first >= t, second >= t), (first < t, second < t)):
                hits_1, hits_2 = int(events[0].sum()), int(events[1].sum())
                lower_1 = beta.ppf(alpha / (2 * tests), hits_1, TRIALS - hits_1 + 1) if hits_1 else 0.0
                upper_2 = beta.ppf(1 - alpha / (2 * tests), hits_2 + 1, TRIALS - hits_2) if hits_2 < TRIALS else 1.0
                if lower_1 - delta > 0 and upper_2 > 0:
                    best = max(best, math.log((lower_1 - delta) / upper_2))
    return best


def _audit(spec: ReleaseSpec, part: int, cell: int, scale: Fraction = Fraction(1)) -> float:
    base, neighbour = _neighbours()
    on_d = _releases(spec, base, scale)[part][:, cell]
    on_d2 = _releases(spec, neighbour, scale)[part][:, cell]
    delta = spec.delta or 0.0
    return _epsilon_lower_bound(on_d, on_d2, delta)


def _claimed(spec: ReleaseSpec, part_loss: Fraction) -> float:
    if spec.accounting == "pure-dp":
        return float(part_loss)
    return zcdp_to_approx_dp(part_loss, spec.delta or 1e-6)


PARTITIONED_COUNT = {"kind": "count", "partition_by": "Modality", "partitions": ["CT", "MR"]}
MEAN = {"kind": "mean", "field": "SliceThickness", "bounds": [0, 10], "resolution": 0.5}
HISTOGRAM = {"kind": "histogram", "field": "SliceThickness", "bins": [0, 2, 4, 100]}


@pytest.mark.parametrize(
    ("accounting", "loss", "query", "part", "cell"),
    [
        ("pure-dp", 1.0, PARTITIONED_COUNT, 0, 0),  # parallel composition: CT and MR together cost one ε
        ("pure-dp", 2.0, MEAN, 0, 0),  # the sum half of a mean, at the clipping bound
        ("pure-dp", 1.0, HISTOGRAM, 0, 2),  # the top bin, where the new patient's clipped values land
        ("zcdp", 0.5, PARTITIONED_COUNT, 0, 0),
        ("zcdp", 0.5, HISTOGRAM, 0, 2),
    ],
)
def test_empirical_epsilon_stays_below_the_claim(
    accounting: str, loss: float, query: dict[str, Any], part: int, cell: int
) -> None:
    spec = _spec(accounting, loss, query)
    if accounting == "zcdp":
        spec = replace(spec, delta=1e-3)
    share = spec.loss_of(spec.queries[0]) / (2 if query["kind"] == "mean" else 1)
    claimed = _claimed(spec, share)
    measured = _audit(spec, part, cell)
    assert measured <= claimed, f"empirical epsilon {measured:.3f} exceeds the claimed {claimed:.3f}"
    if accounting == "pure-dp":
        assert measured >= 0.5 * claimed, f"audit too weak to mean anything: {measured:.3f} vs {claimed:.3f}"


def test_audit_catches_a_mechanism_whose_sensitivity_is_understated() -> None:
    """Noise calibrated to a quarter of the true sensitivity really leaks ~4ε; the audit must see it."""
    spec = _spec("pure-dp", 0.5, PARTITIONED_COUNT)
    measured = _audit(spec, 0, 0, scale=Fraction(1, 4))
    assert measured > 0.5, f"the audit missed a 4x privacy bug (measured {measured:.3f} for claimed 0.5)"


def test_statistic_sensitivity_matches_the_worst_neighbour() -> None:
    """The largest change one patient makes (measured on D, D') equals the stated L1 sensitivity."""
    spec = _spec("pure-dp", 1.0, PARTITIONED_COUNT)
    base, neighbour = _neighbours()
    query = spec.queries[0]
    before: Statistic = dicom_statistics(query, bound_contributions(base, K), K)[0]
    after: Statistic = dicom_statistics(query, bound_contributions(neighbour, K), K)[0]
    assert int(np.abs(after.values - before.values).sum()) == before.l1 == K
    assert isinstance(mechanisms_for(spec, query, [before])[0], Mechanism)
