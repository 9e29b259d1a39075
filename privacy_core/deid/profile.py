"""The de-identification profile: PS3.15 Table E.1-1 plus the chosen options, resolved to one action per tag.

Resolution happens once per profile, so the walk over a dataset is one dictionary lookup per element.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

from privacy_core.deid._table_e1_1 import TABLE_E1_1
from privacy_core.errors import ConfigurationError


class Option(StrEnum):
    """The ten options of PS3.15 E.3 (``retain_long_*`` are two variants of one option)."""

    RETAIN_LONG_FULL_DATES = "retain_long_full_dates"
    RETAIN_LONG_MODIFIED_DATES = "retain_long_modified_dates"
    RETAIN_PATIENT_CHARACTERISTICS = "retain_patient_characteristics"
    RETAIN_DEVICE_IDENTITY = "retain_device_identity"
    RETAIN_INSTITUTION_IDENTITY = "retain_institution_identity"
    RETAIN_UIDS = "retain_uids"
    CLEAN_DESCRIPTORS = "clean_descriptors"
    CLEAN_STRUCTURED_CONTENT = "clean_structured_content"
    CLEAN_GRAPHICS = "clean_graphics"
    RETAIN_SAFE_PRIVATE = "retain_safe_private"


class Action(StrEnum):
    """What happens to one attribute. Table E.1-1 codes, plus two the engine needs to stay exact."""

    KEEP = "K"
    REMOVE = "X"
    ZERO = "Z"
    DUMMY = "D"
    CLEAN = "C"
    UID = "U"
    #: ``X/Z/U*`` on a sequence that an IOD may require: keep it, replace the UIDs inside.
    RECURSE_UIDS = "U*"
    #: Patient ID, Patient's Name, Accession Number: a keyed pseudonym, consistent across files.
    PSEUDONYM = "P"


#: CID 7050 "De-identification Method": (code value, code meaning), coding scheme DCM.
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
CLEAN_PIXEL_CODE = ("113101", "Clean Pixel Data Option")
OPTION_CODES: dict[Option, tuple[str, str]] = {
    Option.CLEAN_GRAPHICS: ("113103", "Clean Graphics Option"),
    Option.CLEAN_STRUCTURED_CONTENT: ("113104", "Clean Structured Content Option"),
    Option.CLEAN_DESCRIPTORS: ("113105", "Clean Descriptors Option"),
    Option.RETAIN_LONG_FULL_DATES: ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    Option.RETAIN_LONG_MODIFIED_DATES: (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    Option.RETAIN_PATIENT_CHARACTERISTICS: ("113108", "Retain Patient Characteristics Option"),
    Option.RETAIN_DEVICE_IDENTITY: ("113109", "Retain Device Identity Option"),
    Option.RETAIN_UIDS: ("113110", "Retain UIDs Option"),
    Option.RETAIN_SAFE_PRIVATE: ("113111", "Retain Safe Private Option"),
    Option.RETAIN_INSTITUTION_IDENTITY: ("113112", "Retain Institution Identity Option"),
}

#: Identifiers replaced by keyed pseudonyms instead of the table's Z / Z/D (a dummy consistent per patient).
PSEUDONYM_TAGS: frozenset[int] = frozenset({0x00100010, 0x00100020, 0x00080050})

#: Repeating groups: curve data (50xx,xxxx) and overlays (60xx,eeee), even groups 0x..00 to 0x..1E.
CURVE_GROUPS: frozenset[int] = frozenset(range(0x5000, 0x5020, 2))
OVERLAY_GROUPS: frozenset[int] = frozenset(range(0x6000, 0x6020, 2))


def resolve_basic(code: str, in_standard_iod: bool) -> Action:
    """Resolve a Table E.1-1 basic-profile code to one action that keeps the object valid.

    Where removal could break a Type 1 or Type 2 attribute of a standard IOD (``in_standard_iod``), take the
    dummy or the empty value; where no standard IOD has the attribute, removal is always valid.

    >>> resolve_basic("X/Z/D", True), resolve_basic("X/Z/D", False)
    (<Action.DUMMY: 'D'>, <Action.REMOVE: 'X'>)
    """
    if code in ("X", "Z", "D", "U", "K", "C"):
        return Action(code)
    if code == "X/Z":
        return Action.ZERO if in_standard_iod else Action.REMOVE
    if code in ("X/D", "X/Z/D"):
        return Action.DUMMY if in_standard_iod else Action.REMOVE
    if code == "Z/D":
        return Action.DUMMY
    if code == "X/Z/U*":
        return Action.RECURSE_UIDS if in_standard_iod else Action.REMOVE
    raise ValueError(f"unknown Table E.1-1 action code {code!r}; regenerate the table with `make tables`")


@dataclass(frozen=True)
class Profile:
    """Basic profile plus options, and what to do with burned-in annotations.

    :param options: the E.3 options to apply.
    :param quarantine_unhandled_burned_in: quarantine a file marked BurnedInAnnotation=YES that no rule covers.

    >>> Profile.from_names(["retain_uids"]).action_for(0x0020000D)
    <Action.KEEP: 'K'>
    """

    options: frozenset[Option] = field(default_factory=frozenset)
    quarantine_unhandled_burned_in: bool = True

    def __post_init__(self) -> None:
        both = {Option.RETAIN_LONG_FULL_DATES, Option.RETAIN_LONG_MODIFIED_DATES}
        if both <= self.options:
            raise ConfigurationError(
                "options",
                "retain_long_full_dates and retain_long_modified_dates are mutually exclusive",
                "you can only use one of them at a time",
            )

    @classmethod
    def from_names(cls, names: list[str] | tuple[str, ...], **kwargs: bool) -> Profile:
        """Build from option names (``retain-uids`` and ``retain_uids`` both work)."""
        chosen = set()
        valid = ", ".join(o.value for o in Option)
        for name in names:
            key = name.strip().lower().replace("-", "_")
            try:
                chosen.add(Option(key))
            except ValueError:
                raise ConfigurationError("option", f"{name!r} is not an option", f"choose from {valid}") from None
        return cls(options=frozenset(chosen), **kwargs)

    @cached_property
    def actions(self) -> dict[int, Action]:
        """Every concrete tag of Table E.1-1 mapped to its resolved action under this profile."""
        table: dict[int, Action] = {}
        for tag, _name, in_iod, basic, option_codes in TABLE_E1_1:
            if "x" in tag or tag == "private":
                continue
            table[int(tag, 16)] = self._resolve_row(basic, in_iod, option_codes)
        for pseudonym_tag in PSEUDONYM_TAGS:
            table[pseudonym_tag] = Action.PSEUDONYM
        return table

    def _resolve_row(self, basic: str, in_iod: bool, option_codes: tuple[tuple[str, str], ...]) -> Action:
        """An option that retains (K) beats one that cleans (C), which beats the basic profile."""
        chosen = {code for option, code in option_codes if Option(option) in self.options}
        if "K" in chosen:
            return Action.KEEP
        if "C" in chosen:
            return Action.CLEAN
        return resolve_basic(basic, in_iod)

    def action_for(self, tag: int) -> Action | None:
        """The action for a standard tag, or None when Table E.1-1 does not list it (the tag is kept)."""
        return self.actions.get(tag)

    @property
    def graphics_action(self) -> Action:
        """Overlay and curve groups: removed whole unless Clean Graphics keeps them (cleaned)."""
        return Action.CLEAN if Option.CLEAN_GRAPHICS in self.options else Action.REMOVE

    @property
    def retain_safe_private(self) -> bool:
        """Whether private attributes on the safe list survive; all others are always removed."""
        return Option.RETAIN_SAFE_PRIVATE in self.options

    @property
    def date_mode(self) -> str:
        """``full`` (kept), ``modified`` (shifted per patient) or ``removed``: LongitudinalTemporalInformation."""
        if Option.RETAIN_LONG_FULL_DATES in self.options:
            return "full"
        if Option.RETAIN_LONG_MODIFIED_DATES in self.options:
            return "modified"
        return "removed"

    def method_codes(self, pixels_cleaned: bool) -> list[tuple[str, str]]:
        """CID 7050 codes for DeidentificationMethodCodeSequence, basic profile first."""
        codes = [BASIC_PROFILE_CODE]
        if pixels_cleaned:
            codes.append(CLEAN_PIXEL_CODE)
        codes += sorted(OPTION_CODES[o] for o in self.options)
        return codes

    def describe(self) -> str:
        """A short, stable text for DeidentificationMethod and records."""
        names = ",".join(o.value for o in Option if o in self.options)
        return f"PS3.15 E.1-1 basic{'+' + names if names else ''}"
