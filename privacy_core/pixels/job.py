"""One pixel-privacy job as the CLI and the Airflow operator both run it: every series array of a store,
transformed as a Dask graph on a cluster, written atomically to a new store, with its lineage record."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from privacy_core.errors import ConfigurationError
from privacy_core.imaging.compute import DaskConfig, dask_client
from privacy_core.imaging.job import LINEAGE_DIR, STORE_FORMAT, store_digest
from privacy_core.imaging.zarr_store import (
    SeriesArrayInfo,
    list_series,
    open_series,
    read_record,
    write_array,
    write_pointwise,
)
from privacy_core.lineage.record import AirflowRun, Artifact, build_record, write_record

if TYPE_CHECKING:
    import dask.array as da

#: Parameters each method accepts, with whether each is required.
METHOD_PARAMETERS: dict[str, dict[str, bool]] = {
    "mask": {"regions": True, "value": False},
    "blur": {"sigma": True, "truncate": False, "boundary": False},
    "pixelate": {"block": True},
    "dp-pix": {"block": True, "epsilon": True, "m": False, "value_range": False, "bits_stored": False},
}


@dataclass(frozen=True)
class PixelJobResult:
    """The job's outcome: a summary safe for logs and XCom, and where the lineage record is."""

    summary: dict[str, Any]
    lineage_path: str
    arrays: list[SeriesArrayInfo]


def check_parameters(method: str, parameters: dict[str, Any]) -> None:
    """Refuse an unknown method, a missing parameter or one the method does not take, saying which.

    :raises ConfigurationError: with the method's accepted parameters in the message.
    """
    if method not in METHOD_PARAMETERS:
        raise ConfigurationError("method", f"{method!r} is not a method", f"choose from {', '.join(METHOD_PARAMETERS)}")
    accepted = METHOD_PARAMETERS[method]
    unknown = sorted(set(parameters) - set(accepted))
    missing = sorted(name for name, required in accepted.items() if required and name not in parameters)
    if unknown or missing:
        problem = "; ".join(
            part for part in (f"unknown {unknown}" if unknown else "", f"missing {missing}" if missing else "") if part
        )
        raise ConfigurationError(f"{method} parameters", problem, f"{method} takes {sorted(accepted)}")


def transform(image: da.Array, method: str, parameters: dict[str, Any]) -> da.Array:
    """Build (not run) the Dask graph of ``method`` on ``image``."""
    from privacy_core import pixels

    check_parameters(method, parameters)
    if method == "mask":
        if parameters["regions"] == "burned-in":
            raise ConfigurationError("regions", '"burned-in" needs a source array', "use run_pixels")
        regions = [tuple(int(v) for v in region) for region in parameters["regions"]]
        return pixels.mask_regions(image, regions, value=parameters.get("value"))  # type: ignore[arg-type]
    if method == "blur":
        extra = {k: parameters[k] for k in ("truncate", "boundary") if k in parameters}
        return pixels.gaussian_blur(image, parameters["sigma"], **extra)
    if method == "pixelate":
        return pixels.pixelate(image, int(parameters["block"]))
    return pixels.dp_pix(
        image,
        int(parameters["block"]),
        float(parameters["epsilon"]),
        m=int(parameters.get("m", 1)),
        value_range=parameters.get("value_range"),
        bits_stored=parameters.get("bits_stored"),
    )


def effective_parameters(
    method: str, parameters: dict[str, Any], image: da.Array, source: dict[str, Any]
) -> dict[str, Any]:
    """The parameters for one array. ``mask`` with ``regions="burned-in"`` takes the rectangles the burned-in
    library matched at conversion. ``dp-pix`` without a value range takes the array's own BitsStored (recorded
    at conversion) unless values were rescaled, so 8-bit colour and 12-bit CT each get their real range."""
    if method == "mask" and parameters.get("regions") == "burned-in":
        return {**parameters, "regions": source.get("burned_in_regions", [])}
    if method != "dp-pix" or "value_range" in parameters:
        return parameters
    import numpy as np

    bits = parameters.get("bits_stored") or (0 if source.get("rescaled") else int(source.get("bits_stored") or 0))
    chosen = dict(parameters)
    chosen.pop("bits_stored", None)
    if bits and np.issubdtype(image.dtype, np.integer) and bits <= np.dtype(image.dtype).itemsize * 8:
        chosen["bits_stored"] = bits
    return chosen


