"""Atomic file writes: a temporary name in the same folder, fsync, then rename (or link, to refuse overwrite).

A reader therefore sees a whole file or none; a crash leaves at worst a dot-named temporary file.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, data: bytes, *, exclusive: bool = False, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically.

    :param exclusive: fail with FileExistsError instead of replacing an existing file (link, not rename).
    :param durable: fsync before the rename. Batches that stage a whole tree pass False and sync once
        before the tree is renamed into place, which keeps the same guarantee for a fraction of the cost.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        if exclusive:
            os.link(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def sync_filesystem(path: Path) -> None:
    """Flush the filesystem holding ``path`` to disk (Linux ``syncfs``), or every filesystem where that is
    not available: one flush for a whole staged tree instead of one fsync per file."""
    import ctypes
    import ctypes.util

    fd = os.open(path, os.O_RDONLY)
    try:
        libc_name = ctypes.util.find_library("c")
        syncfs = getattr(ctypes.CDLL(libc_name, use_errno=True), "syncfs", None) if libc_name else None
        if syncfs is None or syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def fsync_directory(path: Path) -> None:
    """Make a rename or link inside ``path`` durable (POSIX needs the directory itself synced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
