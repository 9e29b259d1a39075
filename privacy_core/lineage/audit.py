"""Audit a releases folder end to end: records present and valid, digests that match the data, the budget
ledger that backs every DP release, and no key material anywhere.

The auditor trusts nothing a record says about itself: each output's digest is recomputed from the data
with the function that wrote it, and each DP release is checked against the ledger's hash chain. Findings
name the check, the file and the problem, never a secret value.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from privacy_core.errors import ConfigurationError, PrivacyCoreError

if TYPE_CHECKING:
    from privacy_core.dp.ledger import BudgetLedger
    from privacy_core.lineage.chain import ChainLink

#: Folder name prefixes of the outputs a run writes into its releases folder; each must hold a lineage record.
OUTPUT_PREFIXES = ("release-", "zarr-", "dp-pix-", "dp-release-")
LINEAGE_DIR = "lineage"
#: A JSON key whose last word is one of these holds key material (``private_attributes`` does not).
SECRET_KEY_WORDS = frozenset({"secret", "password", "passwd", "token", "private"})
SHARE_SCHEMA_PREFIX = "PaillierKeyShare/"
_SHARE_FIELDS = frozenset({"holder", "key_fingerprint", "secret", "delta"})


@dataclass(frozen=True)
class Finding:
    """One failed check: which check, where (a file or folder, or the ledger), and what is wrong."""

    check: str
    path: str
    problem: str

    def render(self) -> str:
        return f"[{self.check}] {self.path}: {self.problem}"


@dataclass(frozen=True)
class Spend:
    """A privacy spend a record claims: the ledger entry it names and the file that repeats it."""

    record_path: Path
    dataset: str
    sequence: int
    entry_hash: str
    charged: bool
    loss_exact: str
    published: Path
    published_ledger: dict[str, Any]

    @classmethod
    def of_release(cls, path: Path, facet: dict[str, Any], bundle: dict[str, Any] | None) -> Spend:
        """The spend of a DP release record; its bundle ``release.json`` repeats the commit."""
        return cls(
            path,
            facet["dataset"],
            int(facet["ledger_entry"]["sequence"]),
            facet["ledger_entry"]["hash"],
            bool(facet["charged"]),
            facet["loss_exact"],
            path.parent.parent / "release.json",
            (bundle or {}).get("ledger", {}),
        )

    @classmethod
    def of_round(cls, path: Path, dp: dict[str, Any], result: dict[str, Any] | None) -> Spend:
        """The spend of a secure round's combine record; its ``result.json`` repeats the commit."""
        return cls(
            path,
            dp["dataset"],
            int(dp["ledger_entry"]["sequence"]),
            dp["ledger_entry"]["hash"],
            bool(dp["charged"]),
            dp["rho_exact"],
            path.parent.parent / "result.json",
            ((result or {}).get("payload") or {}).get("ledger", {}),
        )


@dataclass
class AuditReport:
    """What :func:`audit_releases` found: ``ok`` when there are no findings; ``notes`` are facts (budget sums)."""

    root: str
    folders: int = 0
    records: int = 0
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def fail(self, check: str, path: str | Path, problem: str) -> None:
        self.findings.append(Finding(check, str(path), problem))

    def verdict(self) -> str:
        """The one-line verdict, last line of :meth:`render`."""
        counted = f"{self.folders} output folders, {self.records} lineage records"
        if self.ok:
            return f"verdict: PASS ({counted} verify)"
        return f"verdict: FAIL ({len(self.findings)} problems in {counted})"

    def render(self) -> str:
        lines = [f"audit of {self.root}"]
        lines += [f"  {note}" for note in self.notes]
        lines += [f"  {finding.render()}" for finding in self.findings]
        lines.append(self.verdict())
        return "\n".join(lines)


def output_folders(root: Path) -> list[Path]:
    """The output folders under ``root``: named with an :data:`OUTPUT_PREFIXES` prefix, or holding ``lineage/``."""
    return sorted(
        p for p in root.iterdir() if p.is_dir() and (p.name.startswith(OUTPUT_PREFIXES) or (p / LINEAGE_DIR).is_dir())
    )


