"""De-identify a tree of files: parallel over files, per-file quarantine, atomic files and an atomic tree.

Output files are named from the new UIDs only (``<study>/<series>/<instance>.dcm``). Each file is written
under a temporary name and linked into place; the whole tree is staged beside OUTPUT and renamed into place
when the batch ends, so a crashed run leaves nothing that looks like a complete release. Files that cannot
be released are copied, with their reason, into a quarantine folder outside the release.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import multiprocessing
import os
import secrets
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from privacy_core.deid.burned_in import load_rules
from privacy_core.deid.engine import DeidEngine, quiet_pydicom, read_dicom
from privacy_core.deid.profile import Profile
from privacy_core.errors import ConfigurationError, QuarantineError
from privacy_core.keys import PseudonymKey
from privacy_core.storage import atomic_write_bytes, atomic_write_json, fsync_directory, sync_filesystem

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

    from pydicom.dataset import Dataset

#: Files handed to a worker at a time: large enough to amortise process round trips.
CHUNK_FILES = 16
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"


@dataclass(frozen=True)
class FileResult:
    """The fate of one input file. ``detail`` may quote input values: quarantine report only."""

    index: int
    status: str  # "written", "duplicate" or "quarantined"
    output: str | None = None
    sha256: str | None = None
    size: int = 0
    category: str | None = None
    detail: str | None = None
    pixel_regions: int = 0
    input_sha256: str | None = None


@dataclass
class BatchResult:
    """What a batch did; ``summary()`` is the part safe to log, push to XCom or record."""

    run_id: str
    output: Path
    quarantine: Path | None
    profile: Profile
    key_fingerprint: str
    inputs: int
    results: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def written(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "written"]

    @property
    def quarantined(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "quarantined"]

    @property
    def duplicates(self) -> int:
        return sum(1 for r in self.results if r.status == "duplicate")

    @property
    def pixel_cleaned(self) -> int:
        return sum(1 for r in self.written if r.pixel_regions)

    def reasons(self) -> dict[str, int]:
        """Quarantined files per category, sorted by category."""
        counts = Counter(str(r.category) for r in self.quarantined)
        return dict(sorted(counts.items()))

    def output_digest(self) -> str:
        """SHA-256 over the sorted ``path<TAB>sha256`` lines of every released file: the tree's content digest."""
        lines = sorted(f"{r.output}\t{r.sha256}\n" for r in self.written)
        return hashlib.sha256("".join(lines).encode()).hexdigest()

    def summary(self) -> dict[str, object]:
        """Counts, reasons and rates: no input names or values, so it may go anywhere."""
        return {
            "run_id": self.run_id,
            "processed": self.inputs,
            "written": len(self.written),
            "duplicates": self.duplicates,
            "quarantined": len(self.quarantined),
            "reasons": self.reasons(),
            "pixel_cleaned": self.pixel_cleaned,
            "seconds": round(self.seconds, 3),
            "files_per_second": round(self.inputs / self.seconds, 2) if self.seconds else 0.0,
            "output_digest": self.output_digest(),
            "profile": self.profile.describe(),
            "key_fingerprint": self.key_fingerprint,
        }


# ---------------------------------------------------------------------- per file (runs in workers)
_ENGINE: DeidEngine | None = None


def _init_worker(
    options: tuple[str, ...],
    quarantine_burned_in: bool,
    key: PseudonymKey,
    strict_values: bool,
    rules_path: str | None,
) -> None:
    """Build the engine once per worker process."""
    global _ENGINE
    profile = Profile.from_names(options, quarantine_unhandled_burned_in=quarantine_burned_in)
    _ENGINE = DeidEngine(profile, key, load_rules(rules_path), strict_values=strict_values)


def _run_chunk(chunk: list[tuple[int, str]], stage: str) -> list[FileResult]:
    assert _ENGINE is not None, "worker not initialised"
    return [process_file(_ENGINE, index, Path(src), Path(stage)) for index, src in chunk]


def process_file(engine: DeidEngine, index: int, src: Path, out_root: Path) -> FileResult:
    """Read, de-identify and write one file; every failure becomes a quarantine result, never an exception.

    The file is written atomically but not synced: the caller syncs the tree once (see ``_finish_tree``).
    """
    with quiet_pydicom():
        return _process_file(engine, index, src, out_root)