def dp_facts(image: da.Array, parameters: dict[str, Any]) -> dict[str, Any]:
    """DP-Pix's spend for the record: epsilon, m, b, the dynamic range used, the exact discrete Laplace scale of
    each cell sum (with the value of one unit) and the resulting noise scale of a full cell's mean."""
    from privacy_core.pixels import default_value_range, dp_pix_scale, dp_pix_sum_scale
    from privacy_core.pixels._noise import CellNoise
    from privacy_core.pixels.reference import dp_pix_unit

    value_range = parameters.get("value_range") or default_value_range(
        image.dtype, bits_stored=parameters.get("bits_stored")
    )
    block, epsilon, m = int(parameters["block"]), float(parameters["epsilon"]), int(parameters.get("m", 1))
    channels = int(image.shape[3]) if image.ndim == 4 else 1
    sum_scale = dp_pix_sum_scale(epsilon, m, float(value_range), channels=channels, dtype=image.dtype)
    return {
        "mechanism": "discrete-laplace",
        "epsilon": epsilon,
        "m": m,
        "block": block,
        "value_range": float(value_range),
        "sum_scale": f"{sum_scale.numerator}/{sum_scale.denominator}",
        "sum_unit": dp_pix_unit(image.dtype, float(value_range)),
        "noise_scale": dp_pix_scale(block, epsilon, m, float(value_range), channels=channels, dtype=image.dtype),
        "noise_source": CellNoise().description,
        "unit": f"{m} pixels of one series array",
    }


def run_pixels(
    store_url: str,
    output_url: str,
    method: str,
    parameters: dict[str, Any],
    *,
    dask: DaskConfig | None = None,
    storage_options: dict[str, Any] | None = None,
    airflow: AirflowRun | None = None,
    announce: Callable[[str], None] | None = None,
) -> PixelJobResult:
    """Apply ``method`` to every complete series array of ``store_url`` and write them to ``output_url``.

    :param parameters: the method's parameters (see :data:`METHOD_PARAMETERS`).
    :param dask: where to run; None starts an embedded local cluster.
    :param announce: told the DP-Pix noise scale before anything runs (the CLI prints it).
    :raises ConfigurationError: a bad method or parameter, or an empty store, before any work.
    """
    check_parameters(method, parameters)
    if store_url.rstrip("/") == output_url.rstrip("/"):
        raise ConfigurationError("output", "is the input store", "write transformed arrays to a new store")
    sources = list_series(store_url, storage_options=storage_options)
    if not sources:
        raise ConfigurationError("store", f"{store_url} holds no complete series array", "run to-zarr first")
    config = dask or DaskConfig()
    dp: dict[str, Any] | None = None
    with dask_client(config) as client:
        import dask as dask_module

        with dask_module.config.set(scheduler=client.get):
            jobs = []
            for url in sources:
                image = open_series(url, storage_options=storage_options)
                source = read_record(url, storage_options=storage_options)
                chosen = effective_parameters(method, parameters, image, source)
                if method == "dp-pix":
                    facts = dp_facts(image, chosen)
                    # Each array is epsilon-DP with its own range; the record keeps the widest noise.
                    dp = facts if dp is None or facts["noise_scale"] > dp["noise_scale"] else dp
                    if announce:
                        announce(
                            f"dp-pix {source['series_uid']}: epsilon={facts['epsilon']} m={facts['m']} "
                            f"b={facts['block']} range={facts['value_range']:g}: "
                            f"discrete Laplace noise scale {facts['noise_scale']:.4g} per full cell mean"
                        )
                derived = {"method": method, "parameters": _recordable(chosen)}
                jobs.append(_series_job(url, image, source, method, chosen, derived, output_url, storage_options))
            written = _write_all(jobs, _series_in_flight(client, len(jobs)))
            output_digest = store_digest([a.url for a in written], storage_options)
            input_digest = store_digest(sources, storage_options)
    record = build_record(
        operation="pixels",
        parameters={"method": method, **_recordable(parameters)},
        inputs=[Artifact(store_url, "zarr-store", len(sources), "sha256-chunks", input_digest)],
        outputs=[Artifact(output_url, "zarr-store", len(written), "sha256-chunks", output_digest)],
        counts={"arrays": len(written)},
        privacy={"pixels": {"method": method, "parameters": _recordable(parameters), "dp": dp}},
        airflow=airflow,
        storage={"format": STORE_FORMAT, "compute": config.describe(), "arrays": [a.lineage_entry() for a in written]},
    )
    where = write_record(record, f"{output_url.rstrip('/')}/{LINEAGE_DIR}", storage_options)
    summary = {
        "method": method,
        "arrays": len(written),
        "dp": dp,
        "compute": config.describe(),
        "output": output_url,
        "lineage_record": where,
    }
    return PixelJobResult(summary, where, written)


