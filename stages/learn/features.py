"""Preset features: a fixed-length, named, normalised numeric vector per preset and per fg/bg pair.

In: a butterchurn-3 preset object (from `presets.conversion.load_preset`, which reads butterchurn JSON and
`.milk` alike) or a preset file path (`FeatureCache` reads each file once).
Out: `preset_features(preset) -> np.ndarray` of `len(PRESET_FEATURES)` values in [0, 1], named by
`PRESET_FEATURES`; `pair_features(fg, bg)` -> fg, bg, their difference and product, named by
`PAIR_FEATURES`. Nothing here renders: features come from the preset text alone, so scoring never needs a
browser.

Base values absent from a preset take butterchurn's defaults (butterchurn fills them the same way when it
loads a preset). Each value is clipped to a range that covers real presets and mapped to [0, 1], so one
wild value (mv_x = 64, zoom = 40) cannot dominate; the trainer standardises the pair vector afterwards.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..core.errors import CqError
from ..presets.conversion import load_preset

# (name, butterchurn's default, low, high): the value is clipped to [low, high] and mapped to [0, 1].
BASE_VALUES: tuple[tuple[str, float, float, float], ...] = (
    ("decay", 0.98, 0.8, 1.0), ("gammaadj", 2.0, 0.5, 4.0),
    ("echo_zoom", 2.0, 0.5, 3.0), ("echo_alpha", 0.0, 0.0, 1.0), ("echo_orient", 0.0, 0.0, 3.0),
    ("red_blue", 0.0, 0.0, 1.0), ("brighten", 0.0, 0.0, 1.0), ("darken", 0.0, 0.0, 1.0),
    ("wrap", 1.0, 0.0, 1.0), ("darken_center", 0.0, 0.0, 1.0), ("solarize", 0.0, 0.0, 1.0),
    ("invert", 0.0, 0.0, 1.0),
    ("additivewave", 0.0, 0.0, 1.0), ("wave_dots", 0.0, 0.0, 1.0), ("wave_thick", 0.0, 0.0, 1.0),
    ("wave_a", 0.8, 0.0, 1.0), ("wave_scale", 1.0, 0.0, 4.0), ("wave_smoothing", 0.75, 0.0, 1.0),
    ("wave_mystery", 0.0, -1.0, 1.0), ("modwavealphabyvolume", 0.0, 0.0, 1.0),
    ("wave_r", 1.0, 0.0, 1.0), ("wave_g", 1.0, 0.0, 1.0), ("wave_b", 1.0, 0.0, 1.0),
    ("wave_x", 0.5, 0.0, 1.0), ("wave_y", 0.5, 0.0, 1.0), ("wave_brighten", 1.0, 0.0, 1.0),
    ("mv_x", 12.0, 0.0, 64.0), ("mv_y", 9.0, 0.0, 48.0), ("mv_dx", 0.0, -1.0, 1.0), ("mv_dy", 0.0, -1.0, 1.0),
    ("mv_l", 0.9, 0.0, 5.0), ("mv_r", 1.0, 0.0, 1.0), ("mv_g", 1.0, 0.0, 1.0), ("mv_b", 1.0, 0.0, 1.0),
    ("mv_a", 1.0, 0.0, 1.0),
    ("warpanimspeed", 1.0, 0.0, 5.0), ("warpscale", 1.0, 0.0, 5.0), ("zoomexp", 1.0, 0.0, 5.0),
    ("zoom", 1.0, 0.8, 1.2), ("rot", 0.0, -0.5, 0.5), ("cx", 0.5, 0.0, 1.0), ("cy", 0.5, 0.0, 1.0),
    ("dx", 0.0, -0.1, 0.1), ("dy", 0.0, -0.1, 0.1), ("warp", 1.0, 0.0, 3.0), ("sx", 1.0, 0.8, 1.2),
    ("sy", 1.0, 0.8, 1.2),
    ("ob_size", 0.01, 0.0, 0.5), ("ob_r", 0.0, 0.0, 1.0), ("ob_g", 0.0, 0.0, 1.0), ("ob_b", 0.0, 0.0, 1.0),
    ("ob_a", 0.0, 0.0, 1.0),
    ("ib_size", 0.01, 0.0, 0.5), ("ib_r", 0.25, 0.0, 1.0), ("ib_g", 0.25, 0.0, 1.0), ("ib_b", 0.25, 0.0, 1.0),
    ("ib_a", 0.0, 0.0, 1.0),
)
WAVE_MODES = 8  # MilkDrop's built-in waveform shapes 0..7, one-hot: a mode is a kind, not a magnitude
SHAPE_COUNT = 4
WAVE_COUNT = 4
# Lengths in non-blank characters, compressed with log1p and mapped to [0, 1] by this ceiling.
LOG_LENGTH_CEILING = float(np.log1p(20000.0))
LOG_COUNT_CEILING = float(np.log1p(200.0))

AUDIO_WORD = re.compile(r"\b(bass|mid|treb|vol)(_att)?\b", re.IGNORECASE)
BLUR_WORD = re.compile(r"GetBlur|sampler_blur", re.IGNORECASE)
NOISE_WORD = re.compile(r"sampler_noise|sampler_pw_noise|sampler_fw_noise", re.IGNORECASE)

DERIVED = (
    "shapes_enabled", "shapes_additive", "shapes_textured", "shapes_instances", "shapes_radius",
    "shapes_alpha",
    "waves_enabled", "waves_spectrum", "waves_additive", "waves_dots", "waves_alpha",
    "eq_init_size", "eq_frame_size", "eq_pixel_size", "eq_shapes_size", "eq_waves_size",
    "eq_audio_refs",
    "has_warp_shader", "has_comp_shader", "warp_shader_size", "comp_shader_size",
    "shader_uses_blur", "shader_uses_noise", "shader_degraded",
)
PRESET_FEATURES: tuple[str, ...] = (
    tuple(name for name, *_ in BASE_VALUES)
    + tuple(f"wave_mode_{mode}" for mode in range(WAVE_MODES))
    + DERIVED
)
PAIR_PARTS = ("fg", "bg", "diff", "prod")
PAIR_FEATURES: tuple[str, ...] = tuple(f"{part}.{name}" for part in PAIR_PARTS for name in PRESET_FEATURES)


def _number(value, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if np.isfinite(number) else default


def _scaled(value: float, low: float, high: float) -> float:
    return (min(max(value, low), high) - low) / (high - low)


def _text_size(text) -> float:
    """log1p of the non-blank characters of an equation or shader, in [0, 1]."""
    size = sum(1 for char in text if not char.isspace()) if isinstance(text, str) else 0
    return min(float(np.log1p(size)) / LOG_LENGTH_CEILING, 1.0)


def _count(count: int) -> float:
    return min(float(np.log1p(count)) / LOG_COUNT_CEILING, 1.0)


def _enabled(parts) -> list[dict]:
    """The shapes or waves of a preset that draw (`baseVals.enabled` set)."""
    found = []
    for part in parts if isinstance(parts, list) else []:
        base = part.get("baseVals", {}) if isinstance(part, dict) else {}
        if isinstance(base, dict) and _number(base.get("enabled"), 0.0) != 0.0:
            found.append(part)
    return found


def _mean_base(parts: list[dict], key: str, default: float, low: float, high: float) -> float:
    if not parts:
        return 0.0
    return float(np.mean([_scaled(_number(part["baseVals"].get(key), default), low, high) for part in parts]))


def _eq_text(part: dict, *keys: str) -> str:
    return "\n".join(part.get(key, "") for key in keys if isinstance(part.get(key), str))


def preset_features(preset: dict) -> np.ndarray:
    """The feature vector of one butterchurn-3 preset object, named by `PRESET_FEATURES`."""
    base = preset.get("baseVals") if isinstance(preset.get("baseVals"), dict) else {}
    values = [_scaled(_number(base.get(name), default), low, high) for name, default, low, high in BASE_VALUES]

    wave_mode = int(min(max(_number(base.get("wave_mode"), 0.0), 0), WAVE_MODES - 1))
    values += [1.0 if mode == wave_mode else 0.0 for mode in range(WAVE_MODES)]

    shapes = _enabled(preset.get("shapes"))
    waves = _enabled(preset.get("waves"))
    values += [
        len(shapes) / SHAPE_COUNT,
        sum(_number(s["baseVals"].get("additive"), 0.0) != 0.0 for s in shapes) / SHAPE_COUNT,
        sum(_number(s["baseVals"].get("textured"), 0.0) != 0.0 for s in shapes) / SHAPE_COUNT,
        _count(int(sum(_number(s["baseVals"].get("num_inst"), 1.0) for s in shapes))),
        _mean_base(shapes, "rad", 0.1, 0.0, 1.0),
        _mean_base(shapes, "a", 1.0, 0.0, 1.0),
        len(waves) / WAVE_COUNT,
        sum(_number(w["baseVals"].get("spectrum"), 0.0) != 0.0 for w in waves) / WAVE_COUNT,
        sum(_number(w["baseVals"].get("additive"), 0.0) != 0.0 for w in waves) / WAVE_COUNT,
        sum(_number(w["baseVals"].get("usedots"), 0.0) != 0.0 for w in waves) / WAVE_COUNT,
        _mean_base(waves, "a", 1.0, 0.0, 1.0),
    ]

    frame_eqs = _eq_text(preset, "frame_eqs_eel")
    pixel_eqs = _eq_text(preset, "pixel_eqs_eel")
    shape_eqs = "\n".join(_eq_text(s, "init_eqs_eel", "frame_eqs_eel") for s in shapes)
    wave_eqs = "\n".join(_eq_text(w, "init_eqs_eel", "frame_eqs_eel", "point_eqs_eel") for w in waves)
    warp = preset.get("warp") if isinstance(preset.get("warp"), str) else ""
    comp = preset.get("comp") if isinstance(preset.get("comp"), str) else ""
    shaders = warp + "\n" + comp
    values += [
        _text_size(_eq_text(preset, "init_eqs_eel")), _text_size(frame_eqs), _text_size(pixel_eqs),
        _text_size(shape_eqs), _text_size(wave_eqs),
        _count(len(AUDIO_WORD.findall("\n".join((frame_eqs, pixel_eqs, shape_eqs, wave_eqs))))),
        1.0 if warp.strip() else 0.0, 1.0 if comp.strip() else 0.0, _text_size(warp), _text_size(comp),
        1.0 if BLUR_WORD.search(shaders) else 0.0, 1.0 if NOISE_WORD.search(shaders) else 0.0,
        1.0 if preset.get("cqDegraded") else 0.0,
    ]
    return np.asarray(values, dtype=np.float32)


def file_features(path: Path, cache_dir: Path | None = None) -> np.ndarray:
    """Features of a preset file (`.json` or `.milk`); a file that cannot be read raises ContractError.

    A `.milk` whose shader does not translate is read degraded (butterchurn's default shader in its place,
    as the sampler renders it) and says so in `shader_degraded`; `cache_dir` is the .milk conversion cache."""
    return preset_features(load_preset(Path(path), cache_dir=cache_dir, allow_degraded=True))


def pair_features(fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Pair vector(s) from fg and bg preset vectors (1-D, or 2-D with one row per pair)."""
    fg = np.asarray(fg, dtype=np.float32)
    bg = np.asarray(bg, dtype=np.float32)
    return np.concatenate([fg, bg, fg - bg, fg * bg], axis=-1)


class FeatureCache:
    """Preset vectors by file path, each read once per run; failures are remembered with their message."""

    def __init__(self, cache_dir: Path | None = None):
        self.cache_dir = cache_dir
        self.vectors: dict[Path, np.ndarray] = {}
        self.failures: dict[Path, str] = {}

    def get(self, path: Path) -> np.ndarray | None:
        """The preset's vector, or None when the file is missing or unreadable (see `failures`)."""
        path = Path(path)
        if path in self.vectors:
            return self.vectors[path]
        if path in self.failures:
            return None
        try:
            vector = file_features(path, self.cache_dir)
        except CqError as error:
            self.failures[path] = str(error)
            return None
        self.vectors[path] = vector
        return vector