def _process_file(engine: DeidEngine, index: int, src: Path, out_root: Path) -> FileResult:
    input_sha256 = None
    try:
        data = src.read_bytes()
        input_sha256 = hashlib.sha256(data).hexdigest()
        ds = read_dicom(io.BytesIO(data))
        meta_class = str(getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", ""))
        if _DICOMDIR_CLASS in (meta_class, str(ds.get("SOPClassUID", ""))):
            raise QuarantineError("dicomdir", "a DICOMDIR indexes the original files; rebuild it after release")
        outcome = engine.deidentify(ds)
        rel = "/".join(_safe_name(p) for p in (outcome.study_uid, outcome.series_uid)) + (
            f"/{_safe_name(outcome.sop_uid)}.dcm"
        )
        encoded = _encode(ds)
        try:
            status = _place(out_root / rel, encoded)
        except QuarantineError as exc:  # keep the contested path so the batch can settle the conflict
            return FileResult(
                index=index,
                status="quarantined",
                output=rel,
                category=exc.category,
                detail=exc.detail,
                input_sha256=input_sha256,
            )
        return FileResult(
            index=index,
            status=status,
            output=rel,
            sha256=hashlib.sha256(encoded).hexdigest(),
            size=len(encoded),
            pixel_regions=outcome.pixel_regions,
            input_sha256=input_sha256,
        )
    except QuarantineError as exc:
        category, detail = exc.category, exc.detail
    except (ValueError, TypeError, OverflowError) as exc:  # pydicom's conversions of malformed values
        category, detail = "invalid-value", f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # any other failure: this file only, the batch goes on
        category, detail = "deid-failed", f"{type(exc).__name__}: {exc}"
    return FileResult(index=index, status="quarantined", category=category, detail=detail, input_sha256=input_sha256)


def _encode(ds: Dataset) -> bytes:
    """Serialise as a DICOM Part 10 file, adding the transfer syntax if the input had no file meta."""
    from pydicom import dcmwrite
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = ds.file_meta = FileMetaDataset()
    implicit, little = ds.original_encoding
    as_read = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    syntax = meta.get("TransferSyntaxUID")
    if not syntax or (
        not syntax.is_compressed
        and (syntax.is_implicit_VR, syntax.is_little_endian)
        != (
            implicit,
            little,
        )
    ):
        # no file meta, or a meta that lies about the encoding: declare the encoding the data really has
        meta.TransferSyntaxUID = as_read
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def _place(final: Path, data: bytes) -> str:
    """Write ``data`` at ``final`` atomically and exclusively; a second, identical copy is a duplicate."""
    try:
        atomic_write_bytes(final, data, exclusive=True, durable=False)  # the tree is synced before its rename
    except FileExistsError:
        if final.read_bytes() == data:
            return "duplicate"
        raise QuarantineError(
            "duplicate-sop-instance-uid",
            "another input file has the same SOP Instance UID but different content",
        ) from None
    return "written"


def _safe_name(uid: str) -> str:
    """UIDs are digits and dots; anything else (a broken retained UID) becomes a digest, never raw text."""
    if uid and len(uid) <= 64 and all(c.isdigit() or c == "." for c in uid):
        return uid
    return "x" + hashlib.sha256(uid.encode("utf-8", "replace")).hexdigest()[:32]


# ---------------------------------------------------------------------- the batch
def list_inputs(root: Path) -> list[Path]:
    """Every regular file below ``root`` (or ``root`` itself), sorted, so runs are reproducible."""
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ConfigurationError("INPUT", f"{root} does not exist", "give a DICOM file or a folder of them")
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def deidentify_tree(
    input_path: str | Path,
    output_path: str | Path,
    profile: Profile,
    key: PseudonymKey,
    *,
    quarantine_path: str | Path | None = None,
    workers: int = 1,
    strict_values: bool = True,
    rules_path: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> BatchResult:
    """De-identify every file under ``input_path`` into ``output_path`` (new or empty).

    :param quarantine_path: where rejected inputs and their reasons go; default ``<OUTPUT>.quarantine``.
    :param workers: processes, one core each; 1 runs in this process.
    :param progress: called with the number of files just finished, for progress bars.
    :raises ConfigurationError: bad paths or settings, before any file is touched.
    """
    src, out = Path(input_path).resolve(), Path(output_path).resolve()
    quarantine = Path(quarantine_path).resolve() if quarantine_path else out.with_name(out.name + ".quarantine")
    _check_paths(src, out, quarantine)
    if workers < 1:
        raise ConfigurationError("workers", f"must be at least 1, got {workers}", "use 1 or the number of cores")
    rules = load_rules(rules_path)  # fail fast on a bad rule file, before any work
    files = list_inputs(src)
    run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
    stage = out.parent / f".{out.name}.partial-{run_id}"
    stage.mkdir(parents=True)
    result = BatchResult(run_id, out, None, profile, key.fingerprint, len(files))
    started = time.perf_counter()
    try:
        jobs = list(enumerate(str(f) for f in files))
        if workers == 1 or len(files) < 2:
            engine = DeidEngine(profile, key, rules, strict_values=strict_values)
            for index, path in jobs:
                result.results.append(process_file(engine, index, Path(path), stage))
                if progress:
                    progress(1)
        else:
            result.results.extend(_parallel(jobs, stage, profile, key, workers, strict_values, rules_path, progress))
        result.results.sort(key=lambda r: r.index)
        result.results = _settle_conflicts(result.results, stage)
        _finish_tree(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    result.seconds = time.perf_counter() - started
    if result.quarantined:
        result.quarantine = _write_quarantine(quarantine / run_id, src, files, result.quarantined)
    return result


def _parallel(
    jobs: list[tuple[int, str]],
    stage: Path,
    profile: Profile,
    key: PseudonymKey,
    workers: int,
    strict_values: bool,
    rules_path: str | Path | None,
    progress: Callable[[int], None] | None,
) -> Iterator[FileResult]:
    """Spread chunks over ``workers`` processes forked from a fork server.

    The server is a fresh process (safe where the caller has threads, as an Airflow task does) that imports
    pydicom and this package once; each worker is forked from it, so the import is paid once, not per worker.
    """

    options = tuple(o.value for o in profile.options)
    initargs = (
        options,
        profile.quarantine_unhandled_burned_in,
        key,
        strict_values,
        str(rules_path) if rules_path else None,
    )
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_worker_context(),
        initializer=_init_worker,
        initargs=initargs,
    ) as pool:
        futures = [pool.submit(_run_chunk, chunk, str(stage)) for chunk in _chunks(jobs, CHUNK_FILES)]
        for future in as_completed(futures):
            chunk_results = future.result()
            if progress:
                progress(len(chunk_results))
            yield from chunk_results


def _worker_context() -> BaseContext:
    """A fork-server context preloaded with the engine, or spawn where fork servers do not exist."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["privacy_core.deid.batch"])
    return context


def _chunks(items: list[tuple[int, str]], size: int) -> Iterable[list[tuple[int, str]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _check_paths(src: Path, out: Path, quarantine: Path) -> None:
    if not src.exists():
        raise ConfigurationError("INPUT", f"{src} does not exist", "give a DICOM file or a folder of them")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigurationError("OUTPUT", f"{out} exists and is not an empty folder", "choose a new or empty folder")
    if out == src or src in out.parents or (src.is_dir() and out in src.parents):
        raise ConfigurationError("OUTPUT", "overlaps INPUT", "put the release outside the input tree")
    if quarantine == out or out in quarantine.parents:
        raise ConfigurationError(
            "quarantine",
            "is inside OUTPUT",
            "quarantine reports name input files; keep them outside the release",
        )


def _settle_conflicts(results: list[FileResult], stage: Path) -> list[FileResult]:
    """Quarantine every input that claims a contested SOP Instance UID, the first writer included.

    Which of two different files won the race to a path depends on worker scheduling; releasing neither
    makes the outcome the same for any number of workers, and two objects claiming one identity need a
    person to decide anyway.
    """
    contested = {r.output for r in results if r.category == "duplicate-sop-instance-uid"}
    if not contested:
        return results
    settled = []
    for r in results:
        if r.status in ("written", "duplicate") and r.output in contested:
            (stage / str(r.output)).unlink(missing_ok=True)
            r = FileResult(
                index=r.index,
                status="quarantined",
                output=r.output,
                category="duplicate-sop-instance-uid",
                detail="another input file has the same SOP Instance UID but different content",
                input_sha256=r.input_sha256,
            )
        settled.append(r)
    return settled


def _finish_tree(stage: Path, out: Path) -> None:
    """Rename the staged tree into place: OUTPUT appears complete or not at all, and survives a crash."""
    sync_filesystem(stage)  # every staged file reaches the disk before the release becomes visible
    if out.exists():
        out.rmdir()  # checked empty before the run
    os.replace(stage, out)
    fsync_directory(out.parent)  # and the rename itself is durable


def _write_quarantine(folder: Path, src_root: Path, files: list[Path], rejected: list[FileResult]) -> Path:
    """Copy each rejected input with its reason; the report names input files, so it stays here."""
    (folder / "files").mkdir(parents=True, exist_ok=True)
    entries = []
    for r in rejected:
        original = files[r.index]
        copy = folder / "files" / f"{r.index:06d}"
        shutil.copy2(original, copy)
        rel = str(original.relative_to(src_root)) if original != src_root else original.name
        entries.append({"input": rel, "copy": f"files/{copy.name}", "category": r.category, "detail": r.detail})
    report = {
        "schema": "QuarantineReport/1.0",
        "input_root": str(src_root),
        "entries": entries,
    }
    from privacy_core.schemas import validate

    validate("QuarantineReport", report)
    atomic_write_json(folder / "report.json", report)
    return folder


def dump_summary(result: BatchResult, path: str | Path) -> None:
    """Write the batch summary (schema ``DeidSummary``) atomically."""
    from privacy_core.schemas import validate

    summary = {"schema": "DeidSummary/1.0", **result.summary()}
    validate("DeidSummary", summary)
    atomic_write_json(Path(path), summary)


__all__ = ["BatchResult", "FileResult", "deidentify_tree", "dump_summary", "list_inputs", "process_file"]
