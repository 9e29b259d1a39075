"""Ledger fixtures: every ledger test runs on SQLite and on PostgreSQL, each in a database of its own.

PostgreSQL is reached at ``postgresql://postgres@127.0.0.1:5432/test`` (or ``IMAGING_PRIVACY_TEST_POSTGRES_URL``),
and each test gets a fresh schema, ``ledger_test_<hex>``, passed to the ledger as the URL's ``schema`` query
parameter and dropped afterwards. Without a server the PostgreSQL half is skipped with the reason, unless
``IMAGING_PRIVACY_REQUIRE_POSTGRES=1`` or ``CI`` is set: CI must run it, so there a missing server fails.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
import pytest

from privacy_core.dp.ledger import BudgetLedger, open_ledger, redact_url, scrub
from privacy_core.dp.ledger_postgres import split_schema

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
URL_VARIABLE = "IMAGING_PRIVACY_TEST_POSTGRES_URL"
REQUIRE_VARIABLE = "IMAGING_PRIVACY_REQUIRE_POSTGRES"


def postgres_base_url() -> str:
    """The server the PostgreSQL tests use."""
    return os.environ.get(URL_VARIABLE) or DEFAULT_POSTGRES_URL


def postgres_required() -> bool:
    """Whether a missing server fails the tests instead of skipping them (always in CI)."""
    ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    return os.environ.get(REQUIRE_VARIABLE) == "1" or ci


@cache
def postgres_problem() -> str | None:
    """Why the server cannot be used, or None; asked once per test process."""
    try:
        with psycopg.connect(postgres_base_url(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def with_query(url: str, parameter: str) -> str:
    """``url`` with one more query parameter."""
    return f"{url}{'&' if '?' in url else '?'}{parameter}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A ledger URL in a fresh PostgreSQL schema, dropped after the test."""
    problem = postgres_problem()
    if problem is not None:
        base = postgres_base_url()
        message = (
            f"PostgreSQL not reachable at {redact_url(base)}: {scrub(problem, base)}; start it, or set "
            f"{URL_VARIABLE} to a server where the tests may create schemas"
        )
        if postgres_required():
            pytest.fail(f"{message} ({REQUIRE_VARIABLE}=1 or CI is set, so PostgreSQL tests must run)")
        pytest.skip(message)
    schema = f"ledger_test_{uuid.uuid4().hex[:16]}"
    yield with_query(postgres_base_url(), f"schema={schema}")
    with psycopg.connect(postgres_base_url(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'.encode())


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty ledger in each backend."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'ledger.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[BudgetLedger]:
    """An open ledger on ``ledger_url``."""
    with open_ledger(ledger_url) as opened:
        yield opened


@dataclass
class RawDatabase:
    """The ledger's database reached around the ledger, as someone editing it by hand would."""

    url: str

    @property
    def backend(self) -> str:
        return "sqlite" if self.url.startswith("sqlite://") else "postgresql"

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Run ``sql`` (``?`` placeholders, unqualified table names) in its own committed transaction."""
        if self.backend == "sqlite":
            conn = sqlite3.connect(self.url[len("sqlite://") :], isolation_level=None)
            try:
                return conn.execute(sql, tuple(params)).fetchall()
            finally:
                conn.close()
        conninfo, schema = split_schema(self.url)
        with psycopg.connect(conninfo, autocommit=True, options=f"-csearch_path={schema}") as pg:
            cursor = pg.execute(sql.replace("?", "%s").encode(), tuple(params))
            return cursor.fetchall() if cursor.description is not None else []

    def drop_append_only_guard(self) -> None:
        """Remove the triggers that refuse UPDATE and DELETE of entries: what an attacker with the
        database's owner rights can do, and what verify() must then still catch."""
        on = "" if self.backend == "sqlite" else " ON ledger_entries"
        for trigger in ("ledger_entries_no_update", "ledger_entries_no_delete"):
            self.execute(f"DROP TRIGGER {trigger}{on}")


@pytest.fixture
def raw_db(ledger_url: str) -> RawDatabase:
    """Direct SQL access to the database behind ``ledger``."""
    return RawDatabase(ledger_url)
