"""One DICOM-to-Zarr job as the CLI and the Airflow operator both run it: convert, digest, lineage record."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privacy_core.imaging.series import SeriesProblem
from privacy_core.imaging.zarr_store import SeriesArrayInfo, convert_tree, open_series
from privacy_core.lineage.digest import array_digest
from privacy_core.lineage.record import AirflowRun, Artifact, build_record, write_record

#: Lineage records of a store sit beside its arrays.
LINEAGE_DIR = "lineage"
STORE_FORMAT = "zarr-v3/ome-ngff-0.5"


@dataclass(frozen=True)
class ZarrJobResult:
    """The job's outcome: a summary safe for logs and XCom, and where the lineage record is."""

    summary: dict[str, Any]
    lineage_path: str
    arrays: list[SeriesArrayInfo]
    problems: list[SeriesProblem]


def store_digest(urls: list[str], storage_options: dict[str, Any] | None = None) -> str:
    """SHA-256 over the sorted (series UID, chunk-wise array digest) lines: the store's content digest."""
    lines = sorted(
        f"{url.rstrip('/').rsplit('/', 1)[-1]}\t{array_digest(open_series(url, storage_options=storage_options))}\n"
        for url in urls
    )
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _tree_digest(root: Path) -> tuple[int, str]:
    """(files, SHA-256 over sorted ``path<TAB>sha256`` lines) of a de-identified tree, lineage excluded."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and LINEAGE_DIR not in p.relative_to(root).parts)
    lines = [f"{p.relative_to(root).as_posix()}\t{hashlib.sha256(p.read_bytes()).hexdigest()}\n" for p in files]
    return len(files), hashlib.sha256("".join(lines).encode()).hexdigest()


def run_to_zarr(
    input_path: str | Path,
    store_url: str,
    *,
    rescale: bool = False,
    chunk_mb: float = 32.0,
    storage_options: dict[str, Any] | None = None,
    airflow: AirflowRun | None = None,
) -> ZarrJobResult:
    """Convert every series under ``input_path`` into ``store_url`` and record it.

    :param input_path: de-identified DICOM (a release folder; its ``lineage/`` is skipped).
    :param store_url: a local folder or an fsspec URL.
    :raises ConfigurationError: bad paths or settings, before anything is written.
    """
    root = Path(input_path)
    arrays, problems = convert_tree(
        root, store_url, rescale=rescale, chunk_mb=chunk_mb, storage_options=storage_options, exclude=(LINEAGE_DIR,)
    )
    reasons = dict(sorted(Counter(p.category for p in problems).items()))
    files, input_digest = _tree_digest(root)
    record = build_record(
        operation="to-zarr",
        parameters={"rescale": rescale, "chunk_mb": chunk_mb},
        inputs=[Artifact(root.resolve().as_uri(), "deidentified-dicom", files, "sha256-tree", input_digest)],
        outputs=[
            Artifact(
                store_url,
                "zarr-store",
                len(arrays),
                "sha256-chunks",
                store_digest([a.url for a in arrays], storage_options),
            )
        ],
        counts={"series": len(arrays), "left_out": len(problems), "reasons": reasons},
        privacy={},
        airflow=airflow,
        storage={"format": STORE_FORMAT, "compute": "local", "arrays": [a.lineage_entry() for a in arrays]},
    )
    where = write_record(record, f"{store_url.rstrip('/')}/{LINEAGE_DIR}", storage_options)
    summary = {
        "series": len(arrays),
        "left_out": len(problems),
        "reasons": reasons,
        "store": store_url,
        "lineage_record": where,
    }
    return ZarrJobResult(summary, where, arrays, problems)
