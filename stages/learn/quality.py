"""What a pair's row measured, as one quality in [0, 1]: the rule the trainer's targets, the scorer and the
composite estimate share.

In: a row's `stats` (`render.framestats`), its status, reasons and render cost, and the sampler's
okHeuristic thresholds (`SampleSettings`). Out: `quality_factors` (each way a pair can look bad, as a factor)
and `measured_quality` (their product; 0 for a pair that failed or was cut as too heavy).
"""
from __future__ import annotations

import math

import numpy as np

from ..core.settings import SampleSettings


def _ramp(value, low: float, high: float):
    """0 below `low`, 1 above `high`, linear in between (a number, or an array of them)."""
    return np.clip((value - low) / (high - low), 0.0, 1.0)


def quality_factors(stats: dict, thresholds: SampleSettings = SampleSettings(),
                    frame_ms: float | None = None) -> dict[str, float]:
    """Each way a pair can look bad, as a factor in [0, 1] (1 = no problem), from a row's `stats` and its
    render cost `frame_ms` (`timings.frameMs`: wall ms per frame, both layers, at the sampling size).
    Every stat may be an array (one value per pair): the composite estimate (`learn.composite`) scores a
    million pairs through this same rule.

    The hard problems (dark, washed out, flat, frozen, strobing) can take a pair to 0; the softer ones
    (deaf to audio, one layer drowning the other, grey) cap it at 0.6, 0.3 and 0.8 of what it would be.
    Thresholds are the sampler's okHeuristic settings, so "too dark" means the same thing in both places.
    Render cost, judged only against the sampler's cap `max_frame_ms` (0: no cap, cost not judged; a wall
    time means little without the budget it was measured for): a pair using up to half the budget is fine,
    one closer to it keeps down to half its quality (a weaker machine would drop its frames), one over it was
    cut as `too-heavy` and measures 0 (`measured_quality`).
    """
    luma, motion = stats["lumaMean"], np.maximum(stats["motionMean"], 1e-6)
    weaker_layer = np.minimum(stats["fgShare"], stats["bgShare"])
    return {
        "dark": _ramp(luma, thresholds.min_luma * 0.5, thresholds.min_luma * 2.5)
        * (1.0 - _ramp(stats["blackFrac"], 0.6, 0.95)),
        "washedOut": (1.0 - _ramp(luma, thresholds.max_luma - 0.25, thresholds.max_luma))
        * (1.0 - _ramp(stats["whiteFrac"], 0.3, 0.8)),
        "flat": _ramp(stats["contrast"], 0.02, 0.10),
        "frozen": _ramp(np.log10(motion), math.log10(thresholds.min_motion * 0.5),
                        math.log10(thresholds.min_motion * 5)),
        "strobing": 1.0 - _ramp(stats["flicker"], thresholds.max_flicker * 0.66, thresholds.max_flicker * 2),
        "deaf": 0.6 + 0.4 * _ramp(stats["audioCorr"], thresholds.min_audio_corr, thresholds.min_audio_corr + 0.3),
        "drowned": 0.3 + 0.7 * _ramp(weaker_layer, thresholds.min_layer_share * 0.5, thresholds.min_layer_share * 4),
        "grey": 0.8 + 0.2 * _ramp(stats["colourfulness"], 0.02, 0.2),
        "heavy": (1.0 - 0.5 * _ramp(frame_ms / thresholds.max_frame_ms, 0.5, 1.0)
                  if frame_ms is not None and thresholds.max_frame_ms > 0 else 1.0),
    }


TOO_HEAVY = "too-heavy"  # the sampler's status (and reason) for a pair cut over the frame budget


def measured_quality(row: dict, thresholds: SampleSettings = SampleSettings()) -> float:
    """The quality in [0, 1] a row measured: the product of its `quality_factors`.

    A row whose status is not `ok` is a pair that failed to load, link, draw or finish in time: it would
    fail the same way on stage, so it measures 0. So does a pair the sampler cut as `too-heavy` (its
    frames cost more than the live budget): a show cannot play it, however good its first frames looked.
    """
    if row["status"] != "ok" or TOO_HEAVY in row["reasons"]:
        return 0.0
    return float(np.prod(list(quality_factors(row["stats"], thresholds, row["timings"].get("frameMs")).values())))
