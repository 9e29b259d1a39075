"""Step 5, each key holder: re-verify the aggregate, journal it, publish a partial decryption of it.

The journal beside the share is what stops a holder from decrypting two different sums of one round.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from privacy_core.errors import ConfigurationError, SecureProtocolError
from privacy_core.secure.envelopes import (
    COORDINATOR,
    Envelope,
    EnvelopeRejected,
    RoundSpec,
    format_time,
    holder_sender,
    open_envelope,
    seal,
    sha256_digest,
)
from privacy_core.secure.exchange import AGGREGATE, SHARES, SPEC, Exchange
from privacy_core.secure.steps._common import (
    _artifact,
    _check_header,
    _lineage,
    _load_spec,
    _max_envelope_bytes,
    _read_local_json,
    _ref,
    local_workers,
)
from privacy_core.secure.steps.aggregation import _load_aggregate, _verify_aggregate

if TYPE_CHECKING:
    from privacy_core.lineage.record import AirflowRun
    from privacy_core.secure.keys import KeyShare

__all__ = ["decrypt_share"]


def _load_share(path: Path) -> KeyShare:
    """The holder's key share, refusing a file others can read (as ssh does with private keys)."""
    from privacy_core.secure.keys import KeyShare

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigurationError("share", f"{path} does not exist", "give the path of this holder's share") from None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigurationError(
            "share", f"{path} is readable by others (mode {stat.S_IMODE(mode):o})", f"chmod 600 {path}"
        )
    return KeyShare.from_json(_read_local_json(path, "share"))


def _journal_check(journal: Path, spec: RoundSpec, aggregate_digest: str) -> None:
    """Refuse a second, different aggregate of one round spec; record this one before the share is published.

    Keyed by the spec digest: uploads are bound to their spec, so only aggregates of the same spec can
    overlap, and equal round ids of unrelated exchanges do not collide.
    """
    entries: dict[str, Any] = _read_local_json(journal, "journal") if journal.exists() else {}
    seen = entries.get(spec.spec_digest)
    if isinstance(seen, dict) and seen.get("aggregate_digest") != aggregate_digest:
        raise SecureProtocolError(
            "decrypt-share",
            spec.round_id,
            f"this holder already decrypted another aggregate of this round ({str(seen.get('aggregate_digest'))[:19]}"
            "…); two sums of one round would give away the uploads they differ by",
            "nothing was decrypted; open a new round instead",
        )
    if seen is None:
        entries[spec.spec_digest] = {
            "round_id": spec.round_id,
            "aggregate_digest": aggregate_digest,
            "decrypted_at": format_time(dt.datetime.now(dt.UTC)),
        }
        from privacy_core.storage import atomic_write_json

        atomic_write_json(journal, entries)
        os.chmod(journal, 0o600)


