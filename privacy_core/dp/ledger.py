"""The privacy-budget ledger: per dataset, a cap and an append-only, hash-chained log of spends.

A spend is two steps, each one database transaction: :meth:`BudgetLedger.reserve` holds its cost against the
cap (refusing, and writing nothing, if spent + reserved + cost would pass it), and :meth:`BudgetLedger.commit`
stores the *noisy* result and turns the hold into a spend (:meth:`BudgetLedger.abort` releases it). Writers
to one dataset are serialized by the database, so concurrent tasks can never exceed the cap together.

Every spend has an idempotency key, normally :func:`task_instance_key` of its Airflow task instance. A retry
with a committed key gets the stored result back and is charged nothing, so noise is never drawn twice for
one release; a retry whose earlier attempt crashed between reserve and commit takes that reservation over.
Callers commit the result before they publish it and publish :attr:`CommittedSpend.result`, never their own
copy: then the only noise ever seen is the noise the ledger holds.

Amounts are exact ``Fraction`` values stored as ``"num/den"`` text (ε for ``pure-dp``, ρ for ``zcdp``). Each
entry records the totals after it and the SHA-256 of its canonical JSON, which includes the previous entry's
hash, so :meth:`BudgetLedger.verify` detects any edit, deletion or reordering of history. The backends
(SQLite, PostgreSQL) only run SQL; the rules all live here and in the modules below this one:
:mod:`~privacy_core.dp.ledger_values`, :mod:`~privacy_core.dp.ledger_urls`,
:mod:`~privacy_core.dp.ledger_entries`, :mod:`~privacy_core.dp.ledger_sql` and
:mod:`~privacy_core.dp.ledger_verify`.
"""

from __future__ import annotations

import json
import os
import re
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from fractions import Fraction
from types import TracebackType
from typing import Any, Literal, Self

from privacy_core.dp.accounting import Accounting, check_accounting, zcdp_to_approx_dp
from privacy_core.dp.ledger_entries import GENESIS_PREV_HASH as GENESIS_PREV_HASH
from privacy_core.dp.ledger_entries import SCHEMA as SCHEMA
from privacy_core.dp.ledger_entries import EntryKind, LedgerEntry, _new_entry
from privacy_core.dp.ledger_entries import Head as Head
from privacy_core.dp.ledger_entries import Row as Row
from privacy_core.dp.ledger_entries import entry_from_row as entry_from_row
from privacy_core.dp.ledger_entries import entry_hash as entry_hash
from privacy_core.dp.ledger_entries import record_from_row as record_from_row
from privacy_core.dp.ledger_sql import ENTRY_COLUMNS as ENTRY_COLUMNS
from privacy_core.dp.ledger_sql import HEAD_COLUMNS as HEAD_COLUMNS
from privacy_core.dp.ledger_sql import SqlTransaction as SqlTransaction
from privacy_core.dp.ledger_urls import redact_url
from privacy_core.dp.ledger_urls import scrub as scrub
from privacy_core.dp.ledger_urls import url_passwords as url_passwords
from privacy_core.dp.ledger_values import MAX_DATASET_LENGTH as MAX_DATASET_LENGTH
from privacy_core.dp.ledger_values import MAX_KEY_LENGTH as MAX_KEY_LENGTH
from privacy_core.dp.ledger_values import _check_delta, _check_json_object, _check_name
from privacy_core.dp.ledger_values import canonical_json as canonical_json
from privacy_core.dp.ledger_values import exact_amount as exact_amount
from privacy_core.dp.ledger_values import fraction_text as fraction_text
from privacy_core.dp.ledger_values import parse_fraction_text as parse_fraction_text
from privacy_core.dp.ledger_verify import LedgerVerification, _tail_problem
from privacy_core.dp.ledger_verify import verify_rows as verify_rows
from privacy_core.errors import BudgetExceededError, ConfigurationError, LedgerIntegrityError

# The ``X as X`` imports above keep importable from here the names this module defined before it was split
# into the ledger_* modules; __all__ is the public API.
__all__ = [
    "BudgetLedger",
    "BudgetStatus",
    "CommittedSpend",
    "EntryKind",
    "LedgerEntry",
    "LedgerVerification",
    "Reservation",
    "open_ledger",
    "redact_url",
    "task_instance_key",
]


