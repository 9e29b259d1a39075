"""Describing and measuring the machine a benchmark runs on: shared by the ``bench_*.py`` scripts.

The scripts run as ``python benchmarks/bench_x.py``, so this folder is ``sys.path[0]`` and they import this
module as ``_machine`` (not as a package).

- what the machine is: :func:`environment`, :func:`package_version`, :func:`cpu_model`, :func:`usable_cpus`,
  :func:`load_average`, :func:`machine_line` (the same facts as one markdown line);
- what else runs on it: :func:`other_benchmarks`;
- what a run costs it: :class:`RssSampler` (summed RSS and CPU time of this process tree);
- what the run says while it goes: :func:`progress`, :func:`command_line`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

GB = 1e9
#: Seconds between two RSS samples.
SAMPLE_SECONDS = 0.1


def progress(message: str) -> None:
    """``message`` on stderr with the time of day in front."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """The command that ran ``script`` (``benchmarks/bench_x.py``) with ``argv`` (or the real arguments)."""
    return " ".join([f"python {script}", *(sys.argv[1:] if argv is None else argv)])


# ---------------------------------------------------------------------- what the machine is
def utc_now() -> str:
    """Now in UTC, to the second, as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def package_version(dist: str) -> str | None:
    """The installed version of the distribution ``dist``, or None where it is not installed."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str | None:
    """The CPU's model name from ``/proc/cpuinfo``; None where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def usable_cpus() -> int | None:
    """How many CPUs this process may run on (its affinity); None where the platform cannot say."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def load_average(ndigits: int | None = None) -> list[float] | None:
    """The 1, 5 and 15 minute load averages (rounded to ``ndigits`` when given); None where unsupported."""
    if not hasattr(os, "getloadavg"):
        return None
    loads = list(os.getloadavg())
    return loads if ndigits is None else [round(x, ndigits) for x in loads]


def environment(dists: Sequence[str]) -> dict[str, Any]:
    """Versions (this project's and ``dists``) and machine facts recorded with every result."""
    import psutil

    from privacy_core import __version__

    return {
        "date_utc": utc_now(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable_cpus(),
        "memory_total_gb": round(psutil.virtual_memory().total / GB, 1),
        "load_average_at_start": load_average(2),
        "versions": {"airflow-imaging-privacy": __version__, **{dist: package_version(dist) for dist in dists}},
    }


def machine_line(env: dict[str, Any]) -> str:
    """The start of a report's header line: python, versions and CPUs of ``env`` (ends with ``"; "``)."""
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    return f"python {env['python']}, {versions}; cpus {env['cpu_count']} (usable {env['cpus_usable']}); "


# ---------------------------------------------------------------------- what else runs on it
def other_benchmarks() -> list[str]:
    """Command lines of other benchmark processes running now: they would share the cores with this one."""
    import psutil

    own = {os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))}
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if process.info["pid"] not in own and "benchmarks/bench_" in command:
            found.append(command)
    return found


# ---------------------------------------------------------------------- what a run costs it
@dataclass(eq=False)
class Peak:
    """The largest summed RSS seen while a window was open, and how many processes made it up."""

    rss_bytes: int = 0
    processes: int = 0


class RssSampler:
    """Samples the RSS of this process plus all its children (recursively) every ``interval`` seconds.

    RSS counts shared pages (libraries, the mapped interpreter) once per process, so the sum overstates what the
    machine really uses; it is a fair upper bound and the same method for every configuration and size. Dask
    workers are grandchildren (under their nannies), so they are included.
    """

    def __init__(self, interval: float = SAMPLE_SECONDS) -> None:
        import psutil

        self.interval = interval
        self.samples = 0
        self.peak = Peak()
        self._psutil = psutil
        self._root = psutil.Process()
        self._windows: list[Peak] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _processes(self) -> list[Any]:
        try:
            return [self._root, *self._root.children(recursive=True)]
        except self._psutil.Error:
            return [self._root]

    def sample(self) -> int:
        """Take one sample now, record it in the open windows, and return the summed RSS in bytes."""
        total, count = 0, 0
        for process in self._processes():
            try:
                total += process.memory_info().rss
                count += 1
            except self._psutil.Error:  # a process that ended between listing and reading
                continue
        with self._lock:
            self.samples += 1
            for peak in (self.peak, *self._windows):
                if total > peak.rss_bytes:
                    peak.rss_bytes, peak.processes = total, count
        return total

    def cpu_seconds(self) -> dict[int, float]:
        """User + system CPU seconds so far of this process and each child, by process id."""
        out: dict[int, float] = {}
        for process in self._processes():
            try:
                times = process.cpu_times()
            except self._psutil.Error:
                continue
            out[process.pid] = times.user + times.system
        return out

    def machine_busy_seconds(self) -> float:
        """CPU seconds the whole machine has spent busy (every process, all cores) since boot."""
        times = self._psutil.cpu_times()
        return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    @contextlib.contextmanager
    def window(self) -> Iterator[Peak]:
        """The peak over the ``with`` body (one sample at each end, so short bodies are covered too)."""
        peak = Peak()
        with self._lock:
            self._windows.append(peak)
        self.sample()
        try:
            yield peak
        finally:
            self.sample()
            with self._lock:
                self._windows.remove(peak)
