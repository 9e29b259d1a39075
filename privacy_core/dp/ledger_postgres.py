"""The PostgreSQL backend of the budget ledger (psycopg 3), for ledgers shared by many workers and hosts.

Tables live in their own schema, named by the URL's ``schema`` query parameter (default ``privacy_ledger``),
which is taken out before the URL goes to libpq: ``postgresql://user@host:5432/db?schema=dp_budget``.
Each write transaction locks its dataset's head row with ``SELECT ... FOR UPDATE``, so appends to one
dataset are serialized while other datasets proceed. Tables, index and the triggers that refuse UPDATE,
DELETE and TRUNCATE of entries are created once, under an advisory lock, so concurrent first opens are safe.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Final
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg

from privacy_core.dp.ledger import BudgetLedger
from privacy_core.dp.ledger_entries import Row
from privacy_core.dp.ledger_sql import SqlTransaction
from privacy_core.dp.ledger_urls import redact_url, scrub
from privacy_core.errors import ConfigurationError, LedgerUnavailableError

DEFAULT_SCHEMA: Final = "privacy_ledger"
#: Seconds to wait for the server when the URL sets no ``connect_timeout``.
CONNECT_TIMEOUT_SECONDS: Final = 10
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def split_schema(url: str) -> tuple[str, str]:
    """``url`` without its ``schema`` query parameter, and that schema (or the default).

    >>> split_schema("postgresql://u@h:5432/db?schema=dp&sslmode=disable")
    ('postgresql://u@h:5432/db?sslmode=disable', 'dp')
    """
    parts = urlsplit(url)
    schema = DEFAULT_SCHEMA
    kept = []
    for piece in parts.query.split("&"):
        name, _, value = piece.partition("=")
        if name == "schema":
            schema = unquote(value)
        elif piece:
            kept.append(piece)
    if not _SCHEMA_NAME.match(schema):
        raise ConfigurationError(
            "schema", f"{schema!r} is not a plain SQL name", "use letters, digits and underscores, at most 63"
        )
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "&".join(kept), parts.fragment)), schema


def _ddl(schema: str) -> list[str]:
    s = f'"{schema}"'
    refuse = (
        f"CREATE OR REPLACE FUNCTION {s}.ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'privacy budget ledger entries are append-only'; END $$"
    )
    return [
        f"CREATE SCHEMA IF NOT EXISTS {s}",
        f"""CREATE TABLE IF NOT EXISTS {s}.ledger_datasets (
            dataset text PRIMARY KEY,
            accounting text NOT NULL,
            cap text NOT NULL,
            delta double precision,
            spent text NOT NULL,
            reserved text NOT NULL,
            last_seq bigint NOT NULL,
            head_hash text NOT NULL
        )""",
        f"""CREATE TABLE IF NOT EXISTS {s}.ledger_entries (
            dataset text NOT NULL REFERENCES {s}.ledger_datasets (dataset),
            seq bigint NOT NULL,
            kind text NOT NULL,
            spend_key text,
            cost text,
            cap text NOT NULL,
            spent text NOT NULL,
            reserved text NOT NULL,
            payload text NOT NULL,
            created_at text NOT NULL,
            prev_hash text NOT NULL,
            entry_hash text NOT NULL,
            PRIMARY KEY (dataset, seq)
        )""",
        f"CREATE INDEX IF NOT EXISTS ledger_entries_by_key ON {s}.ledger_entries (dataset, spend_key, seq)",
        refuse,
    ]


_TRIGGERS: Final = {
    "ledger_entries_no_update": "BEFORE UPDATE ON {t} FOR EACH ROW",
    "ledger_entries_no_delete": "BEFORE DELETE ON {t} FOR EACH ROW",
    "ledger_entries_no_truncate": "BEFORE TRUNCATE ON {t} FOR EACH STATEMENT",
}


class PostgresLedger(BudgetLedger):
    """A :class:`BudgetLedger` in a PostgreSQL schema; see the module docstring for the URL."""

    def __init__(self, url: str) -> None:
        self._shown = redact_url(url)
        conninfo, self.schema = split_schema(url)
        self._datasets = f'"{self.schema}".ledger_datasets'
        self._entries = f'"{self.schema}".ledger_entries'
        has_timeout = "connect_timeout=" in urlsplit(conninfo).query
        try:
            if has_timeout:
                self._conn = psycopg.connect(conninfo, autocommit=True)
            else:
                self._conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS)
        except psycopg.Error as exc:
            raise LedgerUnavailableError(self._shown, scrub(str(exc).strip(), url)) from None
        try:
            self._create_tables()
        except psycopg.Error as exc:
            self._conn.close()
            raise LedgerUnavailableError(
                self._shown, f"cannot create the ledger tables: {scrub(str(exc), url)}"
            ) from None

    @property
    def url(self) -> str:
        return self._shown

    def close(self) -> None:
        self._conn.close()

    def _missing_triggers(self) -> list[str]:
        """The append-only triggers not there yet (all of them when the tables are missing)."""
        rows = self._conn.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(%s)", (self._entries,)
        ).fetchall()
        return sorted(set(_TRIGGERS) - {str(row[0]) for row in rows})

    def _create_tables(self) -> None:
        if not self._missing_triggers():
            return
        lock = int.from_bytes(
            hashlib.sha256(f"privacy_core.dp.ledger:{self.schema}".encode()).digest()[:8], "big", signed=True
        )
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
            for statement in _ddl(self.schema):
                self._conn.execute(statement.encode())
            for name in self._missing_triggers():
                timing = _TRIGGERS[name].format(t=self._entries)
                self._conn.execute(
                    f'CREATE TRIGGER {name} {timing} EXECUTE FUNCTION "{self.schema}".ledger_refuse_change()'.encode()
                )

    def _run(self, sql: str, params: Sequence[object]) -> list[Row]:
        cursor = self._conn.execute(sql.replace("?", "%s").encode(), tuple(params))
        return cursor.fetchall() if cursor.description is not None else []

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[SqlTransaction]:
        with self._conn.transaction():
            if not write:
                # One snapshot for every read of the transaction, as SQLite's WAL gives.
                self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield SqlTransaction(self._run, self._datasets, self._entries, "FOR UPDATE")
