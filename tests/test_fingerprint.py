"""Fingerprints: each preset rendered alone once, by content, in resumable shards; and the composite of two
fingerprints estimating what the rendered pair measures. Real doit, real headless Chromium."""
from __future__ import annotations

import json
import shutil

import numpy as np
from packs import PRESETS, make_pack

from stages.core.contracts import read_json, write_json
from stages.core.rows import read_fingerprint_rows
from stages.core.settings import SampleSettings, configured
from stages.core.workspace import Workspace
from stages.learn.features import PAIR_FEATURES, FeatureCache, pair_features
from stages.learn.fingerprints import Layout
from stages.learn.quality import measured_quality
from stages.learn.sources import eval_pairs, read_pack_presets

PACKS_AB = ("sample", "--packs", "a,b", "fingerprint", "--packs", "a,b")  # the demo pack is left alone
SMALL = "[sample]\nframes = 24\nwidth = 64\nheight = 64\nreadback = 16\nworkers = 1\n"


def fingerprint_rows(workspace: Workspace) -> list[dict]:
    return list(read_fingerprint_rows(workspace).by_key.values())


def test_fingerprints_render_each_content_once_and_estimate_the_rendered_pairs(tmp_path, doit):
    workspace = Workspace(tmp_path / "ws")
    make_pack(workspace, "a", 4)
    workspace.config_path.write_text(SMALL)
    # pack b shares pack a's fg presets (copied: other paths, the same content) and has a preset that is no
    # preset at all
    make_pack(workspace, "b", 2, presets=PRESETS[4:])  # bases pack a does not use: new bg contents
    manifest = read_json(workspace.manifest_path("b"))
    for entry, source in zip(manifest["pairs"], sorted((workspace.pack_dir("a") / "fg").iterdir())):
        name = f"copy of {source.name}"
        shutil.copyfile(source, workspace.pack_dir("b") / "fg" / name)
        entry["fgUrl"] = f"/presets/b/fg/{name}"
    (workspace.pack_dir("b") / "bg" / "broken_bg.json").write_text("{ not a preset")
    manifest["pairs"].append({"pair": 9, "fgUrl": manifest["pairs"][0]["fgUrl"], "bgUrl": "/presets/b/bg/broken_bg.json"})
    write_json(workspace.manifest_path("b"), manifest)

    run = doit(workspace, *PACKS_AB)
    rows = fingerprint_rows(workspace)
    contents = {row["presetHash"] for row in rows}
    assert len(rows) == len(contents) == 4 + 4 + 2 + 1, "each distinct content once: a's 8, b's 2 bg and the broken one"
    broken = [row for row in rows if row["presetId"] == "broken_bg.json"]
    assert broken and broken[0]["status"] == "read-failed" and broken[0]["errors"]
    good = [row for row in rows if row["status"] == "ok"]
    assert len(good) == 10
    layout = Layout.of_settings(configured(SampleSettings, workspace))
    assert all(len(row["fingerprint"]["luma"]) == layout.frames for row in good)
    meta = read_json(workspace.fingerprint_meta_path)
    assert (meta["presets"], meta["fingerprinted"], meta["failed"], meta["coverage"]) == (11, 10, 1, 1.0)
    assert any(line.startswith(".  fingerprint:") for line in run.stdout.splitlines())

    assert not [name for name in doit(workspace, *PACKS_AB).executed if name.startswith("fingerprint")]

    # the composite of two fingerprints estimates what each rendered pair measured: the mean luma exactly (the
    # normal blend is linear), the quality closely
    settings = configured(SampleSettings, workspace)
    presets = read_pack_presets(workspace, "a", FeatureCache.of_workspace(workspace, settings))
    sampled, _, _ = eval_pairs(workspace, presets)
    index = {pair: i for i, pair in enumerate(presets.pairs)}
    pairs = sorted(sampled)
    features = pair_features(np.stack([presets.fg[index[p]] for p in pairs]),
                             np.stack([presets.bg[index[p]] for p in pairs]), settings)
    estimated_luma = features[:, PAIR_FEATURES.index("mix.stat.lumaMean")]
    measured_luma = np.array([sampled[p]["stats"]["lumaMean"] for p in pairs])
    # (a pair is composed from the very frames its layers' fingerprints are made of: render.pairstats)
    error = np.abs(estimated_luma - measured_luma)
    assert error.max() < 1e-5, (estimated_luma, measured_luma)
    assert features[:, PAIR_FEATURES.index("mix.fingerprinted")].min() == 1.0
    estimate = features[:, PAIR_FEATURES.index("mix.estimate")]
    measured = np.array([measured_quality(sampled[p], settings) for p in pairs])
    assert np.abs(estimate - measured).mean() < 0.25, (estimate, measured)

    # an edited preset is a new content: it alone renders again
    edited = workspace.pack_dir("a") / "fg" / sorted((workspace.pack_dir("a") / "fg").iterdir())[0].name
    preset = json.loads(edited.read_text())
    preset["baseVals"]["zoom"] = preset["baseVals"].get("zoom", 1.0) + 0.05
    edited.write_text(json.dumps(preset))
    before = {row["contentKey"] for row in fingerprint_rows(workspace)}
    # (doit samples every pack before it plans fingerprints, and sampling writes the fingerprints of the
    # presets it renders: the demo pack's come along)
    doit(workspace, "fingerprint", "--packs", "a,b")
    new = [row["presetId"] for row in fingerprint_rows(workspace)
           if row["contentKey"] not in before and not row["presetId"].startswith("demo_")]
    assert new == [edited.name]


def test_a_layer_renders_the_same_frames_alone_and_among_others_in_flight(tmp_path):
    """Fingerprints are keyed by content alone, so a layer's frames must not depend on what else renders."""
    from stages.presets.conversion import load_preset
    from stages.render.audio import load_audio
    from stages.render.pool import PairJob, RenderPool

    def frames(workers: int) -> dict[int, str]:
        settings = SampleSettings(frames=16, width=64, height=64, readback=16, workers=workers)
        jobs = [PairJob(index, load_preset(path), None, path.name, "") for index, path in enumerate(PRESETS[:4])]
        with RenderPool(settings, load_audio(settings).frames, tmp_path / f"state{workers}") as pool:
            results = list(pool.render(jobs))
        assert all(result.status == "ok" for result in results), [result.errors for result in results]
        return {result.job.pair: result.series["frames"] for result in results}

    assert frames(1) == frames(2)
