"""The SQLite backend of the budget ledger: one file, WAL mode, one writer at a time.

Every write is a ``BEGIN IMMEDIATE`` transaction, which takes the database's write lock before it reads, so
two processes can never both read the same head and both append. Waiting writers retry for
:data:`BUSY_TIMEOUT_SECONDS`. ``synchronous=FULL`` makes a commit durable before it returns: a spend the
ledger forgets after a power cut could be spent twice. Triggers refuse UPDATE and DELETE of entries.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from privacy_core.dp.ledger import BudgetLedger
from privacy_core.dp.ledger_entries import Row
from privacy_core.dp.ledger_sql import SqlTransaction
from privacy_core.errors import ConfigurationError, LedgerUnavailableError

#: How long a writer waits for another process's write transaction before failing.
BUSY_TIMEOUT_SECONDS: Final = 30.0

_APPEND_ONLY = "SELECT RAISE(ABORT, 'privacy budget ledger entries are append-only')"
SCHEMA_SQL: Final = (
    """CREATE TABLE IF NOT EXISTS ledger_datasets (
        dataset TEXT PRIMARY KEY,
        accounting TEXT NOT NULL,
        cap TEXT NOT NULL,
        delta REAL,
        spent TEXT NOT NULL,
        reserved TEXT NOT NULL,
        last_seq INTEGER NOT NULL,
        head_hash TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS ledger_entries (
        dataset TEXT NOT NULL REFERENCES ledger_datasets (dataset),
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        spend_key TEXT,
        cost TEXT,
        cap TEXT NOT NULL,
        spent TEXT NOT NULL,
        reserved TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        entry_hash TEXT NOT NULL,
        PRIMARY KEY (dataset, seq)
    )""",
    "CREATE INDEX IF NOT EXISTS ledger_entries_by_key ON ledger_entries (dataset, spend_key, seq)",
    f"CREATE TRIGGER IF NOT EXISTS ledger_entries_no_update BEFORE UPDATE ON ledger_entries BEGIN {_APPEND_ONLY}; END",
    f"CREATE TRIGGER IF NOT EXISTS ledger_entries_no_delete BEFORE DELETE ON ledger_entries BEGIN {_APPEND_ONLY}; END",
)


class SqliteLedger(BudgetLedger):
    """A :class:`BudgetLedger` in the SQLite file ``path`` (created with its tables if missing)."""

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        if str(path) != ":memory:" and not self._path.parent.is_dir():
            raise ConfigurationError(
                "url",
                f"the folder {self._path.parent} of the SQLite ledger does not exist",
                "create it, or use another path",
            )
        try:
            self._conn = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        except sqlite3.Error as exc:
            raise LedgerUnavailableError(self.url, f"SQLite: {exc}") from None
        try:
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            with self._transaction(write=True):
                for statement in SCHEMA_SQL:
                    self._conn.execute(statement)
        except sqlite3.Error as exc:
            self._conn.close()
            raise LedgerUnavailableError(self.url, f"SQLite: {exc}") from None

    @property
    def url(self) -> str:
        return f"sqlite://{self._path}" if self._path.is_absolute() else str(self._path)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    def close(self) -> None:
        self._conn.close()

    def _run(self, sql: str, params: Sequence[object]) -> list[Row]:
        return self._conn.execute(sql, tuple(params)).fetchall()

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[SqlTransaction]:
        # A deferred BEGIN still gives reads one consistent snapshot in WAL mode.
        self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield SqlTransaction(self._run, "ledger_datasets", "ledger_entries", "")
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
