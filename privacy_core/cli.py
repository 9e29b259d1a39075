"""``imaging-privacy``: the command line of airflow-imaging-privacy, one entry point with subcommands.

Exit codes: 0 done; 1 the verifier found a leak, or ``audit`` a failure; 2 bad arguments or settings
(nothing was written); 3 files were quarantined and ``--strict`` was given; 4 the privacy budget cannot pay
for a release (``budget verify`` exits 1 when the ledger's hash chain does not verify).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from privacy_core.errors import PrivacyCoreError

log = logging.getLogger("imaging_privacy")

EXIT_LEAK = 1
EXIT_USAGE = 2
EXIT_QUARANTINED = 3


def _option_names() -> list[str]:
    from privacy_core.deid.profile import Option

    return [o.value.replace("_", "-") for o in Option]


def _add_option_flag(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--option NAME``, repeatable; deid and verify must agree on the choices."""
    parser.add_argument(
        "--option", action="append", default=[], choices=_option_names(), metavar="OPTION", help=help_text
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imaging-privacy",
        description="Release medical-image datasets without revealing who is in them.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    deid = sub.add_parser(
        "deid",
        help="de-identify a tree of DICOM files (PS3.15 Annex E, keyed pseudonyms, burned-in text)",
        description=(
            "De-identify every file under INPUT (walked recursively) into OUTPUT, a new or empty folder, "
            "following DICOM PS3.15 Table E.1-1 with the chosen options. UIDs, patient IDs, accession "
            "numbers and date shifts are keyed pseudonyms under the project secret: the same secret gives "
            "the same pseudonyms on any machine and in any run. Files that cannot be released go to the "
            "quarantine folder with their reason; the rest of the batch goes on."
        ),
    )
    deid.add_argument("input", type=Path, metavar="INPUT", help="a DICOM file or a folder of them")
    deid.add_argument("output", type=Path, metavar="OUTPUT", help="the release folder (new or empty)")
    deid.add_argument(
        "--secret-file",
        type=Path,
        help="file holding the project secret (default: the IMAGING_PRIVACY_SECRET environment variable)",
    )
    _add_option_flag(deid, "a PS3.15 E.3 option, repeatable: " + ", ".join(_option_names()))
    deid.add_argument("--workers", type=int, default=1, help="worker processes, one core each (default 1)")
    deid.add_argument("--report", type=Path, help="write the run summary as JSON here (no identifiers)")
    deid.add_argument(
        "--quarantine", type=Path, help="folder for rejected inputs and reasons (default OUTPUT.quarantine)"
    )
    deid.add_argument("--burned-in-rules", type=Path, help="an RSNA CTP-format rule file instead of the library")
    deid.add_argument(
        "--release-unhandled-burned-in",
        action="store_true",
        help="release BurnedInAnnotation=YES images no rule covers (default: quarantine them)",
    )
    deid.add_argument(
        "--lenient-values",
        action="store_true",
        help="release files whose numbers, dates or UIDs break their VR",
    )
    deid.add_argument("--strict", action="store_true", help="exit 3 if any file was quarantined")
    deid.add_argument("--progress", action="store_true", help="show a progress bar even when not on a terminal")

    verify = sub.add_parser(
        "verify",
        help="scan a release for any value the profile removed (trusts nothing the engine says)",
        description=(
            "Collect every value of every attribute the profile did not keep from the files under INPUT "
            "(names, IDs, dates, UIDs, free text, private values) and search every byte and every path "
            "under OUTPUT for them. Prints each hit and exits 1 on any."
        ),
    )
    verify.add_argument("input", type=Path, metavar="INPUT", help="the original files")
    verify.add_argument("output", type=Path, metavar="OUTPUT", help="the release to check")
    _add_option_flag(verify, "the options the release was made with (values they keep are not leaks)")
    verify.add_argument("--report", type=Path, help="write the findings as JSON here (masked: no values)")

    to_zarr = sub.add_parser(
        "to-zarr",
        help="convert de-identified DICOM into one OME-Zarr array per series",
        description=(
            "Group the DICOM files under INPUT into series, sort slices by geometry (position along the slice "
            "normal), stack frames and write one Zarr v3 array per series with its spacing, orientation and "
            "origin (OME-NGFF) into STORE, a local path or an fsspec URL. Series that cannot be converted are "
            "reported with their reason and left out."
        ),
    )
    to_zarr.add_argument("input", type=Path, metavar="INPUT", help="de-identified DICOM (a release folder)")
    to_zarr.add_argument("store", metavar="STORE", help="Zarr store: a path or an fsspec URL such as s3://bucket/x")
    to_zarr.add_argument("--rescale", action="store_true", help="apply Rescale Slope/Intercept (e.g. to HU)")
    to_zarr.add_argument("--chunk-mb", type=float, default=32.0, help="target chunk size in MB (default 32)")

    pixels = sub.add_parser(
        "pixels",
        help="apply a pixel privacy transform to every series array of a store, on Dask",
        description=(
            "Read every complete series array of STORE, apply the transform as a Dask graph on an embedded "
            "cluster (or --scheduler), and write new arrays into OUTPUT atomically. dp-pix is differentially "
            "private (Fan 2018): its noise scale is printed before it runs."
        ),
    )
    pixels.add_argument("store", metavar="STORE", help="input Zarr store")
    pixels.add_argument("output", metavar="OUTPUT", help="output Zarr store")
    pixels.add_argument("--method", required=True, choices=["mask", "blur", "pixelate", "dp-pix"])
    pixels.add_argument(
        "--region",
        action="append",
        default=[],
        metavar="X,Y,W,H",
        help="mask: a rectangle, repeatable; or 'burned-in' for the regions the RSNA CTP library matched",
    )
    pixels.add_argument("--sigma", type=float, help="blur: Gaussian sigma in pixels")
    pixels.add_argument("--block", type=int, help="pixelate, dp-pix: cell size b")
    pixels.add_argument("--epsilon", type=float, help="dp-pix: privacy loss")
    pixels.add_argument("--m", type=int, default=1, help="dp-pix: protected pixels (default 1)")
    pixels.add_argument("--value-range", type=float, help="dp-pix: dynamic range (default: from the data type)")
    pixels.add_argument("--workers", type=int, help="embedded cluster size (default: one per core)")
    pixels.add_argument("--scheduler", help="an existing Dask scheduler, e.g. tcp://host:8786")

    from privacy_core.dp import commands
    from privacy_core.lineage import commands as lineage_commands
    from privacy_core.secure import commands as secure_commands

    commands.add_parsers(sub)
    secure_commands.add_parsers(sub)
    lineage_commands.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args = _parser().parse_args(argv)
    try:
        if args.command == "deid":
            return _deid(args)
        if args.command == "to-zarr":
            return _to_zarr(args)
        if args.command == "pixels":
            return _pixels(args)
        if args.command in ("release", "budget"):
            from privacy_core.dp import commands

            return commands.run(args)
        if args.command == "secure":
            from privacy_core.secure import commands as secure_commands

            return secure_commands.run(args)
        if args.command in ("audit", "report"):
            from privacy_core.lineage import commands as lineage_commands

            return lineage_commands.run(args)
        return _verify(args)
    except PrivacyCoreError as exc:
        print(f"imaging-privacy {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _deid(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from privacy_core.deid.batch import list_inputs
    from privacy_core.deid.job import run_deidentification
    from privacy_core.keys import PseudonymKey

    key = PseudonymKey.from_file(args.secret_file) if args.secret_file else PseudonymKey.from_env()
    total = len(list_inputs(args.input.resolve())) if args.input.exists() else 0
    show = args.progress or sys.stderr.isatty()
    with tqdm(total=total, unit="file", disable=not show, file=sys.stderr) as bar:

        def advance(files: int) -> None:
            bar.update(files)

        job = run_deidentification(
            args.input,
            args.output,
            key,
            options=args.option,
            quarantine_path=args.quarantine,
            report_path=args.report,
            workers=args.workers,
            strict_values=not args.lenient_values,
            rules_path=args.burned_in_rules,
            release_unhandled_burned_in=args.release_unhandled_burned_in,
            progress=advance,
        )
    s = job.summary
    lines = [
        f"de-identified {s['written']} of {s['processed']} files in {s['seconds']} s "
        f"({s['files_per_second']} files/s) -> {args.output}",
        f"profile: {s['profile']}   key: {s['key_fingerprint']}",
        f"duplicates: {s['duplicates']}   pixel regions cleaned in: {s['pixel_cleaned']} files",
        f"quarantined: {s['quarantined']}",
    ]
    reasons = s["reasons"] if isinstance(s["reasons"], dict) else {}
    lines += [f"  {count:6d}  {reason}" for reason, count in reasons.items()]
    if job.quarantine_path:
        lines.append(f"quarantine report (names input files; keep it private): {job.quarantine_path}")
    lines.append(f"lineage record: {job.lineage_path}")
    print("\n".join(lines))
    return EXIT_QUARANTINED if args.strict and s["quarantined"] else 0


def _verify(args: argparse.Namespace) -> int:
    from privacy_core.deid.profile import Profile
    from privacy_core.deid.verify import verify_release, write_findings

    report = verify_release(args.input, args.output, Profile.from_names(tuple(args.option)))
    if args.report:
        write_findings(report, args.report)
    print(report.render())
    return EXIT_LEAK if report.hits else 0


def _to_zarr(args: argparse.Namespace) -> int:
    from privacy_core.imaging.job import run_to_zarr

    job = run_to_zarr(args.input, args.store, rescale=args.rescale, chunk_mb=args.chunk_mb)
    s = job.summary
    lines = [f"wrote {s['series']} series arrays to {args.store}; left out {s['left_out']}"]
    lines += [f"  {count:6d}  {reason}" for reason, count in dict(s["reasons"]).items()]
    lines.append(f"lineage record: {job.lineage_path}")
    print("\n".join(lines))
    return 0


def _pixels(args: argparse.Namespace) -> int:
    from privacy_core.errors import ConfigurationError
    from privacy_core.imaging.compute import DaskConfig
    from privacy_core.pixels.job import run_pixels

    parameters: dict[str, object] = {}
    if args.region == ["burned-in"]:
        parameters["regions"] = "burned-in"
    elif args.region:
        try:
            parameters["regions"] = [[int(v) for v in r.split(",")] for r in args.region]
        except ValueError:
            raise ConfigurationError(
                "--region", f"{args.region} is not X,Y,W,H", "write e.g. --region 0,0,512,40"
            ) from None
    for name in ("sigma", "block", "epsilon", "value_range"):
        if getattr(args, name) is not None:
            parameters[name] = getattr(args, name)
    if args.method == "dp-pix":
        parameters["m"] = args.m
    dask = DaskConfig(address=args.scheduler, workers=args.workers)
    job = run_pixels(args.store, args.output, args.method, parameters, dask=dask, announce=print)
    s = job.summary
    print(f"{args.method} applied to {s['arrays']} series arrays -> {args.output} on {s['compute']}")
    print(f"lineage record: {job.lineage_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
