"""The visual report of one pack: `reports/<pack>/index.html`, a static page that opens from disk.

In: the pack's manifest, `pairs-quality.v0.json` (or the rejected scores when the gate refused them), eval
rows with their thumbnails, `meta.json`, the trainer's report and the verify report. Everything but the
manifest is optional: a missing part is shown as missing, with the command that makes it.
Out: one self-contained HTML file (styles, charts as SVG and thumbnails as data URIs inline) with the score
histogram, the 24 best and 24 worst pairs with their statistics, coverage, training curves, the k-fold
cross-validation (per-fold figures, the measured quality of each sampled pair against its out-of-fold score,
and the pairs where they disagree most), the gate results and the presets that failed and why.
"""
from __future__ import annotations

import base64
import html
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from .core.contracts import (
    TRAIN_SOURCES,
    load_manifest,
    load_verify_report,
    now_iso,
    read_json,
    read_rows,
    resolve_url,
    validate_meta,
    validate_quality,
    validate_train_report,
    write_bytes_atomic,
)
from .core.errors import ContractError, CqError
from .core.settings import TrainSettings
from .core.workspace import Workspace, command, tool_command
from .learn.gates import MIN_SPREAD_BELOW_MEDIAN, gate_failures
from .learn.history import changes, read_history, varying_settings

GALLERY_SIZE = 24
DISCOVERED_SHOWN = 48
HISTOGRAM_BINS = 20
SHOWN_STATS = (("lumaMean", "luma"), ("contrast", "contrast"), ("colourfulness", "colour"),
               ("motionMean", "motion"), ("flicker", "flicker"), ("blackFrac", "black"),
               ("audioCorr", "audio"), ("fgShare", "fg share"))
SOURCE_COLOURS = {"elite": "#f5b942", "eval": "#5fb3ff", "neg": "#ff6f7d", "total": "#e8ecf4",
                  "validation": "#6fe3a0"}


@dataclass
class PackData:
    """Everything the page shows, read through the contracts; `problems` lists parts that could not be read."""

    pack: str
    manifest: object
    quality: dict | None = None
    quality_rejected: bool = False
    rows: dict[int, dict] = field(default_factory=dict)
    meta: dict | None = None
    training: dict | None = None
    verify: dict | None = None
    problems: list[str] = field(default_factory=list)


def _optional(data: PackData, path: Path, reader, missing_advice: str):
    if not path.exists():
        data.problems.append(f"{path.name}: not there yet ({missing_advice})")
        return None
    try:
        return reader(path)
    except ContractError as error:
        data.problems.append(str(error))
        return None


def gather(workspace: Workspace, pack: str) -> PackData:
    manifest = load_manifest(workspace.manifest_path(pack))
    data = PackData(pack, manifest)
    quality_file = workspace.quality_path(pack)
    rejected = workspace.rejected_quality_path(pack)
    if not quality_file.exists() and rejected.exists():
        quality_file, data.quality_rejected = rejected, True
    data.quality = _optional(data, quality_file, lambda p: validate_quality(read_json(p), p, manifest),
                             command("score"))
    if workspace.eval_path(pack).exists():
        rows, warnings = read_rows(workspace.eval_path(pack))
        data.problems.extend(warnings[:10])
        data.rows = {row["pair"]: row for row in sorted(rows, key=lambda row: row["sampledAt"])}
    else:
        data.problems.append(f"eval.jsonl: not there yet ({command('sample')})")
    data.meta = _optional(data, workspace.meta_path(pack), lambda p: validate_meta(read_json(p), p), command("merge"))
    data.training = _optional(data, workspace.train_report_path,
                              lambda p: validate_train_report(read_json(p), p), command("train"))
    data.verify = _optional(data, workspace.verify_report_path(pack), load_verify_report, command("verify"))
    return data


# ------------------------------------------------------------------------------------------ pieces

def esc(value) -> str:
    return html.escape(str(value), quote=True)


