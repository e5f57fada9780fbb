"""The visual report of one pack: `reports/<pack>/index.html`, a static page that opens from disk.

In: the pack's manifest, `pairs-quality.v0.json` (or the rejected scores when the gate refused them), eval
rows with their thumbnails, `meta.json`, the trainer's report and the verify report. Everything but the
manifest is optional: a missing part is shown as missing, with the command that makes it.
Out: one self-contained HTML file (styles, charts as SVG and thumbnails as data URIs inline) with the score
histogram, the 24 best and 24 worst pairs with their statistics, coverage, training curves, the k-fold
cross-validation (per-fold figures, the measured quality of each sampled pair against its out-of-fold score,
and the pairs where they disagree most), the gate results and the presets that failed and why.

The markup is in `templates/report/` (`page.html`, a template per section, the SVG charts as macros); this
module reads the inputs and hands each section the plain values it shows. A new section is a function here,
a template in `sections/` and a heading with its include in `page.html`.
"""
from __future__ import annotations

import base64
import functools
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

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
from .core.workspace import REPORT_TEMPLATES_DIR, Workspace, command, tool_command
from .learn.gates import MIN_SPREAD_BELOW_MEDIAN, gate_failures
from .learn.history import changes, read_history, varying_settings

GALLERY_SIZE = 24
DISCOVERED_SHOWN = 48
HISTOGRAM_BINS = 20
SCATTER_SIZE = 320
DISAGREEMENT_ROWS = 12
HISTORY_RUNS = 12
HISTORY_METRICS = ("crossValidation.net.spearman", "crossValidation.ridge.spearman", "crossValidation.net.pearson",
                   "eliteAuc")
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

def file_name(url: str) -> str:
    return url.rsplit("/", 1)[-1]


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def fixed(value, digits: int = 3) -> str:
    return f"{value:.{digits}f}"


def thumb_uri(workspace: Workspace, pack: str, row: dict | None) -> str:
    """The row's thumbnail as a data URI ('' when there is none or it would leave the eval dir)."""
    if not row or not row.get("thumb"):
        return ""
    base = workspace.eval_dir(pack).resolve()
    path = (base / row["thumb"]).resolve()
    if base not in path.parents or not path.is_file():
        return ""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


# ------------------------------------------------------------------------------------------ charts
# The geometry of each chart (coordinates in its viewBox); `charts.html` draws it.

def histogram_chart(scores: list[float], stats: dict) -> dict:
    width, height, pad, head = 640, 240, 32, 52  # head: room above the bars for the p50/mean labels
    counts = [0] * HISTOGRAM_BINS
    for score in scores:
        counts[min(HISTOGRAM_BINS - 1, int(score * HISTOGRAM_BINS))] += 1
    top = max(counts) or 1
    bar_width = (width - 2 * pad) / HISTOGRAM_BINS
    base = height - pad
    bars = [{"x": pad + index * bar_width + 1, "y": base - (base - head) * count / top, "width": bar_width - 2,
             "height": (base - head) * count / top, "hue": int(index / (HISTOGRAM_BINS - 1) * 120),
             "low": index / HISTOGRAM_BINS, "high": (index + 1) / HISTOGRAM_BINS, "count": count}
            for index, count in enumerate(counts)]
    markers = []
    for row, (name, colour) in enumerate((("p50", "#e8ecf4"), ("mean", "#7cc4ff"))):
        x = pad + stats[name] * (width - 2 * pad)
        anchor = "end" if stats[name] > 0.8 else "start"
        markers.append({"name": name, "value": stats[name], "colour": colour, "x": x, "y": 18 + 14 * row,
                        "anchor": anchor, "label_x": x + (-4 if anchor == "end" else 4)})
    ticks = [{"x": pad + tick / 10 * (width - 2 * pad), "label": tick / 10} for tick in range(0, 11, 2)]
    return {"width": width, "height": height, "pad": pad, "head": head, "base": base, "top": top, "bars": bars,
            "markers": markers, "ticks": ticks}