def task_instance_key(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
    """The idempotency key of one Airflow task instance: its retries share it, other instances never do.

    JSON-encoded, so no choice of ids can make two instances collide.

    >>> task_instance_key("release", "manual__2025-01-01", "count", 3)
    'ti:["release","manual__2025-01-01","count",3]'
    """
    for setting, value in (("dag_id", dag_id), ("run_id", run_id), ("task_id", task_id)):
        _check_name(value, setting, 250)
    if isinstance(map_index, bool) or not isinstance(map_index, int) or map_index < -1:
        raise ConfigurationError("map_index", f"is {map_index!r}", "give -1 for an unmapped task, else the index")
    return "ti:" + json.dumps([dag_id, run_id, task_id, map_index], separators=(",", ":"))


@dataclass(frozen=True)
class Reservation:
    """A cost held against a dataset's cap under ``key``, until :meth:`BudgetLedger.commit` or ``abort``.

    ``reserve_seq`` and ``entry_hash`` identify the reserve entry. ``attempt`` is 1 for a new reservation and
    counts up each time a retry takes it over.
    """

    dataset: str
    key: str
    cost: Fraction
    accounting: Accounting
    reserve_seq: int
    entry_hash: str
    attempt: int
    description: dict[str, Any]

    @property
    def taken_over(self) -> bool:
        """Whether this reservation was made by an earlier attempt that never committed."""
        return self.attempt > 1


@dataclass(frozen=True)
class CommittedSpend:
    """A committed spend and the released result it stored.

    ``reused`` is True when the spend was committed before (a retry, or a second commit): nothing was charged
    now and ``result`` is the stored one, which is what the caller must publish.
    """

    dataset: str
    key: str
    cost: Fraction
    accounting: Accounting
    result: dict[str, Any]
    reserve_seq: int
    commit_seq: int
    entry_hash: str
    reused: bool


@dataclass(frozen=True)
class BudgetStatus:
    """A dataset's budget, from its last entry. For ``zcdp`` with a δ, ``*_approx_dp`` give (ε, δ)."""

    dataset: str
    accounting: Accounting
    cap: Fraction
    delta: float | None
    spent: Fraction
    reserved: Fraction
    remaining: Fraction
    entries: int
    head_hash: str
    spent_approx_dp: tuple[float, float] | None
    cap_approx_dp: tuple[float, float] | None


def approx_dp_of(accounting: Accounting, amount: Fraction, delta: float | None) -> tuple[float, float] | None:
    """(ε, δ) of a zCDP ``amount`` at ``delta``; None for pure DP or without a δ."""
    if accounting != "zcdp" or delta is None:
        return None
    return (zcdp_to_approx_dp(amount, delta), delta)


@dataclass(frozen=True)
class _KeyState:
    """Where a key stands: its latest reservation, how many attempts hold it, and how it ended."""

    status: Literal["none", "pending", "committed", "aborted"]
    reserve: LedgerEntry | None = None
    attempt: int = 0
    closing: LedgerEntry | None = None


def _key_state(entries: list[LedgerEntry], reserve_seq: int | None = None) -> _KeyState:
    """Fold a key's entries; with ``reserve_seq``, the fate of that reservation instead of the latest."""
    state = _KeyState("none")
    for entry in entries:
        if entry.kind == "reserve" and (reserve_seq is None or entry.seq == reserve_seq):
            state = _KeyState("pending", entry, 1)
        elif state.reserve is None or entry.payload.get("reserve_seq") != state.reserve.seq:
            continue
        elif entry.kind == "takeover":
            state = replace(state, attempt=int(entry.payload["attempt"]))
        elif entry.kind in ("commit", "abort"):
            state = replace(state, status="committed" if entry.kind == "commit" else "aborted", closing=entry)
    return state


def _committed(reserve: LedgerEntry, commit: LedgerEntry, accounting: Accounting, *, reused: bool) -> CommittedSpend:
    assert reserve.key is not None and reserve.cost is not None
    return CommittedSpend(
        dataset=commit.dataset,
        key=reserve.key,
        cost=reserve.cost,
        accounting=accounting,
        result=commit.payload["result"],
        reserve_seq=reserve.seq,
        commit_seq=commit.seq,
        entry_hash=commit.entry_hash,
        reused=reused,
    )


def _unknown_dataset(dataset: str) -> ConfigurationError:
    return ConfigurationError(
        "dataset",
        f"{dataset!r} has no budget in this ledger",
        "create it with create_dataset(dataset, accounting, cap)",
    )


class BudgetLedger(ABC):
    """A privacy-budget ledger in one database; every method is one transaction.

    A ledger object holds one connection: use one per process or thread. Open it with :func:`open_ledger`.
    """

    @abstractmethod
    def _transaction(self, *, write: bool) -> AbstractContextManager[SqlTransaction]:
        """One transaction; a write transaction serializes with every other writer of the database (SQLite) or
        of the dataset whose head row it locks (PostgreSQL). Rolled back if the body raises."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""

    @property
    @abstractmethod
    def url(self) -> str:
        """The ledger's URL with any password replaced by ``***``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # -- datasets --

    def create_dataset(self, dataset: str, accounting: Accounting, cap: Fraction, delta: float | None = None) -> None:
        """Give ``dataset`` a budget of ``cap`` (ε for ``pure-dp``, ρ for ``zcdp``), starting its chain.

        Idempotent: calling it again with the same accounting and δ and either the original or the current
        cap does nothing, so a DAG may call it on every run.

        :param delta: ``zcdp`` only: the δ at which :meth:`status` also reads the cap and spend as (ε, δ)-DP.
        :raises ConfigurationError: for a bad argument, or a dataset that exists with other settings.
        """
        name = _check_name(dataset, "dataset", MAX_DATASET_LENGTH)
        kind = check_accounting(accounting)
        amount = exact_amount(cap, "cap")
        checked_delta = _check_delta(kind, delta)
        with self._transaction(write=True) as txn:
            head = txn.head(name, lock=True)
            if head is None:
                payload = {"accounting": kind, "cap": fraction_text(amount), "delta": checked_delta}
                genesis = _new_entry(None, name, "genesis", None, None, (amount, Fraction(0), Fraction(0)), payload)
                texts = genesis.record()["totals"]
                new_head = Head(
                    name, kind, texts["cap"], checked_delta, texts["spent"], texts["reserved"], 0, genesis.entry_hash
                )
                if txn.insert_head(new_head):
                    txn.insert_entry(genesis)
                    return
                head = txn.head(name, lock=True)  # another process created it in the meantime
                assert head is not None
            genesis_row = txn.row(name, 0)
            first_cap = json.loads(genesis_row[8]).get("cap") if genesis_row else None
        if head.accounting != kind:
            raise ConfigurationError(
                "accounting",
                f"dataset {name!r} exists with {head.accounting}, not {kind}",
                "a dataset's accounting cannot change; use a new dataset name",
            )
        if head.delta != checked_delta:
            raise ConfigurationError(
                "delta",
                f"dataset {name!r} exists with delta={head.delta}, not {checked_delta}",
                "pass the existing delta",
            )
        if fraction_text(amount) not in (head.cap, first_cap):
            raise ConfigurationError(
                "cap",
                f"dataset {name!r} exists with cap {head.cap}, not {amount}",
                f"pass cap={head.cap}, or raise it with raise_cap({name!r}, new_cap, reason)",
            )

    def raise_cap(self, dataset: str, new_cap: Fraction, reason: str) -> None:
        """Raise ``dataset``'s cap to ``new_cap``, recorded as a chained ``raise_cap`` entry with ``reason``.

        :raises ConfigurationError: if ``new_cap`` is not above the current cap (a cap never decreases).
        """
        name = _check_name(dataset, "dataset", MAX_DATASET_LENGTH)
        amount = exact_amount(new_cap, "new_cap")
        why = _check_name(reason, "reason", 2000)
        with self._transaction(write=True) as txn:
            head, cap, spent, reserved = self._locked(txn, name)
            if amount <= cap:
                raise ConfigurationError(
                    "new_cap",
                    f"is {amount}, not above the current cap {cap}",
                    "a cap can only increase; give a larger new_cap",
                )
            payload = {"old_cap": head.cap, "new_cap": fraction_text(amount), "reason": why}
            self._append(txn, head, "raise_cap", None, None, (amount, spent, reserved), payload)

    # -- spending --

    def check(self, dataset: str, cost: Fraction, key: str | None = None) -> None:
        """Raise :class:`BudgetExceededError` now if reserving ``cost`` would be refused; writes nothing.

        Lets an Airflow task fail cleanly before any work. With ``key``, a key that already holds a spend
        passes, since its retry is charged nothing.
        """
        name = _check_name(dataset, "dataset", MAX_DATASET_LENGTH)
        amount = exact_amount(cost, "cost")
        checked_key = None if key is None else _check_name(key, "key", MAX_KEY_LENGTH)
        with self._transaction(write=False) as txn:
            head = txn.head(name, lock=False)
            if head is None:
                raise _unknown_dataset(name)
            if checked_key is not None:
                state = _key_state([self._entry(name, r) for r in txn.key_rows(name, checked_key)])
                if state.status in ("pending", "committed"):
                    return
            last = txn.last_row(name)
        if last is None:
            raise LedgerIntegrityError(name, "the head row exists but the dataset has no entries")
        entry = self._entry(name, last)
        if entry.spent + entry.reserved + amount > entry.cap:
            raise BudgetExceededError(name, head.accounting, entry.cap, entry.spent, entry.reserved, amount)

    def reserve(
        self, dataset: str, key: str, cost: Fraction, description: dict[str, Any]
    ) -> Reservation | CommittedSpend:
        """Hold ``cost`` against ``dataset``'s cap under idempotency ``key``.

        - ``key`` already committed: returns that :class:`CommittedSpend` (``reused=True``); nothing is charged.
        - ``key`` reserved by an attempt that never committed: returns that reservation, taken over (a
          ``takeover`` entry counts the attempt); nothing more is charged.
        - otherwise (new, or aborted): a new reservation, if spent + reserved + cost fits the cap.

        :param key: :func:`task_instance_key` of the task instance, or any stable string naming the release.
        :param description: what the spend is for (query, mechanism, parameters); stored, so no data values.
        :raises BudgetExceededError: the cost does not fit; nothing was written.
        :raises ConfigurationError: a bad argument, an unknown dataset, or ``key`` holding a different cost.
        """
        name = _check_name(dataset, "dataset", MAX_DATASET_LENGTH)
        checked_key = _check_name(key, "key", MAX_KEY_LENGTH)
        amount = exact_amount(cost, "cost")
        described = _check_json_object(description, "description")
        with self._transaction(write=True) as txn:
            head, cap, spent, reserved = self._locked(txn, name)
            accounting = check_accounting(head.accounting)
            state = _key_state([self._entry(name, r) for r in txn.key_rows(name, checked_key)])
            if state.reserve is not None and state.status in ("pending", "committed"):
                if state.reserve.cost != amount:
                    raise ConfigurationError(
                        "cost",
                        f"key {checked_key!r} holds a {state.status} spend of {state.reserve.cost}, not {amount}",
                        "retry with the same cost, or use a new key for a different release",
                    )
                if state.closing is not None:
                    return _committed(state.reserve, state.closing, accounting, reused=True)
                attempt = state.attempt + 1
                payload = {"reserve_seq": state.reserve.seq, "attempt": attempt}
                self._append(txn, head, "takeover", checked_key, amount, (cap, spent, reserved), payload)
                return Reservation(
                    name,
                    checked_key,
                    amount,
                    accounting,
                    state.reserve.seq,
                    state.reserve.entry_hash,
                    attempt,
                    state.reserve.payload["description"],
                )
            if spent + reserved + amount > cap:
                raise BudgetExceededError(name, accounting, cap, spent, reserved, amount)
            totals = (cap, spent, reserved + amount)
            entry = self._append(txn, head, "reserve", checked_key, amount, totals, {"description": described})
        return Reservation(name, checked_key, amount, accounting, entry.seq, entry.entry_hash, 1, described)

    def commit(self, reservation: Reservation, result: dict[str, Any]) -> CommittedSpend:
        """Store ``result`` and turn ``reservation`` into a spend. Committing again returns the first commit.

        ``result`` is the released, noisy output only: never pass true values, which would then sit in the
        ledger. Publish the returned :attr:`CommittedSpend.result`.

        :raises ConfigurationError: ``reservation`` is not one of this ledger's, or it was aborted.
        """
        checked = self._check_reservation(reservation)
        released = _check_json_object(result, "result")
        with self._transaction(write=True) as txn:
            head, cap, spent, reserved = self._locked(txn, checked.dataset)
            state = self._reservation_state(txn, checked)
            assert state.reserve is not None
            if state.status == "committed" and state.closing is not None:
                return _committed(state.reserve, state.closing, checked.accounting, reused=True)
            if state.status == "aborted":
                raise ConfigurationError(
                    "reservation", f"key {checked.key!r} was aborted before this commit", "reserve() again, then commit"
                )
            totals = (cap, spent + checked.cost, reserved - checked.cost)
            payload = {"reserve_seq": checked.reserve_seq, "result": released}
            entry = self._append(txn, head, "commit", checked.key, checked.cost, totals, payload)
        return _committed(state.reserve, entry, checked.accounting, reused=False)

    def abort(self, reservation: Reservation, reason: str) -> None:
        """Release ``reservation``'s hold, recording ``reason``. Aborting twice does nothing.

        :raises ConfigurationError: ``reservation`` is not one of this ledger's, or it was committed.
        """
        checked = self._check_reservation(reservation)
        why = _check_name(reason, "reason", 2000)
        with self._transaction(write=True) as txn:
            head, cap, spent, reserved = self._locked(txn, checked.dataset)
            state = self._reservation_state(txn, checked)
            if state.status == "aborted":
                return
            if state.status == "committed":
                raise ConfigurationError(
                    "reservation", f"key {checked.key!r} is committed", "a committed spend cannot be released"
                )
            totals = (cap, spent, reserved - checked.cost)
            payload = {"reserve_seq": checked.reserve_seq, "reason": why}
            self._append(txn, head, "abort", checked.key, checked.cost, totals, payload)

    # -- reading --

    def status(self, dataset: str) -> BudgetStatus:
        """``dataset``'s cap, spend and reservations, from its last entry."""
        name = _check_name(dataset, "dataset", MAX_DATASET_LENGTH)
        with self._transaction(write=False) as txn:
            head = txn.head(name, lock=False)
            if head is None:
                raise _unknown_dataset(name)
            last = txn.last_row(name)
            count = txn.count(name)
        if last is None:
            raise LedgerIntegrityError(name, "the head row exists but the dataset has no entries")
        entry = self._entry(name, last)
        accounting = check_accounting(head.accounting)
        return BudgetStatus(
            dataset=name,
            accounting=accounting,
            cap=entry.cap,
            delta=head.delta,
            spent=entry.spent,
            reserved=entry.reserved,
            remaining=max(entry.cap - entry.spent - entry.reserved, Fraction(0)),
            entries=count,
            head_hash=entry.entry_hash,
            spent_approx_dp=approx_dp_of(accounting, entry.spent, head.delta),
            cap_approx_dp=approx_dp_of(accounting, entry.cap, head.delta),
        )

    def datasets(self) -> list[str]:
        """The names of every dataset this ledger holds, sorted; an auditor verifies them all."""
        with self._transaction(write=False) as txn:
            return txn.dataset_names()

    def entries(self, dataset: str) -> list[LedgerEntry]:
        """``dataset``'s log, genesis first.

        :raises LedgerIntegrityError: a row is not a valid entry (use :meth:`verify` to see every problem).
        """
        name = _check_name(dataset, "dataset", MAX_DATASET_LENGTH)
        with self._transaction(write=False) as txn:
            if txn.head(name, lock=False) is None:
                raise _unknown_dataset(name)
            rows = txn.rows(name)
        return [self._entry(name, row) for row in rows]

    def verify(self, dataset: str) -> LedgerVerification:
        """Recompute ``dataset``'s hash chain from genesis, replay its spends, and compare with the head row.

        Reports every problem found, and the index of the first bad entry; it never raises for a bad ledger.
        """
        name = _check_name(dataset, "dataset", MAX_DATASET_LENGTH)
        with self._transaction(write=False) as txn:
            head = txn.head(name, lock=False)
            rows = txn.rows(name)
        if head is None and not rows:
            raise _unknown_dataset(name)
        return verify_rows(name, head, rows)

    # -- internals --

    @staticmethod
    def _entry(dataset: str, row: Row) -> LedgerEntry:
        try:
            return entry_from_row(row)
        except ValueError as exc:
            raise LedgerIntegrityError(dataset, f"entry {row[1]} is not a valid entry ({exc})") from None

    def _locked(self, txn: SqlTransaction, dataset: str) -> tuple[Head, Fraction, Fraction, Fraction]:
        """Lock ``dataset``'s head row, check it against the last entry, and return it with cap, spent, reserved."""
        head = txn.head(dataset, lock=True)
        if head is None:
            raise _unknown_dataset(dataset)
        problem = _tail_problem(head, txn.last_row(dataset))
        if problem is not None:
            raise LedgerIntegrityError(dataset, problem)
        return head, parse_fraction_text(head.cap), parse_fraction_text(head.spent), parse_fraction_text(head.reserved)

    def _append(
        self,
        txn: SqlTransaction,
        head: Head,
        kind: EntryKind,
        key: str | None,
        cost: Fraction | None,
        totals: tuple[Fraction, Fraction, Fraction],
        payload: dict[str, Any],
    ) -> LedgerEntry:
        entry = _new_entry(head, head.dataset, kind, key, cost, totals, payload)
        txn.insert_entry(entry)
        texts = entry.record()["totals"]
        moved = replace(
            head,
            cap=texts["cap"],
            spent=texts["spent"],
            reserved=texts["reserved"],
            last_seq=entry.seq,
            head_hash=entry.entry_hash,
        )
        txn.update_head(moved)
        return entry

    @staticmethod
    def _check_reservation(reservation: object) -> Reservation:
        if not isinstance(reservation, Reservation):
            raise ConfigurationError(
                "reservation", f"is {type(reservation).__name__}", "pass the Reservation that reserve() returned"
            )
        return reservation

    def _reservation_state(self, txn: SqlTransaction, reservation: Reservation) -> _KeyState:
        """The fate of ``reservation``, after checking that its reserve entry is in this ledger as it says."""
        entries = [self._entry(reservation.dataset, r) for r in txn.key_rows(reservation.dataset, reservation.key)]
        state = _key_state(entries, reservation.reserve_seq)
        found = state.reserve
        if found is None or found.entry_hash != reservation.entry_hash or found.cost != reservation.cost:
            raise ConfigurationError(
                "reservation",
                f"no reservation of key {reservation.key!r} at entry {reservation.reserve_seq} of dataset "
                f"{reservation.dataset!r} in this ledger",
                "commit or abort only a Reservation that reserve() returned on this ledger",
            )
        return state


def open_ledger(url: str | os.PathLike[str]) -> BudgetLedger:
    """Open (creating its tables if needed) the ledger at ``url``.

    - ``sqlite:///abs/path.db`` (the path is everything after ``sqlite://``; ``sqlite:////abs/path.db`` works
      too) or a plain file path: SQLite in WAL mode; every write is a ``BEGIN IMMEDIATE`` transaction, waiting
      up to 30 s for another writer.
    - ``postgresql://user[:password]@host:port/db[?schema=name&...]``: PostgreSQL through psycopg 3, in the
      schema ``name`` (default ``privacy_ledger``), created if missing. Other query parameters go to libpq.

    :raises ConfigurationError: an unsupported URL or a missing folder.
    :raises LedgerUnavailableError: the database cannot be opened; its message never holds the password.
    """
    text = os.fspath(url)
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError(
            "url", f"is {text!r}", "give sqlite:///abs/path.db, a file path, or postgresql://user@host:5432/db"
        )
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme in ("postgresql", "postgres"):
        from privacy_core.dp.ledger_postgres import PostgresLedger

        return PostgresLedger(text)
    if scheme not in ("", "sqlite"):
        raise ConfigurationError(
            "url",
            f"scheme {scheme!r} of {redact_url(text)} is not supported",
            "use sqlite:///abs/path.db or postgresql://",
        )
    from privacy_core.dp.ledger_sqlite import SqliteLedger

    path = re.sub(r"^/{2,}", "/", text[len("sqlite://") :]) if scheme else text  # sqlite:////abs is /abs too
    return SqliteLedger(path)
