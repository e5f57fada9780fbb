"""A real .milk pack end to end: corpus presets -> manifest from the folders -> doit sampling -> scoring.

Real doit in a temp workspace, real headless Chromium, real MilkDrop presets from the corpus
(translated by stages.hlsl through the workspace's conversion cache), one pair with a shader that cannot be
translated: it gets a `translate-failed` row and is not sampled again.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stages.core.contracts import load_manifest, read_json, read_rows, validate_quality
from stages.core.workspace import Workspace
from stages.presets.manifests import write_manifest_from_folder

PRESETS = ["Fractal/EoS + Phat - Emergent factors.milk", "Supernova/Rism - The Descent.milk",
           "Waveform/Waltra - Spectrum 4.milk", "Reaction/$$$ Royal - Mashup (322).milk"]
SETTINGS = """[sample]
packs = "cream"
frames = 16
width = 64
height = 64
shard_size = 3
workers = 1

[train]
epochs = 3
batch_size = 16
neg_samples = 40
neg_min_pair_distance = 1
min_quality_std = 0.0
"""
BROKEN = "MILKDROP_PRESET_VERSION=201\nPSVERSION=2\nPSVERSION_WARP=2\nPSVERSION_COMP=2\n[preset00]\n" \
         "comp_1=`shader_body { ret = undefined_thing; }\n"


@pytest.fixture(scope="module")
def pack_workspace(tmp_path_factory, corpus) -> Workspace:
    workspace = Workspace(tmp_path_factory.mktemp("milk-pack") / "ws")
    workspace.root.mkdir()
    workspace.config_path.write_text(SETTINGS)
    pack_dir = workspace.pack_dir("cream")
    for side in ("fg", "bg"):
        (pack_dir / side).mkdir(parents=True)
    for index, name in enumerate(PRESETS):
        partner = PRESETS[(index + 1) % len(PRESETS)]
        shutil.copyfile(corpus / name, pack_dir / "fg" / f"coupled_{index:05d}_20260101 {Path(name).stem}_fg.milk")
        shutil.copyfile(corpus / partner, pack_dir / "bg" / f"coupled_{index:05d}_20260101 {Path(partner).stem}_bg.milk")
    assert write_manifest_from_folder(pack_dir) == []
    return workspace


def test_milk_pack_samples_and_scores(pack_workspace, doit):
    workspace = pack_workspace
    manifest = load_manifest(workspace.manifest_path("cream"))
    assert [pair.pair for pair in manifest.pairs] == [0, 1, 2, 3]

    doit(workspace, "merge")
    rows, warnings = read_rows(workspace.eval_path("cream"))
    assert not warnings
    by_pair = {row["pair"]: row for row in rows}
    assert sorted(by_pair) == [0, 1, 2, 3]
    for row in rows:
        assert row["status"] == "ok", row["errors"]
        assert row["stats"]["lumaMean"] > 0.01
    assert len(list((workspace.state_dir / "milk-cache").glob("*.json"))) == len(PRESETS)

    # the demo pack doit made beside it is neither sampled nor fingerprinted here (packs = "cream"): its scores
    # could not pass the gate, and it is not what this test is about
    shutil.rmtree(workspace.pack_dir("demo"))
    doit(workspace, "train")
    quality = validate_quality(read_json(workspace.quality_path("cream")), manifest=manifest)
    assert {entry["pair"] for entry in quality["pairs"]} == {0, 1, 2, 3}


def test_untranslatable_preset_gets_a_row_and_is_not_retried(pack_workspace, doit, corpus):
    workspace = pack_workspace
    pack_dir = workspace.pack_dir("cream")
    (pack_dir / "fg" / "coupled_00004_20260101_fg.milk").write_text(BROKEN)
    shutil.copyfile(corpus / PRESETS[0], pack_dir / "bg" / "coupled_00004_20260101_bg.milk")
    assert write_manifest_from_folder(pack_dir) == []
    doit(workspace, "merge")
    rows, _ = read_rows(workspace.eval_path("cream"))
    (row,) = [row for row in rows if row["pair"] == 4]
    assert row["status"] == "translate-failed"
    assert "undeclared identifier 'undefined_thing'" in row["errors"][0]
    again = doit(workspace, "merge")
    assert not [line for line in again.stdout.splitlines() if line.startswith(".  sample:")]