def file_name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def thumb_uri(workspace: Workspace, pack: str, row: dict | None) -> str:
    """The row's thumbnail as a data URI ('' when there is none or it would leave the eval dir)."""
    if not row or not row.get("thumb"):
        return ""
    base = workspace.eval_dir(pack).resolve()
    path = (base / row["thumb"]).resolve()
    if base not in path.parents or not path.is_file():
        return ""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def histogram_svg(scores: list[float], stats: dict) -> str:
    width, height, pad, head = 640, 240, 32, 52  # head: room above the bars for the p50/mean labels
    counts = [0] * HISTOGRAM_BINS
    for score in scores:
        counts[min(HISTOGRAM_BINS - 1, int(score * HISTOGRAM_BINS))] += 1
    top = max(counts) or 1
    bar_width = (width - 2 * pad) / HISTOGRAM_BINS
    base = height - pad
    parts = [f'<svg viewBox="0 0 {width} {height}" class="chart" role="img" aria-label="score histogram">']
    for index, count in enumerate(counts):
        bar_height = (base - head) * count / top
        x = pad + index * bar_width
        hue = int(index / (HISTOGRAM_BINS - 1) * 120)
        parts.append(f'<rect x="{x + 1:.1f}" y="{base - bar_height:.1f}" width="{bar_width - 2:.1f}" '
                     f'height="{bar_height:.1f}" fill="hsl({hue},70%,55%)"><title>{index / HISTOGRAM_BINS:.2f}–'
                     f'{(index + 1) / HISTOGRAM_BINS:.2f}: {count} pairs</title></rect>')
    for row, (name, colour) in enumerate((("p50", "#e8ecf4"), ("mean", "#7cc4ff"))):
        x = pad + stats[name] * (width - 2 * pad)
        anchor = "end" if stats[name] > 0.8 else "start"
        label_y = 18 + 14 * row
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{label_y - 4}" y2="{base}" stroke="{colour}" '
                     f'stroke-dasharray="4 3"/><text x="{x + (-4 if anchor == "end" else 4):.1f}" '
                     f'y="{label_y}" fill="{colour}" text-anchor="{anchor}">{name} {stats[name]:.3f}</text>')
    for tick in range(0, 11, 2):
        x = pad + tick / 10 * (width - 2 * pad)
        parts.append(f'<text x="{x:.1f}" y="{base + 16}" text-anchor="middle">{tick / 10:.1f}</text>')
    parts.append(f'<text x="{pad}" y="{head - 6}">{top} pairs</text>'
                 f'<text x="{width - pad}" y="{base + 28}" text-anchor="end">quality01</text>')
    parts.append(f'<line x1="{pad}" x2="{width - pad}" y1="{base}" y2="{base}" stroke="#555"/>')
    parts.append("</svg>")
    return "".join(parts)


def curves_svg(epochs: list[dict]) -> str:
    """Per-source training loss and the k-fold mean validation loss per epoch."""
    width, height, pad = 640, 240, 40
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for record in epochs:
        for name in (*TRAIN_SOURCES, "total"):
            if record["loss"].get(name) is not None:
                series[name].append((record["epoch"], record["loss"][name]))
        if record.get("validationLoss") is not None:
            series["validation"].append((record["epoch"], record["validationLoss"]))
    points = [point for values in series.values() for point in values]
    if not points:
        return '<p class="dim">no epochs recorded</p>'
    first, last = min(p[0] for p in points), max(p[0] for p in points)
    low, high = 0.0, max(p[1] for p in points) * 1.05 or 1.0

    def xy(epoch, loss):
        x = pad + (epoch - first) / max(1, last - first) * (width - 2 * pad)
        return x, height - pad - (loss - low) / (high - low) * (height - 2 * pad)

    parts = [f'<svg viewBox="0 0 {width} {height}" class="chart" role="img" aria-label="training curves">']
    for fraction in (0, 0.5, 1):
        y = height - pad - fraction * (height - 2 * pad)
        value = low + fraction * (high - low)
        parts.append(f'<line x1="{pad}" x2="{width - pad}" y1="{y:.1f}" y2="{y:.1f}" stroke="#333"/>'
                     f'<text x="{pad - 6}" y="{y + 4:.1f}" text-anchor="end">{value:.2f}</text>')
    parts.append(f'<text x="{pad}" y="{height - 14}">epoch {first}</text>'
                 f'<text x="{width / 2}" y="{height - 14}" text-anchor="middle">loss per epoch (BCE)</text>'
                 f'<text x="{width - pad}" y="{height - 14}" text-anchor="end">epoch {last}</text>')
    legend_x = pad
    for name, values in series.items():
        colour = SOURCE_COLOURS[name]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(*point) for point in values))
        dash = ' stroke-dasharray="5 3"' if name == "validation" else ""
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}>'
                     f'<title>{name}</title></polyline>')
        label = "validation (k-fold mean)" if name == "validation" else name
        parts.append(f'<rect x="{legend_x}" y="8" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{legend_x + 14}" y="17">{label}</text>')
        legend_x += 22 + 8 * len(label)
    parts.append("</svg>")
    return "".join(parts)


def badge(passed: bool | None) -> str:
    if passed is None:
        return '<span class="badge wait">not run</span>'
    return '<span class="badge ok">pass</span>' if passed else '<span class="badge bad">fail</span>'


# ------------------------------------------------------------------------------------------ sections

