"""Fixtures for runs that span several OS processes on this machine: a real Dask scheduler and workers on
loopback, Airflow homes sharing one migrated metadata database, and the ledger tests' PostgreSQL gate."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

# The same fresh-schema fixture, and so the same skip-or-fail gate, as tests/dp/test_ledger.py.
from tests.dp.conftest import postgres_url

__all__ = ["AIRFLOW", "REPO", "ExternalDaskCluster", "airflow_env", "log_tail", "postgres_url", "stop_process_group"]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
AIRFLOW = str(BIN / "airflow")
DASK = str(BIN / "dask")
#: Workers the external cluster starts, each one process with one thread, as the embedded cluster runs them.
WORKERS = 2
#: Seconds allowed for a process to come up: generous, because others share this 2-core machine.
STARTUP_TIMEOUT = 120.0
#: Seconds a process gets to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 30.0


def log_tail(path: Path, chars: int = 4000) -> str:
    """The end of a log file, for failure messages."""
    return path.read_text(errors="replace")[-chars:] if path.is_file() else f"(no log at {path})"


@dataclass
class _Started:
    """A process this module started in a session (and so a process group) of its own, and its log."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    drain: threading.Thread | None = None

    def stop(self) -> None:
        """Stop the process and its children, then let its drain thread finish."""
        stop_process_group(self.process)
        if self.drain is not None:
            self.drain.join(timeout=STOP_TIMEOUT)


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to a process started in a session of its own (so to its children too); SIGKILL to whatever of
    the group is left after STOP_TIMEOUT, or outlived its leader (a nanny's worker)."""
    if process.poll() is None:
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)
    _signal_group(process.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group has exited already
        os.killpg(pgid, sig)


@dataclass(frozen=True)
class ExternalDaskCluster:
    """A scheduler and its workers, each a separate OS process on 127.0.0.1 that the fixture started.

    :param address: the scheduler's address, as the scheduler file gives it.
    :param scheduler_pid: the ``dask scheduler`` process.
    :param worker_pids: the ``dask worker`` processes (nannies); each worker runs as a child of one of them.
    :param logs: every process's log file.
    """

    address: str
    scheduler_file: Path
    scheduler_pid: int
    worker_pids: frozenset[int]
    logs: tuple[Path, ...] = ()

    def log_tails(self) -> str:
        """The end of every process's log, for failure messages."""
        return "\n".join(f"--- {log.name}\n{log_tail(log, 2000)}" for log in self.logs)


def _watch_for_address(stream: IO[bytes], log: Path, found: list[str], ready: threading.Event) -> None:
    """Copy the scheduler's output to its log, note the address it announces, and signal: on the address, or
    at end of output (the scheduler died), so the fixture's wait ends either way."""
    with log.open("wb") as out:
        for line in stream:
            out.write(line)
            out.flush()
            text = line.decode(errors="replace")
            if not found and "Scheduler at:" in text:
                found.append(text.split("Scheduler at:", 1)[1].strip())
                ready.set()
    ready.set()


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExternalDaskCluster]:
    """A real Dask scheduler and two single-threaded workers as separate OS processes on loopback (the
    deployment a ``dask`` Connection points at), up once both workers registered; stopped, terminate then kill,
    whatever happened."""
    from distributed import Client

    root = tmp_path_factory.mktemp("dask-cluster")
    scheduler_file = root / "scheduler.json"
    # The workers unpickle privacy_core's functions: they run from the repository, with it on their path.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    started: list[_Started] = []

    def start(name: str, args: list[str], *, pipe: bool = False) -> _Started:
        log = root / f"{name}.log"
        with log.open("wb") as out:  # a piped process's output reaches its log through its drain thread
            process = subprocess.Popen(
                [DASK, *args],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipe else out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: teardown signals it and its children only
            )
        started.append(_Started(name, process, log))
        return started[-1]

    try:
        scheduler = start(
            "scheduler",
            # The idle timeout only matters if this test process dies without its teardown: then it ends the
            # orphaned scheduler, and the workers follow after their death timeout.
            [
                *("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"),
                *("--idle-timeout", "30 minutes", "--scheduler-file", str(scheduler_file)),
            ],
            pipe=True,
        )
        assert scheduler.process.stdout is not None
        found: list[str] = []
        ready = threading.Event()
        scheduler.drain = threading.Thread(
            target=_watch_for_address, args=(scheduler.process.stdout, scheduler.log, found, ready), daemon=True
        )
        scheduler.drain.start()
        for i in range(WORKERS):
            start(
                f"worker-{i}",
                [
                    *("worker", "--nworkers", "1", "--nthreads", "1", "--no-dashboard", "--name", f"external-{i}"),
                    *("--death-timeout", "120", "--scheduler-file", str(scheduler_file)),
                ],
            )
        if not ready.wait(STARTUP_TIMEOUT) or not found:
            pytest.fail(f"the Dask scheduler did not start:\n{log_tail(scheduler.log)}")
        try:
            with Client(found[0], timeout=STARTUP_TIMEOUT, set_as_default=False) as client:  # type: ignore[no-untyped-call]
                client.wait_for_workers(WORKERS, timeout=STARTUP_TIMEOUT)
                address = client.scheduler.address
        except (OSError, TimeoutError) as exc:
            tails = "\n".join(f"--- {s.name}\n{log_tail(s.log, 2000)}" for s in started)
            pytest.fail(f"the external Dask cluster did not come up ({type(exc).__name__}: {exc}):\n{tails}")
        yield ExternalDaskCluster(
            address=address,
            scheduler_file=scheduler_file,
            scheduler_pid=scheduler.process.pid,
            worker_pids=frozenset(s.process.pid for s in started[1:]),
            logs=tuple(s.log for s in started),
        )
    finally:  # on success, on a failed start and on a failed test alike; workers first
        for s in reversed(started):
            s.stop()


@pytest.fixture(scope="session")
def migrated_airflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Airflow metadata database (SQLite) migrated once per test process, so each Airflow home below
    starts from a copy instead of paying ``airflow db migrate`` (about 10 s of CPU) again."""
    home = tmp_path_factory.mktemp("airflow-template")
    database = home / "airflow.db"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{database}",
    }
    migrate = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, check=False)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    return database


def airflow_env(home: Path, template_db: Path, dags_folder: Path, **variables: str) -> dict[str, str]:
    """The environment of an ``airflow`` command in a new Airflow home of its own (a copy of the migrated
    database, its own config and logs), with the DAG folder and ``variables`` (connections, settings) set."""
    home.mkdir(parents=True)
    shutil.copyfile(template_db, home / "airflow.db")
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        **variables,
    }
