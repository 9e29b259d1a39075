# Written by hand (this provider has no breeze template); keep it in step with pyproject.toml's entry point
# `apache_airflow_provider` and with the classes it names. tests/operators/test_provider_info.py checks both.
"""Provider metadata Airflow reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    """What Airflow shows for this provider and which connection types it registers."""
    return {
        "package-name": "airflow-imaging-privacy",
        "name": "Imaging Privacy",
        "description": "De-identify DICOM and release private statistics about medical images.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "Imaging Privacy",
                "external-doc-url": "https://dicom.nema.org/medical/dicom/current/output/html/part15.html",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "Imaging Privacy",
                "python-modules": [
                    "operators.deid",
                    "operators.imaging",
                    "operators.dp",
                    "operators.secure",
                    "operators.audit",
                ],
            }
        ],
        "hooks": [
            {
                "integration-name": "Imaging Privacy",
                "python-modules": ["operators.hooks.pseudonym_key", "operators.hooks.dask", "operators.hooks.ledger"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "operators.hooks.pseudonym_key.PseudonymKeyHook",
                "connection-type": "imaging_privacy_key",
            },
            {"hook-class-name": "operators.hooks.dask.DaskHook", "connection-type": "dask"},
            {
                "hook-class-name": "operators.hooks.ledger.PrivacyLedgerHook",
                "connection-type": "imaging_privacy_ledger",
            },
        ],
    }
