"""Features of presets and pairs: what the text says, what each layer draws, and their composite estimated.

In: a butterchurn-3 preset object or file (`presets.conversion.load_preset` reads JSON and `.milk` alike)
and the workspace's fingerprints (`learn.fingerprints`, each preset rendered alone).
Out:
- `preset_features(preset)`: the text vector, `len(PRESET_FEATURES)` values in [0, 1] from the preset's
  parameters and equations;
- `FeatureCache.get(path)`: a preset's whole vector, the text vector followed by its fingerprint vector
  (zeros and `fingerprinted` 0 when it has none);
- `pair_features(fg, bg, settings)`: the pair vector named by `PAIR_FEATURES`: the text vectors of fg and
  bg, their difference and product; the same four of the fingerprints' scalars; and the composite of the two
  fingerprints estimated (`learn.composite`: the pair's statistics, quality factors and estimated quality).
Nothing here renders: scoring a pair needs its presets' fingerprints, never the pair itself.

Base values absent from a preset take butterchurn's defaults (butterchurn fills them the same way when it
loads a preset). Each value is clipped to a range that covers real presets and mapped to [0, 1], so one
wild value (mv_x = 64, zoom = 40) cannot dominate; the trainer standardises the pair vector afterwards.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..core.contracts import value_hash
from ..core.errors import CqError
from ..core.keys import preset_identity
from ..core.settings import SampleSettings
from ..learn.composite import COMPOSITE_FEATURES, composite_features
from ..learn.fingerprints import SCALARS, FingerprintStore, Layout, empty_vector
from ..presets.conversion import load_preset
from ..render.versions import KEY_VERSIONS

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
# the fingerprint scalars a pair vector carries per layer (the series, histogram and map feed the composite)
LAYER_FEATURES = tuple(name for name in SCALARS if name != "fingerprinted")
PAIR_FEATURES: tuple[str, ...] = (
    tuple(f"{part}.{name}" for part in PAIR_PARTS for name in PRESET_FEATURES)
    + tuple(f"layer.{part}.{name}" for part in PAIR_PARTS for name in LAYER_FEATURES)
    + tuple(f"mix.{name}" for name in COMPOSITE_FEATURES)
)
TEXT_WIDTH = len(PRESET_FEATURES)
# What each layer draws and their estimated composite: the columns the net's ridge prior is fitted on. The text
# columns go to the MLP alone: measured by preset on the evaluation pack, ridge over them ranked unseen presets
# worse (0.931) than without them (0.952).
FINGERPRINT_COLUMNS = tuple(index for index, name in enumerate(PAIR_FEATURES) if name.startswith(("layer.", "mix.")))
# spread small positive values (motion, render cost) over their orders of magnitude
LOGGED = {SCALARS.index(name): 1e-4 for name in ("motionMean", "motionP90")} | {SCALARS.index("frameMs"): 1.0}
LAYER_COLUMNS = [SCALARS.index(name) for name in LAYER_FEATURES]


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


CODE_KEYS = ("init_eqs_eel", "frame_eqs_eel", "pixel_eqs_eel", "point_eqs_eel", "warp", "comp")


def preset_family(preset: dict) -> str:
    """A hash of what a preset does, leaving out its numbers: its equations, shaders and which shapes and
    waves it draws. Variants of one preset (the same code under other parameters, as coupled packs are made)
    share a family, so cross-validation "by preset" never tests a variant against its sibling."""
    parts = [preset.get(key) for key in CODE_KEYS]
    for kind in ("shapes", "waves"):
        for part in preset.get(kind) or []:
            if isinstance(part, dict):
                enabled = _number((part.get("baseVals") or {}).get("enabled"), 0.0) != 0.0
                parts.append([enabled] + ([part.get(key) for key in CODE_KEYS] if enabled else []))
    return value_hash(parts)


def file_features(path: Path, cache_dir: Path | None = None) -> np.ndarray:
    """Features of a preset file (`.json` or `.milk`); a file that cannot be read raises ContractError.

    A `.milk` whose shader does not translate is read degraded (butterchurn's default shader in its place,
    as the sampler renders it) and says so in `shader_degraded`; `cache_dir` is the .milk conversion cache."""
    return preset_features(load_preset(Path(path), cache_dir=cache_dir, allow_degraded=True))


def _read(path: Path, cache_dir: Path | None) -> tuple[np.ndarray, str]:
    preset = load_preset(Path(path), cache_dir=cache_dir, allow_degraded=True)
    return preset_features(preset), preset_family(preset)


def _layer_scalars(vectors: np.ndarray) -> np.ndarray:
    scalars = vectors[:, :len(SCALARS)].copy()
    for column, floor in LOGGED.items():
        scalars[:, column] = np.log10(np.maximum(scalars[:, column], 0.0) + floor)
    return scalars[:, LAYER_COLUMNS]


def pair_features(fg: np.ndarray, bg: np.ndarray, settings: SampleSettings = SampleSettings()) -> np.ndarray:
    """Pair vector(s) from fg and bg preset vectors (1-D, or 2-D with one row per pair): text vectors alone
    (`preset_features`) count as presets without a fingerprint. `settings` are the sampler's (blend, opacity,
    thresholds), which the composite estimate follows."""
    fg, bg = np.asarray(fg, dtype=np.float32), np.asarray(bg, dtype=np.float32)
    single = fg.ndim == 1
    fg, bg = np.atleast_2d(fg), np.atleast_2d(bg)
    fg, bg = (_with_fingerprint(vectors, settings) for vectors in (fg, bg))
    layout = Layout.of_width(fg.shape[1] - TEXT_WIDTH)
    text_fg, text_bg = fg[:, :TEXT_WIDTH], bg[:, :TEXT_WIDTH]
    layer_fg, layer_bg = _layer_scalars(fg[:, TEXT_WIDTH:]), _layer_scalars(bg[:, TEXT_WIDTH:])
    pairs = np.concatenate([
        text_fg, text_bg, text_fg - text_bg, text_fg * text_bg,
        layer_fg, layer_bg, layer_fg - layer_bg, layer_fg * layer_bg,
        composite_features(fg[:, TEXT_WIDTH:], bg[:, TEXT_WIDTH:], layout, settings),
    ], axis=1).astype(np.float32)
    return pairs[0] if single else pairs


def _with_fingerprint(vectors: np.ndarray, settings: SampleSettings) -> np.ndarray:
    if vectors.shape[1] != TEXT_WIDTH:
        return vectors
    empty = np.broadcast_to(empty_vector(Layout.of_settings(settings)), (len(vectors), Layout.of_settings(settings).width))
    return np.concatenate([vectors, empty], axis=1)


class FeatureCache:
    """Preset vectors (text + fingerprint) by file path, each file read once per run; failures are remembered
    with their message. Without `fingerprints`, every preset counts as not fingerprinted."""

    def __init__(self, cache_dir: Path | None = None, fingerprints: FingerprintStore | None = None):
        self.cache_dir = cache_dir
        self.fingerprints = fingerprints
        self.vectors: dict[Path, np.ndarray] = {}
        self.families: dict[Path, str] = {}  # preset_family of each file read
        self.failures: dict[Path, str] = {}

    @classmethod
    def of_workspace(cls, workspace, settings: SampleSettings) -> "FeatureCache":
        """The workspace's .milk conversion cache and fingerprints, under the sampler's settings."""
        return cls(workspace.conversion_cache_dir, FingerprintStore(workspace, settings))

    def get(self, path: Path) -> np.ndarray | None:
        """The preset's vector, or None when the file is missing or unreadable (see `failures`)."""
        path = Path(path)
        if path in self.vectors:
            return self.vectors[path]
        if path in self.failures:
            return None
        try:
            text, self.families[path] = _read(path, self.cache_dir)
            fingerprint = self.fingerprints.vector(preset_identity(path, KEY_VERSIONS)) if self.fingerprints is not None else None
        except CqError as error:
            self.failures[path] = str(error)
            return None
        except OSError as error:
            self.failures[path] = f"{path}: {error.strerror or error}"
            return None
        vector = text if fingerprint is None else np.concatenate([text, fingerprint])
        self.vectors[path] = vector
        return vector