def gate_rows(data: PackData, min_quality_std: float) -> list[tuple[str, bool | None, str]]:
    rows: list[tuple[str, bool | None, str]] = []
    if data.quality is None:
        rows.append(("scores written", None, f"no quality file yet: run `{command('score')}`"))
    else:
        stats = data.quality["qualityStats"]
        failures = gate_failures(stats, min_quality_std)
        rows.append((f"qualityStats.std ≥ {min_quality_std}", not any("std" in f for f in failures),
                     f"std {stats['std']:.4f}"))
        rows.append((f"min below p50 by {MIN_SPREAD_BELOW_MEDIAN}", not any("min" in f for f in failures),
                     f"min {stats['min']:.4f}, p50 {stats['p50']:.4f}"))
        missing = data.quality["stats"]["missingFiles"]
        rows.append(("no missing preset files", missing == 0, f"{missing} pair(s) with missing files"))
        if data.quality_rejected:
            rows.append(("scores accepted", False, "the gate rejected these scores (pairs-quality.v0.rejected.json)"))
    if data.verify is None:
        rows.append(("verify", None, f"no verify report yet: run `{command('verify')}`"))
    else:
        for check in data.verify["checks"]:
            rows.append((f"verify: {check['name']}", check["passed"], check["detail"]))
    return rows


def pair_card(workspace: Workspace, data: PackData, entry, score: float) -> str:
    row = data.rows.get(entry.pair)
    uri = thumb_uri(workspace, data.pack, row)
    picture = (f'<img src="{uri}" alt="pair {entry.pair}" width="128" height="128">' if uri else
               '<div class="nothumb dim">not sampled</div>' if row is None else
               f'<div class="nothumb">{esc(row["status"])}</div>')
    stats = row["stats"] if row else {}
    cells = "".join(f"<dt>{esc(label)}</dt><dd>{fmt(stats.get(name), 2)}</dd>" for name, label in SHOWN_STATS
                    if name in stats)
    flags = ([row["status"]] if row and row["status"] != "ok" else []) + (row or {}).get("reasons", [])
    reasons = "".join(f'<span class="chip">{esc(flag)}</span>' for flag in dict.fromkeys(flags))
    return (f'<figure class="card">{picture}<figcaption><b>#{entry.pair}</b> <span class="score">'
            f'{score:.3f}</span><div class="files" title="{esc(entry.fgUrl)}&#10;{esc(entry.bgUrl)}">'
            f'fg {esc(file_name(entry.fgUrl))}<br>bg {esc(file_name(entry.bgUrl))}</div>'
            f'<dl>{cells}</dl>{reasons}</figcaption></figure>')


def gallery(workspace: Workspace, data: PackData) -> str:
    if data.quality is None:
        return f'<p class="dim">no scores yet (run <code>{esc(command("score"))}</code>)</p>'
    by_pair = {entry.pair: entry for entry in data.manifest.pairs}
    ranked = sorted(data.quality["pairs"], key=lambda item: (-item["quality01"], item["pair"]))
    if len(ranked) <= GALLERY_SIZE:
        galleries = [(f"all {len(ranked)} pairs, best first", ranked)]
    else:
        worst = ranked[::-1][:min(GALLERY_SIZE, len(ranked) - GALLERY_SIZE)]
        galleries = [(f"{GALLERY_SIZE} best pairs", ranked[:GALLERY_SIZE]), (f"{len(worst)} worst pairs", worst)]
    parts = []
    for title, items in galleries:
        cards = "".join(pair_card(workspace, data, by_pair[item["pair"]], item["quality01"]) for item in items)
        parts.append(f"<h3>{esc(title)}</h3><div class=\"grid\">{cards}</div>")
    return "".join(parts)


def coverage_section(data: PackData) -> str:
    total = len(data.manifest.pairs)
    sampled = len(data.rows)
    statuses = Counter(row["status"] for row in data.rows.values())
    parts = []
    if data.meta and data.pack in data.meta["progress"]:
        progress = data.meta["progress"][data.pack]
        fraction = progress["visited"] / max(1, progress["target"])
        parts.append(f'<p>visited <b>{progress["visited"]}</b> of target {progress["target"]} '
                     f'({total} pairs in the manifest) — {"done" if progress["done"] else "not done"}</p>'
                     f'<div class="meter"><span style="width:{min(100, fraction * 100):.1f}%"></span></div>')
        webgl = data.meta["runtime"].get("webgl") or {}
        parts.append(f'<p class="dim">sampled {esc(data.meta["startedAt"])} → {esc(data.meta["finishedAt"])}; '
                     f'audio {esc(data.meta["audio"]["mode"])}; renderer {esc(webgl.get("renderer", "?"))}</p>')
    else:
        parts.append(f'<p class="dim">no meta.json progress for this pack (run <code>{esc(command("merge"))}</code>)</p>')
    parts.append(f"<p>{sampled} of {total} pairs have an eval row "
                 f"({100 * sampled / max(1, total):.1f}%)</p>")
    if statuses:
        parts.append("<table><tr><th>row status</th><th>pairs</th></tr>" + "".join(
            f"<tr><td>{esc(status)}</td><td>{count}</td></tr>" for status, count in statuses.most_common())
            + "</table>")
    return "".join(parts)


