"""DicomDeidentifyOperator and DicomLeakVerifyOperator: constructor, templates, execute and its failures."""

from __future__ import annotations

import inspect
import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import Asset, BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from operators.deid import DicomDeidentifyOperator, DicomLeakVerifyOperator
from privacy_core.lineage.chain import link_of
from tests.conftest import PYDICOM_FILES, TEST_SECRET

OPERATORS = (DicomDeidentifyOperator, DicomLeakVerifyOperator)


class OutletEvents(dict[Any, SimpleNamespace]):
    """Stands in for Airflow's outlet event accessors: one mutable ``extra`` per asset."""

    def __missing__(self, key: Any) -> SimpleNamespace:
        self[key] = SimpleNamespace(extra={})
        return self[key]


def context(run_id: str = "manual__1", try_number: int = 1) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="dag", run_id=run_id, task_id="deid", map_index=-1, try_number=try_number)
    return {"ti": ti, "outlet_events": OutletEvents()}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(PYDICOM_FILES / "CT_small.dcm", folder / "CT_small.dcm")
    shutil.copy(PYDICOM_FILES / "README.txt", folder / "README.txt")
    return folder


@pytest.mark.parametrize("operator", OPERATORS, ids=lambda o: o.__name__)
def test_template_fields_are_constructor_arguments(operator: type[BaseOperator]) -> None:
    params = inspect.signature(operator).parameters
    assert set(operator.template_fields) <= set(params)


@pytest.mark.parametrize("operator", OPERATORS, ids=lambda o: o.__name__)
def test_constructor_only_assigns(operator: type[DicomDeidentifyOperator], tmp_path: Path) -> None:
    """Paths that do not exist and templates that are not rendered must not bother the constructor."""
    op = operator(task_id="t", input_path="{{ params.x }}", output_path=str(tmp_path / "nope" / "out"))
    assert op.input_path == "{{ params.x }}"
    assert not (tmp_path / "nope").exists()


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("key_conn_id", "other"),
        ("options", ["retain_uids"]),
        ("quarantine_path", "/q"),
        ("report_path", "/r.json"),
        ("burned_in_rules", "/rules.script"),
        ("workers", 3),
        ("fail_on_quarantine", True),
        ("strict_values", False),
        ("release_unhandled_burned_in", True),
    ],
)
def test_each_argument_is_set(argument: str, value: object) -> None:
    kwargs: dict[str, Any] = {argument: value}
    op = DicomDeidentifyOperator(task_id="t", input_path="i", output_path="o", **kwargs)
    assert getattr(op, argument) == value


def test_templates_render(tmp_path: Path) -> None:
    """Every templated field renders against a context, as Airflow does before execute."""
    import jinja2

    op = DicomDeidentifyOperator(
        task_id="t",
        input_path="{{ params.root }}/in",
        output_path="{{ params.root }}/out-{{ ts_nodash }}",
        options="{{ params.options }}",
        quarantine_path="{{ params.root }}/q",
        report_path="{{ params.root }}/r.json",
        burned_in_rules="{{ params.root }}/rules",
    )
    ctx = {"params": {"root": "/data", "options": "retain_uids"}, "ts_nodash": "20260101T000000"}
    op.render_template_fields(ctx, jinja_env=jinja2.Environment())  # type: ignore[arg-type]
    assert op.input_path == "/data/in"
    assert op.output_path == "/data/out-20260101T000000"
    assert op.options == "retain_uids"
    assert (op.quarantine_path, op.report_path, op.burned_in_rules) == ("/data/q", "/data/r.json", "/data/rules")


def test_execute_releases_records_and_pushes_a_safe_summary(source: Path, tmp_path: Path) -> None:
    asset = Asset(name="release", uri="file:///releases")
    op = DicomDeidentifyOperator(
        task_id="deid", input_path=str(source), output_path=str(tmp_path / "out"), outlets=[asset]
    )
    ctx = context()
    summary = op.execute(ctx)  # type: ignore[arg-type]
    text = json.dumps(summary)  # XCom values must serialise
    assert (summary["written"], summary["quarantined"]) == (1, 1)
    assert TEST_SECRET not in text
    assert "CT_small" not in text
    assert "README" not in text
    record = json.loads(Path(summary["lineage_record"]).read_text())
    assert record["run"]["airflow"] == {
        "dag_id": "dag",
        "run_id": "manual__1",
        "task_id": "deid",
        "map_index": -1,
        "try_number": 1,
    }
    extra = ctx["outlet_events"][asset].extra
    assert extra["output_digest"] == summary["output_digest"]
    assert extra["lineage_chain"] == link_of(summary["lineage_record"]).render()  # type: ignore[union-attr]


def test_retry_after_success_returns_the_same_release(source: Path, tmp_path: Path) -> None:
    op = DicomDeidentifyOperator(task_id="deid", input_path=str(source), output_path=str(tmp_path / "out"))
    first = op.execute(context(try_number=1))  # type: ignore[arg-type]
    again = op.execute(context(try_number=2))  # type: ignore[arg-type]
    assert again["output_digest"] == first["output_digest"]
    assert again["resumed"] is True


def test_execute_fails_on_quarantine_when_asked(source: Path, tmp_path: Path) -> None:
    op = DicomDeidentifyOperator(
        task_id="deid", input_path=str(source), output_path=str(tmp_path / "out"), fail_on_quarantine=True
    )
    with pytest.raises(AirflowFailException, match="quarantined") as caught:
        op.execute(context())  # type: ignore[arg-type]
    assert "README" not in str(caught.value)


def test_execute_fails_clearly_on_a_bad_option(source: Path, tmp_path: Path) -> None:
    from privacy_core.errors import ConfigurationError

    op = DicomDeidentifyOperator(
        task_id="deid", input_path=str(source), output_path=str(tmp_path / "out"), options=["keep_all"]
    )
    with pytest.raises(ConfigurationError, match="choose from"):
        op.execute(context())  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


def test_verify_operator_passes_a_clean_release_and_fails_a_leak(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    DicomDeidentifyOperator(task_id="deid", input_path=str(source), output_path=str(out)).execute(context())  # type: ignore[arg-type]
    verify = DicomLeakVerifyOperator(task_id="verify", input_path=str(source), output_path=str(out))
    assert verify.execute(context())["hits"] == 0  # type: ignore[arg-type]
    (out / "leak.txt").write_text("CompressedSamples^CT1")  # CT_small's Patient's Name
    with pytest.raises(AirflowFailException, match="do not publish"):
        verify.execute(context())  # type: ignore[arg-type]
