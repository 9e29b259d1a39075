"""DaskHook: the scheduler address from a Connection of type ``dask``."""

from __future__ import annotations

import pytest

from operators.hooks.dask import DaskHook


def test_class_attributes_follow_airflow_conventions() -> None:
    assert (DaskHook.conn_name_attr, DaskHook.default_conn_name, DaskHook.conn_type) == (
        "dask_conn_id",
        "dask_default",
        "dask",
    )


def test_address_from_host_port_and_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DASK_DEFAULT", '{"conn_type": "dask", "host": "sched", "port": 8786}')
    assert DaskHook().get_conn().address == "tcp://sched:8786"
    monkeypatch.setenv("AIRFLOW_CONN_TLS", '{"conn_type": "dask", "host": "s", "port": 1, "schema": "tls"}')
    assert DaskHook("tls").get_conn().address == "tls://s:1"


def test_address_from_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_X", '{"conn_type": "dask", "extra": {"address": "tcp://10.0.0.1:9000"}}')
    assert DaskHook("x").get_conn().address == "tcp://10.0.0.1:9000"


def test_test_connection_against_a_real_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        monkeypatch.setenv(
            "AIRFLOW_CONN_LIVE", f'{{"conn_type": "dask", "extra": {{"address": "{cluster.scheduler_address}"}}}}'
        )
        ok, message = DaskHook("live").test_connection()
    assert ok
    assert message == "connected; 1 workers"


def test_test_connection_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_DOWN",
        '{"conn_type": "dask", "host": "127.0.0.1", "port": 9, "extra": {"connect_timeout": 2}}',
    )
    ok, message = DaskHook("down").test_connection()
    assert not ok
    assert "cannot reach" in message
