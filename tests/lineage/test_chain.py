"""The lineage chain: appends link by link, survives concurrent writers, works on object stores, and
any edit, removal or reordering of a link or of a record it names is found."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from privacy_core.errors import ConfigurationError
from privacy_core.lineage.chain import (
    CHAIN_DIR,
    GENESIS_HASH,
    ChainLink,
    append_record,
    chain_root_of,
    entry_hash,
    link_of,
    record_bytes,
    verify_chain,
)
from privacy_core.lineage.record import build_record, write_record

OPERATIONS = ("deidentify", "to-zarr", "pixels", "dp-release")


def _record(operation: str = "to-zarr") -> dict[str, Any]:
    return build_record(operation=operation, parameters={}, inputs=[], outputs=[], counts={}, privacy={})


def _write(root: Path, output: str = "out-1", operation: str = "to-zarr") -> str:
    return write_record(_record(operation), root / output / "lineage")


def _links(root: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((root / CHAIN_DIR).glob("*.json"))]


def test_records_are_chained_in_order_from_the_genesis_hash(tmp_path: Path) -> None:
    paths = [_write(tmp_path, f"out-{i}", OPERATIONS[i]) for i in range(3)]

    links = _links(tmp_path)
    assert [link["sequence"] for link in links] == [1, 2, 3]
    assert links[0]["prev_hash"] == GENESIS_HASH
    assert [link["prev_hash"] for link in links[1:]] == [link["entry_hash"] for link in links[:-1]]
    assert all(link["entry_hash"] == entry_hash(link) for link in links)
    assert [link["record"]["path"] for link in links] == [Path(p).relative_to(tmp_path).as_posix() for p in paths]
    assert [link["record"]["operation"] for link in links] == list(OPERATIONS[:3])
    result = verify_chain(tmp_path)
    assert result.problems == [] and result.head == ChainLink(3, links[-1]["entry_hash"])
    assert link_of(paths[1]) == ChainLink(2, links[1]["entry_hash"])


def test_the_link_hashes_the_record_bytes_as_written(tmp_path: Path) -> None:
    path = _write(tmp_path)
    (link,) = _links(tmp_path)

    assert link["record"]["sha256"] == hashlib.sha256(Path(path).read_bytes()).hexdigest()
    assert Path(path).read_bytes() == record_bytes(json.loads(Path(path).read_text()))


def test_chain_root_is_the_folder_holding_the_output_folder() -> None:
    assert chain_root_of("/data/releases/zarr-1/lineage") == "/data/releases"
    assert chain_root_of("s3://bucket/releases/zarr-1/lineage/") == "s3://bucket/releases"
    assert chain_root_of("s3://bucket/zarr-1/lineage") == "s3://bucket"
    assert chain_root_of("s3://bucket/lineage") == "s3://bucket"  # a store at the bucket's root
    assert chain_root_of("file:///data/releases/zarr-1/lineage") == "file:///data/releases"


def test_concurrent_threads_never_lose_or_share_a_sequence_number(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        paths = list(pool.map(lambda i: _write(tmp_path, f"out-{i % 4}"), range(40)))

    result = verify_chain(tmp_path)
    assert result.problems == []
    assert len(result.links) == 40
    assert result.chained_paths == {Path(p).relative_to(tmp_path).as_posix() for p in paths}


def _append_many(root: str, count: int) -> None:
    for _ in range(count):
        write_record(_record(), Path(root) / f"out-{uuid.uuid4().hex[:6]}" / "lineage")


def test_concurrent_processes_never_lose_or_share_a_sequence_number(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(str(tmp_path), 15)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0

    result = verify_chain(tmp_path)
    assert result.problems == [] and len(result.links) == 45


def test_a_taken_sequence_number_moves_the_append_to_the_next(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path)
    import privacy_core.lineage.chain as chain

    real_head = chain._head
    calls = {"n": 0}

    def stale_head(folder: Any) -> ChainLink | None:
        calls["n"] += 1
        return None if calls["n"] == 1 else real_head(folder)  # the first read misses the existing link

    monkeypatch.setattr(chain, "_head", stale_head)
    _write(tmp_path, "out-2")

    assert calls["n"] == 2
    assert verify_chain(tmp_path).problems == [] and len(_links(tmp_path)) == 2


def test_record_outside_its_root_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="outside its releases folder"):
        append_record(_record(), "s3://other/x/lineage/r.json", b"{}", "s3://bucket/releases")


@pytest.mark.parametrize("text", ["", "3", "0:" + "a" * 64, "3:" + "A" * 64, "3:" + "a" * 63, "x:" + "a" * 64])
def test_expect_head_text_must_be_sequence_colon_hash(text: str) -> None:
    with pytest.raises(ConfigurationError, match="SEQUENCE:HASH"):
        ChainLink.parse(text)


# --- tampering ----------------------------------------------------------------------------------------------


@pytest.fixture
def chained(tmp_path: Path) -> Path:
    for i in range(4):
        _write(tmp_path, f"out-{i}", OPERATIONS[i])
    return tmp_path


def _problems(root: Path) -> list[tuple[str, str]]:
    return verify_chain(root).problems


def test_an_edited_link_is_found(chained: Path) -> None:
    path = chained / CHAIN_DIR / "00000002.json"
    link = json.loads(path.read_text())
    link["record"]["operation"] = "other"
    path.write_text(json.dumps(link))
    assert _problems(chained) == [
        (f"{CHAIN_DIR}/00000002.json", "entry_hash is not the hash of its fields: the link was edited")
    ]


def test_a_rehashed_edit_breaks_the_next_link(chained: Path) -> None:
    path = chained / CHAIN_DIR / "00000002.json"
    link = json.loads(path.read_text())
    link["record"]["operation"] = "other"
    link["entry_hash"] = entry_hash(link)
    path.write_text(json.dumps(link))
    ((where, problem),) = _problems(chained)
    assert where == f"{CHAIN_DIR}/00000003.json" and "prev_hash" in problem


def test_a_removed_link_is_found(chained: Path) -> None:
    (chained / CHAIN_DIR / "00000003.json").unlink()
    ((where, problem),) = _problems(chained)
    assert where == f"{CHAIN_DIR}/00000004.json" and "missing or extra" in problem


def test_swapped_links_are_found(chained: Path) -> None:
    a, b = chained / CHAIN_DIR / "00000002.json", chained / CHAIN_DIR / "00000003.json"
    first, second = a.read_bytes(), b.read_bytes()
    a.write_bytes(second)
    b.write_bytes(first)
    assert {where for where, _ in _problems(chained)} >= {f"{CHAIN_DIR}/00000002.json", f"{CHAIN_DIR}/00000003.json"}


def test_a_link_that_is_not_json_is_found(chained: Path) -> None:
    (chained / CHAIN_DIR / "00000004.json").write_text("{")
    assert _problems(chained) == [(f"{CHAIN_DIR}/00000004.json", "is not a valid chain link (JSONDecodeError)")]


def test_an_edited_or_missing_record_is_found(chained: Path) -> None:
    links = _links(chained)
    edited = chained / links[0]["record"]["path"]
    edited.write_text(edited.read_text().replace('"deidentify"', '"pixels"'))
    (chained / links[2]["record"]["path"]).unlink()
    problems = _problems(chained)
    assert problems == [
        (f"{CHAIN_DIR}/00000001.json", f"{links[0]['record']['path']} changed after it was chained"),
        (f"{CHAIN_DIR}/00000003.json", f"names {links[2]['record']['path']}, which is missing"),
    ]


# --- object stores --------------------------------------------------------------------------------------------


def test_chain_on_s3_appends_exclusively_and_finds_links(s3_endpoint: str) -> None:
    import s3fs

    options = {"client_kwargs": {"endpoint_url": s3_endpoint}}
    fs = s3fs.S3FileSystem(**options)
    fs.mkdir("chain-test")
    root = "s3://chain-test/releases"

    first = write_record(_record(), f"{root}/zarr-1/lineage", options)
    second = write_record(_record(), f"{root}/dp-pix-1/lineage", options)

    names = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(f"chain-test/releases/{CHAIN_DIR}", refresh=True))
    assert names == ["00000001.json", "00000002.json"]
    assert link_of(first, options) is not None and link_of(first, options).sequence == 1  # type: ignore[union-attr]
    link = link_of(second, options)
    assert link is not None and link.sequence == 2
    stored = json.loads(fs.cat_file(f"chain-test/releases/{CHAIN_DIR}/00000002.json"))
    assert stored["record"]["path"] == second.removeprefix(root + "/") and stored["entry_hash"] == link.entry_hash
    with pytest.raises(FileExistsError), fs.open(f"chain-test/releases/{CHAIN_DIR}/00000002.json", "xb") as fh:
        fh.write(b"{}")
