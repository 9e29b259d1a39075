"""Threshold decryption: each key holder's partial decryption with a proof, and their combination.

Damgård-Jurik (PKC 2001, s = 1) after Shoup: holder ``i`` returns ``c_i = c^(2Δ·s_i) mod n²`` for each
ciphertext ``c``, with a Chaum-Pedersen proof, made non-interactive with SHA-256 (Fiat-Shamir), that
``log_{c^4}(c_i²) = log_v(v_i)`` (both equal Δ·s_i), so a holder cannot return a wrong share undetected.
Any ``t`` valid shares of distinct holders ``S`` combine with the integer Lagrange coefficients
``λ_j = Δ·Π_{j'∈S∖{j}} j'/(j' - j)`` into ``c' = Π c_j^(2λ_j) = c^(4Δ²d)``, and the plaintext is
``L(c')·(4Δ²)^-1 mod n`` with ``L(u) = (u - 1)/n``. Fewer than ``t`` shares reveal nothing about the plaintext.

Proofs are batched by default: one proof per holder per vector, for ``C = Π c_j^ρ_j`` and
``D = Π c_ij^ρ_j`` with 128-bit weights ``ρ_j`` hashed from the ciphertexts and the holder's values
(a small-exponent batch test, Bellare-Garay-Rabin 1998): a wrong value passes with probability about
2**-128 per attempt, at a small fraction of the cost of a proof per value. ``proof="per-value"`` gives one
proof per ciphertext instead. Squaring (``c^4``, ``c_i²``) removes the elements of order 2 of Z*_{n²}, the
only small subgroup, as Damgård-Jurik do.

A holder decrypts whatever it is sent: before calling :func:`partial_decrypt`, it must check that the
ciphertexts are the agreed aggregate (recompute the sum from the uploads), not one site's upload.

Single-key mode (labelled ``proof="none"``): the one holder decrypts outright with the CRT, as phe does,
and its "share" carries ``1 + n·x mod n²`` for each plaintext ``x``; there is no proof, since that holder
could decrypt anything anyway.

Secret exponents (``s_i``, ``p - 1``, proof nonces) go through GMP's constant-time ``mpz_powm_sec``
unless ``constant_time=False`` (about 1.3x faster, for holders on machines no one else shares).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import gmpy2  # type: ignore[import-untyped]

from privacy_core.errors import ConfigurationError, InsufficientSharesError
from privacy_core.secure.keys import KeyShare, PublicKey
from privacy_core.secure.paillier import _check_batch, _check_ciphertexts, require_local_cluster

__all__ = [
    "SHARE_SCHEMA",
    "DecryptionShare",
    "ProofKind",
    "check_share",
    "combine",
    "lagrange_coefficients",
    "partial_decrypt",
    "verify_share",
]

SHARE_SCHEMA = "PaillierDecryptionShare/1.0"
ProofKind = Literal["batch", "per-value", "none"]
#: Fiat-Shamir challenges are SHA-256 outputs; proof nonces exceed challenge·witness by this many bits, so
#: the response z statistically hides the witness (2**-128).
_CHALLENGE_BITS = 256
_HIDING_BITS = 128
#: Batch weights: a wrong value passes the batch test with probability about 2**-128.
_WEIGHT_BYTES = 16
_DOMAIN = b"airflow-imaging-privacy/paillier-threshold/1"


@dataclass(frozen=True)
class DecryptionShare:
    """One holder's partial decryption of a ciphertext vector, with its proof(s) of correctness.

    :param holder: the holder's index (1 in single-key mode).
    :param key_fingerprint: the public key's fingerprint.
    :param values: ``c^(2Δ·s_i) mod n²`` per ciphertext (single-key: ``1 + n·x mod n²``).
    :param proofs: Fiat-Shamir proofs ``(e, z)``: one for the whole vector (``batch``), one per value
        (``per-value``), or none (``none``, single-key mode).
    :param proof: which of the three.
    :param ciphertext_digest: SHA-256 of the ciphertexts decrypted, so a share for other ciphertexts is
        named as such.
    """

    holder: int
    key_fingerprint: str
    values: list[int]
    proofs: list[tuple[int, int]]
    proof: ProofKind = "batch"
    ciphertext_digest: str = field(default="")

    def __repr__(self) -> str:
        return (
            f"DecryptionShare(holder={self.holder}, key_fingerprint={self.key_fingerprint!r}, "
            f"values={len(self.values)}, proof={self.proof!r})"
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: values as base64 of fixed-width big-endian numbers, proofs as decimal strings."""
        width = max(((v.bit_length() + 7) // 8 for v in self.values), default=1)
        return {
            "schema": SHARE_SCHEMA,
            "holder": self.holder,
            "key_fingerprint": self.key_fingerprint,
            "ciphertext_digest": self.ciphertext_digest,
            "proof": self.proof,
            "width": width,
            "count": len(self.values),
            "values": base64.b64encode(b"".join(v.to_bytes(width, "big") for v in self.values)).decode("ascii"),
            "proofs": [[str(e), str(z)] for e, z in self.proofs],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DecryptionShare:
        """Read :meth:`to_json` output (validity against a key is :func:`verify_share`'s job).

        :raises ConfigurationError: another schema or version, or a malformed field.
        """
        if not isinstance(data, dict) or data.get("schema") != SHARE_SCHEMA:
            found = data.get("schema") if isinstance(data, dict) else type(data).__name__
            raise ConfigurationError("schema", f"is {found!r}, expected {SHARE_SCHEMA!r}", "pass share.to_json()")
        try:
            width, count = int(data["width"]), int(data["count"])
            raw = base64.b64decode(str(data["values"]).encode("ascii"), validate=True)
            proofs = [(int(str(e)), int(str(z))) for e, z in data["proofs"]]
            holder = data["holder"]
            kind = data["proof"]
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise ConfigurationError(
                "decryption share", f"is malformed ({type(exc).__name__})", "pass share.to_json()"
            ) from None
        if width < 1 or len(raw) != width * count or kind not in ("batch", "per-value", "none"):
            raise ConfigurationError("decryption share", "has inconsistent width, count or proof", "re-export it")
        if isinstance(holder, bool) or not isinstance(holder, int):
            raise ConfigurationError("holder", f"is {holder!r}", "write it as a JSON integer")
        values = [int.from_bytes(raw[i * width : (i + 1) * width], "big") for i in range(count)]
        return cls(
            holder=holder,
            key_fingerprint=str(data.get("key_fingerprint")),
            values=values,
            proofs=proofs,
            proof=kind,
            ciphertext_digest=str(data.get("ciphertext_digest", "")),
        )


def _put(h: Any, item: int | bytes | str) -> None:
    """Feed one length-prefixed item to the hash, so no two different sequences hash alike."""
    if isinstance(item, str):
        item = item.encode("utf-8")
    elif isinstance(item, int):
        item = item.to_bytes((item.bit_length() + 7) // 8 or 1, "big")
    h.update(len(item).to_bytes(8, "big"))
    h.update(item)


def _hash(*items: int | bytes | str) -> bytes:
    h = hashlib.sha256(_DOMAIN)
    for item in items:
        _put(h, item)
    return h.digest()


def _digest(values: Iterable[int]) -> str:
    h = hashlib.sha256(_DOMAIN + b"/vector")
    for value in values:
        _put(h, value)
    return "sha256:" + h.hexdigest()


def _powmod(base: Any, exponent: int, modulus: Any, constant_time: bool) -> Any:
    return gmpy2.powmod_sec(base, exponent, modulus) if constant_time else gmpy2.powmod(base, exponent, modulus)


# --- proofs -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Statement:
    """What every proof of one holder is about: its key, its index and its verification key."""

    fingerprint: str
    holder: int
    nsquare: int
    v: int
    v_i: int
    nonce_bits: int

    @classmethod
    def of(cls, public: PublicKey, holder: int) -> _Statement:
        bits = (public.delta * public.nsquare).bit_length() + _CHALLENGE_BITS + _HIDING_BITS
        return cls(
            public.fingerprint,
            holder,
            public.nsquare,
            public.verification_base,
            public.verification_keys[holder],
            bits,
        )

    def challenge(self, base: int, target: int, a: int, b: int) -> int:
        digest = _hash(b"proof", self.fingerprint, self.holder, self.v, self.v_i, base, target, a, b)
        return int.from_bytes(digest, "big")

    def prove(self, base: int, target: int, witness: int) -> tuple[int, int]:
        """Prove ``target = base^w`` and ``v_i = v^w`` for the same ``w`` (base = c^4, target = c_i²)."""
        r = secrets.randbits(self.nonce_bits)
        a = int(gmpy2.powmod_sec(base, r, self.nsquare))
        b = int(gmpy2.powmod_sec(self.v, r, self.nsquare))
        e = self.challenge(base, target, a, b)
        return e, r + e * witness

    def check(self, base: int, target: int, proof: tuple[int, int]) -> bool:
        e, z = proof
        if not 0 <= e < 1 << _CHALLENGE_BITS or not 0 <= z < 1 << (self.nonce_bits + 1):
            return False
        try:
            a = gmpy2.powmod(base, z, self.nsquare) * gmpy2.powmod(target, -e, self.nsquare) % self.nsquare
            b = gmpy2.powmod(self.v, z, self.nsquare) * gmpy2.powmod(self.v_i, -e, self.nsquare) % self.nsquare
        except (ValueError, ZeroDivisionError):  # target or v_i not invertible mod n²
            return False
        return self.challenge(base, target, int(a), int(b)) == e


def _weights(statement: _Statement, ciphertext_digest: str, values: Sequence[int]) -> list[int]:
    """The batch weights ρ_j, hashed from the ciphertexts and the holder's values (so fixed after both)."""
    seed = _hash(b"weights", statement.fingerprint, statement.holder, ciphertext_digest, _digest(values))
    return [
        int.from_bytes(hashlib.sha256(seed + j.to_bytes(8, "big")).digest()[:_WEIGHT_BYTES], "big") | 1
        for j in range(len(values))
    ]


def _weighted_product(nsquare: int, bases: Sequence[int], weights: Sequence[int]) -> int:
    """Π bases_j^weights_j mod n² (public exponents)."""
    modulus = gmpy2.mpz(nsquare)
    total = gmpy2.mpz(1)
    for base, weight in zip(bases, weights, strict=True):
        total = total * gmpy2.powmod(base, weight, modulus) % modulus
    return int(total)


def _step(count: int, client: Any | None) -> int:
    """Items per Dask task: about four tasks per worker (or everything at once without a client)."""
    if client is None:
        return max(count, 1)
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    return max(1, math.ceil(count / (4 * workers)))


def _batch_statement(
    statement: _Statement, ciphertexts: Sequence[int], values: Sequence[int], digest: str, client: Any | None
) -> tuple[int, int]:
    """``(C^4, D²)`` for the batch proof, the products spread over ``client``'s workers if given."""
    weights = _weights(statement, digest, values)
    nsquare = statement.nsquare
    if client is None:
        big_c = _weighted_product(nsquare, ciphertexts, weights)
        big_d = _weighted_product(nsquare, values, weights)
    else:
        step = _step(len(values), client)
        parts = [
            (
                client.submit(_weighted_product, nsquare, ciphertexts[s : s + step], weights[s : s + step]),
                client.submit(_weighted_product, nsquare, values[s : s + step], weights[s : s + step]),
            )
            for s in range(0, len(values), step)
        ]
        big_c, big_d = 1, 1
        for fc, fd in parts:
            big_c, big_d = big_c * fc.result() % nsquare, big_d * fd.result() % nsquare
    return pow(big_c, 4, nsquare), pow(big_d, 2, nsquare)


# --- partial decryption -----------------------------------------------------------------------------------


def _partial_batch(nsquare: int, exponent: int, ciphertexts: list[int], constant_time: bool) -> list[int]:
    """``c^exponent mod n²`` for each ciphertext (the worker side of a threshold partial decryption)."""
    if constant_time:
        modulus = gmpy2.mpz(nsquare)
        return [int(gmpy2.powmod_sec(c, exponent, modulus)) for c in ciphertexts]
    return [int(x) for x in gmpy2.powmod_base_list(ciphertexts, exponent, nsquare)]


def _per_value_batch(
    statement: _Statement, witness: int, ciphertexts: list[int], constant_time: bool
) -> tuple[list[int], list[tuple[int, int]]]:
    """Partial decryptions and one proof each (the worker side of ``proof="per-value"``)."""
    nsquare = statement.nsquare
    values = _partial_batch(nsquare, 2 * witness, ciphertexts, constant_time)
    proofs = [
        statement.prove(pow(c, 4, nsquare), pow(x, 2, nsquare), witness)
        for c, x in zip(ciphertexts, values, strict=True)
    ]
    return values, proofs


def _single_key_batch(n: int, p: int, ciphertexts: list[int], constant_time: bool) -> list[int]:
    """Single-key decryption by the CRT (as phe): ``1 + n·x mod n²`` for each plaintext ``x``."""
    q = n // p
    nsquare = n * n
    out = []
    parts = []
    for prime in (p, q):
        square = gmpy2.mpz(prime) * prime
        # h = L_prime((n + 1)^(prime - 1) mod prime²)^-1 mod prime, phe's hp / hq
        h = gmpy2.invert((gmpy2.powmod(n + 1, prime - 1, square) - 1) // prime, prime)
        parts.append((prime, square, h))
    (p_, p2, hp), (q_, q2, hq) = parts
    p_inverse = gmpy2.invert(p_, q_)
    for c in ciphertexts:
        mp = (_powmod(c % p2, p_ - 1, p2, constant_time) - 1) // p_ * hp % p_
        mq = (_powmod(c % q2, q_ - 1, q2, constant_time) - 1) // q_ * hq % q_
        x = mp + (mq - mp) * p_inverse % q_ * p_
        out.append(int((1 + n * x) % nsquare))
    return out


def partial_decrypt(
    share: KeyShare,
    public: PublicKey,
    ciphertexts: Sequence[int],
    *,
    client: Any | None = None,
    batch: int = 64,
    proof: Literal["batch", "per-value"] = "batch",
    constant_time: bool = True,
    allow_remote: bool = False,
) -> DecryptionShare:
    """One holder's decryption share of ``ciphertexts``, with proof; over ``client``'s Dask workers if given.

    In single-key mode the share is the full decryption (``proof="none"``).

    :param client: a Dask client on this holder's machine (the secret exponent is sent to its workers).
    :param batch: ciphertexts per Dask task.
    :param proof: ``"batch"`` (one proof for the vector) or ``"per-value"``.
    :param constant_time: use GMP's side-channel-silent exponentiation for secret exponents.
    :raises ConfigurationError: the share is of another key, a ciphertext is not in ``(0, n²)``, or the
        client has remote workers without ``allow_remote``.
    """
    if share.key_fingerprint != public.fingerprint or share.mode != public.mode:
        raise ConfigurationError(
            "share", f"is for key {share.key_fingerprint}, not {public.fingerprint}", "use this key's share"
        )
    if proof not in ("batch", "per-value"):
        raise ConfigurationError("proof", f"is {proof!r}", "use 'batch' or 'per-value'")
    _check_batch(batch)
    _check_ciphertexts(public, ciphertexts, "ciphertexts")
    if client is not None:
        require_local_cluster(client, allow_remote)
    digest = _digest(ciphertexts)
    chunks = [list(ciphertexts[s : s + batch]) for s in range(0, len(ciphertexts), batch)]

    def run(function: Any, *args: Any) -> list[Any]:
        if client is None:
            return [function(*args, chunk, constant_time) for chunk in chunks]
        futures = [client.submit(function, *args, chunk, constant_time, pure=False) for chunk in chunks]
        return list(client.gather(futures))

    if public.mode == "single-key":
        values = [x for part in run(_single_key_batch, public.n, share.secret) for x in part]
        return DecryptionShare(share.holder, public.fingerprint, values, [], "none", digest)
    witness = share.delta * share.secret
    statement = _Statement.of(public, share.holder)
    if proof == "per-value":
        results = run(_per_value_batch, statement, witness)
        values = [x for part, _ in results for x in part]
        proofs = [pr for _, part in results for pr in part]
        return DecryptionShare(share.holder, public.fingerprint, values, proofs, "per-value", digest)
    values = [x for part in run(_partial_batch, public.nsquare, 2 * witness) for x in part]
    base, target = _batch_statement(statement, ciphertexts, values, digest, client)
    return DecryptionShare(
        share.holder, public.fingerprint, values, [statement.prove(base, target, witness)], "batch", digest
    )


# --- verification and combination -------------------------------------------------------------------------


def check_share(
    public: PublicKey, ciphertexts: Sequence[int], share: DecryptionShare, *, client: Any | None = None
) -> str | None:
    """Why ``share`` is not a valid decryption share of ``ciphertexts`` under ``public``, or None if it is.

    :param client: a Dask client to spread the verification over (only public values are sent).
    """
    if share.key_fingerprint != public.fingerprint:
        return "made with another key"
    if len(share.values) != len(ciphertexts):
        return f"has {len(share.values)} values for {len(ciphertexts)} ciphertexts"
    digest = _digest(ciphertexts)
    if share.ciphertext_digest and share.ciphertext_digest != digest:
        return "decrypts other ciphertexts"
    nsquare = public.nsquare
    if any(isinstance(x, bool) or not isinstance(x, int) or not 0 < x < nsquare for x in share.values):
        return "has values outside (0, n²)"
    if public.mode == "single-key":
        if share.holder != 1 or share.proof != "none":
            return "is not a single-key share"
        if any(x % public.n != 1 for x in share.values):
            return "has values that are not decryptions"
        return None
    if share.holder not in public.verification_keys:
        return f"holder {share.holder} is not one of 1..{public.holders}"
    statement = _Statement.of(public, share.holder)
    if share.proof == "batch":
        if len(share.proofs) != 1:
            return "needs exactly one batch proof"
        base, target = _batch_statement(statement, ciphertexts, share.values, digest, client)
        return None if statement.check(base, target, share.proofs[0]) else "fails its proof"
    if share.proof == "per-value":
        if len(share.proofs) != len(share.values):
            return "needs one proof per value"
        step = _step(len(ciphertexts), client)
        pieces = [
            (statement, ciphertexts[s : s + step], share.values[s : s + step], share.proofs[s : s + step])
            for s in range(0, len(ciphertexts), step)
        ]
        if client is None:
            results = [_check_per_value(*piece) for piece in pieces]
        else:
            results = client.gather([client.submit(_check_per_value, *piece) for piece in pieces])
        return None if all(results) else "fails its proof"
    return "has no proof"


def _check_per_value(
    statement: _Statement, ciphertexts: Sequence[int], values: Sequence[int], proofs: Sequence[tuple[int, int]]
) -> bool:
    nsquare = statement.nsquare
    return all(
        statement.check(pow(c, 4, nsquare), pow(x, 2, nsquare), proof)
        for c, x, proof in zip(ciphertexts, values, proofs, strict=True)
    )


def verify_share(
    public: PublicKey, ciphertexts: Sequence[int], share: DecryptionShare, *, client: Any | None = None
) -> bool:
    """Whether ``share`` is a correct, proved partial decryption of ``ciphertexts`` under ``public``."""
    return check_share(public, ciphertexts, share, client=client) is None


def lagrange_coefficients(holders: Sequence[int], delta: int) -> dict[int, int]:
    """Integer ``λ_j = Δ·Π_{j'≠j} j'/(j' - j)`` for interpolating at 0 from ``holders`` (exact: Δ clears them)."""
    out = {}
    for j in holders:
        numerator, denominator = delta, 1
        for other in holders:
            if other != j:
                numerator *= other
                denominator *= other - j
        quotient, remainder = divmod(numerator, denominator)
        if remainder:  # impossible for distinct holders within 1..ℓ with Δ = ℓ!
            raise ConfigurationError("holders", f"{list(holders)} do not interpolate with Δ={delta}", "re-deal")
        out[j] = quotient
    return out


def combine(
    public: PublicKey,
    ciphertexts: Sequence[int],
    shares: Sequence[DecryptionShare],
    *,
    client: Any | None = None,
) -> list[int]:
    """The plaintexts of ``ciphertexts`` from at least ``t`` valid shares of distinct holders.

    Every share used is verified first; invalid ones are skipped and named if too few valid ones remain.
    Single-key mode: the one holder's share is the decryption.

    :param client: a Dask client to spread share verification over (only public values are sent).

    :raises InsufficientSharesError: fewer than ``t`` valid shares of distinct holders (it says how many more
        are needed and which holders' shares were refused, and why).
    :raises ConfigurationError: a ciphertext not in ``(0, n²)``.
    """
    _check_ciphertexts(public, ciphertexts, "ciphertexts")
    n, nsquare = public.n, public.nsquare
    valid: dict[int, DecryptionShare] = {}
    invalid: dict[int, str] = {}
    for share in sorted(shares, key=lambda s: s.holder):
        if len(valid) == public.threshold:
            break
        if share.holder in valid:
            continue
        problem = check_share(public, ciphertexts, share, client=client)
        if problem is None:
            valid[share.holder] = share
            invalid.pop(share.holder, None)
        else:
            invalid[share.holder] = problem
    if len(valid) < public.threshold:
        raise InsufficientSharesError(public.threshold, list(valid), invalid)
    if public.mode == "single-key":
        return [(x - 1) // n for x in valid[1].values]
    lam = lagrange_coefficients(sorted(valid), public.delta)
    scale = int(gmpy2.invert(4 * public.delta**2, n))
    modulus = gmpy2.mpz(nsquare)
    plaintexts = []
    try:
        for index in range(len(ciphertexts)):
            total = gmpy2.mpz(1)
            for holder, share in valid.items():
                total = total * gmpy2.powmod(share.values[index], 2 * lam[holder], modulus) % modulus
            plaintexts.append(int((total - 1) // n * scale % n))
    except ValueError:  # a value not invertible mod n²: only a ciphertext sharing a factor with n gives one
        raise ConfigurationError(
            "ciphertexts", "include one that is not invertible mod n²", "recompute the aggregate from valid uploads"
        ) from None
    return plaintexts
