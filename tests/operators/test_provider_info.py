"""The provider registers through its entry point, and every class it names exists."""

from __future__ import annotations

import importlib
from importlib import metadata

from operators.get_provider_info import get_provider_info


def test_entry_point_is_registered() -> None:
    points = metadata.entry_points(group="apache_airflow_provider")
    ours = [p for p in points if p.value == "operators.get_provider_info:get_provider_info"]
    assert len(ours) == 1
    assert ours[0].load()() == get_provider_info()


def test_named_modules_and_hook_classes_import() -> None:
    info = get_provider_info()
    for section in ("operators", "hooks"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for conn in info["connection-types"]:
        module, _, name = conn["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), name)
        assert hook.conn_type == conn["connection-type"]


def test_provider_info_matches_airflow_schema() -> None:
    import json

    import jsonschema
    from airflow import providers_manager

    schema_path = __import__("pathlib").Path(providers_manager.__file__).with_name("provider_info.schema.json")
    jsonschema.validate(get_provider_info(), json.loads(schema_path.read_text()))
