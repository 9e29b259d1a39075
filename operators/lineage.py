"""OpenLineage for the operators: inputs, outputs and custom run facets built from a task's lineage record.

Each operator's ``get_openlineage_facets_on_complete`` (and ``..._on_failure``) delegates here. The lineage
record (schema ``TaskLineageRecord``) is the single source: a facet carries only what the record already
holds, so it never holds the secret, a key, an input identifier or a true value either.

The OpenLineage provider stays optional: nothing here imports it, or the OpenLineage client, at module level.
The facet classes are built on first use and reached as attributes of this module
(``operators.lineage.ImagingPrivacyDeidentificationRunFacet``), so they import and pickle by name.

Facets follow OpenLineage's custom facet convention: the key is ``<prefix>_<name>`` with the project prefix
``imagingPrivacy``, the class is ``<Prefix><Name>RunFacet``, and ``_schemaURL`` is the versioned URL of the
class's JSON schema, ``schemas/<Class>-<version>.json``. Each schema restates RunFacet's ``_producer`` and
``_schemaURL`` (so it validates offline) and, like every schema here, a ``schema`` field naming itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import BaseOperator, Context

#: The ``$id`` base of every schema in ``schemas/``.
SCHEMA_BASE = "https://airflow-imaging-privacy.invalid/schemas/"
#: The custom facet prefix (OpenLineage: "a distinct prefix named after the project defining them").
PREFIX = "imagingPrivacy"
DEIDENTIFICATION = f"{PREFIX}_deidentification"
PRIVACY_SPEND = f"{PREFIX}_privacySpend"
IMAGE_STORE = f"{PREFIX}_imageStore"
#: Facet key -> (class and schema name, schema version).
FACETS: dict[str, tuple[str, str]] = {
    DEIDENTIFICATION: ("ImagingPrivacyDeidentificationRunFacet", "1.0"),
    PRIVACY_SPEND: ("ImagingPrivacySpendRunFacet", "1.0"),
    IMAGE_STORE: ("ImagingPrivacyImageStoreRunFacet", "1.0"),
}
#: How keyed pseudonyms are derived (``privacy_core.keys.PseudonymKey.mac``); the facet names the method only.
PSEUDONYMISATION_METHOD = "hmac-sha256"
#: The noise each DP release accounting uses (``privacy_core.dp.mechanisms``).
RELEASE_MECHANISMS = {"pure-dp": "discrete-laplace", "zcdp": "discrete-gaussian"}


def schema_url(name: str, version: str) -> str:
    """The versioned URL of ``schemas/<name>-<version>.json`` (its ``$id``).

    >>> schema_url("ImagingPrivacySpendRunFacet", "1.0")
    'https://airflow-imaging-privacy.invalid/schemas/ImagingPrivacySpendRunFacet-1.0.json'
    """
    return f"{SCHEMA_BASE}{name}-{version}.json"


def dataset_id(uri: str) -> tuple[str, str]:
    """OpenLineage (namespace, name) of an artifact URI, after OpenLineage's dataset naming.

    A local path or ``file://`` URI is namespace ``file`` and the absolute path; an object store URL is
    ``<scheme>://<bucket>`` and the key.

    >>> dataset_id("file:///data/release")
    ('file', '/data/release')
    >>> dataset_id("s3://bucket/releases/zarr-1")
    ('s3://bucket', 'releases/zarr-1')
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file") or len(parsed.scheme) == 1:  # a path (a Windows drive letter too)
        path = unquote(parsed.path) if parsed.scheme == "file" else uri
        namespace = f"file://{parsed.netloc}" if parsed.scheme == "file" and parsed.netloc else "file"
        return namespace, os.path.abspath(path) if namespace == "file" else path
    return f"{parsed.scheme}://{parsed.netloc}", parsed.path.lstrip("/")


def read_lineage_record(path: str) -> dict[str, Any]:
    """Read and validate the lineage record at a local path or an fsspec URL."""
    if "://" not in path or path.startswith("file://"):
        from privacy_core.lineage.record import read_record

        return read_record(unquote(urlparse(path).path) if path.startswith("file://") else path)
    import json

    import fsspec

    from privacy_core.schemas import validate

    with fsspec.open(path, "r") as fh:
        record: dict[str, Any] = json.load(fh)
    validate("TaskLineageRecord", record)
    return record


