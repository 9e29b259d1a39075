"""The cross-site operators: thin, templated, and a whole round through them with a small key."""

from __future__ import annotations

import datetime as dt
import inspect
import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import Asset, BaseOperator

from operators.secure import (
    SecureAggregateOperator,
    SecureCombineOperator,
    SecureDecryptShareOperator,
    SecureRoundOperator,
    SecureSiteEncryptOperator,
)
from privacy_core.dp.ledger import open_ledger
from privacy_core.lineage.chain import link_of
from tests.operators.test_deid import context

OPERATORS = (
    SecureRoundOperator,
    SecureSiteEncryptOperator,
    SecureAggregateOperator,
    SecureDecryptShareOperator,
    SecureCombineOperator,
)


@pytest.mark.parametrize("operator", OPERATORS, ids=lambda o: o.__name__)
def test_template_fields_are_constructor_arguments(operator: type[BaseOperator]) -> None:
    assert set(operator.template_fields) <= set(inspect.signature(operator).parameters)


def test_constructors_only_assign(tmp_path: Path) -> None:
    op = SecureDecryptShareOperator(
        task_id="d", exchange=str(tmp_path / "none"), round_id="{{ r }}", share_path="/absent/share.json"
    )
    assert (op.round_id, op.share_path) == ("{{ r }}", "/absent/share.json")
    assert not (tmp_path / "none").exists()


def test_a_round_through_the_operators_with_a_dropped_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from privacy_core.secure.cohorts import L2_SENSITIVITY_SQ, make_site_statistics
    from privacy_core.secure.roles import keygen

    keys = keygen(tmp_path / "keys", holders=3, threshold=2, bits=512)
    ledger = tmp_path / "ledger.db"
    with open_ledger(f"sqlite:///{ledger}") as book:
        book.create_dataset("cohort", "zcdp", Fraction(5), delta=1e-6)
    monkeypatch.setenv(
        "AIRFLOW_CONN_TEST_LEDGER",
        json.dumps({"conn_type": "imaging_privacy_ledger", "extra": {"path": str(ledger)}}),
    )
    exchange = str(tmp_path / "exchange")
    deadline = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    SecureRoundOperator(
        task_id="open",
        exchange=exchange,
        round_id="r1",
        public_key=keys["public_key"],
        round_settings={
            "statistic": "cohort",
            "length": 14,
            "value_bound": 1000,
            "resolution": "1",
            "contribution_bound": 1,
            "l2_sensitivity_sq": L2_SENSITIVITY_SQ,
            "sites": ["a", "b", "c", "d"],
            "min_sites": 3,
            "collusion": 1,
            "rho": 0.5,
            "delta": 1e-6,
            "dataset": "cohort",
            "deadline": deadline,
        },
    ).execute(context())  # type: ignore[arg-type]
    sites = make_site_statistics(tmp_path / "sites", ["a", "b", "c"], [50, 60, 70])
    for site in sites:
        SecureSiteEncryptOperator(
            task_id="enc",
            exchange=exchange,
            round_id="r1",
            site_id=site.site_id,
            vector=site.path,
            key_fingerprint=keys["key_fingerprint"],
        ).execute(context())  # type: ignore[arg-type]
    summary = SecureAggregateOperator(task_id="agg", exchange=exchange, round_id="r1", max_wait_seconds=30).execute(
        context()  # type: ignore[arg-type]
    )
    assert summary["accepted"] == 3  # waited for the deadline: site d dropped out
    for holder in (1, 3):
        SecureDecryptShareOperator(
            task_id="dec",
            exchange=exchange,
            round_id="r1",
            share_path=str(tmp_path / "keys" / f"key-share-{holder}.json"),
        ).execute(context())  # type: ignore[arg-type]
    asset = Asset(name="result", uri="file:///result")
    ctx: dict[str, Any] = context()
    result = SecureCombineOperator(
        task_id="combine", exchange=exchange, round_id="r1", ledger_conn_id="test_ledger", outlets=[asset]
    ).execute(ctx)  # type: ignore[arg-type]
    assert result["charged"] and result["sites_accepted"] == 3
    assert ctx["outlet_events"][asset].extra["privacy_spend"]["round_id"] == "r1"
    chained = link_of(result["lineage_record"])
    assert chained is not None and ctx["outlet_events"][asset].extra["lineage_chain"] == chained.render()
    with open_ledger(f"sqlite:///{ledger}") as book:
        assert book.status("cohort").spent == Fraction(result["rho_exact"])
    text = json.dumps(result)
    share_secret = json.loads((tmp_path / "keys" / "key-share-1.json").read_text())["secret"]
    assert str(share_secret) not in text


def test_aggregate_that_cannot_wait_for_the_deadline_fails_for_a_retry(tmp_path: Path) -> None:
    from privacy_core.errors import RoundNotReadyError
    from privacy_core.secure.roles import keygen

    keys = keygen(tmp_path / "keys", holders=3, threshold=2, bits=512)
    exchange = str(tmp_path / "exchange")
    deadline = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    SecureRoundOperator(
        task_id="open",
        exchange=exchange,
        round_id="r2",
        public_key=keys["public_key"],
        round_settings={
            "statistic": "cohort",
            "length": 2,
            "value_bound": 10,
            "resolution": "1",
            "contribution_bound": 1,
            "l2_sensitivity_sq": 2,
            "sites": ["a", "b", "c"],
            "min_sites": 2,
            "collusion": 0,
            "rho": 0.5,
            "delta": 1e-6,
            "dataset": "cohort",
            "deadline": deadline,
        },
    ).execute(context())  # type: ignore[arg-type]
    with pytest.raises(RoundNotReadyError, match="0 of 3"):
        SecureAggregateOperator(task_id="agg", exchange=exchange, round_id="r2", max_wait_seconds=5).execute(
            context()  # type: ignore[arg-type]
        )
