"""``imaging-privacy secure ...``: the steps of an encrypted cross-site aggregation round on the command line.

``keygen`` (key ceremony), ``open-round`` (coordinator), ``encrypt`` (each site), ``aggregate`` (coordinator),
``decrypt-share`` (each key holder), ``combine`` (coordinator). Each prints what it did, or with ``--json``
the step's summary; neither ever holds a key share, a site value or a decryption secret.

Exit codes add to the CLI's: 4 the privacy budget cannot pay; 5 the round is not ready (before the deadline,
some sites have not uploaded: retry later); 6 the protocol refused (too few sites or shares, wrong key, an
aggregate that does not verify). Bad arguments exit 2, as everywhere in the CLI.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from privacy_core.errors import ConfigurationError

EXIT_BUDGET = 4
EXIT_NOT_READY = 5
EXIT_REFUSED = 6


def add_parsers(sub: Any) -> None:
    """Register ``secure`` and its steps on the CLI's subparsers."""
    secure = sub.add_parser(
        "secure",
        help="encrypted cross-site sums with distributed DP noise (keygen, open-round, encrypt, aggregate, ...)",
        description=(
            "Sum a statistic across hospitals without anyone seeing a site's values: each site adds its share of "
            "discrete Gaussian noise and encrypts under a threshold Paillier key; the coordinator sums the "
            "ciphertexts; t key holders decrypt only the sum, which is already differentially private, and the "
            "spend is charged to the privacy-budget ledger. Envelopes go through a shared exchange (a folder or "
            "an fsspec URL such as s3://bucket/exchange)."
        ),
    )
    steps = secure.add_subparsers(dest="secure_command", required=True, metavar="STEP")

    keygen = steps.add_parser(
        "keygen",
        help="key ceremony: a t-of-n threshold key, one share file per holder (mode 0600)",
        description=(
            "Deal a threshold Paillier key into OUTPUT, a new local folder: public-key.json for the coordinator "
            "and the sites, and key-share-<i>.json for each holder, readable by the owner only. Move each share "
            "to its holder's vault. Shares are never printed."
        ),
    )
    keygen.add_argument("output", type=Path, metavar="OUTPUT", help="a new, local folder")
    keygen.add_argument("--holders", type=int, required=True, help="key holders dealt a share")
    keygen.add_argument("--threshold", type=int, required=True, help="holders needed to decrypt")
    keygen.add_argument("--bits", type=int, help="modulus bits (default 3072, about 128-bit security)")
    _json_flag(keygen)

    opening = steps.add_parser(
        "open-round",
        help="coordinator: write a round's spec (statistic, sites, noise, deadline, key)",
        description=(
            "Write EXCHANGE/ROUND/spec.json. Each site will add discrete Gaussian noise of variance "
            "sensitivity/(2·rho)/(min_sites - collusion), so the sum of any min_sites uploads is rho-zCDP even "
            "if `collusion` of them pool what they know; the worst-case charge is checked against --ledger now."
        ),
    )
    _round_arguments(opening)
    opening.add_argument("--public-key", type=Path, required=True, help="public-key.json from keygen")
    opening.add_argument("--statistic", required=True, help="the statistic's name, e.g. lesion-counts")
    opening.add_argument("--length", type=int, required=True, help="values in the vector")
    opening.add_argument("--value-bound", type=int, required=True, help="bound of each site value, in units")
    opening.add_argument("--resolution", default="1", help="value of one unit, e.g. 1 or 1/10 (default 1)")
    opening.add_argument("--contribution-bound", type=int, default=1, help="records per patient (default 1)")
    opening.add_argument("--l2-sensitivity-sq", required=True, help="squared L2 change from one patient, in units")
    opening.add_argument("--site", action="append", required=True, dest="sites", help="an allowed site, repeatable")
    opening.add_argument("--max-sites", type=int, help="slot capacity (default: the number of sites)")
    opening.add_argument("--min-sites", type=int, required=True, help="fewest uploads to combine")
    opening.add_argument("--collusion", type=int, default=0, help="sites that may pool their noise (default 0)")
    opening.add_argument("--rho", required=True, help="zCDP loss of the release, e.g. 1/2")
    opening.add_argument("--delta", type=float, default=1e-6, help="delta for the (epsilon, delta) shown")
    opening.add_argument("--dataset", required=True, help="the budget ledger's dataset")
    opening.add_argument("--deadline", required=True, help="ISO UTC time, e.g. 2025-06-01T18:00:00Z")
    opening.add_argument("--ledger", help="check the budget now against this ledger URL")

    encrypt = steps.add_parser(
        "encrypt",
        help="site: add this site's noise to its vector, encrypt, upload once",
        description=(
            "Read VECTOR (.npy or a .json list) in the statistic's units, quantize it, add this site's exact "
            "discrete Gaussian noise, encrypt under the round's key and upload it. The round's key must be the "
            "one this site trusts (--key-fingerprint or --public-key from the key ceremony)."
        ),
    )
    _round_arguments(encrypt)
    encrypt.add_argument("--site", required=True, help="this site's id")
    encrypt.add_argument("--vector", type=Path, required=True, help="the site's vector (.npy or .json)")
    encrypt.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="encrypt on an embedded Dask cluster of N processes on this machine (default: in this process)",
    )
    trusted = encrypt.add_mutually_exclusive_group(required=True)
    trusted.add_argument("--key-fingerprint", help="sha256:... of the key from the key ceremony")
    trusted.add_argument("--public-key", type=Path, help="the public key file from the key ceremony")

    aggregate = steps.add_parser(
        "aggregate",
        help="coordinator: sum the accepted uploads after the deadline",
        description=(
            "Check every upload (round, spec, key, site, duplicates, deadline, format, digest), sum the accepted "
            "ones homomorphically and write EXCHANGE/ROUND/aggregate.json. Exits 5 before the deadline while "
            "sites are missing, 6 if fewer than min_sites were accepted."
        ),
    )
    _round_arguments(aggregate)
    aggregate.add_argument("--now", help="evaluate the deadline at this ISO UTC time (default: now)")

    share = steps.add_parser(
        "decrypt-share",
        help="key holder: verify the aggregate, publish this holder's partial decryption",
        description=(
            "Recompute the aggregate from the uploads it lists and, if it is the sum of at least min_sites "
            "distinct allowed uploads, publish this holder's proved partial decryption. A holder decrypts one "
            "aggregate per round (its journal, beside the share, refuses a second)."
        ),
    )
    _round_arguments(share)
    share.add_argument("--share", type=Path, required=True, help="this holder's key share (mode 0600)")
    share.add_argument("--journal", type=Path, help="the holder's journal (default: SHARE.journal.json)")
    share.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="decrypt on an embedded Dask cluster of N processes on this machine (default: in this process)",
    )

    combine = steps.add_parser(
        "combine",
        help="coordinator: verify t shares, charge the ledger, write the DP result",
        description=(
            "Verify the key holders' shares, reserve the privacy loss on the ledger, decrypt the noisy total, "
            "commit it to the ledger and write EXCHANGE/ROUND/result.json. A repeat returns the stored result "
            "and charges nothing."
        ),
    )
    _round_arguments(combine)
    combine.add_argument("--ledger", help="ledger URL (default: $IMAGING_PRIVACY_LEDGER)")