def decrypt_share(
    exchange: str,
    round_id: str,
    share: str | Path,
    *,
    journal: str | Path | None = None,
    storage_options: dict[str, Any] | None = None,
    run_id: str | None = None,
    airflow: AirflowRun | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Key holder: verify the round's aggregate, then publish this holder's partial decryption of it.

    :param share: this holder's key share file (mode 0600; refused if others can read it).
    :param journal: the holder's record of the aggregates it decrypted (default: ``<share>.journal.json``);
        a second, different aggregate of the same round is refused.
    :param workers: decrypt over an embedded Dask cluster of this many processes on this holder's machine
        (the secret exponent goes to them, never to an existing scheduler); None decrypts in this process.
    :raises SecureProtocolError: the share is not for the round's key, or the aggregate does not verify.
    """
    from privacy_core.secure.keys import verify_key_share
    from privacy_core.secure.threshold import partial_decrypt

    ex = Exchange(exchange, storage_options)
    share_path = Path(share)
    key_share = _load_share(share_path)
    spec, spec_digest = _load_spec(ex, round_id, "decrypt-share")
    if key_share.key_fingerprint != spec.key_fingerprint or not verify_key_share(spec.public_key, key_share):
        raise SecureProtocolError(
            "decrypt-share",
            round_id,
            f"this share is for key {key_share.key_fingerprint}, the round uses {spec.key_fingerprint}",
            "nothing was decrypted; use the share dealt for the round's key",
        )
    holder = int(key_share.holder)
    sender = holder_sender(holder)
    envelope, aggregate_digest = _load_aggregate(ex, spec, "decrypt-share")
    rel = ex.rel(round_id, SHARES, f"{sender}.json")
    if ex.exists(rel):
        existing = _open_share(ex, rel, spec)
        if existing is None or existing.payload["aggregate_digest"] != aggregate_digest:
            raise SecureProtocolError(
                "decrypt-share", round_id, f"{ex.location(rel)} exists for another aggregate", "check the exchange"
            )
        return _share_summary(ex, spec, spec_digest, rel, holder, aggregate_digest, True, run_id, airflow)
    ciphertexts = _verify_aggregate(ex, spec, envelope, "decrypt-share")
    _journal_check(
        Path(journal) if journal else share_path.with_name(share_path.name + ".journal.json"), spec, aggregate_digest
    )
    with local_workers(workers) as client:
        partial = partial_decrypt(key_share, spec.public_key, ciphertexts, client=client)
    del key_share
    payload = {"holder": holder, "aggregate_digest": aggregate_digest, "share": partial.to_json()}
    out = seal(
        "decryption-share",
        round_id=round_id,
        spec_digest=spec.spec_digest,
        key_fingerprint=spec.key_fingerprint,
        sender=sender,
        payload=payload,
    )
    with contextlib.suppress(FileExistsError):  # a concurrent retry of this holder wrote the same share
        ex.put(rel, out.to_bytes(), exclusive=True)
    return _share_summary(ex, spec, spec_digest, rel, holder, aggregate_digest, False, run_id, airflow)


def _open_share(ex: Exchange, rel: str, spec: RoundSpec) -> Envelope | None:
    try:
        envelope = open_envelope(ex.get(rel, max_bytes=_max_envelope_bytes(spec) * 4), "decryption-share")
    except (EnvelopeRejected, ValueError, FileNotFoundError):
        return None
    return envelope if _check_header(envelope, spec) is None else None


def _share_summary(
    ex: Exchange,
    spec: RoundSpec,
    spec_digest: str,
    rel: str,
    holder: int,
    aggregate_digest: str,
    already: bool,
    run_id: str | None,
    airflow: AirflowRun | None,
) -> dict[str, Any]:
    digest = sha256_digest(ex.get(rel))
    sender = holder_sender(holder)
    record = _lineage(
        ex.lineage_folder(spec.round_id),
        ex.storage_options,
        operation="secure-decrypt-share",
        parameters={"round_id": spec.round_id, "holder": holder},
        inputs=[
            _artifact(ex.location(ex.rel(spec.round_id, SPEC)), "secure-round-spec", spec_digest),
            _artifact(ex.location(ex.rel(spec.round_id, AGGREGATE)), "secure-aggregate", aggregate_digest),
        ],
        outputs=[_artifact(ex.location(rel), "secure-decryption-share", digest)],
        counts={"holders": 1},
        secure={
            "step": "decrypt-share",
            "round_id": spec.round_id,
            "spec_digest": spec.spec_digest,
            "key_fingerprint": spec.key_fingerprint,
            "sender": sender,
            "envelopes_read": [
                _ref("round", COORDINATOR, spec_digest),
                _ref("aggregate", COORDINATOR, aggregate_digest),
            ],
            "envelopes_written": [_ref("decryption-share", sender, digest)],
        },
        run_id=run_id,
        airflow=airflow,
    )
    return {
        "round_id": spec.round_id,
        "holder": holder,
        "aggregate_digest": aggregate_digest,
        "share": ex.location(rel),
        "envelope_digest": digest,
        "already_shared": already,
        "lineage_record": record,
    }
