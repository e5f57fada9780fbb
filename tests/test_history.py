"""Run history: every real `train` appends a record; the report shows runs side by side and what changed; a
torn line is kept and reported."""
from __future__ import annotations

import re

from packs import make_pack, write_training_report

from stages import report as report_stage
from stages import train as train_stage
from stages.core.settings import TrainSettings
from stages.core.workspace import Workspace
from stages.learn.history import append_run, changes, read_history

SMALL = dict(epochs=2, batch_size=64, neg_samples=200, neg_min_pair_distance=10)


def test_each_real_training_run_appends_a_record(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    make_pack(workspace, "tiny", 80, seed=1, presets=None, rows="shard")
    train_stage.run(workspace, TrainSettings(**SMALL))
    train_stage.run(workspace, TrainSettings(**{**SMALL, "epochs": 3}))
    history = read_history(workspace)
    assert history.problems == [] and len(history.runs) == 2
    first, second = history.runs
    assert first["settings"]["epochs"] == 2 and second["settings"]["epochs"] == 3
    assert first["sources"]["eval"] == 80 and first["packs"] == {"tiny": 80}
    assert set(first["metrics"]) >= {"crossValidation.net.spearman", "crossValidation.ridge.spearman", "finalLoss.total"}
    assert first["inputsDigest"] == second["inputsDigest"] != ""
    assert changes(first, second) == ["epochs 2 → 3"]
    assert changes(None, first) == ["first run"]


def test_changes_name_settings_data_and_code():
    base = {"settings": {"epochs": 20, "seed": 0}, "sources": {"eval": 100, "elite": 0}, "packs": {"a": 100},
            "inputsDigest": "x", "codeVersion": "c1", "device": "cpu", "metrics": {}}
    assert changes(base, dict(base)) == ["nothing (a rerun)"]
    more_rows = {**base, "sources": {"eval": 120, "elite": 0}, "packs": {"a": 120}, "inputsDigest": "y"}
    assert changes(base, more_rows) == ["eval pairs 100 → 120", "a rows 100 → 120"]
    edited = {**base, "inputsDigest": "z", "codeVersion": "c2", "device": "cuda"}
    assert changes(base, edited) == ["training data changed", "training code changed", "device cpu → cuda"]


def test_a_torn_line_is_kept_reported_and_appending_goes_on(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    make_pack(workspace, "demo", 8, rows="eval", quality=True)
    report = write_training_report(workspace)
    append_run(workspace, report, "digest-1", "code-1")
    with workspace.train_history_path.open("ab") as handle:
        handle.write(b'{"kind": "coupling_train_hist')  # a writer killed mid-line
    torn = workspace.train_history_path.read_bytes()
    later = {**report, "trainedAt": "2026-12-01T00:00:00Z",
             "settings": {**report["settings"], "epochs": 40},
             "crossValidation": {**report["crossValidation"], "net": {**report["crossValidation"]["net"],
                                                      "spearman": {"value": 0.7, "lo": 0.5, "hi": 0.8}}}}
    append_run(workspace, later, "digest-1", "code-1")
    assert workspace.train_history_path.read_bytes().startswith(torn), "the torn line stays in the file"
    history = read_history(workspace)
    assert len(history.runs) == 2 and len(history.problems) == 1 and ":2: unreadable line" in history.problems[0]

    page = report_stage.build_report(workspace, "demo").read_text()
    section = page.split("<h2>Training history</h2>")[1]
    rows = re.findall(r"<tr>(.*?)</tr>", section.split("</table>")[0])
    assert len(rows) == 3, "a header and one row per run"
    newest = rows[1]
    assert history.runs[1]["runId"] in newest and "epochs 12 → 40" in newest
    assert "0.700" in newest and "(+0.090)" in newest, "the metric and its change since the run before"
    assert '<td class=changed>40</td>' in newest
    assert "first run" in rows[2]
    assert "unreadable line" in section


def test_the_report_says_when_there_is_no_history(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    make_pack(workspace, "demo", 4, rows="eval", quality=True)
    page = report_stage.build_report(workspace, "demo").read_text()
    assert "no training runs recorded yet" in page.split("<h2>Training history</h2>")[1]
