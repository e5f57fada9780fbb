"""Preset features, the measured-quality target and the negatives' pairing rule."""

import numpy as np
import pytest

from stages.core.contracts import STAT_FIELDS
from stages.core.settings import SampleSettings
from stages.core.workspace import NODE_MODULES_DIR
from stages.learn.features import (
    BASE_VALUES,
    PAIR_FEATURES,
    PRESET_FEATURES,
    FeatureCache,
    file_features,
    pair_features,
    preset_features,
)
from stages.learn.quality import measured_quality, quality_factors
from stages.learn.sources import negative_indices

CONVERTED = NODE_MODULES_DIR / "butterchurn-presets" / "presets" / "converted"


def feature(vector, name):
    return float(vector[PRESET_FEATURES.index(name)])


def real_presets(count):
    files = sorted(CONVERTED.glob("*.json"))[:count]
    if len(files) < count:
        pytest.skip("butterchurn-presets is not installed (run `doit web_deps`)")
    return files


def test_real_presets_give_bounded_named_vectors_that_differ():
    vectors = np.stack([file_features(path) for path in real_presets(12)])
    assert vectors.shape == (12, len(PRESET_FEATURES))
    assert np.isfinite(vectors).all() and vectors.min() >= 0 and vectors.max() <= 1
    assert len(np.unique(vectors, axis=0)) == 12
    assert vectors.std(axis=0).max() > 0.2


def test_missing_base_values_take_butterchurn_defaults_and_values_are_clipped():
    empty = preset_features({"baseVals": {}})
    defaults = preset_features({"baseVals": {name: default for name, default, _, _ in BASE_VALUES}})
    assert np.array_equal(empty, defaults)
    wild = preset_features({"baseVals": {"zoom": 40.0, "mv_x": 64.0, "decay": "not a number"}})
    assert feature(wild, "zoom") == 1.0 and feature(wild, "mv_x") == 1.0
    assert feature(wild, "decay") == feature(empty, "decay")


def test_shapes_waves_equations_and_shaders_are_counted():
    bare = preset_features({"baseVals": {"wave_mode": 3}})
    rich = preset_features({
        "baseVals": {"wave_mode": 3},
        "shapes": [{"baseVals": {"enabled": 1, "additive": 1}}, {"baseVals": {"enabled": 0}}],
        "waves": [{"baseVals": {"enabled": 1}, "point_eqs_eel": "x = sample; y = bass * 0.5;"}],
        "frame_eqs_eel": "zoom = 1 + 0.1 * bass_att; rot = treb;",
        "warp": "shader_body { ret = GetBlur1(uv).xyz; }", "comp": "",
    })
    assert feature(bare, "wave_mode_3") == 1.0 and feature(bare, "wave_mode_0") == 0.0
    assert feature(rich, "shapes_enabled") == 0.25 and feature(rich, "shapes_additive") == 0.25
    assert feature(rich, "waves_enabled") == 0.25
    assert feature(rich, "eq_frame_size") > 0 and feature(bare, "eq_frame_size") == 0
    assert feature(rich, "eq_audio_refs") > 0
    assert feature(rich, "has_warp_shader") == 1.0 and feature(rich, "has_comp_shader") == 0.0
    assert feature(rich, "shader_uses_blur") == 1.0


def test_milk_presets_work_like_json(tmp_path, corpus):
    milk = sorted(corpus.glob("*/*.milk"))[:6]
    if not milk:
        pytest.skip("the shared corpus is not here")
    cache = FeatureCache(tmp_path / "milk-cache")
    vectors = [cache.get(path) for path in milk]
    assert all(vector is not None for vector in vectors), cache.failures
    assert any(feature(vector, "has_warp_shader") == 1.0 for vector in vectors)
    handmade = tmp_path / "handmade.milk"
    handmade.write_text("[preset00]\nfDecay=0.900\nzoom=1.100\nnWaveMode=5\nwarp=0.5\n")
    vector = cache.get(handmade)
    assert vector is not None, cache.failures
    assert feature(vector, "zoom") == pytest.approx(0.75)
    assert feature(vector, "decay") == pytest.approx(0.5)
    assert feature(vector, "wave_mode_5") == 1.0


