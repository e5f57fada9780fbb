"""Per-pair statistics from the frames the sampling page measured.

In: `series`, what the page returns for one pair, one float per rendered frame (F of each):
    luma     mean Rec.709 luma of the 64x64 composite, [0,1]
    lumaStd  spatial standard deviation of that luma, [0,0.5]
    colour   colourfulness of the composite, ~[0,1]
    delta    mean per-pixel |luma_t - luma_{t-1}|, 0 at f=0
    black    fraction of pixels with luma < 0.05;  white: fraction with luma > 0.95
    fgLuma   mean luma of the fg layer alone;      bgLuma: of the bg layer alone
    fgShare  how much of the composite comes from fg, [0,1]
plus `audio_energy` (F,), the RMS of each frame's audio window (`AudioTrack.energy`), and the thresholds in
`SampleSettings`.

Out: `pair_stats(...) -> (seed_fields, stats, ok, reasons)`.

The first `stats_warmup` fraction of the frames (at least one) is left out of every number: butterchurn's
feedback buffers start black, so the first frames of every preset fade in from black and would read as dark
and fast-moving. Over the remaining frames W:

seed fields (the original sampler's names)
    vizAvgLuma        mean of luma
    vizAvgFrameDelta  mean of delta
    pmAvgLumaFg       mean of fgLuma
    pmAvgLumaBg       mean of bgLuma
stats (exactly `contracts.STAT_FIELDS`)
    lumaMean       mean of luma
    lumaMin        min of luma (the darkest moment)
    contrast       2 * mean of lumaStd, in [0,1] (1: half the pixels black, half white)
    colourfulness  mean of colour
    motionMean     mean of delta
    motionP90      90th percentile of delta (bursts of motion)
    flicker        mean over frames of |luma_t - (luma_{t-1} + luma_{t+1}) / 2|: the part of the brightness
                   that flips from frame to frame. A steady fade scores 0, a single cut scores once,
                   black/white alternation every frame scores 1
    blackFrac      mean of black;  whiteFrac: mean of white
    audioCorr      Pearson correlation of delta with audio energy, frame by frame, in [-1,1]: do the visuals
                   change when the music hits? 0 when either does not vary at all
    fgShare        mean of fgShare;  bgShare: 1 - fgShare

reasons (okHeuristic is true when there are none)
    too-dark    lumaMean < min_luma          too-bright  lumaMean > max_luma
    low-motion  motionMean < min_motion      strobing    flicker > max_flicker
    deaf        audioCorr < min_audio_corr   (only when the audio varies at all)
    fg-drowned  fgShare < min_layer_share    bg-drowned  bgShare < min_layer_share

Changing a threshold or the warm-up changes these outputs but not the pixels: `core.keys.stats_key` (of
the settings and STATS_VERSION) is the hash to keep next to a row's content key when the statistics are cached.
"""
from __future__ import annotations

import math

import numpy as np

from ..core.contracts import STAT_FIELDS
from ..core.errors import CqError
from ..core.settings import SampleSettings

SERIES_FIELDS = ("luma", "lumaStd", "colour", "delta", "black", "white", "fgLuma", "bgLuma", "fgShare")
# in every row's content key (through `render.versions`): bump it when a statistic changes
STATS_VERSION = 1
DIGITS = 6  # rounding of every output: rows stay short and compare equal across runs


def warmup_frames(frame_count: int, fraction: float) -> int:
    """Frames left out at the start: `fraction` of them, at least 1, always leaving 2 or more."""
    return min(max(1, math.ceil(frame_count * fraction)), max(0, frame_count - 2))


