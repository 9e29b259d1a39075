"""ReleaseAuditOperator: thin over privacy_core.lineage.audit; fails for good when something does not verify."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from operators.audit import ReleaseAuditOperator
from tests.operators.test_deid import context


def test_template_fields_are_constructor_arguments() -> None:
    assert set(ReleaseAuditOperator.template_fields) <= set(inspect.signature(ReleaseAuditOperator).parameters)


def test_constructor_only_assigns(tmp_path: Path) -> None:
    op = ReleaseAuditOperator(task_id="a", releases_path="{{ params.x }}", ledger_conn_id="absent")
    assert (op.releases_path, op.ledger_conn_id) == ("{{ params.x }}", "absent")


def test_a_folder_with_an_output_but_no_record_fails_the_task(tmp_path: Path) -> None:
    (tmp_path / "release-1" / "lineage").mkdir(parents=True)
    op = ReleaseAuditOperator(task_id="a", releases_path=str(tmp_path))
    with pytest.raises(AirflowFailException, match="audit failed"):
        op.execute(context())  # type: ignore[arg-type]
