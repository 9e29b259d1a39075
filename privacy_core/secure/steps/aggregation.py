"""Step 4, the coordinator: judge every upload and sum the accepted ones; key holders re-verify that sum."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from privacy_core.errors import ConfigurationError, RoundNotReadyError, SecureProtocolError, TooFewSitesError
from privacy_core.secure.envelopes import (
    COORDINATOR,
    Envelope,
    EnvelopeRejected,
    RoundSpec,
    check_token,
    format_time,
    open_envelope,
    parse_time,
    seal,
    sha256_digest,
)
from privacy_core.secure.exchange import AGGREGATE, SPEC, UPLOADS, Exchange
from privacy_core.secure.steps._common import (
    _artifact,
    _check_header,
    _lineage,
    _load_spec,
    _max_envelope_bytes,
    _now,
    _ref,
)

if TYPE_CHECKING:
    from privacy_core.lineage.record import AirflowRun

__all__ = ["MAX_CLOCK_SKEW", "aggregate"]

#: How far the exchange's clock may run ahead of the deadline before a stored upload counts as late.
MAX_CLOCK_SKEW = dt.timedelta(minutes=5)


def _sender_hint(data: bytes) -> str | None:
    """The sender an unusable envelope claims, if it is a safe id (for the rejection record only)."""
    try:
        sender = json.loads(data.decode("utf-8")).get("sender")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None
    try:
        return check_token(sender, "sender")
    except ConfigurationError:
        return None


@dataclass(frozen=True)
class _Upload:
    """One upload file as the coordinator judged it: usable (``envelope`` set) or rejected with a reason."""

    file: str
    digest: str | None
    sender: str | None
    envelope: Envelope | None = None
    ciphertexts: tuple[int, ...] = ()
    reason: str = ""
    detail: str = ""

    def rejection(self, reason: str | None = None, detail: str | None = None) -> dict[str, Any]:
        return {
            "file": self.file,
            "sender": self.sender,
            "reason": reason or self.reason,
            "detail": detail or self.detail,
            "envelope_digest": self.digest,
        }


def _check_upload(ex: Exchange, spec: RoundSpec, name: str, limit: int) -> _Upload:
    """Read and judge one upload file; never raises for a bad upload."""
    from privacy_core.secure.paillier import decode_ciphertexts

    rel = ex.rel(spec.round_id, UPLOADS, name)
    try:
        data = ex.get(rel, max_bytes=limit)
    except ValueError:
        return _Upload(name, None, None, reason="malformed", detail=f"larger than the {limit} bytes an upload needs")
    except FileNotFoundError:
        return _Upload(name, None, None, reason="malformed", detail="disappeared while being read")
    digest = sha256_digest(data)
    try:
        envelope = open_envelope(data, "upload")
    except EnvelopeRejected as exc:
        return _Upload(name, digest, _sender_hint(data), reason=exc.reason, detail=exc.detail)
    sender = envelope.sender
    header = _check_header(envelope, spec)
    if header is not None:
        return _Upload(name, digest, sender, reason=header[0], detail=header[1])
    if sender not in spec.allowed_sites:
        return _Upload(name, digest, sender, reason="unknown-site", detail=f"site {sender!r} is not in this round")
    created = parse_time(envelope.created_at, "created_at")
    stored = ex.modified(rel)
    if created > spec.deadline or (stored is not None and stored > spec.deadline + MAX_CLOCK_SKEW):
        when = format_time(max(created, stored or created))
        detail = f"made or stored at {when}, after the deadline {format_time(spec.deadline)}"
        return _Upload(name, digest, sender, reason="late", detail=detail)
    payload = envelope.payload
    expected = spec.layout.plaintexts_for(spec.length)
    if payload["slot_layout"] != spec.layout.to_json() or payload["length"] != spec.length:
        return _Upload(name, digest, sender, reason="malformed", detail="its layout or length is not the spec's")
    try:
        ciphertexts = decode_ciphertexts(payload["ciphertexts"], spec.public_key)
    except ConfigurationError as exc:
        return _Upload(name, digest, sender, reason="malformed", detail=f"unreadable ciphertexts ({exc.problem})")
    if len(ciphertexts) != expected or payload["plaintexts"] != expected:
        detail = f"{len(ciphertexts)} ciphertexts where the layout needs {expected}"
        return _Upload(name, digest, sender, reason="malformed", detail=detail)
    return _Upload(name, digest, sender, envelope=envelope, ciphertexts=tuple(ciphertexts))


def aggregate(
    exchange: str,
    round_id: str,
    *,
    now: dt.datetime | str | None = None,
    storage_options: dict[str, Any] | None = None,
    run_id: str | None = None,
    airflow: AirflowRun | None = None,
) -> dict[str, Any]:
    """Coordinator: sum the accepted uploads homomorphically into ``aggregate.json``.

    Runs after the deadline (or before it once every allowed site has uploaded): whatever arrived in time is
    combined, and a site that dropped out delays nothing. Each upload is accepted or rejected with one of
    wrong-round, wrong-spec, wrong-key, unknown-site, duplicate (a later upload of the same site), late,
    malformed or tampered; a rejection never stops the round. Aggregating again returns the first aggregate.

    :raises RoundNotReadyError: before the deadline, while some allowed site has not uploaded.
    :raises TooFewSitesError: fewer than ``min_sites`` accepted (nothing is written): the noise would not suffice.
    """
    from privacy_core.secure.paillier import add, encode_ciphertexts

    ex = Exchange(exchange, storage_options)
    spec, spec_digest = _load_spec(ex, round_id, "aggregate")
    rel = ex.rel(round_id, AGGREGATE)
    if ex.exists(rel):
        return _aggregate_summary(ex, spec, spec_digest, None, True, run_id, airflow)
    moment = _now(now)
    limit = _max_envelope_bytes(spec)
    names = ex.list(ex.rel(round_id, UPLOADS))
    usable: list[tuple[dt.datetime, _Upload]] = []
    rejected: list[dict[str, Any]] = []
    for name in names:
        upload = _check_upload(ex, spec, name, limit)
        if upload.envelope is None:
            rejected.append(upload.rejection())
        else:
            usable.append((parse_time(upload.envelope.created_at), upload))
    accepted: list[_Upload] = []
    for _, upload in sorted(usable, key=lambda u: (u[0], u[1].file)):
        first = next((a for a in accepted if a.sender == upload.sender), None)
        if first is not None and first.envelope is not None:
            detail = f"site {upload.sender!r} already uploaded {first.file} at {first.envelope.created_at}"
            rejected.append(upload.rejection("duplicate", detail))
        else:
            accepted.append(upload)
    senders = {a.sender for a in accepted}
    if moment <= spec.deadline and senders != set(spec.allowed_sites):
        raise RoundNotReadyError(round_id, len(senders), len(spec.allowed_sites), format_time(spec.deadline))
    reasons = Counter(r["reason"] for r in rejected)
    if len(accepted) < spec.min_sites:
        raise TooFewSitesError(round_id, len(names), len(accepted), spec.min_sites, dict(reasons))
    total = add(spec.public_key, *[a.ciphertexts for a in accepted])
    payload = {
        "deadline": format_time(spec.deadline),
        "aggregated_at": format_time(moment),
        "arrived": len(names),
        "accepted": [
            {"sender": a.sender, "file": a.file, "envelope_digest": a.digest, "created_at": a.envelope.created_at}
            for a in accepted
            if a.envelope is not None
        ],
        "rejected": sorted(rejected, key=lambda r: r["file"]),
        "length": spec.length,
        "plaintexts": len(total),
        "ciphertexts": encode_ciphertexts(total, spec.public_key),
    }
    envelope = seal(
        "aggregate",
        round_id=round_id,
        spec_digest=spec.spec_digest,
        key_fingerprint=spec.key_fingerprint,
        sender=COORDINATOR,
        payload=payload,
        created_at=moment,
    )
    try:
        ex.put(rel, envelope.to_bytes(), exclusive=True)
    except FileExistsError:
        return _aggregate_summary(ex, spec, spec_digest, None, True, run_id, airflow)
    return _aggregate_summary(ex, spec, spec_digest, rejected, False, run_id, airflow)


def _load_aggregate(ex: Exchange, spec: RoundSpec, step: str) -> tuple[Envelope, str]:
    """The round's aggregate, its header checked against the spec, and the SHA-256 of its file."""
    rel = ex.rel(spec.round_id, AGGREGATE)
    try:
        data = ex.get(rel, max_bytes=_max_envelope_bytes(spec) + (1 << 24))
    except FileNotFoundError:
        raise SecureProtocolError(step, spec.round_id, "there is no aggregate yet", "run aggregate first") from None
    try:
        envelope = open_envelope(data, "aggregate")
    except EnvelopeRejected as exc:
        raise SecureProtocolError(
            step, spec.round_id, f"the aggregate is {exc.reason}: {exc.detail}", "the coordinator must investigate"
        ) from None
    header = _check_header(envelope, spec)
    if header is not None or envelope.sender != COORDINATOR:
        raise SecureProtocolError(
            step, spec.round_id, f"the aggregate is not this round's ({header or 'sender'})", "check the exchange"
        )
    return envelope, sha256_digest(data)


