"""SecureRandom: a contiguous ChaCha20 keystream per instance, fresh keys per instance and per forked child,
balanced bits, uncorrelated draws, and no way to pickle or copy a stream into another process."""

from __future__ import annotations

import copy
import os
import pickle

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from scipy import stats

from privacy_core.dp import random as dp_random
from privacy_core.dp.random import SecureRandom, default_random

#: Tolerance in standard deviations for frequency and correlation checks: a false failure has
#: probability about 2e-9 per check.
SIGMAS = 6.0
#: Minimum chi-square p-value; a correct source fails with probability 1e-6 per test.
P_MIN = 1e-6


@pytest.fixture
def fixed_urandom(monkeypatch: pytest.MonkeyPatch) -> bytes:
    """Make ``os.urandom`` deterministic for one test, so a keystream can be compared with ChaCha20 itself."""
    pool = bytes(range(256)) * 4

    def fake(n: int) -> bytes:
        return pool[:n]

    monkeypatch.setattr(os, "urandom", fake)
    return pool


def test_keystream_is_chacha20_contiguous_across_calls_and_pieces(fixed_urandom: bytes) -> None:
    rng = SecureRandom()
    key, nonce = fixed_urandom[:32], bytes(4) + fixed_urandom[:12]
    piece_words = dp_random._PIECE_BYTES // 8

    got = b"".join(
        [rng.uint64(3).tobytes(), rng.bytes(5), rng.uint64(piece_words + 3).tobytes(), rng.bytes(0), rng.bytes(7)]
    )

    reference = Cipher(algorithms.ChaCha20(key, nonce), mode=None).encryptor().update(bytes(len(got)))
    assert got == reference


def test_two_instances_produce_different_streams() -> None:
    assert SecureRandom().bytes(32) != SecureRandom().bytes(32)


def test_successive_calls_never_repeat_bytes() -> None:
    rng = SecureRandom()

    assert rng.bytes(32) != rng.bytes(32)


def test_uint64_shape_dtype_and_empty() -> None:
    rng = SecureRandom()

    words = rng.uint64(10)

    assert words.dtype == np.uint64 and words.shape == (10,)
    assert rng.uint64(0).shape == (0,)


def test_every_bit_of_uint64_is_balanced() -> None:
    n = 200_000
    words = SecureRandom().uint64(n)

    ones = np.array([int(((words >> np.uint64(b)) & np.uint64(1)).sum()) for b in range(64)])

    assert np.abs(ones - n / 2).max() < SIGMAS * np.sqrt(n / 4)


def test_uniform53_fills_exactly_53_bits() -> None:
    n = 200_000
    r = SecureRandom().uniform53(n)

    ones = np.array([int(((r >> np.uint64(b)) & np.uint64(1)).sum()) for b in range(53)])

    assert r.dtype == np.uint64 and int(r.max()) < 2**53
    assert np.abs(ones - n / 2).max() < SIGMAS * np.sqrt(n / 4)


@pytest.mark.parametrize("k", [1, 7, 8, 9, 53, 64, 65, 130])
def test_bits_stay_below_two_to_the_k_and_reach_the_top_bit(k: int) -> None:
    rng = SecureRandom()

    values = [rng.bits(k) for _ in range(400)]

    assert all(0 <= v < 2**k for v in values)
    assert any(v >> (k - 1) for v in values)  # top bit set about half the time; never: 2**-400


def test_bits_zero_is_zero_and_negative_is_refused() -> None:
    rng = SecureRandom()

    assert rng.bits(0) == 0
    with pytest.raises(ValueError, match="negative"):
        rng.bits(-1)


@pytest.mark.parametrize("n", [1, 6, 10, 1000])
def test_randbelow_is_uniform(n: int) -> None:
    rng = SecureRandom()
    draws = 20 * n if n > 1 else 10
    counts = np.bincount([rng.randbelow(n) for _ in range(max(draws, 6000))], minlength=n)

    assert counts.size == n
    if n > 1:
        assert stats.chisquare(counts).pvalue > P_MIN


def test_randbelow_refuses_empty_range() -> None:
    with pytest.raises(ValueError, match="not positive"):
        SecureRandom().randbelow(0)


def test_consecutive_and_cross_call_draws_are_uncorrelated() -> None:
    rng = SecureRandom()
    n = 500_000
    first = rng.uniform53(n).astype(np.float64)
    second = rng.uniform53(n).astype(np.float64)
    bound = SIGMAS / np.sqrt(n)

    assert abs(np.corrcoef(first[:-1], first[1:])[0, 1]) < bound
    assert abs(np.corrcoef(first, second)[0, 1]) < bound


def test_pickling_is_refused_with_the_reason() -> None:
    with pytest.raises(TypeError, match="each process must build its own source"):
        pickle.dumps(SecureRandom())


@pytest.mark.parametrize("duplicate", [copy.copy, copy.deepcopy])
def test_copying_is_refused(duplicate: object) -> None:
    assert callable(duplicate)
    with pytest.raises(TypeError, match="each process must build its own source"):
        duplicate(SecureRandom())


def test_default_random_is_one_instance_per_process() -> None:
    assert default_random() is default_random()
    assert isinstance(default_random(), SecureRandom)


def test_rekeys_before_the_block_counter_could_wrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dp_random, "_REKEY_BYTES", 64)
    rng = SecureRandom()
    before = rng._encryptor

    rng.bytes(48)
    same = rng._encryptor
    rng.bytes(48)

    assert same is before and rng._encryptor is not before


def test_forked_child_never_replays_the_parents_stream() -> None:
    explicit = SecureRandom()
    shared = default_random()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its next draws from both sources, then leave without running pytest teardown
        try:
            os.write(write_end, explicit.bytes(16) + default_random().bytes(16))
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child = pipe.read()
    os.waitpid(pid, 0)

    parent = explicit.bytes(16) + shared.bytes(16)

    assert len(child) == 32
    assert child[:16] != parent[:16]  # without re-keying the child would copy the parent's next bytes
    assert child[16:] != parent[16:]
