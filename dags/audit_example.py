"""Example DAG: audit every release, daily and whenever the example pipeline publishes a DP release.

Scheduled on a cron timetable *or* the ``dicom_deid_example.dp_release`` asset, so an auditor's check runs
right after each new release and again every morning (tampering can happen any day). A run the asset
triggered also checks that the lineage chain still holds the link the event's extra names (``lineage_chain``),
so links cut off the chain's end since the release are caught. Imports nothing heavy.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, CronTriggerTimetable

from operators.audit import ReleaseAuditOperator

DEMO_ROOT = Path(os.environ.get("IMAGING_PRIVACY_DEMO_ROOT", "/tmp/imaging-privacy-demo")).resolve()
RELEASES = DEMO_ROOT / "releases"

with DAG(
    dag_id="release_audit",
    description="Verify records, digests, the budget ledger and the absence of key material in every release",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 6 * * *", timezone="UTC"),
        assets=Asset(name="dicom_deid_example.dp_release", uri=(RELEASES / "dp-release").as_uri()),
    ),
    catchup=False,
    tags=["imaging-privacy", "example", "audit"],
) as dag:
    ReleaseAuditOperator(
        task_id="audit",
        releases_path=str(RELEASES),
        ledger_conn_id="imaging_privacy_ledger_default",
    )
