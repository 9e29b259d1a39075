"""Airflow operators for encrypted cross-site statistics: one per protocol step, each a thin call into
``privacy_core.secure.roles``.

Sites, the coordinator and key holders are separate parties: in production each step runs on that party's
own Airflow (or its own queue), and only envelopes cross the exchange. Key shares are read from the holder's
local file by path; no key material passes through templates, XCom or logs, only summaries with ids,
counts and digests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from operators.deid import airflow_run
from operators.lineage import set_outlet_extra

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context


def _options(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(value) if value else None


class _SecureLineage:
    """OpenLineage for every protocol step: the envelopes it read and wrote, from its lineage record; the
    combine step adds the privacy spend facet. A step that failed before writing its record names the exchange.
    """

    exchange: str

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """Inputs and outputs (envelopes) and, for combine, the privacy spend, from the lineage record."""
        from operators.lineage import operator_lineage

        return operator_lineage(getattr(self, "_lineage_record_path", None), [self.exchange], [self.exchange])

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """The same, from the record if this try wrote one, else the exchange."""
        return self.get_openlineage_facets_on_complete(task_instance)


class SecureRoundOperator(_SecureLineage, BaseOperator):
    """Coordinator: open a round (statistic, allowed sites, noise per site, deadline, key fingerprint).

    :param exchange: the exchange location, a folder or an fsspec URL. (templated)
    :param round_id: a new id per round, e.g. ``"{{ ts_nodash }}"``. (templated)
    :param public_key: the key ceremony's public key file. (templated)
    :param round_settings: the rest of ``privacy_core.secure.roles.open_round``'s settings: statistic, length,
        value_bound, resolution, contribution_bound, l2_sensitivity_sq, sites, min_sites, collusion, rho,
        delta, dataset, deadline. (templated)
    :param ledger: ledger URL; if given, a round the dataset's budget cannot pay is refused now. (templated)
    """

    template_fields: Sequence[str] = ("exchange", "round_id", "public_key", "round_settings", "ledger")
    ui_color = "#e0d4f5"

    def __init__(
        self,
        *,
        exchange: str,
        round_id: str,
        public_key: str,
        round_settings: Mapping[str, Any],
        ledger: str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.exchange = exchange
        self.round_id = round_id
        self.public_key = public_key
        self.round_settings = round_settings
        self.ledger = ledger
        self.storage_options = storage_options

    def execute(self, context: Context) -> dict[str, Any]:
        from privacy_core.secure.roles import open_round

        summary = open_round(
            self.exchange,
            self.round_id,
            public_key=self.public_key,
            ledger=self.ledger,
            storage_options=_options(self.storage_options),
            airflow=airflow_run(context),
            **dict(self.round_settings),
        )
        self._lineage_record_path = summary["lineage_record"]
        self.log.info("round %s open until %s", summary["round_id"], summary["deadline"])
        return summary


class SecureSiteEncryptOperator(_SecureLineage, BaseOperator):
    """Site: add this site's share of the noise to its vector, encrypt it under the round's key, upload once.

    Map it over sites with ``.partial(...).expand(site_id=[...], vector=[...])``.

    :param site_id: this site's id in the round. (templated)
    :param vector: the site's statistic, a ``.npy`` or ``.json`` file, in real units. (templated)
    :param key_fingerprint: the fingerprint the site got at the key ceremony; any other key is refused.
        (templated)
    :param workers: encrypt on an embedded Dask cluster of this many processes in the task (the site's values
        never leave its machine); None encrypts in the task's process.
    """

    template_fields: Sequence[str] = ("exchange", "round_id", "site_id", "vector", "key_fingerprint")
    ui_color = "#d4e8f5"

    def __init__(
        self,
        *,
        exchange: str,
        round_id: str,
        site_id: str,
        vector: str,
        key_fingerprint: str,
        storage_options: Mapping[str, Any] | None = None,
        workers: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.exchange = exchange
        self.round_id = round_id
        self.site_id = site_id
        self.vector = vector
        self.key_fingerprint = key_fingerprint
        self.storage_options = storage_options
        self.workers = workers

    def execute(self, context: Context) -> dict[str, Any]:
        from privacy_core.secure.roles import site_encrypt

        summary = site_encrypt(
            self.exchange,
            self.round_id,
            self.site_id,
            self.vector,
            key_fingerprint=self.key_fingerprint,
            storage_options=_options(self.storage_options),
            airflow=airflow_run(context),
            workers=self.workers,
        )
        self._lineage_record_path = summary["lineage_record"]
        self.log.info("site %s uploaded %s ciphertexts", summary["site_id"], summary["ciphertexts"])
        return summary


class SecureAggregateOperator(_SecureLineage, BaseOperator):
    """Coordinator: sum the accepted uploads homomorphically; rejected ones are listed with their reason.

    Before the deadline, while sites are missing, the round is not ready: the task waits for the deadline
    when it is at most ``max_wait_seconds`` away, and otherwise fails so that Airflow retries it later.

    :param max_wait_seconds: longest wait for the deadline inside the task.
    """

    template_fields: Sequence[str] = ("exchange", "round_id")
    ui_color = "#e0d4f5"

    def __init__(
        self,
        *,
        exchange: str,
        round_id: str,
        max_wait_seconds: float = 600.0,
        storage_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.exchange = exchange
        self.round_id = round_id
        self.max_wait_seconds = max_wait_seconds
        self.storage_options = storage_options

    def execute(self, context: Context) -> dict[str, Any]:
        import datetime as dt
        import time

        from privacy_core.errors import RoundNotReadyError
        from privacy_core.secure.roles import aggregate

        options = _options(self.storage_options)
        try:
            summary = aggregate(self.exchange, self.round_id, storage_options=options, airflow=airflow_run(context))
        except RoundNotReadyError as exc:
            deadline = dt.datetime.fromisoformat(exc.deadline.replace("Z", "+00:00"))
            wait = (deadline - dt.datetime.now(dt.UTC)).total_seconds() + 1
            if wait > self.max_wait_seconds:
                raise
            self.log.info("%s; waiting %.0f s for the deadline", exc, wait)
            time.sleep(max(wait, 0))
            summary = aggregate(self.exchange, self.round_id, storage_options=options, airflow=airflow_run(context))
        self._lineage_record_path = summary["lineage_record"]
        self.log.info("accepted %s uploads; rejected %s", summary["accepted"], summary["rejected"])
        return summary


class SecureDecryptShareOperator(_SecureLineage, BaseOperator):
    """Key holder: verify the round's aggregate, then publish this holder's partial decryption of it.

    The share file stays on the holder's machine (mode 0600); the task reads it by path.

    :param share_path: this holder's key share file. (templated)
    :param workers: decrypt on an embedded Dask cluster of this many processes in the task (the secret
        exponent stays on the holder's machine); None decrypts in the task's process.
    """

    template_fields: Sequence[str] = ("exchange", "round_id", "share_path")
    ui_color = "#f5e8d4"

    def __init__(
        self,
        *,
        exchange: str,
        round_id: str,
        share_path: str,
        storage_options: Mapping[str, Any] | None = None,
        workers: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.exchange = exchange
        self.round_id = round_id
        self.share_path = share_path
        self.storage_options = storage_options
        self.workers = workers

    def execute(self, context: Context) -> dict[str, Any]:
        from privacy_core.secure.roles import decrypt_share

        summary = decrypt_share(
            self.exchange,
            self.round_id,
            self.share_path,
            storage_options=_options(self.storage_options),
            airflow=airflow_run(context),
            workers=self.workers,
        )
        self._lineage_record_path = summary["lineage_record"]
        self.log.info("holder %s published its decryption share", summary["holder"])
        return summary


class SecureCombineOperator(_SecureLineage, BaseOperator):
    """Coordinator: combine t decryption shares, charge the ledger, publish the DP total.

    The ledger is charged under ``secure:<round_id>`` before the result is written, so a retry republishes
    the stored total and charges nothing. The outlet's event extra carries the spend.

    :param ledger_conn_id: Connection of type ``imaging_privacy_ledger``.
    """

    template_fields: Sequence[str] = ("exchange", "round_id")
    ui_color = "#c9d9f5"

    def __init__(
        self,
        *,
        exchange: str,
        round_id: str,
        ledger_conn_id: str,
        storage_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.exchange = exchange
        self.round_id = round_id
        self.ledger_conn_id = ledger_conn_id
        self.storage_options = storage_options

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from operators.hooks.ledger import PrivacyLedgerHook
        from privacy_core.errors import BudgetExceededError
        from privacy_core.secure.roles import combine_result

        try:
            summary = combine_result(
                self.exchange,
                self.round_id,
                ledger=PrivacyLedgerHook(self.ledger_conn_id).ledger_url(),
                storage_options=_options(self.storage_options),
                airflow=airflow_run(context),
            )
        except BudgetExceededError as exc:
            raise AirflowFailException(str(exc)) from None
        self._lineage_record_path = summary["lineage_record"]
        self.log.info("released round %s: rho %s, charged %s", summary["round_id"], summary["rho"], summary["charged"])
        set_outlet_extra(self, context, {"privacy_spend": summary}, _options(self.storage_options))
        return summary
