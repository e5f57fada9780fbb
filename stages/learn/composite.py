"""The composite of two fingerprints, estimated: what a pair would measure, without rendering it.

In: fg and bg fingerprint vectors (`learn.fingerprints.Layout`), one row per pair, and the sampler's
settings (the blend, the fg opacity, the okHeuristic thresholds and the render-cost cap).
Out: `composite_features(fg, bg, layout, settings)`, named by COMPOSITE_FEATURES: the estimated statistics
of the composite, each quality factor of `learn.quality` applied to them, and their product, `estimate`.

How (the page composites each frame per pixel, c = blend(fg, bg); `web/sampler.js`):
- luma per frame: exact for the normal blend (a * Lf + (1 - a) * Lb); for screen and add, the blend of the
  layers' mean lumas (exact when the layers' pixels are independent).
- spatial variance per frame: wf^2 Vf + wb^2 Vb + 2 wf wb C, where wf, wb are the blend's weights on each
  layer (a and 1 - a for normal; linearised for screen and add) and C the covariance of the layers'
  mean luma maps (where both draw at once).
- motion per frame: sqrt((wf Mf)^2 + (wb Mb)^2), as for independent changes.
- black and white fractions: the two layers' luma histograms combined pixel by pixel under the blend.
- colourfulness: opponent chroma means blend linearly, their variances by the squared weights.
- fg share: the page's covariance ratio, from the same variances and C.
Then flicker, lumaMin, motionP90 and the audio correlation are taken from these series exactly as a
pair's statistics are (`render.framestats`), and `learn.quality` turns them into factors. The render cost
of a pair is estimated as the sum of its layers'. A pair with a layer that failed to render estimates 0;
one with a layer never fingerprinted has every feature 0 and `fingerprinted` 0.

Vectorised over pairs: a million pairs are a few seconds of numpy.
"""
from __future__ import annotations

import numpy as np

from ..core.settings import SampleSettings
from ..learn.fingerprints import SCALARS, Layout
from ..learn.quality import quality_factors
from ..render.fingerprint import BLACK_LUMA, HISTOGRAM_BINS, WHITE_LUMA

FACTORS = ("dark", "washedOut", "flat", "frozen", "strobing", "deaf", "drowned", "grey", "heavy")
STATS = ("lumaMean", "lumaMin", "contrast", "colourfulness", "motionMean", "motionP90", "flicker", "blackFrac",
         "whiteFrac", "audioCorr", "fgShare")
COMPOSITE_FEATURES = ("estimate", *(f"factor.{name}" for name in FACTORS), *(f"stat.{name}" for name in STATS),
                      "fingerprinted", "logFrameMs")
FLAT_COVARIANCE = 1e-9


def blend(fg, bg, mode: str, opacity: float):
    """The page's per-pixel blend of encoded values."""
    if mode == "screen":
        return bg + opacity * fg * (1 - bg)
    if mode == "add":
        return np.minimum(1.0, bg + opacity * fg)
    return opacity * fg + (1 - opacity) * bg


def _histogram_masks(mode: str, opacity: float) -> tuple[np.ndarray, np.ndarray]:
    centres = (np.arange(HISTOGRAM_BINS) + 0.5) / HISTOGRAM_BINS
    mixed = blend(centres[:, None], centres[None, :], mode, opacity)
    return (mixed < BLACK_LUMA).astype(np.float32), (mixed > WHITE_LUMA).astype(np.float32)


def _weights(fg_luma, bg_luma, mode: str, opacity: float):
    """How much a small change in each layer moves the composite (the blend's partial derivatives): numbers
    for the linear blends, per-pair-and-frame arrays for screen."""
    if mode == "screen":
        return opacity * (1 - bg_luma), 1 - opacity * fg_luma
    if mode == "add":
        return opacity, 1.0
    return opacity, 1 - opacity


def _per_pair_mean(weight, rows: int) -> np.ndarray:
    return np.full(rows, weight, np.float32) if np.ndim(weight) == 0 else weight.mean(axis=1)


def _row_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    norm = np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))
    return np.where(norm > 1e-12, (a * b).sum(axis=-1) / np.maximum(norm, 1e-12), 0.0)


