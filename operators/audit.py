"""The audit operator: verify a releases folder end to end, as ``imaging-privacy audit`` does, and fail the
task (without retries: a retry cannot repair tampered data) when anything does not verify."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class ReleaseAuditOperator(BaseOperator):
    """Check every output of ``releases_path``: lineage records, digests, the ledger's chain and spend, and
    the absence of key material. Findings are logged one per line (they never quote a secret value).

    :param releases_path: the folder holding the release, store and DP outputs. (templated)
    :param ledger_conn_id: Connection of type ``imaging_privacy_ledger``; None skips the ledger checks.
    """

    template_fields: Sequence[str] = ("releases_path",)
    ui_color = "#d9f5d4"

    def __init__(self, *, releases_path: str, ledger_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.releases_path = releases_path
        self.ledger_conn_id = ledger_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from privacy_core.lineage.audit import audit_releases

        ledger = None
        if self.ledger_conn_id:
            from operators.hooks.ledger import PrivacyLedgerHook

            ledger = PrivacyLedgerHook(self.ledger_conn_id).ledger_url()
        report = audit_releases(self.releases_path, ledger_url=ledger)
        for line in report.render().splitlines():
            self.log.info("%s", line)
        if not report.ok:
            raise AirflowFailException(f"audit failed: {len(report.findings)} problems; see the task log")
        return {"ok": True, "findings": 0}
