"""The cryptographically secure random source behind every DP noise draw: a ChaCha20 keystream.

:class:`SecureRandom` keys ChaCha20 with 32 bytes from ``os.urandom`` when it is built and serves the
keystream as NumPy words, at several GB/s, which is what lets the exact samplers in
:mod:`privacy_core.dp.noise` run vectorized. There is no seed argument: a release must never be able to
reproduce, or be made to reproduce, its noise. For the same reason the source refuses to be pickled or
copied (a copy would replay the same stream in another process), and it re-keys itself when it finds it
is running in a forked child. :func:`default_random` gives each process its own instance.
"""

from __future__ import annotations

import os
import threading
from typing import NoReturn

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from numpy.typing import NDArray

__all__ = ["SecureRandom", "default_random"]

#: ChaCha20 (RFC 8439) takes a 256-bit key.
KEY_BYTES = 32
#: The keystream is produced by encrypting zeros in pieces of this size: large enough that the per-call cost
#: is negligible, small enough to stay in cache.
_PIECE_BYTES = 1 << 18
_ZEROS = memoryview(bytes(_PIECE_BYTES))  # sliced without copying
#: OpenSSL's 16-byte ChaCha20 IV holds a 32-bit little-endian block counter and a 96-bit nonce. The counter
#: starts at 0 and covers 2**32 blocks of 64 bytes (256 GiB); re-keying after half of that means the counter
#: never wraps, whatever OpenSSL does on overflow.
_REKEY_BYTES = 1 << 37
#: 53 bits: the uniforms are R / 2**53, the resolution of a float64 mantissa in [0.5, 1).
UNIFORM_BITS = 53


class SecureRandom:
    """Fresh cryptographically secure random words, bits and integers from a ChaCha20 keystream.

    Each instance draws its own key from ``os.urandom``; two instances never share a stream. Draws are
    serialized by a lock, so one instance may be shared by threads (each thread gets different bytes).

    >>> rng = SecureRandom()
    >>> words = rng.uint64(4)
    >>> words.dtype, words.shape
    (dtype('uint64'), (4,))
    >>> bool((rng.uniform53(1000) < 2**53).all())
    True
    >>> 0 <= rng.randbelow(6) < 6
    True
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rekey()

    def _rekey(self) -> None:
        """Start a new keystream under a fresh key; remembers the owning process to detect forks."""
        key = os.urandom(KEY_BYTES)
        iv = bytes(4) + os.urandom(12)  # block counter 0, random 96-bit nonce
        self._encryptor = Cipher(algorithms.ChaCha20(key, iv), mode=None).encryptor()
        self._pid = os.getpid()
        self._used = 0

    def __repr__(self) -> str:
        return f"SecureRandom(ChaCha20, pid={self._pid})"

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "SecureRandom cannot be pickled or copied: each process must build its own source "
            "(SecureRandom() or default_random()) so that noise is never reused across processes or runs"
        )

    def _fill(self, out: memoryview) -> None:
        """Write fresh keystream bytes over ``out`` (a writable byte view)."""
        if self._pid != os.getpid():
            # A forked child: never continue the parent's stream, and never wait on a lock that a thread of
            # the parent held at the fork (it does not exist here).
            self._lock = threading.Lock()
            self._rekey()
        with self._lock:
            if self._used + len(out) > _REKEY_BYTES:
                self._rekey()
            self._used += len(out)
            for start in range(0, len(out), _PIECE_BYTES):
                piece = out[start : start + _PIECE_BYTES]
                self._encryptor.update_into(_ZEROS[: len(piece)], piece)

    def bytes(self, n: int) -> bytes:
        """``n`` fresh random bytes."""
        buffer = bytearray(n)
        if n:
            self._fill(memoryview(buffer))
        return bytes(buffer)

    def uint64(self, n: int) -> NDArray[np.uint64]:
        """``n`` independent uniform 64-bit words.

        :param n: how many words; 0 gives an empty array.
        """
        out = np.empty(n, dtype=np.uint64)
        if n:
            self._fill(out.data.cast("B"))
        return out

    def uniform53(self, n: int) -> NDArray[np.uint64]:
        """``n`` independent uniform integers R in [0, 2**53): each stands for the real U in [R/2**53, (R+1)/2**53).

        The samplers treat R as the first 53 bits of an infinitely precise uniform U and read more bits of
        the same U with :meth:`bits` only when 53 are not enough to decide a comparison.
        """
        words = self.uint64(n)
        words >>= np.uint64(64 - UNIFORM_BITS)
        return words

    def bits(self, k: int) -> int:
        """A Python int with ``k`` fresh uniform random bits (0 <= value < 2**k); for the slow exact path."""
        if k < 0:
            raise ValueError(f"k={k} is negative; ask for zero or more bits")
        if k == 0:
            return 0
        nbytes = (k + 7) // 8
        return int.from_bytes(self.bytes(nbytes), "little") >> (8 * nbytes - k)

    def randbelow(self, n: int) -> int:
        """A uniform integer in [0, n), by rejection (no modulo bias)."""
        if n <= 0:
            raise ValueError(f"n={n} is not positive; pass an upper bound of at least 1")
        k = (n - 1).bit_length()
        while True:
            value = self.bits(k)
            if value < n:
                return value


_default: SecureRandom | None = None
_default_lock = threading.Lock()


def _forget_default_in_child() -> None:
    """After a fork: drop the parent's source and its lock (possibly held by a thread that is gone)."""
    global _default, _default_lock
    _default = None
    _default_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_default_in_child)


def default_random() -> SecureRandom:
    """This process's shared :class:`SecureRandom`, built on first use and rebuilt in a forked child.

    >>> default_random() is default_random()
    True
    """
    global _default
    with _default_lock:
        if _default is None or _default._pid != os.getpid():
            _default = SecureRandom()
        return _default