def audit_releases(
    root: str | Path,
    *,
    ledger_url: str | None = None,
    secret_text: str | None = None,
    expect_heads: Sequence[ChainLink] = (),
) -> AuditReport:
    """Check every output folder of ``root`` and its lineage chain; with ``ledger_url`` also the DP releases
    against the ledger.

    :param ledger_url: the budget ledger (``sqlite:///...`` or ``postgresql://...``); None skips the ledger checks.
    :param secret_text: the project secret; any record or bundle holding it fails (never quoted).
    :param expect_heads: chain links noted earlier (Asset events' ``lineage_chain``, an earlier audit's head):
        the chain must still hold each, which detects links cut off its end.
    :raises ConfigurationError: ``root`` is not a folder.

    After ``make demo``::

        report = audit_releases(".demo/data/releases", ledger_url="sqlite:///.demo/data/ledger.db")
        report.ok, report.verdict()  # (True, 'verdict: PASS (4 output folders, 4 lineage records verify)')
    """
    folder = Path(root)
    if not folder.is_dir():
        raise ConfigurationError("RELEASES", f"{folder} is not a folder", "give the releases folder of a run")
    report = AuditReport(str(folder))
    spends: list[Spend] = []
    record_paths: list[Path] = []
    secret = secret_text.strip() if secret_text else None
    for output in output_folders(folder):
        report.folders += 1
        paths = sorted((output / LINEAGE_DIR).glob("*.json"))
        if not paths:
            report.fail("record", output, f"no lineage record in {LINEAGE_DIR}/")
        bundle_path = output / "release.json"
        bundle = _load_json(bundle_path, report) if bundle_path.is_file() else None
        if bundle is not None:
            scan_secrets(bundle_path, bundle, report, secret)
        round_records: list[tuple[Path, dict[str, Any]]] = []
        for path in paths:
            report.records += 1
            record_paths.append(path)
            record = _read_record(path, report, secret)
            if record is None:
                continue
            check_digests(output, path, record, report)
            privacy = record.get("privacy", {})
            if "dp_release" in privacy:
                spends.append(Spend.of_release(path, privacy["dp_release"], bundle))
            if "secure" in privacy:
                round_records.append((path, record))
        if round_records:
            spends += check_secure_round(output, round_records, report, secret)
    if ledger_url is not None:
        from privacy_core.dp.ledger import open_ledger

        with open_ledger(ledger_url) as ledger:
            check_ledger(ledger, spends, report)
    check_chain(folder, record_paths, report, expect_heads)
    return report


def check_chain(root: Path, record_paths: list[Path], report: AuditReport, expect_heads: Sequence[ChainLink]) -> None:
    """The lineage chain verifies link by link, names every record here with its bytes unchanged, and still
    holds each of ``expect_heads``, links noted earlier."""
    from privacy_core.lineage.chain import CHAIN_DIR, verify_chain

    chain = verify_chain(root)
    for where, problem in chain.problems:
        report.fail("chain", root / where, problem)
    chained = chain.chained_paths
    for path in record_paths:
        if path.relative_to(root).as_posix() not in chained:
            report.fail("chain", path, f"is in no link of {CHAIN_DIR}/: it was added or rewritten outside a task")
    head = chain.head
    report.notes.append(
        f"lineage chain: {len(chain.links)} links, head {head.render() if head else 'none'}"
        " (note it: a later audit given --expect-head detects links cut off the end)"
    )
    for expect_head in expect_heads:
        held = chain.links[expect_head.sequence - 1] if expect_head.sequence <= len(chain.links) else None
        if held is None:
            report.fail("chain", root / CHAIN_DIR, f"ends before link {expect_head.sequence}, the head noted earlier")
        elif held["entry_hash"] != expect_head.entry_hash:
            report.fail("chain", root / CHAIN_DIR, f"link {expect_head.sequence} is not the one noted earlier")


