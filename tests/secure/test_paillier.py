"""Encryption, the randomness pool, homomorphic sums of packed vectors, wire encoding and Dask encryption."""

from __future__ import annotations

import base64
import pickle
from typing import Any

import numpy as np
import phe  # type: ignore[import-untyped]
import pytest

from privacy_core.errors import ConfigurationError
from privacy_core.secure.keys import KeyShare, PublicKey
from privacy_core.secure.packing import SlotLayout
from privacy_core.secure.paillier import (
    RandomnessPool,
    add,
    check_layout,
    ciphertext_bytes,
    decode_ciphertexts,
    encode_ciphertexts,
    encrypt,
    encrypt_distributed,
    require_local_cluster,
)
from privacy_core.secure.threshold import combine, partial_decrypt

ThresholdKey = tuple[PublicKey, list[KeyShare]]
SingleKey = tuple[PublicKey, KeyShare]
B = 2**16
SITES = 10


def decrypt(key: ThresholdKey | SingleKey, ciphertexts: list[int]) -> list[int]:
    """Plaintexts through the real decryption path: t partial decryptions and their combination."""
    public, shares = key
    holders = shares[: public.threshold] if isinstance(shares, list) else [shares]
    return combine(public, ciphertexts, [partial_decrypt(s, public, ciphertexts) for s in holders])


@pytest.fixture(scope="module")
def layout() -> SlotLayout:
    return SlotLayout.plan(value_bound=B, max_sites=SITES, key_bits=512)


def test_round_trip_single_key(single_key: SingleKey) -> None:
    public = single_key[0]
    plaintexts = [0, 1, 12345, public.n - 1]
    assert decrypt(single_key, encrypt(public, plaintexts)) == plaintexts


def test_round_trip_threshold(threshold_key: ThresholdKey) -> None:
    public = threshold_key[0]
    plaintexts = [0, 1, 12345, public.n - 1]
    assert decrypt(threshold_key, encrypt(public, plaintexts)) == plaintexts


