"""Threshold decryption: any t shares decrypt, t - 1 do not, and a wrong share is caught and named."""

from __future__ import annotations

import dataclasses
import itertools
import json
import secrets
from typing import Any

import numpy as np
import pytest

from privacy_core.errors import ConfigurationError, InsufficientSharesError
from privacy_core.secure.keys import KeyShare, PublicKey
from privacy_core.secure.packing import SlotLayout
from privacy_core.secure.paillier import add, encrypt
from privacy_core.secure.threshold import (
    DecryptionShare,
    check_share,
    combine,
    lagrange_coefficients,
    partial_decrypt,
    verify_share,
)

ThresholdKey = tuple[PublicKey, list[KeyShare]]
SingleKey = tuple[PublicKey, KeyShare]
B = 2**12
SITES = 4
COUNT = 100


@pytest.fixture(scope="module")
def aggregate(threshold_key: ThresholdKey) -> tuple[SlotLayout, list[int], Any]:
    """A packed sum of SITES uploads at the bounds: the layout, its ciphertexts and the expected sums."""
    public = threshold_key[0]
    layout = SlotLayout.plan(B, SITES, public.bits)
    rng = np.random.default_rng(5)
    uploads = [rng.choice([-B, B, 0, 17], size=COUNT) for _ in range(SITES)]
    ciphertexts = add(public, *(encrypt(public, layout.pack(u)) for u in uploads))
    return layout, ciphertexts, np.sum(uploads, axis=0)


@pytest.fixture(scope="module")
def shares(threshold_key: ThresholdKey, aggregate: tuple[SlotLayout, list[int], Any]) -> list[DecryptionShare]:
    """Every holder's batch-proved decryption share of the aggregate."""
    public, key_shares = threshold_key
    return [partial_decrypt(s, public, aggregate[1]) for s in key_shares]


def tampered(share: DecryptionShare, public: PublicKey) -> DecryptionShare:
    """``share`` with its second value multiplied by 2: a wrong partial decryption, still in range."""
    values = list(share.values)
    values[1] = values[1] * 2 % public.nsquare
    return dataclasses.replace(share, values=values)


def test_every_t_subset_decrypts(
    threshold_key: ThresholdKey, aggregate: tuple[SlotLayout, list[int], Any], shares: list[DecryptionShare]
) -> None:
    public = threshold_key[0]
    layout, ciphertexts, expected = aggregate
    subsets = list(itertools.combinations(shares, 3))
    assert len(subsets) == 10
    for subset in subsets:
        plaintexts = combine(public, ciphertexts, subset)
        assert np.array_equal(layout.unpack(plaintexts, COUNT, SITES), expected)


def test_more_than_t_shares_also_decrypt(
    threshold_key: ThresholdKey, aggregate: tuple[SlotLayout, list[int], Any], shares: list[DecryptionShare]
) -> None:
    layout, ciphertexts, expected = aggregate
    plaintexts = combine(threshold_key[0], ciphertexts, list(reversed(shares)))
    assert np.array_equal(layout.unpack(plaintexts, COUNT, SITES), expected)


@pytest.mark.parametrize("holders", list(itertools.combinations(range(5), 2)))
def test_t_minus_one_shares_do_not_decrypt(
    threshold_key: ThresholdKey,
    aggregate: tuple[SlotLayout, list[int], Any],
    shares: list[DecryptionShare],
    holders: tuple[int, ...],
) -> None:
    with pytest.raises(InsufficientSharesError) as info:
        combine(threshold_key[0], aggregate[1], [shares[i] for i in holders])
    assert info.value.missing == 1 and info.value.threshold == 3
    assert "1 more needed" in str(info.value)


def test_interpolating_t_minus_one_shares_gives_garbage(
    threshold_key: ThresholdKey, aggregate: tuple[SlotLayout, list[int], Any], shares: list[DecryptionShare]
) -> None:
    """What combine would compute from two shares, forced: not the plaintext."""
    public = threshold_key[0]
    lam = lagrange_coefficients([1, 2], public.delta)
    c = 1
    for holder, share in zip((1, 2), shares[:2], strict=True):
        c = c * pow(share.values[0], 2 * lam[holder], public.nsquare) % public.nsquare
    guess = (c - 1) // public.n * pow(4 * public.delta**2, -1, public.n) % public.n
    assert guess != combine(public, aggregate[1], shares)[0]


def test_duplicate_holders_count_once(
    threshold_key: ThresholdKey, aggregate: tuple[SlotLayout, list[int], Any], shares: list[DecryptionShare]
) -> None:
    with pytest.raises(InsufficientSharesError) as info:
        combine(threshold_key[0], aggregate[1], [shares[0], shares[0], shares[1], shares[1]])
    assert info.value.valid == [1, 2]


