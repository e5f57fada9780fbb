"""Discovery: streaming top-K over every fg x bg pair of a library, with a per-preset limit; and the whole
command on a real folder (real fingerprints in headless Chromium, a real trained checkpoint)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
from packs import PRESETS, make_pack

from stages.core.contracts import load_manifest, read_json
from stages.core.plan import plan_pack
from stages.core.settings import SampleSettings
from stages.core.workspace import CHECKOUT, Workspace
from stages.learn import discovery
from stages.learn.discovery import DiscoverSettings, discover
from stages.learn.features import PAIR_FEATURES, TEXT_WIDTH, pair_features
from stages.learn.fingerprints import Layout
from stages.render.versions import KEY_VERSIONS


def brute_force(vectors, identities, predict, settings: DiscoverSettings):
    """Every pair scored at once, then the same greedy pick: what the streaming scorer must reproduce."""
    count = len(vectors)
    i, j = (grid.reshape(-1) for grid in np.meshgrid(np.arange(count), np.arange(count), indexing="ij"))
    keep = np.asarray(identities)[i] != np.asarray(identities)[j]
    i, j = i[keep], j[keep]
    scores = predict(pair_features(vectors[i], vectors[j], SampleSettings()))
    used, picks = np.zeros(count, int), []
    for k in np.lexsort((j, i, -scores)):
        if used[i[k]] < settings.max_per_preset and used[j[k]] < settings.max_per_preset:
            picks.append((int(i[k]), int(j[k])))
            used[i[k]] += 1
            used[j[k]] += 1
        if len(picks) == settings.top:
            break
    return picks, scores


def test_streaming_discovery_picks_what_scoring_every_pair_at_once_picks(monkeypatch):
    rng = np.random.default_rng(5)
    width = TEXT_WIDTH + Layout.of_settings(SampleSettings()).width
    vectors = rng.random((40, width)).astype(np.float32)
    identities = [f"p{k}" for k in range(40)]
    identities[7] = identities[3]  # two files of one content: never paired with each other
    columns = [PAIR_FEATURES.index("fg.zoom"), PAIR_FEATURES.index("bg.decay"), PAIR_FEATURES.index("prod.warp")]
    predict = lambda x: x[:, columns] @ np.array([1.0, 0.7, -0.4])  # noqa: E731
    settings = DiscoverSettings(folder="-", top=15, max_per_preset=2, per_fg=4)
    monkeypatch.setattr(discovery, "BLOCK_PAIRS", 100)  # many blocks, each a few fg presets
    monkeypatch.setattr(discovery, "MIN_CANDIDATES", 10)
    found = discover(vectors, identities, predict, SampleSettings(), settings)
    expected, scores = brute_force(vectors, identities, predict, settings)
    assert [(fg, bg) for fg, bg, _ in found.picks] == expected
    assert found.scored == 40 * 39 - 2
    assert all(identities[fg] != identities[bg] for fg, bg, _ in found.picks)
    counts = np.bincount([k for fg, bg, _ in found.picks for k in (fg, bg)], minlength=40)
    assert counts.max() <= 2
    assert len(found.best_backgrounds) == 40 and all(len(best) == 4 for best in found.best_backgrounds.values())
    first = found.best_backgrounds[0]
    assert [score for _, score in first] == sorted((score for _, score in first), reverse=True)


def run_cli(workspace: Workspace, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stages.cli", *args], cwd=CHECKOUT, capture_output=True, text=True,
                          timeout=900, env={**os.environ, "CQ_WORKSPACE": str(workspace.root),
                                            "PYTHONPATH": str(CHECKOUT)})


def test_discover_a_folder_writes_versions_a_pack_to_sample_and_keeps_going_past_a_bad_preset(tmp_path, doit,
                                                                                              no_browser):
    workspace = Workspace(tmp_path / "ws")
    make_pack(workspace, "trained", 30, seed=2, presets=None, rows="shard")
    workspace.config_path.write_text("[sample]\nframes = 24\nwidth = 64\nheight = 64\nreadback = 16\nworkers = 1\n"
                                     "[train]\nepochs = 3\nfolds = 2\n")
    doit(workspace, "train", env=no_browser)

    library = tmp_path / "My Library"
    (library / "deeper").mkdir(parents=True)
    for preset in PRESETS[:4]:
        shutil.copyfile(preset, library / preset.name)
    shutil.copyfile(PRESETS[4], library / "deeper" / PRESETS[4].name)  # a subfolder is never searched
    (library / "broken.json").write_text("{ not a preset")
    (library / "notes.txt").write_text("not a preset either")

    first = run_cli(workspace, "discover", str(library), "--top", "3", "--max-per-preset", "2")
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    pack_dir = workspace.pack_dir("discovered-My-Library")
    version = read_json(pack_dir / "pairs-manifest.discovered.v1.json")
    names = [path.name for path in sorted((pack_dir / "library").iterdir())]
    assert names == sorted([preset.name for preset in PRESETS[:4]] + ["broken.json"])
    made = version["generatedFrom"]
    assert (made["top"], made["maxPerPreset"], made["presets"], made["scoredPresets"]) == (3, 2, 5, 4)
    assert made["scoredPairs"] == 4 * 3 and "broken.json" in made["unreadable"][0]
    assert made["model"]["sha256"] and "no preset in more than 2" in made["rule"]
    pairs = version["pairs"]
    assert [pair["rank"] for pair in pairs] == [1, 2, 3]
    assert all(pair["fgUrl"] != pair["bgUrl"] for pair in pairs)
    uses = [url for pair in pairs for url in (pair["fgUrl"], pair["bgUrl"])]
    assert max(uses.count(url) for url in uses) <= 2
    assert [pair["predicted"] for pair in pairs] == sorted((pair["predicted"] for pair in pairs), reverse=True)
    assert len(version["bestBackgrounds"]) == 4

    # the picks are a pack the sampler plans like any other
    plan = plan_pack(workspace, "discovered-My-Library", SampleSettings(frames=24, width=64, height=64), KEY_VERSIONS)
    assert len(plan.ordered) == 3 and not any(planned.missing for planned in plan.ordered)
    assert load_manifest(workspace.manifest_path("discovered-My-Library")).pack == "discovered-My-Library"

    # a second discovery is the next version; the first is never rewritten, and nothing renders again
    before = (pack_dir / "pairs-manifest.discovered.v1.json").read_bytes()
    second = run_cli(workspace, "discover", str(library), "--top", "2")
    assert second.returncode == 0, second.stderr[-2000:]
    assert (pack_dir / "pairs-manifest.discovered.v1.json").read_bytes() == before
    assert len(read_json(pack_dir / "pairs-manifest.discovered.v2.json")["pairs"]) == 2
    assert "fingerprint [" not in second.stderr

    missing = run_cli(workspace, "discover", str(tmp_path / "nowhere"))
    assert missing.returncode == 1 and "not a folder" in missing.stderr and "Traceback" not in missing.stderr
