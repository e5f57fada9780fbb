"""Preset files -> butterchurn-3 preset objects; pack manifests from folders; screening a preset folder.

In: a preset file of a pack: `.json` (butterchurn's converted format) or `.milk` (MilkDrop's own format,
read by `stages.milk`, warp/comp shaders translated by `stages.hlsl`).
Out: the dict butterchurn's `loadPreset` takes (`version`, `baseVals`, `*_eqs_eel`, `shapes`, `waves`,
`warp`, `comp`). A `.milk` conversion is cached under the workspace state dir, keyed by the file's content
and the reader/translator versions: an edited file reconverts, an unchanged one never does, and a failed
conversion is a cached outcome too. A preset that cannot be used raises `PresetError`, whose `status` is
`read-failed` or `translate-failed`. With `allow_degraded`, a shader that does not translate is replaced by
butterchurn's default for that stage and the preset carries `cqDegraded` (the replaced stages and why).

Also here:
- `convert_pack`: a pack's .milk presets converted ahead of sampling, for a doit task whose file_dep is
  `pack_preset_paths` and whose target is `conversion_report_path`.
- `manifest_from_folder`: a pack's `pairs-manifest.v0.json` from its `fg/` and `bg/` folders by the seed's
  naming (`coupled_<pair>_<stamp>_fg.milk` / `_bg.milk`), unmatched files reported; nothing outside the
  pack folder is looked at.
- `screen` and `python -m stages.presets screen DIR --out report.json`: every preset under DIR (that folder
  only, recursively) converted and drawn for a few frames in headless Chromium, with one status each:
  ok | degraded | read-failed | translate-failed | shader-failed | eel-error | timeout | black.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from stages.contracts import (MANIFEST_NAME, QUALITY_NAME, Manifest, ManifestPair, file_hash, load_manifest,
                              read_json, resolve_url, value_hash, write_json)
from stages.errors import ContractError, CqError
from stages.hlsl import TRANSLATOR_VERSION, HlslError, translate
from stages.milk import MilkPreset, MilkReadError, parse_milk, decode_milk

PRESET_SUFFIXES = (".json", ".milk")
# Part of the conversion cache key, with the translator's version: bump when milk_to_butterchurn changes.
CONVERTER_VERSION = "milk-1"
CACHE_DIR_NAME = "milk-cache"
BLACK_LUMA = 0.02
# The other layer of a screening pair: draws nothing, costs little, so the pair's fg is the preset alone.
QUIET_LAYER = {"version": 2, "baseVals": {"decay": 0.0, "wave_a": 0.0}, "init_eqs_eel": "", "frame_eqs_eel": "",
               "pixel_eqs_eel": "", "warp": "", "comp": "",
               "shapes": [{"baseVals": {"enabled": 0}, "init_eqs_eel": "", "frame_eqs_eel": ""}] * 4,
               "waves": [{"baseVals": {"enabled": 0}, "init_eqs_eel": "", "frame_eqs_eel": "",
                          "point_eqs_eel": ""}] * 4}
SCREEN_STATUSES = ("ok", "degraded", "read-failed", "translate-failed", "shader-failed", "eel-error",
                   "timeout", "black")


class PresetError(ContractError):
    """A preset that cannot be used; `status` is the eval-row status it stands for."""

    def __init__(self, where, status: str, problem: str, advice: str = ""):
        self.status = status
        super().__init__(where, problem, advice)


# ------------------------------------------------------------------------------------ conversion


def milk_to_butterchurn(milk: MilkPreset, where, allow_degraded: bool = False) -> dict:
    """A read .milk preset as butterchurn's preset object, its shaders translated to GLSL."""
    preset = {
        "version": milk.eel_version,
        "baseVals": dict(milk.base_vals),
        "init_eqs_eel": milk.init_eel,
        "frame_eqs_eel": milk.frame_eel,
        "pixel_eqs_eel": milk.pixel_eel,
        "shapes": [dict(shape) for shape in milk.shapes],
        "waves": [dict(wave) for wave in milk.waves],
    }
    degraded = []
    for stage in ("warp", "comp"):
        try:
            preset[stage] = translate(getattr(milk, stage), stage).text
        except HlslError as error:
            if not allow_degraded:
                raise PresetError(where, "translate-failed", f"{stage} shader: {error}",
                                  "fix the shader, or allow degraded presets (butterchurn's default shader)") from None
            preset[stage] = ""
            degraded.append(f"{stage} shader replaced by butterchurn's default: {error}")
    if degraded:
        preset["cqDegraded"] = degraded
    return preset


