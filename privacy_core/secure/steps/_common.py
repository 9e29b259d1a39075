"""What every step shares: reading the round spec, checking envelope headers, size limits, lineage records.

Kept apart so each step module holds only its own step; nothing here is public API.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from privacy_core.errors import ConfigurationError, SecureProtocolError
from privacy_core.secure.envelopes import (
    Envelope,
    EnvelopeRejected,
    RoundSpec,
    open_envelope,
    parse_time,
    sha256_digest,
)
from privacy_core.secure.exchange import SPEC, Exchange

if TYPE_CHECKING:
    from privacy_core.lineage.record import AirflowRun, Artifact

#: Envelope overhead beyond its ciphertexts (header, layout, base64 growth is counted separately).
_ENVELOPE_SLACK = 1 << 20


def _now(now: dt.datetime | str | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    return parse_time(now, "now") if isinstance(now, str) else parse_time(now.isoformat(), "now")


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


def _ref(kind: str, sender: str, digest: str) -> dict[str, str]:
    return {"kind": kind, "sender": sender, "digest": digest}


def _artifact(uri: str, role: str, digest: str, count: int = 1) -> Artifact:
    from privacy_core.lineage.record import Artifact

    return Artifact(uri, role, count, "sha256", _hex(digest))


def _lineage(
    folder: str,
    storage_options: dict[str, Any] | None,
    *,
    operation: str,
    parameters: dict[str, Any],
    inputs: list[Artifact],
    outputs: list[Artifact],
    counts: dict[str, Any],
    secure: dict[str, Any],
    run_id: str | None,
    airflow: AirflowRun | None,
) -> str:
    from privacy_core.lineage.record import build_record, write_record

    record = build_record(
        operation=operation,
        parameters=parameters,
        inputs=inputs,
        outputs=outputs,
        counts=counts,
        privacy={"secure": secure},
        airflow=airflow,
        run_id=run_id,
    )
    return write_record(record, folder, storage_options)


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 from the first byte on (never world-readable, not even briefly)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.link(tmp, path)  # refuses to replace an existing share
    finally:
        tmp.unlink(missing_ok=True)


def _read_local_json(path: Path, setting: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigurationError(setting, f"{path} does not exist", f"give the path of the {setting} file") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ConfigurationError(setting, f"{path} is not JSON", f"give the {setting} file as written") from None
    if not isinstance(data, dict):
        raise ConfigurationError(setting, f"{path} is not a JSON object", f"give the {setting} file as written")
    return data


def _load_spec(ex: Exchange, round_id: str, step: str) -> tuple[RoundSpec, str]:
    """The round's spec, checked, and the SHA-256 of its file."""
    rel = ex.rel(round_id, SPEC)
    try:
        data = ex.get(rel, max_bytes=16 << 20)
    except FileNotFoundError:
        raise SecureProtocolError(
            step, round_id, f"no round spec at {ex.location(rel)}", "open the round first (open_round)"
        ) from None
    try:
        spec = RoundSpec.from_envelope(open_envelope(data, "round"))
    except EnvelopeRejected as exc:
        raise SecureProtocolError(
            step, round_id, f"the round spec is {exc.reason}: {exc.detail}", "ask the coordinator to open a new round"
        ) from None
    if spec.round_id != round_id:
        raise SecureProtocolError(
            step, round_id, f"the spec at {ex.location(rel)} is for round {spec.round_id!r}", "open a new round"
        )
    return spec, sha256_digest(data)


def _check_header(envelope: Envelope, spec: RoundSpec) -> tuple[str, str] | None:
    """The rejection (reason, detail) of an envelope that answers another round, spec or key, else None."""
    if envelope.round_id != spec.round_id:
        return "wrong-round", f"for round {envelope.round_id!r}, not {spec.round_id!r}"
    if envelope.spec_digest != spec.spec_digest:
        return "wrong-spec", f"for spec {envelope.spec_digest[:19]}…, not {spec.spec_digest[:19]}…"
    if envelope.key_fingerprint != spec.key_fingerprint:
        return "wrong-key", f"under key {envelope.key_fingerprint[:19]}…, not {spec.key_fingerprint[:19]}…"
    return None


def _max_envelope_bytes(spec: RoundSpec) -> int:
    from privacy_core.secure.paillier import ciphertext_bytes

    count = spec.layout.plaintexts_for(spec.length)
    return 2 * count * ciphertext_bytes(spec.public_key) + _ENVELOPE_SLACK


@contextlib.contextmanager
def local_workers(workers: int | None) -> Iterator[Any | None]:
    """A Dask client on an embedded cluster of ``workers`` processes on this machine; None (in-process) for
    ``workers`` None or 1.

    Only ever embedded, never an existing scheduler: a site's values and a holder's secret exponent go to the
    workers, so the workers must be this party's own processes on this machine.

    :raises ConfigurationError: ``workers`` is below 1.
    """
    if workers is not None and workers < 1:
        raise ConfigurationError("workers", f"is {workers}", "give at least 1, or leave it unset to work in-process")
    if not workers or workers == 1:
        yield None
        return
    from privacy_core.imaging.compute import DaskConfig, dask_client

    with dask_client(DaskConfig(workers=workers)) as client:
        yield client