def _series_in_flight(client: Any, series: int) -> int:
    """How many series graphs to keep submitted at once: two per worker, so a series with fewer shard tasks
    than the cluster has workers (a short series) never leaves the rest idle."""
    workers = len(client.scheduler_info(n_workers=-1).get("workers", {})) or 1
    return max(1, min(series, 2 * workers))


def _series_job(
    url: str,
    image: da.Array,
    source: dict[str, Any],
    method: str,
    parameters: dict[str, Any],
    derived: dict[str, Any],
    output_url: str,
    storage_options: dict[str, Any] | None,
) -> Callable[[], SeriesArrayInfo]:
    """What writes one series: masking goes chunk by chunk on the stored files when their codecs allow
    (:func:`write_pointwise`, about twice the throughput of an array graph for this I/O-bound work); every
    other method, and masks of layouts the stored-chunk path does not reproduce, go as a Dask array graph."""
    from privacy_core.imaging.stored_chunks import StoredLayout, UnsupportedLayout

    if method == "mask":
        import zarr

        from privacy_core.pixels import stored_mask

        apply = stored_mask(parameters["regions"], tuple(image.shape), image.dtype, value=parameters.get("value"))
        stored = zarr.open_array(url, path="0", mode="r", zarr_format=3, storage_options=storage_options)
        try:
            StoredLayout.of(stored)
        except UnsupportedLayout:
            pass
        else:
            return lambda: write_pointwise(
                url, output_url, source, apply, derived=derived, storage_options=storage_options
            )
    graph = transform(image, method, parameters)
    return lambda: write_array(graph, output_url, source, derived=derived, storage_options=storage_options)


def _write_all(jobs: list[Callable[[], SeriesArrayInfo]], in_flight: int) -> list[SeriesArrayInfo]:
    """Write every series, ``in_flight`` at a time (each atomically, in input order in the result).

    One ``compute`` per series, one after another, kept a large cluster at the width of one series: a
    300-slice series has two shard-sized tasks. Threads only submit and wait; the work runs on the cluster.
    """
    from concurrent.futures import ThreadPoolExecutor

    if in_flight <= 1:
        return [job() for job in jobs]
    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="imaging-privacy-series") as pool:
        return list(pool.map(lambda job: job(), jobs))


def _recordable(parameters: dict[str, Any]) -> dict[str, Any]:
    """Parameters as plain JSON (regions as lists)."""
    return {k: [list(r) for r in v] if k == "regions" else v for k, v in parameters.items()}
