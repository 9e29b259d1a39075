"""One DP release as the CLI and the Airflow operator both run it: check, reserve, compute, noise, commit.

The order is what makes it safe:

1. the spec is checked and the cost computed, and the ledger refuses an over-cap spend, before any work;
2. the spend is *reserved* under an idempotency key (the Airflow task instance, or the spec's digest), so
   concurrent releases can never exceed the cap together, and a key already committed returns its stored
   result: a retry never draws fresh noise (which an observer could average away) and never pays twice;
3. the exact statistics are computed (on Dask for arrays), noised once after the reduction, and the bundle
   is *committed* to the ledger before anything is written: the ledger is the one source of the release;
4. only then are the bundle and its images written, atomically, and the lineage record after them.

A failure before the commit aborts the reservation; its noise never left this process.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from privacy_core import __version__
from privacy_core.dp.accounting import zcdp_to_approx_dp
from privacy_core.dp.mechanisms import Mechanism
from privacy_core.dp.queries import Statistic, dicom_statistics, zarr_statistics
from privacy_core.dp.spec import Query, ReleaseSpec
from privacy_core.dp.tables import Row, bound_contributions, dicom_rows, zarr_rows
from privacy_core.errors import ConfigurationError
from privacy_core.schemas import validate
from privacy_core.storage import atomic_write_bytes, atomic_write_json

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from privacy_core.dp.ledger import BudgetLedger, CommittedSpend
    from privacy_core.dp.random import SecureRandom
    from privacy_core.imaging.compute import DaskConfig
    from privacy_core.lineage.record import AirflowRun

BUNDLE_SCHEMA = "DPRelease/1.0"
BUNDLE_NAME = "release.json"
#: Vectors longer than this go to a .npy file beside the bundle rather than inline.
INLINE_LIMIT = 4096
#: The default ledger when neither the spec, the CLI nor the operator names one.
LEDGER_ENV = "IMAGING_PRIVACY_LEDGER"


@dataclass(frozen=True)
class ReleaseResult:
    """A finished release: the bundle, where it is, and whether this call charged the ledger."""

    bundle: dict[str, Any]
    path: str
    charged: bool
    lineage_path: str

    def summary(self) -> dict[str, Any]:
        """Safe for logs and XCom: the loss, the ledger entry, the bundle path; no released value either."""
        return {
            "dataset": self.bundle["dataset"],
            "release_id": self.bundle["release_id"],
            "accounting": self.bundle["accounting"],
            "loss": self.bundle["loss"]["value"],
            "charged": self.charged,
            "ledger_commit": self.bundle["ledger"]["commit_sequence"],
            "bundle": self.path,
            "lineage_record": self.lineage_path,
        }


def release_cost(spec: ReleaseSpec) -> Fraction:
    """The exact loss the release charges: the spec's whole budget (each query takes its share of it)."""
    return sum((spec.loss_of(q) for q in spec.queries), Fraction(0))


def default_key(spec: ReleaseSpec) -> str:
    """The idempotency key of a release run outside Airflow: asking the same spec again returns the same
    answer and charges nothing. Pass a key of your own to release the same spec afresh."""
    return f"spec:{spec.digest}"


def check_budget(spec: ReleaseSpec, ledger: BudgetLedger, key: str | None = None) -> None:
    """Refuse, before any work, a release the dataset's remaining budget cannot pay for.

    With ``key``, a release already committed (or reserved) under it passes: its retry is free.

    :raises ConfigurationError: the dataset has another accounting than the spec.
    :raises BudgetExceededError: the remaining budget is smaller than the release's loss.
    """
    status = ledger.status(spec.dataset)
    if status.accounting != spec.accounting:
        raise ConfigurationError(
            "accounting",
            f"the spec uses {spec.accounting} but dataset {spec.dataset!r} is accounted in {status.accounting}",
            f"set accounting: {status.accounting} in the spec",
        )
    ledger.check(spec.dataset, release_cost(spec), key)


