"""Airflow operators for the imaging store: de-identified DICOM to Zarr, and pixel privacy on Dask.

Thin like the de-identification operators: constructors only assign, ``execute`` builds the Dask client
through the hook (or an embedded cluster), makes one ``privacy_core`` call and returns a summary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from operators.deid import airflow_run
from operators.hooks.dask import DaskHook
from operators.lineage import set_outlet_extra

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from privacy_core.imaging.compute import DaskConfig


def _dask_config(dask_conn_id: str | None, workers: int | None) -> DaskConfig:
    """The scheduler from the Connection, or an embedded cluster of ``workers`` processes."""
    from privacy_core.imaging.compute import DaskConfig

    return DaskHook(dask_conn_id).get_conn() if dask_conn_id else DaskConfig(workers=workers)


def _parameters(value: Mapping[str, Any] | str | None) -> dict[str, Any]:
    """Parameters as a dict; a template rendered to text (no ``render_template_as_native_obj``) is JSON."""
    import json

    from privacy_core.errors import ConfigurationError

    if value is None:
        return {}
    if isinstance(value, str):
        try:
            parsed = json.loads(value.replace("'", '"'))
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise ConfigurationError(
                "parameters",
                "rendered to text that is not a JSON object",
                "pass a dict, or set render_template_as_native_obj=True on the DAG",
            )
        return parsed
    return dict(value)


class DicomToZarrOperator(BaseOperator):
    """Convert a tree of de-identified DICOM into one OME-Zarr array per series.

    Series that cannot be converted (inconsistent shapes, missing geometry, mixed modalities, unreadable
    pixels) are reported with their reason and left out; the rest go on.

    :param input_path: folder of de-identified DICOM (a release). (templated)
    :param store_url: Zarr store: a local path or an fsspec URL. (templated)
    :param rescale: apply Rescale Slope/Intercept (e.g. to Hounsfield units).
    :param chunk_mb: target chunk size in MB for Dask.
    :param storage_options: fsspec options for the store (e.g. an endpoint); secrets belong in a Connection.
    """

    template_fields: Sequence[str] = ("input_path", "store_url")
    ui_color = "#d5f5c9"

    def __init__(
        self,
        *,
        input_path: str,
        store_url: str,
        rescale: bool = False,
        chunk_mb: float = 32.0,
        storage_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_path = input_path
        self.store_url = store_url
        self.rescale = rescale
        self.chunk_mb = chunk_mb
        self.storage_options = storage_options

    def execute(self, context: Context) -> dict[str, Any]:
        from privacy_core.imaging.job import run_to_zarr

        job = run_to_zarr(
            self.input_path,
            self.store_url,
            rescale=self.rescale,
            chunk_mb=self.chunk_mb,
            storage_options=dict(self.storage_options) if self.storage_options else None,
            airflow=airflow_run(context),
        )
        self.log.info(
            "wrote %s series; left out %s %s", job.summary["series"], job.summary["left_out"], job.summary["reasons"]
        )
        self._lineage_record_path = job.summary["lineage_record"]
        extra = {k: job.summary[k] for k in ("series", "left_out", "lineage_record")}
        set_outlet_extra(self, context, extra, self.storage_options)
        return job.summary

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """OpenLineage: the release, the store and the image store facet, from the lineage record."""
        from operators.lineage import operator_lineage

        return operator_lineage(getattr(self, "_lineage_record_path", None), [self.input_path], [self.store_url])

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """The same, from the record if this try wrote one, else the paths it was given."""
        return self.get_openlineage_facets_on_complete(task_instance)


class PixelPrivacyOperator(BaseOperator):
    """Apply a pixel privacy transform to every series array of a store, on Dask, into a new store.

    :param store_url: input Zarr store (from ``DicomToZarrOperator``). (templated)
    :param output_url: output Zarr store. (templated)
    :param method: ``mask``, ``blur``, ``pixelate`` or ``dp-pix``. (templated)
    :param parameters: the method's parameters, e.g. ``{"block": 8, "epsilon": 0.5, "m": 16}``. (templated)
    :param dask_conn_id: Connection of type ``dask``; None or empty starts an embedded local cluster. (templated)
    :param workers: embedded cluster size (None: one per core).
    :param storage_options: fsspec options for both stores.
    """

    template_fields: Sequence[str] = ("store_url", "output_url", "method", "parameters", "dask_conn_id")
    ui_color = "#f5d5c9"

    def __init__(
        self,
        *,
        store_url: str,
        output_url: str,
        method: str,
        parameters: Mapping[str, Any] | str | None = None,
        dask_conn_id: str | None = None,
        workers: int | None = None,
        storage_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.store_url = store_url
        self.output_url = output_url
        self.method = method
        self.parameters = parameters
        self.dask_conn_id = dask_conn_id
        self.workers = workers
        self.storage_options = storage_options

    def execute(self, context: Context) -> dict[str, Any]:
        from privacy_core.pixels.job import run_pixels

        job = run_pixels(
            self.store_url,
            self.output_url,
            self.method,
            _parameters(self.parameters),
            dask=_dask_config(self.dask_conn_id, self.workers),
            storage_options=dict(self.storage_options) if self.storage_options else None,
            airflow=airflow_run(context),
        )
        self.log.info("%s applied to %s series arrays", self.method, job.summary["arrays"])
        self._lineage_record_path = job.summary["lineage_record"]
        extra = {k: job.summary[k] for k in ("method", "arrays", "dp", "lineage_record")}
        set_outlet_extra(self, context, extra, self.storage_options)
        return job.summary

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """OpenLineage: both stores, the image store facet and, for dp-pix, the privacy spend facet."""
        from operators.lineage import operator_lineage

        return operator_lineage(getattr(self, "_lineage_record_path", None), [self.store_url], [self.output_url])

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage[Any, Any]:
        """The same, from the record if this try wrote one, else the paths it was given."""
        return self.get_openlineage_facets_on_complete(task_instance)