def metric_cell(metric) -> str:
    if metric is None:
        return '<td class="dim">too few pairs</td>'
    return f"<td>{metric['value']:.3f} <span class=\"dim\">[{metric['lo']:.3f}, {metric['hi']:.3f}]</span></td>"


def training_section(data: PackData) -> str:
    report = data.training
    if report is None:
        return f'<p class="dim">no training report yet (run <code>{esc(command("train"))}</code>)</p>'
    elite = report["eliteAuc"]
    elite_text = ("no elite pairs rated both ≥4 and ≤2" if elite is None else
                  f"{elite['value']:.3f} [{elite['lo']:.3f}, {elite['hi']:.3f}] ({elite['positives']} good vs "
                  f"{elite['negatives']} bad, {'out of fold' if elite['heldOut'] else 'in-sample'})")
    sources = "".join(f"<tr><td>{esc(name)}</td><td>{fmt(info.get('count'))}</td>"
                      f"<td>{fmt(info.get('share'), 2)}</td><td>{fmt(info.get('lossWeight'), 2)}</td>"
                      f"<td class=\"dim\">{esc(info.get('note', ''))}</td></tr>"
                      for name, info in report["sources"].items())
    return (f"{curves_svg(report['epochs'])}"
            f"<p class=\"dim\">trained {esc(report['trainedAt'])} on {esc(report['device'])} in "
            f"{report['trainSeconds']:.1f} s (cross-validation {report.get('crossValidationSeconds', 0.0):.1f} s), "
            f"final fit {len(report['epochs'])} epochs, {report['featureCount']} features</p>"
            f"<p>elite separation (AUC, 95% bootstrap interval): {esc(elite_text)}</p>"
            f"<h3>sources</h3><table><tr><th>source</th><th>pairs</th><th>share</th><th>loss weight</th><th></th></tr>"
            f"{sources}</table>")


# ------------------------------------------------------------------------------- cross-validation

SCATTER_SIZE = 320
DISAGREEMENT_ROWS = 12


def scatter_svg(points: list[tuple[int, float, float]]) -> str:
    """Measured quality (x) against the out-of-fold score (y), one dot per sampled pair of the pack."""
    size, pad = SCATTER_SIZE, 36
    span = size - 2 * pad

    def xy(x, y):
        return pad + x * span, size - pad - y * span

    parts = [f'<svg viewBox="0 0 {size} {size}" class="chart scatter" role="img" '
             f'aria-label="measured vs out-of-fold score">',
             f'<rect x="{pad}" y="{pad}" width="{span}" height="{span}" fill="none" stroke="#333"/>',
             '<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#555" stroke-dasharray="4 3"/>'
             .format(*xy(0, 0), *xy(1, 1))]
    for pair, measured, predicted in points:
        x, y = xy(min(max(measured, 0.0), 1.0), min(max(predicted, 0.0), 1.0))
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="#5fb3ff" fill-opacity="0.7">'
                     f'<title>#{pair}: measured {measured:.3f}, out-of-fold {predicted:.3f}</title></circle>')
    parts.append(f'<text x="{size / 2}" y="{size - 8}" text-anchor="middle">measured quality</text>'
                 f'<text x="12" y="{size / 2}" transform="rotate(-90 12 {size / 2})" text-anchor="middle">'
                 f'out-of-fold net score</text></svg>')
    return "".join(parts)


