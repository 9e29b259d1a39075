"""The releases audit: an untouched run passes; each kind of tampering fails and says where."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from privacy_core.cli import main
from privacy_core.imaging.compute import DaskConfig
from privacy_core.lineage.audit import AuditReport, audit_releases, is_secret_key
from privacy_core.lineage.chain import CHAIN_DIR, ChainLink
from privacy_core.lineage.commands import EXIT_FAILED
from tests.conftest import TEST_SECRET
from tests.lineage.conftest import build_run


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, cluster: DaskConfig) -> Path:
    """A small real run (see ``build_run``)."""
    return build_run(tmp_path_factory.mktemp("run"), cluster, rows=16, burned_in=False)


@pytest.fixture
def run(built: Path, tmp_path: Path) -> Path:
    """A private copy of the run to tamper with (the audit reads the folders where they are now)."""
    copy = tmp_path / "run"
    shutil.copytree(built, copy, ignore=shutil.ignore_patterns("input"))
    return copy


def _audit(run: Path, **kwargs: Any) -> AuditReport:
    return audit_releases(run / "releases", ledger_url=f"sqlite:///{run / 'ledger.db'}", **kwargs)


def _record(run: Path, folder: str) -> Path:
    (path,) = (run / "releases" / folder / "lineage").glob("*.json")
    return path


def _failed(report: AuditReport, check: str) -> list[str]:
    return [f.path for f in report.findings if f.check == check]


def test_untouched_run_passes_and_reports_both_budget_numbers(run: Path) -> None:
    report = _audit(run, secret_text=TEST_SECRET)
    assert report.ok, report.render()
    assert (report.folders, report.records) == (4, 4)
    assert "charged in these records 1/2" in report.notes[0] and "ledger spent 1/2" in report.notes[0]
    assert report.verdict().startswith("verdict: PASS")


def test_edited_dicom_byte_is_a_digest_mismatch_of_the_release(run: Path) -> None:
    dicom = sorted((run / "releases" / "release-1").rglob("*.dcm"))[0]
    data = bytearray(dicom.read_bytes())
    data[-1] ^= 0xFF
    dicom.write_bytes(bytes(data))
    report = _audit(run)
    assert not report.ok
    assert [p.split(" ")[0] for p in _failed(report, "digest")] == [str(_record(run, "release-1"))]
    assert "sha256-tree" in _failed(report, "digest")[0]


def test_deleted_record_is_reported_as_missing(run: Path) -> None:
    _record(run, "zarr-1").unlink()
    report = _audit(run)
    assert _failed(report, "record") == [str(run / "releases" / "zarr-1")]
    assert "no lineage record" in report.findings[0].problem


def test_edited_record_field_fails_its_schema(run: Path) -> None:
    path = _record(run, "dp-pix-1")
    record = json.loads(path.read_text())
    record["counts"]["arrays"] = "many"
    path.write_text(json.dumps(record))
    report = _audit(run)
    assert _failed(report, "record") == [str(path)]
    assert "/counts/arrays" in report.findings[0].problem


def test_edited_record_digest_is_a_digest_mismatch(run: Path) -> None:
    path = _record(run, "zarr-1")
    record = json.loads(path.read_text())
    record["outputs"][0]["digest"]["value"] = "0" * 64
    path.write_text(json.dumps(record))
    report = _audit(run)
    assert [p.split(" ")[0] for p in _failed(report, "digest")] == [str(path)]


def test_edited_release_json_is_a_digest_mismatch(run: Path) -> None:
    bundle = run / "releases" / "dp-release-1" / "release.json"
    raw = json.loads(bundle.read_text())
    raw["queries"][0]["statistics"][0]["values"][0] += 100.0
    bundle.write_text(json.dumps(raw, indent=2, sort_keys=True) + "\n")
    report = _audit(run)
    assert not report.ok
    assert {p.split(" ")[0] for p in _failed(report, "digest")} == {str(_record(run, "dp-release-1"))}


def test_altered_ledger_entry_fails_the_chain(run: Path) -> None:
    with sqlite3.connect(run / "ledger.db") as db:  # an insider drops the guard, shrinks the cost
        db.execute("drop trigger ledger_entries_no_update")
        changed = db.execute("update ledger_entries set cost = '1/10' where kind = 'commit'").rowcount
    assert changed == 1
    report = _audit(run)
    assert _failed(report, "ledger") and all("dataset cohort" in p for p in _failed(report, "ledger"))
    assert any("hash chain does not verify" in f.problem for f in report.findings)


def test_a_ledger_dataset_no_record_names_is_verified_too(run: Path) -> None:
    from fractions import Fraction

    from privacy_core.dp.ledger import open_ledger

    with open_ledger(f"sqlite:///{run / 'ledger.db'}") as ledger:
        ledger.create_dataset("elsewhere", "pure-dp", Fraction(2))
    report = _audit(run)
    assert report.ok, report.render()
    assert any(n.startswith("elsewhere: named by no record here; ledger spent 0") for n in report.notes)
    with sqlite3.connect(run / "ledger.db") as db:
        db.execute("drop trigger ledger_entries_no_update")
        db.execute("update ledger_entries set cap = '5/1' where dataset = 'elsewhere'")
    report = _audit(run)
    assert _failed(report, "ledger") and all("dataset elsewhere" in p for p in _failed(report, "ledger"))


def test_bundle_naming_another_commit_fails(run: Path) -> None:
    bundle = run / "releases" / "dp-release-1" / "release.json"
    raw = json.loads(bundle.read_text())
    raw["ledger"]["commit_hash"] = "f" * 64
    bundle.write_text(json.dumps(raw))
    report = _audit(run)
    assert str(bundle) in _failed(report, "ledger")


def test_record_naming_a_non_commit_entry_fails(run: Path) -> None:
    path = _record(run, "dp-release-1")
    record = json.loads(path.read_text())
    record["privacy"]["dp_release"]["ledger_entry"]["sequence"] = 0  # the genesis entry, not a commit
    path.write_text(json.dumps(record))
    report = _audit(run)
    assert str(path) in _failed(report, "ledger")


def test_charged_losses_above_the_ledger_spend_fail(run: Path) -> None:
    path = _record(run, "dp-release-1")
    record = json.loads(path.read_text())
    record["privacy"]["dp_release"]["loss_exact"] = "2"
    path.write_text(json.dumps(record))
    report = _audit(run)
    (finding,) = [f for f in report.findings if f.check != "chain"]  # the chain also sees the record edited
    assert finding.check == "budget" and "records charge 2, more than the ledger's spent 1/2" in finding.problem


def test_planted_secret_key_is_key_material(run: Path) -> None:
    path = _record(run, "dp-release-1")
    record = json.loads(path.read_text())
    record["privacy"]["dp_release"]["privacy_unit"]["secret"] = "hunter2-do-not-print"
    path.write_text(json.dumps(record))
    report = _audit(run)
    assert _failed(report, "secrets") == [f"{path} at /privacy/dp_release/privacy_unit/secret"]
    assert "hunter2" not in report.render()


def test_key_share_and_secret_text_are_found_and_never_quoted(run: Path) -> None:
    path = _record(run, "zarr-1")
    record = json.loads(path.read_text())
    record["storage"]["note"] = f"PaillierKeyShare/1.0 and {TEST_SECRET}"
    path.write_text(json.dumps(record))
    report = _audit(run, secret_text=TEST_SECRET)
    problems = [f.problem for f in report.findings if f.check == "secrets"]
    assert "value is shaped like a PaillierKeyShare" in problems and "holds the project secret's text" in problems
    assert TEST_SECRET not in report.render()


# --- the lineage chain ---------------------------------------------------------------------------------------


def _head(report: AuditReport) -> ChainLink:
    (note,) = [n for n in report.notes if n.startswith("lineage chain:")]
    return ChainLink.parse(note.split(" head ")[1].split(" ")[0])


def test_every_record_is_chained_and_the_head_is_printed(run: Path) -> None:
    report = _audit(run)
    head = _head(report)
    assert report.ok and head.sequence == 4
    assert _audit(run, expect_heads=[head]).ok


def test_deleting_a_whole_output_folder_with_its_record_is_caught_by_the_chain(run: Path) -> None:
    shutil.rmtree(run / "releases" / "dp-pix-1")
    report = _audit(run)
    assert not report.ok
    assert _failed(report, "record") == [] and _failed(report, "digest") == []
    (problem,) = [f.problem for f in report.findings if f.check == "chain"]
    assert problem.startswith("names dp-pix-1/lineage/") and problem.endswith("which is missing")


def test_a_schema_valid_edit_of_a_record_is_caught_by_the_chain(run: Path) -> None:
    path = _record(run, "release-1")
    record = json.loads(path.read_text())
    record["parameters"]["note"] = "rewritten later"  # valid, digests untouched: only the chain knows
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    report = _audit(run)
    assert [f.check for f in report.findings] == ["chain"]
    assert report.findings[0].problem.endswith("changed after it was chained")


def test_a_record_planted_beside_the_others_is_in_no_link(run: Path) -> None:
    path = _record(run, "zarr-1")
    planted = path.with_name("00000000-0000-4000-8000-000000000000.json")
    shutil.copy(path, planted)
    report = _audit(run)
    assert _failed(report, "chain") == [str(planted)]


def test_edited_removed_or_cut_links_fail_and_say_where(run: Path) -> None:
    chain = run / "releases" / CHAIN_DIR
    link = json.loads((chain / "00000002.json").read_text())
    link["record"]["operation"] = "something-else"
    (chain / "00000002.json").write_text(json.dumps(link))
    assert _failed(_audit(run), "chain") == [str(chain / "00000002.json")]

    (chain / "00000002.json").unlink()
    report = _audit(run)
    assert _failed(report, "chain")[0] == str(chain / "00000003.json")
    assert "a link is missing" in report.findings[0].problem


def test_cutting_the_end_of_the_chain_fails_only_against_the_noted_head(run: Path) -> None:
    releases = run / "releases"
    head = _head(_audit(run))
    last = json.loads((releases / CHAIN_DIR / "00000004.json").read_text())
    shutil.rmtree(releases / last["record"]["path"].split("/")[0])
    (releases / CHAIN_DIR / "00000004.json").unlink()
    assert _audit(run).ok  # consistent: what remains verifies, and the ledger still covers what is here
    report = _audit(run, expect_heads=[head])
    assert _failed(report, "chain") == [str(releases / CHAIN_DIR)]
    assert "ends before link 4" in report.render()


def test_cli_expect_head(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["audit", str(run / "releases")]
    assert main(args) == 0
    head = _head(_audit(run))
    assert main([*args, "--expect-head", head.render()]) == 0
    wrong = ChainLink(head.sequence, "0" * 64).render()
    assert main([*args, "--expect-head", wrong]) == EXIT_FAILED
    assert main([*args, "--expect-head", "four"]) == 2
    assert "expect-head" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        *[("secret", True), ("Password", True), ("api_token", True), ("private_key", True), ("private", True)],
        *[("private_attributes", False), ("key_fingerprint", False), ("idempotency_key", False), ("tokens", False)],
    ],
)
def test_secret_key_names(name: str, secret: bool) -> None:
    assert is_secret_key(name) is secret


def test_cli_exit_codes_and_verdict(run: Path, secret_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["audit", str(run / "releases"), "--ledger", f"sqlite:///{run / 'ledger.db'}"]
    assert main([*args, "--secret-file", str(secret_file)]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == "verdict: PASS (4 output folders, 4 lineage records verify)"
    _record(run, "release-1").unlink()
    assert main(args) == EXIT_FAILED
    lines = capsys.readouterr().out.strip().splitlines()
    assert f"  [record] {run / 'releases' / 'release-1'}: no lineage record in lineage/" in lines
    assert any(line.startswith("  [chain] ") and "which is missing" in line for line in lines)
    assert lines[-1].startswith("verdict: FAIL (2 problems")


def test_cli_missing_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err
