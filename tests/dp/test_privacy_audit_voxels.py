"""Black-box audit of the voxel queries: the per-voxel sum of Zarr series arrays, released many times on two
neighbouring stores (one patient added with as many arrays as the bound allows, every voxel at the clipping
bound), must not show more privacy loss than claimed. The test statistic is the sum over voxels of the
noisy image, the direction in which the added patient moves it; it catches noise calibrated to less than
the L2 (zCDP) or L1 (pure DP) sensitivity of the whole image."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest

from privacy_core.dp.accounting import zcdp_to_approx_dp
from privacy_core.dp.queries import zarr_statistics
from privacy_core.dp.release import mechanisms_for
from privacy_core.dp.spec import ReleaseSpec, parse_spec
from privacy_core.dp.tables import bound_contributions, zarr_rows
from privacy_core.imaging.zarr_store import write_array
from tests.dp.test_privacy_audit import _epsilon_lower_bound

SHAPE = (1, 4, 4)
K = 2
TRIALS = 1_000_000
GEOMETRY = {
    "spacing": [1.0, 1.0, 1.0],
    "origin": [0.0, 0.0, 0.0],
    "direction": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
    "partial": False,
    "uniform_spacing": True,
}


def _write(store: Path, patient: str, index: int, values: np.ndarray[Any, Any]) -> None:
    source = {
        "series_uid": f"2.25.{1000 + index}",
        "study_uid": f"2.25.{5000 + index}",
        "modality": "CT",
        "patient": patient,
        "geometry": GEOMETRY,
        "bits_stored": 12,
        "rescaled": False,
        "stored_dtype": "int16",
    }
    image = da.from_array(values.astype(np.int16))  # type: ignore[no-untyped-call]
    write_array(image, str(store), source, derived={"method": "test"})


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """D: five patients with one or two arrays of mixed values; D': D plus PNEW with three arrays at 100."""
    root = tmp_path_factory.mktemp("voxels")
    rng = np.random.default_rng(7)
    base = [(f"PAT000000000000{p}", rng.integers(0, 100, SHAPE)) for p in range(5) for _ in range(1 + p % 2)]
    with dask.config.set(scheduler="synchronous"):
        for name, extra in (("d", []), ("d2", [("PAT00000000000NW", np.full(SHAPE, 150))] * (K + 1))):
            for index, (patient, values) in enumerate(base + extra):
                _write(root / name, patient, index, values)
    return str(root / "d"), str(root / "d2")


def _spec(accounting: str, loss: float) -> ReleaseSpec:
    unit = "epsilon" if accounting == "pure-dp" else "rho"
    return parse_spec(
        {
            "dataset": "audit",
            "accounting": accounting,
            "budget": {unit: loss},
            "privacy_unit": {"max_records_per_patient": K},
            "sources": {"zarr": "/unused"},
            "queries": [{"name": "image", "kind": "voxel_sum", "shape": list(SHAPE), "bounds": [0, 100]}],
        }
    )


def _projected_releases(spec: ReleaseSpec, store: str, scale: Fraction) -> np.ndarray[Any, Any]:
    query = spec.queries[0]
    with dask.config.set(scheduler="synchronous"):
        rows = bound_contributions(zarr_rows(store), K)
        (statistic,) = zarr_statistics(query, rows, K)
    (mechanism,) = mechanisms_for(spec, query, [statistic])
    mechanism = replace(mechanism, sensitivity=mechanism.sensitivity * scale)
    batch = np.ascontiguousarray(np.broadcast_to(statistic.values.ravel(), (TRIALS, statistic.values.size)))
    noisy: np.ndarray[Any, Any] = mechanism.add_noise(batch).sum(axis=1)
    return noisy


@pytest.mark.parametrize(("accounting", "loss"), [("pure-dp", 1.0), ("zcdp", 0.5)])
def test_voxel_sum_stays_within_its_claim(stores: tuple[str, str], accounting: str, loss: float) -> None:
    spec = _spec(accounting, loss)
    delta = 1e-3 if accounting == "zcdp" else 0.0
    claimed = loss if accounting == "pure-dp" else zcdp_to_approx_dp(Fraction(loss), delta)
    on_d = _projected_releases(spec, stores[0], Fraction(1))
    on_d2 = _projected_releases(spec, stores[1], Fraction(1))
    measured = _epsilon_lower_bound(on_d, on_d2, delta)
    assert measured <= claimed, f"empirical epsilon {measured:.3f} exceeds the claimed {claimed:.3f}"


def test_noise_calibrated_per_voxel_instead_of_per_image_is_caught(stores: tuple[str, str]) -> None:
    """Calibrating to one voxel's L2 sensitivity (k·b) instead of the image's (k·√P·b) under-noises by √P = 4:
    the audit must measure more loss than the claim."""
    spec = _spec("zcdp", 0.5)
    voxels = int(np.prod(SHAPE))
    claimed = zcdp_to_approx_dp(Fraction(1, 2), 1e-3)
    on_d = _projected_releases(spec, stores[0], Fraction(1, voxels))
    on_d2 = _projected_releases(spec, stores[1], Fraction(1, voxels))
    assert _epsilon_lower_bound(on_d, on_d2, 1e-3) > claimed
