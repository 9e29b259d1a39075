"""Lineage: the per-task record every operator and CLI command writes, validated against ``schemas/``."""

from privacy_core.lineage.record import AirflowRun, Artifact, build_record, write_record

__all__ = ["AirflowRun", "Artifact", "build_record", "write_record"]