def test_every_honest_share_verifies(
    threshold_key: ThresholdKey, aggregate: tuple[SlotLayout, list[int], Any], shares: list[DecryptionShare]
) -> None:
    assert all(verify_share(threshold_key[0], aggregate[1], s) for s in shares)
    assert all(len(s.proofs) == 1 and s.proof == "batch" for s in shares)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda s, pk: tampered(s, pk), "fails its proof"),
        (lambda s, pk: dataclasses.replace(s, values=[*s.values[:-1], 1]), "fails its proof"),
        (lambda s, pk: dataclasses.replace(s, proofs=[(s.proofs[0][0], s.proofs[0][1] + 1)]), "fails its proof"),
        (lambda s, pk: dataclasses.replace(s, proofs=[(s.proofs[0][0] ^ 1, s.proofs[0][1])]), "fails its proof"),
        (lambda s, pk: dataclasses.replace(s, holder=2), "fails its proof"),
        (lambda s, pk: dataclasses.replace(s, proofs=[]), "exactly one batch proof"),
        (lambda s, pk: dataclasses.replace(s, values=s.values[:-1]), "values for"),
        (lambda s, pk: dataclasses.replace(s, values=[0, *s.values[1:]]), "outside"),
        (lambda s, pk: dataclasses.replace(s, key_fingerprint="sha256:" + "1" * 64), "another key"),
        (lambda s, pk: dataclasses.replace(s, ciphertext_digest="sha256:" + "2" * 64), "other ciphertexts"),
        (lambda s, pk: dataclasses.replace(s, holder=9), "not one of 1..5"),
        (lambda s, pk: dataclasses.replace(s, proof="none"), "no proof"),
    ],
)
def test_a_tampered_share_fails_verification(
    threshold_key: ThresholdKey,
    aggregate: tuple[SlotLayout, list[int], Any],
    shares: list[DecryptionShare],
    change: Any,
    why: str,
) -> None:
    public = threshold_key[0]
    bad = change(shares[0], public)
    assert not verify_share(public, aggregate[1], bad)
    problem = check_share(public, aggregate[1], bad)
    assert problem is not None and why in problem


def test_compensating_tampering_fails_the_batch_proof(
    threshold_key: ThresholdKey, aggregate: tuple[SlotLayout, list[int], Any], shares: list[DecryptionShare]
) -> None:
    """Two wrong values whose errors cancel in a plain product (x·δ, y·δ⁻¹) are still caught."""
    public = threshold_key[0]
    values = list(shares[0].values)
    delta = 4  # a square: survives the squaring in the verification
    values[0] = values[0] * delta % public.nsquare
    values[1] = values[1] * pow(delta, -1, public.nsquare) % public.nsquare
    assert check_share(public, aggregate[1], dataclasses.replace(shares[0], values=values)) == "fails its proof"


def test_a_share_of_other_ciphertexts_fails(
    threshold_key: ThresholdKey, aggregate: tuple[SlotLayout, list[int], Any], shares: list[DecryptionShare]
) -> None:
    other = list(aggregate[1])
    other[0] = other[0] * other[0] % threshold_key[0].nsquare
    assert check_share(threshold_key[0], other, shares[0]) == "decrypts other ciphertexts"
    # without the digest, the proof still binds the share to its ciphertexts
    assert check_share(threshold_key[0], other, dataclasses.replace(shares[0], ciphertext_digest="")) == (
        "fails its proof"
    )


def test_combine_skips_a_tampered_share_when_enough_others_are_valid(
    threshold_key: ThresholdKey, aggregate: tuple[SlotLayout, list[int], Any], shares: list[DecryptionShare]
) -> None:
    public = threshold_key[0]
    layout, ciphertexts, expected = aggregate
    plaintexts = combine(public, ciphertexts, [tampered(shares[0], public), *shares[1:4]])
    assert np.array_equal(layout.unpack(plaintexts, COUNT, SITES), expected)


def test_combine_names_the_bad_holder_when_too_few_are_valid(
    threshold_key: ThresholdKey, aggregate: tuple[SlotLayout, list[int], Any], shares: list[DecryptionShare]
) -> None:
    public = threshold_key[0]
    with pytest.raises(InsufficientSharesError) as info:
        combine(public, aggregate[1], [shares[0], tampered(shares[2], public), shares[4]])
    assert info.value.invalid == {3: "fails its proof"}
    assert info.value.valid == [1, 5] and info.value.missing == 1
    assert "holder 3: fails its proof" in str(info.value)


def test_per_value_proofs(threshold_key: ThresholdKey, aggregate: tuple[SlotLayout, list[int], Any]) -> None:
    public, key_shares = threshold_key
    layout, ciphertexts, expected = aggregate
    shares = [partial_decrypt(s, public, ciphertexts, proof="per-value") for s in key_shares[2:]]
    assert all(len(s.proofs) == len(ciphertexts) and verify_share(public, ciphertexts, s) for s in shares)
    assert np.array_equal(layout.unpack(combine(public, ciphertexts, shares), COUNT, SITES), expected)
    bad = tampered(shares[0], public)
    assert check_share(public, ciphertexts, bad) == "fails its proof"
    proofs = list(shares[0].proofs)
    proofs[0], proofs[1] = proofs[1], proofs[0]
    assert not verify_share(public, ciphertexts, dataclasses.replace(shares[0], proofs=proofs))
    assert check_share(public, ciphertexts, dataclasses.replace(shares[0], proofs=proofs[1:])) == (
        "needs one proof per value"
    )


