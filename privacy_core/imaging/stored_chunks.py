"""Pointwise transforms applied straight to stored chunks: read a chunk (or shard) file, decode each chunk into
one reused buffer, change it in place, encode it, write it to the same key of a new array.

Why: for I/O-bound work such as masking, ``from_zarr -> map_blocks -> to_zarr`` spends about as much CPU
assembling slabs, filling them, copying blocks and scanning for empty chunks as it spends on the codec itself
(benchmarks/README.md). Here a task does only what every chunk needs: read, decode, transform, encode, write.

The target keeps the source's layout (shape, dtype, chunks, shards, codecs), so every task owns whole files:
one task per shard, never two writers of one shard. Only layouts whose bytes this module reproduces exactly
are taken (little-endian ``bytes``, then nothing, ``zstd`` or ``blosc``; sharding with its default index
codecs); :func:`StoredLayout.of` says why any other is not, and callers fall back to the Dask array path.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dask.array as da
    import numpy as np
    import zarr
    from numpy.typing import NDArray

__all__ = ["ChunkApply", "StoredLayout", "UnsupportedLayout", "map_stored"]

#: ``apply(chunk, origin)`` changes one decoded chunk in place; ``origin`` is its first element's index.
#: Edge chunks arrive at full chunk shape (as stored): values past the array's end are padding.
ChunkApply = Callable[["NDArray[Any]", tuple[int, ...]], None]

#: Index entry of a chunk absent from its shard (the sharding codec's marker).
_ABSENT = 2**64 - 1
_CRC_BYTES = 4


class UnsupportedLayout(ValueError):
    """The array's codecs are not ones this module can decode and re-encode byte-exactly."""


