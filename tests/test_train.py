"""The trainer on a small synthetic pack: convergence, reproducibility, the source mix, checkpoints,
k-fold cross-validation and its metrics."""
import sys

import numpy as np
import pytest
import torch
from packs import make_pack

from stages.core.contracts import read_json, validate_train_report, write_json
from stages.core.errors import ContractError, CqError
from stages.core.settings import TrainSettings
from stages.core.workspace import Workspace
from stages.learn.checkpoint import load_checkpoint
from stages.learn.features import pair_features, preset_features
from stages.learn.metrics import spearman
from stages.learn.model import STD_FLOOR, Z_CLIP, feature_std, standardise
from stages.learn.quality import measured_quality
from stages.learn.sources import PairSet, Sources, fold_of, gather_sources
from stages.learn.training import fold_split, gpu_snapshot, pick_device, train
from stages.presets.conversion import load_preset

SMALL = dict(epochs=12, batch_size=64, neg_samples=400, neg_min_pair_distance=10, learning_rate=5e-3)


def quiet(*_):
    pass


@pytest.fixture(scope="module")
def pack_workspace(tmp_path_factory):
    """A 160-pair pack with rows for every pair, and an elite manifest over 24 of its pairs."""
    workspace = Workspace(tmp_path_factory.mktemp("train-ws"))
    rows = make_pack(workspace, "tiny", 160, seed=3, presets=None, rows="shard").rows
    entries = []
    for row in rows[:24]:
        quality = measured_quality(row)
        manifest_pair = f"/presets/tiny/fg/coupled_{row['pair']:05d}_fg.json"
        entries.append({"fgUrl": manifest_pair, "bgUrl": manifest_pair.replace("fg", "bg"),
                        "score": int(np.clip(round(1 + 4 * quality), 1, 5))})
    write_json(workspace.root / "elite.json", {"version": "v0", "entries": entries})
    return workspace


@pytest.fixture(scope="module")
def trained(pack_workspace):
    return train(pack_workspace, TrainSettings(**SMALL), log=quiet)


def test_training_converges_and_writes_a_valid_report(pack_workspace, trained):
    report = validate_train_report(read_json(pack_workspace.train_report_path))
    first, last = report["epochs"][0]["loss"], report["epochs"][-1]["loss"]
    for source in ("elite", "eval", "neg"):
        assert last[source] < first[source], (source, first, last)
    assert report["device"] == "cpu" and report["deviceSnapshot"]["before"] is None
    assert report["sources"]["eval"]["count"] == 160 and report["sources"]["elite"]["count"] == 24
    assert report["crossValidation"]["pairs"] == 160 and len(report["crossValidation"]["outOfFold"]) == 160
    assert report["packs"]["tiny"]["failedRows"] > 0


def test_training_is_reproducible_with_a_seed(pack_workspace, trained, tmp_path):
    weights = {k: v.clone() for k, v in load_checkpoint(pack_workspace.checkpoint_path).net.state_dict().items()}
    again = train(pack_workspace, TrainSettings(**SMALL), log=quiet)
    assert [e["loss"] for e in again["epochs"]] == [e["loss"] for e in trained["epochs"]]
    for name, tensor in load_checkpoint(pack_workspace.checkpoint_path).net.state_dict().items():
        assert torch.equal(tensor, weights[name]), name
    other = train(pack_workspace, TrainSettings(**{**SMALL, "seed": 1}), log=quiet)
    assert [e["loss"] for e in other["epochs"]] != [e["loss"] for e in trained["epochs"]]


def test_sampler_delivers_the_source_mix(trained):
    for epoch in trained["epochs"]:
        drawn = epoch["drawn"]
        total = sum(drawn.values())
        for source, share in (("elite", 0.25), ("eval", 0.25), ("neg", 0.50)):
            assert abs(drawn[source] / total - share) < 0.06, (source, drawn)


