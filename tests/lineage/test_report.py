"""The HTML report of a small real run: one self-contained page, every section there, nothing fetched, no
secret, and it renders in headless Chromium without errors."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from privacy_core.cli import main
from privacy_core.imaging.compute import DaskConfig
from privacy_core.lineage._png import SIGNATURE, encode_png
from privacy_core.lineage.report import build_report, read_lineage
from tests.conftest import TEST_SECRET
from tests.lineage.conftest import build_run

REQUIRE_BROWSER = "IMAGING_PRIVACY_REQUIRE_BROWSER"
PNG_URI = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=]+)")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, cluster: DaskConfig) -> Path:
    """A small real run (see ``build_run``)."""
    return build_run(tmp_path_factory.mktemp("run"), cluster, rows=32, burned_in=True)


@pytest.fixture(scope="module")
def page(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report written by the CLI, as a user would."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    args = ["report", str(built / "releases"), "--html", str(out), "--ledger", f"sqlite:///{built / 'ledger.db'}"]
    assert main(args) == 0
    return out


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == SIGNATURE and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _idat(data: bytes) -> bytes:
    """The decompressed image data of a PNG (every IDAT chunk, CRCs checked)."""
    at, chunks = 8, []
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        if kind == b"IDAT":
            chunks.append(body)
        at += 12 + length
    return zlib.decompress(b"".join(chunks))


def test_png_encoder_round_trips() -> None:
    import numpy as np

    pixels = (np.arange(6 * 7) * 6).astype(np.uint8).reshape(6, 7)
    data = encode_png(pixels)
    assert _png_size(data) == (7, 6)
    raw = _idat(data)
    assert raw == b"".join(b"\x00" + pixels[r].tobytes() for r in range(6))


def test_lineage_graph_links_each_output_to_its_consumer(built: Path) -> None:
    lineage = read_lineage(built / "releases")
    labels = {n.key: n.label for n in lineage.nodes}
    edges = {(labels[a].split(":")[0], labels[b]) for a, b in lineage.edges}
    assert edges == {
        ("dicom", "release-1"),  # the input corpus, outside the releases folder
        ("release-1", "zarr-1"),
        ("zarr-1", "dp-pix-1"),
        ("release-1", "dp-release-1"),
    }


def test_page_is_self_contained_and_shows_every_section(page: Path, built: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert [p.name for p in page.parent.iterdir()] == ["report.html"]  # one file, nothing beside it
    assert 'class="lineage-graph"' in text and text.count('class="node"') == 5 and text.count('class="edge"') == 4
    assert 'class="budget-chart"' in text and 'class="spent-line"' in text and 'class="cap-line"' in text
    assert "spent 1/2 of cap 3" in text
    assert 'class="stat-chart"' in text and text.count('class="error-bar"') == 2  # CT and MR, ± interval_95
    assert "CT" in text and "MR" in text
    # the de-identification counts, as the record holds them
    assert re.search(r"<tr><th>processed</th><td>\d+</td></tr>", text)
    assert re.search(r"<tr><th>written</th><td>\d+</td></tr>", text)
    assert re.search(r"<tr><th>quarantined</th><td>[1-9]\d*</td></tr>", text)
    assert "<tr><th>burned-in-unhandled</th>" in text  # the quarantine reason, counted
    assert "key_fingerprint" in text and "PS3.15 E.1-1 basic" in text
    # which code ran each step, and each record's place in the lineage chain
    from privacy_core.lineage.record import source_digest

    provenance = text.split('class="provenance"')[1].split("</table>")[0]
    assert provenance.count("<code>" + source_digest()[:23] + "</code>") == 4
    assert sorted(re.findall(r"<td>(\d):[0-9a-f]{16}…</td>", provenance)) == ["1", "2", "3", "4"]
    thumbs = PNG_URI.findall(text)
    assert len(thumbs) == 2  # before and after
    for encoded in thumbs:
        data = base64.b64decode(encoded)
        width, height = _png_size(data)
        assert 0 < width <= 256 and 0 < height <= 256
        assert len(_idat(data)) == height * (width + 1)


def test_page_fetches_nothing_and_holds_no_secret(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    links = re.findall(r"""\b(?:src|href|xlink:href|action|poster|srcset)\s*=\s*["']?([^"'\s>]*)""", text, re.I)
    assert links and all(link.startswith("data:image/png;base64,") for link in links), links
    assert "url(http" not in text and "@import" not in text and "<script" not in text.lower()
    assert "<link" not in text.lower() and "<iframe" not in text.lower()
    # the only absolute URL is the SVG namespace, which is a name, not a fetch
    assert set(re.findall(r"https?://[^\s\"'<>]+", text)) == {"http://www.w3.org/2000/svg"}
    assert TEST_SECRET not in text and TEST_SECRET.split("-")[2] not in text
    assert '"secret"' not in text and ">secret<" not in text.lower()


def test_keys_naming_key_material_are_never_rendered(built: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(built / "releases", run)
    (path,) = (run / "release-1" / "lineage").glob("*.json")
    record = json.loads(path.read_text())
    record["counts"]["reasons"]["api_token"] = 4242424242  # the record still matches its schema
    path.write_text(json.dumps(record))
    text = build_report(run)
    assert "<tr><th>burned-in-unhandled</th>" in text  # the record was rendered, its planted key left out
    assert "4242424242" not in text and "api_token" not in text


def test_report_of_a_missing_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path / "nope"), "--html", str(tmp_path / "r.html")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_without_a_ledger_the_budget_section_says_so(built: Path) -> None:
    text = build_report(built / "releases")
    assert "No ledger given" in text and 'class="budget-chart"' not in text


def _chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        reason = "chromium is not on PATH: install Debian's chromium (apt-get install -y chromium)"
        if os.environ.get(REQUIRE_BROWSER) == "1":
            pytest.fail(f"{REQUIRE_BROWSER}=1 but {reason}")
        pytest.skip(reason)
    return found


def _render(chromium: str, page: Path, folder: Path) -> tuple[bytes, list[str]]:
    """Screenshot ``page`` at 1280x2000; returns the PNG and every console message Chromium logged."""
    shot = folder / "shot.png"
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        f"--user-data-dir={folder / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    return shot.read_bytes(), console


def test_console_capture_sees_errors_and_blocked_fetches(tmp_path: Path) -> None:
    """The check below is only worth something if Chromium's console reaches us: a page with a script error
    and, under the report's policy, an external image must both be seen."""
    from privacy_core.lineage.report import CSP

    chromium = _chromium()
    canary = tmp_path / "canary.html"
    canary.write_text(
        f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="{CSP}"></head>'
        '<body><img src="http://canary.invalid/a.png"><p>canary</p></body></html>'
    )
    _, console = _render(chromium, canary, tmp_path)
    assert any("Content Security Policy" in line and "canary.invalid" in line for line in console), console
    broken = tmp_path / "broken.html"
    broken.write_text("<!DOCTYPE html><html><body><script>notDefined()</script></body></html>")
    _, console = _render(chromium, broken, tmp_path)
    assert any("Uncaught ReferenceError" in line for line in console), console


def test_page_renders_in_headless_chromium_without_errors(page: Path, tmp_path: Path) -> None:
    chromium = _chromium()
    data, console = _render(chromium, page, tmp_path)
    assert console == []  # no script error, no blocked fetch, no message at all
    assert _png_size(data) == (1280, 2000)
    assert len(data) > 20_000  # a blank page compresses to a few KB
    raw = _idat(data)
    assert len(set(raw)) > 32  # many distinct bytes: text, charts and thumbnails, not one flat colour