def _aggregate_summary(
    ex: Exchange,
    spec: RoundSpec,
    spec_digest: str,
    rejected: list[dict[str, Any]] | None,
    already: bool,
    run_id: str | None,
    airflow: AirflowRun | None,
) -> dict[str, Any]:
    envelope, digest = _load_aggregate(ex, spec, "aggregate")
    body = envelope.payload
    rejections = body["rejected"] if rejected is None else rejected
    reasons = dict(sorted(Counter(r["reason"] for r in rejections).items()))
    accepted = body["accepted"]
    uploads = ex.rel(spec.round_id, UPLOADS)
    reads = [_ref("round", COORDINATOR, spec_digest)]
    reads += [_ref("upload", a["sender"], a["envelope_digest"]) for a in accepted]
    reads += [
        _ref("upload", r["sender"] or "unknown", r["envelope_digest"]) for r in rejections if r["envelope_digest"]
    ]
    rel = ex.rel(spec.round_id, AGGREGATE)
    record = _lineage(
        ex.lineage_folder(spec.round_id),
        ex.storage_options,
        operation="secure-aggregate",
        parameters={"round_id": spec.round_id, "already_aggregated": already},
        inputs=[_artifact(ex.location(ex.rel(spec.round_id, SPEC)), "secure-round-spec", spec_digest)]
        + [_artifact(ex.location(f"{uploads}/{a['file']}"), "secure-upload", a["envelope_digest"]) for a in accepted],
        outputs=[_artifact(ex.location(rel), "secure-aggregate", digest, body["plaintexts"])],
        counts={"arrived": body["arrived"], "accepted": len(accepted), "rejected": reasons},
        secure={
            "step": "aggregate",
            "round_id": spec.round_id,
            "spec_digest": spec.spec_digest,
            "key_fingerprint": spec.key_fingerprint,
            "sender": COORDINATOR,
            "envelopes_read": reads,
            "envelopes_written": [_ref("aggregate", COORDINATOR, digest)],
            "sites": {"arrived": body["arrived"], "accepted": len(accepted), "rejected": reasons},
        },
        run_id=run_id,
        airflow=airflow,
    )
    return {
        "round_id": spec.round_id,
        "arrived": body["arrived"],
        "accepted": len(accepted),
        "senders": [a["sender"] for a in accepted],
        "rejected": reasons,
        "rejections": [{"file": r["file"], "sender": r["sender"], "reason": r["reason"]} for r in rejections],
        "aggregate": ex.location(rel),
        "aggregate_digest": digest,
        "already_aggregated": already,
        "lineage_record": record,
    }