def curves_chart(epochs: list[dict]) -> dict | None:
    """Per-source training loss and the k-fold mean validation loss per epoch (None without epochs)."""
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
        return None
    first, last = min(p[0] for p in points), max(p[0] for p in points)
    low, high = 0.0, max(p[1] for p in points) * 1.05 or 1.0

    def xy(epoch, loss):
        x = pad + (epoch - first) / max(1, last - first) * (width - 2 * pad)
        return x, height - pad - (loss - low) / (high - low) * (height - 2 * pad)

    grid = [{"y": height - pad - fraction * (height - 2 * pad), "value": low + fraction * (high - low)}
            for fraction in (0, 0.5, 1)]
    lines, legend_x = [], pad
    for name, values in series.items():
        label = "validation (k-fold mean)" if name == "validation" else name
        lines.append({"name": name, "label": label, "colour": SOURCE_COLOURS[name], "dashed": name == "validation",
                      "points": " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(*point) for point in values)),
                      "legend_x": legend_x})
        legend_x += 22 + 8 * len(label)
    return {"width": width, "height": height, "pad": pad, "first": first, "last": last, "grid": grid,
            "lines": lines}


def scatter_chart(points: list[tuple[int, float, float]]) -> dict:
    """Measured quality (x) against the out-of-fold score (y), one dot per sampled pair of the pack."""
    size, pad = SCATTER_SIZE, 36
    span = size - 2 * pad

    def xy(x, y):
        return pad + x * span, size - pad - y * span

    dots = []
    for pair, measured, predicted in points:
        x, y = xy(min(max(measured, 0.0), 1.0), min(max(predicted, 0.0), 1.0))
        dots.append({"x": x, "y": y, "pair": pair, "measured": measured, "predicted": predicted})
    (x1, y1), (x2, y2) = xy(0, 0), xy(1, 1)
    return {"size": size, "pad": pad, "span": span, "diagonal": {"x1": x1, "y1": y1, "x2": x2, "y2": y2},
            "dots": dots}


# ------------------------------------------------------------------------------------------ sections
# What each section shows, as plain values; `templates/report/sections/<name>.html` lays it out.

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


def summary_cards(data: PackData, gates: list[tuple[str, bool | None, str]]) -> list[tuple[str, str]]:
    """The figures at the top of the page, as (value, label)."""
    total = len(data.manifest.pairs)
    outcomes = {passed for _, passed, _ in gates}
    gates_text = "fail" if False in outcomes else "incomplete" if None in outcomes else "pass"
    failed_rows = sum(1 for row in data.rows.values() if row["status"] != "ok")
    quality = data.quality
    return [(str(total), "pairs in the manifest"),
            (str(len(quality["pairs"])) if quality else "–",
             "pairs scored" + (" (rejected)" if data.quality_rejected else "")),
            (f"{100 * len(data.rows) / max(1, total):.0f}%", "sampled (eval rows)"),
            (str(failed_rows), "sampled pairs failed"),
            ("pass" if data.verify and data.verify["passed"] else "fail" if data.verify else "–", "verify"),
            (gates_text, "all gates")]


def distribution(data: PackData) -> dict | None:
    if data.quality is None:
        return None
    stats = data.quality["qualityStats"]
    return {"chart": histogram_chart([item["quality01"] for item in data.quality["pairs"]], stats), "stats": stats}


def pair_card(workspace: Workspace, data: PackData, entry, score: float) -> dict:
    row = data.rows.get(entry.pair)
    stats = row["stats"] if row else {}
    flags = ([row["status"]] if row and row["status"] != "ok" else []) + (row or {}).get("reasons", [])
    return {"pair": entry.pair, "score": score, "fgUrl": entry.fgUrl, "bgUrl": entry.bgUrl,
            "thumb": thumb_uri(workspace, data.pack, row), "status": row["status"] if row else None,
            "stats": [(label, stats[name]) for name, label in SHOWN_STATS if name in stats],
            "flags": list(dict.fromkeys(flags))}


def galleries(workspace: Workspace, data: PackData) -> list[tuple[str, list[dict]]] | None:
    """(title, cards) of the best pairs and of the worst, or of all when they are few; None without scores."""
    if data.quality is None:
        return None
    by_pair = {entry.pair: entry for entry in data.manifest.pairs}
    ranked = sorted(data.quality["pairs"], key=lambda item: (-item["quality01"], item["pair"]))
    if len(ranked) <= GALLERY_SIZE:
        shown = [(f"all {len(ranked)} pairs, best first", ranked)]
    else:
        worst = ranked[::-1][:min(GALLERY_SIZE, len(ranked) - GALLERY_SIZE)]
        shown = [(f"{GALLERY_SIZE} best pairs", ranked[:GALLERY_SIZE]), (f"{len(worst)} worst pairs", worst)]
    return [(title, [pair_card(workspace, data, by_pair[item["pair"]], item["quality01"]) for item in items])
            for title, items in shown]


