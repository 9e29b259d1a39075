"""``imaging-privacy release`` and ``budget``: exit codes, messages, and nothing charged on refusal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydicom
import pytest
import yaml

from privacy_core.cli import main
from privacy_core.dp.commands import EXIT_BUDGET, EXIT_TAMPERED


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    release = tmp_path / "release"
    release.mkdir()
    src = Path(pydicom.__file__).parent / "data" / "test_files"
    for index, name in enumerate(("CT_small.dcm", "MR_small.dcm", "CT_small.dcm")):
        ds = pydicom.dcmread(src / name)
        ds.PatientID = f"PAT00000000000{index:02d}"
        ds.SeriesInstanceUID = f"2.25.{index + 1}"
        ds.save_as(release / f"{index}.dcm")
    raw: dict[str, Any] = {
        "dataset": "cohort",
        "budget": {"epsilon": 1},
        "privacy_unit": {"max_records_per_patient": 1},
        "sources": {"dicom": "release"},
        "queries": [
            {"name": "n", "kind": "count", "partition_by": "Modality", "partitions": ["CT", "MR"]},
            {"name": "rows", "kind": "mean", "field": "Rows", "bounds": [0, 512], "resolution": 1},
        ],
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _ledger(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


def test_release_then_show_then_verify(spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = _ledger(tmp_path)
    assert main(["budget", "init", "cohort", "--cap", "5/2", "--ledger", ledger]) == 0
    assert main(["release", str(spec), "--ledger", ledger, "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "charged pure-dp loss 1 to cohort" in out
    assert (tmp_path / "out" / "release.json").is_file()
    assert main(["release", str(spec), "--ledger", ledger, "--output", str(tmp_path / "again")]) == 0
    assert "charged nothing" in capsys.readouterr().out
    assert main(["budget", "show", "cohort", "--json", "--ledger", ledger]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["cap"], shown["spent"], shown["remaining"]) == (2.5, 1.0, 1.5)
    assert main(["budget", "verify", "cohort", "--ledger", ledger]) == 0


def test_over_cap_exits_4_and_charges_nothing(spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = _ledger(tmp_path)
    main(["budget", "init", "cohort", "--cap", "0.5", "--ledger", ledger])
    code = main(["release", str(spec), "--ledger", ledger, "--output", str(tmp_path / "out")])
    assert code == EXIT_BUDGET
    assert "lower epsilon to at most 1/2" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()
    main(["budget", "show", "cohort", "--json", "--ledger", ledger])
    assert json.loads(capsys.readouterr().out)["spent"] == 0


def test_tampered_ledger_fails_verify(spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import sqlite3

    ledger = _ledger(tmp_path)
    main(["budget", "init", "cohort", "--cap", "3", "--ledger", ledger])
    main(["release", str(spec), "--ledger", ledger, "--output", str(tmp_path / "out")])
    with sqlite3.connect(tmp_path / "ledger.db") as db:  # an insider drops the guard, shrinks the cost
        db.execute("drop trigger ledger_entries_no_update")
        changed = db.execute("update ledger_entries set cost = '1/10' where kind = 'commit'").rowcount
    assert changed == 1
    capsys.readouterr()
    assert main(["budget", "verify", "cohort", "--ledger", ledger]) == EXIT_TAMPERED
    assert "does NOT verify" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"budget": {"epsilon": 0}}, "budget.epsilon: is 0, not above zero"),
        ({"queries": [{"name": "x", "kind": "sum", "field": "Rows"}]}, "needs clipping bounds"),
        ({"queries": [{"name": "x", "kind": "mean", "field": "Bogus", "bounds": [0, 1]}]}, "not a DICOM attribute"),
    ],
)
def test_bad_spec_exits_2_with_the_fix_and_charges_nothing(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: dict[str, Any], message: str
) -> None:
    ledger = _ledger(tmp_path)
    main(["budget", "init", "cohort", "--cap", "3", "--ledger", ledger])
    raw = yaml.safe_load(spec.read_text())
    spec.write_text(yaml.safe_dump({**raw, **edit}))
    assert main(["release", str(spec), "--ledger", ledger]) == 2
    assert message in capsys.readouterr().err
    main(["budget", "show", "cohort", "--json", "--ledger", ledger])
    assert json.loads(capsys.readouterr().out)["spends"] == []


def test_no_ledger_anywhere_says_how_to_give_one(
    spec: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("IMAGING_PRIVACY_LEDGER", raising=False)
    assert main(["release", str(spec)]) == 2
    assert "IMAGING_PRIVACY_LEDGER" in capsys.readouterr().err
