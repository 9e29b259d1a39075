"""The ``release`` and ``budget`` subcommands of ``imaging-privacy``.

Exit codes add to the CLI's: 1 the ledger's hash chain does not verify; 4 the budget cannot pay.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from privacy_core.errors import ConfigurationError

EXIT_TAMPERED = 1
EXIT_BUDGET = 4


def add_parsers(sub: Any) -> None:
    """Register ``release`` and ``budget`` on the CLI's subparsers."""
    release = sub.add_parser(
        "release",
        help="run a differentially private release from a spec, charged to the privacy-budget ledger",
        description=(
            "Check SPEC (YAML), refuse if the dataset's remaining budget cannot pay, reserve the spend, compute "
            "the statistics (arrays on Dask), add exact noise once, commit the result to the ledger and write "
            "the bundle. Asking again with the same key returns the stored result and charges nothing."
        ),
    )
    release.add_argument("spec", type=Path, metavar="SPEC", help="release spec (YAML); see docs/dp-release.md")
    release.add_argument("--output", type=Path, help="bundle folder (default: beside the spec, named by dataset)")
    _ledger_flag(release)
    release.add_argument("--key", help="idempotency key (default: the spec's digest, so a repeat is free)")
    release.add_argument("--workers", type=int, help="embedded Dask cluster size (default: one per core)")
    release.add_argument("--scheduler", help="an existing Dask scheduler, e.g. tcp://host:8786")

    budget = sub.add_parser("budget", help="create, show or verify a dataset's privacy budget")
    actions = budget.add_subparsers(dest="action", required=True, metavar="ACTION")
    init = actions.add_parser("init", help="create a dataset with its cap")
    init.add_argument("dataset", metavar="DATASET")
    init.add_argument("--accounting", choices=["pure-dp", "zcdp"], default="pure-dp")
    init.add_argument("--cap", required=True, help="total epsilon (pure-dp) or rho (zcdp), e.g. 3 or 1/2")
    init.add_argument("--delta", type=float, help="zcdp: the delta at which the cap's (epsilon, delta) is shown")
    _ledger_flag(init)
    show = actions.add_parser("show", help="cap, spent, reserved and remaining, and the spends")
    show.add_argument("dataset", metavar="DATASET")
    show.add_argument("--json", action="store_true", help="print JSON")
    _ledger_flag(show)
    verify = actions.add_parser("verify", help="recompute the hash chain; exit 1 if any entry was altered")
    verify.add_argument("dataset", metavar="DATASET")
    _ledger_flag(verify)
    raise_cap = actions.add_parser("raise-cap", help="raise a dataset's cap (recorded with its reason)")
    raise_cap.add_argument("dataset", metavar="DATASET")
    raise_cap.add_argument("--cap", required=True)
    raise_cap.add_argument("--reason", required=True)
    _ledger_flag(raise_cap)


def _ledger_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ledger", help="ledger URL: sqlite:///path.db or postgresql://... (default: $IMAGING_PRIVACY_LEDGER)"
    )


def ledger_url(flag: str | None, spec_ledger: str | None = None) -> str:
    """The ledger to use: the flag, else the spec's, else ``$IMAGING_PRIVACY_LEDGER``."""
    from privacy_core.dp.release import LEDGER_ENV

    url = flag or spec_ledger or os.environ.get(LEDGER_ENV)
    if not url:
        raise ConfigurationError("ledger", "is not set", f"pass --ledger, set ledger: in the spec, or set {LEDGER_ENV}")
    return url


def run(args: argparse.Namespace) -> int:
    """Run ``release`` or ``budget``; BudgetExceededError exits 4 with its message."""
    from privacy_core.errors import BudgetExceededError

    try:
        return _release(args) if args.command == "release" else _budget(args)
    except BudgetExceededError as exc:
        print(f"imaging-privacy {args.command}: {exc}")
        return EXIT_BUDGET


def _release(args: argparse.Namespace) -> int:
    from privacy_core.dp.ledger import open_ledger
    from privacy_core.dp.release import run_release
    from privacy_core.dp.spec import load_spec
    from privacy_core.imaging.compute import DaskConfig

    spec = load_spec(args.spec)
    output = args.output or args.spec.resolve().parent / f"{spec.dataset}-release"
    with open_ledger(ledger_url(args.ledger, spec.ledger)) as ledger:
        result = run_release(
            spec,
            ledger,
            output,
            key=args.key,
            dask=DaskConfig(address=args.scheduler, workers=args.workers),
            announce=print,
        )
    summary = result.summary()
    verb = "charged" if summary["charged"] else "returned the stored release, charged nothing:"
    print(
        f"{verb} {summary['accounting']} loss {summary['loss']:g} to {spec.dataset} (entry {summary['ledger_commit']})"
    )
    print(f"bundle: {summary['bundle']}")
    print(f"lineage record: {summary['lineage_record']}")
    return 0


def _budget(args: argparse.Namespace) -> int:
    from privacy_core.dp.ledger import open_ledger
    from privacy_core.dp.mechanisms import as_fraction

    with open_ledger(ledger_url(args.ledger)) as ledger:
        if args.action == "init":
            ledger.create_dataset(args.dataset, args.accounting, as_fraction(args.cap, "--cap"), delta=args.delta)
            print(f"dataset {args.dataset}: {args.accounting} cap {args.cap}")
            return 0
        if args.action == "raise-cap":
            ledger.raise_cap(args.dataset, as_fraction(args.cap, "--cap"), args.reason)
            print(f"dataset {args.dataset}: cap raised to {args.cap}")
            return 0
        if args.action == "verify":
            report = ledger.verify(args.dataset)
            if report.ok:
                print(f"dataset {args.dataset}: ledger verifies ({len(ledger.entries(args.dataset))} entries)")
                return 0
            print(f"dataset {args.dataset}: ledger does NOT verify")
            for problem in report.problems:
                print(f"  {problem}")
            return EXIT_TAMPERED
        status = ledger.status(args.dataset)
        shown = _status(status, ledger.entries(args.dataset))
        if args.json:
            print(json.dumps(shown, indent=2, sort_keys=True))
        else:
            unit = "epsilon" if shown["accounting"] == "pure-dp" else "rho"
            print(
                f"dataset {args.dataset} ({shown['accounting']}): cap {unit} {shown['cap']:g}, spent "
                f"{shown['spent']:g}, reserved {shown['reserved']:g}, remaining {shown['remaining']:g}"
            )
            for spend in shown["spends"]:
                print(f"  #{spend['sequence']:<4} {spend['kind']:<9} {spend['cost']:<10} {spend['key']}")
        return 0


def _status(status: Any, entries: list[Any]) -> dict[str, Any]:
    """The status and the spend history as JSON (amounts as numbers; exact forms alongside)."""
    return {
        "accounting": status.accounting,
        "cap": float(status.cap),
        "spent": float(status.spent),
        "reserved": float(status.reserved),
        "remaining": float(status.remaining),
        "exact": {"cap": str(status.cap), "spent": str(status.spent), "remaining": str(status.remaining)},
        "spends": [
            {"sequence": e.seq, "kind": e.kind, "cost": str(e.cost or ""), "key": e.key or ""}
            for e in entries
            if e.kind in ("reserve", "commit", "abort", "takeover", "raise_cap")
        ],
    }
