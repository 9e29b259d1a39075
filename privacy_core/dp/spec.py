"""The release spec: which dataset, which queries, their bounds and their share of the release's budget.

A spec is YAML (or JSON) checked twice before anything runs: here, with messages that say what to change
(missing bounds, a loss of zero, a field that is not a DICOM attribute), then against
``schemas/ReleaseSpec-1.0.json``, which documents the format. Nothing is charged for a refused spec.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from privacy_core.dp.accounting import Accounting
from privacy_core.dp.mechanisms import as_fraction
from privacy_core.errors import ConfigurationError, SchemaValidationError
from privacy_core.schemas import validate

SCHEMA = "ReleaseSpec/1.0"
#: Query kinds, the source each reads, and whether it needs clipping bounds.
KINDS: dict[str, tuple[str, bool]] = {
    "count": ("dicom", False),
    "sum": ("dicom", True),
    "mean": ("dicom", True),
    "histogram": ("dicom", False),
    "voxel_sum": ("zarr", True),
    "voxel_mean": ("zarr", True),
    "intensity_histogram": ("zarr", False),
}
LEVELS = ("instance", "series", "study")
#: DICOM value representations a numeric query can read (AS, an age string, is read as years).
NUMERIC_VRS = frozenset({"DS", "IS", "US", "UL", "SS", "SL", "FL", "FD", "UV", "SV", "AS"})
#: Value representations a partition or histogram-of-codes field can be.
CODE_VRS = frozenset({"CS", "LO", "SH", "AS"})


@dataclass(frozen=True)
class Query:
    """One statistic: its kind, what it reads, its bounds and its share of the release's loss."""

    name: str
    kind: str
    level: str
    share: Fraction
    field: str | None = None
    bounds: tuple[float, float] | None = None
    resolution: Fraction = Fraction(1)
    bins: tuple[float, ...] = ()
    partition_by: str | None = None
    partitions: tuple[str, ...] = ()
    shape: tuple[int, ...] = ()

    @property
    def source(self) -> str:
        """``dicom`` (the de-identified headers) or ``zarr`` (the series arrays)."""
        return KINDS[self.kind][0]

    def describe(self) -> dict[str, Any]:
        """The query as the release bundle records it."""
        described: dict[str, Any] = {"name": self.name, "kind": self.kind, "source": self.source}
        if self.source == "dicom":
            described["level"] = self.level
        for key, value in (
            ("field", self.field),
            ("bounds", list(self.bounds) if self.bounds else None),
            ("bins", list(self.bins) if self.bins else None),
            ("partition_by", self.partition_by),
            ("partitions", list(self.partitions) if self.partitions else None),
            ("shape", list(self.shape) if self.shape else None),
        ):
            if value is not None:
                described[key] = value
        if KINDS[self.kind][1] or self.kind == "intensity_histogram":
            described["resolution"] = float(self.resolution)
        return described


@dataclass(frozen=True)
class ReleaseSpec:
    """A whole release: dataset, accounting, total loss, the privacy unit's bound, sources and queries."""

    dataset: str
    accounting: Accounting
    loss: Fraction
    max_records_per_patient: int
    queries: tuple[Query, ...]
    sources: dict[str, str]
    digest: str
    ledger: str | None = None
    delta: float | None = None

    def loss_of(self, query: Query) -> Fraction:
        """The query's exact part of the release's loss: its share over the sum of shares."""
        return self.loss * query.share / sum((q.share for q in self.queries), Fraction(0))