def composite_features(fg: np.ndarray, bg: np.ndarray, layout: Layout, settings: SampleSettings) -> np.ndarray:
    """(n, len(COMPOSITE_FEATURES)) for n pairs of fingerprint vectors (fg, bg: (n, layout.width))."""
    mode, opacity = settings.blend, settings.fg_opacity
    scalar = {name: (fg[:, SCALARS.index(name)], bg[:, SCALARS.index(name)]) for name in SCALARS}
    series = {name: (fg[:, layout.series(name)], bg[:, layout.series(name)])
              for name in ("luma", "lumaVar", "motion", "energy")}
    (lf, lb), (vf, vb), (mf, mb) = series["luma"], series["lumaVar"], series["motion"]
    wf, wb = _weights(lf, lb, mode, opacity)
    luma = blend(lf, lb, mode, opacity)
    map_f = fg[:, layout.map] - fg[:, layout.map].mean(axis=1, keepdims=True)
    map_b = bg[:, layout.map] - bg[:, layout.map].mean(axis=1, keepdims=True)
    overlap = np.einsum("ij,ij->i", map_f, map_b)[:, None] / map_f.shape[1]
    variance = np.maximum(wf * wf * vf + wb * wb * vb + 2 * wf * wb * overlap, 0.0)
    motion = np.sqrt((wf * mf) ** 2 + (wb * mb) ** 2)
    cov_fg = np.maximum(wf * vf + wb * overlap, 0.0)
    cov_bg = np.maximum(wb * vb + wf * overlap, 0.0)
    share = np.where(cov_fg + cov_bg > FLAT_COVARIANCE, cov_fg / np.maximum(cov_fg + cov_bg, FLAT_COVARIANCE), 0.5)
    black_mask, white_mask = _histogram_masks(mode, opacity)
    hist_f, hist_b = fg[:, layout.histogram], bg[:, layout.histogram]
    wf_mean, wb_mean = _per_pair_mean(wf, len(fg)), _per_pair_mean(wb, len(fg))
    rg = wf_mean * scalar["rgMean"][0] + wb_mean * scalar["rgMean"][1]
    yb = wf_mean * scalar["ybMean"][0] + wb_mean * scalar["ybMean"][1]
    chroma_var = (wf_mean ** 2 * (scalar["rgVar"][0] + scalar["ybVar"][0])
                  + wb_mean ** 2 * (scalar["rgVar"][1] + scalar["ybVar"][1]))
    inner = luma[:, 1:-1] - 0.5 * (luma[:, :-2] + luma[:, 2:])
    stats = {
        "lumaMean": luma.mean(axis=1), "lumaMin": luma.min(axis=1),
        "contrast": np.minimum(1.0, 2.0 * np.sqrt(variance).mean(axis=1)),
        "colourfulness": np.sqrt(np.maximum(chroma_var, 0.0)) + 0.3 * np.sqrt(rg * rg + yb * yb),
        "motionMean": motion.mean(axis=1), "motionP90": np.percentile(motion, 90, axis=1),
        "flicker": np.abs(inner).mean(axis=1) if luma.shape[1] >= 3 else np.zeros(len(luma)),
        "blackFrac": ((hist_f @ black_mask) * hist_b).sum(axis=1),
        "whiteFrac": ((hist_f @ white_mask) * hist_b).sum(axis=1),
        "audioCorr": _row_correlation(motion, series["energy"][0]),
        "fgShare": share.mean(axis=1),
    }
    stats["bgShare"] = 1.0 - stats["fgShare"]
    frame_ms = scalar["frameMs"][0] + scalar["frameMs"][1]
    factors = quality_factors(stats, settings, frame_ms)
    fingerprinted = scalar["fingerprinted"][0] * scalar["fingerprinted"][1]
    failed = np.maximum(scalar["layerFailed"][0], scalar["layerFailed"][1])
    estimate = np.prod([np.broadcast_to(factors[name], fingerprinted.shape) for name in FACTORS], axis=0)
    estimate = estimate * fingerprinted * (1.0 - failed)
    columns = [estimate, *(np.broadcast_to(factors[name], fingerprinted.shape) * fingerprinted for name in FACTORS),
               *(stats[name] * fingerprinted for name in STATS), fingerprinted, np.log1p(frame_ms)]
    return np.stack(columns, axis=1).astype(np.float32)
