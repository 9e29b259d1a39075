"""Step 1, the key ceremony: deal a threshold Paillier key into local files, one private share per holder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from privacy_core.errors import ConfigurationError
from privacy_core.secure.envelopes import sha256_digest
from privacy_core.secure.steps._common import _artifact, _lineage, _ref, _write_private

if TYPE_CHECKING:
    from privacy_core.lineage.record import AirflowRun, Artifact

__all__ = ["PUBLIC_KEY_FILE", "keygen", "share_file_name"]

PUBLIC_KEY_FILE = "public-key.json"


def share_file_name(holder: int) -> str:
    """The key share file of ``holder`` in a keygen output folder, e.g. ``key-share-2.json``."""
    return f"key-share-{holder}.json"


def keygen(
    output: str | Path,
    *,
    holders: int,
    threshold: int,
    bits: int | None = None,
    run_id: str | None = None,
    airflow: AirflowRun | None = None,
) -> dict[str, Any]:
    """Key ceremony: deal a ``threshold``-of-``holders`` Paillier key into the local folder ``output``.

    Writes ``public-key.json`` (give it to the coordinator and every site) and ``key-share-<i>.json`` per
    holder, each created with mode 0600 (move each to its holder's vault, then delete it here). Nothing is
    ever overwritten. The returned summary names files and the fingerprint, never a share.

    :param bits: modulus size; default :data:`~privacy_core.secure.keys.DEFAULT_KEY_BITS` (3072, about
        128-bit security). Safe-prime generation takes minutes at that size.
    :raises ConfigurationError: ``output`` is a URL (shares go only to a local folder) or already holds keys,
        or the threshold is out of range.
    """
    from privacy_core.secure.keys import DEFAULT_KEY_BITS, deal_threshold_key

    if "://" in str(output):
        raise ConfigurationError(
            "output", f"is {output}, a URL", "deal keys into a local folder on the ceremony machine, never a store"
        )
    folder = Path(output)
    existing = [p.name for p in folder.glob("*.json")] if folder.is_dir() else []
    if PUBLIC_KEY_FILE in existing or any(n.startswith("key-share-") for n in existing):
        raise ConfigurationError(
            "output", f"{folder} already holds a key", "deal into a new, empty folder; keys are never overwritten"
        )
    size = DEFAULT_KEY_BITS if bits is None else bits
    public, shares = deal_threshold_key(size, holders, threshold)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    public_bytes = (json.dumps(public.to_json(), indent=2, sort_keys=True) + "\n").encode()
    public_path = folder / PUBLIC_KEY_FILE
    from privacy_core.storage import atomic_write_bytes

    atomic_write_bytes(public_path, public_bytes, exclusive=True)
    share_paths: list[Path] = []
    share_artifacts: list[Artifact] = []
    for share in shares:
        path = folder / share_file_name(share.holder)
        data = (json.dumps(share.to_json(), indent=2, sort_keys=True) + "\n").encode()
        _write_private(path, data)
        share_paths.append(path)
        share_artifacts.append(_artifact(str(path), "paillier-key-share", sha256_digest(data)))
        del data
    del shares
    public_digest = sha256_digest(public_bytes)
    record = _lineage(
        str(folder / "lineage"),
        None,
        operation="secure-keygen",
        parameters={"bits": public.bits, "holders": holders, "threshold": threshold, "mode": public.mode},
        inputs=[],
        outputs=[_artifact(str(public_path), "paillier-public-key", public_digest), *share_artifacts],
        counts={"holders": holders},
        secure={
            "step": "keygen",
            "round_id": None,
            "spec_digest": None,
            "key_fingerprint": public.fingerprint,
            "sender": "dealer",
            "envelopes_read": [],
            "envelopes_written": [_ref("public-key", "dealer", public_digest)],
            "key_setup": {"mode": public.mode, "bits": public.bits, "holders": holders, "threshold": threshold},
        },
        run_id=run_id,
        airflow=airflow,
    )
    return {
        "key_fingerprint": public.fingerprint,
        "mode": public.mode,
        "bits": public.bits,
        "holders": holders,
        "threshold": threshold,
        "public_key": str(public_path),
        "shares": [str(p) for p in share_paths],
        "lineage_record": record,
    }