def load_spec(path: str | Path) -> ReleaseSpec:
    """Read and check a spec file.

    :raises ConfigurationError: naming the setting and what to change.
    """
    import yaml

    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(
            "spec", f"{file} does not exist", "give the path of a release spec YAML file"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(
            "spec", f"{file} is not valid YAML ({exc.__class__.__name__})", "fix its syntax"
        ) from None
    spec = parse_spec(raw)
    base = file.resolve().parent
    resolved = {k: v if "://" in v else str((base / v).resolve()) for k, v in spec.sources.items()}
    return ReleaseSpec(**{**spec.__dict__, "sources": resolved})


def parse_spec(raw: Any) -> ReleaseSpec:
    """Check a spec given as parsed YAML/JSON and build it.

    >>> spec = parse_spec({"dataset": "demo", "accounting": "pure-dp", "budget": {"epsilon": 1},
    ...     "privacy_unit": {"max_records_per_patient": 2}, "sources": {"dicom": "/data"},
    ...     "queries": [{"name": "n", "kind": "count", "level": "series"}]})
    >>> spec.loss, spec.queries[0].level
    (Fraction(1, 1), 'series')
    """
    if not isinstance(raw, dict):
        raise ConfigurationError("spec", "is not a mapping", "write the spec as YAML keys: dataset, budget, queries")
    dataset = raw.get("dataset")
    if not isinstance(dataset, str) or not dataset.strip():
        raise ConfigurationError("dataset", "is missing", "name the dataset whose budget this release spends")
    accounting = raw.get("accounting", "pure-dp")
    if accounting not in ("pure-dp", "zcdp"):
        raise ConfigurationError("accounting", f"{accounting!r} is unknown", "use pure-dp (epsilon) or zcdp (rho)")
    budget = raw.get("budget")
    unit_name = "epsilon" if accounting == "pure-dp" else "rho"
    if not isinstance(budget, dict) or unit_name not in budget:
        raise ConfigurationError(
            "budget", f"has no {unit_name}", f"give budget: {{{unit_name}: <the loss this release may spend>}}"
        )
    loss = as_fraction(budget[unit_name], f"budget.{unit_name}")
    unit = raw.get("privacy_unit") or {}
    bound = unit.get("max_records_per_patient") if isinstance(unit, dict) else None
    if not isinstance(bound, int) or isinstance(bound, bool) or bound < 1:
        raise ConfigurationError(
            "privacy_unit.max_records_per_patient",
            f"is {bound!r}",
            "cap how many records (images, series or studies) one patient may contribute, e.g. 4",
        )
    sources = raw.get("sources") or {}
    queries_raw = raw.get("queries")
    if not isinstance(queries_raw, list) or not queries_raw:
        raise ConfigurationError("queries", "is empty", "list at least one query")
    queries = tuple(_query(item, index) for index, item in enumerate(queries_raw))
    names = [q.name for q in queries]
    if len(set(names)) != len(names):
        raise ConfigurationError("queries", "two queries share a name", "give every query its own name")
    for query in queries:
        if not isinstance(sources, dict) or not sources.get(query.source):
            raise ConfigurationError(
                "sources", f"has no {query.source!r} entry for query {query.name!r}", f"add sources.{query.source}"
            )
    delta = budget.get("delta")
    if delta is not None and not (isinstance(delta, int | float) and 0 < delta < 1):
        raise ConfigurationError("budget.delta", f"is {delta!r}", "give a delta between 0 and 1, e.g. 1e-6")
    record = {"schema": SCHEMA, **raw}
    try:
        validate("ReleaseSpec", record)
    except SchemaValidationError as exc:
        raise ConfigurationError("spec", str(exc), "make the spec match schemas/ReleaseSpec-1.0.json") from None
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return ReleaseSpec(
        dataset=dataset.strip(),
        accounting=accounting,
        loss=loss,
        max_records_per_patient=bound,
        queries=queries,
        sources={str(k): str(v) for k, v in sources.items()},
        digest="sha256:" + hashlib.sha256(canonical.encode()).hexdigest(),
        ledger=raw.get("ledger"),
        delta=float(delta) if delta is not None else None,
    )


def _query(item: Any, index: int) -> Query:
    """One query, checked; settings are named ``queries[i].<key>`` in messages."""
    where = f"queries[{index}]"
    if not isinstance(item, dict):
        raise ConfigurationError(where, "is not a mapping", "give each query name, kind and its settings")
    name = item.get("name")
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise ConfigurationError(f"{where}.name", f"is {name!r}", "name each query with letters, digits, - and _")
    kind = item.get("kind")
    if kind not in KINDS:
        raise ConfigurationError(f"{where}.kind", f"{kind!r} is unknown", f"choose from {', '.join(KINDS)}")
    source, needs_bounds = KINDS[kind]
    level = item.get("level", "series")
    if level not in LEVELS or (source == "zarr" and level != "series"):
        allowed = LEVELS if source == "dicom" else ("series",)
        raise ConfigurationError(f"{where}.level", f"{level!r} does not fit {kind}", f"use one of {allowed}")
    share = as_fraction(item.get("share", 1), f"{where}.share")
    field = item.get("field")
    if kind in ("sum", "mean", "histogram"):
        _check_field(field, f"{where}.field", NUMERIC_VRS)
    elif field is not None:
        raise ConfigurationError(f"{where}.field", f"{kind} reads no field", "remove field")
    bounds = _bounds(item.get("bounds"), f"{where}.bounds", needs_bounds, kind)
    resolution = as_fraction(item.get("resolution", _default_resolution(kind)), f"{where}.resolution")
    bins: tuple[float, ...] = ()
    if kind in ("histogram", "intensity_histogram"):
        bins = _bins(item.get("bins"), f"{where}.bins")
    partition_by, partitions = item.get("partition_by"), item.get("partitions")
    if partition_by is not None:
        if source != "dicom":
            raise ConfigurationError(f"{where}.partition_by", f"{kind} cannot be partitioned", "remove partition_by")
        _check_field(partition_by, f"{where}.partition_by", CODE_VRS)
        if not isinstance(partitions, list) or not partitions or not all(isinstance(p, str) for p in partitions):
            raise ConfigurationError(
                f"{where}.partitions",
                "is missing",
                "list the partition values to release (e.g. [CT, MR]); the list must be public, never read "
                "from the data, or which values exist would leak",
            )
    elif partitions is not None:
        raise ConfigurationError(f"{where}.partitions", "without partition_by", "name the field to partition by")
    shape = item.get("shape")
    if kind in ("voxel_sum", "voxel_mean") and (
        not isinstance(shape, list) or not shape or not all(isinstance(n, int) and n > 0 for n in shape)
    ):
        raise ConfigurationError(
            f"{where}.shape", f"is {shape!r}", "give the array shape to aggregate, e.g. [64, 512, 512]"
        )
    return Query(
        name=name,
        kind=kind,
        level=level,
        share=share,
        field=field,
        bounds=bounds,
        resolution=resolution,
        bins=bins,
        partition_by=partition_by,
        partitions=tuple(partitions or ()),
        shape=tuple(shape or ()),
    )


def _default_resolution(kind: str) -> Fraction:
    """Fixed-point step: whole voxel values for images, 1/100 for header values, 1/10000 for fractions."""
    return {"voxel_sum": Fraction(1), "voxel_mean": Fraction(1), "intensity_histogram": Fraction(1, 10000)}.get(
        kind, Fraction(1, 100)
    )


def _check_field(field: Any, setting: str, vrs: frozenset[str]) -> None:
    """``field`` must be a DICOM keyword whose VR the query can read."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    if not isinstance(field, str) or not field:
        raise ConfigurationError(setting, "is missing", "name a DICOM attribute keyword, e.g. SliceThickness")
    if tag_for_keyword(field) is None:
        raise ConfigurationError(
            setting, f"{field!r} is not a DICOM attribute keyword", "use a keyword such as SliceThickness or Modality"
        )
    vr = dictionary_VR(field)
    if vr not in vrs:
        raise ConfigurationError(setting, f"{field} has VR {vr}", f"choose an attribute with VR in {sorted(vrs)}")


def _bounds(value: Any, setting: str, required: bool, kind: str) -> tuple[float, float] | None:
    """Clipping bounds ``[low, high]`` with low < high; required for sums, means and voxel queries."""
    if value is None:
        if required:
            raise ConfigurationError(
                setting,
                f"is missing, and {kind} needs clipping bounds",
                "give bounds: [low, high] from domain knowledge, never from the data (e.g. [0, 10] mm)",
            )
        return None
    if not required:
        raise ConfigurationError(setting, f"{kind} takes no bounds", "remove bounds (histograms take bins)")
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        or not value[0] < value[1]
    ):
        raise ConfigurationError(setting, f"is {value!r}", "give two numbers [low, high] with low < high")
    return float(value[0]), float(value[1])


def _bins(value: Any, setting: str) -> tuple[float, ...]:
    """Histogram edges: at least two, strictly increasing."""
    if (
        not isinstance(value, list)
        or len(value) < 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        or any(b <= a for a, b in itertools.pairwise(value))
    ):
        raise ConfigurationError(setting, f"is {value!r}", "give at least two strictly increasing bin edges")
    return tuple(float(v) for v in value)