def _load_json(path: Path, report: AuditReport) -> dict[str, Any] | None:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        report.fail("record", path, f"is not readable JSON ({exc.__class__.__name__})")
        return None
    if not isinstance(loaded, dict):
        report.fail("record", path, "is not a JSON object")
        return None
    return loaded


def _read_record(path: Path, report: AuditReport, secret: str | None) -> dict[str, Any] | None:
    """The record if it validates; the secrets scan runs on whatever parsed, valid or not."""
    from privacy_core.errors import SchemaValidationError
    from privacy_core.schemas import validate

    raw = _load_json(path, report)
    if raw is None:
        return None
    scan_secrets(path, raw, report, secret)
    try:
        validate("TaskLineageRecord", raw)
    except SchemaValidationError as exc:
        # The schema's own message may quote the offending value; the path is enough to find it.
        report.fail("record", path, f"does not match schema {exc.schema} at {exc.path or '/'}")
        return None
    except PrivacyCoreError as exc:
        report.fail("record", path, str(exc))
        return None
    return raw


def recompute_digest(folder: Path, algorithm: str) -> tuple[int, str]:
    """(items, digest) of the output ``folder`` by ``algorithm``, with the function that wrote it.

    :raises ConfigurationError: an algorithm no output of this project uses.
    """
    if algorithm == "sha256-tree":
        from privacy_core.imaging.job import _tree_digest

        return _tree_digest(folder)
    if algorithm == "sha256-chunks":
        from privacy_core.imaging.job import store_digest
        from privacy_core.imaging.zarr_store import list_series

        urls = list_series(str(folder))
        return len(urls), store_digest(urls)
    if algorithm == "sha256":
        from privacy_core.dp.release import BUNDLE_NAME

        bundle = folder / BUNDLE_NAME
        if not bundle.is_file():
            raise ConfigurationError("output", f"{bundle} is missing", "restore the bundle the record names")
        return -1, hashlib.sha256(bundle.read_bytes()).hexdigest()
    raise ConfigurationError("digest.algorithm", f"{algorithm!r} is unknown", "use a record this project wrote")


def check_digests(folder: Path, path: Path, record: dict[str, Any], report: AuditReport) -> None:
    """Recompute each output's digest from ``folder``, the output the record in ``folder/lineage/`` describes.

    The record's URIs are not followed: a copied or moved release is audited where it is now.
    """
    for index, output in enumerate(record["outputs"]):
        algorithm, claimed = output["digest"]["algorithm"], output["digest"]["value"]
        where = f"{path} (outputs[{index}], {algorithm})"
        inside = _file_inside(folder, output["uri"]) if algorithm == "sha256" else None
        try:
            if inside is not None:
                if not inside.is_file():
                    raise ConfigurationError("output", f"{inside} is missing", "restore the file the record names")
                items, actual = -1, hashlib.sha256(inside.read_bytes()).hexdigest()
            else:
                items, actual = recompute_digest(folder, algorithm)
        except PrivacyCoreError as exc:
            report.fail("digest", where, str(exc))
            continue
        if actual != claimed:
            report.fail("digest", where, f"recorded {claimed[:16]}..., the data in {folder} gives {actual[:16]}...")
        elif items >= 0 and items != output["count"]:
            report.fail("digest", where, f"recorded {output['count']} items, {folder} holds {items}")
    facet = record.get("privacy", {}).get("dp_release")
    if facet is not None and f"sha256:{_bundle_sha256(folder)}" != facet["bundle_digest"]:
        report.fail("digest", f"{path} (privacy.dp_release.bundle_digest)", "does not match release.json")


