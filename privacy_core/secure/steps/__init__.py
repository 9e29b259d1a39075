"""The six steps of an encrypted cross-site aggregation round, one module each, in the order a round runs.

1. :mod:`.ceremony` — :func:`keygen` (key ceremony): a t-of-ℓ threshold Paillier key, one private share file
   per key holder.
2. :mod:`.round` — :func:`open_round` (coordinator): the round spec, with the noise every site adds and the
   deadline; :func:`load_public_key` reads the ceremony's public key.
3. :mod:`.encrypt` — :func:`site_encrypt` (each site): quantize, add noise, pack, encrypt, upload once;
   :func:`load_vector` reads the site's vector.
4. :mod:`.aggregation` — :func:`aggregate` (coordinator): judge every upload, sum the accepted ones.
5. :mod:`.decrypt` — :func:`decrypt_share` (each key holder): re-verify the sum, publish a partial decryption.
6. :mod:`.combine` — :func:`combine_result` (coordinator): verify t shares, charge the ledger, publish.

Steps talk only through envelopes in the exchange; ``_common`` and ``_budget`` hold what several steps share.
Callers import from :mod:`privacy_core.secure.roles`, which re-exports these names.
"""

from __future__ import annotations

from privacy_core.secure.steps.aggregation import MAX_CLOCK_SKEW, aggregate
from privacy_core.secure.steps.ceremony import PUBLIC_KEY_FILE, keygen, share_file_name
from privacy_core.secure.steps.combine import combine_result
from privacy_core.secure.steps.decrypt import decrypt_share
from privacy_core.secure.steps.encrypt import load_vector, site_encrypt
from privacy_core.secure.steps.round import load_public_key, open_round

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
