"""What the ledger accepts and stores as values: exact amounts as ``"num/den"`` text, checked names and
JSON objects, and the canonical JSON that is hashed. Kept apart so entries, SQL and checks share one format."""

from __future__ import annotations

import json
import re
from fractions import Fraction
from typing import Any, Final

from privacy_core.dp.accounting import Accounting
from privacy_core.errors import ConfigurationError

__all__ = [
    "MAX_DATASET_LENGTH",
    "MAX_KEY_LENGTH",
    "canonical_json",
    "exact_amount",
    "fraction_text",
    "parse_fraction_text",
]

#: Limits that keep names usable as keys in both databases and in the entry schema.
MAX_DATASET_LENGTH: Final = 200
MAX_KEY_LENGTH: Final = 1000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FRACTION_TEXT = re.compile(r"^(0|[1-9][0-9]*)/([1-9][0-9]*)$")


def fraction_text(value: Fraction) -> str:
    """An exact amount as stored: ``"num/den"`` in lowest terms, even for integers.

    >>> fraction_text(Fraction(2, 4)), fraction_text(Fraction(3))
    ('1/2', '3/1')
    """
    return f"{value.numerator}/{value.denominator}"


def parse_fraction_text(text: object) -> Fraction:
    """The inverse of :func:`fraction_text`; ValueError for anything else (a tampered or foreign row)."""
    match = _FRACTION_TEXT.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not an amount written 'num/den'")
    return Fraction(int(match[1]), int(match[2]))


def exact_amount(value: object, setting: str) -> Fraction:
    """``value`` (a Fraction, an int, or a string such as ``"1/7"`` or ``"0.1"``) as an exact amount above 0.

    Floats are refused: ``0.1`` is not one tenth, and a cap compared in floats can be overspent.

    >>> exact_amount("0.1", "cost")
    Fraction(1, 10)
    """
    if isinstance(value, float):
        raise ConfigurationError(
            setting, f"is the float {value!r}; amounts must be exact", f"pass Fraction({str(value)!r}) instead"
        )
    if isinstance(value, bool) or not isinstance(value, Fraction | int | str):
        raise ConfigurationError(
            setting,
            f"is {type(value).__name__}, not an exact number",
            f"give {setting} as a Fraction, e.g. Fraction(1, 10)",
        )
    try:
        exact = Fraction(value)
    except (ValueError, ZeroDivisionError):
        raise ConfigurationError(setting, f"{value!r} is not a number", "give e.g. Fraction(1, 10) or '1/10'") from None
    if exact <= 0:
        raise ConfigurationError(setting, f"is {exact}, not above zero", f"give {setting} a value above zero")
    return exact


def _check_name(value: object, setting: str, limit: int) -> str:
    """A dataset name or key: a non-empty string without control characters, at most ``limit`` long."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(setting, f"is {value!r}, not a non-empty string", f"give the {setting} a name")
    if len(value) > limit or _CONTROL.search(value):
        raise ConfigurationError(
            setting,
            f"is {len(value)} characters or holds control characters",
            f"use at most {limit} printable characters",
        )
    return value


def _check_json_object(value: object, setting: str) -> dict[str, Any]:
    """``value`` as it will be stored and read back: a copy through strict JSON (no NaN or infinity), so what a
    caller gets from the ledger is exactly what was hashed, and later changes to ``value`` do not leak in."""
    if not isinstance(value, dict):
        raise ConfigurationError(setting, f"is {type(value).__name__}, not a dict", f"pass {setting} as a JSON object")
    try:
        stored: dict[str, Any] = json.loads(canonical_json(value))
    except (TypeError, ValueError) as exc:
        problem = f"is not strict JSON ({exc})"
        raise ConfigurationError(setting, problem, "use strings, finite numbers, lists and dicts") from None
    return stored


def _check_delta(accounting: Accounting, delta: object) -> float | None:
    if delta is None:
        return None
    if accounting != "zcdp":
        raise ConfigurationError("delta", "is given for pure-dp, which has no δ", "leave delta=None, or use zcdp")
    if isinstance(delta, bool) or not isinstance(delta, float | int) or not 0 < delta < 1:
        raise ConfigurationError("delta", f"is {delta!r}, not strictly between 0 and 1", "give e.g. delta=1e-6")
    return float(delta)


def canonical_json(value: Any) -> bytes:
    """The bytes hashed and stored: sorted keys, no whitespace, UTF-8, strict JSON."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
