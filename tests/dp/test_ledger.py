"""The privacy-budget ledger, on SQLite and PostgreSQL: lifecycle, exact arithmetic, refusals, retries,
racing processes, tamper detection, bad input and secrecy of the URL's password."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import traceback
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import pytest

from privacy_core.dp.accounting import Cost, zcdp_to_approx_dp
from privacy_core.dp.ledger import (
    BudgetLedger,
    CommittedSpend,
    Reservation,
    entry_hash,
    open_ledger,
    record_from_row,
    redact_url,
    task_instance_key,
)
from privacy_core.dp.ledger_postgres import split_schema
from privacy_core.dp.ledger_sqlite import SqliteLedger
from privacy_core.errors import (
    BudgetExceededError,
    ConfigurationError,
    LedgerIntegrityError,
    LedgerUnavailableError,
)
from privacy_core.schemas import validate
from tests.dp.conftest import RawDatabase, postgres_base_url

REPO = Path(__file__).resolve().parents[2]
F = Fraction


def reserved(ledger: BudgetLedger, dataset: str, key: str, cost: Fraction) -> Reservation:
    """A new reservation, asserting that reserve() did not return a committed spend."""
    spend = ledger.reserve(dataset, key, cost, {"query": key})
    assert isinstance(spend, Reservation)
    return spend


def spend(ledger: BudgetLedger, dataset: str, key: str, cost: Fraction, value: float = 1.0) -> CommittedSpend:
    """Reserve and commit one spend."""
    return ledger.commit(reserved(ledger, dataset, key, cost), {"value": value})


# --- lifecycle and arithmetic --------------------------------------------------------------------------------


def test_reserve_commit_status(ledger: BudgetLedger) -> None:
    ledger.create_dataset("ct", "pure-dp", F(1))
    reservation = reserved(ledger, "ct", "count", F(1, 3))
    held = ledger.status("ct")
    assert (held.spent, held.reserved, held.remaining) == (F(0), F(1, 3), F(2, 3))

    committed = ledger.commit(reservation, {"value": 41.7})

    assert committed.result == {"value": 41.7}
    assert (committed.cost, committed.reused, committed.reserve_seq) == (F(1, 3), False, reservation.reserve_seq)
    status = ledger.status("ct")
    assert (status.cap, status.spent, status.reserved, status.remaining) == (F(1), F(1, 3), F(0), F(2, 3))
    assert status.entries == 3
    assert status.head_hash == committed.entry_hash
    assert [e.kind for e in ledger.entries("ct")] == ["genesis", "reserve", "commit"]
    assert ledger.verify("ct").ok


def test_sevenths_fill_the_cap_exactly(ledger: BudgetLedger) -> None:
    # In floats seven sevenths sum to 0.9999999999999998, leaving room for an eighth.
    ledger.create_dataset("ct", "pure-dp", F(1))
    for i in range(7):
        spend(ledger, "ct", f"q{i}", F(1, 7))
    status = ledger.status("ct")
    assert (status.spent, status.remaining) == (F(1), F(0))
    with pytest.raises(BudgetExceededError, match="the budget is exhausted"):
        ledger.reserve("ct", "q7", F(1, 7), {})


def test_abort_releases_the_hold(ledger: BudgetLedger) -> None:
    ledger.create_dataset("ct", "pure-dp", F(1))
    reservation = reserved(ledger, "ct", "count", F(3, 4))
    ledger.abort(reservation, "the task failed before any noise was drawn")
    ledger.abort(reservation, "a second abort changes nothing")
    status = ledger.status("ct")
    assert (status.spent, status.reserved, status.remaining) == (F(0), F(0), F(1))
    assert [e.kind for e in ledger.entries("ct")] == ["genesis", "reserve", "abort"]
    spend(ledger, "ct", "other", F(1))


def test_commit_twice_returns_the_first(ledger: BudgetLedger) -> None:
    ledger.create_dataset("ct", "pure-dp", F(1))
    reservation = reserved(ledger, "ct", "count", F(1, 2))
    first = ledger.commit(reservation, {"value": 1})
    second = ledger.commit(reservation, {"value": 2})
    assert second.result == {"value": 1}
    assert second.reused and second.entry_hash == first.entry_hash
    assert ledger.status("ct").spent == F(1, 2)


def test_raise_cap_is_a_chained_entry_and_only_increases(ledger: BudgetLedger) -> None:
    ledger.create_dataset("ct", "pure-dp", F(1))
    spend(ledger, "ct", "a", F(1))
    ledger.raise_cap("ct", F(3, 2), "approved by the data access committee, ticket 42")
    assert ledger.status("ct").remaining == F(1, 2)
    last = ledger.entries("ct")[-1]
    assert (last.kind, last.payload["old_cap"], last.payload["new_cap"]) == ("raise_cap", "1/1", "3/2")
    with pytest.raises(ConfigurationError) as caught:
        ledger.raise_cap("ct", F(3, 2), "no change")
    assert caught.value.setting == "new_cap"
    # The original cap still opens the dataset, so a DAG may keep calling create_dataset.
    ledger.create_dataset("ct", "pure-dp", F(1))
    ledger.create_dataset("ct", "pure-dp", F(3, 2))
    assert ledger.verify("ct").ok


def test_create_dataset_is_idempotent(ledger: BudgetLedger) -> None:
    ledger.create_dataset("ct", "pure-dp", F(1))
    ledger.create_dataset("ct", "pure-dp", F(1))
    assert ledger.status("ct").entries == 1


def test_datasets_lists_every_dataset_sorted(ledger: BudgetLedger) -> None:
    assert ledger.datasets() == []
    ledger.create_dataset("zeta", "pure-dp", Fraction(1))
    ledger.create_dataset("alpha", "zcdp", Fraction(1, 2), delta=1e-6)
    assert ledger.datasets() == ["alpha", "zeta"]


def test_zcdp_status_gives_epsilon_at_delta(ledger: BudgetLedger) -> None:
    ledger.create_dataset("mri", "zcdp", F(1, 2), delta=1e-6)
    spend(ledger, "mri", "hist", F(1, 8))
    status = ledger.status("mri")
    assert status.accounting == "zcdp"
    assert status.cap_approx_dp == (zcdp_to_approx_dp(F(1, 2), 1e-6), 1e-6)
    assert status.spent_approx_dp == (zcdp_to_approx_dp(F(1, 8), 1e-6), 1e-6)
    assert ledger.entries("mri")[0].payload == {"accounting": "zcdp", "cap": "1/2", "delta": 1e-6}


def test_entries_match_their_schema_and_chain(ledger: BudgetLedger) -> None:
    ledger.create_dataset("ct", "pure-dp", F(1))
    spend(ledger, "ct", "a", F(1, 4))
    ledger.abort(reserved(ledger, "ct", "b", F(1, 4)), "cancelled")
    ledger.raise_cap("ct", F(2), "more")
    entries = ledger.entries("ct")
    assert [e.seq for e in entries] == list(range(len(entries)))
    assert entries[0].prev_hash == "0" * 64
    for before, entry in itertools.pairwise(entries):
        assert entry.prev_hash == before.entry_hash
    for entry in entries:
        record = entry.record()
        validate("LedgerEntry", record)
        assert entry_hash(record) == entry.entry_hash
        json.dumps(record)


# --- refusals ------------------------------------------------------------------------------------------------


def test_over_cap_is_refused_and_writes_nothing(ledger: BudgetLedger) -> None:
    ledger.create_dataset("ct", "pure-dp", F(1))
    spend(ledger, "ct", "a", F(1, 2))
    reserved(ledger, "ct", "b", F(1, 4))
    before = ledger.entries("ct")

    with pytest.raises(BudgetExceededError) as caught:
        ledger.reserve("ct", "c", F(1, 2), {"query": "mean"})

    error = caught.value
    assert (error.cap, error.spent, error.reserved) == (F(1), F(1, 2), F(1, 4))
    assert (error.requested, error.remaining) == (F(1, 2), F(1, 4))
    message = str(error)
    for part in ("cap 1", "spent 1/2", "reserved 1/4", "requested 1/2", "remaining 1/4", "nothing was charged"):
        assert part in message
    assert "lower epsilon to at most 1/4" in message
    assert "raise_cap('ct', new_cap, reason)" in message
    assert ledger.entries("ct") == before
    assert ledger.status("ct").reserved == F(1, 4)


def test_refusal_in_zcdp_names_rho(ledger: BudgetLedger) -> None:
    ledger.create_dataset("mri", "zcdp", F(1, 10))
    with pytest.raises(BudgetExceededError, match="lower rho to at most 1/10"):
        ledger.reserve("mri", "q", F(1, 5), {})


def test_check_refuses_without_writing(ledger: BudgetLedger) -> None:
    ledger.create_dataset("ct", "pure-dp", F(1))
    spend(ledger, "ct", "a", F(1))
    with pytest.raises(BudgetExceededError, match="remaining 0"):
        ledger.check("ct", F(1, 100))
    # A retry of the committed key is charged nothing, so check lets it through.
    ledger.check("ct", F(1), key="a")
    assert ledger.status("ct").entries == 3


# --- retries -------------------------------------------------------------------------------------------------


def test_retry_after_commit_returns_the_stored_result(ledger: BudgetLedger) -> None:
    ledger.create_dataset("ct", "pure-dp", F(1))
    key = task_instance_key("release", "manual__2025-01-01", "count", -1)
    first = spend(ledger, "ct", key, F(1, 2), value=103.0)

    again = ledger.reserve("ct", key, F(1, 2), {"query": "count"})

    assert isinstance(again, CommittedSpend)
    assert again.result == {"value": 103.0} and again.reused
    assert again.entry_hash == first.entry_hash
    assert ledger.status("ct").spent == F(1, 2)
    assert ledger.status("ct").entries == 3


def test_retry_after_a_crash_takes_the_reservation_over(ledger_url: str) -> None:
    with open_ledger(ledger_url) as crashed:
        crashed.create_dataset("ct", "pure-dp", F(1))
        lost = reserved(crashed, "ct", "count", F(1, 2))
    # The first attempt died here, before commit; its noise never left the process.

    with open_ledger(ledger_url) as retry:
        taken = retry.reserve("ct", "count", F(1, 2), {"query": "count"})
        assert isinstance(taken, Reservation)
        assert taken.taken_over and taken.attempt == 2
        assert (taken.reserve_seq, taken.entry_hash) == (lost.reserve_seq, lost.entry_hash)
        assert retry.status("ct").reserved == F(1, 2)

        committed = retry.commit(taken, {"value": 7})

        assert retry.status("ct").spent == F(1, 2)
        assert [e.kind for e in retry.entries("ct")] == ["genesis", "reserve", "takeover", "commit"]
        # The crashed attempt's handle now commits to the same spend.
        assert retry.commit(lost, {"value": 8}).result == {"value": 7}
        assert committed.result == {"value": 7}
        assert retry.verify("ct").ok


def test_retry_after_abort_charges_again(ledger: BudgetLedger) -> None:
    ledger.create_dataset("ct", "pure-dp", F(1))
    first = reserved(ledger, "ct", "count", F(1, 2))
    ledger.abort(first, "worker lost")

    second = reserved(ledger, "ct", "count", F(1, 2))

    assert second.reserve_seq != first.reserve_seq and second.attempt == 1
    assert ledger.status("ct").reserved == F(1, 2)
    ledger.commit(second, {"value": 3})
    assert ledger.status("ct").spent == F(1, 2)
    with pytest.raises(ConfigurationError, match="aborted"):
        ledger.commit(first, {"value": 4})
    assert ledger.verify("ct").ok


def test_retry_with_another_cost_is_refused(ledger: BudgetLedger) -> None:
    ledger.create_dataset("ct", "pure-dp", F(1))
    spend(ledger, "ct", "count", F(1, 2))
    with pytest.raises(ConfigurationError) as caught:
        ledger.reserve("ct", "count", F(1, 4), {})
    assert caught.value.setting == "cost"


def test_foreign_or_forged_reservations_are_refused(ledger: BudgetLedger, tmp_path: Path) -> None:
    ledger.create_dataset("ct", "pure-dp", F(1))
    with SqliteLedger(tmp_path / "other.db") as other:
        other.create_dataset("ct", "pure-dp", F(1))
        other.create_dataset("mri", "pure-dp", F(1))
        foreign = reserved(other, "ct", "count", F(1, 2))
        elsewhere = reserved(other, "mri", "count", F(1, 2))
    mine = reserved(ledger, "ct", "count", F(1, 2))
    forged = Reservation("ct", "count", F(1, 2), "pure-dp", 99, "0" * 64, 1, {})
    moved = Reservation("ct", "count", F(1, 2), "pure-dp", mine.reserve_seq, "f" * 64, 1, {})
    for bad in (foreign, forged, moved):
        with pytest.raises(ConfigurationError) as caught:
            ledger.commit(bad, {"value": 1})
        assert caught.value.setting == "reservation"
    with pytest.raises(ConfigurationError, match="has no budget"):
        ledger.commit(elsewhere, {"value": 1})
    ledger.commit(mine, {"value": 1})
    with pytest.raises(ConfigurationError, match="committed"):
        ledger.abort(mine, "too late")
    assert ledger.status("ct").spent == F(1, 2)


# --- racing processes ----------------------------------------------------------------------------------------

WORKER = """
import json, sys
from fractions import Fraction
from privacy_core.dp.ledger import Reservation, open_ledger
from privacy_core.errors import BudgetExceededError

