"""Replacement values: VR-correct dummies (action D) and cleaned free text (action C on descriptors).

Cleaning free text cannot understand prose; it removes what can be known to identify: every identifying value
of the same file's header (names, IDs, dates, institutions), plus anything shaped like a date, a long number,
an e-mail address or a phone number. That is the documented limit of the Clean Descriptors option here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: A dummy per VR: valid for the VR (length, character set), and obviously not data.
DUMMY_BY_VR: dict[str, object] = {
    "AE": "ANONYMIZED",
    "AS": "000Y",
    "CS": "ANONYMIZED",
    "DA": "19000101",
    "DS": "0",
    "DT": "19000101000000",
    "IS": "0",
    "LO": "ANONYMIZED",
    "LT": "ANONYMIZED",
    "PN": "ANONYMIZED",
    "SH": "ANONYMIZED",
    "ST": "ANONYMIZED",
    "TM": "000000",
    "UC": "ANONYMIZED",
    "UR": "",
    "UT": "ANONYMIZED",
    "FL": 0.0,
    "FD": 0.0,
    "SL": 0,
    "SS": 0,
    "SV": 0,
    "UL": 0,
    "US": 0,
    "UV": 0,
    "OB": b"",
    "OD": b"",
    "OF": b"",
    "OL": b"",
    "OV": b"",
    "OW": b"",
    "UN": b"",
}

#: VRs whose values are free or coded text a person may have typed.
TEXT_VRS: frozenset[str] = frozenset({"LO", "LT", "SH", "ST", "UT", "UC", "PN"})
REDACTED = "[REDACTED]"

_PATTERNS = re.compile(
    r"""
    \b\d{4}[-./]?\d{2}[-./]?\d{2}\b            # ISO and DICOM dates
  | \b\d{1,2}[-./]\d{1,2}[-./]\d{2,4}\b         # day/month/year in either order
  | [\w.+-]+@[\w-]+\.[\w.-]+                    # e-mail addresses
  | \+?\d[\d ()-]{6,}\d                         # phone numbers
  | \b\d{5,}\b                                  # long numbers: IDs, MRNs, accession numbers
    """,
    re.VERBOSE,
)


def dummy_for(vr: str) -> object:
    """The dummy for ``vr``; unknown or ambiguous VRs fall back to an empty value of the right kind."""
    if vr in DUMMY_BY_VR:
        return DUMMY_BY_VR[vr]
    if " or " in vr:  # ambiguous "US or SS", "OB or OW": numeric 0 fits both.
        return 0 if vr.startswith(("US", "SS")) else b""
    return ""


def identifying_tokens(values: Iterable[str]) -> re.Pattern[str] | None:
    """One case-insensitive pattern for header values worth scrubbing from free text: whole values and their
    name components of 3+ characters, longest first. Built once per file, used for every text value."""
    tokens: set[str] = set()
    for value in values:
        text = value.strip()
        if len(text) < 3:
            continue
        tokens.add(text)
        for part in re.split(r"[\^=\\,\s]+", text):
            if len(part) >= 3:
                tokens.add(part)
    if not tokens:
        return None
    ordered = sorted(tokens, key=len, reverse=True)
    return re.compile("|".join(re.escape(t) for t in ordered), re.IGNORECASE)


def clean_text(text: str, tokens: re.Pattern[str] | None) -> str:
    """Remove ``tokens`` and identifier-shaped substrings (dates, long numbers, e-mail, phone) from ``text``.

    >>> clean_text("Follow-up for Jane DOE 12/03/2021 MRN 1234567", identifying_tokens(["DOE^JANE"]))
    'Follow-up for [REDACTED] [REDACTED] [REDACTED] MRN [REDACTED]'
    """
    if tokens is not None:
        text = tokens.sub(REDACTED, text)
    return _PATTERNS.sub(REDACTED, text)
