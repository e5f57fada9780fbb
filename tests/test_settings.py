"""Settings have one source of truth (the workspace config), the shard size does not depend on the worker
count, `doit help` shows defaults and `doit info` says in words why a task is stale. Real doit, no browser."""
from __future__ import annotations

import os
import tomllib
from dataclasses import fields

import pytest
from packs import make_pack

from stages.core.errors import CqError
from stages.core.plan import plan_pack
from stages.core.settings import SampleSettings, TaskParams, TrainSettings
from stages.core.workspace import CHECKOUT, Workspace
from stages.render.versions import KEY_VERSIONS


def given(params: TaskParams, **values) -> dict:
    """doit's parameter values for a command line that gives `values`."""
    return {**params.loaded, **values}


def test_shards_do_not_depend_on_the_worker_count(tmp_path):
    workspace = Workspace(tmp_path)
    make_pack(workspace, "tiny", 120)
    shards = {workers: [[pair.pair for pair in shard]
                        for shard in plan_pack(workspace, "tiny", SampleSettings(workers=workers), KEY_VERSIONS).shards]
              for workers in (1, 3, 16)}
    assert shards[1] == shards[3] == shards[16]
    assert len(shards[1]) == 3


def test_a_command_line_knob_is_saved_for_every_later_task(tmp_path, capsys):
    workspace = Workspace(tmp_path)
    workspace.config_path.write_text("# my knobs\n[sample]\nmin_luma = 0.05  # darker packs\n\n[train]\nepochs = 3\n")
    at_load = TaskParams(SampleSettings, workspace)  # what doit parsed this run's parameters with
    sample = at_load.settings(given(at_load, target_coverage=0.5, workers=3, min_luma=0.07))
    assert (sample.target_coverage, sample.workers, sample.min_luma) == (0.5, 3, 0.07)
    assert "saved" in capsys.readouterr().out

    # merge, later in the same run, was given nothing on the command line: it sees what sample used
    merge = at_load.settings(given(at_load))
    assert (merge.target_coverage, merge.min_luma) == (0.5, 0.07)
    assert merge.workers == 0  # per-run knobs are not saved

    text = workspace.config_path.read_text()
    assert "# my knobs" in text and "[train]\nepochs = 3" in text
    config = tomllib.loads(text)
    assert config["sample"] == {"min_luma": 0.07, "target_coverage": 0.5}

    next_run = TaskParams(SampleSettings, workspace)
    assert next_run.loaded["target_coverage"] == 0.5
    assert next_run.settings(given(next_run)).target_coverage == 0.5
    assert TaskParams(TrainSettings, workspace).loaded["epochs"] == 3


def test_per_run_knobs_do_not_change_the_training_key():
    per_run = [item.name for item in fields(TrainSettings) if item.metadata.get("per_run")]
    assert per_run == ["require_cuda"]
    assert TrainSettings(require_cuda=True).key() == TrainSettings().key()
    assert TrainSettings(epochs=21).key() != TrainSettings().key()


def test_an_invalid_value_is_refused_and_not_saved(tmp_path):
    workspace = Workspace(tmp_path)
    params = TaskParams(SampleSettings, workspace)
    with pytest.raises(CqError, match="target-coverage"):
        params.settings(given(params, target_coverage=2.0))
    assert not workspace.config_path.exists()


def test_doit_help_shows_the_workspace_defaults_and_info_says_why(tmp_path, doit):
    workspace = Workspace(tmp_path / "ws")
    make_pack(workspace, "tiny", 6, rows="eval", quality=True)
    workspace.config_path.write_text("[sample]\nshard_size = 7\n")
    shown = doit(workspace, "help", "sample", check=False)
    assert shown.returncode == 0, shown.stderr
    assert "[default: 7]" in shown.stdout and "[default: 0.06]" in shown.stdout

    info = doit(workspace, "info", "train:model", check=False)
    assert info.returncode in (0, 1), info.stderr
    assert "the trainer's settings changed" in info.stdout
    assert "object at 0x" not in info.stdout


