"""A preset's fingerprint: what one layer draws, rendered alone, as numbers a pair can be estimated from.

In: one layer's frames as the sampling page's `renderLayer` returns them (`render.pairstats.LayerFrames`:
every frame reduced on the GPU to the readback size, under the same render settings and audio as a pair:
the very frames the preset's pairs are composed from), the audio's energy per frame (`AudioTrack.energy`)
and the statistics warm-up (`SampleSettings.stats_warmup`).
Out: `fingerprint_fields(...) -> dict`, stored in the fingerprint row (`contracts.validate_fingerprint_row`).

Why frames and not a pair's statistics: a pair's row is computed from its two layers' frames, composited
per pixel (`render.pairstats`). So what decides a coupled picture is in each layer's frames, and the
composite of two fingerprints can be estimated without keeping the frames (`learn.composite`). The fields
keep exactly what that estimate needs, plus the layer's own look. Luma is Rec.709 of the encoded values, as
the page's; frames before the warm-up (the fade in from black every preset starts with) are left out, as a
pair's statistics leave them out.

Fields (W = the frames after the warm-up; computed on the frames at the readback size; every value in [0, 1]
unless said):
    luma[W]         mean luma per frame
    lumaVar[W]      spatial variance of luma per frame (how much structure the layer shows)
    motion[W]       mean per-pixel |luma_t - luma_t-1| per frame (how fast it changes)
    energy[W]       the audio's energy per frame (the same for every preset under one audio; kept so a
                    composite's audio correlation needs no audio file)
    lumaMean, lumaMin, contrast (2 x mean spatial std), motionMean, motionP90, flicker, blackFrac,
    whiteFrac, colourfulness, audioCorr (motion against energy, [-1, 1]): the layer alone, defined as a
                    pair's statistics are (`render.framestats`)
    coverage        fraction of pixel-frames the layer visibly draws (luma > 0.1): how much of the frame it covers
    edges           mean |difference| of horizontally and vertically neighbouring pixels' luma: spatial frequency
    rgMean, ybMean  mean opponent chroma (red-green, yellow-blue), in [-1, 1]
    rgVar, ybVar    their spatial variance, averaged over frames (a composite's colourfulness is built from them)
    histogram[40]   share of pixel-frames per luma bin of width 0.025 (black and white fractions of a composite)
    map[256]        mean luma per pixel over the frames, box-averaged to 16 x 16 (where on the frame the layer draws; the
                    overlap of two layers' maps is the spatial covariance of a composite)
    frameMs         wall ms per frame of the layer at the sampling size (its share of a pair's render cost)

Changing what is computed here changes stored fingerprints: bump FINGERPRINT_VERSION (part of their key).
"""
from __future__ import annotations

import math

import numpy as np

from ..core.contracts import now_iso
from ..core.errors import CqError
from ..render.framestats import correlation, flicker, warmup_frames
from ..render.pairstats import png_bytes

FINGERPRINT_VERSION = 2
MAP_SIZE = 16
HISTOGRAM_BINS = 40       # 0.05 and 0.95 (black and white, as the page counts them) fall on bin edges
COVERED_LUMA = 0.1
DIGITS = 6
SERIES = ("luma", "lumaVar", "motion", "energy")
SCALARS = ("lumaMean", "lumaMin", "contrast", "motionMean", "motionP90", "flicker", "blackFrac", "whiteFrac",
           "colourfulness", "audioCorr", "coverage", "edges", "rgMean", "ybMean", "rgVar", "ybVar", "frameMs")
BLACK_LUMA, WHITE_LUMA = 0.05, 0.95


def as_rgb(frames: np.ndarray) -> np.ndarray:
    """A layer's uint8 frames (count, size, size, 3) as float RGB in [0, 1]."""
    return frames.astype(np.float64) / 255.0


def _map(luma: np.ndarray) -> np.ndarray:
    """Mean luma per pixel over the frames (count, size, size), box-averaged to MAP_SIZE x MAP_SIZE (each map
    cell the mean of the pixels whose centres fall in it; nearest pixel when the frames are smaller)."""
    mean = luma.mean(axis=0)
    size = mean.shape[0]
    if size < MAP_SIZE:
        nearest = (np.arange(MAP_SIZE) * size) // MAP_SIZE
        return mean[np.ix_(nearest, nearest)]
    edges = (np.arange(MAP_SIZE) * size) // MAP_SIZE
    counts = np.diff(np.append(edges, size))
    sums = np.add.reduceat(np.add.reduceat(mean, edges, axis=0), edges, axis=1)
    return sums / np.outer(counts, counts)


