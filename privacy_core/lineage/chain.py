"""The lineage chain of a releases folder: one hash-linked entry per lineage record, append-only.

Every record a task writes into ``<releases>/<output>/lineage/`` is also appended to
``<releases>/lineage-chain/`` as a :data:`SCHEMA` link that holds the record's path and the SHA-256 of its bytes,
and the hash of the link before it. Editing a record, deleting one together with its output folder, or
editing, removing or reordering a link therefore breaks the chain; cutting links off the end is caught by
comparing the head with one noted elsewhere (the audit prints it, Asset events carry it).

Appends take the next sequence number with an exclusive create (a hard link locally, a conditional PUT on
object stores that offer one), so concurrent tasks never overwrite each other's link: the loser re-reads
the head and tries the next number.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from privacy_core.errors import ConfigurationError
from privacy_core.schemas import validate
from privacy_core.storage import atomic_write_bytes

SCHEMA = "LineageChainEntry/1.0"
CHAIN_DIR = "lineage-chain"
GENESIS_HASH = "0" * 64
#: How often an append retries after another writer took the sequence number it wanted.
APPEND_ATTEMPTS = 64


@dataclass(frozen=True)
class ChainLink:
    """Where a record sits in its chain: the link's sequence number and hash."""

    sequence: int
    entry_hash: str

    def render(self) -> str:
        """``SEQUENCE:HASH``, the form ``imaging-privacy audit --expect-head`` takes."""
        return f"{self.sequence}:{self.entry_hash}"

    @classmethod
    def parse(cls, text: str) -> ChainLink:
        """Read ``SEQUENCE:HASH``.

        :raises ConfigurationError: any other form.

        >>> ChainLink.parse("3:" + "ab" * 32).sequence
        3
        """
        seq, _, digest = text.strip().partition(":")
        if not seq.isdigit() or int(seq) < 1 or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigurationError("expect-head", "is not SEQUENCE:HASH", "copy the head the audit printed")
        return cls(int(seq), digest)


@dataclass
class ChainVerification:
    """What :func:`verify_chain` found: the links in order, the head, and any problems as (where, what)."""

    links: list[dict[str, Any]] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def head(self) -> ChainLink | None:
        if not self.links:
            return None
        return ChainLink(int(self.links[-1]["sequence"]), str(self.links[-1]["entry_hash"]))

    @property
    def chained_paths(self) -> set[str]:
        """The record paths, relative to the releases folder, that the chain names."""
        return {str(link["record"]["path"]) for link in self.links}


def canonical_json(value: Any) -> bytes:
    """The bytes a link's hash covers: sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of every field of ``entry`` but ``entry_hash``."""
    return hashlib.sha256(canonical_json({k: v for k, v in entry.items() if k != "entry_hash"})).hexdigest()


def chain_root_of(lineage_folder: str | Path) -> str:
    """The releases folder a lineage folder belongs to: ``<releases>/<output>/lineage`` gives ``<releases>``.

    >>> chain_root_of("s3://bucket/releases/zarr-1/lineage"), chain_root_of("s3://bucket/lineage")
    ('s3://bucket/releases', 's3://bucket')
    """
    text = str(lineage_folder).rstrip("/")
    if "://" in text:
        scheme, _, rest = text.partition("://")
        bucket, _, path = rest.partition("/")
        parts = [p for p in path.split("/") if p]
        # <output>/lineage -> the folder above <output>; an output at the bucket's root chains at the root.
        return "/".join([f"{scheme}://{bucket}", *parts[:-2]])
    return str(Path(text).parent.parent)


def _link_name(sequence: int) -> str:
    return f"{sequence:08d}.json"


def _relative(root: str, record_location: str) -> str:
    if "://" in root:
        prefix = root.rstrip("/") + "/"
        if not record_location.startswith(prefix):
            raise ConfigurationError("lineage", "the record is outside its releases folder", "write it under one")
        return record_location[len(prefix) :]
    return Path(record_location).resolve().relative_to(Path(root).resolve()).as_posix()


class _Folder:
    """The chain folder on a local disk or behind an fsspec URL: list, read, create exclusively."""

    def __init__(self, root: str, storage_options: dict[str, Any] | None) -> None:
        self.remote = "://" in root
        self.root = root.rstrip("/")
        self.url = f"{self.root}/{CHAIN_DIR}"
        self.fs: Any = None
        if self.remote:
            import fsspec

            self.fs, _ = fsspec.core.url_to_fs(self.url, **(storage_options or {}))

    def names(self) -> list[str]:
        if not self.remote:
            folder = Path(self.url)
            return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        try:
            listed = self.fs.ls(self.url, detail=False, refresh=True)
        except FileNotFoundError:
            return []
        return sorted(str(p).rsplit("/", 1)[-1] for p in listed)

    def read(self, name: str) -> bytes:
        if not self.remote:
            return (Path(self.url) / name).read_bytes()
        data: bytes = self.fs.cat_file(f"{self.url}/{name}")
        return data

    def create(self, name: str, data: bytes) -> None:
        """Write ``name`` only if it does not exist yet; FileExistsError when another writer has it."""
        if not self.remote:
            atomic_write_bytes(Path(self.url) / name, data, exclusive=True)
            return
        path = f"{self.url}/{name}"
        self.fs.makedirs(self.url, exist_ok=True)  # a folder on disk-like stores, nothing on object stores
        try:
            with self.fs.open(path, "xb") as fh:
                fh.write(data)
        except (ValueError, NotImplementedError):
            # A store without conditional writes: check, then write (a narrow race the audit would report).
            if self.fs.exists(path):
                raise FileExistsError(path) from None
            with self.fs.open(path, "wb") as fh:
                fh.write(data)


