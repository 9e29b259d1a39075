"""Step 6, the coordinator: verify t decryption shares, charge the budget ledger, decrypt and publish.

The ledger is charged (reserve, then commit) before ``result.json`` is written; a retry charges nothing.
"""

from __future__ import annotations

import json
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from privacy_core.errors import ConfigurationError, SecureProtocolError
from privacy_core.secure.envelopes import (
    COORDINATOR,
    Envelope,
    EnvelopeRejected,
    RoundSpec,
    holder_sender,
    open_envelope,
    seal,
    sha256_digest,
)
from privacy_core.secure.exchange import AGGREGATE, RESULT, SHARES, SPEC, Exchange
from privacy_core.secure.noise import MECHANISM
from privacy_core.secure.steps._budget import _check_budget_open, _dp_facet
from privacy_core.secure.steps._common import _artifact, _check_header, _lineage, _load_spec, _max_envelope_bytes, _ref
from privacy_core.secure.steps.aggregation import _load_aggregate, _verify_aggregate

if TYPE_CHECKING:
    from privacy_core.lineage.record import AirflowRun
    from privacy_core.secure.threshold import DecryptionShare

__all__ = ["combine_result"]


def _valid_shares(
    ex: Exchange, spec: RoundSpec, aggregate_digest: str, ciphertexts: list[int]
) -> tuple[list[DecryptionShare], list[tuple[int, str]], list[str]]:
    """The decryption shares that verify (with their digests), and why each other one was left out."""
    from privacy_core.secure.threshold import DecryptionShare, check_share

    valid: list[DecryptionShare] = []
    used: list[tuple[int, str]] = []
    refused: list[str] = []
    for name in ex.list(ex.rel(spec.round_id, SHARES)):
        rel = ex.rel(spec.round_id, SHARES, name)
        try:
            data = ex.get(rel, max_bytes=_max_envelope_bytes(spec) * 4)
        except (ValueError, FileNotFoundError):
            refused.append(f"{name}: too large or gone")
            continue
        try:
            envelope = open_envelope(data, "decryption-share")
        except EnvelopeRejected as exc:
            refused.append(f"{name}: {exc.reason}")
            continue
        header = _check_header(envelope, spec)
        body = envelope.payload
        if header is not None:
            refused.append(f"{name}: {header[0]}")
            continue
        if body["aggregate_digest"] != aggregate_digest or envelope.sender != holder_sender(body["holder"]):
            refused.append(f"{name}: for another aggregate or holder")
            continue
        try:
            share = DecryptionShare.from_json(body["share"])
        except (ConfigurationError, ValueError, KeyError, TypeError):
            refused.append(f"{name}: malformed")
            continue
        if share.holder != body["holder"] or any(s.holder == share.holder for s in valid):
            refused.append(f"{name}: duplicate or mislabelled holder")
            continue
        problem = check_share(spec.public_key, ciphertexts, share)
        if problem is not None:
            refused.append(f"{name}: {problem}")
            continue
        valid.append(share)
        used.append((share.holder, sha256_digest(data)))
    return valid, used, refused


def combine_result(
    exchange: str,
    round_id: str,
    *,
    ledger: str,
    storage_options: dict[str, Any] | None = None,
    run_id: str | None = None,
    airflow: AirflowRun | None = None,
) -> dict[str, Any]:
    """Coordinator: verify ``t`` decryption shares, charge the ledger, decrypt and publish ``result.json``.

    The ledger is charged the ρ the sum actually satisfies (:func:`~privacy_core.secure.noise.charged_rho`
    with ``accepted - C`` honest sites) under key ``secure:<round_id>``: reserve, decrypt, commit the result,
    then write it. A retry finds the commit and publishes the stored result, charging nothing.

    :raises BudgetExceededError: the dataset's budget cannot pay (nothing is decrypted).
    :raises SecureProtocolError: fewer than ``t`` valid decryption shares, or the aggregate does not verify.
    """
    from privacy_core.dp.ledger import CommittedSpend, open_ledger

    ex = Exchange(exchange, storage_options)
    spec, spec_digest = _load_spec(ex, round_id, "combine")
    envelope, aggregate_digest = _load_aggregate(ex, spec, "combine")
    accepted = len(envelope.payload["accepted"])
    cost = spec.noise.rho_for(accepted)
    key = f"secure:{round_id}"
    description = {
        "round_id": round_id,
        "spec_digest": spec.spec_digest,
        "aggregate_digest": aggregate_digest,
        "mechanism": MECHANISM,
        "sites_accepted": accepted,
        "honest_sites": accepted - spec.collusion,
        "collusion_tolerance": spec.collusion,
        "sigma_site_sq": str(spec.noise.sigma_site_sq),
        "privacy_unit": {"unit": "patient", "contribution_bound": spec.contribution_bound},
    }
    with open_ledger(ledger) as book:
        _check_budget_open(book, spec.dataset, cost, key)
        outcome = book.reserve(spec.dataset, key, cost, description)
        backend = "postgresql" if book.url.startswith("postgres") else "sqlite"
        if isinstance(outcome, CommittedSpend):
            return _publish(ex, spec, spec_digest, outcome, backend, key, [], False, run_id, airflow)
        try:
            result, used = _decrypt(ex, spec, envelope, aggregate_digest)
            committed = book.commit(outcome, result)
        except BaseException as exc:
            book.abort(outcome, f"combine failed before commit: {exc.__class__.__name__}")
            raise
    return _publish(ex, spec, spec_digest, committed, backend, key, used, True, run_id, airflow)