def _file_inside(folder: Path, uri: str) -> Path | None:
    """Where a file output named by ``uri`` is now: its path below a segment named like ``folder``, taken
    under ``folder`` (so a moved or copied release is audited where it is). None for the folder itself."""
    from urllib.parse import unquote, urlparse

    parts = Path(unquote(urlparse(uri).path) if "://" in uri else uri).parts
    if folder.name not in parts:
        return None
    below = parts[len(parts) - 1 - parts[::-1].index(folder.name) + 1 :]
    return folder.joinpath(*below) if below else None


def _bundle_sha256(folder: Path) -> str | None:
    try:
        return recompute_digest(folder, "sha256")[1]
    except ConfigurationError:
        return None


def check_ledger(ledger: BudgetLedger, spends: list[Spend], report: AuditReport) -> None:
    """Each dataset a spend names: its chain verifies, each spend and the file that publishes it name the same
    commit entry, and the charged losses add up to no more than the ledger's spend (exactly to it when every
    commit is here)."""
    from privacy_core.errors import LedgerIntegrityError

    by_dataset: dict[str, list[Spend]] = {}
    for spend in spends:
        by_dataset.setdefault(spend.dataset, []).append(spend)
    for dataset, items in sorted(by_dataset.items()):
        where = f"ledger {ledger.url} dataset {dataset}"
        try:
            verification = ledger.verify(dataset)
            entries = {e.seq: e for e in ledger.entries(dataset)}
            status = ledger.status(dataset)
        except (ConfigurationError, LedgerIntegrityError) as exc:
            report.fail("ledger", where, str(exc))
            continue
        for problem in verification.problems:
            report.fail("ledger", where, f"hash chain does not verify: {problem}")
        charged: dict[int, Fraction] = {}
        for spend in items:
            seq = spend.sequence
            entry = entries.get(seq)
            if entry is None or entry.kind != "commit":
                report.fail(
                    "ledger", spend.record_path, f"entry {seq} of {dataset} is not a commit entry in the ledger"
                )
                continue
            if spend.entry_hash != entry.entry_hash:
                report.fail("ledger", spend.record_path, f"ledger_entry.hash is not the hash of entry {seq}")
            if spend.published_ledger.get("commit_sequence") != seq:
                report.fail("ledger", spend.published, f"ledger.commit_sequence is not {seq}, the record's entry")
            elif spend.published_ledger.get("commit_hash") != entry.entry_hash:
                report.fail("ledger", spend.published, f"ledger.commit_hash is not the hash of entry {seq}")
            if spend.charged:
                charged[seq] = Fraction(spend.loss_exact)
        total = sum(charged.values(), Fraction(0))
        commits = {seq for seq, e in entries.items() if e.kind == "commit"}
        complete = commits <= set(charged)
        report.notes.append(
            f"{dataset}: charged in these records {total} (~{float(total):.6g}), ledger spent {status.spent} "
            f"(~{float(status.spent):.6g}); {len(charged)} of {len(commits)} committed spends are here"
        )
        if total > status.spent:
            report.fail("budget", where, f"records charge {total}, more than the ledger's spent {status.spent}")
        elif complete and total != status.spent:
            report.fail("budget", where, f"every spend is here but records charge {total}, ledger spent {status.spent}")
    check_unnamed_datasets(ledger, set(by_dataset), report)


def check_unnamed_datasets(ledger: BudgetLedger, named: set[str], report: AuditReport) -> None:
    """The ledger's other datasets, which no record here names: their chains must verify too (a ledger is
    audited whole), and a note says how much each has spent elsewhere."""
    from privacy_core.errors import LedgerIntegrityError

    for dataset in ledger.datasets():
        if dataset in named:
            continue
        where = f"ledger {ledger.url} dataset {dataset}"
        try:
            verification = ledger.verify(dataset)
            status = ledger.status(dataset)
        except (ConfigurationError, LedgerIntegrityError) as exc:
            report.fail("ledger", where, str(exc))
            continue
        for problem in verification.problems:
            report.fail("ledger", where, f"hash chain does not verify: {problem}")
        report.notes.append(
            f"{dataset}: named by no record here; ledger spent {status.spent} (~{float(status.spent):.6g}) "
            f"of cap {status.cap} in {status.entries} entries"
        )


