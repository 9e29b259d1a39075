"""The lineage record: built, validated, written atomically, and free of secrets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from privacy_core.deid.job import completed_summary, run_deidentification
from privacy_core.errors import SchemaValidationError
from privacy_core.keys import PseudonymKey
from privacy_core.lineage.chain import link_of, verify_chain
from privacy_core.lineage.record import AirflowRun, Artifact, build_record, read_record, scrub_parameters
from tests.conftest import PYDICOM_FILES, TEST_SECRET

RUN = AirflowRun(dag_id="d", run_id="manual__1", task_id="t", map_index=-1, try_number=1)


def test_secret_parameters_are_dropped() -> None:
    assert scrub_parameters({"workers": 2, "secret_file": "/k", "api_token": "x", "Password": "y"}) == {"workers": 2}


def test_build_validates_and_rejects_bad_fields() -> None:
    good = {
        "operation": "deidentify",
        "parameters": {},
        "inputs": [Artifact("file:///in", "dicom", 1, "sha256", "0" * 64)],
        "outputs": [],
        "counts": {"processed": 1},
        "privacy": {},
    }
    record = build_record(**good)  # type: ignore[arg-type]
    assert record["run"] == {"kind": "cli", "run_id": None, "airflow": None}
    with pytest.raises(SchemaValidationError, match="/inputs/0/digest/value"):
        build_record(**{**good, "inputs": [Artifact("file:///in", "dicom", 1, "sha256", "short")]})  # type: ignore[arg-type]


@pytest.fixture
def job(tmp_path: Path, key: PseudonymKey):  # type: ignore[no-untyped-def]
    source = tmp_path / "in"
    source.mkdir()
    shutil.copy(PYDICOM_FILES / "CT_small.dcm", source / "CT_small.dcm")
    shutil.copy(PYDICOM_FILES / "MR_truncated.dcm", source / "MR_truncated.dcm")
    return run_deidentification(source, tmp_path / "out", key, options=["retain_uids"], airflow=RUN)


def test_record_describes_the_run(job) -> None:  # type: ignore[no-untyped-def]
    record = read_record(job.lineage_path)
    assert record["run"]["airflow"]["dag_id"] == "d"
    assert record["counts"]["quarantined"] == 1
    assert record["counts"]["reasons"] == {"truncated": 1}
    assert record["outputs"][0]["digest"]["value"] == job.batch.output_digest()
    assert record["inputs"][0]["digest"]["algorithm"] == "hmac-sha256-tree"
    deid = record["privacy"]["deidentification"]
    assert deid["options"] == ["retain_uids"]
    assert deid["key_fingerprint"] == PseudonymKey.from_text(TEST_SECRET).fingerprint
    assert deid["burned_in_rules"]["rules"] == 52
    assert "pydicom" in record["producer"]["dependencies"]


def test_record_holds_no_secret_and_no_input_name(job) -> None:  # type: ignore[no-untyped-def]
    text = Path(job.lineage_path).read_text()
    assert TEST_SECRET not in text
    assert "MR_truncated" not in text
    assert "CT_small" not in text


def test_output_digest_matches_the_files_on_disk(job) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    record = json.loads(Path(job.lineage_path).read_text())
    lines = sorted(
        f"{p.relative_to(job.batch.output).as_posix()}\t{hashlib.sha256(p.read_bytes()).hexdigest()}\n"
        for p in job.batch.output.rglob("*.dcm")
    )
    assert record["outputs"][0]["digest"]["value"] == hashlib.sha256("".join(lines).encode()).hexdigest()


def test_completed_summary_finds_the_same_task_only(job) -> None:  # type: ignore[no-untyped-def]
    done = completed_summary(job.batch.output, RUN)
    assert done is not None
    assert done["written"] == 1
    assert done["resumed"] is True
    other = AirflowRun(dag_id="d", run_id="manual__2", task_id="t", map_index=-1, try_number=1)
    assert completed_summary(job.batch.output, other) is None


def test_records_of_the_previous_schema_version_still_validate(job) -> None:  # type: ignore[no-untyped-def]
    from privacy_core.schemas import validate

    record = json.loads(Path(job.lineage_path).read_text())
    assert record["schema"] == "TaskLineageRecord/1.5"
    record["schema"] = "TaskLineageRecord/1.4"  # 1.5 changed only DP-Pix's facts, which a deid record lacks
    validate("TaskLineageRecord", record)
    assert record["producer"].pop("source_digest").startswith("sha256:")
    record["schema"] = "TaskLineageRecord/1.3"
    validate("TaskLineageRecord", record)
    record["schema"] = "TaskLineageRecord/1.0"  # a deid record written by 0.1.0 has exactly these fields
    validate("TaskLineageRecord", record)


def test_source_digest_names_the_code_that_ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any byte of any module, or a module added, changes the digest; another checkout with the same files
    gives the same digest wherever it lies."""
    from privacy_core.lineage.record import source_digest

    digest = source_digest.__wrapped__  # uncached: the files change under it here

    def package(where: Path) -> None:
        (where / "fakepkg" / "sub").mkdir(parents=True)
        (where / "fakepkg" / "__init__.py").write_text("A = 1\n")
        (where / "fakepkg" / "sub" / "mod.py").write_text("B = 2\n")

    package(tmp_path / "one")
    package(tmp_path / "two")
    monkeypatch.syspath_prepend(str(tmp_path / "one"))
    first = digest(("fakepkg",))
    assert first.startswith("sha256:") and first != digest(("fakepkg", "privacy_core"))
    (tmp_path / "one" / "fakepkg" / "sub" / "mod.py").write_text("B = 3\n")
    assert digest(("fakepkg",)) != first
    (tmp_path / "one" / "fakepkg" / "sub" / "mod.py").write_text("B = 2\n")
    assert digest(("fakepkg",)) == first
    (tmp_path / "one" / "fakepkg" / "extra.py").write_text("")
    assert digest(("fakepkg",)) != first
    import sys

    sys.modules.pop("fakepkg", None)
    monkeypatch.syspath_prepend(str(tmp_path / "two"))
    assert digest(("fakepkg",)) == first
    assert digest(("no_such_package_here",)) == digest(())


def test_records_carry_the_installed_source_digest() -> None:
    from privacy_core.lineage.record import source_digest

    record = build_record(operation="pixels", parameters={}, inputs=[], outputs=[], counts={}, privacy={})
    assert record["producer"]["source_digest"] == source_digest()


def test_record_can_go_to_an_fsspec_url(tmp_path: Path) -> None:
    from privacy_core.lineage.record import write_record

    record = build_record(operation="pixels", parameters={}, inputs=[], outputs=[], counts={}, privacy={}, run_id="r")
    where = write_record(record, f"file://{tmp_path}/out/lineage", chain_root=f"file://{tmp_path}")
    assert read_record(where.removeprefix("file://")) == record
    link = link_of(where)
    assert link is not None and link.sequence == 1 and verify_chain(tmp_path).problems == []
