"""Paillier encryption of packed plaintexts: precomputed randomness, homomorphic sums, Dask, wire encoding.

A plaintext ``x < n`` (from :meth:`SlotLayout.pack`) encrypts as ``c = (1 + n·x)·r^n mod n²``, phe's
``g = n + 1`` form, so phe and this module read each other's ciphertexts. Almost all of the cost is the
obfuscator ``r^n mod n²``; :class:`RandomnessPool` computes obfuscators ahead of time (in a background
thread, or over Dask workers), which leaves one multiplication per ciphertext on the critical path. An
obfuscator is used once and only once: the pool hands each out a single time and refuses to be pickled or
copied, and a forked child discards what it inherited. Never reuse one: two ciphertexts with the same ``r``
reveal the difference of their plaintexts.

Plaintexts and obfuscators are as sensitive as the site's data. The Dask helpers therefore refuse a
cluster whose workers are not on this machine unless ``allow_remote=True`` (for a cluster the site controls,
with TLS), and submit every batch as impure so that equal batches never share a result.

>>> from privacy_core.secure.keys import generate_single_key
>>> public, _ = generate_single_key(512)
>>> pool = RandomnessPool(public)
>>> pool.fill(4)
>>> a, b = encrypt(public, [20, 1], pool), encrypt(public, [22, 2], pool)
>>> len(pool), len(add(public, a, b)), decode_ciphertexts(encode_ciphertexts(a, public), public) == a
(0, 2, True)
"""

from __future__ import annotations

import base64
import binascii
import collections
import ipaddress
import math
import os
import secrets
import threading
from collections.abc import Sequence
from typing import Any, NoReturn
from urllib.parse import urlsplit

import gmpy2  # type: ignore[import-untyped]

from privacy_core.errors import ConfigurationError
from privacy_core.secure.keys import PublicKey
from privacy_core.secure.packing import SlotLayout

__all__ = [
    "RandomnessPool",
    "add",
    "check_layout",
    "ciphertext_bytes",
    "decode_ciphertexts",
    "encode_ciphertexts",
    "encrypt",
    "encrypt_distributed",
    "obfuscators",
    "require_local_cluster",
]

#: Obfuscators computed per call of gmpy2.powmod_base_list: small enough that a background fill makes them
#: available steadily, large enough that the GIL-free batch amortizes the call.
_FILL_CHUNK = 64


def obfuscators(n: int, count: int) -> list[int]:
    """``count`` fresh obfuscators ``r^n mod n²`` with ``r`` uniform in Z*_n; releases the GIL while it works."""
    nsquare = gmpy2.mpz(n) * n
    out: list[int] = []
    for start in range(0, count, _FILL_CHUNK):
        bases: list[int] = []
        while len(bases) < min(_FILL_CHUNK, count - start):
            r = secrets.randbelow(n - 1) + 1
            if math.gcd(r, n) == 1:
                bases.append(r)
        out.extend(int(o) for o in gmpy2.powmod_base_list(bases, n, nsquare))
    return out


