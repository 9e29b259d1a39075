"""Exact discrete Laplace and discrete Gaussian noise, vectorized over a ChaCha20 keystream.

The samplers follow Canonne, Kamath and Steinke 2020 ("The Discrete Gaussian for Differential Privacy"):
their outputs have *exactly* the stated distribution for the exact rational parameter, with no
floating-point shortcut of the kind Mironov (2012) showed leaks through low-order bits.

Exact and fast at once, by *lazy uniforms*. A 53-bit integer R from
:class:`~privacy_core.dp.random.SecureRandom` stands for a real uniform U in ``[R/2**53, (R+1)/2**53)``
whose further bits are drawn only if needed. Comparisons of U with a threshold are made in float64 on whole
arrays with a rigorous relative margin (:data:`_REL_MARGIN`); when U's whole interval lies clearly on one
side, that is the exact answer. Otherwise (about 2e-12 per comparison, times the scale for inversions) that
element alone takes a slow exact path: it extends the *same* U with fresh bits and compares it with the
threshold enclosed by correctly rounded :mod:`decimal` arithmetic, raising precision until decided.

* Discrete Laplace ``P(x) ∝ exp(-|x|/s)``, ``q = exp(-1/s)``: ``|X|`` by inversion of its tail
  ``P(|X| >= k) = 2q**k/(1+q)``, i.e. ``|X| = floor(s·(ln(2/(1+q)) - ln U))``, decided in the log domain
  (one log per draw), with a fair sign from a spare bit of the same keystream word; nothing is rejected.
* Geometric ``P(G = k) = (1 - q) q**k``: ``G = floor(-s ln U)``, i.e. ``exp(-(k+1)/s) <= U < exp(-k/s)``
  (up to a null set), which the slow path checks exactly.
* Above :data:`_INVERSION_MAX_SCALE` the float check would be ambiguous too often, so the Laplace is a
  geometric magnitude with a fair sign, (minus, 0) rejected (CKS Algorithm 2), and the geometric is
  ``G = m·A + B`` with ``m = floor(s)``, ``A ~ Geometric(exp(-m/s))`` by inversion and ``B`` on
  ``{0..m-1}`` with ``P(B = b) ∝ exp(-b/s)`` by exact rejection.
* Discrete Gaussian ``P(x) ∝ exp(-x²/(2σ²))``: CKS Algorithm 3, ``t = floor(σ) + 1``, ``Y ~ DLap(t)``, accept
  with probability ``exp(-(|Y| - σ²/t)²/(2σ²))``, in vectorized rounds over the elements not yet accepted.
"""

from __future__ import annotations

import decimal
import math
import numbers
from collections.abc import Callable
from fractions import Fraction
from functools import lru_cache, partial
from typing import TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from privacy_core.dp.random import UNIFORM_BITS, SecureRandom, default_random
from privacy_core.errors import ConfigurationError

__all__ = [
    "MAX_LAPLACE_SCALE",
    "MAX_SIGMA_SQ",
    "discrete_gaussian",
    "discrete_laplace",
    "gaussian_pmf",
    "laplace_pmf",
    "quantize",
]

Number: TypeAlias = int | float | Fraction | decimal.Decimal
Size: TypeAlias = int | tuple[int, ...]
#: Lower and upper bound of an exact threshold, as a function of the decimal digits asked for.
Enclosure: TypeAlias = Callable[[int], tuple[Fraction, Fraction]]

#: Largest discrete Laplace scale accepted: 2**40 (about 1.1e12). Draws then reach 2**63 only with
#: probability exp(-2**23), so int64 output cannot overflow in practice; a wider scale swamps any statistic.
MAX_LAPLACE_SCALE = Fraction(2**40)
#: Largest discrete Gaussian σ² accepted: 2**80, i.e. σ up to 2**40, for the same int64 headroom.
MAX_SIGMA_SQ = Fraction(2**80)

