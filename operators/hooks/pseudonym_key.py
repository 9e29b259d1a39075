"""The hook that owns the pseudonymisation secret: the only place an Airflow Connection is read for it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from privacy_core.keys import PseudonymKey


class PseudonymKeyHook(BaseHook):
    """Reads the project secret from a Connection of type ``imaging_privacy_key``.

    The secret is the Connection's password (masked in logs by Airflow, stored encrypted or in a secrets
    backend), or, if that is empty, the file named by the extra field ``secret_file``.

    :param key_conn_id: the Connection id.
    """

    conn_name_attr = "key_conn_id"
    default_conn_name = "imaging_privacy_default"
    conn_type = "imaging_privacy_key"
    hook_name = "Imaging Privacy pseudonym key"

    def __init__(self, key_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.key_conn_id = key_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Only the secret matters: hide the rest of the Connection form."""
        return {
            "hidden_fields": ["host", "schema", "login", "port"],
            "relabeling": {"password": "Secret (16+ bytes)"},
            "placeholders": {"extra": '{"secret_file": "/run/secrets/imaging-privacy.key"}'},
        }

    def get_conn(self) -> PseudonymKey:
        """Return the key as the frozen value ``privacy_core`` accepts.

        :raises SecretError: the Connection has neither a password nor a readable ``secret_file``.
        """
        from privacy_core.errors import SecretError
        from privacy_core.keys import PseudonymKey

        conn = self.get_connection(self.key_conn_id)
        if conn.password:
            return PseudonymKey.from_text(conn.password)
        secret_file = (conn.extra_dejson or {}).get("secret_file")
        if secret_file:
            return PseudonymKey.from_file(secret_file)
        raise SecretError(
            f"connection {self.key_conn_id!r}",
            "has no password and no extra 'secret_file'",
            "put the secret in its password field or point extra.secret_file at a file holding it",
        )

    def test_connection(self) -> tuple[bool, str]:
        """Check the secret loads; the message carries its fingerprint, never the secret."""
        try:
            key = self.get_conn()
        except Exception as exc:
            return False, str(exc)
        return True, f"secret loaded, fingerprint {key.fingerprint}"