def cross_validation_section(data: PackData) -> str:
    """Per-fold figures, the scatter of this pack's sampled pairs and the pairs where they disagree most."""
    validated = (data.training or {}).get("crossValidation")
    if validated is None:
        return ('<p class="dim">no cross-validation yet (too few sampled pairs, or no training report: '
                f'run <code>{esc(command("sample"))}</code>, then <code>{esc(command("train"))}</code>)</p>')
    prefix = f"{data.pack}:"
    ours = [item for item in validated["outOfFold"] if item["key"].startswith(prefix)]
    folds = "".join(f"<tr><td>{record['fold'] + 1}</td><td>{record['pairs']}</td><td>{fmt(record['net'])}</td>"
                    f"<td>{fmt(record['ridge'])}</td><td>{fmt(record['seconds'], 1)} s</td></tr>"
                    for record in validated["perFold"])
    difference = validated["netMinusRidge"]["spearman"]
    rows = {item["key"]: item for item in ours}
    scores = {entry["pair"]: entry["quality01"] for entry in (data.quality or {}).get("pairs", [])}
    worst = [rows[key] for key in validated["disagreements"] if key in rows][:DISAGREEMENT_ROWS]
    disagreeing = "".join(
        f"<tr><td>#{esc(item['key'][len(prefix):])}</td><td>{item['measured']:.3f}</td><td>{item['net']:.3f}</td>"
        f"<td>{fmt(item['ridge'])}</td><td>{fmt(scores.get(int(item['key'][len(prefix):])))}</td>"
        f"<td>{esc(', '.join(data.rows.get(int(item['key'][len(prefix):]), {}).get('reasons', [])))}</td></tr>"
        for item in worst)
    sampled_rho = (data.quality or {}).get("stats", {}).get("sampledSpearman")
    by_preset = (data.training or {}).get("crossValidationByPreset")
    preset_rows = (f"<tr><th colspan=\"3\">by preset: the held-out pairs' fg and bg presets (and their variants, "
                   f"same code under other parameters) never seen in training; {by_preset['pairs']} pairs</th></tr>"
                   f"<tr><td>coupling net</td>{metric_cell(by_preset['net']['spearman'])}"
                   f"{metric_cell(by_preset['net']['pearson'])}</tr>"
                   f"<tr><td>ridge baseline</td>{metric_cell(by_preset['ridge']['spearman'])}"
                   f"{metric_cell(by_preset['ridge']['pearson'])}</tr>"
                   f"<tr><td>net − ridge</td>{metric_cell(by_preset['netMinusRidge']['spearman'])}<td></td></tr>"
                   if by_preset else "")
    return (f"<p>{validated['folds']}-fold cross-validation by pair and by preset over {validated['pairs']} sampled "
            f"pairs of all packs; the final fit runs the {validated['chosenEpochs']} epochs with the lowest mean "
            f"validation loss by pair. Out-of-fold figures with 95% bootstrap intervals:</p>"
            f"<table><tr><th>model</th><th>Spearman</th><th>Pearson</th></tr>"
            f"<tr><th colspan=\"3\">by pair</th></tr>"
            f"<tr><td>coupling net</td>{metric_cell(validated['net']['spearman'])}"
            f"{metric_cell(validated['net']['pearson'])}</tr>"
            f"<tr><td>ridge baseline</td>{metric_cell(validated['ridge']['spearman'])}"
            f"{metric_cell(validated['ridge']['pearson'])}</tr>"
            f"<tr><td>net − ridge</td>{metric_cell(difference)}<td></td></tr>{preset_rows}</table>"
            f"<p>scores of this pack's sampled pairs against their measurement (Spearman): "
            f"<b>{fmt(sampled_rho)}</b> (a sampled pair is scored by its measurement)</p>"
            f"<h3>per fold (Spearman at the chosen epoch)</h3><table><tr><th>fold</th><th>pairs</th><th>net</th>"
            f"<th>ridge</th><th>time</th></tr>{folds}</table>"
            f"<h3>measured vs out-of-fold score ({len(ours)} pairs of {esc(data.pack)})</h3>"
            f"{scatter_svg([(int(item['key'][len(prefix):]), item['measured'], item['net']) for item in ours])}"
            f"<h3>where measurement and out-of-fold score disagree most</h3>"
            f"<table class=\"disagreements\"><tr><th>pair</th><th>measured</th><th>net (out of fold)</th>"
            f"<th>ridge</th><th>quality01</th><th>reasons</th></tr>{disagreeing}</table>")


def fingerprint_section(workspace: Workspace) -> str:
    """The fingerprints' own coverage (every preset of every pack, rendered alone once)."""
    path = workspace.fingerprint_meta_path
    try:
        meta = read_json(path) if path.is_file() else None
    except ContractError:
        meta = None
    if not meta:
        return f'<p class="dim">no fingerprints yet (run <code>{esc(command("fingerprint"))}</code>)</p>'
    failures = "".join(f"<li>{esc(line)}</li>" for line in meta.get("failures", []))
    return (f"<p><b>{meta['fingerprinted']}</b> of {meta['presets']} presets fingerprinted, {meta['failed']} failed "
            f"(coverage {100 * meta['coverage']:.0f}%); a pair with a failed layer is estimated to fail too</p>"
            f'<div class="meter"><span style="width:{min(100, 100 * meta["coverage"]):.1f}%"></span></div>'
            + (f"<ul class=\"problems\">{failures}</ul>" if failures else ""))


def discovered_section(workspace: Workspace, data: PackData) -> str:
    """For a pack that discovery made: each pick with its thumbnail, the model's prediction beside what the
    sampler measured (the measurement checks the model's picks)."""
    try:
        document = read_json(workspace.manifest_path(data.pack))
    except ContractError:
        return ""
    made = document.get("generatedFrom") if isinstance(document, dict) else None
    if not isinstance(made, dict) or not made.get("discovered"):
        return ""
    measured = {entry["pair"]: entry.get("measured") for entry in (data.quality or {}).get("pairs", [])}
    by_pair = {entry.pair: entry for entry in data.manifest.pairs}
    cards = []
    for item in document["pairs"][:DISCOVERED_SHOWN]:
        entry, row = by_pair[item["pair"]], data.rows.get(item["pair"])
        uri = thumb_uri(workspace, data.pack, row)
        picture = (f'<img src="{uri}" alt="pair {entry.pair}" width="128" height="128">' if uri else
                   '<div class="nothumb dim">not sampled yet</div>')
        cards.append(f'<figure class="card">{picture}<figcaption><b>#{item.get("rank", entry.pair)}</b> predicted '
                     f'<span class="score">{fmt(item.get("predicted"))}</span> measured '
                     f'<span class="score">{fmt(measured.get(entry.pair))}</span><div class="files">'
                     f'fg {esc(file_name(entry.fgUrl))}<br>bg {esc(file_name(entry.bgUrl))}</div></figcaption></figure>')
    return (f"<h2>Discovered pairs</h2><p>{esc(made.get('rule', ''))}: {made.get('scoredPairs', 0):,} pairs of "
            f"{made.get('scoredPresets', 0)} presets from <code>{esc(made.get('library', ''))}</code> scored in "
            f"{fmt(made.get('seconds'), 1)} s</p><div class=\"grid\">{''.join(cards)}</div>")


