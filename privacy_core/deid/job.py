"""One de-identification job as the CLI and the Airflow operator both run it: batch, summary, lineage record.

This is the single ``privacy_core`` call behind ``imaging-privacy deid`` and ``DicomDeidentifyOperator``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privacy_core.deid.batch import BatchResult, deidentify_tree, dump_summary
from privacy_core.deid.burned_in import load_rules
from privacy_core.deid.profile import Option, Profile
from privacy_core.keys import PseudonymKey
from privacy_core.lineage.record import AirflowRun, Artifact, build_record, write_record

#: Lineage records sit in the release, beside the data they describe, in this sub-folder.
LINEAGE_DIR = "lineage"


@dataclass(frozen=True)
class DeidJobResult:
    """The job's outcome: the safe summary, where the lineage record and the quarantine are."""

    summary: dict[str, Any]
    lineage_path: str
    quarantine_path: Path | None
    batch: BatchResult


def run_deidentification(
    input_path: str | Path,
    output_path: str | Path,
    key: PseudonymKey,
    *,
    options: Sequence[str] = (),
    quarantine_path: str | Path | None = None,
    report_path: str | Path | None = None,
    workers: int = 1,
    strict_values: bool = True,
    rules_path: str | Path | None = None,
    release_unhandled_burned_in: bool = False,
    airflow: AirflowRun | None = None,
    progress: Callable[[int], None] | None = None,
) -> DeidJobResult:
    """De-identify ``input_path`` into ``output_path`` and write the lineage record into the release.

    :param options: PS3.15 E.3 option names (see :class:`~privacy_core.deid.profile.Option`).
    :param report_path: also write the summary (schema ``DeidSummary``) here.
    :param release_unhandled_burned_in: release BurnedInAnnotation=YES files no rule covers (default: quarantine).
    :raises ConfigurationError: a bad path, option or rule file, before any file is touched.
    """
    profile = Profile.from_names(tuple(options), quarantine_unhandled_burned_in=not release_unhandled_burned_in)
    rules = load_rules(rules_path)
    batch = deidentify_tree(
        input_path,
        output_path,
        profile,
        key,
        quarantine_path=quarantine_path,
        workers=workers,
        strict_values=strict_values,
        rules_path=rules_path,
        progress=progress,
    )
    summary = batch.summary()
    if report_path:
        dump_summary(batch, report_path)
    input_lines = sorted(f"{i}\t{r.input_sha256}\n" for i, r in enumerate(batch.results) if r.input_sha256 is not None)
    record = build_record(
        operation="deidentify",
        parameters={
            "options": sorted(o.value for o in profile.options),
            "workers": workers,
            "strict_values": strict_values,
            "burned_in_rules": str(rules_path) if rules_path else "builtin:rsna-ctp",
            "release_unhandled_burned_in": release_unhandled_burned_in,
        },
        inputs=[
            Artifact(
                uri=Path(input_path).resolve().as_uri(),
                role="dicom",
                count=batch.inputs,
                digest_algorithm="hmac-sha256-tree",
                digest=key.mac(b"input-tree", "".join(input_lines).encode()).hex(),
            )
        ],
        outputs=[
            Artifact(
                uri=batch.output.as_uri(),
                role="deidentified-dicom",
                count=len(batch.written),
                digest_algorithm="sha256-tree",
                digest=batch.output_digest(),
            )
        ],
        counts={
            "processed": batch.inputs,
            "written": len(batch.written),
            "duplicates": batch.duplicates,
            "quarantined": len(batch.quarantined),
            "pixel_cleaned": batch.pixel_cleaned,
            "reasons": batch.reasons(),
        },
        privacy={
            "deidentification": {
                "profile": profile.describe(),
                "options": sorted(o.value for o in profile.options),
                "method_codes": [c for c, _ in profile.method_codes(pixels_cleaned=False)],
                "key_fingerprint": key.fingerprint,
                "date_mode": profile.date_mode,
                "private_attributes": "safe-kept" if Option.RETAIN_SAFE_PRIVATE in profile.options else "removed",
                "burned_in_rules": {
                    "source": str(rules_path) if rules_path else "builtin:rsna-ctp",
                    "rules": len(rules),
                    "digest": hashlib.sha256(repr(rules).encode()).hexdigest(),
                    "unhandled": "release" if release_unhandled_burned_in else "quarantine",
                },
            }
        },
        airflow=airflow,
        run_id=batch.run_id,
    )
    lineage_path = write_record(record, batch.output / LINEAGE_DIR)
    return DeidJobResult(summary, lineage_path, batch.quarantine, batch)


def completed_summary(output_path: str | Path, airflow: AirflowRun) -> dict[str, Any] | None:
    """The summary of an earlier try of the same task instance that completed this release, else None.

    Lets an Airflow retry succeed without redoing (or refusing) a release that already exists.
    """
    from privacy_core.lineage.record import read_record

    folder = Path(output_path) / LINEAGE_DIR
    if not folder.is_dir():
        return None
    for path in sorted(folder.glob("*.json")):
        record = read_record(path)
        earlier = record["run"]["airflow"] or {}
        same = all(earlier.get(k) == getattr(airflow, k) for k in ("dag_id", "run_id", "task_id", "map_index"))
        if same and record["operation"] == "deidentify":
            counts = record["counts"]
            deid = record["privacy"]["deidentification"]
            return {
                "run_id": record["run"]["run_id"],
                "processed": counts["processed"],
                "written": counts["written"],
                "duplicates": counts["duplicates"],
                "quarantined": counts["quarantined"],
                "reasons": counts["reasons"],
                "pixel_cleaned": counts["pixel_cleaned"],
                "output_digest": record["outputs"][0]["digest"]["value"],
                "profile": deid["profile"],
                "key_fingerprint": deid["key_fingerprint"],
                "lineage_record": str(path),
                "output_path": str(output_path),
                "resumed": True,
            }
    return None
