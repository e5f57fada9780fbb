"""A pair's per-frame statistics and thumbnail, composed from its two layers rendered alone.

In: each layer's frames as the sampling page's `renderLayer` returns them (`LayerFrames`: every frame reduced
on the GPU to the readback size, RGB bytes, and the full-size frame at the thumbnail frame), the pair's blend
and fg opacity. Out: `pair_series(fg, bg, blend, opacity)` -> the per-frame series `render.framestats`
turns into a row's statistics, and `pair_thumbnail(...)` -> PNG bytes of the composite.

Why here and not in the page: a pair's picture is its two layers composited per pixel, and each layer draws
the same whatever it is paired with (its own visualizer, its own seeded random stream, the same audio). So a
preset renders once, however many pairs it is in, and any pair of rendered presets is measured by arithmetic.
The arithmetic is the page's `renderPair` (web/sampler.js, `measureFrame` and `blendFunction`), in float64 on
values v/255 of the encoded bytes, with a = fg_opacity:
    normal  c = a*fg + (1-a)*bg;   screen  c = bg + a*fg*(1-bg);   add  c = min(1, bg + a*fg)
Series per frame: luma, lumaStd, colour, delta, black, white, fgLuma, bgLuma, fgShare, defined as in the page.
"""
from __future__ import annotations

import base64
import functools
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from ..core.errors import CqError

BLACK_LUMA, WHITE_LUMA = 0.05, 0.95
FLAT_COVARIANCE = 1e-9
REC709 = np.array([0.2126, 0.7152, 0.0722])


@dataclass(frozen=True)
class LayerFrames:
    """One preset's frames: `frames` uint8 (count, size, size, 3), `thumb` uint8 (height, width, 4) top-down
    or None when the render stopped before the thumbnail frame."""

    frames: np.ndarray
    thumb: np.ndarray | None

    @classmethod
    def from_page(cls, series: dict, width: int, height: int) -> "LayerFrames":
        """From `renderLayer`'s {frames, size, count, thumb} (base64, rows bottom-up as GL reads them)."""
        size, count = series["size"], series["count"]
        raw = np.frombuffer(base64.b64decode(series["frames"]), dtype=np.uint8)
        if raw.size != count * size * size * 3:
            raise CqError(f"a layer's frames hold {raw.size} bytes, expected {count} frames of {size}x{size} RGB "
                          "(web/sampler.js and stages/render/pairstats.py disagree)")
        thumb = None
        if series.get("thumb"):
            pixels = np.frombuffer(base64.b64decode(series["thumb"]), dtype=np.uint8)
            if pixels.size != width * height * 4:
                raise CqError(f"a layer's thumbnail holds {pixels.size} bytes, expected {width}x{height} RGBA")
            thumb = pixels.reshape(height, width, 4)[::-1]
        return cls(raw.reshape(count, size, size, 3), thumb)

    @property
    def rgb(self) -> np.ndarray:
        """The frames as float RGB in [0, 1], (count, pixels, 3)."""
        return self.frames.reshape(self.frames.shape[0], -1, 3) / 255.0

    @functools.cached_property
    def opponents(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Luma, red-green and yellow-blue per pixel (count, pixels), kept while the layer is (a normal blend is
        linear in them, so each pair of the layer reuses them)."""
        rgb = self.rgb
        return rgb @ REC709, rgb[..., 0] - rgb[..., 1], 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]


def _blend(blend: str, opacity: float):
    if blend == "screen":
        return lambda f, b: b + opacity * f * (1 - b)
    if blend == "add":
        return lambda f, b: np.minimum(1.0, b + opacity * f)
    return lambda f, b: opacity * f + (1 - opacity) * b


def pair_series(fg: LayerFrames, bg: LayerFrames, blend: str, opacity: float) -> dict[str, list[float]]:
    """The page's per-frame series of the composite of `fg` over `bg` (module docstring)."""
    if fg.frames.shape != bg.frames.shape:
        raise CqError(f"the layers' frames differ in shape: fg {fg.frames.shape}, bg {bg.frames.shape}")
    count = fg.frames.shape[0]
    (y_fg, rg_fg, yb_fg), (y_bg, rg_bg, yb_bg) = fg.opponents, bg.opponents
    if blend == "normal":  # linear: the composite's luma and chroma are the layers', mixed
        y = opacity * y_fg + (1 - opacity) * y_bg
        rg = opacity * rg_fg + (1 - opacity) * rg_bg
        yb_chroma = opacity * yb_fg + (1 - opacity) * yb_bg
    else:
        c = _blend(blend, opacity)(fg.rgb, bg.rgb)
        y = c @ REC709
        rg = c[..., 0] - c[..., 1]
        yb_chroma = 0.5 * (c[..., 0] + c[..., 1]) - c[..., 2]
    mean_y = y.mean(axis=1)
    mean_rg, mean_ybc = rg.mean(axis=1), yb_chroma.mean(axis=1)
    var_rg = np.maximum(0.0, (rg * rg).mean(axis=1) - mean_rg ** 2)
    var_yb = np.maximum(0.0, (yb_chroma * yb_chroma).mean(axis=1) - mean_ybc ** 2)
    mean_f, mean_b = y_fg.mean(axis=1), y_bg.mean(axis=1)
    cov_f = np.maximum(0.0, (y * y_fg).mean(axis=1) - mean_y * mean_f)
    cov_b = np.maximum(0.0, (y * y_bg).mean(axis=1) - mean_y * mean_b)
    delta = np.zeros(count)
    delta[1:] = np.abs(np.diff(y, axis=0)).mean(axis=1)
    flat = cov_f + cov_b <= FLAT_COVARIANCE
    series = {
        "luma": mean_y,
        "lumaStd": np.sqrt(np.maximum(0.0, (y * y).mean(axis=1) - mean_y ** 2)),
        "colour": np.sqrt(var_rg + var_yb) + 0.3 * np.sqrt(mean_rg ** 2 + mean_ybc ** 2),
        "delta": delta,
        "black": (y < BLACK_LUMA).mean(axis=1),
        "white": (y > WHITE_LUMA).mean(axis=1),
        "fgLuma": mean_f,
        "bgLuma": mean_b,
        "fgShare": np.where(flat, 0.5, cov_f / np.where(flat, 1.0, cov_f + cov_b)),
    }
    return {name: values.tolist() for name, values in series.items()}


def pair_thumbnail(fg: LayerFrames, bg: LayerFrames, blend: str, opacity: float) -> bytes | None:
    """PNG bytes of the full-size composite at the thumbnail frame (None when a layer has no thumbnail)."""
    if fg.thumb is None or bg.thumb is None:
        return None
    composite = _blend(blend, opacity)(fg.thumb[..., :3] / 255.0, bg.thumb[..., :3] / 255.0)
    return png_bytes(np.rint(np.clip(composite, 0.0, 1.0) * 255.0).astype(np.uint8))


def png_bytes(rgb: np.ndarray) -> bytes:
    """A minimal PNG (8-bit RGB or RGBA, no filtering) of a top-down (height, width, 3 or 4) uint8 image."""
    height, width, channels = rgb.shape
    colour_type = {3: 2, 4: 6}[channels]
    scanlines = np.concatenate([np.zeros((height, 1), np.uint8), rgb.reshape(height, -1)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 6))
            + chunk(b"IEND", b""))