#: Relative error margin of every float64 threshold. The float error is a few ulp (about 1e-15): the
#: exp/log error plus the rounding of the argument, which is at most ~6 ulp of an exponent below 746 (and
#: exponents above that only matter through underflow, handled by the strict comparisons). 1e-12 leaves a
#: factor of several hundred; the test suite re-measures NumPy's exp/log error against :mod:`decimal`.
_REL_MARGIN = 1e-12
#: Up to this scale the geometric is sampled by inversion alone; the float check is then ambiguous with
#: probability about 2 · margin · scale (2e-6 here), each costing a slow draw of about 0.1 ms.
_INVERSION_MAX_SCALE = Fraction(2**20)
#: Elements per vectorized round. Each temporary (8 bytes an element) stays just under glibc's default
#: 128 KiB mmap threshold, so it comes from the heap, warm in cache, instead of freshly mapped pages that
#: fault on first touch: measured 4-6x faster than 64k-element rounds once other code has churned malloc.
_CHUNK = (1 << 14) - 64
#: Decimal digits of the first slow-path enclosure (about 2**-133) and the increase per undecided round.
_START_DIGITS = 40
_MORE_DIGITS = 20
#: Fresh bits appended to a lazy uniform per undecided round.
_MORE_BITS = 64
_TWO_POW_M53 = 2.0**-UNIFORM_BITS
#: A rational just above ln(10) = 2.302585...
_LN10_ABOVE = Fraction(2303, 1000)


# ---------------------------------------------------------------------------------------------------------
# Parameters


def _exact_positive(setting: str, value: object, upper: Fraction | None = None) -> Fraction:
    """``value`` as an exact positive Fraction (a float converts exactly), or a ConfigurationError."""
    fix = f"pass {setting} as a positive int, fractions.Fraction or finite float, e.g. Fraction(3, 2)"
    if isinstance(value, bool) or not isinstance(value, numbers.Real | decimal.Decimal):
        raise ConfigurationError(setting, f"is {value!r} of type {type(value).__name__}, not a number", fix)
    if isinstance(value, numbers.Rational):
        exact = Fraction(int(value.numerator), int(value.denominator))
    elif isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise ConfigurationError(setting, f"is {value!r}, not a finite number", fix)
        exact = Fraction(value)
    else:
        if not math.isfinite(float(value)):
            raise ConfigurationError(setting, f"is {value!r}, not a finite number", fix)
        exact = Fraction(float(value))
    if exact <= 0:
        raise ConfigurationError(setting, f"is {value!r}, not above zero", fix)
    if upper is not None and exact > upper:
        raise ConfigurationError(
            setting,
            f"is {float(exact):.4g}, above the supported maximum {float(upper):.4g} (int64 noise could overflow)",
            "check the sensitivity and privacy loss behind it, or quantize the statistic more coarsely",
        )
    return exact


def _float_or_inf(value: Fraction) -> float:
    """``float(value)`` for a non-negative Fraction, or inf where that would overflow (tiny parameters)."""
    return float(value) if value < 2**1023 else math.inf


def _shape(size: object) -> tuple[int, ...]:
    """``size`` as a shape tuple of non-negative ints, or a ConfigurationError naming ``size``."""
    fix = "pass a non-negative int or a tuple of them, e.g. 1000 or (64, 64)"
    dims = size if isinstance(size, tuple) else (size,)
    shape: list[int] = []
    for dim in dims:
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            raise ConfigurationError("size", f"is {size!r}, not an int or a tuple of ints", fix)
        if int(dim) < 0:
            raise ConfigurationError("size", f"is {size!r}, with a negative dimension", fix)
        shape.append(int(dim))
    return tuple(shape)


# ---------------------------------------------------------------------------------------------------------
# The slow exact path


