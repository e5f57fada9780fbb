"""A tiny real pack for the player, verify and report tests.

Writes butterchurn JSON presets (copied from the pinned butterchurn-presets package) as fg/bg files of a
pack, its manifest, a quality file, eval rows with thumbnails and meta.json, all through `stages.contracts`.
"""
from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import numpy as np

from stages.core.contracts import (
    MANIFEST_NAME,
    META_KIND,
    STAT_FIELDS,
    TRAIN_REPORT_KIND,
    Manifest,
    ManifestPair,
    append_jsonl,
    now_iso,
    validate_eval_row,
    validate_meta,
    validate_quality,
    validate_train_report,
    write_json,
)
from stages.core.workspace import NODE_MODULES_DIR, Workspace

CONVERTED = NODE_MODULES_DIR / "butterchurn-presets" / "presets" / "converted"
# Presets that load quickly and draw bright, moving pictures in headless Chromium.
PRESETS = [
    "Flexi - mindblob [shiny mix].json",
    "Geiss - Spiral Artifact.json",
    "Martin - journey into space.json",
    "Geiss - Hurricane.json",
    "Rovastar - Hyperspace.json",
    "Flexi - alien fish pond.json",
    "Rovastar - Explosive Minds.json",
    "Martin - liquid arrows.json",
]


def png_bytes(pixels: np.ndarray) -> bytes:
    """Encode an (h, w, 3) uint8 array as a PNG (no imaging library needed)."""
    height, width, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def make_pack(ws: Workspace, pack: str = "demo", pairs: int = 8, quality_pack: str | None = None,
              with_eval: bool = True) -> Manifest:
    """A pack of `pairs` fg/bg pairs whose quality rises with the pair number (pair 0 worst)."""
    pack_dir = ws.pack_dir(pack)
    for layer in ("fg", "bg"):
        (pack_dir / layer).mkdir(parents=True, exist_ok=True)
    entries = []
    for index in range(pairs):
        fg = PRESETS[index % len(PRESETS)]
        bg = PRESETS[(index + 3) % len(PRESETS)]
        fg_name = f"coupled_{index:05d} [{Path(fg).stem[:12]}]_fg.json"
        bg_name = f"coupled_{index:05d} [{Path(bg).stem[:12]}]_bg.json"
        shutil.copyfile(CONVERTED / fg, pack_dir / "fg" / fg_name)
        shutil.copyfile(CONVERTED / bg, pack_dir / "bg" / bg_name)
        entries.append(ManifestPair(index, f"/presets/{pack}/fg/{fg_name}", f"/presets/{pack}/bg/{bg_name}"))
    manifest = Manifest(pack_dir / MANIFEST_NAME, pack, entries)
    write_json(manifest.path, manifest.to_json())
    scores = [round(0.05 + 0.9 * i / max(1, pairs - 1), 4) for i in range(pairs)]
    write_quality(ws, pack, scores, quality_pack or pack, manifest if quality_pack is None else None)
    if with_eval:
        write_eval(ws, pack, manifest, scores)
    return manifest


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


def write_eval(ws: Workspace, pack: str, manifest: Manifest, scores: list[float]) -> None:
    """eval.jsonl with one row per pair (the last one failed to load), thumbnails, and meta.json."""
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
        row = {
            "tMs": 1000 * entry.pair, "pack": pack, "pair": entry.pair,
            "presetFgId": Path(entry.fgUrl).name, "presetBgId": Path(entry.bgUrl).name,
            "vizAvgLuma": stats["lumaMean"], "vizAvgFrameDelta": stats["motionMean"],
            "pmAvgLumaFg": 0.3, "pmAvgLumaBg": 0.2, "audioRms": 0.2, "audioPeak": 0.8,
            "pageErrorsSinceLast": 0, "consoleErrorsSinceLast": 0,
            "okHeuristic": not failed and score > 0.2, "reasons": ["too-dark"] if score <= 0.2 else [],
            "contentKey": f"key{entry.pair}", "fgHash": "f" * 16, "bgHash": "b" * 16,
            "status": "shader-failed" if failed else "ok", "render": {"width": 64, "height": 64},
            "engine": "test", "renderer": "SwiftShader",
            "errors": ["fg load: shader program failed to link: 'texsize_noise' : undeclared identifier"]
            if failed else [],
            "timings": {"totalMs": 100}, "stats": {} if failed else stats, "attempts": 1,
            "sampledAt": now_iso(), "thumb": "" if failed else thumb,
        }
        rows.append(validate_eval_row(row))
    with ws.eval_path(pack).open("wb") as handle:
        for row in rows:
            append_jsonl(handle, row)
    meta = {
        "kind": META_KIND, "startedAt": now_iso(), "finishedAt": now_iso(), "settings": {},
        "progress": {pack: {"visited": len(rows), "target": len(rows), "done": True}},
        "audio": {"mode": "click", "audioFile": ""},
        "runtime": {"gpuMode": "off", "headed": False, "requireGpu": False,
                    "webgl": {"vendor": "Google", "renderer": "SwiftShader"}},
        "errors": [],
    }
    write_json(ws.meta_path(pack), validate_meta(meta))


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