url, worker, spends, cost = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Fraction(sys.argv[4])
ledger = open_ledger(url)
print("ready", flush=True)
sys.stdin.readline()
out = {"worker": worker, "committed": [], "refused": 0}
shared = ledger.reserve("race", "shared", cost, {"worker": worker})
if isinstance(shared, Reservation):
    shared = ledger.commit(shared, {"worker": worker})
out["shared"] = shared.result
for i in range(spends):
    key = f"w{worker}-{i}"
    try:
        reservation = ledger.reserve("race", key, cost, {"worker": worker, "i": i})
    except BudgetExceededError:
        out["refused"] += 1
        continue
    ledger.commit(reservation, {"worker": worker, "i": i})
    out["committed"].append(key)
ledger.close()
print(json.dumps(out), flush=True)
"""


def test_racing_processes_never_exceed_the_cap(ledger: BudgetLedger, ledger_url: str) -> None:
    workers, spends, cost, cap = 8, 4, F(1, 7), F(3)
    ledger.create_dataset("race", "pure-dp", cap)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, ledger_url, str(w), str(spends), str(cost)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for w in range(workers)
    ]
    try:
        for process in processes:
            assert process.stdout is not None and process.stderr is not None
            if process.stdout.readline().strip() != "ready":
                pytest.fail(f"a worker failed to open the ledger: {process.stderr.read()}")
        for process in processes:  # all connected: start them together
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outputs = []
        for process in processes:
            stdout, stderr = process.communicate(timeout=60)
            assert process.returncode == 0, stderr
            outputs.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()

    committed = [key for out in outputs for key in out["committed"]]
    successes = len(committed) + 1  # the shared key is charged once, whoever committed it
    assert successes == cap // cost == 21
    assert sum(out["refused"] for out in outputs) == workers * spends - len(committed)
    assert len({json.dumps(out["shared"]) for out in outputs}) == 1  # one noisy result for the shared key
    status = ledger.status("race")
    assert (status.spent, status.reserved) == (cap, F(0))
    entries = ledger.entries("race")
    commits = [str(e.key) for e in entries if e.kind == "commit"]
    assert sorted(commits) == sorted([*committed, "shared"])
    assert len([e for e in entries if e.kind == "reserve"]) == successes
    verification = ledger.verify("race")
    assert verification.ok, verification.problems
    assert verification.spent == cap


# --- tampering -----------------------------------------------------------------------------------------------


def small_history(ledger: BudgetLedger) -> None:
    """Seven entries: genesis, two committed spends (1..4), one aborted reservation (5, 6)."""
    ledger.create_dataset("ct", "pure-dp", F(1))
    spend(ledger, "ct", "a", F(1, 7), value=10)
    spend(ledger, "ct", "b", F(2, 7), value=20)
    ledger.abort(reserved(ledger, "ct", "c", F(1, 7)), "cancelled")


def edit_and_rehash(db: RawDatabase) -> None:
    """Lower entry 2's cost and give it a matching hash: only the chain and the replay can tell."""
    columns = "dataset, seq, kind, spend_key, cost, cap, spent, reserved, payload, created_at, prev_hash, entry_hash"
    row = db.execute(f"SELECT {columns} FROM ledger_entries WHERE dataset = 'ct' AND seq = 2")[0]
    record = record_from_row((*row[:4], "1/100", *row[5:]))
    db.execute("UPDATE ledger_entries SET cost = '1/100', entry_hash = ? WHERE seq = 2", (entry_hash(record),))