def test_sources_mix_renormalises_without_elite(tmp_path):
    workspace = Workspace(tmp_path)
    make_pack(workspace, "tiny", 40, seed=5, presets=None, rows="shard")
    report = train(workspace, TrainSettings(**{**SMALL, "epochs": 2}), log=quiet)
    assert "skipped" in report["sources"]["elite"]["note"] and report["eliteAuc"] is None
    drawn = report["epochs"][0]["drawn"]
    assert drawn["elite"] == 0
    assert abs(drawn["eval"] / (drawn["eval"] + drawn["neg"]) - 1 / 3) < 0.06


def test_cross_validated_metrics_beat_chance_and_carry_intervals(trained):
    validated = trained["crossValidation"]
    for model in ("net", "ridge"):
        spearman_ci = validated[model]["spearman"]
        assert spearman_ci["lo"] <= spearman_ci["value"] <= spearman_ci["hi"]
    assert validated["net"]["spearman"]["lo"] > 0 and validated["ridge"]["spearman"]["lo"] > 0
    difference = validated["netMinusRidge"]["spearman"]
    assert difference["value"] == pytest.approx(validated["net"]["spearman"]["value"]
                                                - validated["ridge"]["spearman"]["value"], abs=2e-4)
    assert [fold["fold"] for fold in validated["perFold"]] == list(range(5))
    assert sum(fold["pairs"] for fold in validated["perFold"]) == 160
    assert all(fold["net"] is not None and fold["ridge"] is not None for fold in validated["perFold"])
    elite = trained["eliteAuc"]
    assert elite["heldOut"] and elite["positives"] > 0 and elite["negatives"] > 0
    assert elite["lo"] <= elite["value"] <= elite["hi"] and elite["value"] > 0.5


def test_the_epoch_count_is_chosen_on_validation(trained):
    validated = trained["crossValidation"]
    loss = validated["validationLoss"]
    assert len(loss) == SMALL["epochs"] and validated["chosenEpochs"] == int(np.argmin(loss)) + 1
    assert len(trained["epochs"]) == validated["chosenEpochs"]  # the final fit runs what validation chose
    assert [e["validationLoss"] for e in trained["epochs"]] == loss[:validated["chosenEpochs"]]


def test_out_of_fold_scores_come_from_nets_that_never_saw_the_pair(pack_workspace, trained):
    """Retrain fold 0 by hand: a pair's out-of-fold score is that fold's net's prediction, not the final net's."""
    validated = trained["crossValidation"]
    fold_zero = [item for item in validated["outOfFold"] if item["fold"] == 0]
    assert fold_zero and all(fold_of(item["key"], 5, SMALL.get("seed", 0)) == 0 for item in fold_zero)
    final = load_checkpoint(pack_workspace.checkpoint_path)
    sources = gather_sources(pack_workspace, TrainSettings(**SMALL))
    by_key = dict(zip(sources.sets["eval"].keys, final.predict(sources.sets["eval"].features)))
    assert max(abs(item["net"] - by_key[item["key"]]) for item in fold_zero) > 1e-3


def test_checkpoint_round_trips_and_scores_alone(pack_workspace, trained):
    scorer = load_checkpoint(pack_workspace.checkpoint_path)
    assert scorer.checkpoint["config"]["settings"]["epochs"] == SMALL["epochs"]
    assert scorer.checkpoint["config"]["net"]["hidden"] == TrainSettings().hidden
    fg = preset_features(load_preset(pack_workspace.pack_dir("tiny") / "fg" / "coupled_00000_fg.json"))
    bg = preset_features(load_preset(pack_workspace.pack_dir("tiny") / "bg" / "coupled_00000_bg.json"))
    vectors = np.stack([pair_features(fg, bg), pair_features(bg, fg)])
    scores = scorer.predict(vectors)
    assert scores.shape == (2,) and ((scores > 0) & (scores < 1)).all()
    with torch.no_grad():
        direct = torch.sigmoid(scorer.net(torch.from_numpy(standardise(vectors, scorer.mean, scorer.std))))
    assert np.allclose(scores, direct.numpy())


