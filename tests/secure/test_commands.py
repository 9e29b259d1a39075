"""``imaging-privacy secure ...``: every step from the command line, its exit codes and what it prints."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from privacy_core.dp.ledger import open_ledger
from privacy_core.errors import PrivacyCoreError
from privacy_core.secure import commands
from privacy_core.secure.commands import EXIT_BUDGET, EXIT_NOT_READY, EXIT_REFUSED


def cli(argv: list[str]) -> int:
    """What ``imaging-privacy`` does with a ``secure`` command line (as privacy_core.cli.main does)."""
    parser = argparse.ArgumentParser(prog="imaging-privacy")
    sub = parser.add_subparsers(dest="command", required=True)
    commands.add_parsers(sub)
    args = parser.parse_args(argv)
    try:
        return commands.run(args)
    except PrivacyCoreError as exc:
        print(f"imaging-privacy {args.command}: {exc}", file=sys.stderr)
        return 2


@pytest.fixture
def world(tmp_path: Path, ceremony: dict[str, Any]) -> dict[str, Any]:
    """A ledger with a zcdp dataset, an exchange folder and three sites' vectors on disk."""
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    with open_ledger(ledger) as book:
        book.create_dataset("cohort", "zcdp", Fraction(3))
    vectors = {}
    for index, site in enumerate("ABCD"):
        path = tmp_path / f"{site}.npy"
        np.save(path, np.arange(5) + 10 * index)
        vectors[site] = path
    return {"ledger": ledger, "exchange": str(tmp_path / "exchange"), "vectors": vectors, **ceremony}


