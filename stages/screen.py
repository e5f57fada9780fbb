"""Stage `screen`: every preset under a folder converted and drawn for a few frames in headless Chromium.

In: a folder of presets (that folder only, recursively; links are not followed). Out: a report with one
status per preset: ok | degraded | read-failed | translate-failed | shader-failed | eel-error | timeout |
dark-start | black. A preset black over the first frames gets a longer look (`DARK_LOOK_FRAMES`): `dark-start`
when it draws later (dark until the music builds, a slow fade-in), `black` when it stays black, with a message
that says whether it draws once its warp/comp shaders are replaced by butterchurn's defaults (its own shader
keeps the frame black) or not even then (its equations draw nothing with this audio).
"""
from __future__ import annotations

import os
import statistics
from pathlib import Path

from .core.contracts import MANIFEST_NAME, QUALITY_NAME, write_json
from .core.errors import CqError
from .presets.conversion import PRESET_SUFFIXES, PresetError, convert_milk, default_cache_dir, load_preset
from .render.pool import PairJob

BLACK_LUMA = 0.02
# The other layer of a screening pair: draws nothing, costs little, so the pair's fg is the preset alone.
QUIET_LAYER = {"version": 2, "baseVals": {"decay": 0.0, "wave_a": 0.0}, "init_eqs_eel": "", "frame_eqs_eel": "",
               "pixel_eqs_eel": "", "warp": "", "comp": "",
               "shapes": [{"baseVals": {"enabled": 0}, "init_eqs_eel": "", "frame_eqs_eel": ""}] * 4,
               "waves": [{"baseVals": {"enabled": 0}, "init_eqs_eel": "", "frame_eqs_eel": "",
                          "point_eqs_eel": ""}] * 4}
SCREEN_STATUSES = ("ok", "degraded", "read-failed", "translate-failed", "shader-failed", "eel-error",
                   "timeout", "dark-start", "black")
# The longer look at a preset black over the screen's frames: 10 s at 30 fps (MilkDrop presets that wait for
# the music, or fade in from black, show something well within that).
DARK_LOOK_FRAMES = 300



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


def run(folder: Path, out: Path | None = None, frames: int = 20, size: int = 64, workers: int = 1,
           allow_degraded: bool = False, timeout_s: float = 30.0, chromium: str = "",
           cache_dir: Path | None = None, render: bool = True, gpu_mode: str = "off") -> dict:
    """Convert and draw every preset under `folder`; returns (and writes to `out`) the screening report."""
    from .core.progress import Progress

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
    from .core.settings import SampleSettings
    from .render.audio import load_audio
    from .render.browser import kill_leftovers
    from .render.pool import PairJob, RenderPool

    settings = SampleSettings(width=size, height=size, frames=frames, readback=min(size, 32), workers=workers,
                              pair_timeout_s=timeout_s, chromium=chromium, gpu_mode=gpu_mode).validate()
    state_dir = (Path(cache_dir) if cache_dir is not None else default_cache_dir()).parent
    kill_leftovers(state_dir)   # browsers an interrupted screen of this workspace left behind
    audio = load_audio(settings)
    jobs = [PairJob(index, preset, QUIET_LAYER, record["file"], "quiet")
            for index, (record, preset) in enumerate(loaded)]
    progress = progress_class("screen", total=len(jobs), unit="presets")
    retry: list[PairJob] = []
    dark: list[PairJob] = []
    with RenderPool(settings, audio.frames, state_dir) as pool:
        for result in pool.render(jobs):
            record = loaded[result.job.pair][0]
            _classify(record, result)
            if record["status"] == "shader-failed":
                retry.append(result.job)
            elif record["status"] == "black":
                dark.append(result.job)
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
        renderer = pool.renderer
    if dark:
        _longer_look([(loaded[job.pair][0], job.fg) for job in dark], settings, state_dir, progress_class)
    return renderer


def _longer_look(dark: list[tuple[dict, dict]], settings, state_dir: Path, progress_class) -> None:
    """Render presets that were black over the screen's frames for DARK_LOOK_FRAMES, as they are and with
    butterchurn's default shaders, and tell `dark-start` from `black` (and why it is black)."""
    import dataclasses

    from .render.audio import load_audio
    from .render.pool import RenderPool

    long_settings = dataclasses.replace(settings, frames=max(DARK_LOOK_FRAMES, settings.frames))
    jobs = []
    for index, (record, preset) in enumerate(dark):
        jobs.append(PairJob(index, preset, QUIET_LAYER, record["file"], "as is"))
        if preset.get("warp") or preset.get("comp"):
            jobs.append(PairJob(index, _without(preset, ("warp", "comp")), QUIET_LAYER, record["file"], "default"))
    outcomes: dict[tuple[int, str], list[float] | None] = {}
    progress = progress_class("longer look at black presets", total=len(jobs), unit="renders")
    with RenderPool(long_settings, load_audio(long_settings).frames, state_dir) as pool:
        for result in pool.render(jobs):
            lumas = result.series.get("fgLuma") if result.status == "ok" and result.series else None
            outcomes[(result.job.pair, result.job.bg_id)] = lumas
            progress.update()
    progress.close()
    frames = long_settings.frames
    for index, (record, preset) in enumerate(dark):
        lumas = outcomes.get((index, "as is"))
        if lumas is None:
            record["message"] += f"; the longer look ({frames} frames) did not render"
            continue
        lit = next((frame for frame, luma in enumerate(lumas) if luma >= BLACK_LUMA), None)
        if lit is not None:
            record["status"] = "dark-start"
            record["message"] = (f"black for the first {lit} frames, then draws (max mean luma "
                                 f"{max(lumas):.4f} over {frames} frames)")
            continue
        default = outcomes.get((index, "default"))
        if default is not None and max(default) >= BLACK_LUMA:
            why = "draws with butterchurn's default warp/comp shaders: its own shader keeps the frame black"
        elif default is not None or not (preset.get("warp") or preset.get("comp")):
            why = "black with butterchurn's default shaders too: its equations draw nothing with this audio"
        else:
            why = "did not render with butterchurn's default shaders"
        record["message"] = f"max mean luma {max(lumas):.4f} over {frames} frames; {why}"


def _degradable(pool, failed: list[tuple[str, dict]]) -> dict[str, str]:
    """Which shader broke each failed preset: the stage(s) whose replacement by butterchurn's default draws.

    Each stage alone first (only stages the preset has), then both; returns {file: "warp" | "comp" | ...}."""
    from .render.pool import PairJob

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