HISTORY_RUNS = 12
HISTORY_METRICS = ("crossValidation.net.spearman", "crossValidation.ridge.spearman", "crossValidation.net.pearson",
                   "eliteAuc")


def history_section(workspace: Workspace) -> str:
    """Training runs side by side, newest first (as `dvc exp show`): metrics, the settings that vary between
    runs, and what changed since the run before."""
    history = read_history(workspace)
    problems = "".join(f'<li>{esc(problem)}</li>' for problem in history.problems)
    problems = f'<ul class="problems">{problems}</ul>' if problems else ""
    if not history.runs:
        return (f'<p class="dim">no training runs recorded yet (each <code>{esc(command("train"))}</code> adds '
                f'one)</p>{problems}')
    runs = history.runs[-HISTORY_RUNS:]
    earlier = history.runs[-HISTORY_RUNS - 1] if len(history.runs) > HISTORY_RUNS else None
    present = {name for run in runs for name in run["metrics"]}
    metrics = [name for name in HISTORY_METRICS if name in present] + sorted(
        name for name in present if name.startswith("finalLoss."))
    varying = varying_settings(runs)
    head = "".join(f"<th>{esc(name)}</th>" for name in
                   ["run", "trained", "device", *metrics, *varying, "what changed"])
    lines = []
    for index in range(len(runs) - 1, -1, -1):
        run = runs[index]
        before = runs[index - 1] if index else earlier
        cells = [f"<td><code>{esc(run['runId'])}</code></td>", f"<td>{esc(run['trainedAt'])}</td>",
                 f"<td>{esc(run['device'])}</td>"]
        for name in metrics:
            value = run["metrics"].get(name)
            old = before["metrics"].get(name) if before else None
            delta = (f' <span class="dim">({value - old:+.3f})</span>'
                     if value is not None and old is not None and abs(value - old) >= 5e-4 else "")
            cells.append(f"<td>{fmt(value)}{delta}</td>")
        for name in varying:
            changed = before is not None and before["settings"].get(name) != run["settings"].get(name)
            cells.append(f'<td{" class=changed" if changed else ""}>{esc(run["settings"].get(name))}</td>')
        cells.append(f'<td class="dim">{esc("; ".join(changes(before, run)))}</td>')
        lines.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<p class="dim">{len(history.runs)} runs in {esc(workspace.train_history_path)}'
            f'{f", the last {HISTORY_RUNS} shown" if len(history.runs) > HISTORY_RUNS else ""}</p>'
            f'<div class="wide"><table class="history"><tr>{head}</tr>{"".join(lines)}</table></div>{problems}')


def blamed_errors(errors: list[str], layer: str) -> list[str] | None:
    """The errors of a failed row that concern `layer`; the sampler prefixes them with "fg"/"bg" (its phase).
    None when the row names only the other layer; all errors when it names neither."""
    layers = {error[:2] for error in errors if error[:2] in ("fg", "bg")}
    if not layers:
        return list(errors)
    if layer not in layers:
        return None
    return [error for error in errors if error[:2] == layer or error[:2] not in ("fg", "bg")]


