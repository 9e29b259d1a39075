"""Exact statistics and their sensitivities, checked against plain Python on hand-built rows."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from privacy_core.dp.queries import dicom_statistics, quantized_bound
from privacy_core.dp.spec import Query
from privacy_core.dp.tables import Row, bound_contributions

ROWS = [
    Row("P1", "1.1", {"Modality": "CT", "SliceThickness": 1.25}),
    Row("P1", "1.2", {"Modality": "CT", "SliceThickness": 99.0}),  # clipped to the bound
    Row("P1", "1.3", {"Modality": "MR", "SliceThickness": 3.0}),
    Row("P2", "2.1", {"Modality": "MR", "SliceThickness": None}),
    Row("P2", "2.2", {"Modality": "US", "SliceThickness": 2.0}),  # not a declared partition
    Row("", "3.1", {"Modality": "CT", "SliceThickness": 1.0}),  # no patient: never counted
]


def test_bounding_keeps_at_most_k_rows_per_patient_and_drops_unknown_patients() -> None:
    for k in (1, 2, 3):
        kept = bound_contributions(ROWS, k)
        per_patient = {p: sum(r.patient == p for r in kept) for p in ("P1", "P2")}
        assert per_patient == {"P1": min(k, 3), "P2": min(k, 2)}
        assert all(r.patient for r in kept)
    # the choice depends only on the patient's own rows
    alone = bound_contributions([r for r in ROWS if r.patient == "P1"], 2)
    assert {r.key for r in alone} == {r.key for r in bound_contributions(ROWS, 2) if r.patient == "P1"}


def test_partitioned_count_has_the_sensitivity_of_one_partition() -> None:
    query = Query("n", "count", "series", Fraction(1), partition_by="Modality", partitions=("CT", "MR"))
    rows = bound_contributions(ROWS, 3)
    (stat,) = dicom_statistics(query, rows, 3)
    expected = [sum(1 for r in rows if r.values["Modality"] == m) for m in ("CT", "MR")]
    assert stat.values.tolist() == expected
    assert stat.labels == ("CT", "MR")
    assert (stat.l1, stat.l2_squared) == (Fraction(3), Fraction(9))  # k, k^2: the same as a single count


def test_sum_and_mean_clip_quantize_and_scale_sensitivity_by_the_bound() -> None:
    query = Query(
        "t", "mean", "series", Fraction(1), field="SliceThickness", bounds=(0.0, 10.0), resolution=Fraction(1, 100)
    )
    rows = bound_contributions(ROWS, 3)
    total, count = dicom_statistics(query, rows, 3)
    values = [min(max(v, 0.0), 10.0) for r in rows if (v := r.values["SliceThickness"]) is not None]
    assert total.values.tolist() == [round(sum(round(v * 100) for v in values))]
    assert count.values.tolist() == [len(values)]
    assert total.resolution == Fraction(1, 100)
    assert total.l1 == 3 * 1000 and total.l2_squared == (3 * 1000) ** 2
    assert (count.l1, count.l2_squared) == (Fraction(3), Fraction(9))


def test_histogram_bins_values_and_clips_outliers_into_the_end_bins() -> None:
    query = Query("h", "histogram", "series", Fraction(1), field="SliceThickness", bins=(0.0, 2.0, 5.0))
    (stat,) = dicom_statistics(query, bound_contributions(ROWS, 3), 3)
    # 1.25 -> [0,2); 99 -> clipped into [2,5); 3.0 -> [2,5); 2.0 -> [2,5); None -> nowhere
    assert stat.values.tolist() == [1, 3]
    assert stat.labels == ("[0, 2)", "[2, 5)")


def test_quantized_bounds_refuse_a_step_that_rounds_them_to_zero() -> None:
    with pytest.raises(ValueError, match="finer resolution"):
        quantized_bound((0.0, 0.4), Fraction(1))
    assert quantized_bound((-2.5, 1.0), Fraction(1, 2)) == (-5, 2, 5)


def test_statistic_values_are_int64() -> None:
    query = Query("n", "count", "series", Fraction(1))
    (stat,) = dicom_statistics(query, bound_contributions(ROWS, 2), 2)
    assert stat.values.dtype == np.int64
