"""Example DAG: pooled statistics of several hospitals that no one, not even the coordinator, sees per site.

One DAG plays every party so the demo runs on one machine; in production each step runs at its party:

1. key ceremony: a 2-of-3 threshold Paillier key, one share file per key holder (the coordinator holds none);
2. the coordinator opens a round: the statistic, the allowed sites, the noise each adds, a deadline;
3. each site (dynamic task mapping) adds its share of discrete Gaussian noise and uploads its encrypted vector;
   one of the four allowed sites drops out, and the round goes on without it after the deadline;
4. the coordinator sums the ciphertexts; 5. two key holders publish partial decryptions (mapped);
6. the coordinator combines them, charges the privacy-budget ledger, and publishes the total: exact integers,
   already differentially private, the first plaintext anyone sees.

Imports nothing heavy: operators and tasks load ``privacy_core`` when they run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, Param, task

from operators.secure import (
    SecureAggregateOperator,
    SecureCombineOperator,
    SecureDecryptShareOperator,
    SecureRoundOperator,
    SecureSiteEncryptOperator,
)

DEMO_ROOT = Path(os.environ.get("IMAGING_PRIVACY_DEMO_ROOT", "/tmp/imaging-privacy-demo")).resolve()
SECURE = DEMO_ROOT / "cross-site"
ALLOWED_SITES = ["hospital-a", "hospital-b", "hospital-c", "hospital-d"]
#: hospital-d never uploads: the dropped site.
TAKING_PART = {"hospital-a": 180, "hospital-b": 240, "hospital-c": 150}
ROUND = "round-{{ ts_nodash }}"
FINGERPRINT = "{{ ti.xcom_pull(task_ids='key_ceremony')['key_fingerprint'] }}"
#: 45 s after the round opens (rendered when the task starts), in UTC.
DEADLINE = "{{ macros.datetime.utcfromtimestamp(macros.time.time() + 45).strftime('%Y-%m-%dT%H:%M:%SZ') }}"

with DAG(
    dag_id="cross_site_statistics",
    description="Encrypted, DP sum of a per-patient statistic over hospitals, with threshold decryption",
    schedule=None,
    catchup=False,
    tags=["imaging-privacy", "example", "cross-site"],
    render_template_as_native_obj=True,
    params={
        "root": Param(str(SECURE), type="string", description="exchange, keys and site data live here"),
        "key_bits": Param(2048, type="integer", description="Paillier modulus bits (3072 for production)"),
        "rho": Param(0.5, type="number", description="zCDP loss of the released total"),
        "dataset": Param("multi-site-cohort", type="string", description="privacy-budget ledger dataset"),
    },
) as dag:

    @task
    def key_ceremony(root: str, bits: int | str) -> dict[str, Any]:
        """Deal a 2-of-3 key (once: a later run reuses it); only file names and the fingerprint return."""
        from privacy_core.secure.roles import keygen, load_public_key

        keys = Path(root) / "keys"
        if (keys / "public-key.json").is_file():
            public = load_public_key(keys / "public-key.json")
            return {"public_key": str(keys / "public-key.json"), "key_fingerprint": public.fingerprint}
        summary = keygen(keys, holders=3, threshold=2, bits=int(bits))
        return {"public_key": summary["public_key"], "key_fingerprint": summary["key_fingerprint"]}

    @task
    def site_data(root: str) -> list[dict[str, str]]:
        """Each hospital's own statistic (generated here; at a real site, computed from its own images)."""
        from privacy_core.secure.cohorts import make_site_statistics

        written = make_site_statistics(Path(root) / "sites", list(TAKING_PART), list(TAKING_PART.values()))
        return [{"site_id": s.site_id, "vector": s.path} for s in written]

    keys = key_ceremony(root="{{ params.root }}", bits="{{ params.key_bits }}")
    sites = site_data(root="{{ params.root }}")
    exchange = "{{ params.root }}/exchange"
    open_round = SecureRoundOperator(
        task_id="open_round",
        exchange=exchange,
        round_id=ROUND,
        public_key="{{ ti.xcom_pull(task_ids='key_ceremony')['public_key'] }}",
        round_settings={
            "statistic": "patients_by_age_band_and_modality",
            "length": 14,
            "value_bound": 10_000,
            "resolution": "1",
            "contribution_bound": 1,
            "l2_sensitivity_sq": 2,
            "sites": ALLOWED_SITES,
            "min_sites": 3,
            "collusion": 1,
            "rho": "{{ params.rho }}",
            "delta": 1e-6,
            "dataset": "{{ params.dataset }}",
            # Late enough for the three sites to upload, soon enough for a demo; the dropped site is simply late.
            "deadline": DEADLINE,
        },
    )
    encrypt = SecureSiteEncryptOperator.partial(
        task_id="site_encrypt", exchange=exchange, round_id=ROUND, key_fingerprint=FINGERPRINT
    ).expand_kwargs(sites)
    aggregate = SecureAggregateOperator(task_id="aggregate", exchange=exchange, round_id=ROUND)
    decrypt = SecureDecryptShareOperator.partial(task_id="decrypt_share", exchange=exchange, round_id=ROUND).expand(
        share_path=["{{ params.root }}/keys/key-share-1.json", "{{ params.root }}/keys/key-share-3.json"]
    )
    combine = SecureCombineOperator(
        task_id="combine",
        exchange=exchange,
        round_id=ROUND,
        ledger_conn_id="imaging_privacy_ledger_default",
        outlets=[Asset(name="cross_site_statistics.result", uri=(SECURE / "exchange").as_uri())],
    )
    [keys, sites] >> open_round >> encrypt >> aggregate >> decrypt >> combine
