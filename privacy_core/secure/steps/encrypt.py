"""Step 3, each site: quantize its vector, add its share of the noise, encrypt and upload it once."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from privacy_core.errors import ConfigurationError, SecureProtocolError
from privacy_core.secure.envelopes import (
    COORDINATOR,
    EnvelopeRejected,
    RoundSpec,
    check_token,
    format_time,
    open_envelope,
    seal,
    sha256_digest,
)
from privacy_core.secure.exchange import SPEC, UPLOADS, Exchange
from privacy_core.secure.noise import draw_site_noise
from privacy_core.secure.steps._common import (
    _artifact,
    _check_header,
    _lineage,
    _load_spec,
    _max_envelope_bytes,
    _now,
    _ref,
    local_workers,
)

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike, NDArray

    from privacy_core.dp.random import SecureRandom
    from privacy_core.lineage.record import AirflowRun

__all__ = ["load_vector", "site_encrypt"]


def load_vector(source: str | Path | ArrayLike) -> NDArray[np.float64]:
    """A site's local vector: a ``.npy`` file, a ``.json`` list, or an array; 1-D and finite.

    :raises ConfigurationError: another format, not 1-D, or non-finite values (the message shows none).
    """
    import numpy as np

    if isinstance(source, str | Path):
        path = Path(source)
        if path.suffix == ".npy":
            raw = np.load(path, allow_pickle=False)
        elif path.suffix == ".json":
            raw = np.asarray(json.loads(path.read_text(encoding="utf-8")))
        else:
            raise ConfigurationError("vector", f"{path.name} is not .npy or .json", "save the vector with numpy.save")
    else:
        raw = np.asarray(source)
    if raw.ndim != 1 or raw.dtype.kind not in "iuf":
        raise ConfigurationError("vector", f"has shape {raw.shape} and dtype {raw.dtype}", "give a 1-D numeric vector")
    values: NDArray[np.float64] = np.asarray(raw, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ConfigurationError("vector", "holds NaN or infinity", "drop or impute them before the round")
    return values


def site_encrypt(
    exchange: str,
    round_id: str,
    site_id: str,
    vector: str | Path | ArrayLike,
    *,
    key_fingerprint: str,
    storage_options: dict[str, Any] | None = None,
    rng: SecureRandom | None = None,
    now: dt.datetime | str | None = None,
    run_id: str | None = None,
    airflow: AirflowRun | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Site: quantize ``vector``, add this site's discrete Gaussian noise, encrypt, upload once.

    :param vector: the site's statistic in real units (``.npy``, ``.json`` list, or array).
    :param key_fingerprint: the key this site was given at the key ceremony (``sha256:...``); a round under any
        other key is refused, so no one can swap in a key they hold alone.
    :param rng: the noise source (default: this process's secure ChaCha20 stream).
    :param workers: encrypt over an embedded Dask cluster of this many processes on this machine (worth it
        from about 10^5 values); None encrypts in this process.
    :raises SecureProtocolError: wrong key, unknown site, deadline passed, a value beyond the spec's bound (the
        message counts, never shows, them), or noisy values beyond the slot bound (refused, never clipped).
    """
    from privacy_core.dp.noise import quantize
    from privacy_core.secure.paillier import encode_ciphertexts, encrypt_distributed

    ex = Exchange(exchange, storage_options)
    check_token(site_id, "site_id")
    spec, spec_digest = _load_spec(ex, round_id, "encrypt")
    if spec.key_fingerprint != key_fingerprint:
        raise SecureProtocolError(
            "encrypt",
            round_id,
            f"the round is under key {spec.key_fingerprint}, not the key this site trusts ({key_fingerprint})",
            "nothing was uploaded; check the fingerprint from the key ceremony with the coordinator",
        )
    if site_id not in spec.allowed_sites:
        raise SecureProtocolError("encrypt", round_id, f"site {site_id!r} is not allowed", "ask to be added")
    moment = _now(now)
    if moment > spec.deadline:
        raise SecureProtocolError(
            "encrypt", round_id, f"the deadline {format_time(spec.deadline)} has passed", "take part in a later round"
        )
    rel = ex.rel(round_id, UPLOADS, f"{site_id}.json")
    if ex.exists(rel):
        return _existing_upload(ex, rel, spec, spec_digest, site_id, run_id, airflow)
    values = load_vector(vector)
    if values.size != spec.length:
        raise SecureProtocolError(
            "encrypt", round_id, f"the vector has {values.size} values, the spec {spec.length}", "give the right vector"
        )
    import numpy as np

    quantized, _ = quantize(values, spec.resolution)
    del values
    outside = int(np.count_nonzero(np.abs(quantized) > spec.value_bound_data))
    if outside:
        raise SecureProtocolError(
            "encrypt",
            round_id,
            f"{outside} of {spec.length} values exceed ±{spec.value_bound_data} units after quantization",
            "nothing was uploaded; bound each patient's contribution and clip before the round, or open a round "
            "with a larger value bound",
        )
    noisy = quantized + draw_site_noise(spec.noise.sigma_site_sq, spec.length, rng)
    del quantized
    if int(np.count_nonzero(np.abs(noisy) > spec.layout.value_bound)):
        raise SecureProtocolError(
            "encrypt",
            round_id,
            "this site's noise left the slot bound (probability below 1e-40)",
            "nothing was uploaded and nothing clipped; report it to the coordinator",
        )
    with local_workers(workers) as client:
        ciphertexts = encrypt_distributed(spec.public_key, spec.layout.pack(noisy), client)
    del noisy
    payload = {
        "length": spec.length,
        "plaintexts": len(ciphertexts),
        "slot_layout": spec.layout.to_json(),
        "ciphertexts": encode_ciphertexts(ciphertexts, spec.public_key),
    }
    envelope = seal(
        "upload",
        round_id=round_id,
        spec_digest=spec.spec_digest,
        key_fingerprint=spec.key_fingerprint,
        sender=site_id,
        payload=payload,
        created_at=moment,
    )
    data = envelope.to_bytes()
    try:
        ex.put(rel, data, exclusive=True)
    except FileExistsError:  # a concurrent retry won: keep its upload, never a second noise draw
        return _existing_upload(ex, rel, spec, spec_digest, site_id, run_id, airflow)
    return _upload_summary(ex, rel, spec, spec_digest, site_id, data, False, run_id, airflow)


