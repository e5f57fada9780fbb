"""Preset files -> butterchurn-3 preset objects.

In: a preset file of a pack: `.json` (butterchurn's converted format) or `.milk` (MilkDrop's own format,
read by `presets.milk`, warp/comp shaders translated by `presets.hlsl`).
Out: the dict butterchurn's `loadPreset` takes (`version`, `baseVals`, `*_eqs_eel`, `shapes`, `waves`,
`warp`, `comp`). A `.milk` conversion is cached under the workspace state dir, keyed by the file's content
and the reader/translator versions: an edited file reconverts, an unchanged one never does, and a failed
conversion is a cached outcome too. A preset that cannot be used raises `PresetError`, whose `status` is
`read-failed` or `translate-failed`. With `allow_degraded`, a shader that does not translate is replaced by
butterchurn's default for that stage and the preset carries `cqDegraded` (the replaced stages and why).
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from ..core.contracts import (
    read_json,
    value_hash,
    write_json,
)
from ..core.errors import ContractError
from ..presets.eel import normalize_eel
from ..presets.hlsl import TRANSLATOR_VERSION, HlslError, translate
from ..presets.milk import MilkPreset, MilkReadError, decode_milk, parse_milk

PRESET_SUFFIXES = (".json", ".milk")
# Part of the conversion cache key, with the translator's version: bump when milk_to_butterchurn changes.
CONVERTER_VERSION = "milk-4"


class PresetError(ContractError):
    """A preset that cannot be used; `status` is the eval-row status it stands for."""

    def __init__(self, where, status: str, problem: str, advice: str = ""):
        self.status = status
        super().__init__(where, problem, advice)


# ------------------------------------------------------------------------------------ conversion


def milk_to_butterchurn(milk: MilkPreset, where, allow_degraded: bool = False) -> dict:
    """A read .milk preset as butterchurn's preset object, its EEL in what butterchurn's parser takes
    (`presets.eel`), its shaders translated to GLSL."""
    def with_eel(section: dict) -> dict:
        return {key: normalize_eel(value) if key.endswith("_eqs_eel") else value for key, value in section.items()}

    preset = {
        "version": milk.eel_version,
        "baseVals": dict(milk.base_vals),
        "init_eqs_eel": normalize_eel(milk.init_eel),
        "frame_eqs_eel": normalize_eel(milk.frame_eel),
        "pixel_eqs_eel": normalize_eel(milk.pixel_eel),
        "shapes": [with_eel(shape) for shape in milk.shapes],
        "waves": [with_eel(wave) for wave in milk.waves],
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


def default_cache_dir() -> Path:
    from ..core.workspace import Workspace

    return Workspace.from_environment().conversion_cache_dir


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


MAX_PRESET_BYTES = 4_000_000


def load_preset(path: Path, cache_dir: Path | None = None, allow_degraded: bool = False) -> dict:
    """Read one preset file as a butterchurn-3 preset object; errors name the file.

    `.milk` files go through the conversion cache (`cache_dir`, default: the workspace's state dir)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".milk", ".json"):
        raise PresetError(path, "read-failed", f"preset type {path.suffix!r} is not supported",
                          "use .milk or butterchurn .json presets")
    try:
        size = path.stat().st_size
    except OSError as error:
        raise PresetError(path, "read-failed", f"cannot read: {error.strerror}") from None
    if size > MAX_PRESET_BYTES:
        # said here, or the page spends the whole time limit on it and the row says only "timeout"
        raise PresetError(path, "read-failed", f"the file is {size / 1e6:.1f} MB; a preset is at most "
                          f"{MAX_PRESET_BYTES // 1_000_000} MB (real ones are a few KB)",
                          "check that this is a preset, or remove its pair from the manifest")
    if suffix == ".milk":
        conversion = convert_milk(path, cache_dir)
        if conversion.status == "ok":
            return conversion.preset
        if conversion.status == "translate-failed" and allow_degraded:
            milk = parse_milk(decode_milk(path.read_bytes(), path), path)
            return milk_to_butterchurn(milk, path, allow_degraded=True)
        raise PresetError(path, conversion.status, conversion.message.removeprefix(f"{path}: "))
    try:
        preset = read_json(path)
    except ContractError as error:
        raise PresetError(path, "read-failed", error.problem, error.advice) from None
    if not isinstance(preset, dict) or not isinstance(preset.get("baseVals"), dict):
        raise PresetError(path, "read-failed", "not a butterchurn preset (no baseVals object)")
    return preset
