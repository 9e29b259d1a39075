"""The ``audit`` and ``report`` subcommands of ``imaging-privacy``: check a releases folder end to end, or
show it as one self-contained HTML page.

Exit codes add to the CLI's: 1 some ``audit`` check failed (each failure is printed with where it is).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

EXIT_FAILED = 1


def add_parsers(sub: Any) -> None:
    """Register ``audit`` and ``report`` on the CLI's subparsers."""
    audit = sub.add_parser(
        "audit",
        help="check a releases folder end to end: lineage records, digests, the budget ledger, no key material",
        description=(
            "For every output folder of RELEASES (release-*, zarr-*, dp-pix-*, dp-release-*, or any folder with "
            "a lineage/ folder): a lineage record is there and matches its schema; each output digest, "
            "recomputed from the data, is the recorded one; no record or bundle holds key material. The "
            "lineage-chain/ folder links every record by hash, and still holds --expect-head if given. A "
            "cross-site exchange is audited the same way: in each round folder every envelope was written by a "
            "recorded step with these bytes, and all steps name one key and one spec. With --ledger, each DP "
            "release's or round's dataset has a verifying hash chain, its bundle or result names its commit "
            "entry, and the charged losses add up to no more than the ledger's spend. Exits 1 on any failure."
        ),
    )
    audit.add_argument("releases", type=Path, metavar="RELEASES", help="the releases folder of a run")
    audit.add_argument("--ledger", help="ledger URL: sqlite:///path.db or postgresql://... (default: skip)")
    audit.add_argument(
        "--expect-head",
        metavar="SEQUENCE:HASH",
        help="a lineage chain link noted earlier (an Asset event's lineage_chain): fail if the chain lost it",
    )
    audit.add_argument(
        "--secret-file", type=Path, help="the project secret: fail if any record or bundle holds its text"
    )
    report = sub.add_parser(
        "report",
        help="write one self-contained HTML page about a releases folder",
        description=(
            "Write one HTML page that fetches nothing (inline CSS and SVG, data: images): the lineage graph of "
            "RELEASES' output folders, the DP statistics with their 95% error bars, before/after thumbnails of "
            "pixel transforms, and the de-identification summary; with --ledger also each dataset's budget "
            "spent over time against its cap. It shows only what records and bundles already hold."
        ),
    )
    report.add_argument("releases", type=Path, metavar="RELEASES", help="the releases folder of a run")
    report.add_argument("--html", type=Path, required=True, metavar="OUT", help="where to write the page")
    report.add_argument("--ledger", help="ledger URL: sqlite:///path.db or postgresql://... (default: no budget chart)")


def run(args: argparse.Namespace) -> int:
    """Run ``audit`` (prints each finding and the verdict line last) or ``report`` (prints where the page is)."""
    if args.command == "report":
        from privacy_core.lineage.report import write_report

        print(f"report: {write_report(args.releases, args.html, ledger_url=args.ledger)}")
        return 0
    from privacy_core.keys import PseudonymKey
    from privacy_core.lineage.audit import audit_releases

    secret = None
    if args.secret_file:
        PseudonymKey.from_file(args.secret_file)  # a missing or empty file fails as deid's would
        secret = args.secret_file.read_text(encoding="utf-8")
    from privacy_core.lineage.chain import ChainLink

    expect = [ChainLink.parse(args.expect_head)] if args.expect_head else []
    report = audit_releases(args.releases, ledger_url=args.ledger, secret_text=secret, expect_heads=expect)
    print(report.render())
    return 0 if report.ok else EXIT_FAILED