def swap_entries_3_and_4(db: RawDatabase) -> None:
    """Exchange the positions of two entries, keeping their content."""
    db.execute("UPDATE ledger_entries SET seq = -1 WHERE seq = 3")
    db.execute("UPDATE ledger_entries SET seq = 3 WHERE seq = 4")
    db.execute("UPDATE ledger_entries SET seq = 4 WHERE seq = -1")


TAMPERING: dict[str, tuple[Callable[[RawDatabase], object], int | None, str]] = {
    "edit-cost": (
        lambda db: db.execute("UPDATE ledger_entries SET cost = '1/100' WHERE seq = 2"),
        2,
        "does not match its entry_hash",
    ),
    "edit-payload": (
        lambda db: db.execute(
            "UPDATE ledger_entries SET payload = ? WHERE seq = 2", ('{"reserve_seq":1,"result":{"value":11}}',)
        ),
        2,
        "does not match its entry_hash",
    ),
    "edit-and-rehash": (edit_and_rehash, 2, "no such reservation"),
    "delete-middle": (lambda db: db.execute("DELETE FROM ledger_entries WHERE seq = 3"), 3, "numbered 4, expected 3"),
    "reorder": (swap_entries_3_and_4, 3, "the chain is broken"),
    "edit-head-row": (
        lambda db: db.execute("UPDATE ledger_datasets SET spent = '0/1' WHERE dataset = 'ct'"),
        None,
        "head row: spent is '0/1' but the entries give '3/7'",
    ),
}


