"""The hook that owns the Dask connection: which scheduler the imaging operators submit their graphs to."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from privacy_core.imaging.compute import DaskConfig


class DaskHook(BaseHook):
    """Reads a Connection of type ``dask``: host and port of the scheduler (schema: protocol, default tcp).

    Without a connection id the operators start an embedded local cluster instead.

    :param dask_conn_id: the Connection id.
    """

    conn_name_attr = "dask_conn_id"
    default_conn_name = "dask_default"
    conn_type = "dask"
    hook_name = "Dask scheduler"

    def __init__(self, dask_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.dask_conn_id = dask_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Host and port of the scheduler; the schema field holds the protocol."""
        return {
            "hidden_fields": ["login", "password"],
            "relabeling": {"schema": "Protocol (tcp, tls)"},
            "placeholders": {"host": "dask-scheduler", "port": "8786", "schema": "tcp"},
        }

    def get_conn(self) -> DaskConfig:
        """Return the scheduler address as the frozen config ``privacy_core`` accepts."""
        from privacy_core.imaging.compute import DaskConfig

        conn = self.get_connection(self.dask_conn_id)
        extra = conn.extra_dejson or {}
        address = extra.get("address")
        if not address:
            protocol = conn.schema or "tcp"
            address = f"{protocol}://{conn.host}:{conn.port or 8786}"
        return DaskConfig(address=address, connect_timeout=float(extra.get("connect_timeout", 20)))

    def test_connection(self) -> tuple[bool, str]:
        """Connect to the scheduler and report how many workers it has."""
        from privacy_core.imaging.compute import dask_client

        try:
            with dask_client(self.get_conn()) as client:
                workers = len(client.scheduler_info().get("workers", {}))
        except Exception as exc:
            return False, str(exc)
        return True, f"connected; {workers} workers"
