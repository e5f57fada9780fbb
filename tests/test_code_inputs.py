"""Code is an input (`stages.core.code`): editing the code that produces an artifact rebuilds that artifact
and what depends on it, and nothing upstream. Real doit on a copy of the checkout whose code a test edits;
no browser is started (a task that would start one fails, which shows that it was stale).

Every edit is a comment: by the rule it counts, as any edit of the source text does.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from packs import make_pack
from test_merge import SETTINGS, remember_run, sample

from stages.core.contracts import read_json
from stages.core.plan import plan_pack
from stages.presets.manifests import write_manifest_from_folder
from stages.render.audio import load_audio
from stages.render.versions import KEY_VERSIONS

KNOBS = ["--epochs", "12", "--batch-size", "64", "--neg-samples", "400", "--neg-min-pair-distance", "10",
         "--learning-rate", "0.005"]
COMMENTS = {".py": "\n# edited\n", ".js": "\n// edited\n", ".html": "\n<!-- edited -->\n"}


def edit(checkout: Path, name: str) -> None:
    """Append a comment to a module of the copy's package (`learn/scoring.py`), to a template of its own
    (`templates/...`) or to one of its pages."""
    path = checkout / ("stages" if name.endswith(".py") or name.startswith("templates/") else "web") / name
    with path.open("a") as file:
        file.write(COMMENTS[path.suffix])


def test_the_scoring_rule_rescores_the_trainer_retrains_and_the_report_rebuilds_alone(checkout_copy, workspace,
                                                                                      doit, no_browser):
    make_pack(workspace, "tiny", 120, seed=4, presets=None, rows="shard")

    def night() -> list[str]:
        """train (and score), then the reports: what a night runs, verify aside (it starts a browser)."""
        runs = [doit(workspace, "train", *KNOBS, env=no_browser, checkout=checkout_copy),
                doit(workspace, "-s", "report", env=no_browser, checkout=checkout_copy)]
        return [task for run in runs for task in run.executed]

    assert night() == ["train:model", "score:tiny", "report:tiny"]
    assert night() == []
    for module, rerun in [
        ("report.py", ["report:tiny"]),
        ("templates/report/sections/gates.html", ["report:tiny"]),  # the report's markup is its code
        ("learn/gates.py", ["score:tiny", "report:tiny"]),       # score and report import the gates
        ("learn/scoring.py", ["score:tiny", "report:tiny"]),     # imported by score inside its run
        # a seeded retrain writes the same checkpoint, so nothing is rescored; the report shows the new run
        ("learn/training.py", ["train:model", "report:tiny"]),
        ("core/contracts.py", ["train:model", "score:tiny", "report:tiny"]),  # every stage imports it
        ("merge.py", []), ("sample.py", []), ("presets/filtering.py", []),
    ]:
        edit(checkout_copy, module)
        assert night() == rerun, module


def test_merge_reruns_on_its_code_and_sampler_code_never_resamples(checkout_copy, workspace, doit, no_browser):
    workspace.config_path.write_text('[sample]\npacks = "p"\nframes = 16\nwidth = 64\nheight = 64\n'
                                     'shard_size = 2\nworkers = 1\n')
    make_pack(workspace, "p", 6)
    click_track = load_audio(SETTINGS).key
    remember_run(workspace, audio_key=click_track)
    sample(workspace, plan_pack(workspace, "p", SETTINGS, KEY_VERSIONS), audio_key=click_track)

    def merge() -> list[str]:
        return doit(workspace, "merge", env=no_browser, checkout=checkout_copy).executed

    # the sample tasks find every row current and render nothing (the demo pack is built before sampling)
    assert sorted(merge()) == ["demo_pack", "merge:p", "sample:p:0", "sample:p:1", "sample:p:2"]
    assert merge() == []
    for module, rerun in [
        ("merge.py", ["merge:p"]),
        ("core/rows.py", ["merge:p"]),
        ("sample.py", []), ("learn/scoring.py", []),
        # demopack's tool renders presets with the pool: the same pack is written again and nothing is
        # sampled; merge keys rows with framestats' version, and the rows stay
        ("render/pool.py", ["demo_pack"]),
        ("render/framestats.py", ["merge:p"]),
    ]:
        edit(checkout_copy, module)
        assert merge() == rerun, module

    # what a row measures changed: its version is in the content key, so every pair is rendered again
    framestats = checkout_copy / "stages" / "render" / "framestats.py"
    text, count = re.subn(r"^STATS_VERSION = (\d+)$", lambda m: f"STATS_VERSION = {int(m[1]) + 1}",
                          framestats.read_text(), flags=re.M)
    assert count == 1
    framestats.write_text(text)
    resample = doit(workspace, "merge", env=no_browser, checkout=checkout_copy, check=False)
    assert resample.returncode != 0 and resample.executed == ["sample:p:0"]
    assert "this run must not start a browser" in resample.stdout + resample.stderr


def test_convert_reruns_on_its_code_and_translates_again_only_for_a_new_version(checkout_copy, workspace, doit,
                                                                                 corpus):
    pack_dir = workspace.pack_dir("cream")
    milk = sorted(corpus.rglob("*.milk"))[:2]
    for side, source in zip(("fg", "bg"), milk):
        (pack_dir / side).mkdir(parents=True)
        shutil.copyfile(source, pack_dir / side / f"coupled_00000_20260101_{side}.milk")
    assert write_manifest_from_folder(pack_dir) == []

    def convert() -> list[str]:
        return doit(workspace, "convert", checkout=checkout_copy).executed

    assert convert() == ["convert:cream"]
    assert convert() == []
    for module, rerun in [("convert.py", ["convert:cream"]), ("presets/hlsl.py", ["convert:cream"]),
                          ("report.py", [])]:
        edit(checkout_copy, module)
        assert convert() == rerun, module
    report = read_json(workspace.conversion_report_path("cream"))
    assert report["cached"] == report["total"] == 2, "the same translator version: the cache's conversions"


def test_the_demo_pack_is_rebuilt_by_its_code_to_the_same_bytes(checkout_copy, workspace, doit):
    assert doit(workspace, "demo_pack", checkout=checkout_copy).executed == ["demo_pack"]
    manifest = workspace.manifest_path("demo").read_bytes()
    for module, rerun in [("demopack.py", ["demo_pack"]), ("report.py", []), ("learn/scoring.py", [])]:
        edit(checkout_copy, module)
        assert doit(workspace, "demo_pack", checkout=checkout_copy).executed == rerun, module
    assert workspace.manifest_path("demo").read_bytes() == manifest


def verify_code(checkout: Path) -> str:
    """The code verify's task compares, as the copy computes it."""
    expression = "CodeUnchanged(verify, verify.PLAYER_PAGES).digest()"
    done = subprocess.run([sys.executable, "-c", "from stages import verify; from stages.core.uptodate import "
                           f"CodeUnchanged; print({expression})"], cwd=checkout, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_verify_checks_its_code_and_the_players_pages(checkout_copy, workspace, doit):
    make_pack(workspace, "tiny", 6, quality=True)
    info = doit(workspace, "info", "verify:tiny", checkout=checkout_copy, check=False).stdout  # 1: stale
    assert "the code of stage verify" in info
    for name, changes in [("learn/scoring.py", False), ("report.py", False), ("verify.py", True),
                          ("render/server.py", True), ("player.js", True), ("player.html", True)]:
        before = verify_code(checkout_copy)
        edit(checkout_copy, name)
        assert (verify_code(checkout_copy) != before) == changes, name
