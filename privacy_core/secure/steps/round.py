"""Step 2, the coordinator opens a round: the spec every other step checks (key, sites, noise, deadline)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from privacy_core.dp.mechanisms import as_fraction
from privacy_core.errors import ConfigurationError
from privacy_core.secure.envelopes import COORDINATOR, check_token, format_time, parse_time, seal, sha256_digest
from privacy_core.secure.exchange import SPEC, Exchange
from privacy_core.secure.noise import plan_noise
from privacy_core.secure.steps._budget import _check_budget, _dp_facet
from privacy_core.secure.steps._common import _artifact, _lineage, _load_spec, _now, _read_local_json, _ref

if TYPE_CHECKING:
    from privacy_core.lineage.record import AirflowRun
    from privacy_core.secure.keys import PublicKey

__all__ = ["load_public_key", "open_round"]


def load_public_key(source: str | Path) -> PublicKey:
    """A public key file (local path or fsspec URL), its fingerprint checked.

    :raises ConfigurationError: missing, not JSON, or not a matching public key.
    """
    from privacy_core.secure.keys import PublicKey

    if "://" in str(source):
        import fsspec

        with fsspec.open(str(source), "rb") as fh:
            data = json.loads(fh.read().decode("utf-8"))
    else:
        data = _read_local_json(Path(source), "public_key")
    return PublicKey.from_json(data)


# ----------------------------------------------------------------------------------------------- open_round


def open_round(
    exchange: str,
    round_id: str,
    *,
    public_key: str | Path,
    statistic: str,
    length: int,
    value_bound: int,
    resolution: str | float | Fraction,
    contribution_bound: int,
    l2_sensitivity_sq: str | int | Fraction,
    sites: Sequence[str],
    min_sites: int,
    collusion: int,
    rho: str | float | Fraction,
    delta: float,
    dataset: str,
    deadline: str | dt.datetime,
    max_sites: int | None = None,
    ledger: str | None = None,
    storage_options: dict[str, Any] | None = None,
    now: dt.datetime | str | None = None,
    run_id: str | None = None,
    airflow: AirflowRun | None = None,
) -> dict[str, Any]:
    """Coordinator: write the round spec ``<exchange>/<round_id>/spec.json``.

    :param public_key: the ceremony's public key file; its fingerprint goes into the spec.
    :param statistic: the statistic's name; ``length`` its number of values.
    :param value_bound: each site's quantized value bound before noise (sites refuse values beyond it).
    :param resolution: the value of one integer unit (e.g. ``"1"`` for counts, ``"1/10"``).
    :param contribution_bound: most records one patient contributes (the privacy unit is a patient, at one site).
    :param l2_sensitivity_sq: squared L2 change of the summed vector from one patient, in units.
    :param sites: the allowed site ids; ``max_sites`` (default their number) sizes the slots.
    :param min_sites: fewest accepted uploads to combine; ``collusion``: sites that may pool their noise.
    :param rho: target zCDP loss from the honest sites' noise alone; ``delta`` for the (ε, δ) shown.
    :param dataset: the budget ledger's dataset charged at combine.
    :param deadline: ISO UTC time after which uploads are late.
    :param ledger: if given, refuse now a round the dataset's budget cannot pay for in the worst case.
    :raises ConfigurationError: a setting out of range, or the round exists with another spec.
    :raises BudgetExceededError: the ledger cannot pay the worst-case charge.
    """
    from privacy_core.secure.packing import SlotLayout

    ex = Exchange(exchange, storage_options)
    check_token(round_id, "round_id")
    check_token(statistic, "statistic")
    allowed = [check_token(s, "sites") for s in sites]
    if not allowed or len(set(allowed)) != len(allowed):
        raise ConfigurationError("sites", f"are {allowed}", "list each allowed site id once")
    public = load_public_key(public_key)
    if isinstance(value_bound, bool) or not isinstance(value_bound, int) or value_bound < 1:
        raise ConfigurationError("value_bound", f"is {value_bound!r}", "give the per-value bound as an integer >= 1")
    if isinstance(contribution_bound, bool) or not isinstance(contribution_bound, int) or contribution_bound < 1:
        raise ConfigurationError("contribution_bound", f"is {contribution_bound!r}", "give an integer >= 1")
    slots_for = len(allowed) if max_sites is None else max_sites
    if slots_for < len(allowed):
        raise ConfigurationError(
            "max_sites", f"is {slots_for}, fewer than the {len(allowed)} allowed sites", "give at least that many"
        )
    if not 1 <= min_sites <= len(allowed):
        raise ConfigurationError(
            "min_sites", f"is {min_sites} with {len(allowed)} allowed sites", f"give 1..{len(allowed)}"
        )
    if not 0.0 < float(delta) < 1.0:
        raise ConfigurationError("delta", f"is {delta}", "give a delta strictly between 0 and 1, e.g. 1e-6")
    if not isinstance(dataset, str) or not dataset.strip():
        raise ConfigurationError("dataset", f"is {dataset!r}", "name the budget ledger's dataset")
    plan = plan_noise(
        as_fraction(l2_sensitivity_sq, "l2_sensitivity_sq"), as_fraction(rho, "rho"), min_sites, collusion, length
    )
    step = as_fraction(resolution, "resolution")
    moment = _now(now)
    due = parse_time(deadline if isinstance(deadline, str) else deadline.isoformat(), "deadline")
    if due <= moment:
        raise ConfigurationError("deadline", f"{format_time(due)} has passed", "give a deadline in the future")
    layout = SlotLayout.plan(value_bound + plan.tail_bound, slots_for, public.bits)
    payload = {
        "statistic": {
            "name": statistic,
            "length": length,
            "value_bound_data": value_bound,
            "resolution": str(step),
            "privacy_unit": "patient",
            "contribution_bound": contribution_bound,
            "l2_sensitivity_sq": str(plan.l2_squared),
        },
        "sites": {
            "allowed": allowed,
            "max_sites": slots_for,
            "min_sites": min_sites,
            "collusion_tolerance": collusion,
            "dropout_tolerance": len(allowed) - min_sites,
        },
        "privacy": {
            "accounting": "zcdp",
            "rho": float(plan.rho),
            "rho_exact": str(plan.rho),
            "delta": float(delta),
            "dataset": dataset,
            "noise": plan.describe(delta=float(delta)),
        },
        "deadline": format_time(due),
        "slot_layout": layout.to_json(),
        "public_key": public.to_json(),
    }
    key = f"secure:{round_id}"
    if ledger is not None:
        _check_budget(ledger, dataset, plan.planned_rho, key)
    envelope = seal(
        "round",
        round_id=round_id,
        spec_digest=None,
        key_fingerprint=public.fingerprint,
        sender=COORDINATOR,
        payload=payload,
        created_at=moment,
    )
    rel = ex.rel(round_id, SPEC)
    data = envelope.to_bytes()
    already = False
    try:
        ex.put(rel, data, exclusive=True)
    except FileExistsError:
        spec, digest = _load_spec(ex, round_id, "round")
        if spec.envelope.payload != payload or spec.key_fingerprint != public.fingerprint:
            raise ConfigurationError(
                "round_id", f"round {round_id!r} already exists with another spec", "choose a new round id"
            ) from None
        envelope, already = spec.envelope, True
        data = ex.get(rel)
    digest = sha256_digest(data)
    record = _lineage(
        ex.lineage_folder(round_id),
        storage_options,
        operation="secure-round",
        parameters={"round_id": round_id, "statistic": statistic, "length": length, "sites": allowed},
        inputs=[],
        outputs=[_artifact(ex.location(rel), "secure-round-spec", digest)],
        counts={"sites": len(allowed)},
        secure={
            "step": "round",
            "round_id": round_id,
            "spec_digest": envelope.spec_digest,
            "key_fingerprint": public.fingerprint,
            "sender": COORDINATOR,
            "envelopes_read": [],
            "envelopes_written": [_ref("round", COORDINATOR, digest)],
            "dp": _dp_facet(dataset, plan.planned_rho, float(delta), plan.sigma_site_sq, plan.honest_sites, collusion),
        },
        run_id=run_id,
        airflow=airflow,
    )
    return {
        "round_id": round_id,
        "spec": ex.location(rel),
        "spec_digest": envelope.spec_digest,
        "key_fingerprint": public.fingerprint,
        "sites": len(allowed),
        "min_sites": min_sites,
        "max_sites": slots_for,
        "collusion": collusion,
        "deadline": format_time(due),
        "rho_target": float(plan.rho),
        "rho_planned": float(plan.planned_rho),
        "sigma_site_sq": float(plan.sigma_site_sq),
        "value_bound": layout.value_bound,
        "already_open": already,
        "lineage_record": record,
    }
