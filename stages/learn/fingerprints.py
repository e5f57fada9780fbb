"""Fingerprints as model inputs: the stored rows of the workspace, looked up by preset, as flat vectors.

In: the fingerprint rows (`artifacts/fingerprints/shards/*.jsonl`, `stages.fingerprint`) and the sampler's
settings. Out: `FingerprintStore.vector(preset_hash)`: one flat float32 vector per preset laid out as
`Layout` says (scalars, luma histogram, 16x16 luma map, then the per-frame series luma, lumaVar, motion and
energy), or the vector of a preset without a fingerprint (all zeros but the flags). The series length W
follows from the settings (frames after the warm-up), so a vector's layout is known from its length alone.

Which row counts for a preset: a row of its content (`presetHash`) rendered under the current layer settings
(`keys.layer_render_key`), preferring the current engine and renderer, then the latest. A row whose
render failed (shader-failed, eel-error, too-heavy, ...) says so in `layerFailed`: a pair with that layer
would fail the same way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..core.keys import engine_version, layer_render_key
from ..core.rows import TRANSIENT_STATUSES, read_fingerprint_rows
from ..core.settings import SampleSettings
from ..core.workspace import Workspace
from ..render.fingerprint import HISTOGRAM_BINS, SERIES
from ..render.framestats import warmup_frames
from ..render.versions import KEY_VERSIONS

SCALARS = ("lumaMean", "lumaMin", "contrast", "motionMean", "motionP90", "flicker", "blackFrac", "whiteFrac",
           "colourfulness", "audioCorr", "coverage", "edges", "rgMean", "ybMean", "rgVar", "ybVar", "frameMs",
           "fingerprinted", "layerFailed")
MAP_CELLS = 256


@dataclass(frozen=True)
class Layout:
    """Where each part of a fingerprint vector lies."""

    frames: int  # W, the series length

    @property
    def scalars(self) -> slice:
        return slice(0, len(SCALARS))

    @property
    def histogram(self) -> slice:
        return slice(len(SCALARS), len(SCALARS) + HISTOGRAM_BINS)

    @property
    def map(self) -> slice:
        start = len(SCALARS) + HISTOGRAM_BINS
        return slice(start, start + MAP_CELLS)

    def series(self, name: str) -> slice:
        start = len(SCALARS) + HISTOGRAM_BINS + MAP_CELLS + SERIES.index(name) * self.frames
        return slice(start, start + self.frames)

    @property
    def width(self) -> int:
        return len(SCALARS) + HISTOGRAM_BINS + MAP_CELLS + len(SERIES) * self.frames

    @classmethod
    def of_width(cls, width: int) -> "Layout":
        frames, rest = divmod(width - len(SCALARS) - HISTOGRAM_BINS - MAP_CELLS, len(SERIES))
        if rest or frames < 1:
            raise ValueError(f"{width} values are no fingerprint vector")
        return cls(frames)

    @classmethod
    def of_settings(cls, settings: SampleSettings) -> "Layout":
        return cls(settings.frames - warmup_frames(settings.frames, settings.stats_warmup))


def empty_vector(layout: Layout, failed: bool = False) -> np.ndarray:
    vector = np.zeros(layout.width, dtype=np.float32)
    vector[SCALARS.index("layerFailed")] = 1.0 if failed else 0.0
    return vector


def fingerprint_vector(fields: dict, layout: Layout) -> np.ndarray | None:
    """The vector of an ok row's fields; None when its series do not have the layout's length."""
    if any(len(fields.get(name, ())) != layout.frames for name in SERIES):
        return None
    vector = empty_vector(layout)
    scalars = [float(fields.get(name, 0.0)) for name in SCALARS[:-2]] + [1.0, 0.0]
    vector[layout.scalars] = [value if math.isfinite(value) else 0.0 for value in scalars]
    vector[layout.histogram] = fields["histogram"]
    vector[layout.map] = fields["map"]
    for name in SERIES:
        vector[layout.series(name)] = fields[name]
    return vector


class FingerprintStore:
    """The workspace's fingerprints by preset content, read once."""

    def __init__(self, workspace: Workspace, settings: SampleSettings):
        self.layout = Layout.of_settings(settings)
        wanted = layer_render_key(settings, KEY_VERSIONS)
        engine = engine_version()
        best: dict[str, tuple] = {}
        for row in read_fingerprint_rows(workspace).by_key.values():
            render = {name: value for name, value in row["render"].items() if name != "audioKey"}
            if render != wanted or row["status"] in TRANSIENT_STATUSES:
                continue
            rank = (row["engine"] == engine, row["status"] == "ok", row["sampledAt"])
            if row["presetHash"] not in best or rank > best[row["presetHash"]][0]:
                best[row["presetHash"]] = (rank, row)
        self.rows = {digest: row for digest, (_, row) in best.items()}

    def __len__(self) -> int:
        return len(self.rows)

    def vector(self, preset_hash: str) -> np.ndarray:
        row = self.rows.get(preset_hash)
        if row is None:
            return empty_vector(self.layout)
        if row["status"] != "ok":
            return empty_vector(self.layout, failed=True)
        vector = fingerprint_vector(row["fingerprint"], self.layout)
        return vector if vector is not None else empty_vector(self.layout)
