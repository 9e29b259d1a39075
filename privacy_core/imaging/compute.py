"""The one place an operation gets a Dask client: an embedded local cluster, or an existing scheduler.

Work is submitted as Dask array graphs; arrays are never pulled whole into this process. The embedded
cluster uses processes with one thread each (pixel kernels hold the GIL in places, and one core per
worker makes memory per worker predictable), sized to the machine.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from privacy_core.errors import ConfigurationError

#: glibc settings for worker processes. distributed starts workers with MALLOC_TRIM_THRESHOLD_=65536, which
#: freezes glibc's adaptive mmap threshold: every decoded 4 MiB chunk then becomes a fresh mmap, faulted in
#: again. Measured on a 2 GB array: blur and DP-Pix ran about 1.3x faster per worker with these values
#: (benchmarks/bench_pixels.py --worker-env ...). Memory stays bounded (the same doubling test passes).
WORKER_MALLOC_ENV = {"MALLOC_TRIM_THRESHOLD_": "134217728", "MALLOC_MMAP_THRESHOLD_": "67108864"}

if TYPE_CHECKING:
    from distributed import Client


@dataclass(frozen=True)
class DaskConfig:
    """Where to run: ``address`` of an existing scheduler, or None for an embedded local cluster.

    :param address: e.g. ``tcp://scheduler:8786``; None starts a local cluster for the duration of the work.
    :param workers: local cluster size; None means one worker per core.
    :param memory_limit: per local worker (``"auto"`` divides the machine's memory between workers).
    :param connect_timeout: seconds to keep trying to reach ``address``.
    """

    address: str | None = None
    workers: int | None = None
    memory_limit: str = "auto"
    connect_timeout: float = 20.0

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ConfigurationError("workers", f"must be at least 1, got {self.workers}", "use 1 or more")
        if self.address is not None and "://" not in self.address:
            raise ConfigurationError(
                "address", f"{self.address!r} has no protocol", "write it as tcp://host:port (or tls://...)"
            )

    def describe(self) -> str:
        """A short text for records: the scheduler address or the local cluster size."""
        return self.address or f"local:{self.workers or os.cpu_count() or 1}"


@contextlib.contextmanager
def dask_client(config: DaskConfig | None = None) -> Iterator[Client]:
    """Yield a connected client; a local cluster started here is shut down on exit.

    :raises ConfigurationError: the scheduler at ``config.address`` cannot be reached.
    """
    from distributed import Client, LocalCluster

    config = config or DaskConfig()
    if config.address:
        try:
            client = Client(config.address, timeout=config.connect_timeout, set_as_default=False)
        except OSError as exc:
            raise ConfigurationError(
                "dask address", f"cannot reach {config.address} ({type(exc).__name__})", "check the scheduler is up"
            ) from exc
        try:
            yield client
        finally:
            client.close()
        return
    import dask

    workers = config.workers or os.cpu_count() or 1
    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **WORKER_MALLOC_ENV}
    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ": environ}),
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            memory_limit=config.memory_limit,
            silence_logs=40,
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        yield client
