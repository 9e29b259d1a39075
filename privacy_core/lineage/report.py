"""One self-contained HTML page about a releases folder: lineage graph, budget over time, DP statistics with
their error bars, before/after pixel thumbnails, and the de-identification summary.

The page fetches nothing: CSS is inline, charts are inline SVG, thumbnails are ``data:`` PNGs, and a
Content-Security-Policy forbids any other source. It shows only what the (scrubbed) lineage records, the
release bundles and the ledger's totals already hold, plus thumbnails of released, de-identified arrays;
keys naming key material are dropped wherever a record is rendered, and every text is HTML-escaped.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from privacy_core.errors import ConfigurationError, PrivacyCoreError
from privacy_core.lineage.audit import LINEAGE_DIR, is_secret_key, output_folders

#: Left-to-right order of the operations, for the graph's colours and the thumbnail sources.
OPERATIONS = ("deidentify", "to-zarr", "pixels", "dp-release")
COLOURS = {"deidentify": "#cfe3ff", "to-zarr": "#d7f2d0", "pixels": "#ffe6c2", "dp-release": "#f3d3f0"}
#: The counts a graph node shows first.
NODE_COUNTS = ("written", "quarantined", "series", "left_out", "arrays", "queries")
#: Statistics with more cells than this are listed, not charted.
CHART_CELLS = 50
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d2329;background:#fff}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccd;padding-bottom:4px;margin-top:32px}
h3{font-size:15px;margin-bottom:4px}table{border-collapse:collapse;margin:6px 0}
td,th{border:1px solid #ccd;padding:3px 8px;font-size:13px;text-align:left;vertical-align:top}
th{background:#f2f4f7}.note{color:#5a6570;font-size:13px}svg{display:block;margin:6px 0}
figure{display:inline-block;margin:6px 16px 6px 0}figcaption{font-size:12px;color:#5a6570}
img.thumb{image-rendering:pixelated;border:1px solid #ccd;width:256px;height:auto}
""".strip()


@dataclass(frozen=True)
class Node:
    """One lineage record, found in ``folder``'s ``lineage/``; or an input no record here produced."""

    key: str
    label: str
    operation: str
    folder: Path | None = None
    record: dict[str, Any] = field(default_factory=dict)


@dataclass
class Lineage:
    """The records of a releases folder, the external inputs they name, and the edges input → output."""

    nodes: list[Node] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def node(self, key: str) -> Node:
        return next(n for n in self.nodes if n.key == key)

    def sources_of(self, key: str) -> list[Node]:
        return [self.node(a) for a, b in self.edges if b == key]


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _local_path(uri: str) -> str:
    """A ``file://`` URI or a plain path as a resolved path string; other URLs unchanged."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return str(Path(unquote(parsed.path)).resolve())
    if parsed.scheme in ("", "local") or len(parsed.scheme) == 1:  # a plain (or Windows drive) path
        return str(Path(uri).resolve())
    return uri.rstrip("/")


def _basename(uri: str) -> str:
    return _local_path(uri).rstrip("/").rsplit("/", 1)[-1]


def read_lineage(root: Path) -> Lineage:
    """Every valid record under the output folders of ``root`` (as :func:`audit_releases` finds them), and
    the edges from each record's inputs to the record that produced them (matched by path, else by name)."""
    from privacy_core.lineage.record import read_record

    lineage = Lineage()
    produced: dict[str, str] = {}
    by_name: dict[str, str] = {}
    for folder in output_folders(root):
        for path in sorted((folder / LINEAGE_DIR).glob("*.json")):
            try:
                record = read_record(path)
            except (OSError, ValueError, PrivacyCoreError) as exc:
                lineage.notes.append(f"{folder.name}/{LINEAGE_DIR}/{path.name} left out: {exc.__class__.__name__}")
                continue
            key = f"{folder.name}/{record['record_id']}"
            lineage.nodes.append(Node(key, folder.name, str(record["operation"]), folder, record))
            by_name[folder.name] = key
            produced[str(folder.resolve())] = key
            for output in record["outputs"]:
                produced[_local_path(str(output["uri"]))] = key
    for node in list(lineage.nodes):
        for item in node.record["inputs"]:
            uri = str(item["uri"])
            source = produced.get(_local_path(uri)) or by_name.get(_basename(uri))
            if source is None:
                source = f"input:{_local_path(uri)}"
                if all(n.key != source for n in lineage.nodes):
                    label = f"{item['role']}: {_basename(uri)}"
                    lineage.nodes.append(Node(source, label, "input"))
            if (source, node.key) not in lineage.edges:
                lineage.edges.append((source, node.key))
    return lineage


