"""DicomToZarrOperator and PixelPrivacyOperator: constructor, templates, execute against a real scheduler."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from airflow.sdk import Asset, BaseOperator

from operators.imaging import DicomToZarrOperator, PixelPrivacyOperator
from tests.operators.test_deid import context

OPERATORS = (DicomToZarrOperator, PixelPrivacyOperator)


@pytest.mark.parametrize("operator", OPERATORS, ids=lambda o: o.__name__)
def test_template_fields_are_constructor_arguments(operator: type[BaseOperator]) -> None:
    assert set(operator.template_fields) <= set(inspect.signature(operator).parameters)


def test_constructors_only_assign(tmp_path: Path) -> None:
    to_zarr = DicomToZarrOperator(task_id="z", input_path="{{ x }}", store_url=str(tmp_path / "no" / "store"))
    pixels = PixelPrivacyOperator(
        task_id="p", store_url="{{ x }}", output_url="{{ y }}", method="{{ m }}", dask_conn_id="absent"
    )
    assert (to_zarr.input_path, pixels.method, pixels.dask_conn_id) == ("{{ x }}", "{{ m }}", "absent")
    assert not (tmp_path / "no").exists()


@pytest.fixture
def dicom(tmp_path: Path) -> Path:
    folder = tmp_path / "release"
    folder.mkdir()
    src = Path(pydicom.__file__).parent / "data" / "test_files"
    for name in ("CT_small.dcm", "MR_small.dcm"):
        (folder / name).write_bytes((src / name).read_bytes())
    return folder


@pytest.fixture
def dask_connection(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        extra = json.dumps({"address": cluster.scheduler_address})
        monkeypatch.setenv("AIRFLOW_CONN_TEST_DASK", f'{{"conn_type": "dask", "extra": {extra}}}')
        yield "test_dask"


def test_dicom_to_zarr_then_pixels(dicom: Path, tmp_path: Path, dask_connection: str) -> None:
    zarr_asset = Asset(name="zarr", uri="file:///zarr")
    ctx: dict[str, Any] = context()
    to_zarr = DicomToZarrOperator(
        task_id="to_zarr", input_path=str(dicom), store_url=str(tmp_path / "store"), outlets=[zarr_asset]
    )
    summary = to_zarr.execute(ctx)  # type: ignore[arg-type]
    assert summary["series"] == 2
    assert ctx["outlet_events"][zarr_asset].extra["series"] == 2
    assert ctx["outlet_events"][zarr_asset].extra["lineage_chain"].startswith("1:")  # the first link of tmp_path
    json.dumps(summary)
    pixels = PixelPrivacyOperator(
        task_id="dp_pix",
        store_url=str(tmp_path / "store"),
        output_url=str(tmp_path / "dp"),
        method="dp-pix",
        parameters={"block": 4, "epsilon": 1.0, "bits_stored": 16},
        dask_conn_id=dask_connection,
    )
    result = pixels.execute(context())  # type: ignore[arg-type]
    assert result["arrays"] == 2
    assert result["dp"]["epsilon"] == 1.0
    assert result["compute"].startswith(("tcp://", "inproc://"))  # the Connection's scheduler, not a local one
    json.dumps(result)


def test_pixels_fails_clearly_on_bad_parameters(tmp_path: Path) -> None:
    from privacy_core.errors import ConfigurationError

    op = PixelPrivacyOperator(
        task_id="p", store_url=str(tmp_path), output_url=str(tmp_path / "o"), method="blur", parameters={}
    )
    with pytest.raises(ConfigurationError, match="missing"):
        op.execute(context())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, {}), ({"block": 2}, {"block": 2}), ('{"block": 2}', {"block": 2}), ("{'block': 2}", {"block": 2})],
)
def test_parameters_accept_dicts_and_rendered_text(value: Any, expected: dict[str, Any]) -> None:
    from operators.imaging import _parameters

    assert _parameters(value) == expected


def test_parameters_that_are_not_an_object_say_how_to_fix() -> None:
    from operators.imaging import _parameters
    from privacy_core.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="render_template_as_native_obj"):
        _parameters("block=2")