@dataclass
class Conversion:
    """The outcome of converting one preset file (from the cache or fresh)."""

    preset: dict | None
    status: str            # ok | read-failed | translate-failed
    message: str
    translate_ms: float    # time spent reading + translating (0 when it came from the cache)
    cached: bool


def preset_identity(path: Path) -> str:
    """What a preset file renders as, as a hash: its bytes, plus the converter's version for .milk files
    (a better translator changes the picture without changing the file). Rows record it as fgHash/bgHash."""
    path = Path(path)
    digest = file_hash(path)
    if path.suffix.lower() == ".milk":
        digest = value_hash([digest, CONVERTER_VERSION, TRANSLATOR_VERSION])
    return digest


def default_cache_dir() -> Path:
    from stages.workspace import Workspace

    return Workspace.from_environment().state_dir / CACHE_DIR_NAME


def convert_milk(path: Path, cache_dir: Path | None = None) -> Conversion:
    """Convert one .milk file through the content-keyed cache (both outcomes are cached)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        return Conversion(None, "read-failed", f"{path}: cannot read: {error.strerror}", 0.0, False)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = value_hash({"content": hashlib.sha256(data).hexdigest(), "translator": TRANSLATOR_VERSION,
                      "converter": CONVERTER_VERSION})
    entry_path = cache_dir / f"{key}.json"
    if entry_path.is_file():
        try:
            entry = read_json(entry_path)
            return Conversion(entry.get("preset"), entry["status"], entry["message"], 0.0, True)
        except (ContractError, KeyError, AttributeError):
            pass   # a damaged cache entry is converted again and overwritten
    start = time.perf_counter()
    try:
        if not data.strip():
            raise MilkReadError(path, "file is empty", "re-export the preset from MilkDrop")
        milk = parse_milk(decode_milk(data, path), path)
        preset = milk_to_butterchurn(milk, path, allow_degraded=False)
        entry = {"status": "ok", "message": "; ".join(milk.warnings), "preset": preset}
    except MilkReadError as error:
        entry = {"status": "read-failed", "message": str(error), "preset": None}
    except PresetError as error:
        entry = {"status": error.status, "message": str(error), "preset": None}
    elapsed = (time.perf_counter() - start) * 1000
    write_json(entry_path, entry, pretty=False)
    return Conversion(entry["preset"], entry["status"], entry["message"], elapsed, False)


def load_preset(path: Path, cache_dir: Path | None = None, allow_degraded: bool = False) -> dict:
    """Read one preset file as a butterchurn-3 preset object; errors name the file.

    `.milk` files go through the conversion cache (`cache_dir`, default: the workspace's state dir)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".milk":
        conversion = convert_milk(path, cache_dir)
        if conversion.status == "ok":
            return conversion.preset
        if conversion.status == "translate-failed" and allow_degraded:
            milk = parse_milk(decode_milk(path.read_bytes(), path), path)
            return milk_to_butterchurn(milk, path, allow_degraded=True)
        raise PresetError(path, conversion.status, conversion.message.removeprefix(f"{path}: "))
    if suffix != ".json":
        raise PresetError(path, "read-failed", f"preset type {path.suffix!r} is not supported",
                          "use .milk or butterchurn .json presets")
    try:
        preset = read_json(path)
    except ContractError as error:
        raise PresetError(path, "read-failed", error.problem, error.advice) from None
    if not isinstance(preset, dict) or not isinstance(preset.get("baseVals"), dict):
        raise PresetError(path, "read-failed", "not a butterchurn preset (no baseVals object)")
    return preset


def pack_preset_paths(workspace, pack: str) -> list[Path]:
    """The existing preset files a pack's manifest names, once each (a conversion task's file_dep)."""
    manifest = load_manifest(workspace.manifest_path(pack))
    paths = {resolve_url(workspace.public, url, manifest.path) for entry in manifest.pairs
             for url in (entry.fgUrl, entry.bgUrl)}
    return sorted(path for path in paths if path.is_file())


def conversion_report_path(workspace, pack: str) -> Path:
    return workspace.eval_dir(pack) / "conversion.json"


def convert_pack(workspace, pack: str) -> dict:
    """Convert every .milk preset of a pack through the cache and write the pack's conversion report.

    Only files whose content (or the translator) changed are converted again; the report lists each
    preset's status (ok | read-failed | translate-failed) and message, and how many came from the cache."""
    from stages.progress import Progress

    cache_dir = workspace.state_dir / CACHE_DIR_NAME
    paths = [path for path in pack_preset_paths(workspace, pack) if path.suffix.lower() == ".milk"]
    progress = Progress(f"convert {pack}", total=len(paths), unit="presets")
    presets, fresh = [], 0
    for path in paths:
        conversion = convert_milk(path, cache_dir)
        fresh += not conversion.cached
        presets.append({"file": path.relative_to(workspace.public).as_posix(), "status": conversion.status,
                        "message": conversion.message})
        progress.update()
    progress.close()
    by_status: dict[str, int] = {}
    for record in presets:
        by_status[record["status"]] = by_status.get(record["status"], 0) + 1
    report = {"pack": pack, "translator": TRANSLATOR_VERSION, "total": len(presets), "converted": fresh,
              "cached": len(presets) - fresh, "by_status": by_status, "presets": presets}
    write_json(conversion_report_path(workspace, pack), report)
    return report


# -------------------------------------------------------------------------------- pack manifests

_SEED_NAME = re.compile(r"^coupled_(\d+)(.*)_(fg|bg)\.(milk|json)$", re.IGNORECASE)


def manifest_from_folder(pack_dir: Path, pack: str | None = None) -> tuple[Manifest, list[str]]:
    """Pairs from `<pack_dir>/fg` and `<pack_dir>/bg` (those two folders only, not recursive).

    A pair is an fg file and a bg file with the same pair number in the seed's naming. Returns the manifest
    and one line per file that is not part of a pair (wrong name, no partner, or a duplicate number)."""
    pack_dir = Path(pack_dir)
    pack = pack or pack_dir.name
    found: dict[str, dict[int, list[str]]] = {"fg": {}, "bg": {}}
    unmatched: list[str] = []
    for side in ("fg", "bg"):
        folder = pack_dir / side
        if not folder.is_dir():
            raise ContractError(folder, "folder not found", f"put the pack's {side} presets in {folder}")
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if not entry.is_file() or Path(entry.name).suffix.lower() not in PRESET_SUFFIXES:
                continue
            match = _SEED_NAME.match(entry.name)
            if not match or match.group(3).lower() != side:
                unmatched.append(f"{side}/{entry.name}: name is not coupled_<pair>_<stamp>_{side}.milk")
                continue
            found[side].setdefault(int(match.group(1)), []).append(entry.name)
    pairs = []
    for number in sorted(set(found["fg"]) | set(found["bg"])):
        fg, bg = found["fg"].get(number, []), found["bg"].get(number, [])
        if len(fg) == 1 and len(bg) == 1:
            pairs.append(ManifestPair(number, f"/presets/{pack}/fg/{fg[0]}", f"/presets/{pack}/bg/{bg[0]}"))
            continue
        for side, names, other in (("fg", fg, bg), ("bg", bg, fg)):
            for name in names:
                reason = "no partner" if not other else f"pair {number} has {len(fg)} fg and {len(bg)} bg files"
                unmatched.append(f"{side}/{name}: {reason}")
    return Manifest(pack_dir / MANIFEST_NAME, pack, pairs), unmatched


def write_manifest_from_folder(pack_dir: Path, pack: str | None = None) -> list[str]:
    """Write `<pack_dir>/pairs-manifest.v0.json` from the folders; returns the unmatched files."""
    manifest, unmatched = manifest_from_folder(pack_dir, pack)
    if not manifest.pairs:
        raise ContractError(pack_dir, "no fg/bg pairs found",
                            "name presets coupled_<pair>_<stamp>_fg.milk and ..._bg.milk in fg/ and bg/")
    write_json(Path(pack_dir) / MANIFEST_NAME, manifest.to_json())
    return unmatched


# ------------------------------------------------------------------------------------- screening


def preset_files(folder: Path) -> list[Path]:
    """Preset files under `folder`, recursively, never leaving it (links are not followed)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CqError(f"{folder}: not a folder (point the screen at a folder of presets)")
    files = []
    for root, dirs, names in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            path = Path(root) / name
            if path.suffix.lower() in PRESET_SUFFIXES and name not in (MANIFEST_NAME, QUALITY_NAME) \
                    and not path.is_symlink():
                files.append(path)
    return files


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def _without(preset: dict, stages: tuple[str, ...]) -> dict:
    return {**preset, **{stage: "" for stage in stages}}


def screen(folder: Path, out: Path | None = None, frames: int = 20, size: int = 64, workers: int = 1,
           allow_degraded: bool = False, timeout_s: float = 30.0, chromium: str = "",
           cache_dir: Path | None = None, render: bool = True, gpu_mode: str = "off") -> dict:
    """Convert and draw every preset under `folder`; returns (and writes to `out`) the screening report."""
    from stages.progress import Progress

    folder = Path(folder)
    files = preset_files(folder)
    records: list[dict] = []
    loaded: list[tuple[dict, dict]] = []   # (record, preset) of presets to draw
    translate_ms: list[float] = []
    for path in files:
        record = {"file": str(path.relative_to(folder)), "status": "", "message": ""}
        records.append(record)
        if path.suffix.lower() == ".milk":
            conversion = convert_milk(path, cache_dir)
            if not conversion.cached:
                translate_ms.append(conversion.translate_ms)
                record["translateMs"] = round(conversion.translate_ms, 2)
            status, message, preset = conversion.status, conversion.message, conversion.preset
            if status == "translate-failed" and allow_degraded:
                preset = load_preset(path, cache_dir, allow_degraded=True)
                status, message = "degraded", "; ".join(preset.get("cqDegraded", []))
        else:
            try:
                preset, status, message = load_preset(path), "ok", ""
            except PresetError as error:
                preset, status, message = None, error.status, str(error)
        record["status"], record["message"] = status, message
        if preset is not None:
            loaded.append((record, preset))
    renderer = ""
    if render and loaded:
        renderer = _draw(loaded, frames, size, workers, allow_degraded, timeout_s, chromium, cache_dir, Progress,
                         gpu_mode)
    by_status: dict[str, int] = {}
    for record in records:
        by_status[record["status"]] = by_status.get(record["status"], 0) + 1
    report = {
        "folder": str(folder), "total": len(records), "ok": by_status.get("ok", 0), "by_status": by_status,
        "translateMs": {"median": round(statistics.median(translate_ms), 2) if translate_ms else 0.0,
                        "p90": round(_percentile(translate_ms, 0.9), 2), "count": len(translate_ms)},
        "render": {"frames": frames, "size": size, "renderer": renderer, "drawn": render},
        "presets": records,
    }
    if out is not None:
        write_json(Path(out), report)
    return report


def _draw(loaded: list[tuple[dict, dict]], frames: int, size: int, workers: int, allow_degraded: bool,
          timeout_s: float, chromium: str, cache_dir: Path | None, progress_class, gpu_mode: str = "off") -> str:
    """Render each preset (as the fg of a pair over a quiet bg) and set its record's status from what it drew."""
    from stages.audio import load_audio
    from stages.browser import kill_leftovers
    from stages.render import PairJob, RenderPool
    from stages.settings import SampleSettings

    settings = SampleSettings(width=size, height=size, frames=frames, readback=min(size, 32), workers=workers,
                              pair_timeout_s=timeout_s, chromium=chromium, gpu_mode=gpu_mode).validate()
    state_dir = (Path(cache_dir) if cache_dir is not None else default_cache_dir()).parent
    kill_leftovers(state_dir)   # browsers an interrupted screen of this workspace left behind
    audio = load_audio(settings)
    jobs = [PairJob(index, preset, QUIET_LAYER, record["file"], "quiet")
            for index, (record, preset) in enumerate(loaded)]
    progress = progress_class("screen", total=len(jobs), unit="presets")
    retry: list[PairJob] = []
    with RenderPool(settings, audio.frames, state_dir) as pool:
        for result in pool.render(jobs):
            record = loaded[result.job.pair][0]
            _classify(record, result)
            if record["status"] == "shader-failed":
                retry.append(result.job)
            progress.update()
        fixed = _degradable(pool, [(loaded[job.pair][0]["file"], job.fg) for job in retry])
        for job in retry:
            record = loaded[job.pair][0]
            stages = fixed.get(record["file"])
            if stages is None:
                continue
            note = f"{stages} shader replaced by butterchurn's default draws"
            if allow_degraded:
                record["status"] = "degraded"
                record["message"] = f"{note}; {record['message']}"
            else:
                record["message"] += f" ({note}: allow degraded presets to use it)"
        progress.close()
        return pool.renderer


def _degradable(pool, failed: list[tuple[str, dict]]) -> dict[str, str]:
    """Which shader broke each failed preset: the stage(s) whose replacement by butterchurn's default draws.

    Each stage alone first (only stages the preset has), then both; returns {file: "warp" | "comp" | ...}."""
    from stages.render import PairJob

    fixed: dict[str, str] = {}
    for round_stages in ((("warp",), ("comp",)), (("warp", "comp"),)):
        variants, owners = [], []
        for name, preset in failed:
            if name in fixed:
                continue
            for stages in round_stages:
                if all(preset.get(stage) for stage in stages):
                    variant = _without(preset, stages)
                    variants.append(PairJob(len(variants), variant, QUIET_LAYER, name, "/".join(stages)))
                    owners.append(name)
        for result in pool.render(variants):
            if result.status == "ok":
                fixed.setdefault(owners[result.job.pair], result.job.bg_id)
    return fixed


def _classify(record: dict, result) -> None:
    errors = "; ".join(error.splitlines()[0] if len(error) > 300 else error for error in result.errors)
    if result.status == "ok":
        lumas = result.series.get("fgLuma") or [0.0]
        record["luma"] = round(sum(lumas) / len(lumas), 4)
        brightest = max(lumas)
        if brightest < BLACK_LUMA:
            record["status"], record["message"] = "black", f"max mean luma {brightest:.4f} over the frames"
        elif record["status"] != "degraded":
            record["status"] = "ok"
        return
    status = result.status if result.status in SCREEN_STATUSES else "timeout" if result.status == "crashed" \
        else result.status
    record["status"] = status
    record["message"] = errors[:2000]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.presets", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    screen_parser = commands.add_parser("screen", help="convert and draw every preset under a folder")
    screen_parser.add_argument("folder", type=Path)
    screen_parser.add_argument("--out", type=Path, required=True, help="where the JSON report goes")
    screen_parser.add_argument("--frames", type=int, default=20)
    screen_parser.add_argument("--size", type=int, default=64)
    screen_parser.add_argument("--workers", type=int, default=1)
    screen_parser.add_argument("--timeout", type=float, default=30.0, help="seconds per preset")
    screen_parser.add_argument("--allow-degraded", action="store_true",
                               help="replace failing shaders by butterchurn's default (status degraded)")
    screen_parser.add_argument("--chromium", default="", help="path of a Chromium to use")
    screen_parser.add_argument("--no-render", action="store_true", help="convert only, do not draw")
    screen_parser.add_argument("--gpu-mode", default="off", help="off | safe | require (as for sampling)")
    manifest_parser = commands.add_parser("manifest", help="write a pack's pairs manifest from fg/ and bg/")
    manifest_parser.add_argument("pack_dir", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "manifest":
            unmatched = write_manifest_from_folder(args.pack_dir)
            for line in unmatched:
                print(f"unmatched: {line}")
            print(f"wrote {args.pack_dir / MANIFEST_NAME}")
            return 0
        report = screen(args.folder, args.out, args.frames, args.size, args.workers, args.allow_degraded,
                        args.timeout, args.chromium, render=not args.no_render, gpu_mode=args.gpu_mode)
    except CqError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{status} {count}" for status, count in sorted(report["by_status"].items()))
    print(f"{report['ok']}/{report['total']} ok ({counts}); translation median {report['translateMs']['median']} ms, "
          f"p90 {report['translateMs']['p90']} ms; report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
