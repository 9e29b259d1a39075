"""Airflow operators for differentially private release, charged to the privacy-budget ledger.

The budget check runs first in ``execute``, before any data is read, and fails the task without retries
when the remaining budget cannot pay: retrying cannot make budget appear. The spend is keyed by the task
instance (dag, run, task, map index), so a retry of a task that already committed returns the stored
noisy result and charges nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from operators.deid import airflow_run
from operators.imaging import _dask_config, _parameters
from operators.lineage import set_outlet_extra

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from privacy_core.dp.ledger import BudgetLedger
    from privacy_core.dp.spec import ReleaseSpec


def _open(spec: ReleaseSpec, ledger_conn_id: str | None) -> BudgetLedger:
    """The ledger from the Connection; without one, the spec's ``ledger`` or ``$IMAGING_PRIVACY_LEDGER``."""
    from privacy_core.dp.commands import ledger_url
    from privacy_core.dp.ledger import open_ledger

    if ledger_conn_id:
        from operators.hooks.ledger import PrivacyLedgerHook

        return PrivacyLedgerHook(ledger_conn_id).get_conn()
    return open_ledger(ledger_url(None, spec.ledger))


def _checked(spec: ReleaseSpec, ledger: BudgetLedger, key: str | None = None) -> None:
    """Run the budget check; an over-cap spend fails the task for good, with the ledger's message."""
    from airflow.sdk.exceptions import AirflowFailException

    from privacy_core.dp.release import check_budget
    from privacy_core.errors import BudgetExceededError

    try:
        check_budget(spec, ledger, key)
    except BudgetExceededError as exc:
        raise AirflowFailException(str(exc)) from None


class PrivacyBudgetCheckOperator(BaseOperator):
    """Fail early, before upstream work, when a release spec's loss exceeds its dataset's remaining budget.

    Put it at the start of a DAG whose expensive steps feed a DP release. It charges nothing.

    :param spec_path: the release spec (YAML). (templated)
    :param ledger_conn_id: Connection of type ``imaging_privacy_ledger``; None uses the spec's ``ledger``.
    """

    template_fields: Sequence[str] = ("spec_path",)
    ui_color = "#fff2b3"

    def __init__(self, *, spec_path: str, ledger_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec_path = spec_path
        self.ledger_conn_id = ledger_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from privacy_core.dp.release import release_cost
        from privacy_core.dp.spec import load_spec

        spec = load_spec(self.spec_path)
        with _open(spec, self.ledger_conn_id) as ledger:
            _checked(spec, ledger)
            status = ledger.status(spec.dataset)
        cost = release_cost(spec)
        self.log.info("budget of %s can pay %s: remaining %s", spec.dataset, cost, status.remaining)
        return {"dataset": spec.dataset, "cost": float(cost), "remaining": float(status.remaining)}

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """OpenLineage: a check reads only the ledger (not a dataset here) and charges nothing."""
        from operators.lineage import operator_lineage

        return operator_lineage(None)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """The same: a refused check spent nothing either."""
        return self.get_openlineage_facets_on_complete(task_instance)


class DPReleaseOperator(BaseOperator):
    """Release differentially private statistics of de-identified DICOM headers and Zarr arrays.

    Checks the budget first, reserves the spend under the task instance's key, computes on Dask, adds exact
    noise once, commits the result to the ledger and writes the bundle. The outlet's event extra carries the
    spend, so downstream DAGs scheduled on the asset see what it cost.

    :param spec_path: the release spec (YAML). (templated)
    :param output_path: bundle folder. (templated)
    :param sources: overrides the spec's ``sources`` (``{"dicom": ..., "zarr": ...}``), so one spec serves
        every run's new release. (templated)
    :param ledger_conn_id: Connection of type ``imaging_privacy_ledger``; None uses the spec's ``ledger``.
    :param dask_conn_id: Connection of type ``dask``; None or empty starts an embedded local cluster. (templated)
    :param workers: embedded cluster size (None: one per core).
    """

    template_fields: Sequence[str] = ("spec_path", "output_path", "sources", "dask_conn_id")
    ui_color = "#c9d9f5"

    def __init__(
        self,
        *,
        spec_path: str,
        output_path: str,
        sources: Mapping[str, str] | str | None = None,
        ledger_conn_id: str | None = None,
        dask_conn_id: str | None = None,
        workers: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.spec_path = spec_path
        self.output_path = output_path
        self.sources = sources
        self.ledger_conn_id = ledger_conn_id
        self.dask_conn_id = dask_conn_id
        self.workers = workers

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from privacy_core.dp.ledger import task_instance_key
        from privacy_core.dp.release import run_release
        from privacy_core.dp.spec import load_spec
        from privacy_core.errors import BudgetExceededError

        spec = load_spec(self.spec_path)
        if self.sources:
            spec = replace(spec, sources={**spec.sources, **_parameters(self.sources)})
        run = airflow_run(context)
        key = task_instance_key(run.dag_id, run.run_id, run.task_id, run.map_index)
        with _open(spec, self.ledger_conn_id) as ledger:
            _checked(spec, ledger, key)
            try:
                result = run_release(
                    spec,
                    ledger,
                    self.output_path,
                    key=key,
                    dask=_dask_config(self.dask_conn_id, self.workers),
                    airflow=run,
                    announce=self.log.info,
                )
            except BudgetExceededError as exc:  # another task reserved first: a retry cannot pay either
                raise AirflowFailException(str(exc)) from None
        summary = result.summary()
        self._lineage_record_path = summary["lineage_record"]
        self.log.info("released %s: loss %s, charged %s", spec.dataset, summary["loss"], summary["charged"])
        set_outlet_extra(self, context, {"privacy_spend": summary})
        return summary

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """OpenLineage: the sources, the bundle and the privacy spend facet (ledger entry), from the record."""
        from operators.lineage import operator_lineage

        return operator_lineage(
            getattr(self, "_lineage_record_path", None), _parameters(self.sources or {}).values(), [self.output_path]
        )

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """The same, from the record if this try wrote one, else the paths it was given."""
        return self.get_openlineage_facets_on_complete(task_instance)
