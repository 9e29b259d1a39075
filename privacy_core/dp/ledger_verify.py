"""Checking a ledger's history: replay of a dataset's entries for :meth:`BudgetLedger.verify`, and the
cheap head-against-last-entry check made before every write."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from privacy_core.dp.ledger_entries import (
    GENESIS_PREV_HASH,
    Head,
    LedgerEntry,
    Row,
    entry_from_row,
    entry_hash,
    record_from_row,
)
from privacy_core.dp.ledger_values import fraction_text, parse_fraction_text

__all__ = ["LedgerVerification", "verify_rows"]


@dataclass(frozen=True)
class LedgerVerification:
    """What :meth:`BudgetLedger.verify` found: ``ok`` when ``problems`` is empty.

    ``first_bad_index`` is the position (0 = genesis) of the first entry with a problem, or None when only the
    head row is wrong. ``spent`` and ``reserved`` are recomputed from the entries' costs alone.
    """

    dataset: str
    entries: int
    problems: list[str] = field(default_factory=list)
    first_bad_index: int | None = None
    spent: Fraction = Fraction(0)
    reserved: Fraction = Fraction(0)
    head_hash: str = GENESIS_PREV_HASH

    @property
    def ok(self) -> bool:
        return not self.problems


class _Replay:
    """Replays a dataset's entries in order, collecting every problem with the index where it shows."""

    def __init__(self, dataset: str) -> None:
        self.dataset = dataset
        self.problems: list[str] = []
        self.first_bad: int | None = None
        self.accounting: str | None = None
        self.delta: float | None = None
        self.cap = Fraction(0)
        # The totals as each entry's predecessor recorded them, so one bad entry is reported once.
        self.totals = (Fraction(0), Fraction(0), Fraction(0))
        # Independent sums over costs alone, compared with the recorded totals at the end.
        self.spent = Fraction(0)
        self.reserved = Fraction(0)
        self.pending: dict[str, tuple[int, Fraction]] = {}

    def bad(self, index: int | None, problem: str) -> None:
        self.problems.append(problem if index is None else f"entry {index}: {problem}")
        if index is not None and (self.first_bad is None or index < self.first_bad):
            self.first_bad = index

    def apply(self, index: int, entry: LedgerEntry) -> None:
        """Check ``entry``'s meaning against the entries before it, then apply it."""
        cap, spent, reserved = self.totals
        key, cost = entry.key, entry.cost
        if (entry.kind == "genesis") != (index == 0):
            self.bad(index, "only the first entry is a genesis, and the first entry must be one")
        if entry.dataset != self.dataset:
            self.bad(index, f"belongs to dataset {entry.dataset!r}")
        if entry.kind == "genesis":
            self.accounting, self.delta = entry.payload["accounting"], entry.payload["delta"]
            cap = self.cap = parse_fraction_text(entry.payload["cap"])
        elif entry.kind == "raise_cap":
            old, new = parse_fraction_text(entry.payload["old_cap"]), parse_fraction_text(entry.payload["new_cap"])
            if old != cap or new <= old:
                self.bad(index, f"raises the cap from {old} to {new} but the cap was {cap}")
            cap = self.cap = new
        elif key is not None and cost is not None:
            held = self.pending.get(key)
            reserve_seq = entry.payload.get("reserve_seq")
            if entry.kind == "reserve":
                if held is not None:
                    self.bad(index, f"reserves key {key!r} again while entry {held[0]} still holds it")
                self.pending[key] = (entry.seq, cost)
                reserved += cost
                self.reserved += cost
                if spent + reserved > cap:
                    self.bad(index, f"takes spent + reserved to {spent + reserved}, over the cap {cap}")
            elif held is None or held != (reserve_seq, cost):
                self.bad(index, f"{entry.kind}s key {key!r} at entry {reserve_seq}, which holds no such reservation")
            elif entry.kind == "commit":
                del self.pending[key]
                spent, reserved = spent + cost, reserved - cost
                self.spent, self.reserved = self.spent + cost, self.reserved - cost
            elif entry.kind == "abort":
                del self.pending[key]
                reserved -= cost
                self.reserved -= cost
        recorded = (entry.cap, entry.spent, entry.reserved)
        if recorded != (cap, spent, reserved):
            shown = "/".join(str(v) for v in recorded)
            expected = "/".join(str(v) for v in (cap, spent, reserved))
            self.bad(index, f"records cap/spent/reserved {shown} but the entry before it and its cost give {expected}")
        self.totals = recorded

    def check_head(self, head: Head | None, rows: int, last_hash: str) -> None:
        """Compare the head row with the replayed chain."""
        if head is None:
            self.bad(None, "head row: missing, though the dataset has entries")
            return
        cap, spent, reserved = self.totals
        expected = {
            "last_seq": rows - 1,
            "head_hash": last_hash,
            "cap": fraction_text(cap),
            "spent": fraction_text(spent),
            "reserved": fraction_text(reserved),
            "accounting": self.accounting,
            "delta": self.delta,
        }
        for name, value in expected.items():
            if getattr(head, name) != value:
                self.bad(None, f"head row: {name} is {getattr(head, name)!r} but the entries give {value!r}")