@pytest.mark.parametrize("tampering", sorted(TAMPERING))
def test_verify_detects_tampering(ledger: BudgetLedger, raw_db: RawDatabase, tampering: str) -> None:
    small_history(ledger)
    assert ledger.verify("ct").ok
    tamper, index, problem = TAMPERING[tampering]
    raw_db.drop_append_only_guard()

    tamper(raw_db)

    verification = ledger.verify("ct")
    assert not verification.ok
    assert verification.first_bad_index == index, verification.problems
    assert any(problem in p for p in verification.problems), verification.problems
    if index is not None:
        assert any(p.startswith(f"entry {index}: ") for p in verification.problems)


def test_entries_are_append_only_in_the_database(ledger: BudgetLedger, raw_db: RawDatabase) -> None:
    small_history(ledger)
    with pytest.raises(Exception, match="append-only"):
        raw_db.execute("UPDATE ledger_entries SET cost = '1/100' WHERE seq = 2")
    with pytest.raises(Exception, match="append-only"):
        raw_db.execute("DELETE FROM ledger_entries WHERE seq = 6")
    assert ledger.verify("ct").ok


def test_writes_stop_when_the_head_disagrees_with_the_tail(ledger: BudgetLedger, raw_db: RawDatabase) -> None:
    small_history(ledger)
    raw_db.execute("UPDATE ledger_datasets SET spent = '0/1' WHERE dataset = 'ct'")
    with pytest.raises(LedgerIntegrityError, match="totals differ"):
        ledger.reserve("ct", "d", F(1, 7), {})
    raw_db.drop_append_only_guard()
    raw_db.execute("UPDATE ledger_datasets SET spent = '3/7' WHERE dataset = 'ct'")
    raw_db.execute("DELETE FROM ledger_entries WHERE seq = 6")
    with pytest.raises(LedgerIntegrityError, match="the last entry is number 5"):
        ledger.reserve("ct", "d", F(1, 7), {})
    assert ledger.status("ct").entries == 6


