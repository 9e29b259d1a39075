"""DPReleaseOperator, PrivacyBudgetCheckOperator and the ledger hook: thin, idempotent per task instance,
failing cleanly (no retry) when the budget cannot pay, and never showing the ledger's password."""

from __future__ import annotations

import inspect
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pydicom
import pytest
import yaml
from airflow.sdk import Asset, BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from operators.dp import DPReleaseOperator, PrivacyBudgetCheckOperator
from operators.hooks.ledger import PrivacyLedgerHook
from privacy_core.dp.ledger import open_ledger
from privacy_core.errors import LedgerUnavailableError
from privacy_core.lineage.chain import link_of
from tests.operators.test_deid import context

OPERATORS = (DPReleaseOperator, PrivacyBudgetCheckOperator)


@pytest.mark.parametrize("operator", OPERATORS, ids=lambda o: o.__name__)
def test_template_fields_are_constructor_arguments(operator: type[BaseOperator]) -> None:
    assert set(operator.template_fields) <= set(inspect.signature(operator).parameters)


def test_constructors_only_assign(tmp_path: Path) -> None:
    op = DPReleaseOperator(task_id="r", spec_path="{{ s }}", output_path=str(tmp_path / "no"), ledger_conn_id="x")
    check = PrivacyBudgetCheckOperator(task_id="c", spec_path="{{ s }}", ledger_conn_id="absent")
    assert (op.spec_path, op.ledger_conn_id, check.ledger_conn_id) == ("{{ s }}", "x", "absent")
    assert not (tmp_path / "no").exists()


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A release of two real headers (as a de-identified tree), an SQLite ledger Connection, a spec."""
    release = tmp_path / "release"
    release.mkdir()
    src = Path(pydicom.__file__).parent / "data" / "test_files"
    for index, name in enumerate(("CT_small.dcm", "MR_small.dcm")):
        ds = pydicom.dcmread(src / name)
        ds.PatientID = f"PAT000000000000{index}"  # the form of our pseudonyms
        ds.save_as(release / f"{index}.dcm")
    ledger_path = tmp_path / "ledger.db"
    with open_ledger(f"sqlite:///{ledger_path}") as ledger:
        ledger.create_dataset("cohort", "pure-dp", Fraction(1))
    monkeypatch.setenv(
        "AIRFLOW_CONN_TEST_LEDGER",
        json.dumps({"conn_type": "imaging_privacy_ledger", "extra": {"path": str(ledger_path)}}),
    )
    spec = {
        "dataset": "cohort",
        "budget": {"epsilon": 0.75},
        "privacy_unit": {"max_records_per_patient": 1},
        "sources": {"dicom": "elsewhere"},
        "queries": [{"name": "n", "kind": "count", "partition_by": "Modality", "partitions": ["CT", "MR"]}],
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    return {"spec": str(tmp_path / "spec.yaml"), "release": str(release), "ledger": str(ledger_path)}


def _release(setup: dict[str, Any], tmp_path: Path, outlets: list[Asset] | None = None) -> DPReleaseOperator:
    return DPReleaseOperator(
        task_id="dp_release",
        spec_path=setup["spec"],
        output_path=str(tmp_path / "out"),
        sources={"dicom": setup["release"]},
        ledger_conn_id="test_ledger",
        outlets=outlets or [],
    )


def test_release_charges_once_per_task_instance_and_reports_the_spend_on_the_asset(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    asset = Asset(name="dp", uri="file:///dp")
    ctx: dict[str, Any] = context()
    first = _release(setup, tmp_path, [asset]).execute(ctx)  # type: ignore[arg-type]
    assert first["charged"] and first["loss"] == 0.75
    assert ctx["outlet_events"][asset].extra["privacy_spend"]["ledger_commit"] == first["ledger_commit"]
    chained = link_of(first["lineage_record"])
    assert chained is not None and ctx["outlet_events"][asset].extra["lineage_chain"] == chained.render()
    retry = _release(setup, tmp_path).execute(context(try_number=2))  # type: ignore[arg-type]
    assert not retry["charged"] and retry["release_id"] == first["release_id"]
    with open_ledger(f"sqlite:///{setup['ledger']}") as ledger:
        assert ledger.status("cohort").spent == Fraction(3, 4)
    json.dumps(first)


def test_over_budget_fails_cleanly_before_any_work(setup: dict[str, Any], tmp_path: Path) -> None:
    _release(setup, tmp_path).execute(context())  # type: ignore[arg-type]
    check = PrivacyBudgetCheckOperator(task_id="check", spec_path=setup["spec"], ledger_conn_id="test_ledger")
    with pytest.raises(AirflowFailException, match="remaining 1/4"):
        check.execute(context(run_id="manual__2"))  # type: ignore[arg-type]
    with pytest.raises(AirflowFailException, match="nothing was charged"):
        _release(setup, tmp_path / "second").execute(context(run_id="manual__2"))  # type: ignore[arg-type]
    assert not (tmp_path / "second").exists()


def test_losing_the_reservation_race_fails_for_good_too(
    setup: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task whose pre-check passed but whose reserve is refused (another task reserved in between) must not
    be retried either: AirflowFailException, not the library's error."""
    import operators.dp as dp_operators

    _release(setup, tmp_path).execute(context())  # type: ignore[arg-type]
    monkeypatch.setattr(dp_operators, "_checked", lambda *args, **kwargs: None)  # the check ran before the rival
    with pytest.raises(AirflowFailException, match="nothing was charged"):
        _release(setup, tmp_path / "second").execute(context(run_id="manual__2"))  # type: ignore[arg-type]
    assert not (tmp_path / "second").exists()


def test_budget_check_passes_and_charges_nothing(setup: dict[str, Any]) -> None:
    check = PrivacyBudgetCheckOperator(task_id="check", spec_path=setup["spec"], ledger_conn_id="test_ledger")
    assert check.execute(context()) == {"dataset": "cohort", "cost": 0.75, "remaining": 1.0}  # type: ignore[arg-type]
    with open_ledger(f"sqlite:///{setup['ledger']}") as ledger:
        assert len(ledger.entries("cohort")) == 1


def test_ledger_hook_builds_postgres_urls_and_keeps_the_password_out_of_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_PG_LEDGER",
        json.dumps(
            {
                "conn_type": "imaging_privacy_ledger",
                "host": "127.0.0.1",
                "port": 1,
                "login": "airflow",
                "password": "s3cr3t-p@ss",
                "schema": "airflow",
                "extra": {"schema": "ledger"},
            }
        ),
    )
    hook = PrivacyLedgerHook("pg_ledger")
    assert hook.ledger_url() == "postgresql://airflow:s3cr3t-p%40ss@127.0.0.1:1/airflow?schema=ledger"
    ok, message = hook.test_connection()
    assert not ok and "s3cr3t" not in message
    with pytest.raises(LedgerUnavailableError) as caught:
        hook.get_conn()
    assert "s3cr3t" not in str(caught.value)
