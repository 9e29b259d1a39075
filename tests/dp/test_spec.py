"""Release specs: good ones parse with exact losses; bad ones are refused naming what to change."""

from __future__ import annotations

import copy
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from privacy_core.dp.spec import load_spec, parse_spec
from privacy_core.errors import ConfigurationError

GOOD: dict[str, Any] = {
    "dataset": "demo",
    "accounting": "pure-dp",
    "budget": {"epsilon": 1.5},
    "privacy_unit": {"max_records_per_patient": 3},
    "sources": {"dicom": "release", "zarr": "store"},
    "queries": [
        {"name": "per_modality", "kind": "count", "partition_by": "Modality", "partitions": ["CT", "MR"], "share": 2},
        {"name": "thickness", "kind": "mean", "field": "SliceThickness", "bounds": [0, 10], "level": "series"},
        {"name": "image", "kind": "voxel_mean", "shape": [2, 8, 8], "bounds": [-1024, 3071]},
    ],
}


def _with(path: str, value: Any) -> dict[str, Any]:
    """GOOD with one setting changed (``None`` removes it); path like ``queries.1.bounds``."""
    spec = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node: Any = spec
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is None:
        del node[int(last) if last.isdigit() else last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return spec


def test_good_spec_splits_the_loss_exactly_by_share() -> None:
    spec = parse_spec(GOOD)
    shares = [spec.loss_of(q) for q in spec.queries]
    assert shares == [Fraction(3, 4), Fraction(3, 8), Fraction(3, 8)]
    assert sum(shares) == spec.loss == Fraction(3, 2)
    assert spec.digest.startswith("sha256:") and parse_spec(copy.deepcopy(GOOD)).digest == spec.digest
    assert parse_spec(_with("budget.epsilon", 1.0)).digest != spec.digest


def test_load_spec_resolves_sources_beside_the_file(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(GOOD))
    spec = load_spec(tmp_path / "spec.yaml")
    assert spec.sources["dicom"] == str(tmp_path / "release")


@pytest.mark.parametrize(
    ("change", "value", "setting", "fix"),
    [
        ("queries.1.bounds", None, "queries[1].bounds", "bounds: [low, high]"),
        ("queries.2.bounds", None, "queries[2].bounds", "never from the data"),
        ("budget.epsilon", 0, "budget.epsilon", "above zero"),
        ("budget.epsilon", -1, "budget.epsilon", "above zero"),
        ("budget", {"rho": 1}, "budget", "epsilon"),
        ("queries.1.field", "NoSuchAttribute", "queries[1].field", "not a DICOM attribute keyword"),
        ("queries.1.field", "PatientName", "queries[1].field", "VR"),
        ("queries.0.partitions", None, "queries[0].partitions", "public"),
        ("queries.0.kind", "median", "queries[0].kind", "choose from"),
        ("queries.1.bounds", [5, 1], "queries[1].bounds", "low < high"),
        ("queries.2.shape", None, "queries[2].shape", "array shape"),
        ("privacy_unit", {}, "privacy_unit.max_records_per_patient", "cap how many records"),
        ("dataset", None, "dataset", "name the dataset"),
        ("queries", [], "queries", "at least one"),
        ("sources", {"dicom": "x"}, "sources", "sources.zarr"),
        ("accounting", "renyi", "accounting", "pure-dp"),
    ],
)
def test_bad_spec_is_refused_saying_what_to_change(change: str, value: Any, setting: str, fix: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_spec(_with(change, value))
    assert caught.value.setting == setting
    assert fix in str(caught.value)


def test_unknown_top_level_key_is_refused_by_the_schema() -> None:
    with pytest.raises(ConfigurationError, match="ReleaseSpec"):
        parse_spec({**GOOD, "epsilon": 3})


def test_missing_and_malformed_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_spec(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("dataset: [unclosed\n")
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        load_spec(tmp_path / "bad.yaml")