def _head(folder: _Folder) -> ChainLink | None:
    names = [n for n in folder.names() if n.endswith(".json") and n[:-5].isdigit()]
    if not names:
        return None
    last = json.loads(folder.read(max(names, key=lambda n: int(n[:-5]))))
    return ChainLink(int(last["sequence"]), str(last["entry_hash"]))


def append_record(
    record: dict[str, Any],
    record_location: str,
    written: bytes,
    root: str,
    storage_options: dict[str, Any] | None = None,
) -> ChainLink:
    """Append to ``root``'s chain a link naming the record written at ``record_location`` as ``written``.

    :param root: the releases folder (:func:`chain_root_of` the record's lineage folder).
    :raises ConfigurationError: the record lies outside ``root``, or the chain stayed contended too long.
    """
    folder = _Folder(root, storage_options)
    relative = _relative(root, record_location)
    digest = hashlib.sha256(written).hexdigest()
    for attempt in range(APPEND_ATTEMPTS):
        head = _head(folder)
        entry: dict[str, Any] = {
            "schema": SCHEMA,
            "sequence": head.sequence + 1 if head else 1,
            "record": {
                "path": relative,
                "record_id": record["record_id"],
                "operation": record["operation"],
                "sha256": digest,
            },
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "prev_hash": head.entry_hash if head else GENESIS_HASH,
        }
        entry["entry_hash"] = entry_hash(entry)
        validate("LineageChainEntry", entry)
        try:
            folder.create(_link_name(entry["sequence"]), (json.dumps(entry, indent=2, sort_keys=True) + "\n").encode())
        except FileExistsError:
            time.sleep(secrets.randbelow(50) / 1000 * (1 + attempt // 8))  # another task took it: back off, re-read
            continue
        return ChainLink(entry["sequence"], entry["entry_hash"])
    raise ConfigurationError(
        "lineage chain", f"stayed contended for {APPEND_ATTEMPTS} attempts", "retry the task; fewer tasks at once"
    )


def link_of(record_location: str, storage_options: dict[str, Any] | None = None) -> ChainLink | None:
    """The link that chains the record at ``record_location``, newest first; None when no link names it.

    Operators put it in their Asset event's extra, so the head an audit must reach is noted outside the
    releases folder (where whoever could cut links off the chain could not also edit it).
    """
    parent = record_location.rsplit("/", 1)[0] if "://" in record_location else str(Path(record_location).parent)
    root = chain_root_of(parent)
    folder = _Folder(root, storage_options)
    relative = _relative(root, record_location)
    for name in sorted((n for n in folder.names() if n.endswith(".json") and n[:-5].isdigit()), reverse=True):
        link = json.loads(folder.read(name))
        if link.get("record", {}).get("path") == relative:
            return ChainLink(int(link["sequence"]), str(link["entry_hash"]))
    return None


def verify_chain(root: str | Path, *, check_records: bool = True) -> ChainVerification:
    """Read ``<root>/lineage-chain/`` and check every link: schema, hash, sequence, previous hash, and (with
    ``check_records``) that the record it names exists with the same bytes. Local folders only."""
    result = ChainVerification()
    folder = Path(root) / CHAIN_DIR
    if not folder.is_dir():
        return result
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    expected_prev = GENESIS_HASH
    for index, name in enumerate(names, start=1):
        where = f"{CHAIN_DIR}/{name}"
        if name != _link_name(index):
            result.problems.append((where, f"expected link {_link_name(index)} here: a link is missing or extra"))
            break
        try:
            link = json.loads((folder / name).read_bytes())
            validate("LineageChainEntry", link)
        except (ValueError, OSError) as exc:
            result.problems.append((where, f"is not a valid chain link ({exc.__class__.__name__})"))
            break
        if link["sequence"] != index:
            result.problems.append((where, f"holds sequence {link['sequence']}, not {index}"))
        if link["entry_hash"] != entry_hash(link):
            result.problems.append((where, "entry_hash is not the hash of its fields: the link was edited"))
        if link["prev_hash"] != expected_prev:
            result.problems.append((where, "prev_hash is not the previous link's hash: a link was changed or removed"))
        expected_prev = link["entry_hash"]
        result.links.append(link)
        if check_records:
            _check_record(Path(root), where, link, result)
    return result


def _check_record(root: Path, where: str, link: dict[str, Any], result: ChainVerification) -> None:
    path = root / link["record"]["path"]
    if not path.is_file():
        result.problems.append((where, f"names {link['record']['path']}, which is missing"))
    elif hashlib.sha256(path.read_bytes()).hexdigest() != link["record"]["sha256"]:
        result.problems.append((where, f"{link['record']['path']} changed after it was chained"))


def record_bytes(record: dict[str, Any]) -> bytes:
    """The exact bytes a lineage record is written as (and the chain hashes)."""
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8")


__all__ = [
    "CHAIN_DIR",
    "ChainLink",
    "ChainVerification",
    "append_record",
    "chain_root_of",
    "link_of",
    "record_bytes",
    "verify_chain",
]