def check_secure_round(
    folder: Path, records: list[tuple[Path, dict[str, Any]]], report: AuditReport, secret: str | None
) -> list[Spend]:
    """A cross-site round folder: every step names one key and one spec; every envelope in the folder was
    written by a recorded step, with these bytes; every envelope a step read was written by another. Returns
    the round's privacy spend (its combine step's), for the ledger checks."""
    from privacy_core.secure.envelopes import sha256_digest

    fingerprints = {r["privacy"]["secure"]["key_fingerprint"] for _, r in records}
    specs = {r["privacy"]["secure"]["spec_digest"] for _, r in records}
    if len(fingerprints) > 1:
        report.fail("secure", folder, f"its steps name {len(fingerprints)} different keys, not one")
    if len(specs) > 1:
        report.fail("secure", folder, f"its steps name {len(specs)} different statistic specs, not one")
    written = {ref["digest"] for _, r in records for ref in r["privacy"]["secure"]["envelopes_written"]}
    for envelope in sorted(folder.rglob("*.json")):
        relative = envelope.relative_to(folder)
        if relative.parts[0] == LINEAGE_DIR or any(part.startswith(".") for part in relative.parts):
            continue
        if sha256_digest(envelope.read_bytes()) not in written:
            report.fail("secure", envelope, "no recorded step wrote these bytes: the envelope was planted or changed")
    for path, record in records:
        for ref in record["privacy"]["secure"]["envelopes_read"]:
            if ref["digest"] not in written:
                report.fail("secure", path, f"read a {ref['kind']} envelope that no recorded step of the round wrote")
    spends = []
    result_path = folder / "result.json"
    result = _load_json(result_path, report) if result_path.is_file() else None
    if result is not None:
        scan_secrets(result_path, result, report, secret)
    for path, record in records:
        dp = record["privacy"]["secure"].get("dp") or {}
        if record["operation"] == "secure-combine" and "ledger_entry" in dp:
            spends.append(Spend.of_round(path, dp, result))
    return spends


def _walk(value: Any, at: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(JSON path, key or None, value) of every member, depth first."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield f"{at}/{k}", k, v
            yield from _walk(v, f"{at}/{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield f"{at}/{i}", None, v
            yield from _walk(v, f"{at}/{i}")


def is_secret_key(name: str) -> bool:
    """Whether a JSON key names key material: its last word is a :data:`SECRET_KEY_WORDS` word, or it is
    ``private_key``/``secret_key``.

    >>> [is_secret_key(k) for k in ("secret", "api_token", "private_key", "private_attributes", "key_fingerprint")]
    [True, True, True, False, False]
    """
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    if not words:
        return False
    return words[-1] in SECRET_KEY_WORDS or words[:2] in (["private", "key"], ["secret", "key"])


def _is_share(value: Any) -> bool:
    if isinstance(value, dict):
        schema = value.get("schema")
        return (isinstance(schema, str) and schema.startswith(SHARE_SCHEMA_PREFIX)) or set(value) >= _SHARE_FIELDS
    return isinstance(value, str) and SHARE_SCHEMA_PREFIX in value


def scan_secrets(path: Path, document: dict[str, Any], report: AuditReport, secret: str | None = None) -> None:
    """Flag keys naming key material, values shaped like a ``PaillierKeyShare``, and ``secret`` anywhere."""
    if _is_share(document):
        report.fail("secrets", f"{path} at /", "is shaped like a PaillierKeyShare")
    for at, key, value in _walk(document):
        if key is not None and is_secret_key(str(key)):
            report.fail("secrets", f"{path} at {at}", f"key {key!r} names key material")
        elif _is_share(value):
            report.fail("secrets", f"{path} at {at}", "value is shaped like a PaillierKeyShare")
    if secret and secret in path.read_text(encoding="utf-8"):
        report.fail("secrets", path, "holds the project secret's text")
