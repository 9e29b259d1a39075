"""SlotLayout: slot widths from the bound and site count, exact packed sums, and every overflow refused."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from privacy_core.errors import ConfigurationError
from privacy_core.secure.packing import MAX_SLOT_BITS, SlotLayout

B = 1000
SITES = 7


def packed_sum(layout: SlotLayout, uploads: list[Any]) -> list[int]:
    """The plaintext-domain sum of packed uploads: what decrypting a homomorphic sum gives."""
    packed = [layout.pack(u) for u in uploads]
    return [sum(column) for column in zip(*packed, strict=True)]


@pytest.fixture
def layout() -> SlotLayout:
    return SlotLayout.plan(value_bound=B, max_sites=SITES, key_bits=512)


def test_plan_slot_width_covers_the_sum_of_max_sites(layout: SlotLayout) -> None:
    assert layout.slot_bits == (2 * B * SITES).bit_length() == 14
    assert layout.slots == 511 // 14
    assert layout.slots * layout.slot_bits <= 512 - 1


@pytest.mark.parametrize(
    ("bound", "sites", "bits", "slots"),
    [(2**16, 10, 2048, 97), (2**20, 10, 2048, 81), (2**20, 100, 2048, 73), (2**20, 100, 3072, 109)],
)
def test_plan_realistic_bounds_stay_under_ten_bytes_per_value(bound: int, sites: int, bits: int, slots: int) -> None:
    layout = SlotLayout.plan(bound, sites, bits)
    assert layout.slots == slots
    assert layout.bytes_per_value() == pytest.approx(2 * bits / 8 / slots)
    assert layout.bytes_per_value() <= 10


@pytest.mark.parametrize(
    ("bound", "sites", "bits", "setting"),
    [
        (0, 10, 512, "value_bound"),
        (-5, 10, 512, "value_bound"),
        (True, 10, 512, "value_bound"),
        (1.5, 10, 512, "value_bound"),
        (100, 0, 512, "max_sites"),
        (100, -1, 512, "max_sites"),
        (100, 10, 0, "key_bits"),
        (2**20, 10, 20, "key_bits"),  # one 25-bit slot does not fit 19 usable bits
        (2**62, 4, 4096, "value_bound"),  # 2·B·S needs 66 bits: more than a slot may have
    ],
)
def test_plan_refuses_impossible_layouts(bound: Any, sites: Any, bits: Any, setting: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        SlotLayout.plan(bound, sites, bits)
    assert info.value.setting == setting


def test_plan_accepts_the_widest_slot() -> None:
    layout = SlotLayout.plan(2**62 - 1, 2, 512)
    assert layout.slot_bits == MAX_SLOT_BITS
    values = np.array([2**62 - 1, -(2**62) + 1], dtype=np.int64)
    assert layout.unpack(packed_sum(layout, [values] * 2), 2, 2).tolist() == [2 * (2**62 - 1), -2 * (2**62 - 1)]


@pytest.mark.parametrize(
    ("field", "value"),
    [("slot_bits", 13), ("slots", 37), ("key_bits", 400), ("max_sites", 9), ("value_bound", 1200)],
)
def test_doctored_layout_is_refused(layout: SlotLayout, field: str, value: int) -> None:
    data = {**layout.to_json(), field: value}
    with pytest.raises(ConfigurationError):
        SlotLayout.from_json(data)


def test_json_round_trip(layout: SlotLayout) -> None:
    assert SlotLayout.from_json(layout.to_json()) == layout
    assert layout.to_json()["schema"] == "PackedSlotLayout/1.0"


@pytest.mark.parametrize("data", [{}, {"schema": "PackedSlotLayout/2.0"}, {"schema": "PackedSlotLayout/1.0"}, []])
def test_from_json_refuses_other_schemas_and_missing_fields(data: Any) -> None:
    with pytest.raises(ConfigurationError):
        SlotLayout.from_json(data)


def _worst_cases(count: int) -> dict[str, list[Any]]:
    rng = np.random.default_rng(7)
    alternating = np.where(np.arange(count) % 2 == 0, B, -B).astype(np.int64)
    return {
        "all-max": [np.full(count, B, dtype=np.int64)] * SITES,
        "all-min": [np.full(count, -B, dtype=np.int64)] * SITES,
        "alternating": [alternating] * SITES,
        "max-then-min-sites": [np.full(count, B if s % 2 else -B, dtype=np.int64) for s in range(SITES)],
        "random-edges": [rng.choice([-B, -B + 1, -1, 0, 1, B - 1, B], size=count) for _ in range(SITES)],
        "random": [rng.integers(-B, B + 1, size=count) for _ in range(SITES)],
        "python-ints": [[int(v) for v in rng.integers(-B, B + 1, size=count)] for _ in range(SITES)],
    }


@pytest.mark.parametrize("case", list(_worst_cases(1)))
@pytest.mark.parametrize("extra", [0, 1, 17])
def test_packed_sums_are_exact_at_the_bounds(layout: SlotLayout, case: str, extra: int) -> None:
    count = 3 * layout.slots + extra  # a multiple of the slots, and not
    uploads = _worst_cases(count)[case]
    plain = packed_sum(layout, uploads)
    assert len(plain) == layout.plaintexts_for(count)
    assert max(p.bit_length() for p in plain) <= 512 - 1  # every sum stays below any 512-bit n
    expected = np.sum([np.asarray(u, dtype=np.int64) for u in uploads], axis=0)
    assert np.array_equal(layout.unpack(plain, count, SITES), expected)


@pytest.mark.parametrize("sites", [1, 2, SITES - 1])
def test_fewer_sites_than_planned(layout: SlotLayout, sites: int) -> None:
    uploads = [np.full(50, -B, dtype=np.int64)] * sites
    assert layout.unpack(packed_sum(layout, uploads), 50, sites).tolist() == [-B * sites] * 50


def test_empty_vector(layout: SlotLayout) -> None:
    assert layout.pack([]) == []
    assert layout.unpack([], 0, 1).shape == (0,)


def test_unsigned_input(layout: SlotLayout) -> None:
    values = np.array([0, B], dtype=np.uint64)
    assert layout.unpack(layout.pack(values), 2, 1).tolist() == [0, B]


@pytest.mark.parametrize(
    "values",
    [
        [B + 1],
        [-B - 1],
        np.array([0, B + 98765, -B - 98765, 3], dtype=np.int64),
        np.array([np.iinfo(np.int64).min], dtype=np.int64),
        np.array([B + 98765], dtype=np.uint64),
        [2**70 + 98765, 1],
    ],
)
def test_pack_refuses_values_beyond_the_bound_without_showing_them(layout: SlotLayout, values: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        layout.pack(values)
    message = str(info.value)
    assert "outside [-1000, 1000]" in message
    assert "98765" not in message
    expected = sum(1 for v in np.asarray(values, dtype=object) if abs(int(v)) > B)
    assert message.startswith(f"values: {expected} of {len(values)} values")


@pytest.mark.parametrize(
    "values", [[0.5, 1.0], np.array([1.0]), np.zeros((2, 2), dtype=np.int64), ["1"], np.array([True]), [1, None]]
)
def test_pack_refuses_non_integer_vectors(layout: SlotLayout, values: Any) -> None:
    with pytest.raises(ConfigurationError):
        layout.pack(values)


@pytest.mark.parametrize("sites", [SITES + 1, 0, -1, True])
def test_unpack_refuses_site_counts_outside_the_plan(layout: SlotLayout, sites: Any) -> None:
    plain = packed_sum(layout, [np.zeros(5, dtype=np.int64)])
    with pytest.raises(ConfigurationError) as info:
        layout.unpack(plain, 5, sites)
    assert info.value.setting == "sites"


def test_unpack_refuses_a_sum_over_more_sites_than_declared(layout: SlotLayout) -> None:
    plain = packed_sum(layout, [np.full(5, B, dtype=np.int64)] * 3)
    with pytest.raises(ConfigurationError, match="exceed what 2 uploads"):
        layout.unpack(plain, 5, 2)


def test_unpack_refuses_nonzero_padding(layout: SlotLayout) -> None:
    plain = layout.pack(np.zeros(5, dtype=np.int64))
    corrupted = [plain[0] + (1 << (layout.slot_bits * 6))]  # slot 6 is padding
    with pytest.raises(ConfigurationError):
        layout.unpack(corrupted, 5, 1)


@pytest.mark.parametrize("plaintexts", [[], [0, 0], [-1], [1 << 511]])
def test_unpack_refuses_wrong_plaintexts(layout: SlotLayout, plaintexts: list[int]) -> None:
    with pytest.raises(ConfigurationError):
        layout.unpack(plaintexts, 5, 1)


@pytest.mark.parametrize("count", [-1, 1.0, True])
def test_plaintexts_for_refuses_bad_counts(layout: SlotLayout, count: Any) -> None:
    with pytest.raises(ConfigurationError):
        layout.plaintexts_for(count)