@pytest.mark.parametrize("text, words", [
    ("[sample]\nframs = 8\n", "unknown setting 'frams' in [sample] (did you mean 'frames'?)"),
    ("[trian]\nepochs = 3\n", "unknown section [trian] (did you mean 'train'?)"),
    ("[sample]\nworkers = \"two\"\n", "[sample] workers = 'two': must be a whole number"),
    ("[sample]\ntarget_coverage = \"all\"\n", "[sample] target_coverage = 'all': must be a number"),
    ("[train]\nepochs = \"six\"\n", "[train] epochs = 'six': must be a whole number"),
    ("sample = 5\n", "sample = 5: [sample] is a section of settings"),
    ("[verify]\nwidth = \"wide\"\n", "[verify] width = 'wide': must be a whole number"),
    ("[sample]\nframes = 16.5\n", "[sample] frames = 16.5: must be a whole number"),
    ("[sample]\nheaded = 1\n", "[sample] headed = 1: must be true or false"),
    ("[sample]\ntarget_coverage = 1.5\n", "--target-coverage 1.5 must be in (0, 1]"),
    ("[train]\ndropout = 1.0\n", "--dropout 1 must be below 1"),
    ("[verify]\npicks = 0\n", "--picks 0 must be >= 1"),
    ("[sample\nframes = 8\n", "not valid TOML: Expected ']'"),
])
def test_the_settings_file_is_checked_like_any_input(tmp_path, doit, text, words):
    workspace = Workspace(tmp_path / "ws")
    workspace.root.mkdir()
    workspace.config_path.write_text(text)
    for command in (["list"], ["train"]):
        result = doit(workspace, *command, check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0 and "Traceback" not in output, output
        [line] = [line for line in output.splitlines() if line.strip()]
        assert line.startswith("ERROR: ") and str(workspace.config_path) in line and words in line, line
    assert workspace.config_path.read_text() == text, "the file is left as the user wrote it"


def test_the_executor_and_its_address_shape_one_run_and_are_not_saved(tmp_path, capsys):
    workspace = Workspace(tmp_path)
    params = TaskParams(SampleSettings, workspace)
    used = params.settings(given(params, executor="dask", address="tcp://10.0.0.5:8786", target_coverage=0.5))
    assert (used.executor, used.address) == ("dask", "tcp://10.0.0.5:8786")
    assert tomllib.loads(workspace.config_path.read_text())["sample"] == {"target_coverage": 0.5}
    later = TaskParams(SampleSettings, workspace)
    assert later.settings(given(later)).executor == "local"


def test_a_missing_cluster_extra_is_one_line_naming_the_install(tmp_path, doit):
    workspace = Workspace(tmp_path / "ws")
    make_pack(workspace, "tiny", 4)
    site = tmp_path / "no-cluster-site"  # as where the extra is not installed: importing distributed fails
    (site / "distributed").mkdir(parents=True)
    (site / "distributed" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'distributed'\", name='distributed')\n")
    result = doit(workspace, "sample", "--executor", "dask", "--address", "tcp://127.0.0.1:1", check=False,
                  env={"PYTHONPATH": os.pathsep.join([str(site), str(CHECKOUT)])})
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output, output
    [line] = [line for line in output.splitlines() if line.startswith("error: ")]
    assert line == ("error: executor dask needs the cluster extra (distributed is not installed): "
                    "pip install 'coupled-quality[cluster]'")
    assert not workspace.config_path.exists()


def test_info_names_the_knob_that_changed_and_each_stale_sub_task(tmp_path, doit, no_browser):
    workspace = Workspace(tmp_path / "ws")
    make_pack(workspace, "tiny", 40, seed=4, presets=None, rows="shard")
    workspace.config_path.write_text("[train]\nepochs = 2\nneg_samples = 100\nneg_min_pair_distance = 5\n")
    doit(workspace, "train", env=no_browser)
    workspace.config_path.write_text("[train]\nepochs = 3\nneg_samples = 100\nneg_min_pair_distance = 5\n")

    info = doit(workspace, "info", "train:model", check=False, env=no_browser)
    assert info.returncode == 1, info.stderr
    assert "the trainer's settings changed: epochs 2 -> 3\n" in info.stdout
    assert "(args=[], kwargs={})" not in info.stdout

    group = doit(workspace, "info", "merge", check=False, env=no_browser)
    assert group.returncode == 1, group.stderr
    assert "merge:tiny: run" in group.stdout and "1 of 1 sub-tasks would run" in group.stdout
    assert str(workspace.manifest_path("tiny")) in group.stdout  # the file that changed, by name
