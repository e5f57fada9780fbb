"""A synthetic pack with eval rows, for the trainer's tests and benchmarks (no browser involved).

In: a `Workspace`, a pack name, a pair count, and optionally real preset files to build the pairs from.
Out: `public/presets/<pack>/{fg,bg}/*.json` + `pairs-manifest.v0.json`, and one shard of eval rows whose
statistics follow a hidden function of a few of the pair's features (`hidden_signal`) (so a model can learn it and a test can
tell learning from noise); a few pairs get failed-render rows.

Pair i is one base preset nudged by +/- a small delta on zoom, rot and warp for fg and bg, like the coupled
packs: preset i of `presets` (cycling), or base values drawn at random.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.contracts import STAT_FIELDS, append_jsonl, now_iso, read_json, write_json
from ..core.keys import preset_identity
from ..core.workspace import Workspace
from ..learn.features import PRESET_FEATURES, preset_features

FAILED_SHARE = 0.05


def _random_preset(rng: np.random.Generator) -> dict:
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


def _nudged(preset: dict, delta: float) -> dict:
    base = dict(preset.get("baseVals", {}))
    for key, default in (("zoom", 1.0), ("rot", 0.0), ("warp", 1.0)):
        base[key] = float(base.get(key, default)) + delta
    return {**preset, "baseVals": base}


def hidden_signal(fg: np.ndarray, bg: np.ndarray) -> float:
    """The synthetic truth in [0, 1]: a pair is brighter (better) with a brighter fg gamma and bg, and
    a slower fg decay; a few features decide it, as brightness does in real presets."""
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


def eval_row(pack: str, pair: int, fg: Path, bg: Path, stats: dict | None, status: str = "ok") -> dict:
    return {
        "tMs": 0, "pack": pack, "pair": pair, "presetFgId": fg.name, "presetBgId": bg.name,
        "vizAvgLuma": stats["lumaMean"] if stats else 0.0, "vizAvgFrameDelta": stats["motionMean"] if stats else 0.0,
        "pmAvgLumaFg": 0.2, "pmAvgLumaBg": 0.2, "audioRms": 0.2, "audioPeak": 0.8,
        "pageErrorsSinceLast": 0, "consoleErrorsSinceLast": 0, "okHeuristic": status == "ok",
        "reasons": [] if status == "ok" else [status],
        "contentKey": f"synthetic-{pair}", "fgHash": preset_identity(fg), "bgHash": preset_identity(bg), "status": status,
        "render": {"width": 64, "height": 64, "frames": 16}, "engine": "synthetic", "renderer": "none",
        "errors": [] if status == "ok" else ["synthetic failure"],
        "timings": {"loadMs": 0, "renderMs": 0, "totalMs": 0}, "stats": stats or {}, "attempts": 1,
        "sampledAt": now_iso(), "thumb": "",
    }


def make_pack(workspace: Workspace, pack: str, pairs: int, seed: int = 0, presets: list[Path] | None = None,
              sampled: float = 1.0) -> list[dict]:
    """Write a pack of `pairs` pairs and eval rows for a `sampled` share of them; return the rows."""
    rng = np.random.default_rng(seed)
    pack_dir = workspace.pack_dir(pack)
    entries, rows = [], []
    for pair in range(pairs):
        source = read_json(presets[pair % len(presets)]) if presets else _random_preset(rng)
        fg_preset, bg_preset = _nudged(source, 0.01), _nudged(source, -0.01)
        names = [f"coupled_{pair:05d}_{part}.json" for part in ("fg", "bg")]
        fg_path, bg_path = pack_dir / "fg" / names[0], pack_dir / "bg" / names[1]
        write_json(fg_path, fg_preset, pretty=False)
        write_json(bg_path, bg_preset, pretty=False)
        entries.append({"pair": pair, "fgUrl": f"/presets/{pack}/fg/{names[0]}",
                        "bgUrl": f"/presets/{pack}/bg/{names[1]}"})
        if rng.random() >= sampled:
            continue
        signal = hidden_signal(preset_features(fg_preset), preset_features(bg_preset))
        if rng.random() < FAILED_SHARE:
            rows.append(eval_row(pack, pair, fg_path, bg_path, None, "shader-failed"))
        else:
            rows.append(eval_row(pack, pair, fg_path, bg_path, stats_for(float(signal), rng)))
    write_json(workspace.manifest_path(pack), {"version": "v0", "generatedAt": now_iso(), "pack": pack,
                                               "pairs": entries})
    shard = workspace.shard_path(pack, 0)
    shard.parent.mkdir(parents=True, exist_ok=True)
    with shard.open("wb") as handle:
        for row in rows:
            append_jsonl(handle, row)
    return rows