def run_release(
    spec: ReleaseSpec,
    ledger: BudgetLedger,
    output: str | Path,
    *,
    key: str | None = None,
    dask: DaskConfig | None = None,
    storage_options: dict[str, Any] | None = None,
    airflow: AirflowRun | None = None,
    rng: SecureRandom | None = None,
    announce: Callable[[str], None] | None = None,
) -> ReleaseResult:
    """Run the release of ``spec`` and write its bundle into the folder ``output``.

    :param key: the idempotency key; None uses :func:`default_key`.
    :param dask: where array queries run; None starts an embedded local cluster (only if one is needed).
    :param announce: told the loss and the ledger decision before work starts (the CLI prints it).
    :raises BudgetExceededError: before any work, when the budget cannot pay.
    """
    key = key or default_key(spec)
    check_budget(spec, ledger, key)
    cost = release_cost(spec)
    description = {
        "spec_digest": spec.digest,
        "queries": [q.name for q in spec.queries],
        "privacy_unit": {"unit": "patient", "max_records_per_patient": spec.max_records_per_patient},
    }
    outcome = ledger.reserve(spec.dataset, key, cost, description)
    from privacy_core.dp.ledger import CommittedSpend

    if isinstance(outcome, CommittedSpend):
        if announce:
            announce(f"{spec.dataset}: key already released; returning the stored result, charging nothing")
        return _publish(outcome, _backend(ledger), Path(output), charged=False, spec=spec, key=key, airflow=airflow)
    if announce:
        announce(f"{spec.dataset}: reserved {_unit(spec)}={float(cost):g} ({cost}) for {len(spec.queries)} queries")
    try:
        result = _compute(spec, key, dask, storage_options, rng)
        committed = ledger.commit(outcome, result)
    except BaseException as exc:
        ledger.abort(outcome, f"release failed before commit: {exc.__class__.__name__}")
        raise
    return _publish(committed, _backend(ledger), Path(output), charged=True, spec=spec, key=key, airflow=airflow)


def _backend(ledger: BudgetLedger) -> str:
    return "postgresql" if ledger.url.startswith("postgres") else "sqlite"


def _unit(spec: ReleaseSpec) -> str:
    return "epsilon" if spec.accounting == "pure-dp" else "rho"


def _compute(
    spec: ReleaseSpec,
    key: str,
    dask: DaskConfig | None,
    storage_options: dict[str, Any] | None,
    rng: SecureRandom | None,
) -> dict[str, Any]:
    """What the ledger stores: the bundle (images encoded inline) and digests of the rows each source gave.

    The digests are SHA-256 over the rows as read (new UIDs and values), so an auditor can recompute them
    from the same inputs; they reveal nothing, since every row carries a 128-bit UID.
    """
    import datetime as dt

    exact: dict[str, list[Statistic]] = {}
    digests: dict[str, hashlib._Hash] = {}
    dicom_queries = [q for q in spec.queries if q.source == "dicom"]
    zarr_queries = [q for q in spec.queries if q.source == "zarr"]
    k = spec.max_records_per_patient
    for level in sorted({q.level for q in dicom_queries}):
        at_level = [q for q in dicom_queries if q.level == level]
        fields = sorted({f for q in at_level for f in (q.field, q.partition_by) if f})
        rows = bound_contributions(dicom_rows(spec.sources["dicom"], level, fields), k)
        _digest_rows(digests.setdefault("dicom", hashlib.sha256()), rows)
        for query in at_level:
            exact[query.name] = dicom_statistics(query, rows, k)
    if zarr_queries:
        exact.update(
            _zarr_exact(spec, zarr_queries, dask, storage_options, digests.setdefault("zarr", hashlib.sha256()))
        )
    queries = [_noisy_query(spec, query, exact.pop(query.name), rng) for query in spec.queries]
    bundle: dict[str, Any] = {
        "schema": BUNDLE_SCHEMA,
        "release_id": hashlib.sha256(f"{spec.dataset}\n{key}".encode()).hexdigest()[:32],
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "dataset": spec.dataset,
        "spec_digest": spec.digest,
        "idempotency_key": key,
        "privacy_unit": {
            "unit": "patient",
            "max_records_per_patient": k,
            "note": "rows beyond the bound, and rows without a patient pseudonym, are left out before aggregation",
        },
        "accounting": spec.accounting,
        "loss": _loss(spec, release_cost(spec)),
        "queries": queries,
        "producer": {"name": "airflow-imaging-privacy", "version": __version__},
    }
    return {"bundle": bundle, "inputs": {name: digest.hexdigest() for name, digest in sorted(digests.items())}}


