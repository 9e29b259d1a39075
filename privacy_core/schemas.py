"""The versioned JSON Schemas of every record the project writes, and validation against them.

Schemas live in the repository's top-level ``schemas/`` folder (packaged into ``privacy_core/_schemas`` in a
wheel). A record names its schema as ``"<Name>/<major>.<minor>"``; the file is ``schemas/<Name>-<major>.<minor>.json``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from privacy_core.errors import SchemaValidationError


def schema_dir() -> Path:
    """The folder holding the schema files, in a wheel or in a source checkout."""
    packaged = Path(__file__).with_name("_schemas")
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "schemas"


@cache
def load_schema(name: str, version: str = "1.0") -> dict[str, Any]:
    """Load ``schemas/<name>-<version>.json``."""
    path = schema_dir() / f"{name}-{version}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no schema {name} version {version} at {path}")
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def validate(name: str, record: dict[str, Any]) -> None:
    """Validate ``record`` against schema ``name`` at the version its ``schema`` field names.

    :raises SchemaValidationError: with the schema and the JSON path of the first error.
    """
    import jsonschema

    declared = str(record.get("schema", f"{name}/1.0"))
    version = declared.split("/", 1)[1] if "/" in declared else "1.0"
    schema = load_schema(name, version)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(record), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        path = "/" + "/".join(str(p) for p in first.absolute_path)
        raise SchemaValidationError(f"{name}/{version}", path, first.message)
