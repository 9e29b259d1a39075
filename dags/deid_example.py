"""Example DAG: DICOM -> de-identified DICOM (verified leak-free) -> Zarr -> DP-Pix and a DP release of
statistics charged to the privacy-budget ledger, each step with lineage.

The budget check runs first, so a release the dataset can no longer pay for fails before any work.

``make demo`` runs it with ``airflow dags test`` on generated sample data that carries PHI in every
attribute of PS3.15 Table E.1-1. Set ``IMAGING_PRIVACY_DEMO_ROOT`` to choose where data lives. Imports
nothing heavy: the operators load ``privacy_core`` inside ``execute``.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow.sdk import DAG, Asset, Param

from operators.deid import DicomDeidentifyOperator, DicomLeakVerifyOperator
from operators.dp import DPReleaseOperator, PrivacyBudgetCheckOperator
from operators.imaging import DicomToZarrOperator, PixelPrivacyOperator

DEMO_ROOT = Path(os.environ.get("IMAGING_PRIVACY_DEMO_ROOT", "/tmp/imaging-privacy-demo")).resolve()
RELEASES = DEMO_ROOT / "releases"
RELEASE_SPEC = Path(__file__).with_name("specs") / "demo_release.yaml"
OPTIONS = ["retain_long_modified_dates", "retain_patient_characteristics", "clean_descriptors"]

with DAG(
    dag_id="dicom_deid_example",
    description="DICOM -> de-identified DICOM release, verified leak-free, with a lineage record",
    schedule=None,
    catchup=False,
    tags=["imaging-privacy", "example"],
    render_template_as_native_obj=True,
    params={
        "input_path": Param(str(DEMO_ROOT / "input"), type="string", description="folder of original DICOM"),
        "release_root": Param(str(RELEASES), type="string", description="where releases are written"),
        "options": Param(OPTIONS, type="array", description="PS3.15 E.3 options"),
        "dp_pix": Param(
            {"block": 8, "epsilon": 1.0, "m": 16},
            type="object",
            description="DP-Pix cell size b, privacy loss epsilon, protected pixels m",
        ),
        "release_spec": Param(str(RELEASE_SPEC), type="string", description="DP release spec (YAML)"),
        "dask_conn_id": Param(
            "",
            type="string",
            description="Connection (type dask) of an existing Dask cluster; empty starts an embedded one per task",
        ),
    },
) as dag:
    release = "{{ params.release_root }}/release-{{ ts_nodash }}"
    deidentify = DicomDeidentifyOperator(
        task_id="deidentify",
        input_path="{{ params.input_path }}",
        output_path=release,
        quarantine_path="{{ params.release_root }}/quarantine",
        report_path="{{ params.release_root }}/summary-{{ ts_nodash }}.json",
        options="{{ params.options }}",
        # One process: a worker pool inside an Airflow task first re-imports the task runner (seconds),
        # which pays off only for batches of thousands of files.
        workers=1,
        outlets=[Asset(name="dicom_deid_example.release", uri=RELEASES.as_uri())],
    )
    verify = DicomLeakVerifyOperator(
        task_id="verify_no_leak",
        input_path="{{ params.input_path }}",
        output_path=release,
        options="{{ params.options }}",
    )
    to_zarr = DicomToZarrOperator(
        task_id="to_zarr",
        input_path=release,
        store_url="{{ params.release_root }}/zarr-{{ ts_nodash }}",
        outlets=[Asset(name="dicom_deid_example.zarr", uri=(RELEASES / "zarr").as_uri())],
    )
    dp_pix = PixelPrivacyOperator(
        task_id="dp_pix",
        store_url="{{ params.release_root }}/zarr-{{ ts_nodash }}",
        output_url="{{ params.release_root }}/dp-pix-{{ ts_nodash }}",
        method="dp-pix",
        parameters="{{ params.dp_pix }}",
        dask_conn_id="{{ params.dask_conn_id }}",
        workers=2,
        outlets=[Asset(name="dicom_deid_example.dp_pix", uri=(RELEASES / "dp-pix").as_uri())],
    )
    budget_check = PrivacyBudgetCheckOperator(
        task_id="budget_check",
        spec_path="{{ params.release_spec }}",
        ledger_conn_id="imaging_privacy_ledger_default",
    )
    dp_release = DPReleaseOperator(
        task_id="dp_release",
        spec_path="{{ params.release_spec }}",
        output_path="{{ params.release_root }}/dp-release-{{ ts_nodash }}",
        sources={"dicom": release, "zarr": "{{ params.release_root }}/zarr-{{ ts_nodash }}"},
        ledger_conn_id="imaging_privacy_ledger_default",
        dask_conn_id="{{ params.dask_conn_id }}",
        workers=2,
        outlets=[Asset(name="dicom_deid_example.dp_release", uri=(RELEASES / "dp-release").as_uri())],
    )
    budget_check >> deidentify >> verify >> to_zarr >> [dp_pix, dp_release]
