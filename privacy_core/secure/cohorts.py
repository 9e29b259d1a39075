"""Synthetic multi-site cohorts for the cross-site example and its tests: each hospital's own statistic.

Each site has its own patients (a patient is at one site). A site's statistic is one integer vector: the
number of its patients per age band, then per modality of their study. Every patient adds 1 to one age band
and 1 to one modality, so one patient changes the summed vector by at most 2 in squared L2 norm: that is
the ``l2_sensitivity_sq`` of the round.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from privacy_core.storage import atomic_write_bytes

#: Age bands (years) and modalities of the statistic, in vector order.
AGE_EDGES = (0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 120)
MODALITIES = ("CT", "MR", "US", "CR")
#: Squared L2 change of the vector from one patient: one age band and one modality, each by 1.
L2_SENSITIVITY_SQ = 2


@dataclass(frozen=True)
class SiteStatistic:
    """One site's vector file and the labels of its cells."""

    site_id: str
    path: str
    patients: int


def labels() -> list[str]:
    """The public name of each cell of the vector.

    >>> labels()[0], labels()[-1], len(labels())
    ('age [0, 10)', 'modality CR', 14)
    """
    bands = [f"age [{a}, {b})" for a, b in itertools.pairwise(AGE_EDGES)]
    return bands + [f"modality {m}" for m in MODALITIES]


def site_vector(patients: int, seed: int) -> NDArray[np.int64]:
    """The statistic of ``patients`` synthetic patients (ages skewed old, modalities CT-heavy)."""
    rng = np.random.default_rng(seed)
    ages = np.clip(rng.normal(58, 18, patients), 0, 119)
    modalities = rng.choice(len(MODALITIES), size=patients, p=[0.45, 0.3, 0.15, 0.1])
    age_counts = np.histogram(ages, bins=AGE_EDGES)[0]
    modality_counts = np.bincount(modalities, minlength=len(MODALITIES))
    return np.concatenate([age_counts, modality_counts]).astype(np.int64)


def make_site_statistics(
    root: str | Path, sites: Sequence[str], patients: Sequence[int], seed: int = 0
) -> list[SiteStatistic]:
    """Write ``<root>/<site>/statistic.npy`` for each site; each is that hospital's private input."""
    if len(sites) != len(patients):
        raise ValueError("give one patient count per site")
    written = []
    for index, (site, count) in enumerate(zip(sites, patients, strict=True)):
        path = Path(root) / site / "statistic.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, site_vector(count, seed * 1000 + index), allow_pickle=False)
        atomic_write_bytes(path, buffer.getvalue())
        written.append(SiteStatistic(site, str(path), count))
    return written
