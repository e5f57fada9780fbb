"""`doit list --status` tells the truth: after a complete build that a second `doit` confirms, no task is
"R", group tasks (`sample`, `merge`, `train`, ...) included, and a changed input makes "R" exactly the tasks
it makes stale and their groups. Real doit and real headless Chromium on the demo pack, kept small."""
from __future__ import annotations

import json

from stages.core.plan import plan_pack
from stages.core.settings import SampleSettings, configured
from stages.demopack import DEMO_PACK
from stages.render.versions import KEY_VERSIONS

# A short night: a few demo pairs sampled, small frames, a brief training and verify.
SHORT = """[sample]
target_coverage = 0.05
frames = 12
width = 48
height = 48
workers = 1

[train]
epochs = 2
neg_samples = 500
folds = 2

[verify]
seconds = 1.0
width = 160
height = 120
"""


def statuses(doit, workspace) -> dict[str, str]:
    """{task: its letter} of `doit list --status --all` (every task, sub-tasks too)."""
    listing = doit(workspace, "list", "--status", "--all", "--quiet").stdout
    return {name: letter for letter, name in (line.split() for line in listing.splitlines())}


def test_list_status_says_up_to_date_after_a_build_and_names_what_a_change_makes_stale(workspace, doit):
    workspace.config_path.write_text(SHORT)
    doit(workspace)
    assert doit(workspace).executed == [], "a second doit finds everything up to date"
    listed = statuses(doit, workspace)
    assert {"sample", "fingerprint", "merge", "train", "score", "verify", "report"} <= listed.keys()
    assert [name for name, letter in listed.items() if letter != "U"] == []

    workspace.config_path.write_text(SHORT.replace("epochs = 2", "epochs = 3"))
    listed = statuses(doit, workspace)
    assert listed["train:model"] == listed["train"] == "R"
    assert {listed[name] for name in ("sample", "fingerprint", "merge", "score", "verify", "report")} == {"U"}
    workspace.config_path.write_text(SHORT)

    sampled = plan_pack(workspace, DEMO_PACK, configured(SampleSettings, workspace), KEY_VERSIONS).shards[0][0]
    preset = json.loads(sampled.fg_path.read_text())
    preset["baseVals"]["zoom"] = preset["baseVals"].get("zoom", 1.0) + 0.01
    sampled.fg_path.write_text(json.dumps(preset))
    listed = statuses(doit, workspace)
    assert listed[f"sample:{DEMO_PACK}:0"] == listed["sample"] == "R"
    assert listed[f"merge:{DEMO_PACK}"] == listed["merge"] == "R"
    assert listed["web_deps"] == listed["convert"] == "U"
