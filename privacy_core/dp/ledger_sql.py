"""The ledger's SQL: :class:`SqlTransaction` and the column lists, written once for both backends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from privacy_core.dp.ledger_entries import Head, LedgerEntry, Row
from privacy_core.dp.ledger_values import canonical_json

__all__ = ["ENTRY_COLUMNS", "HEAD_COLUMNS", "SqlTransaction"]

#: Columns of the entries table, in the order every query selects them.
ENTRY_COLUMNS: Final = (
    "dataset, seq, kind, spend_key, cost, cap, spent, reserved, payload, created_at, prev_hash, entry_hash"
)
HEAD_COLUMNS: Final = "dataset, accounting, cap, delta, spent, reserved, last_seq, head_hash"


class SqlTransaction:
    """The ledger's reads and writes inside one open transaction, in SQL both backends accept.

    :param run: executes one statement with ``?`` placeholders and returns its rows (none for writes).
    :param datasets: the (quoted, qualified) name of the head-row table.
    :param entries: the name of the entries table.
    :param lock: the clause that row-locks a selected head row (``FOR UPDATE``; empty for SQLite, whose
        ``BEGIN IMMEDIATE`` already holds the database's one write lock).
    """

    def __init__(
        self, run: Callable[[str, Sequence[object]], list[Row]], datasets: str, entries: str, lock: str
    ) -> None:
        self._run = run
        self._datasets = datasets
        self._entries = entries
        self._lock = lock

    def head(self, dataset: str, *, lock: bool) -> Head | None:
        sql = f"SELECT {HEAD_COLUMNS} FROM {self._datasets} WHERE dataset = ?"
        rows = self._run(sql + (f" {self._lock}" if lock and self._lock else ""), (dataset,))
        if not rows:
            return None
        name, accounting, cap, delta, spent, reserved, last_seq, head_hash = rows[0]
        return Head(
            name, accounting, cap, None if delta is None else float(delta), spent, reserved, int(last_seq), head_hash
        )

    def insert_head(self, head: Head) -> bool:
        """Insert a new head row; False if the dataset exists (created concurrently)."""
        sql = f"INSERT INTO {self._datasets} ({HEAD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        return bool(self._run(sql + "ON CONFLICT (dataset) DO NOTHING RETURNING dataset", head.values()))

    def update_head(self, head: Head) -> None:
        sql = f"UPDATE {self._datasets} SET cap = ?, spent = ?, reserved = ?, last_seq = ?, head_hash = ?"
        sql += " WHERE dataset = ?"
        self._run(sql, (head.cap, head.spent, head.reserved, head.last_seq, head.head_hash, head.dataset))

    def insert_entry(self, entry: LedgerEntry) -> None:
        record = entry.record()
        values = (
            entry.dataset,
            entry.seq,
            entry.kind,
            entry.key,
            record["cost"],
            record["totals"]["cap"],
            record["totals"]["spent"],
            record["totals"]["reserved"],
            canonical_json(entry.payload).decode(),
            entry.created_at,
            entry.prev_hash,
            entry.entry_hash,
        )
        self._run(f"INSERT INTO {self._entries} ({ENTRY_COLUMNS}) VALUES ({', '.join('?' * 12)})", values)

    def last_row(self, dataset: str) -> Row | None:
        sql = f"SELECT {ENTRY_COLUMNS} FROM {self._entries} WHERE dataset = ? ORDER BY seq DESC LIMIT 1"
        rows = self._run(sql, (dataset,))
        return rows[0] if rows else None

    def row(self, dataset: str, seq: int) -> Row | None:
        rows = self._run(f"SELECT {ENTRY_COLUMNS} FROM {self._entries} WHERE dataset = ? AND seq = ?", (dataset, seq))
        return rows[0] if rows else None

    def key_rows(self, dataset: str, key: str) -> list[Row]:
        sql = f"SELECT {ENTRY_COLUMNS} FROM {self._entries} WHERE dataset = ? AND spend_key = ? ORDER BY seq"
        return self._run(sql, (dataset, key))

    def rows(self, dataset: str) -> list[Row]:
        return self._run(f"SELECT {ENTRY_COLUMNS} FROM {self._entries} WHERE dataset = ? ORDER BY seq", (dataset,))

    def dataset_names(self) -> list[str]:
        """Every dataset with a head row or an entry (an entry without a head is itself a finding)."""
        sql = f"SELECT dataset FROM {self._datasets} UNION SELECT dataset FROM {self._entries} ORDER BY 1"
        return [str(row[0]) for row in self._run(sql, ())]

    def count(self, dataset: str) -> int:
        return int(self._run(f"SELECT count(*) FROM {self._entries} WHERE dataset = ?", (dataset,))[0][0])
