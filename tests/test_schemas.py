"""Every schema in schemas/ is valid JSON Schema 2020-12, closed, and every record type is validated."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from privacy_core.errors import SchemaValidationError
from privacy_core.schemas import schema_dir, validate

SCHEMAS = sorted(schema_dir().glob("*.json"))


def test_schema_folder_is_the_repository_one() -> None:
    assert schema_dir() == Path(__file__).resolve().parents[1] / "schemas"
    assert {p.stem for p in SCHEMAS} >= {"DeidSummary-1.0", "QuarantineReport-1.0", "TaskLineageRecord-1.1"}


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.stem)
def test_schema_is_valid_and_closed(path: Path) -> None:
    schema = json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    name, version = path.stem.rsplit("-", 1)
    assert schema["title"] == name
    assert schema["properties"]["schema"] == {"const": f"{name}/{version}"}


def test_validation_error_names_schema_and_path() -> None:
    with pytest.raises(SchemaValidationError) as caught:
        validate("QuarantineReport", {"schema": "QuarantineReport/1.0", "input_root": "/x", "entries": [{}]})
    assert caught.value.schema == "QuarantineReport/1.0"
    assert caught.value.path == "/entries/0"


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(SchemaValidationError, match="Additional properties"):
        validate("QuarantineReport", {"schema": "QuarantineReport/1.0", "input_root": "/x", "entries": [], "x": 1})
