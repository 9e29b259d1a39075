"""The Dask execution layer: an embedded cluster by default, an existing scheduler by address, and a lost
worker mid-run that costs time but never correctness."""

from __future__ import annotations

import functools
import os
import signal
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.ndimage
import zarr

from privacy_core.errors import ConfigurationError
from privacy_core.imaging.compute import WORKER_MALLOC_ENV, DaskConfig, dask_client

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"workers": 0}, "at least 1"), ({"address": "scheduler:8786"}, "has no protocol")],
)
def test_bad_config_says_what_to_change(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        DaskConfig(**kwargs)  # type: ignore[arg-type]


def test_describe() -> None:
    assert DaskConfig(address="tcp://h:8786").describe() == "tcp://h:8786"
    assert DaskConfig(workers=3).describe() == "local:3"


def test_embedded_cluster_is_processes_with_one_thread_each() -> None:
    with dask_client(DaskConfig(workers=2)) as client:
        workers = client.scheduler_info()["workers"].values()
        assert len(workers) == 2
        assert all(w["nthreads"] == 1 for w in workers)
        assert len(set(client.run(os.getpid).values())) == 2  # separate processes
        trims = set(client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_").values())
        assert trims == {WORKER_MALLOC_ENV["MALLOC_TRIM_THRESHOLD_"]}  # glibc keeps adapting its mmap threshold


def test_existing_scheduler_by_address() -> None:
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0")
    with cluster, dask_client(DaskConfig(address=cluster.scheduler_address)) as client:
        assert client.submit(sum, [1, 2, 3]).result() == 6


def test_unreachable_scheduler_is_a_clear_error() -> None:
    with (
        pytest.raises(ConfigurationError, match="cannot reach"),
        dask_client(DaskConfig(address="tcp://127.0.0.1:9", connect_timeout=2)),
    ):
        pass


def test_killed_worker_mid_run_still_gives_the_reference_result(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    data = rng.normal(size=(48, 192, 192)).astype(np.float32)
    kernel = functools.partial(scipy.ndimage.gaussian_filter, sigma=(0, 6, 6))
    source = da.from_array(data, chunks=(2, 192, 192))
    graph = source.map_blocks(kernel, dtype=np.float32, meta=np.empty((0, 0, 0), np.float32))
    with dask.config.set(scheduler="synchronous"):
        expected = graph.compute()
    out = zarr.create_array(store=str(tmp_path / "out.zarr"), shape=data.shape, chunks=(2, 192, 192), dtype="float32")
    with dask_client(DaskConfig(workers=2)) as client:
        pids = sorted(client.run(os.getpid).values())
        stored = da.store(graph, out, lock=False, compute=False)  # type: ignore[arg-type]  # chunks = zarr chunks
        future = client.compute(stored)
        deadline = time.monotonic() + 30
        while not any(t.get("state") == "memory" for t in client.run_on_scheduler(_task_states).values()):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert not future.done()  # the kill lands mid-run
        os.kill(pids[0], signal.SIGKILL)
        future.result(timeout=180)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "out.zarr"), mode="r")[:], expected)


def _task_states(dask_scheduler: object) -> dict[str, dict[str, str]]:
    """Task states as the scheduler sees them (run on the scheduler)."""
    tasks = getattr(dask_scheduler, "tasks", {})
    return {str(key): {"state": ts.state} for key, ts in tasks.items()}
