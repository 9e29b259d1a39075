"""Keyed pseudonyms: reproducible with the same secret, different with another, valid for their VR."""

from __future__ import annotations

import re

import pytest

from privacy_core.deid.pseudonym import MAX_SHIFT_WEEKS, Pseudonymizer, shift_date, shift_datetime
from privacy_core.keys import PseudonymKey

A = PseudonymKey.from_text("a" * 32)
B = PseudonymKey.from_text("b" * 32)


def test_uid_is_a_valid_2_25_uid_and_reproducible_across_instances() -> None:
    uid = Pseudonymizer(A).uid("1.2.840.113619.2.1.1")
    assert re.fullmatch(r"2\.25\.(0|[1-9][0-9]*)", uid)
    assert len(uid) <= 64
    assert Pseudonymizer(A).uid("1.2.840.113619.2.1.1") == uid  # a new process would agree
    assert Pseudonymizer(B).uid("1.2.840.113619.2.1.1") != uid


def test_uid_ignores_dicom_padding() -> None:
    p = Pseudonymizer(A)
    assert p.uid("1.2.3\x00") == p.uid("1.2.3")


def test_distinct_uids_stay_distinct() -> None:
    p = Pseudonymizer(A)
    uids = {p.uid(f"1.2.3.{i}") for i in range(5000)}
    assert len(uids) == 5000


@pytest.mark.parametrize(("kind", "limit"), [("patient", 64), ("accession", 16)])
def test_identifier_fits_vr(kind: str, limit: int) -> None:
    value = Pseudonymizer(A).identifier(kind, "MRN-0042")
    assert len(value) <= limit
    assert re.fullmatch(r"[A-Z0-9]+", value)
    assert "0042" not in value


def test_shift_is_whole_weeks_in_the_past_and_per_patient() -> None:
    p = Pseudonymizer(A)
    shifts = {p.shift_days(f"patient-{i}") for i in range(200)}
    assert all(s < 0 and s % 7 == 0 and s >= -7 * MAX_SHIFT_WEEKS for s in shifts)
    assert len(shifts) > 100  # spread, not one shift for everybody
    assert p.shift_days("patient-1") == Pseudonymizer(A).shift_days("patient-1")


@pytest.mark.parametrize(
    ("value", "days", "expected"),
    [
        ("20240301", -1, "20240229"),
        ("2024.03.01", -7, "20240223"),
        ("20000101", -365, "19990101"),
        ("2024031", -1, None),
        ("20241340", -1, None),
        ("", -1, None),
    ],
)
def test_shift_date(value: str, days: int, expected: str | None) -> None:
    assert shift_date(value, days) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20240301120000", "20240223120000"),
        ("20240301120000.123456+0100", "20240223120000.123456+0100"),
        ("202403", "202403"),
        ("2024", "2024"),
        ("abc", None),
    ],
)
def test_shift_datetime_keeps_time_and_precision(value: str, expected: str | None) -> None:
    assert shift_datetime(value, -7) == expected