def _digest_rows(digest: hashlib._Hash, rows: list[Row]) -> None:
    for row in rows:
        digest.update(json.dumps([row.patient, row.key, row.values], sort_keys=True, default=str).encode() + b"\n")


def _zarr_exact(
    spec: ReleaseSpec,
    queries: list[Query],
    dask: DaskConfig | None,
    storage_options: dict[str, Any] | None,
    digest: hashlib._Hash,
) -> dict[str, list[Statistic]]:
    """The array queries' exact statistics, computed on a Dask cluster."""
    import dask as dask_module

    from privacy_core.imaging.compute import DaskConfig, dask_client

    rows = bound_contributions(zarr_rows(spec.sources["zarr"], storage_options), spec.max_records_per_patient)
    _digest_rows(digest, rows)
    results: dict[str, list[Statistic]] = {}
    with dask_client(dask or DaskConfig()) as client, dask_module.config.set(scheduler=client.get):
        for query in queries:
            results[query.name] = zarr_statistics(query, rows, spec.max_records_per_patient, storage_options)
    return results


def _loss(spec: ReleaseSpec, loss: Fraction) -> dict[str, Any]:
    described: dict[str, Any] = {"value": float(loss), "exact": str(loss)}
    if spec.accounting == "zcdp":
        delta = spec.delta or 1e-6
        described["epsilon_delta"] = {"epsilon": zcdp_to_approx_dp(loss, delta), "delta": delta}
    return described


def mechanisms_for(spec: ReleaseSpec, query: Query, statistics: list[Statistic]) -> list[Mechanism]:
    """The mechanism of each statistic of ``query``: an equal part of the query's share of the loss, and
    the statistic's own sensitivity. Their losses add up to the query's (sequential composition)."""
    share = spec.loss_of(query) / len(statistics)
    return [Mechanism(spec.accounting, share, s.sensitivity(spec.accounting)) for s in statistics]


def _noisy_query(
    spec: ReleaseSpec, query: Query, statistics: list[Statistic], rng: SecureRandom | None
) -> dict[str, Any]:
    """Noise each statistic with its mechanism; add free post-processing estimates."""
    loss = spec.loss_of(query)
    described = []
    noisy_values: dict[str, NDArray[np.float64]] = {}
    for statistic, mechanism in zip(statistics, mechanisms_for(spec, query, statistics), strict=True):
        noisy = mechanism.add_noise(statistic.values, rng)
        scaled = noisy.astype("float64") * float(statistic.resolution)
        noisy_values[statistic.part] = scaled
        entry: dict[str, Any] = {
            "part": statistic.part,
            "noise": mechanism.describe(),
            "resolution": float(statistic.resolution),
            "labels": list(statistic.labels),
            "interval_95": mechanism.interval(0.95) * float(statistic.resolution),
        }
        if scaled.size <= INLINE_LIMIT and scaled.ndim <= 1:
            entry["values"] = [float(v) for v in scaled.ravel()]
        else:
            name = f"{query.name}-{statistic.part}.npy"
            entry["file"] = {"name": name, "shape": list(scaled.shape), "sha256": "", "encoded": _encode(noisy)}
        described.append(entry)
    result: dict[str, Any] = {
        "name": query.name,
        "kind": query.kind,
        "spec": query.describe(),
        "loss": {"value": float(loss), "exact": str(loss)},
        "statistics": described,
    }
    estimate = _estimate(query, noisy_values)
    if estimate is not None:
        result["estimate"] = estimate
    return result


