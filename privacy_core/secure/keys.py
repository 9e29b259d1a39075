"""Paillier keys for cross-site sums: a t-of-ℓ threshold key dealt to key holders, or one single key.

Threshold mode is Shoup's RSA scheme carried to Paillier by Damgård and Jurik (PKC 2001, s = 1): the modulus
is ``n = p·q`` with safe primes ``p = 2p'+1``, ``q = 2q'+1``; with ``m = p'q'`` the secret ``d`` satisfies
``d ≡ 0 (mod m)`` and ``d ≡ 1 (mod n)``, and is Shamir-shared over ``Z_{n·m}``: holder ``i`` gets
``s_i = f(i)`` of a random polynomial of degree ``t - 1`` with ``f(0) = d``. Any ``t`` holders decrypt
together (:mod:`privacy_core.secure.threshold`); fewer learn nothing about ``d``. Each holder also has a
public verification key ``v_i = v^(Δ·s_i)`` (``Δ = ℓ!``) against which its decryption shares are proved.
The dealer (:func:`deal_threshold_key`) runs once, at the key ceremony, and forgets ``p`` and ``q``; the
coordinator that sums the uploads holds no share.

Single-key mode (:func:`generate_single_key`) is for small deployments where one party may decrypt alone:
its one "share" is the prime ``p`` itself, so whoever holds it decrypts everything. It is labelled
``mode="single-key"`` in every file and fingerprint, so it cannot pass for a threshold key.

Keys are written as JSON with a schema version, integers as decimal strings, and public keys carry a
SHA-256 fingerprint of their fields that :meth:`PublicKey.from_json` checks. A :class:`KeyShare` never shows
its secret in ``repr`` or ``str`` and refuses to be pickled or copied: it leaves its holder only as JSON,
into that holder's own vault.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal, NoReturn, get_args

import gmpy2  # type: ignore[import-untyped]
import numpy as np

from privacy_core.errors import ConfigurationError

__all__ = [
    "DEFAULT_KEY_BITS",
    "KEY_SCHEMA_VERSION",
    "MAX_KEY_BITS",
    "MIN_KEY_BITS",
    "KeyShare",
    "Mode",
    "PublicKey",
    "deal_threshold_key",
    "generate_single_key",
    "verify_key_share",
]

KEY_SCHEMA_VERSION = "1.0"
PUBLIC_SCHEMA = f"PaillierPublicKey/{KEY_SCHEMA_VERSION}"
SHARE_SCHEMA = f"PaillierKeyShare/{KEY_SCHEMA_VERSION}"
#: 3072-bit moduli give about 128-bit security (NIST SP 800-57 Part 1, table 2), as phe's DEFAULT_KEYSIZE.
DEFAULT_KEY_BITS = 3072
#: Smallest modulus accepted at all, for fast tests only; use DEFAULT_KEY_BITS (at least 2048) for real data.
MIN_KEY_BITS = 512
#: Largest modulus: JSON carries numbers up to n² (and proofs a little beyond) as decimal strings, and Python
#: refuses int/str conversions over 4300 digits; n² of a 4096-bit key has 2467.
MAX_KEY_BITS = 4096
#: Δ = ℓ! enters every exponent; 32 holders keep it under 120 bits.
MAX_HOLDERS = 32
#: Miller-Rabin rounds after the sieve and the base-2 test (error below 4**-40 on top of them).
_MR_ROUNDS = 40
#: Candidates examined per sieve window while looking for a safe prime.
_SIEVE_WINDOW = 1 << 16

Mode = Literal["threshold", "single-key"]
_FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{64}$")


def _small_primes(limit: int) -> list[int]:
    """Odd primes below ``limit`` (sieve of Eratosthenes)."""
    sieve = np.ones(limit, dtype=bool)
    sieve[:2] = False
    for k in range(2, math.isqrt(limit) + 1):
        if sieve[k]:
            sieve[k * k :: k] = False
    return [int(p) for p in np.flatnonzero(sieve) if p > 2]


_SMALL_PRIMES = _small_primes(1 << 16)


def _mode(value: object) -> Mode:
    """``value`` as a key mode, or a ConfigurationError."""
    if value == "threshold":
        return "threshold"
    if value == "single-key":
        return "single-key"
    raise ConfigurationError("mode", f"is {value!r}", f"use one of {', '.join(get_args(Mode))}")


def _decimal(name: str, value: object) -> int:
    """A JSON decimal string as an int (JSON numbers lose precision beyond 2**53 in many readers)."""
    if not isinstance(value, str) or not value.isdecimal() or not value.isascii():
        raise ConfigurationError(name, "is not a decimal string", "write big integers as strings of digits")
    return int(value)


def _small_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigurationError(name, f"is {value!r}, not an integer", "write it as a JSON integer")
    return value


def _canonical(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _check_schema(data: object, expected: str, what: str) -> dict[str, Any]:
    """``data`` as a dict whose ``schema`` is ``expected``; refuses other versions by name."""
    if not isinstance(data, dict):
        raise ConfigurationError(what, f"is a {type(data).__name__}, not a JSON object", f"pass {what}.to_json()")
    schema = data.get("schema")
    family = expected.split("/")[0]
    if isinstance(schema, str) and schema.startswith(family + "/") and schema != expected:
        raise ConfigurationError(
            "schema",
            f"{what} version {schema.split('/', 1)[1]!r} is not supported (this code reads {KEY_SCHEMA_VERSION})",
            "export the key again with this version of privacy_core",
        )
    if schema != expected:
        raise ConfigurationError("schema", f"is {schema!r}, expected {expected!r}", f"pass {what}.to_json()")
    return data


@dataclass(frozen=True)
class PublicKey:
    """A Paillier public key (``g = n + 1``, as phe) with the threshold parameters and verification keys.

    :param n: the modulus.
    :param mode: ``"threshold"`` (t-of-ℓ holders) or ``"single-key"`` (one party decrypts alone).
    :param threshold: t, the holders needed to decrypt (1 in single-key mode).
    :param holders: ℓ, the holders dealt a share (1 in single-key mode).
    :param verification_base: v, a random square mod n² (0 in single-key mode).
    :param verification_keys: holder -> ``v^(Δ·s_i) mod n²`` (empty in single-key mode).
    :raises ConfigurationError: the fields do not form a key of their mode.
    """

    n: int
    mode: Mode
    threshold: int
    holders: int
    verification_base: int
    verification_keys: dict[int, int]

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n % 2 == 0:
            raise ConfigurationError("n", "is not an odd integer", "use a key from deal_threshold_key")
        if not MIN_KEY_BITS <= self.n.bit_length() <= MAX_KEY_BITS:
            raise ConfigurationError(
                "n",
                f"has {self.n.bit_length()} bits, outside [{MIN_KEY_BITS}, {MAX_KEY_BITS}]",
                f"use {DEFAULT_KEY_BITS} bits",
            )
        mode = _mode(self.mode)
        t, holders = _small_int("threshold", self.threshold), _small_int("holders", self.holders)
        if mode == "single-key":
            if (t, holders, self.verification_base, self.verification_keys) != (1, 1, 0, {}):
                raise ConfigurationError(
                    "mode", "is single-key but the key has threshold parameters", "use generate_single_key"
                )
            return
        if not 1 <= t <= holders <= MAX_HOLDERS:
            raise ConfigurationError(
                "threshold",
                f"t={t} of ℓ={holders} holders is not 1 <= t <= ℓ <= {MAX_HOLDERS}",
                "deal with a threshold between 1 and the number of holders",
            )
        nsquare = self.nsquare
        if not 1 < self.verification_base < nsquare:
            raise ConfigurationError("verification_base", "is not in (1, n²)", "use the dealt public key")
        if set(self.verification_keys) != set(range(1, holders + 1)):
            raise ConfigurationError(
                "verification_keys", f"do not cover holders 1..{holders}", "use the dealt public key unchanged"
            )
        if any(not 0 < v < nsquare for v in self.verification_keys.values()):
            raise ConfigurationError("verification_keys", "hold values outside (0, n²)", "use the dealt public key")

    def __hash__(self) -> int:
        return hash((self.n, self.mode, self.threshold, self.holders, self.verification_base))

    @cached_property
    def nsquare(self) -> int:
        """n², the ciphertext modulus."""
        return self.n * self.n

    @property
    def bits(self) -> int:
        """Bit length of n."""
        return self.n.bit_length()

    @property
    def delta(self) -> int:
        """Δ = ℓ!, which clears the denominators of the integer Lagrange coefficients."""
        return math.factorial(self.holders)

    def _fields(self) -> dict[str, Any]:
        return {
            "schema": PUBLIC_SCHEMA,
            "mode": self.mode,
            "n": str(self.n),
            "threshold": self.threshold,
            "holders": self.holders,
            "verification_base": str(self.verification_base),
            "verification_keys": {str(i): str(v) for i, v in sorted(self.verification_keys.items())},
        }

    @property
    def fingerprint(self) -> str:
        """``sha256:<hex>`` of the canonical JSON of every public field: what shares and files refer to."""
        return "sha256:" + hashlib.sha256(_canonical(self._fields())).hexdigest()

    def to_json(self) -> dict[str, Any]:
        """The key as a JSON-ready dict: versioned schema, big integers as decimal strings, fingerprint."""
        return {**self._fields(), "fingerprint": self.fingerprint}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PublicKey:
        """Read :meth:`to_json` output, refusing another schema version or a fingerprint that does not match.

        :raises ConfigurationError: unsupported version, malformed field, or mismatched fingerprint.
        """
        data = _check_schema(data, PUBLIC_SCHEMA, "PublicKey")
        keys = data.get("verification_keys")
        if not isinstance(keys, dict) or not all(isinstance(k, str) and k.isdecimal() for k in keys):
            raise ConfigurationError("verification_keys", "is not an object keyed by holder number", "re-export")
        key = cls(
            n=_decimal("n", data.get("n")),
            mode=_mode(data.get("mode")),
            threshold=_small_int("threshold", data.get("threshold")),
            holders=_small_int("holders", data.get("holders")),
            verification_base=_decimal("verification_base", data.get("verification_base")),
            verification_keys={int(k): _decimal(f"verification_keys.{k}", v) for k, v in keys.items()},
        )
        claimed = data.get("fingerprint")
        if claimed != key.fingerprint:
            raise ConfigurationError(
                "fingerprint",
                f"{claimed!r} does not match the key's public fields ({key.fingerprint})",
                "the key file was altered or damaged: take it again from the key ceremony record",
            )
        return key


@dataclass(frozen=True, repr=False)
class KeyShare:
    """One key holder's secret: its Shamir share ``s_i`` of ``d``, or in single-key mode the prime ``p``.

    ``repr`` and ``str`` show the holder and key fingerprint only. Pickling and copying raise TypeError:
    the share leaves its holder only through :meth:`to_json`, into the holder's vault.

    :param holder: the holder's index, 1..ℓ.
    :param key_fingerprint: :attr:`PublicKey.fingerprint` of the key it belongs to.
    :param secret: ``s_i`` (threshold) or a prime factor of n (single-key).
    :param delta: Δ = ℓ! (1 in single-key mode).
    :param mode: the key's mode.
    """

    holder: int
    key_fingerprint: str
    secret: int
    delta: int
    mode: Mode

    def __post_init__(self) -> None:
        mode = _mode(self.mode)
        holder, delta = _small_int("holder", self.holder), _small_int("delta", self.delta)
        if holder < 1 or delta < 1 or (mode == "single-key" and (holder, delta) != (1, 1)):
            raise ConfigurationError("holder", f"{holder} (Δ={delta}) is not valid for a {mode} key", "re-deal")
        if not isinstance(self.key_fingerprint, str) or not _FINGERPRINT.match(self.key_fingerprint):
            raise ConfigurationError("key_fingerprint", "is not sha256:<64 hex>", "use the dealt share unchanged")
        if isinstance(self.secret, bool) or not isinstance(self.secret, int) or self.secret < 1:
            raise ConfigurationError("secret", "is not a positive integer", "use the dealt share unchanged")

    def __repr__(self) -> str:
        return f"KeyShare(holder={self.holder}, mode={self.mode!r}, key_fingerprint={self.key_fingerprint!r})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "KeyShare cannot be pickled or copied: a secret key share leaves its holder only as JSON "
            "(share.to_json()) into that holder's vault"
        )

    def to_json(self) -> dict[str, Any]:
        """The share as a JSON-ready dict. It contains the secret: write it only to the holder's vault."""
        return {
            "schema": SHARE_SCHEMA,
            "mode": self.mode,
            "holder": self.holder,
            "key_fingerprint": self.key_fingerprint,
            "delta": str(self.delta),
            "secret": str(self.secret),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeyShare:
        """Read :meth:`to_json` output.

        :raises ConfigurationError: unsupported version or a malformed field (never quoting the secret).
        """
        data = _check_schema(data, SHARE_SCHEMA, "KeyShare")
        return cls(
            holder=_small_int("holder", data.get("holder")),
            key_fingerprint=str(data.get("key_fingerprint")),
            secret=_decimal("secret", data.get("secret")),
            delta=_decimal("delta", data.get("delta")),
            mode=_mode(data.get("mode")),
        )


def verify_key_share(public: PublicKey, share: KeyShare) -> bool:
    """Whether ``share`` belongs to ``public``: a holder checks this on receiving its share at the ceremony.

    Threshold: ``v^(Δ·s_i) = v_i``. Single-key: the secret is a proper factor of n.
    """
    if share.key_fingerprint != public.fingerprint or share.mode != public.mode:
        return False
    if public.mode == "single-key":
        return 1 < share.secret < public.n and public.n % share.secret == 0
    if share.holder not in public.verification_keys or share.delta != public.delta:
        return False
    expected = public.verification_keys[share.holder]
    return int(gmpy2.powmod(public.verification_base, share.delta * share.secret, public.nsquare)) == expected


def _check_bits(bits: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not MIN_KEY_BITS <= bits <= MAX_KEY_BITS or bits % 2:
        raise ConfigurationError(
            "bits",
            f"is {bits!r}",
            f"use an even bit length in [{MIN_KEY_BITS}, {MAX_KEY_BITS}]; {DEFAULT_KEY_BITS} for data",
        )
    return bits


def _top_two(bits: int) -> int:
    """A random odd number of exactly ``bits`` bits with the top two set (so two of them make 2·bits bits)."""
    return secrets.randbits(bits) | (3 << (bits - 2)) | 1


def _prime(bits: int) -> int:
    """A random prime of exactly ``bits`` bits with the top two bits set."""
    while True:
        candidate = int(gmpy2.next_prime(_top_two(bits)))
        if candidate.bit_length() == bits:
            return candidate


def _safe_prime(bits: int) -> int:
    """A random safe prime ``p = 2p' + 1`` of exactly ``bits`` bits with the top two bits set.

    Candidates ``p'`` run through a window from a random start; those where ``p'`` or ``2p' + 1`` has a
    factor below 2**16 are sieved out together, then base-2 Fermat tests and Miller-Rabin decide.
    """
    while True:
        base = _top_two(bits - 1)  # p' odd, top two bits set
        alive = np.ones(_SIEVE_WINDOW, dtype=bool)  # candidate k stands for p' = base + 2k
        for s in _SMALL_PRIMES:
            half = (s + 1) // 2  # the inverse of 2 mod s
            alive[(-base * half) % s :: s] = False  # s divides p'
            alive[((s - 1) // 2 - base) * half % s :: s] = False  # s divides 2p' + 1
        for k in np.flatnonzero(alive):
            small = base + 2 * int(k)
            big = 2 * small + 1
            if big.bit_length() != bits:
                break
            if gmpy2.powmod(2, big - 1, big) != 1 or gmpy2.powmod(2, small - 1, small) != 1:
                continue
            if gmpy2.is_prime(small, _MR_ROUNDS) and gmpy2.is_prime(big, _MR_ROUNDS):
                return big


def _random_unit(n: int) -> int:
    """A uniform element of Z*_n (gcd 1), by rejection."""
    while True:
        value = secrets.randbelow(n - 1) + 1
        if math.gcd(value, n) == 1:
            return value


def deal_threshold_key(bits: int, holders: int, threshold: int) -> tuple[PublicKey, list[KeyShare]]:
    """Key ceremony: a fresh ``bits``-bit threshold key and one share per holder, 1..ℓ.

    Run it on the ceremony machine and hand each share to its holder (``share.to_json()`` into the holder's
    vault); the factors of n are discarded here. Safe-prime generation takes seconds to minutes at 2048-3072
    bits. The coordinator, which sums uploads, must not receive any share.

    :param bits: bit length of n (even, at least MIN_KEY_BITS; DEFAULT_KEY_BITS for real data).
    :param holders: ℓ, the key holders (1..MAX_HOLDERS).
    :param threshold: t, how many holders must cooperate to decrypt (1..ℓ).
    :raises ConfigurationError: a parameter out of range.

    >>> public, shares = deal_threshold_key(512, holders=3, threshold=2)
    >>> public.mode, public.threshold, len(shares), all(verify_key_share(public, s) for s in shares)
    ('threshold', 2, 3, True)
    """
    _check_bits(bits)
    holders = _small_int("holders", holders)
    threshold = _small_int("threshold", threshold)
    if not 1 <= threshold <= holders <= MAX_HOLDERS:
        raise ConfigurationError(
            "threshold",
            f"t={threshold} of ℓ={holders} holders is not 1 <= t <= ℓ <= {MAX_HOLDERS}",
            "choose 1 <= threshold <= holders (2-of-3 or 3-of-5 are usual)",
        )
    p = _safe_prime(bits // 2)
    q = _safe_prime(bits // 2)
    while q == p:
        q = _safe_prime(bits // 2)
    n = p * q
    m = (p // 2) * (q // 2)  # p'q'
    nm = n * m
    d = m * int(gmpy2.invert(m, n))  # d ≡ 0 (mod m), d ≡ 1 (mod n)
    coefficients = [d] + [secrets.randbelow(nm) for _ in range(threshold - 1)]
    del p, q
    secrets_ = {i: sum(a * i**k for k, a in enumerate(coefficients)) % nm for i in range(1, holders + 1)}
    del coefficients, d
    nsquare = n * n
    v = _random_unit(n) ** 2 % nsquare
    delta = math.factorial(holders)
    keys = {i: int(gmpy2.powmod(v, delta * s, nsquare)) for i, s in secrets_.items()}
    public = PublicKey(
        n=n, mode="threshold", threshold=threshold, holders=holders, verification_base=v, verification_keys=keys
    )
    fingerprint = public.fingerprint
    shares = [
        KeyShare(holder=i, key_fingerprint=fingerprint, secret=s, delta=delta, mode="threshold")
        for i, s in secrets_.items()
    ]
    return public, shares


def generate_single_key(bits: int) -> tuple[PublicKey, KeyShare]:
    """SINGLE-KEY MODE, for small deployments: one party holds the whole private key and decrypts alone.

    The returned share's secret is a prime factor of n. Everything it touches says ``mode="single-key"``.

    :raises ConfigurationError: ``bits`` odd or below MIN_KEY_BITS.

    >>> public, key = generate_single_key(512)
    >>> public.mode, public.bits, key  # doctest: +ELLIPSIS
    ('single-key', 512, KeyShare(holder=1, mode='single-key', key_fingerprint='sha256:...'))
    """
    _check_bits(bits)
    while True:
        p, q = _prime(bits // 2), _prime(bits // 2)
        if p != q and math.gcd(p * q, (p - 1) * (q - 1)) == 1:
            break
    public = PublicKey(n=p * q, mode="single-key", threshold=1, holders=1, verification_base=0, verification_keys={})
    return public, KeyShare(holder=1, key_fingerprint=public.fingerprint, secret=p, delta=1, mode="single-key")
