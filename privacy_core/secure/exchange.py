"""The shared exchange location of secure-aggregation rounds: a local folder or an fsspec URL (an object store).

Layout of one round::

    <exchange>/<round>/spec.json              the coordinator's round spec
    <exchange>/<round>/uploads/<site>.json    one per site
    <exchange>/<round>/aggregate.json         the coordinator's homomorphic sum
    <exchange>/<round>/shares/holder-<i>.json one partial decryption per key holder
    <exchange>/<round>/result.json            the decrypted, DP total
    <exchange>/<round>/lineage/<uuid>.json    every step's lineage record

Every write is whole or absent: a local file is written under a temporary name and renamed (or linked, when
it must not replace an existing one); an object store gets a single PUT, which is atomic there. On an object
store "do not replace" is a check before the PUT, so two writers racing for the same name within the same
moment could both succeed; each party writes only its own names, so that race is between retries of one party.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from privacy_core.errors import ConfigurationError
from privacy_core.secure.envelopes import check_token
from privacy_core.storage import atomic_write_bytes

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = ["AGGREGATE", "LINEAGE", "RESULT", "SHARES", "SPEC", "UPLOADS", "Exchange"]

SPEC = "spec.json"
UPLOADS = "uploads"
AGGREGATE = "aggregate.json"
SHARES = "shares"
RESULT = "result.json"
LINEAGE = "lineage"


class Exchange:
    """Read and write one exchange location.

    :param url: a local folder (a path, or ``file://``) or an fsspec URL such as ``s3://bucket/exchange``.
    :param storage_options: passed to fsspec (endpoint, credentials); never written anywhere.

    >>> import tempfile
    >>> ex = Exchange(tempfile.mkdtemp())
    >>> ex.put("r1/spec.json", b"{}")  # doctest: +ELLIPSIS
    '.../r1/spec.json'
    >>> ex.list("r1"), ex.get("r1/spec.json")
    (['spec.json'], b'{}')
    """

    def __init__(self, url: str | Path, storage_options: dict[str, Any] | None = None) -> None:
        text = str(url).rstrip("/")
        if not text:
            raise ConfigurationError("exchange", f"is {str(url)!r}", "give a folder or a URL such as s3://bucket/x")
        self.storage_options = dict(storage_options or {})
        self.local = "://" not in text or text.startswith("file://")
        self.url = text
        self._root = Path(text.removeprefix("file://")) if self.local else None
        self._fs: AbstractFileSystem | None = None
        self._fs_root = ""
        if not self.local:
            from fsspec.core import url_to_fs

            self._fs, self._fs_root = url_to_fs(text, **self.storage_options)

    def __repr__(self) -> str:
        return f"Exchange({self.url!r})"

    # -- names --

    @staticmethod
    def rel(round_id: str, *parts: str) -> str:
        """The relative name of a file of ``round_id`` (checked to be a safe id, so it cannot escape)."""
        return "/".join([check_token(round_id, "round_id"), *parts])

    def location(self, rel: str) -> str:
        """Where ``rel`` is, as a path or URL (for records and messages)."""
        return f"{self.url}/{rel}"

    def _path(self, rel: str) -> Path:
        assert self._root is not None
        return self._root / rel

    def _key(self, rel: str) -> str:
        return f"{self._fs_root.rstrip('/')}/{rel}"

    def _filesystem(self) -> AbstractFileSystem:
        assert self._fs is not None
        return self._fs

    # -- operations --

    def exists(self, rel: str) -> bool:
        """Whether ``rel`` exists now (an object store's listing cache is bypassed)."""
        if self.local:
            return self._path(rel).is_file()
        fs = self._filesystem()
        fs.invalidate_cache(self._key(rel).rsplit("/", 1)[0])
        return bool(fs.exists(self._key(rel)))

    def put(self, rel: str, data: bytes, *, exclusive: bool = False) -> str:
        """Write ``data`` to ``rel`` whole; returns its location.

        :param exclusive: refuse (FileExistsError) if ``rel`` exists, instead of replacing it.
        """
        if self.local:
            atomic_write_bytes(self._path(rel), data, exclusive=exclusive)
            return self.location(rel)
        if exclusive and self.exists(rel):
            raise FileExistsError(self.location(rel))
        fs = self._filesystem()
        fs.pipe_file(self._key(rel), data)
        fs.invalidate_cache(self._key(rel).rsplit("/", 1)[0])
        return self.location(rel)

    def get(self, rel: str, max_bytes: int | None = None) -> bytes:
        """The bytes of ``rel``.

        :param max_bytes: refuse (ValueError) a larger file before reading it, so a hostile upload cannot
            exhaust memory.
        :raises FileNotFoundError: ``rel`` does not exist.
        """
        size = self.size(rel)
        if max_bytes is not None and size > max_bytes:
            raise ValueError(f"{self.location(rel)} has {size} bytes, more than the {max_bytes} allowed")
        if self.local:
            return self._path(rel).read_bytes()
        data: bytes = self._filesystem().cat_file(self._key(rel))
        return data

    def size(self, rel: str) -> int:
        """Size of ``rel`` in bytes."""
        if self.local:
            return self._path(rel).stat().st_size
        fs = self._filesystem()
        fs.invalidate_cache(self._key(rel).rsplit("/", 1)[0])
        return int(fs.size(self._key(rel)))

    def modified(self, rel: str) -> dt.datetime | None:
        """When the store last wrote ``rel`` (aware UTC), or None where the store does not say."""
        if self.local:
            return dt.datetime.fromtimestamp(self._path(rel).stat().st_mtime, dt.UTC)
        try:
            moment = self._filesystem().modified(self._key(rel))
        except (NotImplementedError, OSError, KeyError):
            return None
        if not isinstance(moment, dt.datetime):
            return None
        return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)

    def list(self, rel_folder: str) -> list[str]:
        """Names of the ``.json`` files directly in ``rel_folder``, sorted; temporary dot-files are skipped."""
        if self.local:
            folder = self._path(rel_folder)
            if not folder.is_dir():
                return []
            return sorted(p.name for p in folder.iterdir() if p.is_file() and _listed(p.name))
        fs = self._filesystem()
        key = self._key(rel_folder)
        fs.invalidate_cache(key)
        try:
            entries = fs.ls(key, detail=True)
        except FileNotFoundError:
            return []
        names = [str(e["name"]).rstrip("/").rsplit("/", 1)[-1] for e in entries if e.get("type") == "file"]
        return sorted(n for n in names if _listed(n))

    def lineage_folder(self, round_id: str) -> str:
        """Where the steps of ``round_id`` write their lineage records."""
        return self.location(self.rel(round_id, LINEAGE))


def _listed(name: str) -> bool:
    return name.endswith(".json") and not name.startswith(".")
