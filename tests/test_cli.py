"""The ``imaging-privacy`` command line: subcommands, exit codes, summaries without identifiers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from privacy_core.cli import EXIT_LEAK, EXIT_QUARANTINED, EXIT_USAGE, main
from tests.conftest import PYDICOM_FILES, TEST_SECRET


@pytest.fixture
def small_input(tmp_path: Path) -> Path:
    source = tmp_path / "in"
    (source / "nested" / "deeper").mkdir(parents=True)
    shutil.copy(PYDICOM_FILES / "CT_small.dcm", source / "nested" / "deeper" / "CT_small.dcm")
    shutil.copy(PYDICOM_FILES / "MR_small.dcm", source / "MR_small.dcm")
    shutil.copy(PYDICOM_FILES / "README.txt", source / "README.txt")
    return source


def test_deid_then_verify(
    small_input: Path, tmp_path: Path, secret_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, report = tmp_path / "out", tmp_path / "summary.json"
    code = main(["deid", str(small_input), str(out), "--secret-file", str(secret_file), "--report", str(report)])
    printed = capsys.readouterr()
    assert code == 0
    assert "de-identified 2 of 3 files" in printed.out
    assert "not-dicom" in printed.out
    summary = json.loads(report.read_text())
    assert (summary["written"], summary["quarantined"]) == (2, 1)
    assert main(["verify", str(small_input), str(out)]) == 0
    assert "no leak found" in capsys.readouterr().out


def test_strict_exits_3_when_anything_was_quarantined(small_input: Path, tmp_path: Path, secret_file: Path) -> None:
    code = main(["deid", str(small_input), str(tmp_path / "o"), "--secret-file", str(secret_file), "--strict"])
    assert code == EXIT_QUARANTINED


def test_secret_from_environment(small_input: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGING_PRIVACY_SECRET", TEST_SECRET)
    assert main(["deid", str(small_input), str(tmp_path / "o")]) == 0


def test_missing_secret_is_a_usage_error_that_says_how(
    small_input: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("IMAGING_PRIVACY_SECRET", raising=False)
    assert main(["deid", str(small_input), str(tmp_path / "o")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "IMAGING_PRIVACY_SECRET" in err
    assert "token_hex" in err
    assert not (tmp_path / "o").exists()


def test_non_empty_output_is_refused(small_input: Path, tmp_path: Path, secret_file: Path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "x").write_text("x")
    assert main(["deid", str(small_input), str(out), "--secret-file", str(secret_file)]) == EXIT_USAGE


def test_options_and_workers(small_input: Path, tmp_path: Path, secret_file: Path) -> None:
    args = ["deid", str(small_input), str(tmp_path / "o"), "--secret-file", str(secret_file)]
    args += ["--option", "retain-uids", "--option", "clean-descriptors", "--workers", "2"]
    assert main(args) == 0
    record = json.loads(next((tmp_path / "o" / "lineage").glob("*.json")).read_text())
    assert record["privacy"]["deidentification"]["options"] == ["clean_descriptors", "retain_uids"]


def test_unknown_option_is_rejected(small_input: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["deid", str(small_input), str(tmp_path / "o"), "--option", "keep-everything"])
    assert caught.value.code == EXIT_USAGE


def test_verify_exit_code_on_leak(small_input: Path, tmp_path: Path, secret_file: Path) -> None:
    out = tmp_path / "o"
    main(["deid", str(small_input), str(out), "--secret-file", str(secret_file)])
    (out / "leak.txt").write_text("CompressedSamples^MR1")
    assert main(["verify", str(small_input), str(out), "--report", str(tmp_path / "f.json")]) == EXIT_LEAK


@pytest.mark.parametrize("command", [[], ["deid"], ["verify"]])
def test_help_explains_each_subcommand(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "privacy_core.cli", *command, "--help"], capture_output=True, text=True, check=True
    )
    assert "usage: imaging-privacy" in result.stdout
    if command:
        assert "OUTPUT" in result.stdout


def test_installed_entry_point_runs() -> None:
    exe = Path(sys.executable).with_name("imaging-privacy")
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    assert "deid" in result.stdout
    assert "verify" in result.stdout


def test_to_zarr_then_pixels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "release"
    source.mkdir()
    shutil.copy(PYDICOM_FILES / "CT_small.dcm", source / "CT_small.dcm")
    assert main(["to-zarr", str(source), str(tmp_path / "store")]) == 0
    assert "wrote 1 series arrays" in capsys.readouterr().out
    args = ["pixels", str(tmp_path / "store"), str(tmp_path / "dp"), "--method", "dp-pix", "--block", "4"]
    assert main([*args, "--epsilon", "1", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "noise scale" in out
    assert "dp-pix applied to 1 series arrays" in out


def test_pixels_bad_region_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["pixels", str(tmp_path), str(tmp_path / "o"), "--method", "mask", "--region", "1,2,x"])
    assert code == EXIT_USAGE
    assert "--region" in capsys.readouterr().err
