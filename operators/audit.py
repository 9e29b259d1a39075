"""The audit operator: verify a releases folder end to end, as ``imaging-privacy audit`` does, and fail the
task (without retries: a retry cannot repair tampered data) when anything does not verify."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from privacy_core.lineage.chain import ChainLink


class ReleaseAuditOperator(BaseOperator):
    """Check every output of ``releases_path``: lineage records, digests, the ledger's chain and spend, and
    the absence of key material. Findings are logged one per line (they never quote a secret value).

    :param releases_path: the folder holding the release, store and DP outputs. (templated)
    :param ledger_conn_id: Connection of type ``imaging_privacy_ledger``; None skips the ledger checks.
    :param expect_head: a lineage chain link ``SEQUENCE:HASH`` the chain must still hold. (templated) When the
        run was triggered by Asset events, the newest ``lineage_chain`` among their extras is checked too, so
        links cut off the chain's end after the event are caught.
    """

    template_fields: Sequence[str] = ("releases_path", "expect_head")
    ui_color = "#d9f5d4"

    def __init__(
        self,
        *,
        releases_path: str,
        ledger_conn_id: str | None = None,
        expect_head: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.releases_path = releases_path
        self.ledger_conn_id = ledger_conn_id
        self.expect_head = expect_head

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from privacy_core.lineage.audit import audit_releases
        from privacy_core.lineage.chain import ChainLink

        ledger = None
        if self.ledger_conn_id:
            from operators.hooks.ledger import PrivacyLedgerHook

            ledger = PrivacyLedgerHook(self.ledger_conn_id).ledger_url()
        heads = [ChainLink.parse(self.expect_head)] if self.expect_head else []
        heads += _heads_in_events(context)
        report = audit_releases(self.releases_path, ledger_url=ledger, expect_heads=heads)
        for line in report.render().splitlines():
            self.log.info("%s", line)
        if not report.ok:
            raise AirflowFailException(f"audit failed: {len(report.findings)} problems; see the task log")
        return {"ok": True, "findings": 0, "expected_heads": [h.render() for h in heads]}


def _heads_in_events(context: Context) -> list[ChainLink]:
    """The ``lineage_chain`` links in the extras of the Asset events that triggered this run, if any."""
    from privacy_core.lineage.chain import ChainLink

    events = context.get("triggering_asset_events") or {}
    heads = []
    for asset_events in events.values():
        for event in asset_events:
            text = (getattr(event, "extra", None) or {}).get("lineage_chain")
            if isinstance(text, str):
                heads.append(ChainLink.parse(text))
    return heads
