"""Scoring behind the gates, and the train/score tasks run by real doit without a browser."""
import os
import subprocess
import sys

import numpy as np
import pytest

from stages.core.contracts import load_manifest, read_json, read_jsonl, validate_quality
from stages.core.errors import CqError
from stages.core.settings import TrainSettings
from stages.core.workspace import CHECKOUT, Workspace
from stages.learn.gates import gate_failures, quality_stats
from stages.learn.scoring import score_pack
from stages.learn.sources import measured_quality
from stages.learn.synthetic import make_pack
from stages.learn.training import train

SMALL = dict(epochs=12, batch_size=64, neg_samples=400, neg_min_pair_distance=10, learning_rate=5e-3)


def quiet(*_):
    pass


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A 120-pair pack, 80% sampled, whose pair 3 lost its bg preset; trained and scored once."""
    workspace = Workspace(tmp_path_factory.mktemp("score-ws"))
    make_pack(workspace, "tiny", 120, seed=4, sampled=0.8)
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
    assert on_disk["stats"]["model"]["heldOut"]["pairs"] > 0
    assert on_disk["qualityStats"]["std"] >= 0.03
    assert not workspace.rejected_quality_path("tiny").exists()


def test_scores_rank_pairs_like_their_measured_quality(scored):
    workspace, quality = scored
    rows = {row["pair"]: row for row in read_jsonl(workspace.shard_path("tiny", 0)).rows}
    pairs = [p for p in quality["pairs"] if p["pair"] in rows]
    measured = np.array([measured_quality(rows[p["pair"]]) for p in pairs])
    scores = np.array([p["quality01"] for p in pairs])
    assert np.corrcoef(np.argsort(np.argsort(scores)), np.argsort(np.argsort(measured)))[0, 1] > 0.3


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
    make_pack(workspace, "tiny", 6)
    with pytest.raises(CqError, match="doit train"):
        score_pack(workspace, "tiny", log=quiet)


def run_doit(workspace, fake_site, *args):
    env = {**os.environ, "CQ_WORKSPACE": str(workspace.root),
           "PYTHONPATH": os.pathsep.join([str(fake_site), str(CHECKOUT)])}
    return subprocess.run([sys.executable, "-m", "doit", "-f", str(CHECKOUT / "dodo.py"), *args], cwd=CHECKOUT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_doit_train_runs_without_a_browser_retrains_on_a_changed_knob_and_fails_on_the_gate(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    make_pack(workspace, "tiny", 120, seed=4)
    fake_site = tmp_path / "site"
    (fake_site / "playwright").mkdir(parents=True)
    (fake_site / "playwright" / "__init__.py").write_text(
        "raise ImportError('no browser on this machine: doit train must not start one')\n")
    knobs = ["--epochs", "12", "--batch-size", "64", "--neg-samples", "400", "--neg-min-pair-distance", "10",
             "--learning-rate", "0.005"]

    first = run_doit(workspace, fake_site, "train", *knobs)
    assert first.returncode == 0, first.stdout + first.stderr
    assert ".  train:model" in first.stdout and ".  score:tiny" in first.stdout
    assert "sample:" not in first.stdout and "merge:" not in first.stdout
    assert workspace.quality_path("tiny").is_file() and workspace.checkpoint_path.is_file()

    again = run_doit(workspace, fake_site, "train", *knobs)
    assert again.returncode == 0 and "-- train:model" in again.stdout and "-- score:tiny" in again.stdout

    changed = run_doit(workspace, fake_site, "train", *knobs[:-2], "--learning-rate", "0.004")
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert ".  train:model" in changed.stdout

    good = workspace.quality_path("tiny").read_bytes()
    gated = run_doit(workspace, fake_site, "train", *knobs, "--min-quality-std", "0.9")
    assert gated.returncode != 0
    output = gated.stdout + gated.stderr
    assert "fail the gate" in output and "more negatives" in output and "Traceback" not in output
    assert workspace.quality_path("tiny").read_bytes() == good
    assert workspace.rejected_quality_path("tiny").is_file()