@dataclass(frozen=True)
class StoredLayout:
    """What a task needs to find, decode and re-encode the chunks of one Zarr v3 array (picklable)."""

    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, ...]
    shards: tuple[int, ...] | None
    compressor: dict[str, Any] | None
    fill_value: Any
    key_prefix: str
    separator: str
    index_at_start: bool

    @classmethod
    def of(cls, array: zarr.Array[Any]) -> StoredLayout:
        """The layout of ``array``.

        :raises UnsupportedLayout: with the codec or setting this module does not reproduce.
        """
        from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ShardingCodec, ZstdCodec

        metadata: Any = array.metadata
        if getattr(metadata, "zarr_format", None) != 3:
            raise UnsupportedLayout("not a Zarr v3 array")
        codecs = tuple(metadata.codecs)
        shards: tuple[int, ...] | None = None
        index_at_start = False
        if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec):
            sharding = codecs[0]
            index = tuple(sharding.index_codecs)
            if not (len(index) == 2 and isinstance(index[0], BytesCodec) and isinstance(index[1], Crc32cCodec)):
                raise UnsupportedLayout(f"shard index codecs {index}")
            if str(index[0].endian.value if index[0].endian else "little") != "little":
                raise UnsupportedLayout("big-endian shard index")
            shards = tuple(int(n) for n in metadata.chunk_grid.chunk_shape)
            chunks = tuple(int(n) for n in sharding.chunk_shape)
            index_at_start = sharding.index_location.value == "start"
            codecs = tuple(sharding.codecs)
        else:
            chunks = tuple(int(n) for n in metadata.chunk_grid.chunk_shape)
        if not codecs or not isinstance(codecs[0], BytesCodec) or len(codecs) > 2:
            raise UnsupportedLayout(f"codec chain {codecs}")
        if codecs[0].endian is not None and codecs[0].endian.value != "little":
            raise UnsupportedLayout("big-endian chunks")
        compressor: dict[str, Any] | None = None
        if len(codecs) == 2:
            codec = codecs[1]
            if isinstance(codec, ZstdCodec):
                compressor = {"id": "zstd", "level": codec.level, "checksum": codec.checksum}
            elif isinstance(codec, BloscCodec):
                shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[codec.shuffle.value]
                compressor = {
                    "id": "blosc",
                    "cname": codec.cname.value,
                    "clevel": codec.clevel,
                    "shuffle": shuffle,
                    "blocksize": codec.blocksize,
                    "typesize": codec.typesize,
                }
            else:
                raise UnsupportedLayout(f"compressor {type(codec).__name__}")
        encoding = metadata.chunk_key_encoding
        separator = str(encoding.separator)
        prefix = "c" if encoding.name == "default" else ""
        import numpy as np

        dtype = np.dtype(array.dtype).newbyteorder("<").str
        return cls(
            shape=tuple(int(n) for n in array.shape),
            dtype=dtype,
            chunks=chunks,
            shards=shards,
            compressor=compressor,
            fill_value=array.fill_value.item() if hasattr(array.fill_value, "item") else array.fill_value,
            key_prefix=prefix,
            separator=separator,
            index_at_start=index_at_start,
        )

    @property
    def unit(self) -> tuple[int, ...]:
        """The shape one file holds: the shard, or the chunk when not sharded."""
        return self.shards or self.chunks

    @property
    def units(self) -> tuple[int, ...]:
        """How many files along each axis."""
        return tuple(math.ceil(n / u) for n, u in zip(self.shape, self.unit, strict=True))

    @property
    def chunks_per_unit(self) -> tuple[int, ...]:
        return tuple(u // c for u, c in zip(self.unit, self.chunks, strict=True))

    def key(self, coords: tuple[int, ...]) -> str:
        """The store key of the file at grid ``coords`` (as zarr's chunk key encoding writes it)."""
        parts = [str(c) for c in coords]
        if self.key_prefix:
            return self.separator.join([self.key_prefix, *parts])
        return self.separator.join(parts) if parts else "0"

    def chunk_origins(self, unit: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
        """Origins of the chunks of file ``unit`` in C order (the shard index's order), including chunks past
        the array's end (a partial shard's index still has their entries)."""
        first = [u * n for u, n in zip(unit, self.unit, strict=True)]
        for local in itertools.product(*(range(n) for n in self.chunks_per_unit)):
            yield tuple(f + i * c for f, i, c in zip(first, local, self.chunks, strict=True))

    def same_bytes_as(self, other: StoredLayout) -> bool:
        """Whether a chunk of this layout is stored exactly as one of ``other`` would be."""
        return self == other


class _Codec:
    """The layout's compressor as numcodecs configures it inside zarr (so bytes match zarr's)."""

    def __init__(self, layout: StoredLayout) -> None:
        import numpy as np

        self.layout = layout
        self.dtype = np.dtype(layout.dtype)
        self.codec: Any = None
        if layout.compressor is not None:
            from numcodecs import get_codec  # type: ignore[import-untyped]

            self.codec = get_codec(dict(layout.compressor))

    def decode_into(self, raw: bytes | memoryview, out: NDArray[Any]) -> None:
        """Decode one stored chunk into ``out`` (C-contiguous, chunk-shaped)."""
        import numpy as np

        flat = out.reshape(-1).view(np.uint8)
        if self.codec is None:
            if len(raw) != flat.size:
                raise ValueError(f"stored chunk holds {len(raw)} bytes, expected {flat.size}")
            flat[:] = np.frombuffer(raw, dtype=np.uint8)
            return
        self.codec.decode(raw, out=flat)

    def encode(self, chunk: NDArray[Any]) -> bytes:
        import numpy as np

        flat = chunk.reshape(-1).view(np.uint8)  # bytes, as zarr hands them to the compressor
        if self.codec is None:
            return flat.tobytes()
        return bytes(self.codec.encode(flat))


def _read(fs: Any, path: str) -> bytes | None:
    """A file's bytes, or None when it does not exist (a chunk zarr left out as all fill value)."""
    try:
        return bytes(fs.cat_file(path))
    except FileNotFoundError:
        return None


def _write(fs: Any, path: str, data: bytes) -> None:
    parent = path.rsplit("/", 1)[0]
    if parent and parent != path:
        fs.makedirs(parent, exist_ok=True)
    fs.pipe_file(path, data)


def _transform_unit(
    layout: StoredLayout, raw: bytes | None, apply: ChunkApply | None, unit: tuple[int, ...], codec: _Codec
) -> bytes:
    """The new file of ``unit``: every chunk decoded, changed in place by ``apply`` and encoded again."""
    import numpy as np

    buffer = np.empty(layout.chunks, dtype=codec.dtype)
    if layout.shards is None:
        if raw is None:
            buffer.fill(layout.fill_value)
        else:
            codec.decode_into(raw, buffer)
        _apply(layout, apply, buffer, tuple(u * c for u, c in zip(unit, layout.chunks, strict=True)))
        return codec.encode(buffer)
    count = math.prod(layout.chunks_per_unit)
    index_bytes = 16 * count + _CRC_BYTES
    index = _read_index(layout, raw, count, index_bytes)
    body: list[bytes] = []
    entries = np.full((count, 2), _ABSENT, dtype="<u8")
    offset = index_bytes if layout.index_at_start else 0
    for i, origin in enumerate(layout.chunk_origins(unit)):
        if any(o >= n for o, n in zip(origin, layout.shape, strict=True)):
            continue  # past the array's end: no chunk, as zarr leaves it
        start, length = (int(v) for v in index[i])
        if raw is None or start == _ABSENT:
            buffer.fill(layout.fill_value)
        else:
            codec.decode_into(memoryview(raw)[start : start + length], buffer)
        _apply(layout, apply, buffer, origin)
        encoded = codec.encode(buffer)
        entries[i] = (offset, len(encoded))
        offset += len(encoded)
        body.append(encoded)
    packed = _pack_index(entries)
    return b"".join([packed, *body] if layout.index_at_start else [*body, packed])


def _apply(layout: StoredLayout, apply: ChunkApply | None, chunk: NDArray[Any], origin: tuple[int, ...]) -> None:
    """Run ``apply`` on ``chunk``, then reset any padding past the array's end to the fill value, as zarr
    stores it (so ``apply`` may write there freely)."""
    if apply is None:
        return
    apply(chunk, origin)
    for axis, (start, n) in enumerate(zip(origin, layout.shape, strict=True)):
        if start + chunk.shape[axis] > n:
            padding = [slice(None)] * chunk.ndim
            padding[axis] = slice(n - start, None)
            chunk[tuple(padding)] = layout.fill_value


def _read_index(layout: StoredLayout, raw: bytes | None, count: int, size: int) -> NDArray[np.uint64]:
    """The shard index of ``raw`` as ``(count, 2)`` (offset, length) rows, checked against its CRC-32C."""
    import google_crc32c
    import numpy as np

    if raw is None:
        return np.full((count, 2), _ABSENT, dtype="<u8")
    if len(raw) < size:
        raise ValueError(f"shard of {len(raw)} bytes is shorter than its {size}-byte index")
    block = raw[:size] if layout.index_at_start else raw[-size:]
    body, crc = block[:-_CRC_BYTES], block[-_CRC_BYTES:]
    if google_crc32c.value(body).to_bytes(4, "little") != crc:
        raise ValueError("shard index checksum does not match: the shard file is damaged")
    return np.frombuffer(body, dtype="<u8").reshape(count, 2)


def _pack_index(entries: NDArray[np.uint64]) -> bytes:
    import google_crc32c

    body: bytes = entries.astype("<u8").tobytes()
    crc: int = google_crc32c.value(body)
    return body + crc.to_bytes(4, "little")


def _process_block(
    block: NDArray[Any],
    layout: StoredLayout,
    source: tuple[Any, str],
    target: tuple[Any, str],
    apply: ChunkApply | None,
    block_info: dict[Any, Any] | None = None,
) -> NDArray[Any]:
    """One Dask task: rewrite the files at this block's positions in the file grid; return the bytes written."""
    import numpy as np

    if block_info is None:
        raise ValueError("block_info: None; _process_block runs inside map_blocks only")
    (src_fs, src_root), (dst_fs, dst_root) = source, target
    codec = _Codec(layout)
    written = np.zeros(block.shape, dtype=np.int64)
    ranges = [range(start, stop) for start, stop in block_info[0]["array-location"]]
    for unit in itertools.product(*ranges):
        key = layout.key(unit)
        data = _transform_unit(layout, _read(src_fs, f"{src_root}/{key}"), apply, unit, codec)
        _write(dst_fs, f"{dst_root}/{key}", data)
        written[tuple(u - r.start for u, r in zip(unit, ranges, strict=True))] = len(data)
    return written


def map_stored(
    source: zarr.Array[Any],
    target: zarr.Array[Any],
    apply: ChunkApply | None,
    *,
    task_mib: float = 32.0,
) -> da.Array:
    """The Dask graph that writes ``apply`` of every chunk of ``source`` into ``target``, each task rewriting
    whole files (about ``task_mib`` MiB of decoded data, at least one file). Computing it returns, per file,
    the bytes written; nothing else comes back to the driver.

    :param source: a Zarr v3 array on a local path or fsspec URL.
    :param target: an empty array with exactly the source's layout (shape, dtype, chunks, shards, codecs).
    :param apply: changes a decoded chunk in place (see :data:`ChunkApply`); None copies.
    :param task_mib: work per task. Small chunks are grouped, so a task outlasts its scheduling round trip.
    :raises UnsupportedLayout: either layout is not one this module reproduces, or they differ.
    """
    import dask.array as da
    import numpy as np

    layout = StoredLayout.of(source)
    if not layout.same_bytes_as(StoredLayout.of(target)):
        raise UnsupportedLayout("the target's layout differs from the source's")
    file_bytes = math.prod(layout.unit) * np.dtype(layout.dtype).itemsize
    # Group files along the first axis that has more than one; every other axis one file per task.
    per_task = [1] * len(layout.units)
    axis = next((i for i, n in enumerate(layout.units) if n > 1), 0)
    per_task[axis] = max(1, min(layout.units[axis], int(task_mib * 2**20 // file_bytes)))
    grid = da.zeros(layout.units, chunks=tuple(per_task), dtype=np.int64)
    result: da.Array = da.map_blocks(
        _process_block,
        grid,
        layout=layout,
        source=_location(source),
        target=_location(target),
        apply=apply,
        dtype=np.int64,
        meta=np.empty((0,) * grid.ndim, dtype=np.int64),
    )
    return result


def _location(array: zarr.Array[Any]) -> tuple[Any, str]:
    """A synchronous fsspec file system and the root path of ``array``'s chunks (local folder or remote store).

    zarr's remote stores hold an asynchronous file system bound to zarr's event loop; tasks get a synchronous
    twin built from the same options (credentials stay inside the pickled file system, never in the graph's
    keys or in anything logged).
    """
    from fsspec.implementations.local import LocalFileSystem

    store: Any = array.store
    fs = getattr(store, "fs", None)
    if fs is not None:  # FsspecStore
        if getattr(fs, "asynchronous", False):
            fs = type(fs)(**{**fs.storage_options, "asynchronous": False})
        return fs, f"{str(store.path).rstrip('/')}/{array.path}".rstrip("/")
    root = getattr(store, "root", None)
    if root is None:
        raise UnsupportedLayout(f"store {type(store).__name__} is neither a local folder nor an fsspec store")
    return LocalFileSystem(), f"{str(root).rstrip('/')}/{array.path}".rstrip("/")