def facet_payloads(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Our custom run facets' fields (without ``_producer``/``_schemaURL``), by facet key, from a record.

    Fields a facet does not have for this record are left out, as OpenLineage leaves out ``None``.
    """
    privacy = record["privacy"]
    counts = record["counts"]
    facets: dict[str, dict[str, Any]] = {}
    if "deidentification" in privacy:
        deid = privacy["deidentification"]
        rules = deid["burned_in_rules"]
        facets[DEIDENTIFICATION] = {
            "profile": deid["profile"],
            "options": list(deid["options"]),
            "methodCodes": list(deid["method_codes"]),
            "keyFingerprint": deid["key_fingerprint"],
            "pseudonymisationMethod": PSEUDONYMISATION_METHOD,
            "dateMode": deid["date_mode"],
            "privateAttributes": deid["private_attributes"],
            "burnedInRules": {
                "source": rules["source"],
                "rules": rules["rules"],
                "digest": rules["digest"],
                "unhandled": rules["unhandled"],
            },
            "processed": counts["processed"],
            "written": counts["written"],
            "duplicates": counts["duplicates"],
            "quarantined": counts["quarantined"],
            "pixelCleaned": counts["pixel_cleaned"],
            "quarantineReasons": dict(counts["reasons"]),
        }
    if "dp_release" in privacy:
        spend = privacy["dp_release"]
        pair = spend.get("epsilon_delta") or {}
        zcdp = spend["accounting"] == "zcdp"
        payload = {
            "mechanism": RELEASE_MECHANISMS[spend["accounting"]],
            "accounting": spend["accounting"],
            "loss": spend["loss"],
            "lossExact": spend["loss_exact"],
            "rho": spend["loss"] if zcdp else None,
            "epsilon": pair.get("epsilon") if zcdp else spend["loss"],
            "delta": pair.get("delta"),
            "dataset": spend["dataset"],
            "ledgerEntry": {"sequence": spend["ledger_entry"]["sequence"], "hash": spend["ledger_entry"]["hash"]},
            "charged": spend["charged"],
            "idempotencyKey": spend["idempotency_key"],
            "privacyUnit": dict(spend["privacy_unit"]),
        }
        facets[PRIVACY_SPEND] = {k: v for k, v in payload.items() if v is not None}
    pixels = privacy.get("pixels")
    if pixels and pixels.get("dp"):
        dp = pixels["dp"]
        facets[PRIVACY_SPEND] = {
            "mechanism": dp["mechanism"],
            "accounting": "pure-dp",
            "loss": dp["epsilon"],
            "epsilon": dp["epsilon"],
            "charged": False,
            "privacyUnit": {"unit": dp["unit"], "m": dp["m"], "block": dp["block"]},
        }
    secure_dp = privacy.get("secure", {}).get("dp") or {}
    if "ledger_entry" in secure_dp:  # the combine step: the round's total, charged to the ledger
        pair = secure_dp.get("epsilon_delta") or {}
        payload = {
            "mechanism": secure_dp["mechanism"],
            "accounting": secure_dp["accounting"],
            "loss": secure_dp["rho"],
            "lossExact": secure_dp["rho_exact"],
            "rho": secure_dp["rho"],
            "epsilon": pair.get("epsilon"),
            "delta": pair.get("delta"),
            "dataset": secure_dp["dataset"],
            "ledgerEntry": dict(secure_dp["ledger_entry"]),
            "charged": secure_dp.get("charged", True),
            "idempotencyKey": secure_dp.get("idempotency_key"),
        }
        facets[PRIVACY_SPEND] = {k: v for k, v in payload.items() if v is not None}
    if "storage" in record:
        storage = record["storage"]
        store = {
            "operation": record["operation"],
            "format": storage["format"],
            "compute": storage["compute"],
            "arrays": len(storage["arrays"]),
        }
        if pixels:
            store |= {"method": pixels["method"], "parameters": dict(pixels["parameters"])}
        if "left_out" in counts:
            store |= {"leftOut": counts["left_out"], "leftOutReasons": dict(counts.get("reasons", {}))}
        facets[IMAGE_STORE] = store
    return facets


@cache
def _facet_classes() -> dict[str, type[Any]]:
    """The attrs facet classes by class name, defined on first use (imports the OpenLineage client)."""
    from attrs import define, field
    from openlineage.client.facet_v2 import RunFacet

    def schema_const(key: str) -> str:
        name, version = FACETS[key]
        return f"{name}/{version}"

    @define
    class ImagingPrivacyDeidentificationRunFacet(RunFacet):
        """How a release was de-identified (PS3.15 profile, options, key fingerprint) and what it wrote."""

        profile: str
        options: list[str]
        methodCodes: list[str]
        keyFingerprint: str
        pseudonymisationMethod: str
        dateMode: str
        privateAttributes: str
        burnedInRules: dict[str, Any]
        processed: int
        written: int
        duplicates: int
        quarantined: int
        pixelCleaned: int
        quarantineReasons: dict[str, int]
        schema: str = field(default=schema_const(DEIDENTIFICATION), kw_only=True)

        @staticmethod
        def _get_schema() -> str:
            return schema_url(*FACETS[DEIDENTIFICATION])

    @define
    class ImagingPrivacySpendRunFacet(RunFacet):
        """The privacy loss a step spent, and for a ledger-charged release the ledger entry that records it."""

        mechanism: str
        accounting: str
        loss: float
        charged: bool
        lossExact: str | None = None
        epsilon: float | None = None
        rho: float | None = None
        delta: float | None = None
        dataset: str | None = None
        ledgerEntry: dict[str, Any] | None = None
        idempotencyKey: str | None = None
        privacyUnit: dict[str, Any] | None = None
        schema: str = field(default=schema_const(PRIVACY_SPEND), kw_only=True)

        @staticmethod
        def _get_schema() -> str:
            return schema_url(*FACETS[PRIVACY_SPEND])

    @define
    class ImagingPrivacyImageStoreRunFacet(RunFacet):
        """The image store a step wrote: format, compute, arrays and, for pixel privacy, the method."""

        operation: str
        format: str
        compute: str
        arrays: int
        method: str | None = None
        parameters: dict[str, Any] | None = None
        leftOut: int | None = None
        leftOutReasons: dict[str, int] | None = None
        schema: str = field(default=schema_const(IMAGE_STORE), kw_only=True)

        @staticmethod
        def _get_schema() -> str:
            return schema_url(*FACETS[IMAGE_STORE])

    classes: dict[str, type[Any]] = {}
    for cls in (ImagingPrivacyDeidentificationRunFacet, ImagingPrivacySpendRunFacet, ImagingPrivacyImageStoreRunFacet):
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
        classes[cls.__name__] = cls
    return classes


def __getattr__(name: str) -> type[Any]:
    """The facet classes as module attributes (built, and OpenLineage imported, on first access)."""
    if name in {class_name for class_name, _ in FACETS.values()}:
        return _facet_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run_facets(record: dict[str, Any]) -> dict[str, Any]:
    """Our custom run facet instances, by facet key, for a lineage record."""
    classes = _facet_classes()
    return {key: classes[FACETS[key][0]](**payload) for key, payload in facet_payloads(record).items()}


def datasets(uris: Iterable[str]) -> list[Any]:
    """OpenLineage Datasets for artifact URIs or paths, each once, in order."""
    from openlineage.client.event_v2 import Dataset

    seen: dict[tuple[str, str], Any] = {}
    for uri in uris:
        key = dataset_id(str(uri))
        seen.setdefault(key, Dataset(namespace=key[0], name=key[1]))
    return list(seen.values())


def from_record(path: str) -> OperatorLineage[Any, Any]:
    """Inputs, outputs and our run facets from the lineage record at ``path``."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    record = read_lineage_record(path)
    return OperatorLineage(
        inputs=datasets(a["uri"] for a in record["inputs"]),
        outputs=datasets(a["uri"] for a in record["outputs"]),
        run_facets=run_facets(record),
    )


def operator_lineage(
    record_path: str | None, inputs: Iterable[str | None] = (), outputs: Iterable[str | None] = ()
) -> OperatorLineage[Any, Any]:
    """The record's lineage when the task wrote one; otherwise the datasets the operator was given.

    A task that failed before its record was written still names what it read and meant to write, with no
    custom facets (the provider adds the error message facet).

    :param record_path: where this try's ``execute`` wrote its lineage record, or None.
    :param inputs: the operator's rendered input paths or URLs (None entries are skipped).
    :param outputs: its rendered output paths or URLs.
    """
    if record_path:
        return from_record(record_path)
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(inputs=datasets(u for u in inputs if u), outputs=datasets(u for u in outputs if u))


def set_outlet_extra(
    operator: BaseOperator,
    context: Context,
    extra: dict[str, Any],
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Put ``extra`` on every outlet's Asset event, with the lineage chain link of the task's record.

    The link (``SEQUENCE:HASH``) noted in Airflow's database anchors the releases folder's chain outside it:
    an audit given it detects links cut off the chain's end.
    """
    from privacy_core.lineage.chain import link_of

    record = extra.get("lineage_record") or extra.get("privacy_spend", {}).get("lineage_record")
    if record:
        link = link_of(str(record), dict(storage_options) if storage_options else None)
        if link is None:
            operator.log.warning("the lineage record %s is in no lineage chain; an audit will fail it", record)
        else:
            extra = {**extra, "lineage_chain": link.render()}
    for outlet in operator.outlets:
        context["outlet_events"][outlet].extra = extra