def pair_stats(series: dict, audio_energy, settings: SampleSettings) -> tuple[dict, dict, bool, list[str]]:
    """(seed_fields, stats, okHeuristic, reasons) of one pair; see the module docstring."""
    arrays = _checked_series(series, audio_energy)
    skip = warmup_frames(len(arrays["luma"]), settings.stats_warmup)
    kept = {name: values[skip:] for name, values in arrays.items()}
    luma, delta, energy = kept["luma"], kept["delta"], kept["energy"]

    fg_share = float(np.mean(kept["fgShare"]))
    stats = {
        "lumaMean": float(np.mean(luma)),
        "lumaMin": float(np.min(luma)),
        "contrast": min(1.0, 2.0 * float(np.mean(kept["lumaStd"]))),
        "colourfulness": float(np.mean(kept["colour"])),
        "motionMean": float(np.mean(delta)),
        "motionP90": float(np.percentile(delta, 90)),
        "flicker": flicker(luma),
        "blackFrac": float(np.mean(kept["black"])),
        "whiteFrac": float(np.mean(kept["white"])),
        "audioCorr": correlation(delta, energy),
        "fgShare": fg_share,
        "bgShare": 1.0 - fg_share,
    }
    stats = {name: round(stats[name], DIGITS) for name in STAT_FIELDS}
    seed_fields = {
        "vizAvgLuma": stats["lumaMean"],
        "vizAvgFrameDelta": stats["motionMean"],
        "pmAvgLumaFg": round(float(np.mean(kept["fgLuma"])), DIGITS),
        "pmAvgLumaBg": round(float(np.mean(kept["bgLuma"])), DIGITS),
    }

    reasons = []
    if stats["lumaMean"] < settings.min_luma:
        reasons.append("too-dark")
    if stats["lumaMean"] > settings.max_luma:
        reasons.append("too-bright")
    if stats["motionMean"] < settings.min_motion:
        reasons.append("low-motion")
    if stats["flicker"] > settings.max_flicker:
        reasons.append("strobing")
    if np.ptp(energy) > 0 and stats["audioCorr"] < settings.min_audio_corr:
        reasons.append("deaf")
    if stats["fgShare"] < settings.min_layer_share:
        reasons.append("fg-drowned")
    if stats["bgShare"] < settings.min_layer_share:
        reasons.append("bg-drowned")
    return seed_fields, stats, not reasons, reasons


def flicker(luma: np.ndarray) -> float:
    """Mean |luma_t - (luma_{t-1} + luma_{t+1}) / 2| over the inner frames (0 with fewer than 3)."""
    if len(luma) < 3:
        return 0.0
    return float(np.mean(np.abs(luma[1:-1] - 0.5 * (luma[:-2] + luma[2:]))))


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation in [-1, 1]; 0 when either series is constant."""
    a = a - np.mean(a)
    b = b - np.mean(b)
    norm = math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
    if norm < 1e-12:
        return 0.0
    return max(-1.0, min(1.0, float(np.dot(a, b)) / norm))


def _checked_series(series: dict, audio_energy) -> dict[str, np.ndarray]:
    if not isinstance(series, dict):
        raise CqError(f"frame series must be an object of arrays, got {type(series).__name__} "
                      "(the sampling page returned something unexpected)")
    missing = [name for name in SERIES_FIELDS if name not in series]
    if missing:
        raise CqError(f"frame series lack {', '.join(missing)} (the sampling page and render/framestats.py "
                      "disagree on the fields: update one of them)")
    arrays = {}
    for name in SERIES_FIELDS:
        try:
            arrays[name] = np.asarray(series[name], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise CqError(f"frame series '{name}' is not a list of numbers") from None
    arrays["energy"] = np.asarray(audio_energy, dtype=np.float64).reshape(-1)
    lengths = {name: len(values) for name, values in arrays.items()}
    count = lengths["luma"]
    if count < 3 or any(length != count for length in lengths.values()):
        raise CqError(f"frame series need one value per frame (3 or more) and as many audio energies, "
                      f"got lengths {lengths}")
    bad = [name for name, values in arrays.items() if not np.all(np.isfinite(values))]
    if bad:
        raise CqError(f"frame series {', '.join(bad)} hold NaN or infinite values (a broken readback)")
    return arrays