@lru_cache(maxsize=4096)
def exp_neg_enclosure(exponent: Fraction, digits: int) -> tuple[Fraction, Fraction]:
    """Rationals ``lo <= exp(-exponent) <= hi``, tighter as ``digits`` grows.

    The exponent is exact; :mod:`decimal` divides it and takes the exp, both correctly rounded, at a precision
    of ``digits`` plus the digits of its integer part, so the argument's absolute error and the result's
    relative error both stay below ``1e-digits``; the width returned is a generous ``4e-(digits-1)`` of the
    value. A value below ``10**(-4·digits)`` is enclosed as ``(0, 10**(-4·digits))`` instead, which keeps the
    rationals small for huge exponents and still shrinks as ``digits`` grows.

    >>> lo, hi = exp_neg_enclosure(Fraction(1), 30)
    >>> lo < Fraction(367879441171442321595523770161, 10**30) < hi
    True
    """
    if exponent < 0:
        raise ValueError(f"exponent={exponent} is negative; the thresholds are exp(-E) with E >= 0")
    if exponent == 0:
        return Fraction(1), Fraction(1)
    orders = 4 * digits
    if exponent > _LN10_ABOVE * orders:  # so exp(-exponent) < 10**-orders
        return Fraction(0), Fraction(1, 10**orders)
    integer_digits = len(str(exponent.numerator // exponent.denominator))
    context = decimal.Context(
        prec=digits + integer_digits,
        rounding=decimal.ROUND_HALF_EVEN,
        Emin=decimal.MIN_EMIN,
        Emax=decimal.MAX_EMAX,
        traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
    )
    # Context methods only: Decimal operators (even unary minus) round to the caller's getcontext().
    argument = context.divide(exponent.numerator, exponent.denominator)
    value = Fraction(context.exp(context.minus(argument)))
    relative = Fraction(4, 10 ** (digits - 1))
    return value * (1 - relative), value * (1 + relative)


def _exp_neg(exponent: Fraction) -> Enclosure:
    """The enclosure function of ``exp(-exponent)`` for :meth:`LazyUniform.less_than`."""
    return partial(exp_neg_enclosure, exponent)


class LazyUniform:
    """A uniform U known to ``bits`` bits, ``numer/2**bits <= U < (numer+1)/2**bits``, refined on demand.

    Extending U with fresh bits, rather than drawing a new uniform, keeps every comparison made on it
    consistent: the answer to ``U < p`` is the answer for one fixed real U, whatever else was asked of it.

    >>> u = LazyUniform(1, 1, SecureRandom())  # U in [1/2, 1)
    >>> u.less_than(lambda digits: (Fraction(1, 4), Fraction(1, 4)))
    False
    """

    __slots__ = ("bits", "numer", "rng")

    def __init__(self, numer: int, bits: int, rng: SecureRandom) -> None:
        self.numer = numer
        self.bits = bits
        self.rng = rng

    def refine(self, extra: int = _MORE_BITS) -> None:
        """Append ``extra`` fresh random bits to U."""
        self.numer = (self.numer << extra) | self.rng.bits(extra)
        self.bits += extra

    def less_than(self, threshold: Enclosure) -> bool:
        """Whether ``U < p`` exactly, for the real ``p`` that ``threshold(digits)`` encloses ever more tightly."""
        digits = _START_DIGITS
        while True:
            lo, hi = threshold(digits)
            if Fraction(self.numer + 1, 1 << self.bits) <= lo:
                return True
            if Fraction(self.numer, 1 << self.bits) >= hi:
                return False
            self.refine()
            digits += _MORE_DIGITS

    def log_estimate(self) -> float:
        """``ln`` of U's current midpoint, in float; only a guess to start an exact search from."""
        return math.log(2 * self.numer + 1) - (self.bits + 1) * math.log(2)


def _search_slow(
    u: LazyUniform, threshold: Callable[[int], Enclosure], estimate: Callable[[], int], guess: int | None
) -> int:
    """The k >= 0 with ``T(k+1) <= U < T(k)`` for a decreasing threshold ``T`` with ``T(0) >= 1``, exactly.

    Every comparison is made on the same lazy uniform ``u``; ``estimate`` (from u's current bits) and
    ``guess`` only choose where to look, so a wrong one costs steps, never correctness.
    """
    k = estimate() if guess is None else max(0, guess)
    while True:
        if k > 0 and not u.less_than(threshold(k)):
            k = min(k - 1, estimate())  # U >= T(k): k is too large
        elif u.less_than(threshold(k + 1)):
            k = max(k + 1, estimate())  # U < T(k+1): k is too small
        else:
            return k


def _geometric_slow(u: LazyUniform, scale: Fraction, guess: int | None = None) -> int:
    """The k with ``exp(-(k+1)/scale) <= U < exp(-k/scale)``, decided exactly on the lazy uniform ``u``."""
    inverse = 1 / scale
    s = float(scale)

    def threshold(k: int) -> Enclosure:
        return _exp_neg(k * inverse)

    def estimate() -> int:
        return max(0, math.floor(-s * u.log_estimate()))

    return _search_slow(u, threshold, estimate, guess)


def folded_enclosure(k: int, scale: Fraction, digits: int) -> tuple[Fraction, Fraction]:
    """Rationals enclosing ``P(|X| >= k) = 2·exp(-k/s) / (1 + exp(-1/s))`` of the discrete Laplace, ``k >= 1``."""
    top_lo, top_hi = exp_neg_enclosure(k / scale, digits)
    q_lo, q_hi = exp_neg_enclosure(1 / scale, digits)
    return 2 * top_lo / (1 + q_hi), 2 * top_hi / (1 + q_lo)


@lru_cache(maxsize=256)
def _folded_offset(scale: Fraction) -> float:
    """``ln(2 / (1 + exp(-1/s)))`` in float64, through decimal so the float is correctly rounded or nearly."""
    context = decimal.Context(prec=40)
    q = context.exp(context.minus(context.divide(scale.denominator, scale.numerator)))
    return float(context.ln(context.divide(2, context.add(1, q))))


def _folded_slow(u: LazyUniform, scale: Fraction, guess: int | None = None) -> int:
    """The k with ``P(|X| >= k+1) <= U < P(|X| >= k)`` for the discrete Laplace, exactly on ``u``."""
    s, offset = float(scale), _folded_offset(scale)

    def threshold(k: int) -> Enclosure:
        return partial(folded_enclosure, k, scale)

    def estimate() -> int:
        return max(0, math.floor(s * (offset - u.log_estimate())))

    return _search_slow(u, threshold, estimate, guess)


# ---------------------------------------------------------------------------------------------------------
# Vectorized building blocks


def _bernoulli_exp(
    exponent: NDArray[np.float64], exact: Callable[[int], Fraction], rng: SecureRandom
) -> NDArray[np.bool_]:
    """Independent ``Bernoulli(exp(-E_i))`` draws, exact: ``U_i < exp(-E_i)``.

    :param exponent: float64 approximations of the exponents, within a few ulp (see :data:`_REL_MARGIN`).
    :param exact: the exact exponent of element ``i``, asked for only on the slow path.
    """
    r = rng.uniform53(exponent.size)
    lo = r.astype(np.float64)
    hi = lo + 1.0  # R + 1 <= 2**53 is exact in float64
    lo *= _TWO_POW_M53
    hi *= _TWO_POW_M53
    p = np.exp(-exponent)
    yes = hi <= p * (1.0 - _REL_MARGIN)
    decided = yes | (lo > p * (1.0 + _REL_MARGIN))  # strict: R = 0 against p = 0 stays undecided
    if not decided.all():
        for i in np.flatnonzero(~decided):
            u = LazyUniform(int(r[i]), UNIFORM_BITS, rng)
            yes[i] = u.less_than(_exp_neg(exact(int(i))))
    return yes


def _invert(r: NDArray[np.uint64], s: float, offset: float) -> tuple[NDArray[np.int64], NDArray[np.intp]]:
    """``floor(s · (offset - ln U))`` for lazy uniforms ``r``, decided in float64, and the undecided indices.

    With ``U`` in ``[lo, lo + 2**-53)``, ``y = s·(offset - ln U)`` lies in ``(ŷ - s ln(1 + 1/R), ŷ]`` with
    ``ŷ = s·(offset - ln lo)`` (a sum of non-negative terms, so a few ulp of relative error) and
    ``s ln(1 + 1/R) < s/R``. The draw is decided when that interval, widened by the margin, holds no integer.
    Undecided entries (including every R = 0) hold garbage for the slow path to overwrite.
    """
    rf = r.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = rf * _TWO_POW_M53
        np.log(y, out=y)
        np.subtract(offset, y, out=y)
        y *= s  # R = 0 gives +inf
        k = np.floor(y)
        frac = y - k  # exact; NaN for R = 0, which fails both tests
        margin = np.divide(s * (1.0 + _REL_MARGIN), rf, out=rf)
        y *= _REL_MARGIN
        margin += y
        decided = frac > margin
        frac += margin
        decided &= frac < 1.0
        draws = k.astype(np.int64)
    return draws, np.flatnonzero(~decided)


def _start(draws: NDArray[np.int64], i: int) -> int | None:
    """The float guess of an undecided draw as a start for the slow search; None where it was not finite."""
    value = int(draws[i])
    return value if 0 <= value < 2**62 else None


def _geometric_inversion(n: int, scale: Fraction, rng: SecureRandom) -> NDArray[np.int64]:
    """``n`` geometric draws ``floor(-scale · ln U)`` for ``scale <= _INVERSION_MAX_SCALE``."""
    r = rng.uniform53(n)
    draws, undecided = _invert(r, float(scale), 0.0)
    for i in undecided:
        u = LazyUniform(int(r[i]), UNIFORM_BITS, rng)
        draws[i] = _geometric_slow(u, scale, _start(draws, int(i)))
    return draws


def _laplace_inversion(n: int, scale: Fraction, rng: SecureRandom) -> NDArray[np.int64]:
    """``n`` discrete Laplace draws for ``scale <= _INVERSION_MAX_SCALE``, one keystream word each.

    ``|X|`` by inversion of its tail ``P(|X| >= k) = 2q**k/(1+q)`` (``k >= 1``): ``|X| = floor(s·(c - ln U))``
    with ``c = ln(2/(1+q))``, which is 0 exactly when ``U > 2q/(1+q)``; then a fair sign from the word's low
    bit, which the 53-bit uniform does not use. A zero stays zero whatever the sign, so nothing is rejected.
    """
    words = rng.uint64(n)
    sign = (words & np.uint64(1)).astype(np.int64)
    words >>= np.uint64(64 - UNIFORM_BITS)
    magnitude, undecided = _invert(words, float(scale), _folded_offset(scale))
    for i in undecided:
        u = LazyUniform(int(words[i]), UNIFORM_BITS, rng)
        magnitude[i] = _folded_slow(u, scale, _start(magnitude, int(i)))
    # Two's complement: (m XOR -1) + 1 = -m where the sign bit is set, m unchanged where it is not.
    magnitude ^= -sign
    magnitude += sign
    return magnitude


def _randbelow(n: int, bound: int, rng: SecureRandom) -> NDArray[np.int64]:
    """``n`` uniform integers in ``[0, bound)``, ``bound <= 2**62``, by masked rejection (no modulo bias)."""
    mask = np.uint64((1 << (bound - 1).bit_length()) - 1)
    out = np.empty(n, dtype=np.int64)
    filled = 0
    while filled < n:
        words = rng.uint64(n - filled + 16)
        words &= mask
        good = np.compress(words < np.uint64(bound), words)[: n - filled]
        out[filled : filled + good.size] = good
        filled += good.size
    return out


def _truncated_geometric(n: int, modulus: int, scale: Fraction, rng: SecureRandom) -> NDArray[np.int64]:
    """``n`` draws on ``{0..modulus-1}`` with ``P(b) ∝ exp(-b/scale)``: uniform proposals kept w.p. that."""
    inverse = float(1 / scale)
    out = np.empty(n, dtype=np.int64)
    filled = 0
    while filled < n:
        # Acceptance is at least exp(-modulus/scale) >= 1/e, on average about 0.63.
        candidates = _randbelow(min(_CHUNK, 2 * (n - filled) + 16), modulus, rng)
        exponent = candidates.astype(np.float64)
        exponent *= inverse

        def exact(i: int, candidates: NDArray[np.int64] = candidates) -> Fraction:
            return int(candidates[i]) / scale

        kept = np.compress(_bernoulli_exp(exponent, exact, rng), candidates)[: n - filled]
        out[filled : filled + kept.size] = kept
        filled += kept.size
    return out


def _geometric(n: int, scale: Fraction, rng: SecureRandom) -> NDArray[np.int64]:
    """``n`` independent draws with ``P(k) = (1 - q) q**k``, ``q = exp(-1/scale)``, exactly."""
    if scale <= _INVERSION_MAX_SCALE:
        return _geometric_inversion(n, scale, rng)
    # G = m·A + B with A ~ Geometric(q**m) and B on {0..m-1} with P(b) ∝ q**b, independent: then
    # P(G = m·a + b) ∝ q**(m·a) · q**b = q**G. The scale of A is scale/m, in [1, 1 + 2**-20].
    modulus = math.floor(scale)
    high = _geometric_inversion(n, scale / modulus, rng)
    high *= modulus
    high += _truncated_geometric(n, modulus, scale, rng)
    return high


def _signs(n: int, rng: SecureRandom) -> NDArray[np.bool_]:
    """``n`` fair independent booleans, eight per keystream byte."""
    packed = rng.uint64((n + 63) // 64).view(np.uint8)
    return np.unpackbits(packed, count=n).view(np.bool_)


def _laplace_by_rejection(n: int, scale: Fraction, rng: SecureRandom) -> NDArray[np.int64]:
    """``n`` discrete Laplace draws: geometric magnitude, fair sign, (minus, 0) rejected (CKS Algorithm 2).

    Used above :data:`_INVERSION_MAX_SCALE`, where the geometric is decomposed and the rejection rate
    ``(1 - q)/2`` is below 2**-21.
    """
    out = np.empty(n, dtype=np.int64)
    # Acceptance (1 + q)/2: only used to size the batches, never to decide anything.
    acceptance = (1.0 + math.exp(-1.0 / float(scale))) / 2.0
    filled = 0
    while filled < n:
        need = n - filled
        count = min(_CHUNK, math.ceil(need / acceptance * 1.02) + 16)
        magnitude = _geometric(count, scale, rng)
        negative = _signs(count, rng)
        keep = magnitude != 0
        keep |= ~negative
        np.negative(magnitude, out=magnitude, where=negative)
        kept = np.compress(keep, magnitude)[:need]
        out[filled : filled + kept.size] = kept
        filled += kept.size
    return out


def _laplace_flat(n: int, scale: Fraction, rng: SecureRandom) -> NDArray[np.int64]:
    """``n`` exact discrete Laplace draws, in chunks of :data:`_CHUNK`."""
    if scale > _INVERSION_MAX_SCALE:
        return _laplace_by_rejection(n, scale, rng)
    out = np.empty(n, dtype=np.int64)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        out[start:stop] = _laplace_inversion(stop - start, scale, rng)
    return out


def _gaussian_flat(n: int, sigma_sq: Fraction, rng: SecureRandom) -> NDArray[np.int64]:
    """``n`` discrete Gaussian draws by CKS Algorithm 3, in vectorized rejection rounds."""
    t = math.isqrt(sigma_sq.numerator // sigma_sq.denominator) + 1  # floor(σ) + 1, exactly
    center_exact = sigma_sq / t
    center = float(center_exact)
    half_inverse = _float_or_inf(1 / (2 * sigma_sq))
    out = np.empty(n, dtype=np.int64)
    acceptance = 0.5  # refined from each round; sizes the batches only
    filled = 0
    while filled < n:
        need = n - filled
        count = min(_CHUNK, math.ceil(need / acceptance * 1.02) + 16)
        y = _laplace_flat(count, Fraction(t), rng)
        # E = (|Y| - σ²/t)² / (2σ²): |Y| is exact in float; the float E has a relative error of a few ulp
        # plus an absolute error below 1e-15·sqrt(E), far inside the margin for every E that matters. Only a
        # degenerate σ² (below 1e-308) makes half_inverse inf and 0·inf NaN: undecided, so decided exactly.
        a = np.abs(y).astype(np.float64)
        a -= center
        a *= a
        with np.errstate(invalid="ignore"):
            a *= half_inverse

        def exact(i: int, y: NDArray[np.int64] = y) -> Fraction:
            return (abs(int(y[i])) - center_exact) ** 2 / (2 * sigma_sq)

        kept = np.compress(_bernoulli_exp(a, exact, rng), y)
        acceptance = max(0.05, kept.size / count)
        kept = kept[:need]
        out[filled : filled + kept.size] = kept
        filled += kept.size
    return out


# ---------------------------------------------------------------------------------------------------------
# Public API


def discrete_laplace(scale: Number, size: Size, rng: SecureRandom | None = None) -> NDArray[np.int64]:
    """Exact discrete Laplace noise: independent int64 draws with ``P(x) ∝ exp(-|x|/scale)``.

    :param scale: the exact scale ``t`` (for ε-DP, L1 sensitivity / ε in quantized units); a float is taken
        at its exact binary value. At most :data:`MAX_LAPLACE_SCALE`.
    :param size: output shape.
    :param rng: the random source; this process's :func:`~privacy_core.dp.random.default_random` if None.
    :raises ConfigurationError: ``scale`` is not a finite number above zero or is too large, or ``size`` is
        not a shape.

    >>> x = discrete_laplace(Fraction(3, 2), (2, 3))
    >>> x.shape, x.dtype
    ((2, 3), dtype('int64'))
    """
    exact = _exact_positive("scale", scale, MAX_LAPLACE_SCALE)
    shape = _shape(size)
    source = default_random() if rng is None else rng
    return _laplace_flat(math.prod(shape), exact, source).reshape(shape)


def discrete_gaussian(sigma_sq: Number, size: Size, rng: SecureRandom | None = None) -> NDArray[np.int64]:
    """Exact discrete Gaussian noise: independent int64 draws with ``P(x) ∝ exp(-x²/(2σ²))``.

    :param sigma_sq: the exact variance parameter σ² (for ρ-zCDP, squared L2 sensitivity / (2ρ)); a float is
        taken at its exact binary value. At most :data:`MAX_SIGMA_SQ`.
    :param size: output shape.
    :param rng: the random source; this process's :func:`~privacy_core.dp.random.default_random` if None.
    :raises ConfigurationError: ``sigma_sq`` is not a finite number above zero or is too large, or ``size`` is
        not a shape.

    >>> discrete_gaussian(Fraction(1, 4), 5).dtype
    dtype('int64')
    """
    exact = _exact_positive("sigma_sq", sigma_sq, MAX_SIGMA_SQ)
    shape = _shape(size)
    source = default_random() if rng is None else rng
    return _gaussian_flat(math.prod(shape), exact, source).reshape(shape)


def quantize(values: ArrayLike, resolution: Number) -> tuple[NDArray[np.int64], Fraction]:
    """Real statistics as integers in units of ``resolution``, ready for integer noise.

    Each value goes to the nearest multiple of ``resolution``, ties to even (``numpy.rint``), computed in
    float64 as ``value · den / num`` of the exact resolution: two roundings, so a value within about 1e-16
    (relative) of a half-way point may go either way. Rounding moves a value by at most half a unit, so
    quantizing each record's contribution keeps an L1 sensitivity ``Δ`` at ``round(Δ/resolution)`` units;
    quantizing a finished aggregate instead can add one unit. Decode a noisy result as ``n · resolution``.

    :param values: finite real values, any shape.
    :param resolution: the value of one integer unit, exact (a float is taken at its binary value).
    :returns: the int64 array and the exact resolution.
    :raises ConfigurationError: a value is NaN or infinite, ``resolution`` is not above zero, or a value is
        more than 2**53 units (where float64 stops holding every integer).

    >>> quantize([0.123, -2.5, 1.0], Fraction(1, 100))
    (array([  12, -250,  100]), Fraction(1, 100))
    """
    exact = _exact_positive("resolution", resolution)
    data = np.asarray(values, dtype=np.float64)
    if not np.isfinite(data).all():
        raise ConfigurationError(
            "values", "contain NaN or infinity", "drop or impute non-finite statistics before quantizing"
        )
    scaled = data * float(exact.denominator)
    if exact.numerator != 1:
        scaled /= float(exact.numerator)
    np.rint(scaled, out=scaled)
    if scaled.size and float(np.abs(scaled).max()) > 2.0**53:
        raise ConfigurationError(
            "resolution",
            f"is {exact} (≈{float(exact):.3g}), so a value needs more than 2**53 units",
            "use a coarser resolution",
        )
    return scaled.astype(np.int64), exact


def laplace_pmf(k: ArrayLike, scale: Number) -> NDArray[np.float64]:
    """The discrete Laplace probability ``tanh(1/(2s)) · exp(-|k|/s)`` of each ``k``, in float64 (for checks).

    >>> float(laplace_pmf(0, 1))
    0.46211715726000974
    """
    s = float(_exact_positive("scale", scale))
    magnitude = np.abs(np.asarray(k, dtype=np.float64))
    return np.asarray(math.tanh(0.5 / s) * np.exp(-magnitude / s), dtype=np.float64)


def gaussian_pmf(k: ArrayLike, sigma_sq: Number) -> NDArray[np.float64]:
    """The discrete Gaussian probability ``exp(-k²/(2σ²)) / Z`` of each ``k``, in float64 (for checks).

    ``Z`` is summed directly for σ <= 1000 and taken as ``sqrt(2πσ²)`` above, where the Poisson-summation
    correction ``2·exp(-2π²σ²)`` is far below float64 resolution.

    >>> round(float(gaussian_pmf(0, 1)), 6)
    0.398942
    """
    var = float(_exact_positive("sigma_sq", sigma_sq))
    if var <= 1e6:
        reach = math.ceil(40.0 * math.sqrt(var)) + 1
        support = np.arange(-reach, reach + 1, dtype=np.float64)
        normalizer = float(np.exp(-(support**2) / (2.0 * var)).sum())
    else:
        normalizer = math.sqrt(2.0 * math.pi * var)
    values = np.asarray(k, dtype=np.float64)
    return np.asarray(np.exp(-(values**2) / (2.0 * var)) / normalizer, dtype=np.float64)
