"""Airflow unit tests run without a metadata database: a private AIRFLOW_HOME and env-var Connections."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import TEST_SECRET


@pytest.fixture(autouse=True)
def airflow_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow-home"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_IMAGING_PRIVACY_DEFAULT",
        f'{{"conn_type": "imaging_privacy_key", "password": "{TEST_SECRET}"}}',
    )