def coverage(data: PackData) -> dict:
    total = len(data.manifest.pairs)
    progress = data.meta["progress"][data.pack] if data.meta and data.pack in data.meta["progress"] else None
    return {"total": total, "sampled": len(data.rows), "sampledPercent": 100 * len(data.rows) / max(1, total),
            "progress": progress, "meta": data.meta,
            "visitedPercent": min(100, 100 * progress["visited"] / max(1, progress["target"])) if progress else None,
            "renderer": (data.meta["runtime"].get("webgl") or {}).get("renderer", "?") if progress else None,
            "statuses": Counter(row["status"] for row in data.rows.values()).most_common()}


def training(data: PackData) -> dict | None:
    report = data.training
    if report is None:
        return None
    elite = report["eliteAuc"]
    elite_text = ("no elite pairs rated both ≥4 and ≤2" if elite is None else
                  f"{elite['value']:.3f} [{elite['lo']:.3f}, {elite['hi']:.3f}] ({elite['positives']} good vs "
                  f"{elite['negatives']} bad, {'out of fold' if elite['heldOut'] else 'in-sample'})")
    return {"report": report, "curves": curves_chart(report["epochs"]), "elite": elite_text,
            "crossValidationSeconds": report.get("crossValidationSeconds", 0.0)}


def cross_validation(data: PackData) -> dict | None:
    """Per-fold figures, the scatter of this pack's sampled pairs and the pairs where they disagree most."""
    validated = (data.training or {}).get("crossValidation")
    if validated is None:
        return None
    prefix = f"{data.pack}:"
    ours = [{**item, "pair": int(item["key"][len(prefix):])} for item in validated["outOfFold"]
            if item["key"].startswith(prefix)]
    by_key = {item["key"]: item for item in ours}
    scores = {entry["pair"]: entry["quality01"] for entry in (data.quality or {}).get("pairs", [])}
    disagreeing = [{**item, "quality": scores.get(item["pair"]),
                    "reasons": data.rows.get(item["pair"], {}).get("reasons", [])}
                   for item in [by_key[key] for key in validated["disagreements"] if key in by_key][:DISAGREEMENT_ROWS]]
    return {"validated": validated, "byPreset": data.training.get("crossValidationByPreset"),
            "sampledSpearman": (data.quality or {}).get("stats", {}).get("sampledSpearman"), "pairs": len(ours),
            "scatter": scatter_chart([(item["pair"], item["measured"], item["net"]) for item in ours]),
            "disagreeing": disagreeing}


def fingerprints(workspace: Workspace) -> dict | None:
    """The fingerprints' own coverage (every preset of every pack, rendered alone once)."""
    path = workspace.fingerprint_meta_path
    try:
        meta = read_json(path) if path.is_file() else None
    except ContractError:
        meta = None
    return {"meta": meta, "percent": min(100, 100 * meta["coverage"])} if meta else None


def discovered(workspace: Workspace, data: PackData) -> dict | None:
    """For a pack that discovery made: each pick with its thumbnail, the model's prediction beside what the
    sampler measured (the measurement checks the model's picks)."""
    try:
        document = read_json(workspace.manifest_path(data.pack))
    except ContractError:
        return None
    made = document.get("generatedFrom") if isinstance(document, dict) else None
    if not isinstance(made, dict) or not made.get("discovered"):
        return None
    measured = {entry["pair"]: entry.get("measured") for entry in (data.quality or {}).get("pairs", [])}
    by_pair = {entry.pair: entry for entry in data.manifest.pairs}
    cards = []
    for item in document["pairs"][:DISCOVERED_SHOWN]:
        entry = by_pair[item["pair"]]
        cards.append({"pair": entry.pair, "rank": item.get("rank", entry.pair), "predicted": item.get("predicted"),
                      "measured": measured.get(entry.pair), "fgUrl": entry.fgUrl, "bgUrl": entry.bgUrl,
                      "thumb": thumb_uri(workspace, data.pack, data.rows.get(item["pair"]))})
    return {"rule": made.get("rule", ""), "scoredPairs": f"{made.get('scoredPairs', 0):,}",
            "scoredPresets": made.get("scoredPresets", 0), "library": made.get("library", ""),
            "seconds": made.get("seconds"), "cards": cards}


