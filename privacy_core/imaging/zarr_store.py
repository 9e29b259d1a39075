"""Series volumes as OME-Zarr images: one Zarr v3 group per series, written atomically, read by Dask.

Layout of ``<store_url>/<series_uid>`` (OME-NGFF 0.5, written with ``ome_zarr.writer``):

- group ``zarr.json``: ``ome.multiscales`` with axes ``z, y, x`` (type ``space``, unit ``millimeter``;
  colour adds ``c``, type ``channel``, first, as NGFF puts channels before space), one dataset ``"0"`` with
  ``scale`` = voxel spacing and ``translation`` = origin; and ``imaging_privacy``, our own record: the new
  UIDs, modality, geometry (with the direction cosines NGFF 0.5 cannot express), dtype, rescale, chunking
  and ``"complete": true``. Only de-identified identifiers go in: never names, IDs, dates or input paths.
- array ``0``: whole (y, x) planes per chunk, z chosen for about ``chunk_mb`` MiB (:func:`plan_chunks`),
  Blosc-zstd with byte shuffle, and a sharding codec when a series has more than a few chunks.

Atomic: ``imaging_privacy`` (with ``complete``) is written last, and :func:`open_series` refuses a group
without it, which works on object stores where nothing can be renamed. On local disks the group is also
built as ``<series_uid>.partial-<random>`` and renamed into place, and names with ``.partial-`` are refused,
so a crash at any point leaves nothing that opens.

Sharding trap: a shard is one object, so two writers of chunks in the same shard overwrite each other
(``da.store(..., lock=False)`` into a sharded array with Dask chunks smaller than a shard silently loses
data). Hence writes here go one whole shard slab at a time, and :func:`open_series` reads with Dask chunks
equal to the shard shape, never smaller.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from privacy_core import __version__
from privacy_core.errors import ConfigurationError, QuarantineError
from privacy_core.imaging.series import SeriesGeometry, SeriesProblem, SeriesVolume, group_series, is_uid, iter_slabs

if TYPE_CHECKING:
    import dask.array as da
    import zarr

    from privacy_core.imaging.stored_chunks import ChunkApply

__all__ = [
    "MARKER",
    "SeriesArrayInfo",
    "convert_tree",
    "open_series",
    "plan_chunks",
    "read_geometry",
    "write_array",
    "write_pointwise",
    "write_series",
]

#: Group attribute holding our record; its ``"complete": true`` is the last thing written.
MARKER = "imaging_privacy"
#: Name infix of a local group still being written (or left by a crash).
PARTIAL = ".partial-"
#: Version of the ``imaging_privacy`` record.
RECORD_VERSION = 1
#: Only series with more than this many chunks are sharded: for fewer, one object per chunk is cheap enough.
SHARD_MIN_CHUNKS = 4
#: Most chunks in one shard: with 32 MiB chunks a shard (one object, one Dask task on read) is <= 256 MiB.
SHARD_MAX_CHUNKS = 8
_MIB = 2**20
_EMPTY_GROUP = b'{"zarr_format": 3, "node_type": "group", "attributes": {}}'


@dataclass(frozen=True)
class SeriesArrayInfo:
    """What :func:`write_series` wrote, for lineage records (see :meth:`as_dict`).

    :param url: the series group, ``<store_url>/<series_uid>``.
    :param series_uid: the (new) SeriesInstanceUID.
    :param shape: stored array shape, in ``axes`` order.
    :param dtype: stored dtype.
    :param chunks: chunk shape (inside shards when sharded).
    :param shards: shard shape, or None when not sharded; Dask reads use it as their chunks.
    :param geometry: spacing, origin and direction.
    :param bytes_written: bytes the array occupies in the store (compressed chunks and metadata).
    :param axes: ``"zyx"``, or ``"czyx"`` for colour.
    :param rescaled: whether values are rescaled (RescaleSlope/Intercept applied).
    """

    url: str
    series_uid: str
    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, ...]
    shards: tuple[int, ...] | None
    geometry: SeriesGeometry
    bytes_written: int
    axes: str = "zyx"
    rescaled: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "url": self.url,
            "series_uid": self.series_uid,
            "axes": self.axes,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "chunks": list(self.chunks),
            "shards": list(self.shards) if self.shards is not None else None,
            "rescaled": self.rescaled,
            "geometry": self.geometry.as_dict(),
            "bytes_written": self.bytes_written,
        }

    def lineage_entry(self) -> dict[str, Any]:
        """The item of a TaskLineageRecord 1.1 ``storage.arrays`` list (that schema allows these keys only)."""
        full = self.as_dict()
        return {key: full[key] for key in ("url", "shape", "dtype", "chunks", "shards")}


def plan_chunks(
    shape: tuple[int, ...], itemsize: int, *, chunk_mb: float = 32.0, shard: bool = True
) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    """Chunk and shard shapes for a stored ``(z, y, x)`` or ``(c, z, y, x)`` array.

    A chunk holds whole planes (every channel), as many as fit in ``chunk_mb`` MiB (at least one), so Dask
    tasks along z never cut an image. With ``shard`` and more than :data:`SHARD_MIN_CHUNKS` chunks, a shard
    groups up to :data:`SHARD_MAX_CHUNKS` chunks, but at most half of them, so reads keep two or more tasks.

    :param shape: stored shape; z is the third axis from the end.
    :param itemsize: bytes per value.
    :param chunk_mb: target chunk size in MiB.
    :param shard: allow sharding.
    :return: (chunks, shards or None).
    :raises ConfigurationError: ``chunk_mb`` not positive.

    >>> plan_chunks((300, 512, 512), itemsize=2)
    ((64, 512, 512), (192, 512, 512))
    >>> plan_chunks((300, 512, 512), itemsize=2, shard=False)
    ((64, 512, 512), None)
    >>> plan_chunks((3, 40, 512, 512), itemsize=1, chunk_mb=1.0)
    ((3, 1, 512, 512), (3, 8, 512, 512))
    """
    if not chunk_mb > 0 or not math.isfinite(chunk_mb):
        raise ConfigurationError("chunk_mb", f"must be a positive number of MiB, got {chunk_mb}", "use e.g. 32")
    depth = shape[-3]
    plane = itemsize * math.prod(shape) // max(depth, 1)
    per_chunk = max(1, min(depth, int(chunk_mb * _MIB // max(plane, 1))))
    chunks = (*shape[:-3], per_chunk, *shape[-2:])
    count = math.ceil(depth / per_chunk)
    if not shard or count <= SHARD_MIN_CHUNKS:
        return chunks, None
    per_shard = min(SHARD_MAX_CHUNKS, math.ceil(count / 2))
    return chunks, (*shape[:-3], per_shard * per_chunk, *shape[-2:])


# ------------------------------------------------------------------------------------------------ URLs


def _is_remote(url: str) -> bool:
    return "://" in url and not url.startswith("file://")


def _local(url: str) -> Path:
    return Path(url.removeprefix("file://"))


def _join(url: str, name: str) -> str:
    return url.rstrip("/") + "/" + name


def _check_options(url: str, storage_options: dict[str, Any] | None) -> None:
    if storage_options and not _is_remote(url):
        raise ConfigurationError(
            "storage_options",
            "were given for a local path",
            "drop storage_options, or give a URL such as s3://bucket/prefix",
        )


def _filesystem(url: str, storage_options: dict[str, Any] | None) -> tuple[Any, str]:
    from fsspec.core import url_to_fs

    fs, path = url_to_fs(url, **(storage_options or {}))
    return fs, str(path)


# ----------------------------------------------------------------------------------------------- write


def write_series(
    volume: SeriesVolume,
    store_url: str,
    *,
    rescale: bool = False,
    chunk_mb: float = 32.0,
    shard: bool = True,
    storage_options: dict[str, Any] | None = None,
) -> SeriesArrayInfo:
    """Write one series as an OME-Zarr image at ``<store_url>/<series_uid>``, replacing an older one.

    Slabs are decoded and written one shard (or chunk) at a time, in order, so memory stays near one shard
    and no two writes touch the same shard. Nothing at the URL opens until the write is complete.

    :param volume: from :func:`~privacy_core.imaging.series.group_series`, on de-identified input.
    :param store_url: a local folder or an fsspec URL (``s3://bucket/prefix``).
    :param rescale: store rescaled values (see :func:`~privacy_core.imaging.series.read_volume`).
    :param chunk_mb: target chunk size in MiB (:func:`plan_chunks`).
    :param shard: shard series with many chunks.
    :param storage_options: fsspec options for a remote URL (endpoint, credentials); never recorded.
    :return: what was written.
    :raises ConfigurationError: the UIDs are not UIDs, ``chunk_mb`` is not positive, or
        ``storage_options`` were given for a local path.
    :raises QuarantineError: ``unreadable-pixels``; nothing is left at the URL that opens.
    """
    for setting, uid in (("series_uid", volume.series_uid), ("study_uid", volume.study_uid or "0")):
        if not is_uid(uid):
            raise ConfigurationError(
                f"volume.{setting}", "is not a DICOM UID (digits and dots)", "convert de-identified series only"
            )
    _check_options(store_url, storage_options)
    plan_chunks((1, 1, 1), 1, chunk_mb=chunk_mb)  # validate before touching the store
    return _atomically(
        store_url,
        volume.series_uid,
        storage_options,
        lambda target, final_url, options: _write(volume, target, final_url, rescale, chunk_mb, shard, options),
    )


def _atomically(
    store_url: str,
    series_uid: str,
    storage_options: dict[str, Any] | None,
    write: Callable[[str, str, dict[str, Any] | None], SeriesArrayInfo],
) -> SeriesArrayInfo:
    """Run ``write(target, final_url, storage_options)`` so that nothing opens at the final URL until it is done.

    Local stores: write under a ``.partial-`` name, then rename into place. Object stores (no rename): make
    any older group unopenable first, write in place with the completion marker last, remove it on failure.
    """
    final_url = _join(store_url, series_uid)
    if _is_remote(store_url):
        fs, path = _filesystem(final_url, storage_options)
        _invalidate_remote(fs, path)
        try:
            return write(final_url, final_url, storage_options)
        except BaseException:
            _remove_remote(fs, path)
            raise
    root = _local(store_url)
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f"{series_uid}{PARTIAL}{secrets.token_hex(4)}"
    try:
        info = write(str(partial), final_url, None)
        _publish(partial, root / series_uid)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return info


def _write(
    volume: SeriesVolume,
    target: str,
    final_url: str,
    rescale: bool,
    chunk_mb: float,
    shard: bool,
    storage_options: dict[str, Any] | None,
) -> SeriesArrayInfo:
    import warnings

    import numpy as np
    import zarr
    from zarr.codecs import BloscCodec

    with warnings.catch_warnings():  # ome-zarr 0.18 builds a deprecated Scaler() default at import time
        warnings.simplefilter("ignore", DeprecationWarning)

    dtype = volume.output_dtype(rescale)
    colour = len(volume.shape) == 4
    axes = "czyx" if colour else "zyx"
    shape = (volume.shape[3], *volume.shape[:3]) if colour else volume.shape
    chunks, shards = plan_chunks(shape, np.dtype(dtype).itemsize, chunk_mb=chunk_mb, shard=shard)

    group = zarr.open_group(target, mode="w", zarr_format=3, storage_options=storage_options)
    array = group.create_array(
        "0",
        shape=shape,
        dtype=dtype,
        chunks=chunks,
        shards=shards,
        compressors=[BloscCodec(cname="zstd", clevel=5, shuffle="shuffle")],
        fill_value=0,
        dimension_names=list(axes),
    )
    step = (shards or chunks)[-3]  # whole shards per write: never two writers in one shard
    for start, slab in iter_slabs(volume, slices_per_slab=step, rescale=rescale):
        stop = start + slab.shape[0]
        if colour:
            array[:, start:stop] = np.moveaxis(slab, -1, 0)
        else:
            array[start:stop] = slab

    geometry = volume.geometry
    _write_ome_metadata(group, geometry, axes, volume.series_uid)
    info = SeriesArrayInfo(
        url=final_url,
        series_uid=volume.series_uid,
        shape=tuple(shape),
        dtype=dtype,
        chunks=tuple(chunks),
        shards=tuple(shards) if shards else None,
        geometry=geometry,
        bytes_written=int(array.nbytes_stored()),
        axes=axes,
        rescaled=rescale and volume.rescaled,
    )
    group.attrs[MARKER] = _record(volume, info)  # last write: the group is complete from here on
    return info


def _write_ome_metadata(group: zarr.Group, geometry: SeriesGeometry, axes: str, name: str) -> None:
    """NGFF multiscales metadata: scale = spacing, translation = origin (z, y, x), millimetre space axes."""
    import warnings

    with warnings.catch_warnings():  # ome-zarr 0.18 builds a deprecated Scaler() default at import time
        warnings.simplefilter("ignore", DeprecationWarning)
        from ome_zarr.writer import write_multiscales_metadata

    colour = axes.startswith("c")
    spacing = [1.0, *geometry.spacing] if colour else list(geometry.spacing)
    x, y, z = geometry.origin
    translation = [0.0, z, y, x] if colour else [z, y, x]
    write_multiscales_metadata(
        group,
        datasets=[
            {
                "path": "0",
                "coordinateTransformations": [
                    {"type": "scale", "scale": spacing},
                    {"type": "translation", "translation": translation},
                ],
            }
        ],
        axes=[
            {"name": "c", "type": "channel"} if n == "c" else {"name": n, "type": "space", "unit": "millimeter"}
            for n in axes
        ],
        name=name,
    )


def write_array(
    image: da.Array,
    store_url: str,
    source: dict[str, Any],
    *,
    derived: dict[str, Any],
    chunk_mb: float = 32.0,
    shard: bool = True,
    storage_options: dict[str, Any] | None = None,
) -> SeriesArrayInfo:
    """Write a Dask array derived from a series (a pixel transform's output) as a new OME-Zarr series array.

    The graph is stored one shard per task (the array is rechunked to the shard grid first, so no two tasks
    ever write one shard), on whatever scheduler is current. Atomic like :func:`write_series`.

    :param image: (z, y, x[, c]) values.
    :param source: the ``imaging_privacy`` record of the series it was computed from (:func:`read_record`).
    :param derived: what was done (method and parameters), recorded beside the source's geometry.
    """
    series_uid = str(source["series_uid"])
    if not is_uid(series_uid):
        raise ConfigurationError("source.series_uid", "is not a DICOM UID", "derive arrays from converted series")
    _check_options(store_url, storage_options)
    return _atomically(
        store_url,
        series_uid,
        storage_options,
        lambda target, final_url, options: _write_dask(
            image, target, final_url, source, derived, chunk_mb, shard, options
        ),
    )


def _write_dask(
    image: da.Array,
    target: str,
    final_url: str,
    source: dict[str, Any],
    derived: dict[str, Any],
    chunk_mb: float,
    shard: bool,
    storage_options: dict[str, Any] | None,
) -> SeriesArrayInfo:
    import dask.array as da
    import numpy as np
    import zarr
    from zarr.codecs import BloscCodec

    colour = image.ndim == 4
    axes = "czyx" if colour else "zyx"
    stored = da.moveaxis(image, -1, 0) if colour else image
    dtype = str(np.dtype(stored.dtype))
    chunks, shards = plan_chunks(tuple(stored.shape), np.dtype(dtype).itemsize, chunk_mb=chunk_mb, shard=shard)
    group = zarr.open_group(target, mode="w", zarr_format=3, storage_options=storage_options)
    array = group.create_array(
        "0",
        shape=stored.shape,
        dtype=dtype,
        chunks=chunks,
        shards=shards,
        compressors=[BloscCodec(cname="zstd", clevel=5, shuffle="shuffle")],
        fill_value=0,
        dimension_names=list(axes),
    )
    grid = shards or chunks
    aligned = stored.rechunk(tuple(grid))  # one task per shard: never two writers in one shard
    da.store(aligned, array, lock=False, compute=True)  # type: ignore[arg-type]
    return _finish_derived(group, array, final_url, source, derived, axes)


def write_pointwise(
    source_url: str,
    store_url: str,
    source: dict[str, Any],
    apply: ChunkApply,
    *,
    derived: dict[str, Any],
    storage_options: dict[str, Any] | None = None,
) -> SeriesArrayInfo:
    """Write ``apply`` of every stored chunk of the series array at ``source_url`` as a new series array with
    the same layout (chunks, shards, codecs), one task per stored file on the current Dask scheduler
    (:func:`~privacy_core.imaging.stored_chunks.map_stored`). Atomic like :func:`write_series`.

    For pointwise transforms (masking): it skips the slab assembly and copies of :func:`write_array`,
    which cost as much CPU as the codec itself.

    :param apply: changes one decoded chunk in place, given its origin in the stored (``[c,] z, y, x``) axes.
    :raises UnsupportedLayout: the source's codecs are not ones the stored-chunk path reproduces (use
        :func:`write_array`); raised before anything is written.
    """
    import zarr

    from privacy_core.imaging.stored_chunks import StoredLayout

    series_uid = str(source["series_uid"])
    if not is_uid(series_uid):
        raise ConfigurationError("source.series_uid", "is not a DICOM UID", "derive arrays from converted series")
    _check_options(store_url, storage_options)
    group, _ = _open_complete(source_url, storage_options)
    original = group.get("0")
    if not isinstance(original, zarr.Array):
        raise ConfigurationError("url", f"{source_url} has no array '0'", "open a group written by write_series")
    StoredLayout.of(original)  # refuse an unsupported layout before touching the output store
    return _atomically(
        store_url,
        series_uid,
        storage_options,
        lambda target, final_url, options: _write_pointwise(
            original, apply, target, final_url, source, derived, options
        ),
    )


def _write_pointwise(
    original: zarr.Array[Any],
    apply: ChunkApply,
    target: str,
    final_url: str,
    source: dict[str, Any],
    derived: dict[str, Any],
    storage_options: dict[str, Any] | None,
) -> SeriesArrayInfo:
    import zarr

    from privacy_core.imaging.stored_chunks import map_stored

    group = zarr.open_group(target, mode="w", zarr_format=3, storage_options=storage_options)
    array = group.create_array(
        "0",
        shape=original.shape,
        dtype=original.dtype,
        chunks=original.chunks,
        shards=original.shards,
        filters=original.filters,
        serializer=original.serializer or "auto",
        compressors=original.compressors,
        fill_value=original.fill_value,
        dimension_names=original.metadata.dimension_names,  # type: ignore[union-attr]
    )
    written = map_stored(original, array, apply)
    written.sum().compute()
    axes = str(source.get("axes") or ("czyx" if original.ndim == 4 else "zyx"))
    return _finish_derived(group, array, final_url, source, derived, axes)


def _finish_derived(
    group: zarr.Group,
    array: zarr.Array[Any],
    final_url: str,
    source: dict[str, Any],
    derived: dict[str, Any],
    axes: str,
) -> SeriesArrayInfo:
    """Write the OME metadata, then the record that marks a derived array complete (last)."""
    import numpy as np

    dtype = str(np.dtype(array.dtype))
    geometry = SeriesGeometry.from_dict(source["geometry"])
    _write_ome_metadata(group, geometry, axes, str(source["series_uid"]))
    info = SeriesArrayInfo(
        url=final_url,
        series_uid=str(source["series_uid"]),
        shape=tuple(int(n) for n in array.shape),
        dtype=dtype,
        chunks=tuple(int(n) for n in array.chunks),
        shards=tuple(int(n) for n in array.shards) if array.shards else None,
        geometry=geometry,
        bytes_written=int(array.nbytes_stored()),
        axes=axes,
        rescaled=bool(source.get("rescaled", False)),
    )
    kept = ("series_uid", "study_uid", "modality", "patient", "geometry", "bits_stored", "burned_in_regions")
    record: dict[str, Any] = {k: source[k] for k in kept if k in source}
    group.attrs[MARKER] = {
        **record,
        "complete": True,
        "version": RECORD_VERSION,
        "writer": f"privacy_core {__version__}",
        "axes": axes,
        "shape": list(info.shape),
        "dtype": dtype,
        "stored_dtype": source.get("stored_dtype", dtype),
        "rescaled": info.rescaled,
        "chunks": list(info.chunks),
        "shards": list(info.shards) if info.shards else None,
        "derived": derived,
    }  # last write: the group is complete from here on
    return info


def read_record(url: str, *, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``imaging_privacy`` record of a complete series array (refuses incomplete ones)."""
    return _open_complete(url, storage_options)[1]


def list_series(store_url: str, *, storage_options: dict[str, Any] | None = None) -> list[str]:
    """URLs of the complete series arrays in a store, sorted; partial writes and other folders are skipped."""
    _check_options(store_url, storage_options)
    if _is_remote(store_url):
        fs, path = _filesystem(store_url, storage_options)
        names = [entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(path, detail=False)] if fs.exists(path) else []
    else:
        root = _local(store_url)
        names = [entry.name for entry in root.iterdir() if entry.is_dir()] if root.is_dir() else []
    if not names:
        raise ConfigurationError("store", f"there is no Zarr store at {store_url}", "convert DICOM into it first")
    urls = []
    for name in sorted(names):
        if PARTIAL in name or not is_uid(name):
            continue
        url = _join(store_url, name)
        try:
            _open_complete(url, storage_options)
        except ConfigurationError:
            continue
        urls.append(url)
    return urls


def burned_in_regions(volume: SeriesVolume) -> list[list[int]]:
    """Rectangles (x, y, w, h) the RSNA CTP burned-in library names for this series' (first) header.

    Kept with the array so a later ``mask`` with ``regions="burned-in"`` can blank them again on Zarr data,
    e.g. for series de-identified by another tool. Rules test device attributes, which de-identification keeps.
    """
    from pydicom import dcmread

    from privacy_core.deid.burned_in import load_library, match_regions
    from privacy_core.deid.engine import quiet_pydicom

    with quiet_pydicom():
        try:
            header = dcmread(volume.files[0], stop_before_pixels=True)
        except Exception:
            return []
        return [[r.x, r.y, r.width, r.height] for r in match_regions(header, load_library())]


def _record(volume: SeriesVolume, info: SeriesArrayInfo) -> dict[str, Any]:
    """The ``imaging_privacy`` attribute: new UIDs, codes and numbers only."""
    code = volume.modality.replace("_", "")
    modality = volume.modality if code.isascii() and code.isalnum() and len(volume.modality) <= 16 else ""
    return {
        "complete": True,
        "version": RECORD_VERSION,
        "writer": f"privacy_core {__version__}",
        "series_uid": volume.series_uid,
        "study_uid": volume.study_uid,
        "modality": modality.upper(),
        "patient": volume.patient,
        "axes": info.axes,
        "shape": list(info.shape),
        "dtype": info.dtype,
        "stored_dtype": volume.dtype,
        "bits_stored": volume.bits_stored,
        "burned_in_regions": burned_in_regions(volume),
        "rescaled": info.rescaled,
        "chunks": list(info.chunks),
        "shards": list(info.shards) if info.shards else None,
        "geometry": info.geometry.as_dict(),
    }


def _publish(partial: Path, final: Path) -> None:
    """Rename a finished local group into place, replacing an older one; durable before and after."""
    from privacy_core.storage import fsync_directory, sync_filesystem

    sync_filesystem(partial)
    old = None
    if final.exists():
        old = final.with_name(f"{final.name}{PARTIAL}{secrets.token_hex(4)}-replaced")
        os.rename(final, old)
    os.rename(partial, final)
    fsync_directory(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _invalidate_remote(fs: Any, path: str) -> None:
    """Make an older group at ``path`` unopenable first (one PUT of its zarr.json), then delete it."""
    fs.invalidate_cache()
    if fs.exists(f"{path}/zarr.json"):
        fs.pipe_file(f"{path}/zarr.json", _EMPTY_GROUP)
        _remove_remote(fs, path)


def _remove_remote(fs: Any, path: str) -> None:
    try:
        fs.invalidate_cache()
        if fs.exists(path):
            fs.rm(path, recursive=True)
    except Exception:  # best effort: without the marker, what is left never opens
        pass


# ------------------------------------------------------------------------------------------------ read


def _open_complete(url: str, storage_options: dict[str, Any] | None) -> tuple[zarr.Group, dict[str, Any]]:
    """The group at ``url`` and its record, if it is a complete series array.

    :raises ConfigurationError: nothing there, or not marked complete.
    """
    import zarr

    _check_options(url, storage_options)
    rerun = "rerun the conversion (convert_tree or write_series) for this series and open it once it has finished"
    if PARTIAL in url.rstrip("/").rsplit("/", 1)[-1]:
        raise ConfigurationError("url", f"{url} is a partial write left by an interrupted conversion", rerun)
    target = url if _is_remote(url) else str(_local(url))
    try:
        group = zarr.open_group(target, mode="r", zarr_format=3, storage_options=storage_options)
    except FileNotFoundError:
        raise ConfigurationError("url", f"there is no series array at {url}", rerun) from None
    record = group.attrs.asdict().get(MARKER)
    if not isinstance(record, dict) or record.get("complete") is not True:
        raise ConfigurationError(
            "url", f"the series array at {url} is incomplete (its conversion failed or is still running)", rerun
        )
    return group, record


def open_series(url: str, *, storage_options: dict[str, Any] | None = None) -> da.Array:
    """A complete series array as a Dask array (z, y, x[, c]), the layout of ``read_volume``.

    Dask chunks are the shard shape when the array is sharded (the chunk shape otherwise), so no two tasks
    ever share a shard. Colour is stored channel-first, as NGFF requires, and moved last here.

    :param url: ``<store_url>/<series_uid>``.
    :param storage_options: fsspec options for a remote URL.
    :raises ConfigurationError: nothing at ``url``, or the array is not marked complete.
    """
    import dask.array as da
    import zarr

    group, record = _open_complete(url, storage_options)
    array = group.get("0")
    if not isinstance(array, zarr.Array):
        raise ConfigurationError("url", f"{url} has no array '0'", "open a group written by write_series")
    data: da.Array = da.from_zarr(array, chunks=array.shards or array.chunks)
    return da.moveaxis(data, 0, -1) if record.get("axes") == "czyx" else data


def read_geometry(url: str, *, storage_options: dict[str, Any] | None = None) -> SeriesGeometry:
    """Spacing, origin and direction of a complete series array.

    :raises ConfigurationError: nothing at ``url``, or the array is not marked complete.
    """
    _, record = _open_complete(url, storage_options)
    return SeriesGeometry.from_dict(record["geometry"])


# ------------------------------------------------------------------------------------------------ tree


def convert_tree(
    dicom_root: Path,
    store_url: str,
    *,
    rescale: bool = False,
    chunk_mb: float = 32.0,
    shard: bool = True,
    storage_options: dict[str, Any] | None = None,
    exclude: Sequence[str] = (),
) -> tuple[list[SeriesArrayInfo], list[SeriesProblem]]:
    """Convert every series under ``dicom_root`` into ``store_url``, one array per series.

    Bad series (see :data:`~privacy_core.imaging.series.PROBLEM_CATEGORIES`) are reported, not raised, and the
    rest are still converted. Settings are checked before any work.

    :param dicom_root: de-identified DICOM files (a folder, searched recursively).
    :param store_url: a local folder or an fsspec URL.
    :param rescale: store rescaled values.
    :param chunk_mb: target chunk size in MiB.
    :param shard: shard series with many chunks.
    :param storage_options: fsspec options for a remote URL.
    :param exclude: folder names under ``dicom_root`` to skip (a release's ``lineage``).
    :return: (written arrays, problems), both in series UID order.
    :raises ConfigurationError: bad settings or a missing ``dicom_root``.

    >>> import shutil, tempfile, pydicom
    >>> work = Path(tempfile.mkdtemp())
    >>> (work / "in").mkdir()
    >>> _ = shutil.copy(Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm", work / "in")
    >>> written, problems = convert_tree(work / "in", str(work / "store"), rescale=True)
    >>> open_series(written[0].url).shape, written[0].dtype, problems
    ((1, 128, 128), 'int32', [])
    >>> read_geometry(written[0].url).spacing
    (5.0, 0.661468, 0.661468)
    """
    _check_options(store_url, storage_options)
    plan_chunks((1, 1, 1), 1, chunk_mb=chunk_mb)
    volumes, problems = group_series(Path(dicom_root), exclude=exclude)
    written: list[SeriesArrayInfo] = []
    for volume in volumes:
        try:
            written.append(
                write_series(
                    volume,
                    store_url,
                    rescale=rescale,
                    chunk_mb=chunk_mb,
                    shard=shard,
                    storage_options=storage_options,
                )
            )
        except QuarantineError as exc:
            problems.append(SeriesProblem(volume.series_uid, len(volume.files), exc.category, exc.detail))
    problems.sort(key=lambda p: (p.series_uid or "", p.category))
    return written, problems
