"""Scoring behind the gates (every sampled pair by its measurement, the rest by the model, ratings on top),
and the train/score tasks run by real doit without a browser."""

import shutil

import numpy as np
import pytest
from packs import make_pack

from stages.core.contracts import (
    append_jsonl,
    load_manifest,
    now_iso,
    read_json,
    read_jsonl,
    validate_quality,
    write_bytes_atomic,
)
from stages.core.errors import CqError
from stages.core.settings import TrainSettings
from stages.core.workspace import Workspace
from stages.learn.checkpoint import load_checkpoint
from stages.learn.features import FeatureCache, pair_features
from stages.learn.gates import gate_failures, quality_stats
from stages.learn.metrics import spearman
from stages.learn.quality import measured_quality
from stages.learn.scoring import score_pack
from stages.learn.sources import read_pack_presets
from stages.learn.training import train

SMALL = dict(epochs=12, batch_size=64, neg_samples=400, neg_min_pair_distance=10, learning_rate=5e-3)


def quiet(*_):
    pass


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A 120-pair pack, 80% sampled, whose pair 3 lost its bg preset; trained and scored once."""
    workspace = Workspace(tmp_path_factory.mktemp("score-ws"))
    make_pack(workspace, "tiny", 120, seed=4, sampled=0.8, presets=None, rows="shard")
    (workspace.pack_dir("tiny") / "bg" / "coupled_00003_bg.json").unlink()
    train(workspace, TrainSettings(**SMALL), log=quiet)
    return workspace, score_pack(workspace, "tiny", log=quiet)


def test_every_pair_with_files_is_scored_and_missing_ones_are_counted(scored):
    workspace, quality = scored
    manifest = load_manifest(workspace.manifest_path("tiny"))
    on_disk = read_json(workspace.quality_path("tiny"))
    validate_quality(on_disk, workspace.quality_path("tiny"), manifest)
    assert on_disk["pack"] == "tiny"
    assert sorted(p["pair"] for p in on_disk["pairs"]) == [p for p in range(120) if p != 3]
    assert on_disk["stats"]["missingFiles"] == 1 and "coupled_00003_bg.json" in on_disk["stats"]["missing"][0]
    assert 0.7 < on_disk["stats"]["evalCoverage"] < 0.9
    assert on_disk["stats"]["model"]["crossValidation"]["pairs"] > 0
    assert on_disk["qualityStats"]["std"] >= 0.03
    assert not workspace.rejected_quality_path("tiny").exists()


def test_sampled_pairs_are_scored_by_their_measurement_and_the_rest_by_the_model(scored):
    workspace, quality = scored
    rows = {row["pair"]: row for row in read_jsonl(workspace.shard_path("tiny", 0)).rows}
    share = TrainSettings().model_share
    sampled = [p for p in quality["pairs"] if p["pair"] in rows]
    assert sampled and all(p["basis"] == "measured" for p in sampled)
    measured = np.array([measured_quality(rows[p["pair"]]) for p in sampled])
    scores = np.array([p["quality01"] for p in sampled])
    assert np.all(scores <= measured + 1e-6) and np.all(scores >= (1 - share) * measured - 1e-6)
    assert spearman(scores, measured) >= 0.98 and quality["stats"]["sampledSpearman"] >= 0.98
    unsampled = [p for p in quality["pairs"] if p["pair"] not in rows]
    assert unsampled and all(p["basis"] == "model" and "measured" not in p for p in unsampled)


def test_the_refit_covers_pairs_the_cross_validation_held_out(scored):
    """The pair the out-of-fold net misjudged most is scored by its measurement, not by that guess."""
    workspace, quality = scored
    validated = read_json(workspace.train_report_path)["crossValidation"]
    worst = next(item for item in validated["outOfFold"] if item["key"] == validated["disagreements"][0])
    entry = next(p for p in quality["pairs"] if f"tiny:{p['pair']}" == worst["key"])
    share = TrainSettings().model_share
    assert abs(worst["net"] - worst["measured"]) > share * worst["measured"]
    assert (1 - share) * worst["measured"] - 1e-6 <= entry["quality01"] <= worst["measured"] + 1e-6


def test_a_failed_gate_keeps_the_last_good_file_and_gives_the_advice_in_order(scored):
    workspace, _ = scored
    good = workspace.quality_path("tiny").read_bytes()
    train(workspace, TrainSettings(**{**SMALL, "min_quality_std": 0.9}), log=quiet)
    with pytest.raises(CqError) as failure:
        score_pack(workspace, "tiny", log=quiet)
    message = str(failure.value)
    assert "MinQualityStd 0.9" in message
    assert message.index("more coverage") < message.index("more negatives") < message.index("more epochs")
    assert workspace.quality_path("tiny").read_bytes() == good
    rejected = read_json(workspace.rejected_quality_path("tiny"))
    assert rejected["stats"]["gateFailures"] and rejected["qualityStats"]["std"] < 0.9
    train(workspace, TrainSettings(**SMALL), log=quiet)
    score_pack(workspace, "tiny", log=quiet)
    assert not workspace.rejected_quality_path("tiny").exists()


def test_gates_catch_flat_distributions_and_a_min_at_the_median():
    flat = quality_stats(np.full(50, 0.6) + np.linspace(0, 0.01, 50))
    assert any("MinQualityStd" in failure for failure in gate_failures(flat, 0.03))
    floor_heavy = quality_stats(np.concatenate([np.full(30, 0.3), np.linspace(0.3, 1.0, 20)]))
    assert floor_heavy["std"] > 0.03
    assert [failure.split()[0] for failure in gate_failures(floor_heavy, 0.03)] == ["qualityStats.min"]
    spread = quality_stats(np.linspace(0.0, 1.0, 50))
    assert gate_failures(spread, 0.03) == []


def test_a_missing_checkpoint_says_to_train(tmp_path):
    workspace = Workspace(tmp_path)
    make_pack(workspace, "tiny", 6, presets=None, rows="shard")
    with pytest.raises(CqError, match="doit train"):
        score_pack(workspace, "tiny", log=quiet)


def test_doit_train_runs_without_a_browser_retrains_on_a_changed_knob_and_fails_on_the_gate(workspace, doit,
                                                                                         no_browser):
    make_pack(workspace, "tiny", 120, seed=4, presets=None, rows="shard")
    knobs = ["--epochs", "12", "--batch-size", "64", "--neg-samples", "400", "--neg-min-pair-distance", "10",
             "--learning-rate", "0.005"]

    first = doit(workspace, "train", *knobs, check=False, env=no_browser)
    assert first.returncode == 0, first.stdout + first.stderr
    assert ".  train:model" in first.stdout and ".  score:tiny" in first.stdout
    assert "sample:" not in first.stdout and "merge:" not in first.stdout
    assert workspace.quality_path("tiny").is_file() and workspace.checkpoint_path.is_file()

    again = doit(workspace, "train", *knobs, check=False, env=no_browser)
    assert again.returncode == 0 and "-- train:model" in again.stdout and "-- score:tiny" in again.stdout

    changed = doit(workspace, "train", *knobs[:-2], "--learning-rate", "0.004", check=False, env=no_browser)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert ".  train:model" in changed.stdout

    good = workspace.quality_path("tiny").read_bytes()
    gated = doit(workspace, "train", *knobs, "--min-quality-std", "0.9", check=False, env=no_browser)
    assert gated.returncode != 0
    output = gated.stdout + gated.stderr
    assert "fail the gate" in output and "more negatives" in output and "Traceback" not in output
    assert workspace.quality_path("tiny").read_bytes() == good
    assert workspace.rejected_quality_path("tiny").is_file()


@pytest.mark.parametrize("how", ["move", "copy"])
def test_a_moved_or_copied_workspace_does_not_retrain(tmp_path, doit, no_browser, how):
    workspace = Workspace(tmp_path / "night")
    make_pack(workspace, "tiny", 120, seed=4, presets=None, rows="shard")
    knobs = ["--epochs", "6", "--neg-samples", "400", "--neg-min-pair-distance", "10"]
    doit(workspace, "train", *knobs, env=no_browser)
    doit(workspace, "-s", "report", env=no_browser)
    elsewhere = Workspace(tmp_path / "bigger-machine" / "night")
    elsewhere.root.parent.mkdir()
    (shutil.move if how == "move" else shutil.copytree)(workspace.root, elsewhere.root)
    again = doit(elsewhere, "train", env=no_browser)
    assert again.executed == [], again.stdout
    assert doit(elsewhere, "-s", "report", env=no_browser).executed == []


def rewrite_rows(workspace, pack, change):
    """Apply `change(row)` to every row of shard 0 (in place, as a re-sampled shard would read)."""
    shard = workspace.shard_path(pack, 0)
    rows = [change(row) for row in read_jsonl(shard).rows]
    write_bytes_atomic(shard, b"")
    with shard.open("ab") as handle:
        for row in rows:
            append_jsonl(handle, row)


def model_scores(workspace, pack):
    presets = read_pack_presets(workspace, pack, FeatureCache())
    scores = load_checkpoint(workspace.checkpoint_path).predict(pair_features(np.stack(presets.fg),
                                                                              np.stack(presets.bg)))
    return dict(zip(presets.pairs, scores))


def test_a_failed_or_too_heavy_pair_never_reaches_the_top_decile(tmp_path):
    """The three pairs the model likes best fail to render, are cut as too heavy, or are too dark."""
    workspace = Workspace(tmp_path)
    make_pack(workspace, "tiny", 100, seed=6, presets=None, rows="shard")
    train(workspace, TrainSettings(**SMALL), log=quiet)
    liked = sorted(model_scores(workspace, "tiny").items(), key=lambda item: -item[1])
    failed, heavy, dark = (pair for pair, _ in liked[:3])

    def spoil(row):
        if row["pair"] == failed:
            row.update(status="timeout", stats={}, reasons=["timeout"], okHeuristic=False)
        elif row["pair"] == heavy:
            row.update(reasons=["too-heavy"], okHeuristic=False)  # its first frames looked fine
        elif row["pair"] == dark:
            row["stats"].update(lumaMean=0.04)
            row.update(reasons=["too-dark"], okHeuristic=False)
        return row

    rewrite_rows(workspace, "tiny", spoil)
    train(workspace, TrainSettings(**SMALL), log=quiet)
    quality = score_pack(workspace, "tiny", log=quiet)
    scores = {p["pair"]: p["quality01"] for p in quality["pairs"]}
    decile = np.percentile(list(scores.values()), 90)
    assert scores[failed] == 0.0 and scores[heavy] == 0.0
    assert scores[dark] < decile and quality["stats"]["flaggedInTopDecile"] == []


def rate(workspace, pair, score):
    manifest = load_manifest(workspace.manifest_path("tiny"))
    entry = next(p for p in manifest.pairs if p.pair == pair)
    with workspace.ratings_path.open("ab") as handle:
        append_jsonl(handle, {"pack": "tiny", "pair": pair, "fgUrl": entry.fgUrl, "bgUrl": entry.bgUrl,
                              "score": score, "ratedAt": now_iso()})


def test_a_rating_moves_a_sampled_pairs_score_its_way(tmp_path):
    workspace = Workspace(tmp_path)
    make_pack(workspace, "tiny", 80, seed=7, presets=None, rows="shard")
    train(workspace, TrainSettings(**SMALL), log=quiet)
    before = {p["pair"]: p for p in score_pack(workspace, "tiny", log=quiet)["pairs"]}
    pair = min((p for p in before.values() if p["basis"] == "measured"), key=lambda p: abs(p["measured"] - 0.5))["pair"]
    for score, direction in ((5, 1), (1, -1)):
        rate(workspace, pair, score)  # the latest rating of a pair wins
        train(workspace, TrainSettings(**SMALL), log=quiet)
        after = {p["pair"]: p for p in score_pack(workspace, "tiny", log=quiet)["pairs"]}
        assert after[pair]["rating"] == (score - 1) / 4 and after[pair]["basis"] == "measured"
        assert direction * (after[pair]["quality01"] - before[pair]["quality01"]) > 0.1, (score, after[pair])

