"""stages.framestats on constructed frame series: each failure mode is recognised, a good clip passes."""
import dataclasses

import numpy as np
import pytest

from stages.core.contracts import STAT_FIELDS
from stages.core.errors import CqError
from stages.core.keys import stats_key
from stages.core.settings import SampleSettings
from stages.render.framestats import SERIES_FIELDS, correlation, flicker, pair_stats
from stages.render.versions import KEY_VERSIONS

F = 20
SETTINGS = SampleSettings(frames=F)
# Two beats a second at 30 fps, as the click track gives: a spike that decays.
ENERGY = 0.05 + 0.25 * np.exp(-(np.arange(F) % 15) / 3.0)


def clip(**overrides):
    """A healthy pair: mid-grey, textured, moving with the beat, both layers visible."""
    phase = np.arange(F) / F
    series = {
        "luma": 0.4 + 0.05 * np.sin(2 * np.pi * phase),
        "lumaStd": np.full(F, 0.2),
        "colour": np.full(F, 0.3),
        "delta": np.concatenate([[0.0], 0.01 + 0.1 * ENERGY[1:]]),
        "black": np.full(F, 0.1),
        "white": np.full(F, 0.02),
        "fgLuma": np.full(F, 0.45),
        "bgLuma": np.full(F, 0.3),
        "fgShare": np.full(F, 0.65),
    }
    series.update({name: np.broadcast_to(np.asarray(value, float), (F,)) for name, value in overrides.items()})
    return {name: [float(v) for v in values] for name, values in series.items()}


def test_a_healthy_clip_passes_with_every_stat():
    seed, stats, ok, reasons = pair_stats(clip(), ENERGY, SETTINGS)
    assert ok and reasons == []
    assert tuple(stats) == STAT_FIELDS
    assert all(isinstance(value, float) and np.isfinite(value) for value in stats.values())
    assert stats["contrast"] == pytest.approx(0.4)
    assert stats["audioCorr"] == pytest.approx(1.0)
    assert stats["fgShare"] + stats["bgShare"] == pytest.approx(1.0)
    assert seed == {"vizAvgLuma": stats["lumaMean"], "vizAvgFrameDelta": stats["motionMean"],
                    "pmAvgLumaFg": 0.45, "pmAvgLumaBg": 0.3}
    assert 0.35 <= stats["lumaMin"] < stats["lumaMean"] < 0.45


def test_a_black_clip_is_too_dark_and_frozen():
    _, stats, ok, reasons = pair_stats(clip(luma=0.0, lumaStd=0.0, delta=0.0, black=1.0, fgLuma=0.0,
                                            bgLuma=0.0), ENERGY, SETTINGS)
    assert not ok and "too-dark" in reasons and "low-motion" in reasons
    assert stats["blackFrac"] == 1.0 and stats["contrast"] == 0.0


def test_a_white_clip_is_too_bright():
    _, stats, _, reasons = pair_stats(clip(luma=0.97, white=0.9), ENERGY, SETTINGS)
    assert "too-bright" in reasons and "too-dark" not in reasons and stats["whiteFrac"] == 0.9


def test_a_frozen_clip_is_low_motion():
    _, stats, _, reasons = pair_stats(clip(delta=0.001), ENERGY, SETTINGS)
    assert reasons == ["low-motion"] and stats["motionMean"] == pytest.approx(0.001)


def test_an_alternating_clip_is_strobing():
    luma = np.where(np.arange(F) % 2 == 0, 0.1, 0.7)
    _, stats, _, reasons = pair_stats(clip(luma=luma), ENERGY, SETTINGS)
    assert "strobing" in reasons and stats["flicker"] == pytest.approx(0.6)


def test_flicker_ignores_fades_and_counts_one_cut_once():
    assert flicker(np.linspace(0, 1, F)) == pytest.approx(0.0)
    cut = np.where(np.arange(F) < F // 2, 0.2, 0.6)
    assert flicker(cut) == pytest.approx(2 * 0.2 / (F - 2))
    _, _, _, reasons = pair_stats(clip(luma=np.linspace(0.1, 0.8, F)), ENERGY, SETTINGS)
    assert "strobing" not in reasons


def test_motion_against_the_beat_is_deaf_but_constant_audio_is_not_judged():
    against = np.concatenate([[0.0], 0.05 - 0.1 * ENERGY[1:]])
    _, stats, _, reasons = pair_stats(clip(delta=against), ENERGY, SETTINGS)
    assert "deaf" in reasons and stats["audioCorr"] == pytest.approx(-1.0)
    _, stats, _, reasons = pair_stats(clip(delta=against), np.full(F, 0.1), SETTINGS)
    assert "deaf" not in reasons and stats["audioCorr"] == 0.0


@pytest.mark.parametrize("share, reason", [(0.01, "fg-drowned"), (0.99, "bg-drowned")])
def test_a_drowned_layer_is_named(share, reason):
    _, stats, _, reasons = pair_stats(clip(fgShare=share), ENERGY, SETTINGS)
    assert reasons == [reason] and stats["fgShare"] == share


def test_the_warm_up_from_black_is_left_out():
    luma = np.concatenate([[0.0, 0.0], np.full(F - 2, 0.5)])
    delta = np.concatenate([[0.0, 0.0, 0.5], np.full(F - 3, 0.02)])
    _, stats, _, _ = pair_stats(clip(luma=luma, delta=delta), ENERGY, SETTINGS)
    assert stats["lumaMin"] == 0.5 and stats["motionMean"] == pytest.approx((0.5 + 0.02 * (F - 3)) / (F - 2), abs=1e-6)
    _, stats, _, _ = pair_stats(clip(luma=luma, delta=delta), ENERGY, dataclasses.replace(SETTINGS, stats_warmup=0.15))
    assert stats["motionMean"] == pytest.approx(0.02)


def test_thresholds_are_settings():
    dim = clip(luma=0.08)
    assert "too-dark" not in pair_stats(dim, ENERGY, SETTINGS)[3]
    stricter = dataclasses.replace(SETTINGS, min_luma=0.1)
    assert "too-dark" in pair_stats(dim, ENERGY, stricter)[3]
    assert stats_key(stricter, KEY_VERSIONS) != stats_key(SETTINGS, KEY_VERSIONS)
    assert stats_key(dataclasses.replace(SETTINGS, workers=3), KEY_VERSIONS) == stats_key(SETTINGS, KEY_VERSIONS)


def test_correlation_is_bounded_and_zero_for_constants():
    assert correlation(np.ones(5), np.arange(5.0)) == 0.0
    assert correlation(np.arange(5.0), 3 * np.arange(5.0) + 1) == pytest.approx(1.0)


@pytest.mark.parametrize("broken, message", [
    (lambda s: s.pop("fgShare"), "lack fgShare"),
    (lambda s: s.update(luma=s["luma"][:-1]), "one value per frame"),
    (lambda s: s["delta"].__setitem__(3, float("nan")), "delta hold NaN"),
    (lambda s: s.update(colour="bright"), "'colour' is not a list of numbers"),
], ids=["missing", "short", "nan", "text"])
def test_broken_series_are_clear_errors(broken, message):
    series = clip()
    broken(series)
    with pytest.raises(CqError, match=message):
        pair_stats(series, ENERGY, SETTINGS)


def test_every_series_field_is_required():
    assert set(clip()) == set(SERIES_FIELDS)