def failures_section(data: PackData) -> str:
    """Presets behind failed rows, grouped per preset file, plus the files the scorer could not find or read."""
    by_preset: dict[str, dict] = {}
    by_pair = {entry.pair: entry for entry in data.manifest.pairs}
    for row in data.rows.values():
        if row["status"] == "ok" or row["pair"] not in by_pair:
            continue
        entry = by_pair[row["pair"]]
        for layer, url in (("fg", entry.fgUrl), ("bg", entry.bgUrl)):
            errors = blamed_errors(row["errors"], layer)
            if errors is None:
                continue
            item = by_preset.setdefault(url, {"pairs": [], "statuses": Counter(), "errors": []})
            item["pairs"].append(row["pair"])
            item["statuses"][row["status"]] += 1
            item["errors"].extend(error for error in errors if error not in item["errors"])
    parts = []
    if by_preset:
        parts.append("<table class=\"failures\"><tr><th>preset</th><th>pairs</th><th>status</th><th>why</th></tr>")
        for url, item in sorted(by_preset.items(), key=lambda pair: -len(pair[1]["pairs"])):
            pairs = ", ".join(f"#{pair}" for pair in sorted(item["pairs"])[:8])
            more = f" +{len(item['pairs']) - 8}" if len(item["pairs"]) > 8 else ""
            why = "<br>".join(esc(error[:300]) for error in item["errors"][:3]) or '<span class="dim">no message</span>'
            parts.append(f"<tr><td title=\"{esc(url)}\">{esc(file_name(url))}</td><td>{pairs}{more}</td>"
                         f"<td>{esc(', '.join(item['statuses']))}</td><td class=\"why\">{why}</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p>no sampled pair failed</p>")
    if data.quality:
        for key in ("missing", "unreadable"):
            listed = data.quality["stats"].get(key) or []
            if listed:
                parts.append(f"<h3>{key} preset files (scorer)</h3><ul>"
                             + "".join(f"<li>{esc(text)}</li>" for text in listed) + "</ul>")
    return "".join(parts)


STYLE = """
:root{color-scheme:dark;--bg:#0c0e13;--panel:#151922;--line:#262c38;--text:#e8ecf4;--dim:#8e97a8;
--ok:#6fe3a0;--bad:#ff7a7a;--wait:#ffd36e;font:14px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif}
body{margin:0;background:var(--bg);color:var(--text)}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{margin:0 0 4px;font-size:26px}h2{margin:32px 0 12px;font-size:19px;border-bottom:1px solid var(--line);
padding-bottom:6px}h3{font-size:15px;margin:18px 0 8px}
.dim{color:var(--dim)}code{background:var(--panel);padding:1px 5px;border-radius:4px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:10px;margin-top:16px}
.cards div{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.cards b{display:block;font-size:22px}.cards span{color:var(--dim);font-size:12px}
table{border-collapse:collapse;margin:6px 0}td,th{padding:4px 10px;border-bottom:1px solid var(--line);
text-align:left;vertical-align:top}th{color:var(--dim);font-weight:500}
.badge{display:inline-block;padding:0 8px;border-radius:10px;font-size:12px;font-weight:600}
.badge.ok{background:#173d2a;color:var(--ok)}.badge.bad{background:#48191d;color:var(--bad)}
.badge.wait{background:#3f3516;color:var(--wait)}
.chart{width:100%;max-width:680px;background:var(--panel);border-radius:8px}
.chart.scatter{max-width:360px}
.chart text{fill:var(--dim);font-size:11px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(168px,1fr));gap:10px}
.card{margin:0;background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:8px;font-size:12px}
.card img,.nothumb{display:block;width:100%;height:auto;aspect-ratio:1;border-radius:4px;image-rendering:auto;
background:#000}.nothumb{display:flex;align-items:center;justify-content:center;color:var(--bad)}
.nothumb.dim{color:var(--dim)}
.card .score{float:right;font-weight:600}.files{color:var(--dim);overflow:hidden;white-space:nowrap;
text-overflow:ellipsis;margin:2px 0}
.card dl{display:grid;grid-template-columns:auto auto auto auto;gap:0 6px;margin:4px 0}
.card dt{color:var(--dim)}.card dd{margin:0;text-align:right;font-variant-numeric:tabular-nums}
.chip{display:inline-block;margin:2px 3px 0 0;padding:0 6px;border-radius:8px;background:#3a2327;color:var(--bad)}
.meter{height:10px;background:var(--panel);border-radius:5px;overflow:hidden;max-width:680px}
.meter span{display:block;height:100%;background:linear-gradient(90deg,#5fb3ff,#6fe3a0)}
.failures .why{font-family:ui-monospace,monospace;font-size:12px;color:var(--bad);max-width:520px;
overflow-wrap:anywhere}
.problems li{color:var(--wait)}
.wide{overflow-x:auto}.history td.changed{color:var(--wait);font-weight:600}
"""