def _open(world: dict[str, Any], *extra: str, deadline: str | None = None) -> list[str]:
    due = deadline or (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    return [
        "secure", "open-round", world["exchange"], "r1",
        "--public-key", world["public_key"],
        "--statistic", "counts", "--length", "5", "--value-bound", "100", "--l2-sensitivity-sq", "1",
        "--site", "A", "--site", "B", "--site", "C", "--site", "D",
        "--min-sites", "3", "--collusion", "1", "--rho", "1/2", "--dataset", "cohort",
        "--deadline", due, *extra,
    ]  # fmt: skip


def _encrypt(world: dict[str, Any], site: str) -> list[str]:
    return [
        "secure", "encrypt", world["exchange"], "r1", "--site", site,
        "--vector", str(world["vectors"][site]), "--public-key", world["public_key"],
    ]  # fmt: skip


def _after_deadline(world: dict[str, Any]) -> str:
    spec = json.loads(Path(world["exchange"], "r1", "spec.json").read_text())
    due = dt.datetime.fromisoformat(spec["payload"]["deadline"].replace("Z", "+00:00"))
    return (due + dt.timedelta(seconds=1)).isoformat()


def test_keygen(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli(["secure", "keygen", str(tmp_path / "keys"), "--holders", "3", "--threshold", "2", "--bits", "512"])
    out = capsys.readouterr().out
    assert code == 0
    assert "dealt a 2-of-3 512-bit threshold key sha256:" in out
    assert out.count("mode 0600") == 3
    for holder in (1, 2, 3):
        share = tmp_path / "keys" / f"key-share-{holder}.json"
        assert share.stat().st_mode & 0o777 == 0o600
        secret = json.loads(share.read_text())["secret"]
        assert secret not in out
    assert cli(["secure", "keygen", str(tmp_path / "keys"), "--holders", "3", "--threshold", "2"]) == 2
    assert "already holds a key" in capsys.readouterr().err


def test_keygen_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["secure", "keygen", str(tmp_path / "k"), "--holders", "2", "--threshold", "2", "--bits", "512", "--json"]
    assert cli(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["holders"], summary["threshold"], len(summary["shares"])) == (2, 2, 2)


def test_a_whole_round(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(_open(world, "--ledger", world["ledger"])) == 0
    assert "round r1 open until" in capsys.readouterr().out
    for site in "ABC":
        assert cli(_encrypt(world, site)) == 0
    assert "uploaded 5 noisy values" in capsys.readouterr().out
    argv = ["secure", "aggregate", world["exchange"], "r1", "--now", _after_deadline(world)]
    assert cli(argv) == 0
    assert "3 uploads arrived, 3 accepted" in capsys.readouterr().out
    for share in world["shares"][:2]:
        assert cli(["secure", "decrypt-share", world["exchange"], "r1", "--share", share]) == 0
    assert "published a partial decryption" in capsys.readouterr().out
    combine = ["secure", "combine", world["exchange"], "r1", "--ledger", world["ledger"]]
    assert cli(combine) == 0
    first = capsys.readouterr().out
    assert "charged rho" in first and "to cohort" in first
    assert cli([*combine, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["charged"] is False
    result = json.loads(Path(summary["result"]).read_text())["payload"]
    assert len(result["totals"]) == 5


def test_site_pins_the_key_by_fingerprint(
    world: dict[str, Any], other_ceremony: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(_open(world)) == 0
    argv = ["secure", "encrypt", world["exchange"], "r1", "--site", "A", "--vector", str(world["vectors"]["A"])]
    assert cli([*argv, "--key-fingerprint", other_ceremony["key_fingerprint"]]) == EXIT_REFUSED
    assert "not the key this site trusts" in capsys.readouterr().err
    assert cli([*argv, "--key-fingerprint", world["key_fingerprint"]]) == 0


def test_aggregate_before_the_deadline_exits_5(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    cli(_open(world))
    cli(_encrypt(world, "A"))
    assert cli(["secure", "aggregate", world["exchange"], "r1"]) == EXIT_NOT_READY
    assert "1 of 4 allowed sites have uploaded" in capsys.readouterr().err


def test_aggregate_with_too_few_sites_exits_6(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    cli(_open(world))
    cli(_encrypt(world, "A"))
    assert cli(["secure", "aggregate", world["exchange"], "r1", "--now", _after_deadline(world)]) == EXIT_REFUSED
    assert "1 uploads arrived and 1 were accepted" in capsys.readouterr().err


def test_combine_with_one_share_exits_6(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    cli(_open(world))
    for site in "ABCD":
        cli(_encrypt(world, site))
    cli(["secure", "aggregate", world["exchange"], "r1"])
    cli(["secure", "decrypt-share", world["exchange"], "r1", "--share", world["shares"][2]])
    capsys.readouterr()
    assert cli(["secure", "combine", world["exchange"], "r1", "--ledger", world["ledger"]]) == EXIT_REFUSED
    assert "1 valid decryption shares of the 2 needed" in capsys.readouterr().err


def test_open_round_over_budget_exits_4(
    world: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = f"sqlite:///{tmp_path / 'small.db'}"
    with open_ledger(small) as book:
        book.create_dataset("cohort", "zcdp", Fraction(1, 10))
    assert cli(_open(world, "--ledger", small)) == EXIT_BUDGET
    assert "exceeds the remaining budget" in capsys.readouterr().err
    assert not Path(world["exchange"], "r1", "spec.json").exists()


def test_bad_settings_exit_2(world: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(_open(world, deadline="2000-01-01T00:00:00Z")) == 2
    assert "deadline" in capsys.readouterr().err
    (tmp_path / "options.json").write_text("[]")
    assert cli([*_open(world), "--storage-options", str(tmp_path / "options.json")]) == 2
    assert "--storage-options" in capsys.readouterr().err


def test_missing_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli(["secure", "encrypt", "ex", "r1", "--site", "A", "--vector", "v.npy"])  # no trusted key given
    assert caught.value.code == 2
    assert "--key-fingerprint" in capsys.readouterr().err


def test_the_main_cli_routes_secure() -> None:
    from privacy_core import cli as main_cli

    parser = main_cli._parser()
    choices = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    if "secure" not in choices:
        pytest.skip("privacy_core/cli.py does not register commands.add_parsers(sub) for `secure` yet")
    with pytest.raises(SystemExit) as caught:
        main_cli.main(["secure", "--help"])
    assert caught.value.code == 0