def layers(lineage: Lineage) -> dict[str, int]:
    """Each node's column: 0 for external inputs, else one more than its deepest source."""
    layer = {n.key: 0 for n in lineage.nodes}
    for _ in range(len(lineage.nodes)):  # longest path in a DAG; a cycle just stops growing
        changed = False
        for a, b in lineage.edges:
            if layer[b] < layer[a] + 1:
                layer[b] = layer[a] + 1
                changed = True
        if not changed:
            break
    return layer


# --- SVG ---------------------------------------------------------------------------------------------


def _svg(width: int, height: int, body: list[str], label: str, css_class: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_esc(label)}">' + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, text: object, *, size: int = 11, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" {extra}>{_esc(text)}</text>'


def _short(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def lineage_svg(lineage: Lineage) -> str:
    """The lineage graph: a column per layer, a box per node, a curved arrow per edge."""
    column = layers(lineage)
    box_w, box_h, gap_x, gap_y, margin = 190, 58, 60, 22, 16
    rows: dict[int, int] = {}
    place: dict[str, tuple[float, float]] = {}
    for node in lineage.nodes:
        col = column[node.key]
        row = rows.get(col, 0)
        rows[col] = row + 1
        place[node.key] = (margin + col * (box_w + gap_x), margin + row * (box_h + gap_y))
    width = margin * 2 + (max(rows, default=0) + 1) * (box_w + gap_x) - gap_x
    height = margin * 2 + max(rows.values(), default=1) * (box_h + gap_y) - gap_y
    body = [
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#56616c"/></marker></defs>'
    ]
    for a, b in lineage.edges:
        (ax, ay), (bx, by) = place[a], place[b]
        x1, y1, x2, y2 = ax + box_w, ay + box_h / 2, bx, by + box_h / 2
        mid = (x1 + x2) / 2
        body.append(
            f'<path class="edge" d="M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} {x2:.1f},{y2:.1f}" '
            'fill="none" stroke="#56616c" stroke-width="1.5" marker-end="url(#arrow)"/>'
        )
    for node in lineage.nodes:
        x, y = place[node.key]
        fill = COLOURS.get(node.operation, "#eeeeee")
        created = str(node.record.get("created_at", ""))
        body.append(
            f'<g class="node"><title>{_esc(node.label)} ({_esc(node.operation)}) {_esc(created)}</title>'
            f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="8" fill="{fill}" stroke="#56616c"/>'
            + _text(x + 10, y + 20, _short(node.label), size=13, extra='font-weight="600"')
            + _text(x + 10, y + 36, node.operation, size=11)
            + _text(x + 10, y + 50, _node_fact(node), size=10, extra='fill="#5a6570"')
            + "</g>"
        )
    return _svg(width, height, body, "lineage graph", "lineage-graph")


def _node_fact(node: Node) -> str:
    counts = node.record.get("counts", {})
    if node.operation == "input":
        return "outside the releases folder"
    numbers = {k: v for k, v in counts.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    ordered = sorted(numbers, key=lambda k: (NODE_COUNTS.index(k) if k in NODE_COUNTS else len(NODE_COUNTS), k))
    return _short(", ".join(f"{k} {numbers[k]}" for k in ordered[:3]), 32)


@dataclass(frozen=True)
class BudgetPoint:
    seq: int
    kind: str
    created_at: str
    spent: Fraction
    reserved: Fraction
    cap: Fraction


def budget_history(ledger_url: str, datasets: list[str]) -> tuple[dict[str, list[BudgetPoint]], list[str]]:
    """Each dataset's totals after every ledger entry, and notes on datasets the ledger cannot give."""
    from privacy_core.dp.ledger import open_ledger
    from privacy_core.errors import LedgerIntegrityError

    history: dict[str, list[BudgetPoint]] = {}
    notes: list[str] = []
    with open_ledger(ledger_url) as ledger:
        for dataset in datasets:
            try:
                entries = ledger.entries(dataset)
            except (ConfigurationError, LedgerIntegrityError) as exc:
                notes.append(f"{dataset}: {exc}")
                continue
            history[dataset] = [
                BudgetPoint(e.seq, str(e.kind), e.created_at, e.spent, e.reserved, e.cap) for e in entries
            ]
    return history, notes


def budget_svg(dataset: str, points: list[BudgetPoint]) -> str:
    """Spent after each entry as a step line, the cap as a dashed line, entries evenly spaced in time order."""
    width, height, left, right, top, bottom = 640, 230, 64, 16, 20, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = float(max([p.cap for p in points] + [p.spent + p.reserved for p in points] + [Fraction(1, 10**9)]))
    top_value *= 1.1
    n = max(len(points) - 1, 1)

    def xy(i: int, value: Fraction) -> tuple[float, float]:
        return left + plot_w * i / n, top + plot_h * (1 - float(value) / top_value)

    def step(values: list[Fraction]) -> str:
        parts = []
        for i, value in enumerate(values):
            x, y = xy(i, value)
            parts.append(f"M{x:.1f},{y:.1f}" if i == 0 else f"H{x:.1f} V{y:.1f}")
        return " ".join(parts)

    body = [
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafbfc" stroke="#ccd"/>',
        f'<path class="cap-line" d="{step([p.cap for p in points])}" fill="none" stroke="#c0392b" '
        'stroke-width="1.5" stroke-dasharray="6 4"/>',
        f'<path class="spent-line" d="{step([p.spent for p in points])}" fill="none" stroke="#1f6feb" '
        'stroke-width="2.5"/>',
    ]
    for i, p in enumerate(points):
        x, y = xy(i, p.spent)
        tip = f"#{p.seq} {p.kind} {p.created_at}: spent {p.spent} (~{float(p.spent):.4g}), cap {p.cap}"
        body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#1f6feb"><title>{_esc(tip)}</title></circle>')
    cap = points[-1].cap
    body += [
        _text(left - 6, xy(0, cap)[1] + 4, f"{float(cap):.3g}", anchor="end", extra='fill="#c0392b"'),
        _text(left - 6, top + plot_h + 4, "0", anchor="end"),
        _text(left + plot_w, xy(n, cap)[1] - 6, f"cap {cap}", anchor="end", extra='fill="#c0392b"'),
        _text(left, height - 24, points[0].created_at, size=10),
        _text(left + plot_w, height - 24, points[-1].created_at, size=10, anchor="end"),
        _text(left + plot_w / 2, height - 8, "ledger entries, in time order", size=11, anchor="middle"),
        _text(14, top + plot_h / 2, "spent", anchor="middle", extra=f'transform="rotate(-90 14 {top + plot_h / 2})"'),
    ]
    return _svg(width, height, body, f"budget of {dataset}", "budget-chart")


def error_bar_svg(title: str, labels: list[str], values: list[float], interval: float) -> str:
    """A bar per cell with a whisker of ± ``interval`` (the 95% noise interval), zero line included."""
    count = len(values)
    slot = max(18, min(60, 560 // max(count, 1)))
    left, top, bottom, plot_h = 56, 16, 70, 170
    width, height = left + slot * count + 20, top + plot_h + bottom
    low = min([0.0] + [v - interval for v in values])
    high = max([0.0] + [v + interval for v in values])
    span = high - low if high > low else 1.0

    def y(value: float) -> float:
        return top + plot_h * (high - value) / span

    body = [
        f'<line x1="{left}" x2="{left + slot * count}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#56616c"/>',
        _text(left - 6, y(high) + 4, f"{high:.4g}", anchor="end", size=10),
        _text(left - 6, y(low) + 4, f"{low:.4g}", anchor="end", size=10),
    ]
    for i, (label, value) in enumerate(zip(labels, values, strict=False)):
        x = left + i * slot + slot * 0.15
        bar_w = slot * 0.7
        centre = x + bar_w / 2
        y0, y1 = sorted((y(0), y(value)))
        tip = f"{label}: {value:.4g} ± {interval:.4g}"
        body.append(
            f'<g class="cell"><title>{_esc(tip)}</title>'
            f'<rect x="{x:.1f}" y="{y0:.1f}" width="{bar_w:.1f}" height="{max(y1 - y0, 0.5):.1f}" fill="#7aa7e8"/>'
            f'<path class="error-bar" d="M{centre:.1f},{y(value + interval):.1f} V{y(value - interval):.1f} '
            f'M{centre - 5:.1f},{y(value + interval):.1f} h10 M{centre - 5:.1f},{y(value - interval):.1f} h10" '
            'stroke="#1d2329" stroke-width="1.3" fill="none"/></g>'
        )
        label_y = top + plot_h + 12
        body.append(
            _text(centre, label_y, _short(label, 14), size=10, anchor="end",
                  extra=f'transform="rotate(-45 {centre:.1f} {label_y:.1f})"')
        )  # fmt: skip
    return _svg(width, height, body, title, "stat-chart")


# --- thumbnails --------------------------------------------------------------------------------------


def _plane(url: str) -> Any:
    from privacy_core.imaging.zarr_store import open_series

    volume = open_series(url)
    return volume[volume.shape[0] // 2].compute()


def thumbnails(lineage: Lineage) -> list[tuple[str, str, str, str, str]]:
    """(store, array, source store, before PNG data URI, after PNG data URI) for each pixel-transform store:
    the middle slice of its first array and of the same series in the store its record names as input."""
    from privacy_core.imaging.zarr_store import list_series
    from privacy_core.lineage._png import auto_window, data_uri, downsample, encode_png, to_grey, window

    found = []
    for node in lineage.nodes:
        sources = [s for s in lineage.sources_of(node.key) if s.operation == "to-zarr" and s.folder is not None]
        if node.operation != "pixels" or node.folder is None or not sources:
            continue
        try:
            after_url = list_series(str(node.folder))[0]
            name = after_url.rstrip("/").rsplit("/", 1)[-1]
            candidates = list_series(str(sources[0].folder))
            before_url = next((u for u in candidates if u.rstrip("/").endswith("/" + name)), candidates[0])
            before = downsample(to_grey(_plane(before_url)))
            after = downsample(to_grey(_plane(after_url)))
        except (PrivacyCoreError, OSError, ValueError, IndexError) as exc:
            lineage.notes.append(f"{node.label}: no thumbnail ({exc.__class__.__name__})")
            continue
        limits = auto_window(before)  # one window for both, so the change is what differs
        found.append(
            (
                node.label,
                name,
                sources[0].label,
                data_uri(encode_png(window(limits, before))),
                data_uri(encode_png(window(limits, after))),
            )
        )
    return found


# --- sections ----------------------------------------------------------------------------------------


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return _table(value)
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        return "".join(_value(v) for v in value)
    if isinstance(value, list):
        return _esc(", ".join(json.dumps(v) if isinstance(v, list) else str(v) for v in value) or "none")
    return _esc("—" if value is None else value)


def _table(facts: dict[str, Any]) -> str:
    """A two-column table; keys naming key material are left out, however deep."""
    rows = "".join(
        f"<tr><th>{_esc(k)}</th><td>{_value(v)}</td></tr>" for k, v in facts.items() if not is_secret_key(str(k))
    )
    return f"<table>{rows}</table>"


def deid_section(lineage: Lineage) -> str:
    parts = ["<h2>De-identification</h2>"]
    records = [n for n in lineage.nodes if n.operation == "deidentify"]
    if not records:
        return parts[0] + '<p class="note">No de-identification record in this folder.</p>'
    for node in records:
        counts = dict(node.record.get("counts", {}))
        reasons = counts.pop("reasons", {}) or {}
        deid = node.record.get("privacy", {}).get("deidentification", {})
        parts.append(f"<h3>{_esc(node.label)} <span class='note'>{_esc(node.record.get('created_at', ''))}</span></h3>")
        parts.append('<div class="deid-counts">' + _table(counts) + "</div>")
        parts.append("<p><b>Quarantine reasons</b></p>" + (_table(reasons) if reasons else "<p>none</p>"))
        parts.append("<p><b>Profile</b></p>" + _table(deid))
    return "".join(parts)


def dp_section(lineage: Lineage) -> str:
    parts = ["<h2>DP statistics</h2>", '<p class="note">Bars are the released noisy values; whiskers the 95% '
             "interval of the noise (value ± interval_95).</p>"]  # fmt: skip
    bundles = 0
    for node in lineage.nodes:
        path = node.folder / "release.json" if node.folder else None
        if node.operation != "dp-release" or path is None or not path.is_file():
            continue
        bundle = json.loads(path.read_text(encoding="utf-8"))
        bundles += 1
        loss = bundle.get("loss", {})
        parts.append(
            f"<h3>{_esc(node.label)}: dataset {_esc(bundle.get('dataset'))}, {_esc(bundle.get('accounting'))}, "
            f"loss {_esc(loss.get('exact'))} <span class='note'>{_esc(bundle.get('created_at', ''))}</span></h3>"
        )
        for query in bundle.get("queries", []):
            parts.append(
                f"<p><b>{_esc(query['name'])}</b> ({_esc(query['kind'])}, loss {_esc(query['loss']['exact'])})</p>"
            )
            for stat in query.get("statistics", []):
                parts.append(_statistic(query["name"], stat))
    if not bundles:
        parts.append('<p class="note">No DP release bundle in this folder.</p>')
    return "".join(parts)


def _statistic(query: str, stat: dict[str, Any]) -> str:
    interval = float(stat.get("interval_95", 0.0))
    noise = stat.get("noise", {})
    head = f"{query} / {stat.get('part')}"
    if "file" in stat:
        file = stat["file"]
        shape = " × ".join(str(s) for s in file.get("shape", []))
        return (
            f"<p>{_esc(head)}: image <code>{_esc(file.get('name'))}</code>, shape {_esc(shape)}, ± {interval:.4g}</p>"
        )
    values = [float(v) for v in stat.get("values", [])]
    labels = [str(label) for label in stat.get("labels", [])]
    labels += [str(i) for i in range(len(labels), len(values))]
    caption = f"{head}: {len(values)} cells, 95% interval ± {interval:.4g}"
    if isinstance(noise, dict) and noise.get("mechanism"):
        caption += f", {noise['mechanism']}"
    if len(values) > CHART_CELLS or not values:
        return f"<p>{_esc(caption)} (not charted: more than {CHART_CELLS} cells or none)</p>"
    return f"<p class='note'>{_esc(caption)}</p>" + error_bar_svg(head, labels, values, interval)


def budget_section(lineage: Lineage, ledger_url: str | None) -> str:
    parts = ["<h2>Privacy budget</h2>"]
    datasets = sorted(
        {
            str(n.record["privacy"]["dp_release"]["dataset"])
            for n in lineage.nodes
            if "dp_release" in n.record.get("privacy", {})
        }
    )
    if ledger_url is None:
        return parts[0] + '<p class="note">No ledger given (--ledger): budget history not shown.</p>'
    if not datasets:
        return parts[0] + '<p class="note">No DP release in this folder names a dataset.</p>'
    history, notes = budget_history(ledger_url, datasets)
    for dataset, points in history.items():
        last = points[-1]
        parts.append(
            f"<h3>{_esc(dataset)}: spent {_esc(last.spent)} of cap {_esc(last.cap)} "
            f"(~{float(last.spent):.4g} / {float(last.cap):.4g}), {len(points)} entries</h3>"
        )
        parts.append(budget_svg(dataset, points))
    parts += [f'<p class="note">{_esc(note)}</p>' for note in notes]
    return "".join(parts)


def thumbnail_section(lineage: Lineage) -> str:
    parts = ["<h2>Pixel transforms: before / after</h2>"]
    found = thumbnails(lineage)
    if not found:
        return parts[0] + '<p class="note">No pixel-transform store with a source store in this folder.</p>'
    parts.append('<p class="note">Middle slice of the first array, one window (1st–99th percentile of the '
                 "source) for both, at most 256 px.</p>")  # fmt: skip
    for store, array, source, before, after in found:
        parts.append(
            f"<h3>{_esc(store)} <span class='note'>series {_esc(array)}</span></h3>"
            + _figure("before", before, source)
            + _figure("after", after, store)
        )
    return "".join(parts)


def _figure(which: str, uri: str, store: str) -> str:
    return (
        f'<figure><img class="thumb" alt="{which}" src="{uri}"><figcaption>{which}: {_esc(store)}</figcaption></figure>'
    )


def provenance_section(lineage: Lineage, root: Path) -> str:
    """Which code ran each step (version and source digest), where (Airflow task or command line), and
    the record's link in the lineage chain: what an auditor quotes when asking "what exactly ran"."""
    from privacy_core.lineage.chain import verify_chain

    links = {str(link["record"]["path"]): link for link in verify_chain(root, check_records=False).links}
    rows = []
    for node in lineage.nodes:
        if node.folder is None:
            continue
        record, producer = node.record, node.record.get("producer", {})
        run = record.get("run", {})
        airflow = run.get("airflow") or {}
        task = f"{airflow.get('dag_id')}.{airflow.get('task_id')}"
        where = f"{task} run {airflow.get('run_id')} try {airflow.get('try_number')}" if airflow else "command line"
        path = f"{node.folder.name}/{LINEAGE_DIR}/{record.get('record_id')}.json"
        link = links.get(path)
        chained = f"{link['sequence']}:{str(link['entry_hash'])[:16]}…" if link else "not chained"
        digest = str(producer.get("source_digest", "not recorded (record before 1.4)"))
        rows.append(
            f"<tr><td>{_esc(node.label)}</td><td>{_esc(node.operation)}</td><td>{_esc(producer.get('version', ''))}"
            f"</td><td><code>{_esc(digest[:23])}</code></td><td>{_esc(where)}</td><td>{_esc(chained)}</td></tr>"
        )
    head = (
        "<tr><th>output</th><th>step</th><th>version</th><th>source digest</th><th>ran as</th><th>chain link</th></tr>"
    )
    return (
        "<h2>Software and provenance</h2>"
        '<p class="note">The source digest covers every module of the installed library and provider; the chain '
        "link is the record's place in <code>lineage-chain/</code>.</p>"
        f'<table class="provenance">{head}{"".join(rows)}</table>'
    )


def build_report(root: str | Path, *, ledger_url: str | None = None) -> str:
    """The report page of the releases folder ``root`` as one HTML string.

    :raises ConfigurationError: ``root`` is not a folder.
    """
    folder = Path(root)
    if not folder.is_dir():
        raise ConfigurationError("RELEASES", f"{folder} is not a folder", "give the releases folder of a run")
    lineage = read_lineage(folder)
    sections = [
        "<h2>Lineage</h2>",
        f'<p class="note">{sum(n.folder is not None for n in lineage.nodes)} lineage records; arrows run from '
        "each record's inputs to its outputs.</p>",
        lineage_svg(lineage),
        budget_section(lineage, ledger_url),
        dp_section(lineage),
        thumbnail_section(lineage),
        deid_section(lineage),
        provenance_section(lineage, folder),
    ]
    if lineage.notes:
        sections.append("<h2>Notes</h2><ul>" + "".join(f"<li>{_esc(n)}</li>" for n in lineage.notes) + "</ul>")
    title = f"Release report: {folder.resolve().name}"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>{_esc(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{_esc(title)}</h1>" + "\n".join(sections) + "</body></html>\n"
    )


def write_report(root: str | Path, output: str | Path, *, ledger_url: str | None = None) -> Path:
    """Build the page of ``root`` and write it atomically to ``output``; returns where."""
    from privacy_core.storage import atomic_write_bytes

    page = build_report(root, ledger_url=ledger_url)
    path = Path(output)
    atomic_write_bytes(path, page.encode("utf-8"))
    return path
