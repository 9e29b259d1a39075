"""The hook that owns the privacy-budget ledger connection: SQLite on one machine, PostgreSQL when shared."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from privacy_core.dp.ledger import BudgetLedger


class PrivacyLedgerHook(BaseHook):
    """Reads a Connection of type ``imaging_privacy_ledger`` and opens the ledger it names.

    PostgreSQL: host, port, login, password and schema (the database), plus ``extra.schema`` for the
    PostgreSQL schema holding the ledger tables. SQLite: ``extra.path``, the database file, for one machine.
    The password stays in the Connection: it never reaches the operator's fields, XCom or logs.

    :param ledger_conn_id: the Connection id.
    """

    conn_name_attr = "ledger_conn_id"
    default_conn_name = "imaging_privacy_ledger_default"
    conn_type = "imaging_privacy_ledger"
    hook_name = "Imaging Privacy budget ledger"

    def __init__(self, ledger_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.ledger_conn_id = ledger_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """PostgreSQL fields; the extra's ``path`` switches to an SQLite file."""
        return {
            "relabeling": {"schema": "Database"},
            "placeholders": {
                "host": "postgres",
                "port": "5432",
                "schema": "airflow",
                "extra": '{"schema": "privacy_ledger"}  or  {"path": "/data/ledger.db"}',
            },
        }

    def ledger_url(self) -> str:
        """The ledger URL the Connection describes (with its password: never log it)."""
        from urllib.parse import quote

        conn = self.get_connection(self.ledger_conn_id)
        extra = conn.extra_dejson or {}
        if extra.get("path"):
            return f"sqlite:///{os.path.abspath(str(extra['path']))}"
        credentials = quote(conn.login or "", safe="")
        if conn.password:
            credentials += ":" + quote(conn.password, safe="")
        where = f"{conn.host or '127.0.0.1'}:{conn.port or 5432}/{conn.schema or 'postgres'}"
        url = f"postgresql://{credentials + '@' if credentials else ''}{where}"
        if extra.get("schema"):
            url += f"?schema={quote(str(extra['schema']), safe='')}"
        return url

    def get_conn(self) -> BudgetLedger:
        """Open the ledger; close it when done (it is a context manager)."""
        from privacy_core.dp.ledger import open_ledger

        return open_ledger(self.ledger_url())

    def test_connection(self) -> tuple[bool, str]:
        """Open the ledger and report success, without the URL."""
        try:
            with self.get_conn():
                pass
        except Exception as exc:
            return False, exc.__class__.__name__
        return True, "ledger reachable"