def render_html(workspace: Workspace, data: PackData, min_quality_std: float) -> str:
    total = len(data.manifest.pairs)
    gates = gate_rows(data, min_quality_std)
    outcomes = {passed for _, passed, _ in gates}
    gates_text = "fail" if False in outcomes else "incomplete" if None in outcomes else "pass"
    failed_rows = sum(1 for row in data.rows.values() if row["status"] != "ok")
    quality = data.quality
    scores = [item["quality01"] for item in quality["pairs"]] if quality else []
    cards = [(str(total), "pairs in the manifest"),
             (str(len(scores)) if quality else "–",
              "pairs scored" + (" (rejected)" if data.quality_rejected else "")),
             (f"{100 * len(data.rows) / max(1, total):.0f}%", "sampled (eval rows)"),
             (str(failed_rows), "sampled pairs failed"),
             ("pass" if data.verify and data.verify["passed"] else "fail" if data.verify else "–", "verify"),
             (gates_text, "all gates")]
    summary = "".join(f"<div><b>{esc(value)}</b><span>{esc(label)}</span></div>" for value, label in cards)
    gate_table = "<table><tr><th>gate</th><th></th><th>measured</th></tr>" + "".join(
        f"<tr><td>{esc(name)}</td><td>{badge(passed)}</td><td>{esc(detail)}</td></tr>"
        for name, passed, detail in gates) + "</table>"
    if quality:
        stats = quality["qualityStats"]
        stat_table = "<table><tr>" + "".join(f"<th>{key}</th>" for key in stats) + "</tr><tr>" + "".join(
            f"<td>{value:.4f}</td>" for value in stats.values()) + "</tr></table>"
        distribution = histogram_svg(scores, stats) + stat_table
    else:
        distribution = f'<p class="dim">no scores yet (run <code>{esc(command("score"))}</code>)</p>'
    problems = ("<h2>Not available</h2><ul class=\"problems\">" + "".join(
        f"<li>{esc(problem)}</li>" for problem in data.problems) + "</ul>") if data.problems else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(data.pack)} — coupled-quality report</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>
<body><main>
<h1>{esc(data.pack)}</h1>
<p class="dim">coupled-quality report, generated {esc(now_iso())} from {esc(workspace.root)} · play this pack
weighted by these scores: <code>{esc(tool_command("serve"))}</code>, then open
<code>http://127.0.0.1:8765/web/player.html?pack={esc(quote(data.pack))}</code></p>
<div class="cards">{summary}</div>
<h2>Gates</h2>{gate_table}
<h2>Score distribution</h2>{distribution}
<h2>Best and worst pairs</h2>{gallery(workspace, data)}
<h2>Coverage</h2>{coverage_section(data)}
<h2>Training</h2>{training_section(data)}
<h2>Cross-validation</h2>{cross_validation_section(data)}
<h2>Fingerprints</h2>{fingerprint_section(workspace)}
{discovered_section(workspace, data)}
<h2>Presets that failed</h2>{failures_section(data)}
<h2>Training history</h2>{history_section(workspace)}
{problems}
</main></body></html>
"""


def report_inputs(workspace: Workspace, pack: str) -> list[Path]:
    """Every file the page is made from (those that exist are read; the others are shown as missing)."""
    return [workspace.manifest_path(pack), workspace.quality_path(pack), workspace.rejected_quality_path(pack),
            workspace.eval_path(pack), workspace.meta_path(pack), workspace.train_report_path,
            workspace.verify_report_path(pack), workspace.train_history_path, workspace.fingerprint_meta_path]


def inputs_signature(workspace: Workspace, pack: str) -> dict:
    """Size and modification time of each input that exists, for doit's `config_changed` (by the path
    relative to the workspace root, so a moved workspace's report is current)."""
    signature = {}
    for path in report_inputs(workspace, pack):
        if path.exists():
            info = path.stat()
            name = path.relative_to(workspace.root).as_posix() if path.is_relative_to(workspace.root) else str(path)
            signature[name] = [info.st_size, info.st_mtime_ns]
    return signature


def build_report(workspace: Workspace, pack: str, min_quality_std: float | None = None) -> Path:
    """Write `reports/<pack>/index.html`; returns its path."""
    data = gather(workspace, pack)
    if min_quality_std is None:
        settings = (data.training or {}).get("settings", {})
        min_quality_std = settings.get("min_quality_std", TrainSettings().min_quality_std)
    path = workspace.report_index_path(pack)
    write_bytes_atomic(path, render_html(workspace, data, min_quality_std).encode())
    print(f"report {pack}: {path}", file=sys.stderr, flush=True)
    return path


def missing_preset_files(workspace: Workspace, pack: str) -> list[Path]:
    """Preset files the pack's manifest names that do not exist (a broken manifest is its sample task's)."""
    try:
        manifest = load_manifest(workspace.manifest_path(pack))
        paths = [resolve_url(workspace.public, url, workspace.manifest_path(pack))
                 for entry in manifest.pairs for url in (entry.fgUrl, entry.bgUrl)]
    except ContractError:
        return []
    return sorted({path for path in paths if not path.is_file()})


def run(workspace: Workspace, pack: str) -> None:
    """doit action: build the report (the page goes to its file, not into doit's database). The last task
    of a night, so it is the one that ends the run non-zero when the user must restore preset files."""
    path = build_report(workspace, pack)
    missing = missing_preset_files(workspace, pack)
    if missing:
        raise CqError(f"{pack}: {len(missing)} preset files are missing (first: {missing[0]}); every other pair "
                      f"was sampled and scored (report: {path}): restore the files or remove their pairs from "
                      f"{workspace.manifest_path(pack)}")