def test_a_foreign_or_damaged_checkpoint_is_refused_with_advice(tmp_path):
    damaged = tmp_path / "net.pth"
    damaged.write_bytes(b"not a checkpoint")
    with pytest.raises(ContractError, match="doit train"):
        load_checkpoint(damaged)
    with pytest.raises(ContractError, match="run `doit train` first"):
        load_checkpoint(tmp_path / "absent.pth")


def test_folds_are_seeded_balanced_and_stable_when_a_pair_is_added(tmp_path):
    keys = [f"p:{i}" for i in range(500)]
    folds = [fold_of(key, 5, seed=0) for key in keys]
    assert all(60 <= folds.count(fold) <= 140 for fold in range(5))
    assert folds != [fold_of(key, 5, seed=1) for key in keys]
    workspace = Workspace(tmp_path)
    make_pack(workspace, "tiny", 40, seed=5, presets=None, rows="shard")
    before = gather_sources(workspace, TrainSettings(**SMALL)).sets["eval"]
    make_pack(workspace, "tiny", 41, seed=5, presets=None, rows="shard")  # the same 40 pairs and one more
    after = gather_sources(workspace, TrainSettings(**SMALL)).sets["eval"]
    assert len(after) == len(before) + 1
    for fold in range(5):
        kept = dict(zip(after.keys, after.touches(fold, 5, 0)))
        assert all(kept[key] == held for key, held in zip(before.keys, before.touches(fold, 5, 0)))


def test_a_negative_is_held_out_with_either_of_its_pairs():
    pairs = PairSet(np.zeros((3, 1), np.float32), np.zeros(3, np.float32), ["a/b", "b/c", "a/c"],
                    [("t:a", "t:b"), ("t:b", "t:c"), ("t:a", "t:c")], [("A", "B"), ("B", "C"), ("A", "C")])
    fold = fold_of("t:a", 1000, 0)
    held = pairs.touches(fold, 1000, 0)
    assert held[0] and held[2] and held[1] == (fold in (fold_of("t:b", 1000, 0), fold_of("t:c", 1000, 0)))


def test_folds_by_preset_train_on_no_preset_of_a_tested_pair():
    """Every eval pair is tested once, by its fg family's fold, and no example that trains that fold uses a
    preset family (fg or bg) of a pair it tests: negatives and elite entries included."""
    rng = np.random.default_rng(3)
    families = [(f"F{rng.integers(12)}", f"F{rng.integers(12)}") for _ in range(60)]
    evals = PairSet(np.zeros((60, 1), np.float32), np.zeros(60, np.float32), [f"t:{i}" for i in range(60)],
                    [(f"t:{i}",) for i in range(60)], families)
    negs = PairSet(np.zeros((40, 1), np.float32), np.zeros(40, np.float32), [f"n{i}" for i in range(40)],
                   [("t:0", "t:1")] * 40, [(families[i][0], families[59 - i][1]) for i in range(40)])
    sources = Sources({"eval": evals, "neg": negs}, {}, {}, [])
    tested = np.zeros(60, int)
    for fold in range(5):
        held, trained = fold_split(sources, "preset", fold, 5, 0)
        tested += held["eval"]
        unseen = {family for pair, test in zip(families, held["eval"]) if test for family in pair}
        assert held["eval"].any()
        for name, pairs in sources.sets.items():
            used = [family for pair, train in zip(pairs.families, trained[name]) if train for family in pair]
            assert not unseen & set(used)
        assert not (held["eval"] & trained["eval"]).any()
    assert (tested == 1).all()


def test_spearman_is_rank_based():
    measured = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    assert spearman(measured ** 3, measured) == pytest.approx(1.0)
    assert spearman(-measured, measured) == pytest.approx(-1.0)


def test_require_cuda_fails_fast_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(CqError, match="require-cuda"):
        pick_device(require_cuda=True)
    assert pick_device(require_cuda=False).type == "cpu"


def test_nothing_to_learn_is_a_clear_error(tmp_path):
    workspace = Workspace(tmp_path)
    make_pack(workspace, "tiny", 12, sampled=0.0, presets=None, rows="shard")
    with pytest.raises(CqError, match="doit sample"):
        train(workspace, TrainSettings(**SMALL), log=quiet)


