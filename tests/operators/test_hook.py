"""PseudonymKeyHook: the secret from a Connection's password or its secret_file, never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from operators.hooks.pseudonym_key import PseudonymKeyHook
from privacy_core.errors import SecretError
from privacy_core.keys import PseudonymKey
from tests.conftest import TEST_SECRET


def test_class_attributes_follow_airflow_conventions() -> None:
    assert PseudonymKeyHook.conn_name_attr == "key_conn_id"
    assert PseudonymKeyHook.default_conn_name == "imaging_privacy_default"
    assert PseudonymKeyHook.conn_type == "imaging_privacy_key"
    assert PseudonymKeyHook.hook_name


def test_secret_from_password() -> None:
    assert PseudonymKeyHook().get_conn() == PseudonymKey.from_text(TEST_SECRET)


def test_secret_from_file_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "k"
    path.write_text(TEST_SECRET)
    monkeypatch.setenv(
        "AIRFLOW_CONN_FROM_FILE", f'{{"conn_type": "imaging_privacy_key", "extra": {{"secret_file": "{path}"}}}}'
    )
    assert PseudonymKeyHook("from_file").get_conn() == PseudonymKey.from_text(TEST_SECRET)


def test_connection_without_secret_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_EMPTY", '{"conn_type": "imaging_privacy_key"}')
    with pytest.raises(SecretError, match=r"password field or point extra\.secret_file"):
        PseudonymKeyHook("empty").get_conn()


def test_test_connection_reports_fingerprint_not_secret() -> None:
    ok, message = PseudonymKeyHook().test_connection()
    assert ok
    assert PseudonymKey.from_text(TEST_SECRET).fingerprint in message
    assert TEST_SECRET not in message


def test_test_connection_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_WEAK", '{"conn_type": "imaging_privacy_key", "password": "short"}')
    ok, message = PseudonymKeyHook("weak").test_connection()
    assert not ok
    assert "fewer than the 16 required" in message


def test_ui_hides_unused_fields() -> None:
    behaviour = PseudonymKeyHook.get_ui_field_behaviour()
    assert set(behaviour["hidden_fields"]) == {"host", "schema", "login", "port"}