def fingerprint_fields(rgb: np.ndarray, energy: np.ndarray, warmup: float, frame_ms: float) -> dict:
    """The documented fields of one layer from its frames `rgb` (F, S, S, 3) in [0, 1] and the audio energy
    (>= F frames)."""
    count = rgb.shape[0]
    if count < 3:
        raise CqError(f"a fingerprint needs 3 or more frames, got {count}")
    luma_all = 0.2126 * rgb[..., 0] + 0.7152 * rgb[..., 1] + 0.0722 * rgb[..., 2]
    skip = warmup_frames(count, warmup)
    motion_all = np.zeros(count)
    motion_all[1:] = np.abs(np.diff(luma_all, axis=0)).mean(axis=(1, 2))
    luma_frames = luma_all[skip:]
    kept = rgb[skip:]
    luma = luma_frames.mean(axis=(1, 2))
    luma_var = luma_frames.var(axis=(1, 2))
    motion = motion_all[skip:]
    energy = np.asarray(energy, dtype=np.float64).reshape(-1)[:count][skip:]
    rg = kept[..., 0] - kept[..., 1]
    yb = 0.5 * (kept[..., 0] + kept[..., 1]) - kept[..., 2]
    rg_var, yb_var = rg.var(axis=(1, 2)), yb.var(axis=(1, 2))
    rg_mean, yb_mean = rg.mean(axis=(1, 2)), yb.mean(axis=(1, 2))
    colour = np.sqrt(rg_var + yb_var) + 0.3 * np.sqrt(rg_mean ** 2 + yb_mean ** 2)
    edges = 0.5 * (np.abs(np.diff(luma_frames, axis=1)).mean() + np.abs(np.diff(luma_frames, axis=2)).mean())
    histogram = np.histogram(np.clip(luma_frames, 0.0, 1.0), bins=HISTOGRAM_BINS, range=(0.0, 1.0))[0]
    fields = {
        "luma": luma, "lumaVar": luma_var, "motion": motion, "energy": energy,
        "lumaMean": float(luma.mean()), "lumaMin": float(luma.min()),
        "contrast": min(1.0, 2.0 * float(np.sqrt(luma_var).mean())),
        "motionMean": float(motion.mean()), "motionP90": float(np.percentile(motion, 90)),
        "flicker": flicker(luma),
        "blackFrac": float((luma_frames < BLACK_LUMA).mean()), "whiteFrac": float((luma_frames > WHITE_LUMA).mean()),
        "colourfulness": float(colour.mean()), "audioCorr": correlation(motion, energy),
        "coverage": float((luma_frames > COVERED_LUMA).mean()), "edges": float(edges),
        "rgMean": float(rg_mean.mean()), "ybMean": float(yb_mean.mean()),
        "rgVar": float(rg_var.mean()), "ybVar": float(yb_var.mean()),
        "frameMs": float(frame_ms) if frame_ms and math.isfinite(frame_ms) else 0.0,
        "histogram": histogram / max(1, histogram.sum()),
        "map": _map(luma_frames).reshape(-1),
    }
    return {name: (np.round(value, DIGITS).tolist() if isinstance(value, np.ndarray) else round(value, DIGITS))
            for name, value in fields.items()}


def fingerprint_row(preset_id: str, preset_hash: str, identity: dict, settings, audio, status: str,
                    errors: list[str], result=None, frames: np.ndarray | None = None, thumb: str = "") -> dict:
    """One fingerprint row per the contract (`contracts.validate_fingerprint_row`). `identity`: its
    contentKey, engine, renderer and render (`keys.fingerprint_identity`); `result` is the layer's render
    result (None when it failed before rendering), `frames` its uint8 frames when it rendered."""
    fields: dict = {}
    if frames is not None and status == "ok":
        fields = fingerprint_fields(as_rgb(frames), audio.energy, settings.stats_warmup,
                                    result.timings.get("frameMs", 0.0))
    return {
        "presetId": preset_id, "presetHash": preset_hash, **identity, "status": status, "errors": errors,
        "timings": dict(result.timings) if result is not None else {},
        "attempts": result.attempts if result is not None else 0, "sampledAt": now_iso(),
        "node": result.node if result is not None else "", "thumb": thumb, "fingerprint": fields,
    }


def write_thumbnail(fingerprints_dir, key: str, frames) -> str:
    """Write a rendered layer's thumbnail (`pairstats.LayerFrames`) as `thumbs/<key>.png` under the
    fingerprints folder; return that relative path, or "" when the layer has none."""
    if frames is None or frames.thumb is None:
        return ""
    thumb = f"thumbs/{key}.png"
    (fingerprints_dir / thumb).parent.mkdir(parents=True, exist_ok=True)
    (fingerprints_dir / thumb).write_bytes(png_bytes(frames.thumb[..., :3]))
    return thumb
