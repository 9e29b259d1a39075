"""values.schema.json: bad values fail, in Helm's own validation, with a message naming the field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from helm_python.chart import Chart
from helm_python.errors import HelmValuesError

from tests.deploy.conftest import CHART, render

#: (values, the field the message must name, a word of the reason)
BAD_VALUES: list[tuple[dict[str, Any], str, str]] = [
    ({"dask": {"worker": {"replicas": -1}}}, "/dask/worker/replicas", "minimum"),
    ({"dask": {"scheduler": {"replicas": 2}}}, "/dask/scheduler/replicas", "maximum"),
    ({"image": {"tag": ""}}, "/image/tag", "minLength"),
    ({"image": {"tag": "latest"}}, "/image/tag", "not"),
    ({"image": {"repository": ""}}, "/image/repository", "minLength"),
    # A literal secret where a Secret reference belongs.
    (
        {"secrets": {"ledgerConnection": "imaging-privacy-ledger://u:p@db:5432/l"}},
        "/secrets/ledgerConnection",
        "object",
    ),
    ({"secrets": {"pseudonymKey": "0123456789abcdef0123456789abcdef"}}, "/secrets/pseudonymKey", "object"),
    (
        {"secrets": {"pseudonymKey": {"existingSecret": "k", "key": "secret", "value": "0123456789abcdef"}}},
        "/secrets/pseudonymKey",
        "value",
    ),
    (
        {"secrets": {"ledgerConnection": {"existingSecret": "postgresql://u:p@db/x", "key": "c"}}},
        "existingSecret",
        "pattern",
    ),
    ({"settings": {"storeUrl": "s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket/zarr"}}, "/settings/storeUrl", "not"),
    # Resources must be stated, requests and limits, cpu and memory.
    ({"dask": {"worker": {"resources": None}}}, "/dask/worker", "resources"),
    ({"dask": {"scheduler": {"resources": {"limits": None}}}}, "/dask/scheduler/resources", "limits"),
    ({"dask": {"worker": {"resources": {"requests": {"memory": None}}}}}, "/dask/worker/resources/requests", "memory"),
    ({"preflight": {"resources": {"limits": {"cpu": "a lot"}}}}, "/preflight/resources/limits/cpu", "anyOf"),
    ({"securityContext": {"runAsUser": 0}}, "/securityContext/runAsUser", "minimum"),
    ({"dask": {"worker": {"port": 80}}}, "/dask/worker/port", "minimum"),
    ({"networkPolicy": {"airflowPodSelectors": []}}, "/networkPolicy/airflowPodSelectors", "minItems"),
    ({"networkPolicy": {"airflowPodSelectors": [{}]}}, "/networkPolicy/airflowPodSelectors/0", "minProperties"),
    ({"dask": {"worker": {"extraArgs": ["--nthreads 4"]}}}, "/dask/worker/extraArgs/0", "pattern"),
    ({"dask": {"worker": {"replica": 3}}}, "/dask/worker", "replica"),
]


@pytest.mark.parametrize(("values", "field", "reason"), BAD_VALUES)
def test_bad_values_fail_schema_validation_naming_the_field(values: dict[str, Any], field: str, reason: str) -> None:
    with Chart.load(CHART) as chart, pytest.raises(HelmValuesError) as raised:
        chart.validate_schema(values)

    message = str(raised.value)
    assert field in message, message
    assert reason in message, message


@pytest.mark.parametrize(("values", "field", "reason"), BAD_VALUES[:4])
def test_bad_values_stop_a_render_too(values: dict[str, Any], field: str, reason: str) -> None:
    """helm install/upgrade/template validate before rendering: nothing is produced from bad values."""
    with pytest.raises(HelmValuesError, match=field):
        render(values)


def test_defaults_and_production_values_pass(production_values: dict[str, Any]) -> None:
    with Chart.load(CHART) as chart:
        chart.validate_schema(None)
        chart.validate_schema(production_values)


def test_schema_is_draft_07_and_closed() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())

    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["additionalProperties"] is False
    assert schema["properties"]["secrets"]["additionalProperties"] is False


def test_every_default_value_is_described_by_the_schema() -> None:
    """additionalProperties is false at every level of values.yaml, so no key escapes the schema."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    definitions = schema["definitions"]

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = definitions[node["$ref"].rsplit("/", 1)[1]]
        return node

    def walk(values: dict[str, Any], node: dict[str, Any], path: str) -> None:
        node = resolve(node)
        properties = node.get("properties")
        if properties is None:
            return
        assert node.get("additionalProperties") is False, f"{path or '/'} accepts unknown keys"
        for key, value in values.items():
            assert key in properties, f"{path}/{key} is not in the schema"
            if isinstance(value, dict):
                walk(value, properties[key], f"{path}/{key}")

    with Chart.load(CHART) as chart:
        walk(chart.values, schema, "")