def verify_rows(dataset: str, head: Head | None, rows: list[Row]) -> LedgerVerification:
    """Check ``rows`` (a dataset's entries in ``seq`` order) and ``head`` as :meth:`BudgetLedger.verify` does."""
    replay = _Replay(dataset)
    prev = GENESIS_PREV_HASH
    for index, row in enumerate(rows):
        if row[1] != index:
            replay.bad(index, f"is numbered {row[1]}, expected {index} (an entry was deleted, inserted or moved)")
        try:
            record = record_from_row(row)
        except ValueError as exc:
            replay.bad(index, f"is unreadable: {exc}")
            prev = str(row[11])
            continue
        if entry_hash(record) != record["entry_hash"]:
            replay.bad(index, "its content does not match its entry_hash (the entry was edited)")
        if record["prev_hash"] != prev:
            replay.bad(index, "its prev_hash is not the previous entry's hash (the chain is broken)")
        prev = str(record["entry_hash"])
        try:
            entry = entry_from_row(row)
        except ValueError as exc:
            replay.bad(index, f"is not a valid entry: {exc}")
            continue
        replay.apply(index, entry)
    if not rows:
        replay.bad(None, "the dataset has no entries, not even its genesis")
    recorded_spent, recorded_reserved = replay.totals[1], replay.totals[2]
    if rows and (replay.spent, replay.reserved) != (recorded_spent, recorded_reserved):
        replay.bad(
            None,
            f"spent/reserved summed from the entries' costs are {replay.spent}/{replay.reserved} but the last entry "
            f"records {recorded_spent}/{recorded_reserved}",
        )
    replay.check_head(head, len(rows), prev)
    return LedgerVerification(
        dataset=dataset,
        entries=len(rows),
        problems=replay.problems,
        first_bad_index=replay.first_bad,
        spent=replay.spent,
        reserved=replay.reserved,
        head_hash=prev,
    )


def _tail_problem(head: Head, last: Row | None) -> str | None:
    """Why the head row and the last entry disagree, or None: the cheap check before every write."""
    if last is None:
        return "the head row exists but the dataset has no entries"
    if last[1] != head.last_seq:
        return f"the last entry is number {last[1]} but the head row says {head.last_seq}"
    try:
        record = record_from_row(last)
    except ValueError as exc:
        return f"entry {head.last_seq} is unreadable: {exc}"
    if entry_hash(record) != record["entry_hash"]:
        return f"entry {head.last_seq} does not match its hash"
    if record["entry_hash"] != head.head_hash:
        return f"the head row's hash is not entry {head.last_seq}'s"
    if (head.cap, head.spent, head.reserved) != tuple(record["totals"][k] for k in ("cap", "spent", "reserved")):
        return f"the head row's totals differ from entry {head.last_seq}'s"
    return None