def _existing_upload(
    ex: Exchange,
    rel: str,
    spec: RoundSpec,
    spec_digest: str,
    site_id: str,
    run_id: str | None,
    airflow: AirflowRun | None,
) -> dict[str, Any]:
    """A retry: this site's upload is already there. Uploading again would draw fresh noise, so it is reused."""
    data = ex.get(rel, max_bytes=_max_envelope_bytes(spec))
    try:
        envelope = open_envelope(data, "upload")
    except EnvelopeRejected as exc:
        raise SecureProtocolError(
            "encrypt", spec.round_id, f"{ex.location(rel)} exists and is {exc.reason}", "ask the coordinator"
        ) from None
    if envelope.sender != site_id or _check_header(envelope, spec) is not None:
        raise SecureProtocolError(
            "encrypt",
            spec.round_id,
            f"{ex.location(rel)} exists but is not this site's upload for this spec",
            "ask the coordinator to remove it or open a new round",
        )
    return _upload_summary(ex, rel, spec, spec_digest, site_id, data, True, run_id, airflow)


def _upload_summary(
    ex: Exchange,
    rel: str,
    spec: RoundSpec,
    spec_digest: str,
    site_id: str,
    data: bytes,
    already: bool,
    run_id: str | None,
    airflow: AirflowRun | None,
) -> dict[str, Any]:
    digest = sha256_digest(data)
    plaintexts = spec.layout.plaintexts_for(spec.length)
    record = _lineage(
        ex.lineage_folder(spec.round_id),
        ex.storage_options,
        operation="secure-encrypt",
        parameters={"round_id": spec.round_id, "site_id": site_id, "length": spec.length},
        inputs=[_artifact(ex.location(ex.rel(spec.round_id, SPEC)), "secure-round-spec", spec_digest)],
        outputs=[_artifact(ex.location(rel), "secure-upload", digest, plaintexts)],
        counts={"values": spec.length, "ciphertexts": plaintexts},
        secure={
            "step": "encrypt",
            "round_id": spec.round_id,
            "spec_digest": spec.spec_digest,
            "key_fingerprint": spec.key_fingerprint,
            "sender": site_id,
            "envelopes_read": [_ref("round", COORDINATOR, spec_digest)],
            "envelopes_written": [_ref("upload", site_id, digest)],
        },
        run_id=run_id,
        airflow=airflow,
    )
    return {
        "round_id": spec.round_id,
        "site_id": site_id,
        "upload": ex.location(rel),
        "envelope_digest": digest,
        "length": spec.length,
        "ciphertexts": plaintexts,
        "already_uploaded": already,
        "lineage_record": record,
    }