class RandomnessPool:
    """Obfuscators ``r^n mod n²`` for one public key, computed before the data arrive, each handed out once.

    :meth:`fill` computes them here (or on Dask workers), :meth:`fill_in_background` in a thread (the
    exponentiations release the GIL, so it runs on another core), and :meth:`take` hands them out, computing
    any shortfall on the spot. Pickling or copying raises TypeError: a copy would hand the same obfuscators
    out twice.
    """

    def __init__(self, public: PublicKey) -> None:
        self.public = public
        self._ready: collections.deque[int] = collections.deque()
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"RandomnessPool(key={self.public.fingerprint[:19]}, ready={len(self)})"

    def __len__(self) -> int:
        self._forget_if_forked()
        return len(self._ready)

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "RandomnessPool cannot be pickled or copied: each obfuscator must be used exactly once; "
            "build a pool in the process that encrypts"
        )

    def _forget_if_forked(self) -> None:
        if self._pid != os.getpid():  # a forked child must not reuse the parent's obfuscators
            self._lock = threading.Lock()
            self._ready = collections.deque()
            self._pid = os.getpid()

    def fill(self, count: int, *, client: Any | None = None, batch: int = 256, allow_remote: bool = False) -> None:
        """Compute ``count`` more obfuscators, here or over the Dask ``client``'s workers.

        :raises ConfigurationError: ``count`` is negative, or ``client`` has workers on other machines and
            ``allow_remote`` is not set.
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ConfigurationError("count", f"is {count!r}", "ask for zero or more obfuscators")
        _check_batch(batch)
        if client is None:
            for start in range(0, count, _FILL_CHUNK):
                fresh = obfuscators(self.public.n, min(_FILL_CHUNK, count - start))
                self._add(fresh)
            return
        require_local_cluster(client, allow_remote)
        sizes = [min(batch, count - start) for start in range(0, count, batch)]
        futures = client.map(obfuscators, [self.public.n] * len(sizes), sizes, pure=False)
        for result in client.gather(futures):
            self._add(result)

    def fill_in_background(self, count: int) -> threading.Thread:
        """Start filling ``count`` obfuscators in a daemon thread; join it, or just :meth:`take` when needed."""
        thread = threading.Thread(target=self.fill, args=(count,), name="paillier-pool-fill", daemon=True)
        thread.start()
        return thread

    def _add(self, values: list[int]) -> None:
        self._forget_if_forked()
        with self._lock:
            self._ready.extend(values)

    def take(self, count: int) -> list[int]:
        """``count`` obfuscators, removed from the pool; any shortfall is computed now."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ConfigurationError("count", f"is {count!r}", "take zero or more obfuscators")
        self._forget_if_forked()
        with self._lock:
            got = [self._ready.popleft() for _ in range(min(count, len(self._ready)))]
        if len(got) < count:
            got.extend(obfuscators(self.public.n, count - len(got)))
        return got


def _check_plaintexts(public: PublicKey, plaintexts: Sequence[int]) -> None:
    """Refuse anything but ints in [0, n); the message counts them and never shows one."""
    n = public.n
    bad = sum(1 for x in plaintexts if isinstance(x, bool) or not isinstance(x, int) or not 0 <= x < n)
    if bad:
        raise ConfigurationError(
            "plaintexts",
            f"{bad} of {len(plaintexts)} are not integers in [0, n) for this {public.bits}-bit key",
            "encrypt the output of SlotLayout.pack for a layout planned for this key's size",
        )


def check_layout(public: PublicKey, layout: SlotLayout) -> None:
    """Refuse a layout planned for a larger key than ``public``: its sums could wrap around mod n.

    :raises ConfigurationError: ``layout.key_bits`` exceeds the key's bit length.
    """
    if layout.key_bits > public.bits:
        raise ConfigurationError(
            "layout",
            f"was planned for {layout.key_bits}-bit keys, this key has {public.bits} bits",
            "plan the layout with key_bits=public.bits",
        )


def encrypt(public: PublicKey, plaintexts: Sequence[int], pool: RandomnessPool | None = None) -> list[int]:
    """Encrypt each plaintext in ``[0, n)``: ``(1 + n·x)·r^n mod n²``, taking obfuscators from ``pool``.

    :param pool: precomputed obfuscators for this key; None computes fresh ones now.
    :raises ConfigurationError: a plaintext outside ``[0, n)``, or a pool of another key.
    """
    _check_plaintexts(public, plaintexts)
    if pool is not None and pool.public.n != public.n:
        raise ConfigurationError("pool", "holds obfuscators of another key", "build RandomnessPool(public)")
    masks = pool.take(len(plaintexts)) if pool is not None else obfuscators(public.n, len(plaintexts))
    return _encrypt_with(public.n, plaintexts, masks)


def _encrypt_with(n: int, plaintexts: Sequence[int], masks: Sequence[int]) -> list[int]:
    nsquare = gmpy2.mpz(n) * n
    return [int((n * x + 1) * gmpy2.mpz(o) % nsquare) for x, o in zip(plaintexts, masks, strict=True)]


def _encrypt_batch(n: int, plaintexts: list[int]) -> list[int]:
    """Worker side of :func:`encrypt_distributed`: fresh obfuscators, then encryption."""
    return _encrypt_with(n, plaintexts, obfuscators(n, len(plaintexts)))


def _check_batch(batch: int) -> None:
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigurationError("batch", f"is {batch!r}", "use a batch of at least 1 item, e.g. 256")


def require_local_cluster(client: Any, allow_remote: bool = False) -> None:
    """Refuse a Dask client with workers off this machine, unless ``allow_remote``: secrets go to workers.

    :raises ConfigurationError: a worker's address is not loopback or in-process.
    """
    if allow_remote:
        return
    workers = client.scheduler_info().get("workers", {})
    remote = [address for address in workers if not _is_local(str(address))]
    if remote or not workers:
        raise ConfigurationError(
            "client",
            f"has {len(remote)} workers off this machine" if workers else "has no workers",
            "use a LocalCluster on this machine, or pass allow_remote=True for a TLS cluster you control",
        )


