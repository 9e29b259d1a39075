"""``imaging-privacy audit`` on a cross-site exchange: a complete round passes, and a planted or changed
envelope, a step under another key, or a result naming another ledger entry fails and says where."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from privacy_core.lineage.audit import AuditReport, audit_releases
from privacy_core.secure import roles
from tests.secure.test_protocol import _data, _deadline, _decrypt, _encrypt_all


@pytest.fixture
def exchange(tmp_path: Path, open_test_round: Any, ceremony: dict[str, Any], ledger: str) -> Path:
    """A finished round ``r1`` of three sites in ``tmp_path/exchange``, charged to ``ledger``."""
    folder = str(tmp_path / "exchange")
    open_test_round(folder, "r1")
    _encrypt_all(folder, "r1", _data("ABC"), ceremony["key_fingerprint"])
    roles.aggregate(folder, "r1", now=_deadline(folder, "r1") + dt.timedelta(seconds=1))
    _decrypt(folder, "r1", ceremony)
    roles.combine_result(folder, "r1", ledger=ledger)
    return Path(folder)


@pytest.fixture
def ledger(tmp_path: Path) -> str:
    from fractions import Fraction

    from privacy_core.dp.ledger import open_ledger

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with open_ledger(url) as book:
        book.create_dataset("cohort", "zcdp", Fraction(10), delta=1e-6)
    return url


def _audit(exchange: Path, ledger: str) -> AuditReport:
    return audit_releases(exchange, ledger_url=ledger)


def _operation(path: Path) -> str:
    return str(json.loads(path.read_text())["operation"])


def _found(report: AuditReport, check: str) -> list[tuple[str, str]]:
    return [(f.path, f.problem) for f in report.findings if f.check == check]


def test_a_complete_round_passes_with_its_spend_matching_the_ledger(exchange: Path, ledger: str) -> None:
    report = _audit(exchange, ledger)
    assert report.ok, report.render()
    assert (report.folders, report.records) == (1, 8)
    (budget,) = [n for n in report.notes if n.startswith("cohort:")]
    charged, spent = budget.split("charged in these records ")[1].split(" (~")[0], budget.split("ledger spent ")[1]
    assert spent.startswith(charged) and "1 of 1 committed spends are here" in budget


def test_a_planted_upload_is_written_by_no_step(exchange: Path, ledger: str) -> None:
    planted = exchange / "r1" / "uploads" / "E.json"
    upload = json.loads((exchange / "r1" / "uploads" / "A.json").read_text())
    upload["sender"] = "E"
    planted.write_text(json.dumps(upload))
    assert _found(_audit(exchange, ledger), "secure") == [
        (str(planted), "no recorded step wrote these bytes: the envelope was planted or changed")
    ]


def test_a_changed_upload_fails_its_digest_and_the_round(exchange: Path, ledger: str) -> None:
    upload = exchange / "r1" / "uploads" / "B.json"
    upload.write_text(upload.read_text().replace('"B"', '"B "', 1))
    report = _audit(exchange, ledger)
    assert [path for path, _ in _found(report, "secure")] == [str(upload)]
    ((where, problem),) = _found(report, "digest")
    assert "(outputs[0], sha256)" in where and "the data in" in problem


def test_a_result_naming_another_ledger_entry_fails(exchange: Path, ledger: str) -> None:
    result = exchange / "r1" / "result.json"
    raw = json.loads(result.read_text())
    raw["payload"]["ledger"]["commit_sequence"] += 1
    result.write_text(json.dumps(raw))
    report = _audit(exchange, ledger)
    assert (
        str(result),
        f"ledger.commit_sequence is not {raw['payload']['ledger']['commit_sequence'] - 1}, the record's entry",
    ) in _found(report, "ledger")


def test_a_step_recorded_under_another_key_fails(exchange: Path, ledger: str) -> None:
    (path,) = [p for p in (exchange / "r1" / "lineage").glob("*.json") if _operation(p) == "secure-aggregate"]
    record = json.loads(path.read_text())
    record["privacy"]["secure"]["key_fingerprint"] = "sha256:" + "0" * 64
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    report = _audit(exchange, ledger)
    assert _found(report, "secure") == [(str(exchange / "r1"), "its steps name 2 different keys, not one")]
    assert [problem.endswith("changed after it was chained") for _, problem in _found(report, "chain")] == [True]


def test_a_deleted_step_record_leaves_its_envelope_unexplained(exchange: Path, ledger: str) -> None:
    (path,) = [p for p in (exchange / "r1" / "lineage").glob("*.json") if _operation(p) == "secure-aggregate"]
    path.unlink()
    report = _audit(exchange, ledger)
    secure = _found(report, "secure")
    assert (
        str(exchange / "r1" / "aggregate.json"),
        "no recorded step wrote these bytes: the envelope was planted or changed",
    ) in secure
    assert any("read a aggregate envelope that no recorded step" in problem for _, problem in secure)
    assert any(problem.endswith("which is missing") for _, problem in _found(report, "chain"))
