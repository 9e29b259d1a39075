"""Profile resolution: every Table E.1-1 row and option resolves to one action that keeps objects valid."""

from __future__ import annotations

import pytest

from privacy_core.deid._table_e1_1 import TABLE_E1_1
from privacy_core.deid.profile import PSEUDONYM_TAGS, Action, Option, Profile, resolve_basic
from privacy_core.errors import ConfigurationError

CONCRETE = [row for row in TABLE_E1_1 if "x" not in row[0] and row[0] != "private"]


def test_table_has_all_621_rows_and_the_repeating_groups() -> None:
    assert len(TABLE_E1_1) == 621
    tags = {row[0] for row in TABLE_E1_1}
    assert {"50xxxxxx", "60xx3000", "60xx4000", "private"} <= tags


@pytest.mark.parametrize(
    ("code", "in_iod", "expected"),
    [
        ("X/Z", True, Action.ZERO),
        ("X/Z", False, Action.REMOVE),
        ("X/D", True, Action.DUMMY),
        ("X/D", False, Action.REMOVE),
        ("X/Z/D", True, Action.DUMMY),
        ("X/Z/D", False, Action.REMOVE),
        ("Z/D", True, Action.DUMMY),
        ("Z/D", False, Action.DUMMY),
        ("X/Z/U*", True, Action.RECURSE_UIDS),
        ("X/Z/U*", False, Action.REMOVE),
        ("X", True, Action.REMOVE),
        ("U", True, Action.UID),
    ],
)
def test_resolve_basic(code: str, in_iod: bool, expected: Action) -> None:
    assert resolve_basic(code, in_iod) is expected


def test_unknown_code_says_how_to_fix() -> None:
    with pytest.raises(ValueError, match="make tables"):
        resolve_basic("Q", True)


def test_basic_profile_covers_every_concrete_row() -> None:
    actions = Profile().actions
    assert len(actions) == len(CONCRETE)
    for tag, _name, in_iod, basic, _options in CONCRETE:
        expected = Action.PSEUDONYM if int(tag, 16) in PSEUDONYM_TAGS else resolve_basic(basic, in_iod)
        assert actions[int(tag, 16)] is expected, tag


@pytest.mark.parametrize("option", list(Option))
def test_each_option_changes_exactly_its_rows(option: Option) -> None:
    basic, with_option = Profile().actions, Profile(options=frozenset({option})).actions
    changed = {tag for tag in basic if basic[tag] is not with_option[tag]}
    expected = set()
    for tag, _name, in_iod, code, options in CONCRETE:
        value = dict(options).get(option.value)
        if value and int(tag, 16) not in PSEUDONYM_TAGS:
            want = Action.KEEP if value == "K" else Action.CLEAN
            assert with_option[int(tag, 16)] is want, tag
            if want is not resolve_basic(code, in_iod):
                expected.add(int(tag, 16))
    assert changed == expected
    if option is not Option.RETAIN_SAFE_PRIVATE:  # that option acts on private tags, not table rows
        assert changed


def test_retain_beats_clean_when_two_options_touch_a_row() -> None:
    both = Profile.from_names(["retain_patient_characteristics", "clean_descriptors"])
    allergies = 0x00102110  # rtnPatCharsOpt C and cleanDescOpt C
    assert both.action_for(allergies) is Action.CLEAN
    ethnic = 0x00102160  # rtnPatCharsOpt K
    assert both.action_for(ethnic) is Action.KEEP


def test_date_options_are_mutually_exclusive() -> None:
    with pytest.raises(ConfigurationError, match="mutually exclusive"):
        Profile.from_names(["retain_long_full_dates", "retain_long_modified_dates"])


@pytest.mark.parametrize("name", ["retain-uids", "RETAIN_UIDS", " retain_uids "])
def test_option_names_are_forgiving(name: str) -> None:
    assert Profile.from_names([name]).options == {Option.RETAIN_UIDS}


def test_unknown_option_lists_the_choices() -> None:
    with pytest.raises(ConfigurationError, match="choose from retain_long_full_dates"):
        Profile.from_names(["keep_everything"])


def test_method_codes_are_cid_7050() -> None:
    profile = Profile.from_names(["retain_uids", "clean_graphics"])
    codes = [c for c, _ in profile.method_codes(pixels_cleaned=True)]
    assert codes == ["113100", "113101", "113103", "113110"]


@pytest.mark.parametrize(
    ("names", "mode"),
    [([], "removed"), (["retain_long_full_dates"], "full"), (["retain_long_modified_dates"], "modified")],
)
def test_date_mode(names: list[str], mode: str) -> None:
    assert Profile.from_names(names).date_mode == mode
