"""The steps of an encrypted cross-site aggregation round, as plain functions for the CLI and Airflow.

1. :func:`keygen` (key ceremony): a t-of-ℓ threshold Paillier key; one share file per holder (mode 0600).
2. :func:`open_round` (coordinator): the round spec, with the noise every site adds and the deadline.
3. :func:`site_encrypt` (each site): quantize, add its share of discrete Gaussian noise, pack, encrypt, upload.
4. :func:`aggregate` (coordinator): check every upload, sum the accepted ones homomorphically after the deadline.
5. :func:`decrypt_share` (each key holder): re-check the aggregate, then publish a partial decryption.
6. :func:`combine_result` (coordinator): verify t shares, charge the budget ledger, decrypt and publish.

Each takes plain arguments (URLs, paths, ints), returns a small JSON-able summary that is safe for logs and
XCom (ids, counts, digests, paths, the privacy loss; never values, keys or shares), and writes a lineage
record naming the envelopes it read and wrote by SHA-256. Each step lives in its own module under
:mod:`privacy_core.secure.steps`; this module is the stable import path for the CLI, operators and DAGs.

What a hospital security officer relies on here:

- sites pin the key fingerprint they were given at the key ceremony, so a coordinator cannot swap in a key
  it holds alone; the coordinator holds no key share;
- the noise is in every upload before encryption, sized for the honest sites alone, so the decrypted total
  is private even if up to C sites collude and any number beyond ``min_sites`` drop out;
- a key holder decrypts only an aggregate it has recomputed from at least ``min_sites`` distinct allowed
  uploads, and only one aggregate per round (its journal, kept beside its share, refuses a second), so no
  one can obtain the difference of two sums, which would be one site's upload;
- the ledger is charged (reserve, then commit) before the result is written; a retry returns the stored
  result and charges nothing.
"""

from __future__ import annotations

from privacy_core.secure.steps import (
    MAX_CLOCK_SKEW,
    PUBLIC_KEY_FILE,
    aggregate,
    combine_result,
    decrypt_share,
    keygen,
    load_public_key,
    load_vector,
    open_round,
    share_file_name,
    site_encrypt,
)

__all__ = [
    "MAX_CLOCK_SKEW",
    "PUBLIC_KEY_FILE",
    "aggregate",
    "combine_result",
    "decrypt_share",
    "keygen",
    "load_public_key",
    "load_vector",
    "open_round",
    "share_file_name",
    "site_encrypt",
]