def _is_local(address: str) -> bool:
    parts = urlsplit(address)
    if parts.scheme == "inproc":
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def encrypt_distributed(
    public: PublicKey,
    plaintexts: Sequence[int],
    client: Any | None = None,
    batch: int = 256,
    *,
    allow_remote: bool = False,
) -> list[int]:
    """:func:`encrypt` over the Dask ``client``'s workers in batches of ``batch``; None encrypts here.

    Each batch computes its own fresh obfuscators on its worker and is submitted impure, so two equal
    batches never share randomness.

    :raises ConfigurationError: a plaintext outside ``[0, n)``, ``batch < 1``, or remote workers without
        ``allow_remote``.
    """
    _check_plaintexts(public, plaintexts)
    _check_batch(batch)
    if client is None:
        return encrypt(public, plaintexts)
    require_local_cluster(client, allow_remote)
    chunks = [list(plaintexts[start : start + batch]) for start in range(0, len(plaintexts), batch)]
    futures = client.map(_encrypt_batch, [public.n] * len(chunks), chunks, pure=False)
    return [c for result in client.gather(futures) for c in result]


def _check_ciphertexts(public: PublicKey, values: Sequence[int], name: str) -> None:
    nsquare = public.nsquare
    bad = sum(1 for c in values if isinstance(c, bool) or not isinstance(c, int) or not 0 < c < nsquare)
    if bad:
        raise ConfigurationError(
            name, f"{bad} of {len(values)} are not in (0, n²) for this key", "use ciphertexts made under this key"
        )


def add(public: PublicKey, *vectors: Sequence[int]) -> list[int]:
    """Elementwise homomorphic sum: the product of the ciphertexts mod n², which encrypts the plaintext sum.

    :raises ConfigurationError: no vectors, vectors of different lengths, or a value not in ``(0, n²)``.
    """
    if not vectors:
        raise ConfigurationError("vectors", "are none", "pass at least one ciphertext vector")
    lengths = {len(v) for v in vectors}
    if len(lengths) != 1:
        raise ConfigurationError(
            "vectors", f"have different lengths {sorted(lengths)}", "sum uploads packed with the same layout"
        )
    for index, vector in enumerate(vectors):
        _check_ciphertexts(public, vector, f"vectors[{index}]")
    nsquare = gmpy2.mpz(public.nsquare)
    total = [gmpy2.mpz(c) for c in vectors[0]]
    for vector in vectors[1:]:
        total = [t * c % nsquare for t, c in zip(total, vector, strict=True)]
    return [int(t) for t in total]


def ciphertext_bytes(public: PublicKey) -> int:
    """Bytes of one ciphertext on the wire (big-endian, fixed width): those of n²."""
    return (public.nsquare.bit_length() + 7) // 8


def encode_ciphertexts(values: Sequence[int], public: PublicKey) -> str:
    """Ciphertexts as one base64 string of fixed-width big-endian numbers, for JSON files.

    :raises ConfigurationError: a value not in ``(0, n²)``.
    """
    _check_ciphertexts(public, values, "ciphertexts")
    width = ciphertext_bytes(public)
    return base64.b64encode(b"".join(c.to_bytes(width, "big") for c in values)).decode("ascii")


def decode_ciphertexts(text: str, public: PublicKey) -> list[int]:
    """Read :func:`encode_ciphertexts` output back.

    :raises ConfigurationError: not base64, a length that is not a whole number of ciphertexts, or a value
        not in ``(0, n²)`` (another key's ciphertexts, or damage).
    """
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, AttributeError):
        raise ConfigurationError("ciphertexts", "are not base64 text", "pass encode_ciphertexts output") from None
    width = ciphertext_bytes(public)
    if len(raw) % width:
        raise ConfigurationError(
            "ciphertexts",
            f"hold {len(raw)} bytes, not a multiple of {width} (one {public.bits}-bit key ciphertext)",
            "check the file was encrypted under this key and is complete",
        )
    values = [int.from_bytes(raw[start : start + width], "big") for start in range(0, len(raw), width)]
    _check_ciphertexts(public, values, "ciphertexts")
    return values