def history(workspace: Workspace) -> dict:
    """Training runs side by side, newest first (as `dvc exp show`): metrics, the settings that vary between
    runs, and what changed since the run before."""
    recorded = read_history(workspace)
    runs = recorded.runs[-HISTORY_RUNS:]
    earlier = recorded.runs[-HISTORY_RUNS - 1] if len(recorded.runs) > HISTORY_RUNS else None
    present = {name for run in runs for name in run["metrics"]}
    metrics = [name for name in HISTORY_METRICS if name in present] + sorted(
        name for name in present if name.startswith("finalLoss."))
    varying = varying_settings(runs)
    lines = []
    for index in range(len(runs) - 1, -1, -1):
        run = runs[index]
        before = runs[index - 1] if index else earlier
        values = []
        for name in metrics:
            value = run["metrics"].get(name)
            old = before["metrics"].get(name) if before else None
            shown = value is not None and old is not None and abs(value - old) >= 5e-4
            values.append((value, value - old if shown else None))
        settings = [(run["settings"].get(name),
                     before is not None and before["settings"].get(name) != run["settings"].get(name))
                    for name in varying]
        lines.append({"run": run, "metrics": values, "settings": settings, "changes": "; ".join(changes(before, run))})
    return {"path": workspace.train_history_path, "count": len(recorded.runs), "shown": HISTORY_RUNS,
            "columns": ["run", "trained", "device", *metrics, *varying, "what changed"], "lines": lines,
            "problems": recorded.problems}


def blamed_errors(errors: list[str], layer: str) -> list[str] | None:
    """The errors of a failed row that concern `layer`; the sampler prefixes them with "fg"/"bg" (its phase).
    None when the row names only the other layer; all errors when it names neither."""
    layers = {error[:2] for error in errors if error[:2] in ("fg", "bg")}
    if not layers:
        return list(errors)
    if layer not in layers:
        return None
    return [error for error in errors if error[:2] == layer or error[:2] not in ("fg", "bg")]


def failures(data: PackData) -> dict:
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
    presets = []
    for url, item in sorted(by_preset.items(), key=lambda pair: -len(pair[1]["pairs"])):
        shown = item["errors"][:3]
        presets.append({"url": url, "pairs": sorted(item["pairs"])[:8], "more": max(0, len(item["pairs"]) - 8),
                        "statuses": ", ".join(item["statuses"]),
                        "why": [error[:300] for error in shown] if any(shown) else []})
    unscored = [(key, (data.quality or {}).get("stats", {}).get(key) or []) for key in ("missing", "unreadable")]
    return {"presets": presets, "unscored": [(key, listed) for key, listed in unscored if listed]}


@functools.cache
def page_templates():
    """The report's templates; autoescaped, so what comes from a user's files (preset names, paths,
    messages) is text on the page. jinja2 is imported here: doit loads this module for every command."""
    import jinja2

    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(REPORT_TEMPLATES_DIR), autoescape=True,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                     keep_trailing_newline=True)
    environment.filters.update(fmt=fmt, fixed=fixed, file_name=file_name)
    environment.globals.update(command=command)
    return environment


def template_files() -> list[Path]:
    """The files the page is drawn from besides this module's code (an edit of one rebuilds the reports)."""
    return sorted(path for path in REPORT_TEMPLATES_DIR.rglob("*") if path.is_file())


def render_html(workspace: Workspace, data: PackData, min_quality_std: float) -> str:
    gates = gate_rows(data, min_quality_std)
    return page_templates().get_template("page.html").render(
        pack=data.pack, generated=now_iso(), root=workspace.root, serve=tool_command("serve"),
        cards=summary_cards(data, gates), gates=gates, distribution=distribution(data),
        galleries=galleries(workspace, data), coverage=coverage(data), training=training(data),
        cross_validation=cross_validation(data), fingerprints=fingerprints(workspace),
        discovered=discovered(workspace, data), failures=failures(data), history=history(workspace),
        problems=data.problems)


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