def test_unreadable_and_missing_presets_are_failures_not_crashes(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    cache = FeatureCache(tmp_path / "cache")
    assert cache.get(broken) is None and "not valid JSON" in cache.failures[broken]
    assert cache.get(tmp_path / "absent.json") is None


def test_pair_features_are_fg_bg_difference_and_product():
    fg, bg = file_features(real_presets(2)[0]), file_features(real_presets(2)[1])
    pair = pair_features(fg, bg)
    assert pair.shape == (len(PAIR_FEATURES),)
    size = len(PRESET_FEATURES)
    assert np.allclose(pair[2 * size:3 * size], fg - bg) and np.allclose(pair[3 * size:4 * size], fg * bg)
    assert not np.allclose(pair, pair_features(bg, fg))
    assert pair_features(np.stack([fg, bg]), np.stack([bg, fg])).shape == (2, len(PAIR_FEATURES))


HEALTHY = {"lumaMean": 0.35, "lumaMin": 0.1, "contrast": 0.3, "colourfulness": 0.3, "motionMean": 0.03,
           "motionP90": 0.06, "flicker": 0.01, "blackFrac": 0.05, "whiteFrac": 0.01, "audioCorr": 0.4,
           "fgShare": 0.5, "bgShare": 0.5}


def row(status="ok", reasons=(), frame_ms=None, **stats):
    return {"status": status, "reasons": list(reasons), "stats": {**HEALTHY, **stats} if status == "ok" else {},
            "timings": {} if frame_ms is None else {"frameMs": frame_ms}}


@pytest.mark.parametrize("problem, stats", [
    ("dark", {"lumaMean": 0.02, "blackFrac": 0.9}),
    ("washedOut", {"lumaMean": 0.97, "whiteFrac": 0.9}),
    ("flat", {"contrast": 0.0}),
    ("frozen", {"motionMean": 0.0, "motionP90": 0.0}),
    ("strobing", {"flicker": 0.5}),
    ("deaf", {"audioCorr": -0.2}),
    ("drowned", {"fgShare": 0.0, "bgShare": 1.0}),
])
def test_each_problem_lowers_the_measured_quality(problem, stats):
    assert set(HEALTHY) == set(STAT_FIELDS)
    healthy = measured_quality(row())
    assert healthy > 0.9
    bad = measured_quality(row(**stats))
    assert bad < healthy * 0.65
    factors = quality_factors({**HEALTHY, **stats})
    assert min(factors, key=factors.get) == problem
    assert all(0.0 <= value <= 1.0 for value in factors.values())


def test_failed_renders_measure_zero():
    for status in ("shader-failed", "timeout", "black", "eel-error"):
        assert measured_quality(row(status)) == 0.0


def test_render_cost_lowers_the_measured_quality_and_too_heavy_measures_zero():
    healthy = measured_quality(row())
    capped = SampleSettings(max_frame_ms=8.0)
    assert measured_quality(row(frame_ms=2.0), capped) == healthy  # a quarter of the budget
    near = measured_quality(row(frame_ms=7.0), capped)
    assert 0.5 * healthy <= near < 0.8 * healthy
    assert measured_quality(row("too-heavy", ["too-heavy"], frame_ms=30.0), capped) == 0.0
    assert measured_quality(row(reasons=["too-heavy"], frame_ms=30.0), capped) == 0.0
    assert measured_quality(row(frame_ms=7.0)) == healthy  # no cap: a wall time alone is not judged


def test_negatives_respect_the_distance_and_are_distinct():
    rng = np.random.default_rng(0)
    pairs, distance, note = negative_indices(np.arange(300), 2000, 50, rng)
    assert pairs.shape == (2000, 2) and distance == 50 and note == ""
    assert (np.abs(pairs[:, 0] - pairs[:, 1]) >= 50).all()
    assert len(np.unique(pairs, axis=0)) == 2000
    assert pairs.min() >= 0 and pairs.max() < 300


def test_negatives_measure_distance_in_manifest_positions_of_a_subset():
    positions = np.array([0, 1, 2, 40, 41, 90])
    pairs, distance, _ = negative_indices(positions, 100, 50, np.random.default_rng(0))
    assert distance == 45
    gaps = np.abs(positions[pairs[:, 0]] - positions[pairs[:, 1]])
    assert (gaps >= 45).all() and len(pairs) == 10  # {0, 1, 2, 40, 41} x {90}, both ways


def test_negatives_clamp_the_distance_for_small_packs_and_say_so():
    pairs, distance, note = negative_indices(np.arange(10), 1000, 50, np.random.default_rng(0))
    assert distance == 5 and "clamped" in note and "distinct" in note
    assert len(pairs) == 30 and (np.abs(pairs[:, 0] - pairs[:, 1]) >= 5).all()
    assert len(negative_indices(np.arange(1), 100, 50, np.random.default_rng(0))[0]) == 0
