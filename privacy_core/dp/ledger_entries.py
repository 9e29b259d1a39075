"""Ledger entries: the :class:`LedgerEntry` record, its hash, its stored row, and the :class:`Head` row.

The hash covers the canonical JSON of every field but ``entry_hash``, including ``prev_hash``, so each entry
commits to the whole chain before it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any, Final, Literal

from privacy_core.dp.ledger_values import canonical_json, fraction_text, parse_fraction_text
from privacy_core.errors import SchemaValidationError
from privacy_core.schemas import validate

__all__ = [
    "GENESIS_PREV_HASH",
    "SCHEMA",
    "EntryKind",
    "Head",
    "LedgerEntry",
    "Row",
    "entry_from_row",
    "entry_hash",
    "record_from_row",
]

EntryKind = Literal["genesis", "raise_cap", "reserve", "takeover", "commit", "abort"]
SCHEMA: Final = "LedgerEntry/1.0"
#: The ``prev_hash`` of a dataset's first entry.
GENESIS_PREV_HASH: Final = "0" * 64

Row = tuple[Any, ...]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LedgerEntry:
    """One append-only entry; ``cap``, ``spent`` and ``reserved`` are the dataset's totals after it.

    ``cost`` is the reservation's cost for reserve, takeover, commit and abort, and None for genesis and
    raise_cap. ``payload`` holds the description (reserve), the released result (commit), the reason
    (abort, raise_cap) or the accounting (genesis).
    """

    dataset: str
    seq: int
    kind: EntryKind
    key: str | None
    cost: Fraction | None
    cap: Fraction
    spent: Fraction
    reserved: Fraction
    payload: dict[str, Any]
    created_at: str
    prev_hash: str
    entry_hash: str

    def record(self) -> dict[str, Any]:
        """The entry as a ``LedgerEntry/1.0`` JSON record."""
        return {
            **_hashed_fields(
                self.dataset,
                self.seq,
                self.kind,
                self.key,
                None if self.cost is None else fraction_text(self.cost),
                {
                    "cap": fraction_text(self.cap),
                    "spent": fraction_text(self.spent),
                    "reserved": fraction_text(self.reserved),
                },
                self.payload,
                self.created_at,
                self.prev_hash,
            ),
            "entry_hash": self.entry_hash,
        }


def _hashed_fields(
    dataset: str,
    seq: int,
    kind: str,
    key: str | None,
    cost: str | None,
    totals: dict[str, str],
    payload: Any,
    created_at: str,
    prev_hash: str,
) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "dataset": dataset,
        "seq": seq,
        "kind": kind,
        "key": key,
        "cost": cost,
        "totals": totals,
        "payload": payload,
        "created_at": created_at,
        "prev_hash": prev_hash,
    }


def entry_hash(record: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of every field of ``record`` but ``entry_hash``."""
    return hashlib.sha256(canonical_json({k: v for k, v in record.items() if k != "entry_hash"})).hexdigest()


def record_from_row(row: Row) -> dict[str, Any]:
    """The JSON record a stored row claims to be, from its text as stored (ValueError if the payload is not JSON)."""
    dataset, seq, kind, key, cost, cap, spent, reserved, payload, created_at, prev_hash, stored_hash = row
    try:
        parsed = json.loads(payload)
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"payload is not JSON ({exc})") from None
    totals = {"cap": cap, "spent": spent, "reserved": reserved}
    fields = _hashed_fields(dataset, seq, kind, key, cost, totals, parsed, created_at, prev_hash)
    return {**fields, "entry_hash": stored_hash}


def entry_from_row(row: Row) -> LedgerEntry:
    """A stored row as a :class:`LedgerEntry`; ValueError if it is not one (it was edited outside the ledger)."""
    record = record_from_row(row)
    try:
        validate("LedgerEntry", record)
    except SchemaValidationError as exc:
        raise ValueError(str(exc)) from None
    return LedgerEntry(
        dataset=record["dataset"],
        seq=record["seq"],
        kind=record["kind"],
        key=record["key"],
        cost=None if record["cost"] is None else parse_fraction_text(record["cost"]),
        cap=parse_fraction_text(record["totals"]["cap"]),
        spent=parse_fraction_text(record["totals"]["spent"]),
        reserved=parse_fraction_text(record["totals"]["reserved"]),
        payload=record["payload"],
        created_at=record["created_at"],
        prev_hash=record["prev_hash"],
        entry_hash=record["entry_hash"],
    )


@dataclass(frozen=True)
class Head:
    """A dataset's head row: the totals and hash of its last entry, kept so a writer can lock one row.

    Amounts are stored text. Every write checks it against the last entry; :meth:`BudgetLedger.verify`
    checks it against the whole chain.
    """

    dataset: str
    accounting: str
    cap: str
    delta: float | None
    spent: str
    reserved: str
    last_seq: int
    head_hash: str

    def values(self) -> tuple[object, ...]:
        return (
            self.dataset,
            self.accounting,
            self.cap,
            self.delta,
            self.spent,
            self.reserved,
            self.last_seq,
            self.head_hash,
        )


def _new_entry(
    head: Head | None,
    dataset: str,
    kind: EntryKind,
    key: str | None,
    cost: Fraction | None,
    totals: tuple[Fraction, Fraction, Fraction],
    payload: dict[str, Any],
) -> LedgerEntry:
    """The next entry after ``head`` (genesis when None), hashed and validated against its schema."""
    cap, spent, reserved = totals
    seq = 0 if head is None else head.last_seq + 1
    prev = GENESIS_PREV_HASH if head is None else head.head_hash
    draft = LedgerEntry(dataset, seq, kind, key, cost, cap, spent, reserved, payload, _now(), prev, "")
    record = draft.record()
    record["entry_hash"] = entry_hash(record)
    validate("LedgerEntry", record)
    return replace(draft, entry_hash=record["entry_hash"])