def _decrypt(
    ex: Exchange, spec: RoundSpec, envelope: Envelope, aggregate_digest: str
) -> tuple[dict[str, Any], list[tuple[int, str]]]:
    """The result payload the ledger stores (noisy totals only), and the shares used."""
    from privacy_core.secure.threshold import combine

    ciphertexts = _verify_aggregate(ex, spec, envelope, "combine")
    valid, used, refused = _valid_shares(ex, spec, aggregate_digest, ciphertexts)
    needed = spec.public_key.threshold
    if len(valid) < needed:
        left_out = f" ({len(refused)} left out: {'; '.join(refused)})" if refused else ""
        raise SecureProtocolError(
            "combine",
            spec.round_id,
            f"{len(valid)} valid decryption shares of the {needed} needed{left_out}",
            "nothing was decrypted or charged; wait for more key holders to run decrypt-share",
        )
    chosen = valid[:needed]
    plaintexts = combine(spec.public_key, ciphertexts, chosen)
    accepted = envelope.payload["accepted"]
    totals = spec.layout.unpack(plaintexts, spec.length, len(accepted))
    scale = float(spec.resolution)
    result = {
        "statistic": spec.statistic,
        "length": spec.length,
        "resolution": str(spec.resolution),
        "values": [float(v) * scale for v in totals.tolist()],
        "totals": [int(v) for v in totals.tolist()],
        "sites_accepted": len(accepted),
        "senders": [a["sender"] for a in accepted],
        "aggregate_digest": aggregate_digest,
        "holders": [s.holder for s in chosen],
        "privacy_unit": {"unit": "patient", "contribution_bound": spec.contribution_bound},
        "noise": spec.noise.describe(accepted=len(accepted), delta=spec.delta),
    }
    return result, used[:needed]


def _publish(
    ex: Exchange,
    spec: RoundSpec,
    spec_digest: str,
    spend: Any,
    backend: str,
    key: str,
    used: list[tuple[int, str]],
    charged: bool,
    run_id: str | None,
    airflow: AirflowRun | None,
) -> dict[str, Any]:
    """Write ``result.json`` from the ledger's commit (a retry writes the same values) and its lineage."""
    payload = json.loads(json.dumps(spend.result))
    payload["ledger"] = {
        "dataset": spec.dataset,
        "backend": backend,
        "idempotency_key": key,
        "commit_sequence": spend.commit_seq,
        "commit_hash": spend.entry_hash,
    }
    rel = ex.rel(spec.round_id, RESULT)
    current = _open_result(ex, rel)
    if current is not None and current.payload == payload:
        data = ex.get(rel)
    else:
        data = seal(
            "result",
            round_id=spec.round_id,
            spec_digest=spec.spec_digest,
            key_fingerprint=spec.key_fingerprint,
            sender=COORDINATOR,
            payload=payload,
        ).to_bytes()
        ex.put(rel, data)
    digest = sha256_digest(data)
    accepted = payload["sites_accepted"]
    rho = Fraction(payload["noise"]["rho_exact"])
    aggregate_digest = payload["aggregate_digest"]
    share_rel = ex.rel(spec.round_id, SHARES)
    dp = _dp_facet(spec.dataset, rho, spec.delta, spec.noise.sigma_site_sq, accepted - spec.collusion, spec.collusion)
    dp.update(
        {
            "ledger_entry": {"sequence": spend.commit_seq, "hash": spend.entry_hash},
            "idempotency_key": key,
            "charged": charged,
        }
    )
    record = _lineage(
        ex.lineage_folder(spec.round_id),
        ex.storage_options,
        operation="secure-combine",
        parameters={"round_id": spec.round_id, "dataset": spec.dataset, "charged": charged},
        inputs=[
            _artifact(ex.location(ex.rel(spec.round_id, SPEC)), "secure-round-spec", spec_digest),
            _artifact(ex.location(ex.rel(spec.round_id, AGGREGATE)), "secure-aggregate", aggregate_digest),
        ]
        + [
            _artifact(ex.location(f"{share_rel}/{holder_sender(h)}.json"), "secure-decryption-share", d)
            for h, d in used
        ],
        outputs=[_artifact(ex.location(rel), "secure-result", digest, spec.length)],
        counts={"values": spec.length, "sites_accepted": accepted, "shares": len(payload["holders"])},
        secure={
            "step": "combine",
            "round_id": spec.round_id,
            "spec_digest": spec.spec_digest,
            "key_fingerprint": spec.key_fingerprint,
            "sender": COORDINATOR,
            "envelopes_read": [
                _ref("round", COORDINATOR, spec_digest),
                _ref("aggregate", COORDINATOR, aggregate_digest),
            ]
            + [_ref("decryption-share", holder_sender(h), d) for h, d in used],
            "envelopes_written": [_ref("result", COORDINATOR, digest)],
            "dp": dp,
        },
        run_id=run_id,
        airflow=airflow,
    )
    epsilon = payload["noise"].get("epsilon_delta", {})
    return {
        "round_id": spec.round_id,
        "dataset": spec.dataset,
        "rho": float(rho),
        "rho_exact": str(rho),
        "epsilon": epsilon.get("epsilon"),
        "delta": epsilon.get("delta"),
        "charged": charged,
        "ledger_commit": spend.commit_seq,
        "sites_accepted": accepted,
        "holders": payload["holders"],
        "result": ex.location(rel),
        "result_digest": digest,
        "lineage_record": record,
    }


def _open_result(ex: Exchange, rel: str) -> Envelope | None:
    if not ex.exists(rel):
        return None
    try:
        return open_envelope(ex.get(rel, max_bytes=256 << 20), "result")
    except (EnvelopeRejected, ValueError):
        return None