def _verify_aggregate(ex: Exchange, spec: RoundSpec, envelope: Envelope, step: str) -> list[int]:
    """Recompute the aggregate from the uploads it lists; returns its ciphertexts if they match.

    A key holder trusts no coordinator: it decrypts only a sum of at least ``min_sites`` distinct allowed
    uploads of this round, each still as the aggregate recorded it.
    """
    from privacy_core.secure.paillier import add, decode_ciphertexts

    body = envelope.payload
    accepted = body["accepted"]
    senders = [a["sender"] for a in accepted]
    problems = []
    if len(set(senders)) != len(senders) or not set(senders) <= set(spec.allowed_sites):
        problems.append("its uploads are not distinct allowed sites")
    if len(accepted) < spec.min_sites:
        problems.append(f"it sums {len(accepted)} uploads, fewer than min_sites={spec.min_sites}")
    vectors = []
    limit = _max_envelope_bytes(spec)
    for entry in accepted if not problems else []:
        upload = _check_upload(ex, spec, entry["file"], limit)
        if upload.envelope is None or upload.digest != entry["envelope_digest"] or upload.sender != entry["sender"]:
            problems.append(f"upload {entry['file']} is missing, changed or unusable")
            break
        vectors.append(upload.ciphertexts)
    try:
        ciphertexts = decode_ciphertexts(body["ciphertexts"], spec.public_key)
    except ConfigurationError:
        ciphertexts = []
        problems.append("its ciphertexts are unreadable")
    if not problems and add(spec.public_key, *vectors) != ciphertexts:
        problems.append("its ciphertexts are not the sum of the uploads it lists")
    if problems:
        raise SecureProtocolError(
            step, spec.round_id, "the aggregate does not verify: " + "; ".join(problems), "nothing was decrypted"
        )
    return ciphertexts
