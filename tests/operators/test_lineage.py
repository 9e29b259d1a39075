"""OpenLineage from the operators: facet classes match their schemas, facets built from real lineage records
validate against them, failures still name their datasets, and the provider stays optional."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import attrs
import pydicom
import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException
from openlineage.client.serde import Serde

import operators.lineage as lineage
from operators.deid import DicomDeidentifyOperator, DicomLeakVerifyOperator
from operators.dp import DPReleaseOperator, PrivacyBudgetCheckOperator
from operators.imaging import DicomToZarrOperator, PixelPrivacyOperator
from operators.lineage import DEIDENTIFICATION, FACETS, IMAGE_STORE, PRIVACY_SPEND, dataset_id, schema_url
from privacy_core.dp.ledger import open_ledger
from privacy_core.schemas import load_schema, validate
from tests.conftest import PYDICOM_FILES, TEST_SECRET
from tests.operators.test_deid import context

FACET_CLASSES = sorted(FACETS.values())


def _serialised(result: Any) -> dict[str, dict[str, Any]]:
    """Run facets as OpenLineage writes them (``None`` fields left out), by key."""
    return {key: Serde.to_dict(facet) for key, facet in result.run_facets.items()}


def _ids(datasets: list[Any]) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


def _check_facets(result: Any, expected: set[str]) -> dict[str, dict[str, Any]]:
    facets = _serialised(result)
    assert set(facets) == expected
    for key, facet in facets.items():
        name, version = FACETS[key]
        assert facet["_schemaURL"] == schema_url(name, version)
        validate(name, facet)
    assert TEST_SECRET not in json.dumps(facets)
    return facets


# --- classes and schemas -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "version"), FACET_CLASSES, ids=lambda v: str(v))
def test_facet_class_matches_its_schema(name: str, version: str) -> None:
    from openlineage.client.facet_v2 import RunFacet

    cls = getattr(lineage, name)
    schema = load_schema(name, version)
    assert issubclass(cls, RunFacet)
    assert schema["$id"] == schema_url(name, version) == cls._get_schema()
    fields = attrs.fields(cls)
    assert {f.name for f in fields} == set(schema["properties"])
    mandatory = {f.name for f in fields if f.default is attrs.NOTHING}
    assert set(schema["required"]) == mandatory | {"_producer", "_schemaURL", "schema"}
    assert schema["properties"]["schema"] == {"const": f"{name}/{version}"}


@pytest.mark.parametrize(("key", "name"), [(k, v[0]) for k, v in FACETS.items()])
def test_facet_key_follows_the_custom_facet_convention(key: str, name: str) -> None:
    prefix, facet = key.split("_")
    assert prefix == "imagingPrivacy" and facet[0].islower()
    assert name.startswith("ImagingPrivacy") and name.endswith("RunFacet")


def test_facet_pickles_by_name() -> None:
    facet = lineage.ImagingPrivacySpendRunFacet(mechanism="laplace", accounting="pure-dp", loss=1.0, charged=False)
    again = pickle.loads(pickle.dumps(facet))
    assert again == facet and type(again) is type(facet)


def test_unknown_module_attribute_is_refused() -> None:
    with pytest.raises(AttributeError, match="NoSuchFacet"):
        lineage.NoSuchFacet  # noqa: B018


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("file:///data/release-1", ("file", "/data/release-1")),
        ("file:///data/with%20space", ("file", "/data/with space")),
        ("/data/zarr-1/", ("file", "/data/zarr-1")),
        ("s3://bucket/releases/zarr-1", ("s3://bucket", "releases/zarr-1")),
        ("memory://store/x", ("memory://store", "x")),
    ],
)
def test_dataset_naming(uri: str, expected: tuple[str, str]) -> None:
    assert dataset_id(uri) == expected


def test_relative_paths_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert dataset_id("release") == ("file", str(tmp_path / "release"))


def test_operators_import_no_openlineage() -> None:
    """Neither the OpenLineage client nor the provider's extractors (Airflow itself reads provider info)."""
    code = (
        "import sys, operators.deid, operators.dp, operators.imaging, operators.secure, operators.lineage;"
        "print([m for m in sys.modules if m.startswith(('openlineage', 'airflow.providers.openlineage.extractors'))])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


# --- facets from real lineage records ------------------------------------------------------------------------


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(PYDICOM_FILES / "CT_small.dcm", folder / "CT_small.dcm")
    shutil.copy(PYDICOM_FILES / "README.txt", folder / "README.txt")
    return folder


def test_deidentify_complete_has_datasets_and_the_deidentification_facet(source: Path, tmp_path: Path) -> None:
    op = DicomDeidentifyOperator(task_id="deid", input_path=str(source), output_path=str(tmp_path / "out"))
    summary = op.execute(context())  # type: ignore[arg-type]
    result = op.get_openlineage_facets_on_complete(None)
    assert _ids(result.inputs) == [("file", str(source))]
    assert _ids(result.outputs) == [("file", str(tmp_path / "out"))]
    facet = _check_facets(result, {DEIDENTIFICATION})[DEIDENTIFICATION]
    record = json.loads(Path(summary["lineage_record"]).read_text())["privacy"]["deidentification"]
    assert facet["keyFingerprint"] == record["key_fingerprint"] == summary["key_fingerprint"]
    assert (facet["written"], facet["quarantined"], facet["pseudonymisationMethod"]) == (1, 1, "hmac-sha256")
    assert facet["quarantineReasons"] == summary["reasons"]


def test_deidentify_retry_reports_the_earlier_try(source: Path, tmp_path: Path) -> None:
    def operator() -> DicomDeidentifyOperator:
        return DicomDeidentifyOperator(task_id="deid", input_path=str(source), output_path=str(tmp_path / "out"))

    first = operator()
    first.execute(context())  # type: ignore[arg-type]
    retry = operator()
    retry.execute(context(try_number=2))  # type: ignore[arg-type]
    assert _serialised(retry.get_openlineage_facets_on_complete(None)) == _serialised(
        first.get_openlineage_facets_on_complete(None)
    )


def test_deidentify_failure_after_the_release_keeps_its_facet(source: Path, tmp_path: Path) -> None:
    op = DicomDeidentifyOperator(
        task_id="deid", input_path=str(source), output_path=str(tmp_path / "out"), fail_on_quarantine=True
    )
    with pytest.raises(AirflowFailException):
        op.execute(context())  # type: ignore[arg-type]
    facet = _check_facets(op.get_openlineage_facets_on_failure(None), {DEIDENTIFICATION})[DEIDENTIFICATION]
    assert facet["quarantined"] == 1


def test_deidentify_failure_before_any_work_names_its_datasets_only(source: Path, tmp_path: Path) -> None:
    op = DicomDeidentifyOperator(
        task_id="deid", input_path=str(source), output_path=str(tmp_path / "out"), options=["no_such_option"]
    )
    with pytest.raises(Exception, match="no_such_option"):
        op.execute(context())  # type: ignore[arg-type]
    result = op.get_openlineage_facets_on_failure(None)
    assert (_ids(result.inputs), _ids(result.outputs)) == ([("file", str(source))], [("file", str(tmp_path / "out"))])
    assert result.run_facets == {}


def test_verify_reads_both_folders_and_writes_nothing(source: Path, tmp_path: Path) -> None:
    op = DicomLeakVerifyOperator(task_id="v", input_path=str(source), output_path=str(tmp_path / "out"))
    for result in (op.get_openlineage_facets_on_complete(None), op.get_openlineage_facets_on_failure(None)):
        assert _ids(result.inputs) == [("file", str(source)), ("file", str(tmp_path / "out"))]
        assert (result.outputs, result.run_facets) == ([], {})


def test_to_zarr_then_dp_pix_have_image_store_and_spend_facets(tmp_path: Path) -> None:
    release = tmp_path / "release"
    release.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm"):
        shutil.copy(PYDICOM_FILES / name, release / name)
    to_zarr = DicomToZarrOperator(task_id="to_zarr", input_path=str(release), store_url=str(tmp_path / "store"))
    to_zarr.execute(context())  # type: ignore[arg-type]
    result = to_zarr.get_openlineage_facets_on_complete(None)
    assert _ids(result.inputs) == [("file", str(release))]
    assert _ids(result.outputs) == [("file", str(tmp_path / "store"))]
    store = _check_facets(result, {IMAGE_STORE})[IMAGE_STORE]
    assert (store["operation"], store["arrays"], store["leftOut"]) == ("to-zarr", 2, 0)
    pixels = PixelPrivacyOperator(
        task_id="dp_pix",
        store_url=str(tmp_path / "store"),
        output_url=str(tmp_path / "dp"),
        method="dp-pix",
        parameters={"block": 4, "epsilon": 1.0, "bits_stored": 16},
        workers=1,
    )
    pixels.execute(context())  # type: ignore[arg-type]
    facets = _check_facets(pixels.get_openlineage_facets_on_complete(None), {IMAGE_STORE, PRIVACY_SPEND})
    assert (facets[IMAGE_STORE]["method"], facets[IMAGE_STORE]["parameters"]["block"]) == ("dp-pix", 4)
    spend = facets[PRIVACY_SPEND]
    assert (spend["mechanism"], spend["epsilon"], spend["charged"]) == ("discrete-laplace", 1.0, False)
    assert "ledgerEntry" not in spend


def test_pixels_failure_names_both_stores(tmp_path: Path) -> None:
    op = PixelPrivacyOperator(task_id="p", store_url="s3://bucket/in", output_url="s3://bucket/out", method="blur")
    result = op.get_openlineage_facets_on_failure(None)
    assert (_ids(result.inputs), _ids(result.outputs)) == ([("s3://bucket", "in")], [("s3://bucket", "out")])


@pytest.fixture
def release_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Two real headers as a release, a pure-DP ledger of epsilon 1 behind a Connection, a spec of 0.75."""
    release = tmp_path / "release"
    release.mkdir()
    for index, name in enumerate(("CT_small.dcm", "MR_small.dcm")):
        ds = pydicom.dcmread(PYDICOM_FILES / name)
        ds.PatientID = f"PAT000000000000{index}"
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


def _dp_release(setup: dict[str, Any], output: Path) -> DPReleaseOperator:
    return DPReleaseOperator(
        task_id="dp_release",
        spec_path=setup["spec"],
        output_path=str(output),
        sources={"dicom": setup["release"]},
        ledger_conn_id="test_ledger",
        workers=1,
    )


def test_dp_release_spend_facet_names_the_ledger_entry_and_a_retry_charges_nothing(
    release_setup: dict[str, Any], tmp_path: Path
) -> None:
    op = _dp_release(release_setup, tmp_path / "out")
    op.execute(context())  # type: ignore[arg-type]
    result = op.get_openlineage_facets_on_complete(None)
    assert _ids(result.inputs) == [("file", release_setup["release"])]
    assert _ids(result.outputs) == [("file", str(tmp_path / "out"))]
    spend = _check_facets(result, {PRIVACY_SPEND})[PRIVACY_SPEND]
    with open_ledger(f"sqlite:///{release_setup['ledger']}") as ledger:
        last = ledger.entries("cohort")[-1]
    assert spend["ledgerEntry"]["hash"] == last.entry_hash
    assert (spend["mechanism"], spend["epsilon"], spend["lossExact"], spend["charged"]) == (
        "discrete-laplace",
        0.75,
        "3/4",
        True,
    )
    assert spend["idempotencyKey"].startswith("ti:") and "rho" not in spend
    retry = _dp_release(release_setup, tmp_path / "out")
    retry.execute(context(try_number=2))  # type: ignore[arg-type]
    again = _check_facets(retry.get_openlineage_facets_on_complete(None), {PRIVACY_SPEND})[PRIVACY_SPEND]
    assert (again["charged"], again["ledgerEntry"]) == (False, spend["ledgerEntry"])


def test_dp_release_refused_for_budget_names_its_sources_and_no_spend(
    release_setup: dict[str, Any], tmp_path: Path
) -> None:
    _dp_release(release_setup, tmp_path / "out").execute(context())  # type: ignore[arg-type]
    refused = _dp_release(release_setup, tmp_path / "second")
    with pytest.raises(AirflowFailException):
        refused.execute(context(run_id="manual__2"))  # type: ignore[arg-type]
    result = refused.get_openlineage_facets_on_failure(None)
    assert _ids(result.inputs) == [("file", release_setup["release"])]
    assert _ids(result.outputs) == [("file", str(tmp_path / "second"))]
    assert result.run_facets == {}


def test_budget_check_has_no_datasets_and_no_spend(release_setup: dict[str, Any]) -> None:
    check = PrivacyBudgetCheckOperator(task_id="c", spec_path=release_setup["spec"], ledger_conn_id="test_ledger")
    check.execute(context())  # type: ignore[arg-type]
    for result in (check.get_openlineage_facets_on_complete(None), check.get_openlineage_facets_on_failure(None)):
        assert (result.inputs, result.outputs, result.run_facets) == ([], [], {})


def test_secure_round_steps_name_their_envelopes_and_combine_reports_the_spend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt

    from operators.secure import (
        SecureAggregateOperator,
        SecureCombineOperator,
        SecureDecryptShareOperator,
        SecureRoundOperator,
        SecureSiteEncryptOperator,
    )
    from privacy_core.secure.cohorts import L2_SENSITIVITY_SQ, make_site_statistics
    from privacy_core.secure.roles import keygen

    keys = keygen(tmp_path / "keys", holders=3, threshold=2, bits=512)
    with open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as book:
        book.create_dataset("cohort", "zcdp", Fraction(5), delta=1e-6)
    monkeypatch.setenv(
        "AIRFLOW_CONN_TEST_LEDGER",
        json.dumps({"conn_type": "imaging_privacy_ledger", "extra": {"path": str(tmp_path / "ledger.db")}}),
    )
    exchange = str(tmp_path / "exchange")
    deadline = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    settings = {"statistic": "cohort", "length": 14, "value_bound": 1000, "resolution": "1", "contribution_bound": 1}
    settings |= {"l2_sensitivity_sq": L2_SENSITIVITY_SQ, "sites": ["a", "b"], "min_sites": 2, "collusion": 1}
    settings |= {"rho": 0.5, "delta": 1e-6, "dataset": "cohort", "deadline": deadline}
    steps: list[Any] = [
        SecureRoundOperator(
            task_id="open", exchange=exchange, round_id="r1", public_key=keys["public_key"], round_settings=settings
        )
    ]
    for site in make_site_statistics(tmp_path / "sites", ["a", "b"], [50, 60]):
        steps.append(
            SecureSiteEncryptOperator(
                task_id="enc",
                exchange=exchange,
                round_id="r1",
                site_id=site.site_id,
                vector=site.path,
                key_fingerprint=keys["key_fingerprint"],
            )
        )
    steps.append(SecureAggregateOperator(task_id="agg", exchange=exchange, round_id="r1", max_wait_seconds=30))
    for holder in (1, 3):
        share = str(tmp_path / "keys" / f"key-share-{holder}.json")
        steps.append(SecureDecryptShareOperator(task_id="dec", exchange=exchange, round_id="r1", share_path=share))
    combine = SecureCombineOperator(task_id="combine", exchange=exchange, round_id="r1", ledger_conn_id="test_ledger")
    failed = SecureCombineOperator(task_id="combine", exchange=exchange, round_id="r2", ledger_conn_id="test_ledger")
    before = failed.get_openlineage_facets_on_failure(None)
    assert (_ids(before.inputs), before.run_facets) == ([("file", exchange)], {})
    for step in [*steps, combine]:
        step.execute(context())
        result = step.get_openlineage_facets_on_complete(None)
        assert result.inputs or result.outputs
        assert all(namespace == "file" for namespace, _ in _ids(result.inputs + result.outputs))
        _check_facets(result, {PRIVACY_SPEND} if step is combine else set())
    spend = _serialised(combine.get_openlineage_facets_on_complete(None))[PRIVACY_SPEND]
    assert (spend["mechanism"], spend["rho"], spend["dataset"], spend["charged"]) == (
        "distributed discrete Gaussian",
        0.5,
        "cohort",
        True,
    )
    with open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as book:
        assert spend["ledgerEntry"]["hash"] == book.entries("cohort")[-1].entry_hash
    shares = [json.loads((tmp_path / "keys" / f"key-share-{h}.json").read_text())["secret"] for h in (1, 2, 3)]
    events = json.dumps([_serialised(s.get_openlineage_facets_on_complete(None)) for s in [*steps, combine]])
    assert not [share for share in shares if str(share) in events]