def _estimate(query: Query, noisy: dict[str, NDArray[np.float64]]) -> dict[str, Any] | None:
    """Post-processing of noisy values only: a mean from noisy sum and count, a histogram's distribution."""
    import numpy as np

    if query.kind == "mean":
        counts = np.maximum(noisy["count"], 1.0)
        return {"mean": [float(v) for v in noisy["sum"] / counts], "note": "noisy sum / max(noisy count, 1)"}
    if query.kind in ("histogram", "intensity_histogram"):
        clipped = np.maximum(noisy["histogram"], 0.0)
        total = float(clipped.sum())
        fractions = clipped / total if total > 0 else clipped
        return {"fractions": [float(v) for v in fractions], "note": "noisy histogram, negatives set to 0, normalized"}
    if query.kind == "voxel_mean":
        count = max(float(noisy["count"][0]), 1.0)
        return {"mean_image_divisor": count, "note": "mean image = sum image / this noisy count"}
    return None


def _encode(noisy: NDArray[np.int64]) -> str:
    """The noisy integers as base64 of zlib-compressed .npy bytes, so the ledger stores the exact result.

    Integers in the narrowest dtype that holds them, and zlib's fastest level: a 64x512x512 image costs
    about a second, where float64 at level 6 cost ten.
    """
    import numpy as np

    narrow = noisy.astype(np.int32) if np.abs(noisy).max(initial=0) < 2**31 else noisy
    buffer = io.BytesIO()
    np.save(buffer, narrow, allow_pickle=False)
    return base64.b64encode(zlib.compress(buffer.getvalue(), 1)).decode("ascii")


def _image_file(text: str, resolution: float) -> bytes:
    """The stored noisy integers as the published .npy: float64 values in the statistic's units."""
    import numpy as np

    integers = np.load(io.BytesIO(zlib.decompress(base64.b64decode(text))), allow_pickle=False)
    buffer = io.BytesIO()
    np.save(buffer, integers.astype(np.float64) * resolution, allow_pickle=False)
    return buffer.getvalue()


def _publish(
    spend: CommittedSpend,
    backend: str,
    output: Path,
    *,
    charged: bool,
    spec: ReleaseSpec,
    key: str,
    airflow: AirflowRun | None,
) -> ReleaseResult:
    """Write the bundle's images, then the bundle, then the lineage record; each atomically.

    The bundle comes from the ledger's commit entry (a retry writes the same values again), and names it.
    """
    from privacy_core.lineage.record import Artifact, build_record, write_record

    stored = json.loads(json.dumps(spend.result))
    bundle = stored["bundle"]
    bundle["ledger"] = {"backend": backend, "commit_sequence": spend.commit_seq, "commit_hash": spend.entry_hash}
    output.mkdir(parents=True, exist_ok=True)
    for query in bundle["queries"]:
        for statistic in query["statistics"]:
            file = statistic.get("file")
            if file is None:
                continue
            data = _image_file(file.pop("encoded"), float(statistic["resolution"]))
            file["sha256"] = hashlib.sha256(data).hexdigest()
            atomic_write_bytes(output / file["name"], data)
    validate("DPRelease", bundle)
    path = output / BUNDLE_NAME
    atomic_write_json(path, bundle)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    loss = bundle["loss"]
    record = build_record(
        operation="dp-release",
        parameters={"spec_digest": spec.digest, "queries": [q.describe() for q in spec.queries]},
        inputs=[
            Artifact(spec.sources[name], f"{name}-rows", 0, "sha256", digest)
            for name, digest in sorted(stored["inputs"].items())
        ],
        outputs=[Artifact(str(output), "dp-release", len(bundle["queries"]), "sha256", digest)],
        counts={"queries": len(bundle["queries"])},
        privacy={
            "dp_release": {
                "dataset": spec.dataset,
                "accounting": spec.accounting,
                "loss": loss["value"],
                "loss_exact": loss["exact"],
                "epsilon_delta": loss.get("epsilon_delta"),
                "ledger_entry": {
                    "sequence": bundle["ledger"]["commit_sequence"],
                    "hash": bundle["ledger"]["commit_hash"],
                },
                "idempotency_key": key,
                "charged": charged,
                "bundle_digest": f"sha256:{digest}",
                "privacy_unit": bundle["privacy_unit"],
            }
        },
        airflow=airflow,
    )
    lineage = write_record(record, output / "lineage")
    return ReleaseResult(bundle, str(path), charged, lineage)