# --- bad input -----------------------------------------------------------------------------------------------

ANY = cast(Any, None)
BAD_INPUT: dict[str, tuple[str, Callable[[BudgetLedger], object]]] = {
    "empty-dataset": ("dataset", lambda led: led.create_dataset("", "pure-dp", F(1))),
    "blank-dataset": ("dataset", lambda led: led.reserve("  ", "k", F(1, 10), {})),
    "unknown-dataset": ("dataset", lambda led: led.reserve("nope", "k", F(1, 10), {})),
    "unknown-dataset-status": ("dataset", lambda led: led.status("nope")),
    "unknown-dataset-verify": ("dataset", lambda led: led.verify("nope")),
    "unknown-accounting": ("accounting", lambda led: led.create_dataset("x", cast(Any, "renyi"), F(1))),
    "zero-cap": ("cap", lambda led: led.create_dataset("x", "pure-dp", F(0))),
    "delta-for-pure-dp": ("delta", lambda led: led.create_dataset("x", "pure-dp", F(1), delta=1e-6)),
    "delta-above-one": ("delta", lambda led: led.create_dataset("x", "zcdp", F(1), delta=1.5)),
    "zero-cost": ("cost", lambda led: led.reserve("ct", "k", F(0), {})),
    "negative-cost": ("cost", lambda led: led.reserve("ct", "k", F(-1, 10), {})),
    "float-cost": ("cost", lambda led: led.reserve("ct", "k", cast(Any, 0.1), {})),
    "zero-cost-check": ("cost", lambda led: led.check("ct", F(0))),
    "empty-key": ("key", lambda led: led.reserve("ct", "", F(1, 10), {})),
    "description-not-json": ("description", lambda led: led.reserve("ct", "k", F(1, 10), {"x": {1, 2}})),
    "other-cap": ("cap", lambda led: led.create_dataset("ct", "pure-dp", F(2))),
    "other-accounting": ("accounting", lambda led: led.create_dataset("ct", "zcdp", F(1))),
    "lower-cap": ("new_cap", lambda led: led.raise_cap("ct", F(1, 2), "less")),
    "not-a-reservation": ("reservation", lambda led: led.commit(ANY, {})),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_names_the_setting(ledger: BudgetLedger, case: str) -> None:
    ledger.create_dataset("ct", "pure-dp", F(1))
    setting, call = BAD_INPUT[case]
    with pytest.raises(ConfigurationError) as caught:
        call(ledger)
    assert caught.value.setting == setting
    assert str(caught.value).startswith(f"{setting}: ")
    assert ledger.status("ct").entries == 1


def test_result_must_be_strict_json(ledger: BudgetLedger) -> None:
    ledger.create_dataset("ct", "pure-dp", F(1))
    reservation = reserved(ledger, "ct", "k", F(1, 2))
    with pytest.raises(ConfigurationError) as caught:
        ledger.commit(reservation, {"value": float("nan")})
    assert caught.value.setting == "result"
    assert ledger.status("ct").reserved == F(1, 2)


# --- URLs and secrets ----------------------------------------------------------------------------------------


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    user = parts.username or "postgres"
    netloc = f"{user}:{password}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def test_password_never_shown_when_the_server_is_unreachable() -> None:
    url = "postgresql://ledger:hunter2-very-secret@127.0.0.1:1/budget?schema=dp&password=hunter2-very-secret"
    with pytest.raises(LedgerUnavailableError) as caught:
        open_ledger(url)
    shown = "".join(traceback.format_exception(caught.value)) + repr(caught.value) + caught.value.url
    assert "hunter2" not in shown
    assert "postgresql://ledger:***@127.0.0.1:1/budget" in str(caught.value)


def test_password_never_shown_in_repr(postgres_url: str) -> None:
    secret = urlsplit(postgres_url).password or "hunter2-very-secret"  # trust auth ignores a fake one
    with open_ledger(with_password(postgres_url, secret)) as ledger:
        for shown in (repr(ledger), str(ledger), ledger.url):
            assert secret not in shown and ":***@" in shown


def test_redact_url_hides_every_password() -> None:
    assert redact_url("postgresql://u:p%40ss@h/db?password=x&sslmode=require") == (
        "postgresql://u:***@h/db?password=***&sslmode=require"
    )
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_url_forms(tmp_path: Path) -> None:
    for url in (
        str(tmp_path / "a.db"),
        tmp_path / "b.db",
        f"sqlite://{tmp_path / 'c.db'}",
        f"sqlite:///{tmp_path}/d.db",
    ):
        with open_ledger(url) as ledger:
            assert isinstance(ledger, SqliteLedger)
            ledger.create_dataset("ct", "pure-dp", F(1))
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["a.db", "b.db", "c.db", "d.db"]
    with open_ledger(f"sqlite://{tmp_path / 'c.db'}") as ledger:
        assert ledger.url == f"sqlite://{tmp_path / 'c.db'}"
        assert ledger.status("ct").cap == 1


@pytest.mark.parametrize(
    ("setting", "url"),
    [
        ("url", "mysql://root:pw-secret@db/budget"),
        ("url", ""),
        ("url", "/no/such/folder/ledger.db"),
        ("schema", "postgresql://u@127.0.0.1:1/db?schema=bad;drop"),
    ],
)
def test_bad_urls(setting: str, url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_ledger(url)
    assert caught.value.setting == setting
    assert "pw-secret" not in str(caught.value)


def test_split_schema_defaults_and_keeps_libpq_parameters() -> None:
    assert split_schema("postgresql://u@h/db") == ("postgresql://u@h/db", "privacy_ledger")
    kept = ("postgresql://u@h/db?sslmode=disable", "s1")
    assert split_schema("postgresql://u@h/db?sslmode=disable&schema=s1") == kept


def test_postgres_base_url_can_be_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGING_PRIVACY_TEST_POSTGRES_URL", "postgresql://me@db.example:6543/other")
    assert postgres_base_url() == "postgresql://me@db.example:6543/other"


# --- keys and accounting -------------------------------------------------------------------------------------


def test_task_instance_keys_are_distinct_and_stable() -> None:
    keys = {
        task_instance_key("d", "r", "t"),
        task_instance_key("d", "r", "t", 0),
        task_instance_key("d", "r", "t", 1),
        task_instance_key("d", "r/t", "x"),
        task_instance_key("d/r", "t", "x"),
    }
    assert len(keys) == 5
    assert task_instance_key("d", "r", "t", 2) == task_instance_key("d", "r", "t", 2)
    with pytest.raises(ConfigurationError) as caught:
        task_instance_key("d", "r", "t", -2)
    assert caught.value.setting == "map_index"


def test_zcdp_to_approx_dp() -> None:
    assert zcdp_to_approx_dp(F(1, 2), 1e-6) == pytest.approx(0.5 + 2 * (0.5 * 13.815510557964274) ** 0.5)
    with pytest.raises(ConfigurationError) as caught:
        zcdp_to_approx_dp(F(1), 0.0)
    assert caught.value.setting == "delta"


def test_costs_add_only_in_one_accounting() -> None:
    assert Cost("zcdp", F(1, 3)) + Cost("zcdp", F(1, 6)) == Cost("zcdp", F(1, 2))
    with pytest.raises(ConfigurationError) as caught:
        _ = Cost("zcdp", F(1)) + Cost("pure-dp", F(1))
    assert caught.value.setting == "accounting"
