"""Many signed integers per Paillier plaintext, in slots wide enough that a sum over sites never overflows.

A site value ``v`` with ``|v| <= B`` is stored as ``v + B`` in ``[0, 2B]``, so the sum of ``S`` sites is in
``[0, 2·B·S]``. A slot therefore needs ``bit_length(2·B·max_sites)`` bits, and a plaintext holds as many slots
as fit in ``key_bits - 1`` bits: any packed plaintext, and any sum of up to ``max_sites`` of them, stays below
``2**(key_bits - 1) <= n``, so homomorphic addition mod ``n`` is exact addition slot by slot. Slot 0 holds the
least significant bits. Values must already be integers, quantized at the site: phe's float encoding is never
used, because its exponent travels in the clear.

The layout refuses anything that could overflow: a bound or site count that leaves no slot, a value outside
``[-B, B]`` (the error gives how many values, never the values), and an unpack over more sites than planned.

>>> layout = SlotLayout.plan(value_bound=1000, max_sites=3, key_bits=512)
>>> layout.slot_bits, layout.slots
(13, 39)
>>> a, b = layout.pack([5, -1000, 7]), layout.pack([1000, -1000, -2])
>>> layout.unpack([x + y for x, y in zip(a, b)], count=3, sites=2).tolist()
[1005, -2000, 5]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from privacy_core.errors import ConfigurationError

__all__ = ["LAYOUT_SCHEMA", "MAX_SLOT_BITS", "SlotLayout"]

LAYOUT_SCHEMA = "PackedSlotLayout/1.0"
#: Slot sums are unpacked into uint64 words and returned as int64, so ``2·B·max_sites`` must stay below 2**64
#: (and every signed sum then fits int64).
MAX_SLOT_BITS = 64
#: A modulus of ``key_bits`` bits is at least ``2**(key_bits - 1)``: one bit of the key is kept free so every
#: packed plaintext and every allowed sum is below ``n``.
SAFETY_BITS = 1


def _positive_int(name: str, value: object, fix: str) -> int:
    """``value`` as an int >= 1, or a ConfigurationError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or int(value) < 1:
        raise ConfigurationError(name, f"must be an integer of at least 1, got {value!r}", fix)
    return int(value)


