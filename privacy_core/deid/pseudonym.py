"""Keyed, stateless pseudonyms: new UIDs, patient and accession IDs, and per-patient date shifts.

Everything is a pure function of (secret, original value), so any worker in any run with the same secret
produces the same pseudonym, with no shared mapping table to store, lock or leak.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

from privacy_core.keys import PseudonymKey

#: Dates move back by whole weeks (weekday kept, useful for scheduling analyses): 1 to 520 weeks (~10 years).
MAX_SHIFT_WEEKS = 520


class Pseudonymizer:
    """Derives every pseudonym from one :class:`PseudonymKey`; results are memoised per process.

    >>> p = Pseudonymizer(PseudonymKey.from_text("0123456789abcdef0123456789abcdef"))
    >>> p.uid("1.2.3") == p.uid("1.2.3") and p.uid("1.2.3").startswith("2.25.")
    True
    """

    def __init__(self, key: PseudonymKey) -> None:
        self._key = key
        self.uid = lru_cache(maxsize=65536)(self._uid)
        self.identifier = lru_cache(maxsize=16384)(self._identifier)
        self.shift_days = lru_cache(maxsize=16384)(self._shift_days)

    def _uid(self, uid: str) -> str:
        """A ``2.25.<128-bit integer>`` UID (PS3.5 B.2): at most 44 characters, unique per input UID."""
        digest = self._key.mac(b"uid", uid.strip("\x00 ").encode("ascii", "replace"))
        return "2.25." + str(int.from_bytes(digest[:16], "big"))

    def _identifier(self, kind: str, value: str) -> str:
        """A 16-character pseudonym for an ID of ``kind`` (``patient``, ``accession``), e.g. ``PAT7F3K...``."""
        digest = self._key.mac(kind.encode(), value.strip().encode("utf-8", "replace"))
        alphabet = "0123456789ABCDEFGHJKLMNPQRSTVWXYZ"  # Crockford-like: no I, O, U
        number = int.from_bytes(digest[:10], "big")
        chars = []
        for _ in range(13):
            number, rem = divmod(number, len(alphabet))
            chars.append(alphabet[rem])
        return kind[:3].upper() + "".join(chars)

    def _shift_days(self, patient: str) -> int:
        """The patient's date shift in days: negative, a whole number of weeks."""
        digest = self._key.mac(b"dateshift", patient.strip().encode("utf-8", "replace"))
        return -7 * (1 + int.from_bytes(digest[:8], "big") % MAX_SHIFT_WEEKS)


def shift_date(value: str, days: int) -> str | None:
    """Shift a DA value (``YYYYMMDD``, also legacy ``YYYY.MM.DD``); None when it cannot be parsed.

    >>> shift_date("20240301", -7)
    '20240223'
    """
    text = value.strip().replace(".", "")
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        day = dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None
    try:
        return (day + dt.timedelta(days=days)).strftime("%Y%m%d")
    except OverflowError:
        return None


def shift_datetime(value: str, days: int) -> str | None:
    """Shift the date part of a DT value, keeping time, fraction and UTC offset; partial dates keep precision.

    >>> shift_datetime("20240301120000.5+0100", -7)
    '20240223120000.5+0100'
    """
    text = value.strip()
    digits = len(text) - len(text.lstrip("0123456789"))
    if digits < 4:
        return None
    if digits >= 8:
        shifted = shift_date(text[:8], days)
        return None if shifted is None else shifted + text[8:]
    # YYYY or YYYYMM: shift the middle of the period and keep the same precision.
    middle = text[:4] + (text[4:6] if digits >= 6 else "07") + "15"
    shifted = shift_date(middle, days)
    return None if shifted is None else shifted[:digits] + text[digits:]
