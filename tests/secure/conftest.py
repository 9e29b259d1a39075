"""Shared fixtures for encrypted cross-site statistics: small keys dealt once per session, a Dask client.

Keys are 512 bits: far too small for data, large enough to exercise every code path in well under a second.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from privacy_core.secure.keys import KeyShare, PublicKey, deal_threshold_key, generate_single_key

#: Bit length of every test key (MIN_KEY_BITS): fast, and never to be used for data.
TEST_KEY_BITS = 512


@pytest.fixture(scope="session")
def threshold_key() -> tuple[PublicKey, list[KeyShare]]:
    """A 3-of-5 threshold key and its five shares."""
    return deal_threshold_key(TEST_KEY_BITS, holders=5, threshold=3)


@pytest.fixture(scope="session")
def single_key() -> tuple[PublicKey, KeyShare]:
    """A single-key-mode key and its one share."""
    return generate_single_key(TEST_KEY_BITS)


@pytest.fixture(scope="session")
def secure_dask_client() -> Iterator[Any]:
    """A Dask client on an in-process LocalCluster with two worker threads."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster, set_as_default=False) as client,  # type: ignore[no-untyped-call]
    ):
        yield client


# --- the file protocol (tests/secure/test_protocol.py, test_commands.py, test_envelopes.py) -----------------


@pytest.fixture(scope="session")
def ceremony(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 2-of-3 threshold key dealt by ``roles.keygen`` into files (public-key.json, key-share-<i>.json)."""
    from privacy_core.secure.roles import keygen

    return keygen(tmp_path_factory.mktemp("ceremony") / "keys", holders=3, threshold=2, bits=TEST_KEY_BITS)


@pytest.fixture(scope="session")
def other_ceremony(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Another 2-of-3 key, for wrong-key envelopes and shares."""
    from privacy_core.secure.roles import keygen

    return keygen(tmp_path_factory.mktemp("other") / "keys", holders=3, threshold=2, bits=TEST_KEY_BITS)


#: The round every protocol test opens unless it says otherwise: four sites, at least three, one may collude.
ROUND_DEFAULTS: dict[str, Any] = {
    "statistic": "counts",
    "length": 10,
    "value_bound": 100,
    "resolution": "1",
    "contribution_bound": 1,
    "l2_sensitivity_sq": 1,
    "sites": ["A", "B", "C", "D"],
    "min_sites": 3,
    "collusion": 1,
    "rho": "1/2",
    "delta": 1e-6,
    "dataset": "cohort",
}


@pytest.fixture
def open_test_round(ceremony: dict[str, Any]) -> Any:
    """``open_test_round(exchange, round_id, **overrides)``: open a round under ``ceremony``'s key, deadline in 1 h."""
    import datetime as dt

    from privacy_core.secure.roles import open_round

    def opener(exchange: str, round_id: str, **overrides: Any) -> dict[str, Any]:
        settings = {**ROUND_DEFAULTS, "public_key": ceremony["public_key"]}
        settings["deadline"] = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        settings.update(overrides)
        summary: dict[str, Any] = open_round(exchange, round_id, **settings)
        return summary

    return opener