@dataclass(frozen=True)
class SlotLayout:
    """How signed site values sit in Paillier plaintexts: ``slots`` slots of ``slot_bits`` bits each.

    :param value_bound: B; every site value satisfies ``|v| <= B`` after quantization and noise.
    :param max_sites: the most uploads that will ever be summed before unpacking.
    :param key_bits: bit length of the Paillier modulus the plaintexts are encrypted under.
    :param slot_bits: bits per slot, at least ``bit_length(2·B·max_sites)``.
    :param slots: slots per plaintext, with ``slots·slot_bits <= key_bits - 1``.
    :raises ConfigurationError: the fields are inconsistent, so some sum could overflow a slot or the key.
    """

    value_bound: int
    max_sites: int
    key_bits: int
    slot_bits: int
    slots: int

    def __post_init__(self) -> None:
        bound = _positive_int("value_bound", self.value_bound, "bound the quantized, noised site values by B >= 1")
        sites = _positive_int("max_sites", self.max_sites, "plan for at least one site")
        key_bits = _positive_int("key_bits", self.key_bits, "give the bit length of the Paillier modulus")
        slot_bits = _positive_int("slot_bits", self.slot_bits, "use SlotLayout.plan")
        slots = _positive_int("slots", self.slots, "use SlotLayout.plan")
        needed = (2 * bound * sites).bit_length()
        if slot_bits < needed:
            raise ConfigurationError(
                "slot_bits",
                f"is {slot_bits}, but a sum of {sites} sites of values up to {bound} needs {needed}",
                "use SlotLayout.plan, which computes the width",
            )
        if needed > MAX_SLOT_BITS:
            raise ConfigurationError(
                "value_bound",
                f"2·value_bound·max_sites needs {needed} bits, more than the {MAX_SLOT_BITS} a slot may have",
                "lower value_bound (quantize more coarsely) or max_sites",
            )
        if slots * slot_bits > key_bits - SAFETY_BITS:
            raise ConfigurationError(
                "slots",
                f"{slots} slots of {slot_bits} bits exceed the {key_bits - SAFETY_BITS} usable bits of a "
                f"{key_bits}-bit key",
                "use SlotLayout.plan, which fits the slots to the key",
            )

    @classmethod
    def plan(cls, value_bound: int, max_sites: int, key_bits: int) -> SlotLayout:
        """The densest layout that cannot overflow: the narrowest slot for ``2·B·max_sites``, as many as fit.

        :raises ConfigurationError: B < 1, max_sites < 1, or not even one slot fits the key.

        >>> SlotLayout.plan(value_bound=2**16, max_sites=10, key_bits=2048).slots
        97
        """
        bound = _positive_int("value_bound", value_bound, "bound the quantized, noised site values by B >= 1")
        sites = _positive_int("max_sites", max_sites, "plan for at least one site")
        bits = _positive_int("key_bits", key_bits, "give the bit length of the Paillier modulus")
        slot_bits = (2 * bound * sites).bit_length()
        if slot_bits > MAX_SLOT_BITS:
            raise ConfigurationError(
                "value_bound",
                f"2·value_bound·max_sites needs {slot_bits} bits, more than the {MAX_SLOT_BITS} a slot may have",
                "lower value_bound (quantize more coarsely) or max_sites",
            )
        slots = (bits - SAFETY_BITS) // slot_bits
        if slots < 1:
            raise ConfigurationError(
                "key_bits",
                f"a {bits}-bit key has no room for one {slot_bits}-bit slot (value_bound {bound}, {sites} sites)",
                "use a larger key, or lower value_bound or max_sites",
            )
        return cls(value_bound=bound, max_sites=sites, key_bits=bits, slot_bits=slot_bits, slots=slots)

    @property
    def _row_bits(self) -> int:
        return self.slots * self.slot_bits

    @property
    def _row_bytes(self) -> int:
        return (self._row_bits + 7) // 8

    def plaintexts_for(self, count: int) -> int:
        """How many plaintexts (and so ciphertexts) hold ``count`` values."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ConfigurationError("count", f"must be a non-negative integer, got {count!r}", "pass len(values)")
        return math.ceil(count / self.slots)

    def bytes_per_value(self) -> float:
        """Ciphertext bytes per value: a ``2·key_bits``-bit ciphertext shared by ``slots`` values."""
        return (2 * self.key_bits + 7) // 8 / self.slots

    def pack(self, values: NDArray[np.integer[Any]] | Sequence[int]) -> list[int]:
        """Pack a 1-D vector of integers in ``[-B, B]`` into ``plaintexts_for(len(values))`` plaintexts.

        :raises ConfigurationError: not a 1-D integer vector, or values outside ``[-B, B]`` (the message gives
            how many and the bound, never a value).
        """
        offset = self._validated(values)
        rows = self.plaintexts_for(offset.size)
        grid = np.zeros(rows * self.slots, dtype=np.uint64)
        grid[: offset.size] = offset
        # Most significant slot first, each as 64 big-endian bits of which the low slot_bits are kept.
        words = grid.reshape(rows, self.slots)[:, ::-1].astype(">u8")
        bits = np.unpackbits(words.view(np.uint8).reshape(rows, self.slots, 8), axis=2)[:, :, 64 - self.slot_bits :]
        pad = self._row_bytes * 8 - self._row_bits
        padded = np.concatenate([np.zeros((rows, pad), dtype=np.uint8), bits.reshape(rows, self._row_bits)], axis=1)
        packed = np.packbits(padded, axis=1)
        return [int.from_bytes(row.tobytes(), "big") for row in packed]

    def unpack(self, plaintexts: Sequence[int], count: int, sites: int) -> NDArray[np.int64]:
        """The signed sums of ``sites`` uploads from their summed, decrypted plaintexts.

        :param plaintexts: decrypted sums, ``plaintexts_for(count)`` of them.
        :param count: how many values were packed.
        :param sites: how many uploads were summed (each contributed ``B`` per slot).
        :raises ConfigurationError: ``sites`` is not in ``[1, max_sites]``, the plaintext count is wrong, or a
            slot holds more than ``sites`` uploads can sum to (a wrong key, layout or site count).
        """
        if isinstance(sites, bool) or not isinstance(sites, int) or sites < 1 or sites > self.max_sites:
            raise ConfigurationError(
                "sites",
                f"is {sites!r}, outside [1, {self.max_sites}] planned for this layout",
                "sum at most max_sites uploads, or plan a layout for more sites",
            )
        rows = self.plaintexts_for(count)
        if len(plaintexts) != rows:
            raise ConfigurationError(
                "plaintexts", f"has {len(plaintexts)} items, {count} values need {rows}", "pass every plaintext"
            )
        if rows == 0:
            return np.zeros(0, dtype=np.int64)
        limit = 1 << self._row_bits
        if any(not isinstance(p, int) or p < 0 or p >= limit for p in plaintexts):
            raise ConfigurationError(
                "plaintexts",
                f"hold numbers wider than {self.slots} slots of {self.slot_bits} bits",
                "decrypt with the key and layout the sites used",
            )
        raw = b"".join(int(p).to_bytes(self._row_bytes, "big") for p in plaintexts)
        bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8).reshape(rows, self._row_bytes), axis=1)
        slots = bits[:, self._row_bytes * 8 - self._row_bits :].reshape(rows, self.slots, self.slot_bits)
        words = np.zeros((rows, self.slots, 64), dtype=np.uint8)
        words[:, :, 64 - self.slot_bits :] = slots
        sums = np.packbits(words, axis=2).reshape(rows, self.slots * 8).view(">u8")[:, ::-1].astype(np.uint64)
        flat = sums.reshape(-1)
        if int(flat[:count].max()) > 2 * self.value_bound * sites or flat[count:].any():
            raise ConfigurationError(
                "sites",
                f"some slots exceed what {sites} uploads within ±{self.value_bound} can sum to",
                "check the site count, and that every site packed with this layout and was encrypted under this key",
            )
        shifted = flat[:count] - np.uint64(sites * self.value_bound)  # wraps mod 2**64 below zero
        return shifted.view(np.int64).copy()

    def _validated(self, values: NDArray[np.integer[Any]] | Sequence[int]) -> NDArray[np.uint64]:
        """``values + B`` as uint64 after checking shape, type and bound."""
        bound = self.value_bound
        try:
            array = np.asarray(values)
        except OverflowError:
            array = np.asarray(values, dtype=object)
        if array.ndim != 1:
            raise ConfigurationError("values", f"has {array.ndim} dimensions", "pack a 1-D vector (ravel it first)")
        if array.dtype == object:
            if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in array):
                raise ConfigurationError("values", "are not all integers", "quantize to integers at the site")
            outside = sum(1 for v in array if abs(int(v)) > bound)
            self._refuse(outside, array.size)
            array = array.astype(np.int64)  # every value is within ±B < 2**63 now
        if array.size == 0:
            return np.zeros(0, dtype=np.uint64)
        if array.dtype.kind not in "iu":
            raise ConfigurationError(
                "values",
                f"have dtype {array.dtype}, not integers",
                "quantize to integers at the site (never phe's float encoding, whose exponent is sent in the clear)",
            )
        if array.dtype.kind == "u":
            outside = int(np.count_nonzero(array > np.uint64(bound)))
            self._refuse(outside, array.size)
            return array.astype(np.uint64) + np.uint64(bound)
        signed = array.astype(np.int64)
        # abs(int64 min) overflows, so compare on both sides instead.
        outside = int(np.count_nonzero((signed > bound) | (signed < -bound)))
        self._refuse(outside, array.size)
        return signed.view(np.uint64) + np.uint64(bound)  # two's complement: v + B mod 2**64, in [0, 2B]

    def _refuse(self, outside: int, total: int) -> None:
        if outside:
            raise ConfigurationError(
                "values",
                f"{outside} of {total} values are outside [-{self.value_bound}, {self.value_bound}]",
                "clamp them at the site before packing, or plan a layout with a larger value_bound",
            )

    def to_json(self) -> dict[str, Any]:
        """The layout as a JSON-ready dict, with its schema name and version."""
        return {
            "schema": LAYOUT_SCHEMA,
            "value_bound": self.value_bound,
            "max_sites": self.max_sites,
            "key_bits": self.key_bits,
            "slot_bits": self.slot_bits,
            "slots": self.slots,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SlotLayout:
        """Read :meth:`to_json` output; the fields are checked again, so a doctored layout is refused.

        :raises ConfigurationError: wrong schema or version, a missing field, or an inconsistent layout.
        """
        if not isinstance(data, dict) or data.get("schema") != LAYOUT_SCHEMA:
            found = data.get("schema") if isinstance(data, dict) else type(data).__name__
            raise ConfigurationError("schema", f"is {found!r}, expected {LAYOUT_SCHEMA!r}", "pass a layout JSON")
        fields = ("value_bound", "max_sites", "key_bits", "slot_bits", "slots")
        missing = [name for name in fields if name not in data]
        if missing:
            raise ConfigurationError("layout", f"lacks {', '.join(missing)}", "pass the complete to_json() output")
        return cls(**{name: data[name] for name in fields})
