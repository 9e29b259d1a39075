"""The per-task lineage record (schema ``TaskLineageRecord``): what ran, on what, producing what, at what cost.

Designed to grow: later capabilities add entries under ``privacy`` (one key per capability) and new
artifact roles, without changing what is already there. Records never hold secrets or input identifiers:
inputs are described by their root and a keyed digest, parameters pass through :func:`scrub_parameters`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import platform
import uuid
from dataclasses import asdict, dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from privacy_core import __version__
from privacy_core.schemas import validate
from privacy_core.storage import atomic_write_bytes

SCHEMA = "TaskLineageRecord/1.5"
#: Distributions whose versions an auditor needs to reproduce a run.
TRACKED_DISTRIBUTIONS = (
    "pydicom",
    "numpy",
    "pylibjpeg",
    "pylibjpeg-libjpeg",
    "pylibjpeg-openjpeg",
    "pylibjpeg-rle",
    "jsonschema",
    "apache-airflow",
)
#: Packages whose source files :func:`source_digest` covers: the library and the Airflow layer.
SOURCE_PACKAGES = ("privacy_core", "operators")
#: Parameter names whose values are never recorded.
SECRET_WORDS = ("secret", "password", "token", "key", "credential")


@dataclass(frozen=True)
class AirflowRun:
    """Airflow identifiers of the task instance that produced a record."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int


@dataclass(frozen=True)
class Artifact:
    """An input or output: where, what role, how many items, and a content digest."""

    uri: str
    role: str
    count: int
    digest_algorithm: str
    digest: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "role": self.role,
            "count": self.count,
            "digest": {"algorithm": self.digest_algorithm, "value": self.digest},
        }


def software_versions() -> dict[str, str]:
    """Installed versions of the tracked distributions (absent ones are left out)."""
    versions = {}
    for name in TRACKED_DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@cache
def source_digest(packages: tuple[str, ...] = SOURCE_PACKAGES) -> str:
    """``sha256:`` over the sorted relative paths and bytes of every ``.py`` file of ``packages`` as installed.

    The version string does not change between commits; this does, so an auditor can tell exactly which
    code wrote a record (compare with the digest of a checkout). Packages that are not installed are skipped.
    """
    from importlib.util import find_spec

    digest = hashlib.sha256()
    for package in packages:
        spec = find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(next(iter(spec.submodule_search_locations)))
        for path in sorted(root.rglob("*.py")):
            relative = f"{package}/{path.relative_to(root).as_posix()}"
            digest.update(f"{relative}\0{path.stat().st_size}\0".encode())
            digest.update(path.read_bytes())
    return f"sha256:{digest.hexdigest()}"


def scrub_parameters(params: dict[str, Any]) -> dict[str, Any]:
    """Drop any parameter whose name suggests a secret; the record keeps only the rest."""
    return {k: v for k, v in params.items() if not any(word in k.lower() for word in SECRET_WORDS)}


def build_record(
    *,
    operation: str,
    parameters: dict[str, Any],
    inputs: list[Artifact],
    outputs: list[Artifact],
    counts: dict[str, Any],
    privacy: dict[str, Any],
    airflow: AirflowRun | None = None,
    run_id: str | None = None,
    storage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble and validate a lineage record.

    :raises SchemaValidationError: when a field does not fit the schema (a bug, not bad input).
    """
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "record_id": str(uuid.uuid4()),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "operation": operation,
        "producer": {
            "name": "airflow-imaging-privacy",
            "version": __version__,
            "python": platform.python_version(),
            "dependencies": software_versions(),
            "source_digest": source_digest(),
        },
        "run": {
            "kind": "airflow" if airflow else "cli",
            "run_id": run_id,
            "airflow": asdict(airflow) if airflow else None,
        },
        "parameters": scrub_parameters(parameters),
        "inputs": [a.as_dict() for a in inputs],
        "outputs": [a.as_dict() for a in outputs],
        "counts": counts,
        "privacy": privacy,
    }
    if storage is not None:
        record["storage"] = storage
    validate("TaskLineageRecord", record)
    return record


def write_record(
    record: dict[str, Any],
    folder: str | Path,
    storage_options: dict[str, Any] | None = None,
    *,
    chain_root: str | None = None,
) -> str:
    """Validate and write ``record`` as ``<folder>/<record_id>.json``, then chain it; returns where.

    A local folder gets an atomic rename; an fsspec URL (an object store) gets a single PUT, which is
    atomic there. The record is then appended to the lineage chain of ``chain_root``, by default the
    releases folder that holds ``folder``'s output folder (:mod:`privacy_core.lineage.chain`).
    """
    from privacy_core.lineage.chain import append_record, chain_root_of, record_bytes

    validate("TaskLineageRecord", record)
    name = f"{record['record_id']}.json"
    data = record_bytes(record)
    if "://" not in str(folder):
        path = Path(folder) / name
        atomic_write_bytes(path, data)
        where = str(path)
    else:
        import fsspec

        where = f"{str(folder).rstrip('/')}/{name}"
        with fsspec.open(where, "wb", **(storage_options or {})) as fh:
            fh.write(data)
    append_record(record, where, data, chain_root or chain_root_of(folder), storage_options)
    return where


def read_record(path: str | Path) -> dict[str, Any]:
    """Read and validate a lineage record."""
    import json

    record: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    validate("TaskLineageRecord", record)
    return record