def _round_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("exchange", metavar="EXCHANGE", help="the exchange: a folder or e.g. s3://bucket/exchange")
    parser.add_argument("round_id", metavar="ROUND", help="the round id")
    parser.add_argument(
        "--storage-options",
        type=Path,
        help="a JSON file of fsspec options for the exchange (endpoint, credentials; never printed)",
    )
    _json_flag(parser)


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the step's summary as JSON")


def _storage_options(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        options = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise ConfigurationError(
            "--storage-options", f"{path} is not a readable JSON file", "give a JSON object"
        ) from None
    if not isinstance(options, dict):
        raise ConfigurationError("--storage-options", f"{path} is not a JSON object", "give a JSON object")
    return options


def run(args: argparse.Namespace) -> int:
    """Run one ``secure`` step; refusals exit with the codes in the module docstring, their reason on stderr."""
    from privacy_core.errors import BudgetExceededError, RoundNotReadyError, SecureProtocolError

    try:
        summary, lines = _STEPS[args.secure_command](args)
    except BudgetExceededError as exc:
        print(f"imaging-privacy secure {args.secure_command}: {exc}", file=sys.stderr)
        return EXIT_BUDGET
    except RoundNotReadyError as exc:
        print(f"imaging-privacy secure {args.secure_command}: {exc}", file=sys.stderr)
        return EXIT_NOT_READY
    except SecureProtocolError as exc:
        print(f"imaging-privacy secure {args.secure_command}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        print("\n".join(lines))
    return 0


Step = tuple[dict[str, Any], list[str]]


def _keygen(args: argparse.Namespace) -> Step:
    from privacy_core.secure.roles import keygen

    s = keygen(args.output, holders=args.holders, threshold=args.threshold, bits=args.bits)
    lines = [
        f"dealt a {s['threshold']}-of-{s['holders']} {s['bits']}-bit threshold key {s['key_fingerprint']}",
        f"public key (give to the coordinator and every site): {s['public_key']}",
        *[f"share for holder {i} (mode 0600; move to that holder's vault): {p}" for i, p in enumerate(s["shares"], 1)],
        f"lineage record: {s['lineage_record']}",
    ]
    return s, lines


def _open_round(args: argparse.Namespace) -> Step:
    from privacy_core.secure.roles import open_round

    s = open_round(
        args.exchange,
        args.round_id,
        public_key=args.public_key,
        statistic=args.statistic,
        length=args.length,
        value_bound=args.value_bound,
        resolution=args.resolution,
        contribution_bound=args.contribution_bound,
        l2_sensitivity_sq=args.l2_sensitivity_sq,
        sites=args.sites,
        min_sites=args.min_sites,
        collusion=args.collusion,
        rho=args.rho,
        delta=args.delta,
        dataset=args.dataset,
        deadline=args.deadline,
        max_sites=args.max_sites,
        ledger=args.ledger,
        storage_options=_storage_options(args.storage_options),
    )
    lines = [
        f"round {s['round_id']} open until {s['deadline']}: {s['sites']} sites, at least {s['min_sites']}, "
        f"up to {s['collusion']} colluding",
        f"each site adds discrete Gaussian noise sigma^2 = {s['sigma_site_sq']:g}; target rho {s['rho_target']:g}, "
        f"charged at most {s['rho_planned']:g}",
        f"key {s['key_fingerprint']}; spec {s['spec']} ({s['spec_digest']})",
        f"lineage record: {s['lineage_record']}",
    ]
    return s, lines


def _encrypt(args: argparse.Namespace) -> Step:
    from privacy_core.secure.roles import load_public_key, site_encrypt

    trusted = args.key_fingerprint or load_public_key(args.public_key).fingerprint
    s = site_encrypt(
        args.exchange,
        args.round_id,
        args.site,
        args.vector,
        key_fingerprint=trusted,
        storage_options=_storage_options(args.storage_options),
        workers=args.workers,
    )
    verb = "already uploaded (kept, no new noise drawn)" if s["already_uploaded"] else "uploaded"
    lines = [
        f"site {s['site_id']}: {verb} {s['length']} noisy values as {s['ciphertexts']} ciphertexts: {s['upload']}",
        f"upload digest {s['envelope_digest']}",
        f"lineage record: {s['lineage_record']}",
    ]
    return s, lines


def _aggregate(args: argparse.Namespace) -> Step:
    from privacy_core.secure.roles import aggregate

    s = aggregate(args.exchange, args.round_id, now=args.now, storage_options=_storage_options(args.storage_options))
    lines = [f"round {s['round_id']}: {s['arrived']} uploads arrived, {s['accepted']} accepted"]
    lines += [f"  rejected {r['file']} ({r['sender'] or 'unknown sender'}): {r['reason']}" for r in s["rejections"]]
    lines += [f"aggregate: {s['aggregate']} ({s['aggregate_digest']})", f"lineage record: {s['lineage_record']}"]
    return s, lines


def _decrypt_share(args: argparse.Namespace) -> Step:
    from privacy_core.secure.roles import decrypt_share

    s = decrypt_share(
        args.exchange,
        args.round_id,
        args.share,
        journal=args.journal,
        storage_options=_storage_options(args.storage_options),
        workers=args.workers,
    )
    verb = "already published" if s["already_shared"] else "published"
    lines = [
        f"holder {s['holder']}: {verb} a partial decryption of aggregate {s['aggregate_digest']}: {s['share']}",
        f"lineage record: {s['lineage_record']}",
    ]
    return s, lines


def _combine(args: argparse.Namespace) -> Step:
    from privacy_core.dp.commands import ledger_url
    from privacy_core.secure.roles import combine_result

    s = combine_result(
        args.exchange,
        args.round_id,
        ledger=ledger_url(args.ledger),
        storage_options=_storage_options(args.storage_options),
    )
    verb = "charged" if s["charged"] else "returned the stored result, charged nothing:"
    lines = [
        f"round {s['round_id']}: {s['sites_accepted']} sites, shares of holders {s['holders']}",
        f"{verb} rho {s['rho']:g} (epsilon {s['epsilon']:.3g} at delta {s['delta']:g}) to {s['dataset']} "
        f"(entry {s['ledger_commit']})",
        f"result: {s['result']}",
        f"lineage record: {s['lineage_record']}",
    ]
    return s, lines


_STEPS = {
    "keygen": _keygen,
    "open-round": _open_round,
    "encrypt": _encrypt,
    "aggregate": _aggregate,
    "decrypt-share": _decrypt_share,
    "combine": _combine,
}