def test_constant_time_and_fast_exponentiation_agree(
    threshold_key: ThresholdKey, aggregate: tuple[SlotLayout, list[int], Any], shares: list[DecryptionShare]
) -> None:
    public, key_shares = threshold_key
    fast = partial_decrypt(key_shares[0], public, aggregate[1], constant_time=False)
    assert fast.values == shares[0].values and verify_share(public, aggregate[1], fast)


def test_partial_decrypt_over_dask_matches_local(
    threshold_key: ThresholdKey,
    aggregate: tuple[SlotLayout, list[int], Any],
    shares: list[DecryptionShare],
    secure_dask_client: Any,
) -> None:
    public, key_shares = threshold_key
    layout, ciphertexts, expected = aggregate
    remote = [partial_decrypt(s, public, ciphertexts, client=secure_dask_client, batch=3) for s in key_shares[1:4]]
    assert [s.values for s in remote] == [s.values for s in shares[1:4]]
    plaintexts = combine(public, ciphertexts, remote, client=secure_dask_client)
    assert np.array_equal(layout.unpack(plaintexts, COUNT, SITES), expected)
    per_value = partial_decrypt(key_shares[0], public, ciphertexts, client=secure_dask_client, proof="per-value")
    assert verify_share(public, ciphertexts, per_value, client=secure_dask_client)
    for bad in (tampered(per_value, public), tampered(remote[0], public)):
        assert check_share(public, ciphertexts, bad, client=secure_dask_client) == "fails its proof"


def test_partial_decrypt_refuses_a_share_of_another_key(
    threshold_key: ThresholdKey, single_key: SingleKey, aggregate: tuple[SlotLayout, list[int], Any]
) -> None:
    with pytest.raises(ConfigurationError, match="share"):
        partial_decrypt(single_key[1], threshold_key[0], aggregate[1])


@pytest.mark.parametrize(("option", "value"), [("proof", "none"), ("batch", 0)])
def test_partial_decrypt_refuses_bad_options(
    threshold_key: ThresholdKey, aggregate: tuple[SlotLayout, list[int], Any], option: str, value: Any
) -> None:
    public, key_shares = threshold_key
    with pytest.raises(ConfigurationError, match=option):
        partial_decrypt(key_shares[0], public, aggregate[1], **{option: value})


def test_decryption_share_json_round_trip(
    threshold_key: ThresholdKey, aggregate: tuple[SlotLayout, list[int], Any], shares: list[DecryptionShare]
) -> None:
    data = json.loads(json.dumps(shares[0].to_json()))
    assert data["schema"] == "PaillierDecryptionShare/1.0"
    again = DecryptionShare.from_json(data)
    assert again == shares[0] and verify_share(threshold_key[0], aggregate[1], again)


@pytest.mark.parametrize(
    ("field", "value"),
    [("schema", "PaillierDecryptionShare/9"), ("values", "@@"), ("count", 3), ("proof", "maybe"), ("holder", "1")],
)
def test_decryption_share_json_refuses_damage(shares: list[DecryptionShare], field: str, value: Any) -> None:
    with pytest.raises(ConfigurationError):
        DecryptionShare.from_json({**shares[0].to_json(), field: value})


def test_single_key_share_is_the_decryption(single_key: SingleKey) -> None:
    public, key = single_key
    layout = SlotLayout.plan(B, SITES, public.bits)
    values = np.array([B, -B, 3, 0, -7], dtype=np.int64)
    ciphertexts = encrypt(public, layout.pack(values))
    share = partial_decrypt(key, public, ciphertexts)
    assert share.proof == "none" and share.proofs == []
    assert verify_share(public, ciphertexts, share)
    assert layout.unpack(combine(public, ciphertexts, [share]), 5, 1).tolist() == values.tolist()
    forged = dataclasses.replace(share, values=[v * 3 % public.nsquare for v in share.values])
    assert check_share(public, ciphertexts, forged) == "has values that are not decryptions"
    with pytest.raises(InsufficientSharesError, match="1 more needed"):
        combine(public, ciphertexts, [])


def test_lagrange_coefficients_interpolate_at_zero() -> None:
    delta = 120  # 5!
    coefficients = [secrets.randbits(64) for _ in range(3)]

    def f(x: int) -> int:
        return sum(a * x**k for k, a in enumerate(coefficients))

    for subset in itertools.combinations(range(1, 6), 3):
        lam = lagrange_coefficients(subset, delta)
        assert sum(lam[j] * f(j) for j in subset) == delta * coefficients[0]