def test_stale_rows_are_ignored_and_the_latest_ok_row_counts(tmp_path):
    workspace = Workspace(tmp_path)
    rows = make_pack(workspace, "tiny", 12, seed=2, presets=None, rows="shard").rows
    edited = workspace.pack_dir("tiny") / "fg" / "coupled_00001_fg.json"
    preset = read_json(edited)
    preset["baseVals"]["zoom"] = 1.05
    write_json(edited, preset)  # pair 1's row now describes another picture
    sources = gather_sources(workspace, TrainSettings(**SMALL))
    assert sources.packs["tiny"]["staleRows"] == 1
    assert "tiny:1" not in sources.sets["eval"].keys and len(sources.sets["eval"]) == len(rows) - 1


class FakeNvml:
    """Stands in for NVML on a machine without an NVIDIA GPU (the one mock the team allows)."""

    class NVMLError(Exception):
        pass

    def __init__(self, fail_init=False):
        self.fail_init, self.shut_down = fail_init, False

    def nvmlInit(self):
        if self.fail_init:
            raise self.NVMLError("driver not loaded")

    def nvmlShutdown(self):
        self.shut_down = True

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetName(self, handle):
        return b"NVIDIA H100 80GB HBM3"

    def nvmlSystemGetDriverVersion(self):
        return "580.159.04"

    def nvmlDeviceGetMemoryInfo(self, handle):
        return type("Memory", (), {"used": 3 * 2**30, "total": 80 * 2**30})()

    def nvmlDeviceGetUtilizationRates(self, handle):
        return type("Rates", (), {"gpu": 37, "memory": 12})()


def test_gpu_snapshot_reads_name_memory_and_utilisation(monkeypatch):
    fake = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: 2**29)
    snapshot = gpu_snapshot()
    assert snapshot == {"name": "NVIDIA H100 80GB HBM3", "driver": "580.159.04", "memoryUsedMiB": 3072,
                        "memoryTotalMiB": 81920, "utilizationGpu": 37, "utilizationMemory": 12,
                        "torchMaxAllocatedMiB": 512}
    assert fake.shut_down
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(fail_init=True))
    assert "driver not loaded" in gpu_snapshot()["error"]


def test_a_near_constant_feature_cannot_blow_up_an_unseen_pair():
    training = np.zeros((50, 3), np.float32)
    training[:, 0] = np.linspace(0, 1, 50)
    training[0, 1] = 0.001  # varies a hair in training
    std = feature_std(training)
    unseen = standardise(np.array([[0.5, 1.0, 1.0]], np.float32), training.mean(axis=0), std)
    assert std[1] == STD_FLOOR and std[2] == STD_FLOOR
    assert np.abs(unseen).max() == Z_CLIP and abs(unseen[0, 0]) < 0.1


def test_a_broken_manifest_leaves_its_pack_out_and_says_why(tmp_path):
    workspace = Workspace(tmp_path)
    make_pack(workspace, "good", 30, seed=1, presets=None, rows="shard")
    make_pack(workspace, "broken", 10, seed=2, presets=None, rows="shard")
    workspace.manifest_path("broken").write_text('{"version": "v0", "pack": "broken", "pairs": [{"pair": 1}]}')
    sources = gather_sources(workspace, TrainSettings(**SMALL))
    assert "missing field 'fgUrl'" in sources.packs["broken"]["error"]
    assert any("left out of training" in warning for warning in sources.warnings)
    assert all(key.startswith("good:") for key in sources.sets["eval"].keys) and len(sources.sets["eval"]) > 20


def test_rows_merged_into_eval_jsonl_count_once(tmp_path):
    workspace = Workspace(tmp_path)
    rows = make_pack(workspace, "tiny", 12, seed=2, presets=None, rows="shard").rows
    workspace.eval_path("tiny").write_bytes(workspace.shard_path("tiny", 0).read_bytes())
    report = gather_sources(workspace, TrainSettings(**SMALL)).packs["tiny"]
    assert report["rows"] == len(rows) and report["okRows"] + report["failedRows"] == len(rows)