def test_phe_reads_our_ciphertexts_and_we_read_phe(single_key: SingleKey) -> None:
    public, share = single_key
    phe_public = phe.PaillierPublicKey(public.n)
    phe_private = phe.PaillierPrivateKey(phe_public, share.secret, public.n // share.secret)
    ours = encrypt(public, [424242])
    assert phe_private.raw_decrypt(ours[0]) == 424242
    theirs = phe_public.raw_encrypt(171717)
    assert decrypt(single_key, [theirs]) == [171717]


def test_encryption_is_randomized(single_key: SingleKey) -> None:
    public = single_key[0]
    a, b = encrypt(public, [7, 7]), encrypt(public, [7])
    assert len({a[0], a[1], b[0]}) == 3


@pytest.mark.parametrize("bad", [[-1], ["n"], [1.0], [True], ["1"]])
def test_encrypt_refuses_plaintexts_outside_the_range(single_key: SingleKey, bad: list[Any]) -> None:
    with pytest.raises(ConfigurationError) as info:
        encrypt(single_key[0], [5, *bad])
    assert "1 of 2" in str(info.value)


def test_encrypt_refuses_n_without_showing_it(single_key: SingleKey) -> None:
    public = single_key[0]
    with pytest.raises(ConfigurationError) as info:
        encrypt(public, [public.n])
    assert str(public.n) not in str(info.value)


@pytest.mark.parametrize("key_name", ["single_key", "threshold_key"])
@pytest.mark.parametrize("case", ["all-max", "all-min", "mixed"])
def test_homomorphic_sum_of_packed_uploads_is_exact_at_the_bounds(
    request: pytest.FixtureRequest, layout: SlotLayout, key_name: str, case: str
) -> None:
    key = request.getfixturevalue(key_name)
    public = key[0]
    check_layout(public, layout)
    count = 2 * layout.slots + 5  # not a multiple of the slots
    rng = np.random.default_rng(11)
    uploads = {
        "all-max": [np.full(count, B, dtype=np.int64)] * SITES,
        "all-min": [np.full(count, -B, dtype=np.int64)] * SITES,
        "mixed": [rng.choice([-B, B, 0, -1, 1], size=count) for _ in range(SITES)],
    }[case]
    ciphertexts = [encrypt(public, layout.pack(u)) for u in uploads]
    total = add(public, *ciphertexts)
    sums = layout.unpack(decrypt(key, total), count, SITES)
    assert np.array_equal(sums, np.sum(uploads, axis=0))


def test_sum_over_more_sites_than_planned_is_refused(threshold_key: ThresholdKey, layout: SlotLayout) -> None:
    public = threshold_key[0]
    upload = encrypt(public, layout.pack(np.full(3, B, dtype=np.int64)))
    total = add(public, *([upload] * (SITES + 1)))
    with pytest.raises(ConfigurationError, match="sites"):
        layout.unpack(decrypt(threshold_key, total), 3, SITES + 1)


def test_check_layout_refuses_a_layout_for_a_larger_key(single_key: SingleKey) -> None:
    with pytest.raises(ConfigurationError, match="planned for 1024-bit keys"):
        check_layout(single_key[0], SlotLayout.plan(B, SITES, 1024))


def test_add_refuses_mismatched_vectors(single_key: SingleKey) -> None:
    public = single_key[0]
    a = encrypt(public, [1, 2])
    with pytest.raises(ConfigurationError, match="different lengths"):
        add(public, a, a[:1])
    with pytest.raises(ConfigurationError, match="none"):
        add(public)
    with pytest.raises(ConfigurationError, match=r"vectors\[1\]"):
        add(public, a, [a[0], public.nsquare])


def test_pool_hands_out_each_obfuscator_once(single_key: SingleKey) -> None:
    public = single_key[0]
    pool = RandomnessPool(public)
    pool.fill(5)
    assert len(pool) == 5
    first = pool.take(3)
    rest = pool.take(4)  # two left, two computed now
    assert len(pool) == 0 and len(first) == 3 and len(rest) == 4
    assert len(set(first) | set(rest)) == 7


def test_pool_encryption_decrypts(single_key: SingleKey) -> None:
    public = single_key[0]
    pool = RandomnessPool(public)
    pool.fill_in_background(6).join()
    assert len(pool) == 6
    assert decrypt(single_key, encrypt(public, [3, 4, 5], pool)) == [3, 4, 5]
    assert len(pool) == 3


def test_pool_of_another_key_is_refused(single_key: SingleKey, threshold_key: ThresholdKey) -> None:
    with pytest.raises(ConfigurationError, match="another key"):
        encrypt(single_key[0], [1], RandomnessPool(threshold_key[0]))


def test_pool_refuses_pickling(single_key: SingleKey) -> None:
    with pytest.raises(TypeError, match="exactly once"):
        pickle.dumps(RandomnessPool(single_key[0]))


@pytest.mark.parametrize("count", [-1, 1.5, True])
def test_pool_refuses_bad_counts(single_key: SingleKey, count: Any) -> None:
    pool = RandomnessPool(single_key[0])
    with pytest.raises(ConfigurationError):
        pool.fill(count)
    with pytest.raises(ConfigurationError):
        pool.take(count)


def test_wire_encoding_round_trip(threshold_key: ThresholdKey) -> None:
    public = threshold_key[0]
    ciphertexts = encrypt(public, [1, 2, 3])
    text = encode_ciphertexts(ciphertexts, public)
    assert ciphertext_bytes(public) == 128
    assert len(text) == 4 * ((3 * 128 + 2) // 3)
    assert decode_ciphertexts(text, public) == ciphertexts


@pytest.mark.parametrize(
    "raw",
    [b"\x01\x02\x03", bytes(128), b"\xff" * 128, bytes(127) + b"\x01" + b"\x01"],
    ids=["short", "zero", "above-n-squared", "trailing-byte"],
)
def test_wire_decoding_refuses_damage(threshold_key: ThresholdKey, raw: bytes) -> None:
    with pytest.raises(ConfigurationError, match="ciphertexts"):
        decode_ciphertexts(base64.b64encode(raw).decode(), threshold_key[0])


@pytest.mark.parametrize("text", ["not base64!", "QUJD\n", "é"])
def test_wire_decoding_refuses_non_base64(threshold_key: ThresholdKey, text: str) -> None:
    with pytest.raises(ConfigurationError, match="base64"):
        decode_ciphertexts(text, threshold_key[0])


def test_encrypt_distributed_matches_local_encryption(
    threshold_key: ThresholdKey, layout: SlotLayout, secure_dask_client: Any
) -> None:
    public = threshold_key[0]
    values = np.arange(-500, 500, dtype=np.int64)
    plaintexts = layout.pack(values)
    distributed = encrypt_distributed(public, plaintexts, secure_dask_client, batch=7)
    local = encrypt_distributed(public, plaintexts)
    assert len(distributed) == len(local) == len(plaintexts)
    assert decrypt(threshold_key, distributed) == decrypt(threshold_key, local) == plaintexts


def test_encrypt_distributed_never_reuses_randomness_for_equal_batches(
    single_key: SingleKey, secure_dask_client: Any
) -> None:
    ciphertexts = encrypt_distributed(single_key[0], [9] * 6, secure_dask_client, batch=2)
    assert len(set(ciphertexts)) == 6


def test_pool_fill_over_dask(single_key: SingleKey, secure_dask_client: Any) -> None:
    pool = RandomnessPool(single_key[0])
    pool.fill(10, client=secure_dask_client, batch=3)
    assert len(pool) == 10 and len(set(pool.take(10))) == 10


class FakeClient:
    """Answers scheduler_info() like a client of a cluster with the given worker addresses."""

    def __init__(self, *workers: str) -> None:
        self.workers = workers

    def scheduler_info(self) -> dict[str, Any]:
        return {"workers": {address: {} for address in self.workers}}


@pytest.mark.parametrize(
    ("workers", "local"),
    [
        (("inproc://10.0.0.5/1/2", "tcp://127.0.0.1:4000"), True),
        (("tcp://localhost:1", "tls://[::1]:2"), True),
        (("tcp://127.0.0.1:4000", "tcp://10.1.2.3:4000"), False),
        (("tls://worker.example.org:8786",), False),
        ((), False),
    ],
)
def test_require_local_cluster(workers: tuple[str, ...], local: bool) -> None:
    client = FakeClient(*workers)
    if local:
        require_local_cluster(client)
    else:
        with pytest.raises(ConfigurationError, match="allow_remote=True"):
            require_local_cluster(client)
        require_local_cluster(client, allow_remote=True)


def test_encrypt_distributed_refuses_remote_workers(single_key: SingleKey) -> None:
    with pytest.raises(ConfigurationError, match="off this machine"):
        encrypt_distributed(single_key[0], [1], FakeClient("tcp://192.0.2.1:1"))


@pytest.mark.parametrize("batch", [0, -3, True])
def test_encrypt_distributed_refuses_bad_batches(single_key: SingleKey, batch: Any) -> None:
    with pytest.raises(ConfigurationError, match="batch"):
        encrypt_distributed(single_key[0], [1], None, batch)
