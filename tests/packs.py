"""One pack builder for the tests (and the training benchmark): presets, manifest, and optionally rows, a
quality file and a trainer's report, all written through `stages.core.contracts` as the stages write them.

`make_pack(workspace, pack, pairs)`: pair i is base preset i (cycling through `presets`: real butterchurn
presets from the pinned butterchurn-presets package, or None for random base values drawn from `seed`),
nudged up for fg and down for bg on zoom, rot and warp, as coupled packs are; each round through the
presets nudges further, so no two pairs render the same pictures. Building the same pack with
more pairs rewrites the first ones byte for byte, so a test can add pairs. Options add what a run leaves:

- `rows="shard"`: a sampling run's shard 0, rows for a `sampled` share of the pairs whose statistics follow
  a hidden function of the pair's features (`hidden_signal`), so a model can learn it and a test can tell
  learning from noise; a few pairs failed to render.
- `rows="eval"`: a finished run's eval.jsonl, thumbnails and meta.json, whose statistics follow the ramp
  scores (pair 0 worst, the last pair best; scores up to 0.2 too dark for the heuristic); the last pair failed
  to compile and has no thumbnail.
- `quality`: pairs-quality.v0.json with the ramp scores (True: for this pack; a name: claiming that pack).
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stages.core.contracts import (
    META_KIND,
    STAT_FIELDS,
    TRAIN_REPORT_KIND,
    Manifest,
    ManifestPair,
    append_jsonl,
    now_iso,
    read_json,
    validate_eval_row,
    validate_meta,
    validate_quality,
    validate_train_report,
    write_json,
)
from stages.core.keys import preset_identity
from stages.core.settings import SampleSettings
from stages.core.workspace import NODE_MODULES_DIR, Workspace
from stages.learn.features import PRESET_FEATURES, preset_features
from stages.render.versions import KEY_VERSIONS

CONVERTED = NODE_MODULES_DIR / "butterchurn-presets" / "presets" / "converted"
# Presets that load quickly, draw bright, moving pictures in headless Chromium, and render reproducibly on
# software WebGL (no additive dotted waves; see demopack).
PRESETS = [CONVERTED / name for name in (
    "Flexi - mindblob [shiny mix].json",
    "Martin - journey into space.json",
    "Geiss - Hurricane.json",
    "Rovastar - Hyperspace.json",
    "Martin - liquid arrows.json",
    "Aderrasi - Agitator.json",
)]
NUDGE = 0.01
FAILED_SHARE = 0.05  # of the pairs of a "shard" pack


@dataclass
class Pack:
    manifest: Manifest
    rows: list[dict] = field(default_factory=list)  # the rows written, in pair order


def make_pack(workspace: Workspace, pack: str = "demo", pairs: int = 8, *, presets: list[Path] | None = PRESETS,
              seed: int = 0, rows: str = "", sampled: float = 1.0, quality: bool | str = False) -> Pack:
    """Write a pack of `pairs` pairs (numbered from 0) and what the options ask for (see the module)."""
    if rows not in ("", "shard", "eval"):
        raise ValueError(f"rows={rows!r}: expected '', 'shard' or 'eval'")
    rng = np.random.default_rng(seed)
    pack_dir = workspace.pack_dir(pack)
    entries, written = [], []
    for pair in range(pairs):
        base = presets[pair % len(presets)] if presets else None
        source = read_json(base) if base else random_preset(rng)
        tag = f" [{base.stem[:12]}]" if base else ""
        fg_path, bg_path = (pack_dir / layer / f"coupled_{pair:05d}{tag}_{layer}.json" for layer in ("fg", "bg"))
        delta = NUDGE * (1 + pair // len(presets)) if presets else NUDGE
        fg_preset, bg_preset = nudged(source, delta), nudged(source, -delta)
        write_json(fg_path, fg_preset, pretty=False)
        write_json(bg_path, bg_preset, pretty=False)
        entries.append(ManifestPair(pair, f"/presets/{pack}/fg/{fg_path.name}", f"/presets/{pack}/bg/{bg_path.name}"))
        if rows != "shard" or rng.random() >= sampled:
            continue
        if rng.random() < FAILED_SHARE:
            written.append(sampled_row(pack, pair, fg_path, bg_path, {}, "shader-failed"))
        else:
            signal = hidden_signal(preset_features(fg_preset), preset_features(bg_preset))
            written.append(sampled_row(pack, pair, fg_path, bg_path, stats_for(signal, rng)))
    manifest = Manifest(workspace.manifest_path(pack), pack, entries)
    write_json(manifest.path, manifest.to_json())
    scores = [round(0.05 + 0.9 * i / max(1, pairs - 1), 4) for i in range(pairs)]
    if quality:
        quality_pack = pack if quality is True else quality
        write_quality(workspace, pack, scores, quality_pack, manifest if quality_pack == pack else None)
    if rows == "shard":
        write_rows(workspace.shard_path(pack, 0), written)
    if rows == "eval":
        written = write_eval(workspace, pack, manifest, scores)
    return Pack(manifest, written)


def random_preset(rng: np.random.Generator) -> dict:
    return {"version": 2,
            "baseVals": {"decay": float(rng.uniform(0.85, 1.0)), "gammaadj": float(rng.uniform(0.5, 4.0)),
                         "zoom": float(rng.uniform(0.9, 1.1)), "rot": float(rng.uniform(-0.2, 0.2)),
                         "warp": float(rng.uniform(0, 2)), "wave_mode": int(rng.integers(0, 8)),
                         "echo_alpha": float(rng.uniform(0, 1)), "mv_a": float(rng.uniform(0, 1)),
                         "wave_r": float(rng.uniform(0, 1)), "cx": float(rng.uniform(0.3, 0.7))},
            "shapes": [{"baseVals": {"enabled": int(rng.integers(0, 2))}} for _ in range(4)],
            "waves": [{"baseVals": {"enabled": int(rng.integers(0, 2))}} for _ in range(4)],
            "init_eqs_eel": "", "frame_eqs_eel": "zoom = zoom + 0.01*bass;" * int(rng.integers(0, 20)),
            "pixel_eqs_eel": "", "warp": "", "comp": ""}


def nudged(preset: dict, delta: float) -> dict:
    base = dict(preset.get("baseVals", {}))
    for key, default in (("zoom", 1.0), ("rot", 0.0), ("warp", 1.0)):
        base[key] = float(base.get(key, default)) + delta
    return {**preset, "baseVals": base}


def hidden_signal(fg: np.ndarray, bg: np.ndarray) -> float:
    """The synthetic truth in [0, 1]: a pair is brighter (better) with a brighter fg gamma and bg, and a
    slower fg decay; a few features decide it, as brightness does in real presets."""
    gamma, decay = PRESET_FEATURES.index("gammaadj"), PRESET_FEATURES.index("decay")
    return float(0.5 * fg[gamma] + 0.3 * bg[gamma] + 0.2 * fg[decay])


def stats_for(quality_signal: float, rng: np.random.Generator) -> dict:
    """Statistics of a pair whose brightness follows `quality_signal` in [0, 1]; the rest look healthy."""
    # 0.01..0.17 spans the measured quality's darkness ramp, so the target follows the signal throughout
    stats = {"lumaMean": 0.01 + 0.16 * quality_signal, "lumaMin": 0.01, "contrast": 0.2, "colourfulness": 0.3,
             "motionMean": 0.03, "motionP90": 0.06, "flicker": 0.01, "blackFrac": 0.1, "whiteFrac": 0.0,
             "audioCorr": 0.4, "fgShare": 0.5, "bgShare": 0.5}
    stats["lumaMean"] += float(rng.normal(0, 0.005))
    return {name: float(stats[name]) for name in STAT_FIELDS}


def sampled_row(pack: str, pair: int, fg: Path, bg: Path, stats: dict, status: str = "ok", key: str = "",
                thumb: str = "", errors: list[str] | None = None) -> dict:
    """One eval row per the contract for the pair's preset files as they are now; `key` is its content
    key (default: a made-up one, for tests that never compare keys)."""
    ok = status == "ok"
    too_dark = ok and stats["lumaMean"] < SampleSettings.min_luma
    return validate_eval_row({
        "tMs": 1000 * pair, "pack": pack, "pair": pair, "presetFgId": fg.name, "presetBgId": bg.name,
        "vizAvgLuma": stats.get("lumaMean", 0.0), "vizAvgFrameDelta": stats.get("motionMean", 0.0),
        "pmAvgLumaFg": 0.2, "pmAvgLumaBg": 0.2, "audioRms": 0.2, "audioPeak": 0.8,
        "pageErrorsSinceLast": 0, "consoleErrorsSinceLast": 0,
        "okHeuristic": ok and not too_dark, "reasons": ["too-dark"] if too_dark else [] if ok else [status],
        "contentKey": key or f"synthetic-{pack}-{pair}", "fgHash": preset_identity(fg, KEY_VERSIONS),
        "bgHash": preset_identity(bg, KEY_VERSIONS),
        "status": status, "render": {"width": 64, "height": 64, "frames": 16}, "engine": "synthetic",
        "renderer": "SwiftShader", "errors": errors if errors is not None else [] if ok else ["synthetic failure"],
        "timings": {"loadMs": 0, "renderMs": 0, "totalMs": 100}, "stats": stats, "attempts": 1,
        "sampledAt": now_iso(), "thumb": thumb,
    })


def write_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        for row in rows:
            append_jsonl(handle, row)


def png_bytes(pixels: np.ndarray) -> bytes:
    """Encode an (h, w, 3) uint8 array as a PNG (no imaging library needed)."""
    height, width, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def write_quality(ws: Workspace, pack: str, scores: list[float], quality_pack: str, manifest=None) -> None:
    values = np.array(scores)
    quality = {
        "version": "v0", "pack": quality_pack, "generatedAt": now_iso(),
        "pairs": [{"pair": i, "quality01": q} for i, q in enumerate(scores)],
        "qualityStats": {"min": float(values.min()), "p50": float(np.percentile(values, 50)),
                         "p95": float(np.percentile(values, 95)), "max": float(values.max()),
                         "std": float(values.std()), "mean": float(values.mean())},
        "stats": {"missingFiles": 0},
    }
    write_json(ws.quality_path(pack), validate_quality(quality, manifest=manifest))


def write_eval(ws: Workspace, pack: str, manifest: Manifest, scores: list[float]) -> list[dict]:
    """eval.jsonl with one row per pair (the last one failed to compile), thumbnails, and meta.json."""
    thumbs = ws.thumbs_dir(pack)
    thumbs.mkdir(parents=True, exist_ok=True)
    rows = []
    for entry, score in zip(manifest.pairs, scores):
        failed = entry.pair == len(manifest.pairs) - 1
        y, x = np.mgrid[0:64, 0:64]
        hue = entry.pair / len(manifest.pairs)
        pixels = np.stack([(np.sin(x / 6 + hue * 6) + 1) * 127 * score,
                           (np.cos(y / 5 + hue * 3) + 1) * 100,
                           (np.sin((x + y) / 9) + 1) * 120], axis=-1).astype(np.uint8)
        thumb = f"thumbs/{entry.pair:05d}.png"
        if not failed:
            (ws.eval_dir(pack) / thumb).write_bytes(png_bytes(pixels))
        stats = {name: round(0.1 + 0.8 * score, 3) for name in STAT_FIELDS}
        fg, bg = (ws.public / url.lstrip("/") for url in (entry.fgUrl, entry.bgUrl))
        row = sampled_row(
            pack, entry.pair, fg, bg, {} if failed else stats, "shader-failed" if failed else "ok",
            thumb="" if failed else thumb,
            errors=["fg load: shader program failed to link: 'texsize_noise' : undeclared identifier"] if failed else [])
        if not failed and score <= 0.2:  # the worst pairs look too dark to the heuristic
            row.update(okHeuristic=False, reasons=["too-dark"])
        rows.append(row)
    write_rows(ws.eval_path(pack), rows)
    meta = {
        "kind": META_KIND, "startedAt": now_iso(), "finishedAt": now_iso(), "settings": {},
        "progress": {pack: {"visited": len(rows), "target": len(rows), "done": True}},
        "audio": {"mode": "click", "audioFile": ""},
        "runtime": {"gpuMode": "off", "headed": False, "requireGpu": False,
                    "webgl": {"vendor": "Google", "renderer": "SwiftShader"}},
        "errors": [],
    }
    write_json(ws.meta_path(pack), validate_meta(meta))
    return rows


def write_training_report(ws: Workspace, pack: str = "demo", epochs: int = 12) -> dict:
    """A trainer's report as `stages.train` writes it: falling losses, k-fold metrics, elite AUC."""
    records = []
    for epoch in range(1, epochs + 1):
        decay = float(np.exp(-epoch / 4))
        loss = {"elite": round(0.45 + 0.2 * decay, 5), "eval": round(0.5 + 0.15 * decay, 5),
                "neg": round(0.2 + 0.4 * decay, 5)}
        loss["total"] = round(float(np.mean(list(loss.values()))), 5)
        records.append({"epoch": epoch, "loss": loss, "drawn": {"elite": 64, "eval": 64, "neg": 128},
                        "validationLoss": round(0.52 + 0.1 * decay, 5)})
    metric = {"value": 0.61, "lo": 0.42, "hi": 0.77}
    report = {
        "kind": TRAIN_REPORT_KIND, "trainedAt": now_iso(), "trainSeconds": 3.5, "device": "cpu",
        "deviceSnapshot": {"before": None, "after": None}, "settings": {"min_quality_std": 0.03, "epochs": epochs},
        "featureCount": 48,
        "sources": {name: {"count": 8, "share": share, "lossWeight": weight, "note": ""}
                    for name, share, weight in (("elite", 0.25, 1.0), ("eval", 0.25, 0.35), ("neg", 0.5, 0.2))},
        "epochs": records,
        "crossValidation": {
            "folds": 2, "seed": 0, "pairs": 8, "chosenEpochs": epochs,
            "validationLoss": [record["validationLoss"] for record in records],
            "trainingLoss": [record["loss"]["total"] for record in records],
            "perFold": [{"fold": fold, "pairs": 4, "trained": {"eval": 4}, "validationLoss": [], "trainingLoss": [],
                         "seconds": 0.5, "net": 0.6, "ridge": 0.4} for fold in range(2)],
            "net": {"spearman": metric, "pearson": {"value": 0.55, "lo": 0.3, "hi": 0.7}},
            "ridge": {"spearman": {"value": 0.4, "lo": 0.1, "hi": 0.6}, "pearson": None},
            "netMinusRidge": {"spearman": {"value": 0.21, "lo": -0.1, "hi": 0.5}},
            "eliteAuc": None,
            "outOfFold": [{"key": f"{pack}:{pair}", "fold": pair % 2, "measured": round(pair / 8, 3),
                           "net": round(1 - pair / 8, 3), "ridge": 0.5} for pair in range(8)],
            "disagreements": [f"{pack}:{pair}" for pair in (0, 7, 1, 6)]},
        "eliteAuc": {"value": 0.83, "lo": 0.6, "hi": 0.95, "positives": 3, "negatives": 2, "heldOut": False},
        "packs": {pack: {"rows": 8, "okRows": 7, "failedRows": 1, "staleRows": 0, "pairs": 8}},
    }
    write_json(ws.train_report_path, validate_train_report(report))
    return report
