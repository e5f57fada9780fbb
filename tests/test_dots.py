"""Dotted waves render reproducibly: the page gives butterchurn's vertex shaders MilkDrop's one-pixel dot
(web/sampler.dots.js), so a preset drawn with gl.POINTS no longer depends on what was drawn before it."""
from __future__ import annotations

import pytest

from stages.core.settings import SampleSettings
from stages.core.workspace import WEB_DIR
from stages.presets.conversion import load_preset
from stages.render.audio import load_audio
from stages.render.pool import PairJob, RenderPool
from stages.screen import QUIET_LAYER

PRESETS = WEB_DIR / "node_modules" / "butterchurn-presets" / "presets" / "converted"
SETTINGS = SampleSettings(width=64, height=64, frames=12, readback=32, workers=1, pair_timeout_s=60,
                          reload_every=0)
# Additive dots only: the wave is the whole picture, so its dot size decides every pixel.
DOTS = {**QUIET_LAYER, "baseVals": {"decay": 0.9, "wave_a": 1.0, "wave_dots": 1, "additivewave": 1, "wave_mode": 0,
                                    "wave_scale": 2.0, "wave_r": 1.0, "wave_g": 1.0, "wave_b": 1.0}}
# Presets drawn between two renders of DOTS: thick waves, shapes, shaders (what a run draws in between).
OTHERS = ("EVET - RGB Singularity.json", "$$$ Royal - Mashup (157).json", "$$$ Royal - Mashup (337).json")


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """fgLuma of DOTS drawn first in a fresh page, and again after each of OTHERS."""
    jobs = [PairJob(0, DOTS, QUIET_LAYER, "dots", "quiet")]
    for index, name in enumerate(OTHERS, start=1):
        jobs.append(PairJob(2 * index - 1, load_preset(PRESETS / name), QUIET_LAYER, name, "quiet"))
        jobs.append(PairJob(2 * index, DOTS, QUIET_LAYER, "dots", "quiet"))
    results = {}
    with RenderPool(SETTINGS, load_audio(SETTINGS).frames, tmp_path_factory.mktemp("state")) as pool:
        for result in pool.render(jobs):
            assert result.status == "ok", result.errors
            results[result.job.pair] = result.series
    return [results[pair] for pair in sorted(results) if pair % 2 == 0]


def test_dotted_wave_draws(series):
    assert max(series[0]["fgLuma"]) > 0.01


def test_dotted_wave_is_identical_whatever_was_drawn_before(series):
    for later in series[1:]:
        assert later == series[0]
