"""Keys: dealing, single-key mode, JSON with versions and fingerprints, and a secret that never shows."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import pickle
from typing import Any

import gmpy2  # type: ignore[import-untyped]
import pytest

from privacy_core.errors import ConfigurationError
from privacy_core.secure import keys
from privacy_core.secure.keys import (
    KeyShare,
    PublicKey,
    deal_threshold_key,
    verify_key_share,
)

ThresholdKey = tuple[PublicKey, list[KeyShare]]
SingleKey = tuple[PublicKey, KeyShare]


def test_dealt_key_has_the_requested_shape(threshold_key: ThresholdKey) -> None:
    public, shares = threshold_key
    assert (public.mode, public.threshold, public.holders, public.bits) == ("threshold", 3, 5, 512)
    assert [s.holder for s in shares] == [1, 2, 3, 4, 5]
    assert {s.key_fingerprint for s in shares} == {public.fingerprint}
    assert all(s.delta == 120 and s.mode == "threshold" for s in shares)
    assert public.fingerprint.startswith("sha256:") and len(public.fingerprint) == 7 + 64


def test_every_dealt_share_matches_its_verification_key(threshold_key: ThresholdKey) -> None:
    public, shares = threshold_key
    assert all(verify_key_share(public, s) for s in shares)


def test_a_wrong_share_does_not_match(threshold_key: ThresholdKey, single_key: SingleKey) -> None:
    public, shares = threshold_key
    assert not verify_key_share(public, dataclasses.replace(shares[0], secret=shares[0].secret + 1))
    assert not verify_key_share(public, dataclasses.replace(shares[0], holder=2))
    assert not verify_key_share(public, single_key[1])


def test_shares_are_distinct_and_below_nm(threshold_key: ThresholdKey) -> None:
    public, shares = threshold_key
    assert len({s.secret for s in shares}) == 5
    assert all(s.secret < public.nsquare // 4 for s in shares)  # s_i < n·m < n²/4


@pytest.mark.parametrize("bits", [256, 511, 513, 4098, True, "2048"])
def test_deal_refuses_bad_bit_lengths(bits: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        deal_threshold_key(bits, 3, 2)
    assert info.value.setting == "bits"


@pytest.mark.parametrize(("holders", "threshold"), [(3, 0), (3, 4), (0, 0), (33, 2), (3, True)])
def test_deal_refuses_bad_thresholds(holders: Any, threshold: Any) -> None:
    with pytest.raises(ConfigurationError):
        deal_threshold_key(512, holders, threshold)


def test_safe_primes_are_safe() -> None:
    for _ in range(3):
        p = keys._safe_prime(192)
        assert p.bit_length() == 192 and p >> 190 == 3
        assert gmpy2.is_prime(p) and gmpy2.is_prime((p - 1) // 2)


def test_single_key_mode_is_labelled(single_key: SingleKey) -> None:
    public, share = single_key
    assert (public.mode, public.threshold, public.holders) == ("single-key", 1, 1)
    assert public.to_json()["mode"] == "single-key" and share.to_json()["mode"] == "single-key"
    assert "single-key" in repr(share)
    assert verify_key_share(public, share)
    assert public.bits == 512


def test_public_key_json_round_trip(threshold_key: ThresholdKey, single_key: SingleKey) -> None:
    for public in (threshold_key[0], single_key[0]):
        data = json.loads(json.dumps(public.to_json()))
        assert data["schema"] == "PaillierPublicKey/1.0"
        assert isinstance(data["n"], str)
        again = PublicKey.from_json(data)
        assert again == public and again.fingerprint == public.fingerprint


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("n", lambda d: str(int(d["n"]) + 2)),
        ("threshold", lambda d: 2),
        ("verification_keys", lambda d: {**d["verification_keys"], "1": d["verification_keys"]["2"]}),
        ("verification_base", lambda d: str(int(d["verification_base"]) + 1)),
        ("fingerprint", lambda d: "sha256:" + "0" * 64),
    ],
)
def test_public_key_with_mismatched_fingerprint_is_refused(
    threshold_key: ThresholdKey, field: str, change: Any
) -> None:
    data = threshold_key[0].to_json()
    data[field] = change(data)
    with pytest.raises(ConfigurationError) as info:
        PublicKey.from_json(data)
    assert info.value.setting == "fingerprint"


def test_public_key_without_fingerprint_is_refused(threshold_key: ThresholdKey) -> None:
    data = threshold_key[0].to_json()
    del data["fingerprint"]
    with pytest.raises(ConfigurationError, match="fingerprint"):
        PublicKey.from_json(data)


@pytest.mark.parametrize(
    ("schema", "match"),
    [
        ("PaillierPublicKey/2.0", "version '2.0' is not supported"),
        ("PaillierKeyShare/1.0", "expected"),
        (None, "expected"),
    ],
)
def test_public_key_of_another_schema_is_refused(threshold_key: ThresholdKey, schema: Any, match: str) -> None:
    data = {**threshold_key[0].to_json(), "schema": schema}
    with pytest.raises(ConfigurationError, match=match):
        PublicKey.from_json(data)


@pytest.mark.parametrize(
    ("field", "value"),
    [("n", 12345), ("n", "0x10"), ("threshold", "3"), ("mode", "two-key"), ("verification_keys", [])],
)
def test_public_key_with_malformed_fields_is_refused(threshold_key: ThresholdKey, field: str, value: Any) -> None:
    data = {**threshold_key[0].to_json(), field: value}
    with pytest.raises(ConfigurationError):
        PublicKey.from_json(data)


def test_public_key_refuses_inconsistent_modes(threshold_key: ThresholdKey, single_key: SingleKey) -> None:
    public = threshold_key[0]
    with pytest.raises(ConfigurationError):
        dataclasses.replace(public, mode="single-key")
    with pytest.raises(ConfigurationError):
        dataclasses.replace(public, verification_keys={1: 5})
    with pytest.raises(ConfigurationError):
        dataclasses.replace(public, n=public.n + 1)
    with pytest.raises(ConfigurationError):
        dataclasses.replace(single_key[0], mode="threshold")


def test_key_share_json_round_trip(threshold_key: ThresholdKey, single_key: SingleKey) -> None:
    for share in (*threshold_key[1], single_key[1]):
        data = json.loads(json.dumps(share.to_json()))
        assert data["schema"] == "PaillierKeyShare/1.0"
        assert KeyShare.from_json(data) == share


@pytest.mark.parametrize(
    ("field", "value"),
    [("schema", "PaillierKeyShare/0.9"), ("secret", 12), ("secret", "-5"), ("holder", "1"), ("key_fingerprint", "x")],
)
def test_key_share_with_malformed_fields_is_refused(threshold_key: ThresholdKey, field: str, value: Any) -> None:
    share = threshold_key[1][0]
    data = {**share.to_json(), field: value}
    with pytest.raises(ConfigurationError) as info:
        KeyShare.from_json(data)
    assert str(share.secret) not in str(info.value)


def test_key_share_never_shows_its_secret(threshold_key: ThresholdKey, single_key: SingleKey) -> None:
    for share in (threshold_key[1][0], single_key[1]):
        secret = str(share.secret)
        for text in (repr(share), str(share), f"{share}", f"{share!r}", repr([share]), str({"share": share})):
            assert secret not in text
            assert secret[:12] not in text
        assert "holder=" in repr(share) and share.key_fingerprint in repr(share)


def test_logging_a_key_share_does_not_log_the_secret(
    threshold_key: ThresholdKey, caplog: pytest.LogCaptureFixture
) -> None:
    share = threshold_key[1][1]
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("dealt %s", share)
        logging.getLogger("test").info("dealt %r", share)
    assert str(share.secret) not in caplog.text


@pytest.mark.parametrize(
    "operation",
    [pickle.dumps, lambda s: pickle.dumps(s, protocol=0), copy.copy, copy.deepcopy],
)
def test_key_share_refuses_pickling_and_copying(threshold_key: ThresholdKey, operation: Any) -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        operation(threshold_key[1][0])


def test_public_key_pickles(threshold_key: ThresholdKey) -> None:
    public = threshold_key[0]
    assert pickle.loads(pickle.dumps(public)) == public
    assert hash(public) == hash(PublicKey.from_json(public.to_json()))
