"""ReleaseAuditOperator: thin over privacy_core.lineage.audit; fails for good when something does not verify."""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

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


def _chained_releases(root: Path, outputs: int) -> list[str]:
    """``outputs`` folders, each with one chained record that names no data (so only the chain is at stake)."""
    from privacy_core.lineage.chain import link_of
    from privacy_core.lineage.record import build_record, write_record

    links = []
    for i in range(outputs):
        record = build_record(operation="to-zarr", parameters={}, inputs=[], outputs=[], counts={}, privacy={})
        link = link_of(write_record(record, root / f"zarr-{i}" / "lineage"))
        assert link is not None
        links.append(link.render())
    return links


def _triggered_by(*links: str) -> dict[str, Any]:
    ctx = context()
    ctx["triggering_asset_events"] = {"asset": [SimpleNamespace(extra={"lineage_chain": link}) for link in links]}
    return ctx


def test_a_head_from_the_triggering_asset_event_is_checked(tmp_path: Path) -> None:
    links = _chained_releases(tmp_path, 2)
    op = ReleaseAuditOperator(task_id="a", releases_path=str(tmp_path))
    assert op.execute(_triggered_by(links[1]))["expected_heads"] == [links[1]]  # type: ignore[arg-type]
    (tmp_path / "lineage-chain" / "00000002.json").unlink()  # cut the end, with the folder it names
    shutil.rmtree(tmp_path / "zarr-1")
    assert op.execute(context())["ok"]  # type: ignore[arg-type]
    with pytest.raises(AirflowFailException, match="audit failed"):
        op.execute(_triggered_by(links[1]))  # type: ignore[arg-type]


def test_a_templated_expect_head_is_checked(tmp_path: Path) -> None:
    links = _chained_releases(tmp_path, 1)
    ok = ReleaseAuditOperator(task_id="a", releases_path=str(tmp_path), expect_head=links[0])
    assert ok.execute(context())["expected_heads"] == links  # type: ignore[arg-type]
    wrong = ReleaseAuditOperator(task_id="a", releases_path=str(tmp_path), expect_head="1:" + "0" * 64)
    with pytest.raises(AirflowFailException, match="audit failed"):
        wrong.execute(context())  # type: ignore[arg-type]
