"""Airflow operators for DICOM de-identification: a thin layer over ``privacy_core.deid``.

Constructors only assign. ``execute`` gets the secret from the hook, makes one ``privacy_core`` call and
returns a JSON-serialisable summary (no identifiers) to XCom.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from operators.hooks.pseudonym_key import PseudonymKeyHook
from operators.lineage import set_outlet_extra

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from privacy_core.lineage.record import AirflowRun


def airflow_run(context: Context) -> AirflowRun:
    """The task instance's identifiers, for the lineage record."""
    from privacy_core.lineage.record import AirflowRun

    ti = context["ti"]
    return AirflowRun(
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        task_id=ti.task_id,
        map_index=int(getattr(ti, "map_index", -1) if getattr(ti, "map_index", None) is not None else -1),
        try_number=int(getattr(ti, "try_number", 0) or 0),
    )


class DicomDeidentifyOperator(BaseOperator):
    """De-identify a tree of DICOM files into a release folder (PS3.15 Annex E, keyed pseudonyms).

    Writes the lineage record into ``<output_path>/lineage/``; rejected files go to ``quarantine_path``.
    A retry of a task whose earlier try completed returns that try's summary and does no work twice.

    :param input_path: folder (or file) of original DICOM. (templated)
    :param output_path: the release folder, new or empty. (templated)
    :param key_conn_id: Connection holding the project secret (type ``imaging_privacy_key``).
    :param options: PS3.15 E.3 option names, e.g. ``["retain_long_modified_dates"]``. (templated)
    :param quarantine_path: folder for rejected inputs; default ``<output_path>.quarantine``. (templated)
    :param report_path: also write the summary JSON here. (templated)
    :param burned_in_rules: an RSNA CTP-format rule file; default the bundled library. (templated)
    :param workers: processes, one core each.
    :param fail_on_quarantine: fail the task if any file was quarantined.
    :param strict_values: quarantine files whose numbers, dates or UIDs break their VR.
    :param release_unhandled_burned_in: release BurnedInAnnotation=YES images no rule covers.
    """

    template_fields: Sequence[str] = (
        "input_path",
        "output_path",
        "options",
        "quarantine_path",
        "report_path",
        "burned_in_rules",
    )
    ui_color = "#c9e4f5"

    def __init__(
        self,
        *,
        input_path: str,
        output_path: str,
        key_conn_id: str = PseudonymKeyHook.default_conn_name,
        options: Sequence[str] = (),
        quarantine_path: str | None = None,
        report_path: str | None = None,
        burned_in_rules: str | None = None,
        workers: int = 1,
        fail_on_quarantine: bool = False,
        strict_values: bool = True,
        release_unhandled_burned_in: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_path = input_path
        self.output_path = output_path
        self.key_conn_id = key_conn_id
        self.options = options
        self.quarantine_path = quarantine_path
        self.report_path = report_path
        self.burned_in_rules = burned_in_rules
        self.workers = workers
        self.fail_on_quarantine = fail_on_quarantine
        self.strict_values = strict_values
        self.release_unhandled_burned_in = release_unhandled_burned_in

    @cached_property
    def hook(self) -> PseudonymKeyHook:
        """The only way to the secret."""
        return PseudonymKeyHook(key_conn_id=self.key_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        from privacy_core.deid.job import completed_summary, run_deidentification

        run = airflow_run(context)
        done = completed_summary(self.output_path, run)
        if done is not None:
            self.log.info("an earlier try of this task completed this release; returning its summary")
            self._lineage_record_path = done["lineage_record"]
            return done
        job = run_deidentification(
            self.input_path,
            self.output_path,
            self.hook.get_conn(),
            options=list(self.options),
            quarantine_path=self.quarantine_path,
            report_path=self.report_path,
            workers=self.workers,
            strict_values=self.strict_values,
            rules_path=self.burned_in_rules,
            release_unhandled_burned_in=self.release_unhandled_burned_in,
            airflow=run,
        )
        summary = {**job.summary, "lineage_record": str(job.lineage_path), "output_path": self.output_path}
        self._lineage_record_path = summary["lineage_record"]
        self.log.info(
            "de-identified %s of %s files; quarantined %s %s",
            summary["written"],
            summary["processed"],
            summary["quarantined"],
            summary["reasons"],
        )
        extra = {k: summary[k] for k in ("written", "quarantined", "output_digest", "profile", "lineage_record")}
        set_outlet_extra(self, context, extra)
        if self.fail_on_quarantine and summary["quarantined"]:
            raise AirflowFailException(
                f"{summary['quarantined']} files were quarantined ({summary['reasons']}); the release is "
                f"written, see the quarantine report in {job.quarantine_path}, or set fail_on_quarantine=False"
            )
        return summary

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """OpenLineage: the originals and the release, and the de-identification facet, from the lineage record."""
        from operators.lineage import operator_lineage

        return operator_lineage(getattr(self, "_lineage_record_path", None), [self.input_path], [self.output_path])

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """The same, from the record if this try wrote one, else the paths it was given."""
        return self.get_openlineage_facets_on_complete(task_instance)


class DicomLeakVerifyOperator(BaseOperator):
    """Fail the task if any value the profile removes from ``input_path`` appears under ``output_path``.

    :param input_path: the original files. (templated)
    :param output_path: the release to check. (templated)
    :param options: the options the release was made with. (templated)
    """

    template_fields: Sequence[str] = ("input_path", "output_path", "options")
    ui_color = "#f5e6c9"

    def __init__(self, *, input_path: str, output_path: str, options: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.input_path = input_path
        self.output_path = output_path
        self.options = options

    def execute(self, context: Context) -> dict[str, Any]:
        from privacy_core.deid.profile import Profile
        from privacy_core.deid.verify import verify_release

        report = verify_release(self.input_path, self.output_path, Profile.from_names(tuple(self.options)))
        self.log.info("%s", report.render())
        if report.hits:
            raise AirflowFailException(
                f"{len(report.hits)} values removed by the profile were found in the release; do not publish "
                "it. Run `imaging-privacy verify` on the same folders to see where."
            )
        return {"inputs": report.inputs, "outputs": report.outputs, "needles": report.needles, "hits": 0}

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """OpenLineage: it reads the originals and the release, and writes nothing."""
        from operators.lineage import operator_lineage

        return operator_lineage(None, [self.input_path, self.output_path])

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """The same: a failed check read the same folders."""
        return self.get_openlineage_facets_on_complete(task_instance)
