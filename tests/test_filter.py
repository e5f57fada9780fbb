"""Filtered manifests: a rule over scores and measurements, versions never overwritten, the current copy with
its stamp; bad input is one clear line and writes nothing (library, CLI and real doit)."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from packs import make_pack

from stages import filter as filter_stage
from stages.core.contracts import load_manifest, read_json
from stages.core.errors import CqError
from stages.core.workspace import CHECKOUT, Workspace
from stages.presets.filtering import CURRENT_NAME, STAMP_NAME, FilterSettings, Rule


@pytest.fixture
def workspace(workspace) -> Workspace:
    """8 pairs, quality rising from 0.05 (pair 0) to 0.95 (pair 7); luma = 0.1 + 0.8 quality; pair 7 failed
    (no statistics)."""
    make_pack(workspace, "demo", 8, rows="eval", quality=True)
    make_pack(workspace, "other", 4, rows="eval", quality=True)
    return workspace


def quiet(*_):
    pass


def pack_files(ws: Workspace) -> dict[str, bytes]:
    return {str(path.relative_to(ws.root)): path.read_bytes()
            for pack in ws.packs() for path in ws.pack_dir(pack).iterdir() if path.is_file()}


def test_a_rule_over_scores_and_measurements_keeps_the_pairs_it_says(workspace):
    [path] = filter_stage.run(workspace, FilterSettings(packs="demo", rule="quality01 >= 0.6 and luma >= 0.1"),
                              quiet)
    assert path.name == "pairs-manifest.filtered.v1.json"
    document = read_json(path)
    # pair 7 scores 0.95 but has no luma (it failed to render): a value the rule names is missing -> not kept
    assert [item["pair"] for item in document["pairs"]] == [5, 6]
    assert document["keptPairs"] == 2 and document["totalPairs"] == 8
    assert document["generatedFrom"]["rule"] == "quality01 >= 0.6 and luma >= 0.1"
    assert document["generatedFrom"]["quality"] == "pairs-quality.v0.json"
    # it is a pairs manifest the runtime (and our own reader) loads
    kept = load_manifest(path)
    original = {entry.pair: entry for entry in load_manifest(workspace.manifest_path("demo")).pairs}
    assert kept.pack == "demo" and kept.pairs == [original[5], original[6]]


def test_top_n_versions_and_the_current_copy(workspace):
    [first] = filter_stage.run(workspace, FilterSettings(packs="demo", top=3), quiet)
    before = first.read_bytes()
    [second] = filter_stage.run(workspace, FilterSettings(packs="demo", rule="not okHeuristic or status != 'ok'",
                                                          current=True), quiet)
    assert first.read_bytes() == before, "an earlier version is never overwritten"
    assert [item["pair"] for item in read_json(first)["pairs"]] == [5, 6, 7]
    assert second.name == "pairs-manifest.filtered.v2.json"
    # pairs 0 and 1 are too dark (okHeuristic false), pair 7 failed
    assert [item["pair"] for item in read_json(second)["pairs"]] == [0, 1, 7]
    current = workspace.pack_dir("demo") / CURRENT_NAME
    stamp = read_json(workspace.pack_dir("demo") / STAMP_NAME)
    assert current.read_bytes() == second.read_bytes()
    assert stamp["version"] == "v2" and stamp["file"] == second.name
    assert stamp["sha256"] == hashlib.sha256(current.read_bytes()).hexdigest()
    # every pack when none is named; top applies after the rule
    paths = filter_stage.run(workspace, FilterSettings(rule="quality > 0.1", top=1), quiet)
    assert [path.name for path in paths] == ["pairs-manifest.filtered.v3.json", "pairs-manifest.filtered.v1.json"]
    assert [item["pair"] for item in read_json(paths[1])["pairs"]] == [3]


@pytest.mark.parametrize("settings, message", [
    (FilterSettings(packs="nope", rule="quality01 > 0.5"), "there is no pack 'nope'"),
    (FilterSettings(rule="quality01 >="), "does not parse"),
    (FilterSettings(rule="lumen > 0.1"), "unknown field 'lumen'"),
    (FilterSettings(rule="__import__('os').system('true')"), "is not a field, a value or a comparison"),
    (FilterSettings(rule="quality01 > 2"), "keeps none of 8 pairs"),
    (FilterSettings(rule="quality01 > 0.5", top=-1), "top -1"),
    (FilterSettings(), "give a rule"),
    (FilterSettings(top=10**23), "top 100000000000000000000000 must be a number of pairs"),
    (FilterSettings(top=-5), "top -5 must be a number of pairs"),
    (FilterSettings(rule="not " * 3000 + "quality01 > 0.5"), "nests not / and / or / parentheses more than"),
])
def test_bad_input_is_one_clear_error_and_writes_nothing(workspace, settings, message):
    before = pack_files(workspace)
    with pytest.raises(CqError) as error:
        filter_stage.run(workspace, settings, quiet)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert pack_files(workspace) == before


def test_a_deleted_version_number_is_never_given_again(workspace):
    first, = filter_stage.run(workspace, FilterSettings(packs="demo", top=3), quiet)
    second, = filter_stage.run(workspace, FilterSettings(packs="demo", top=2, current=True), quiet)
    second.unlink()  # the newest version, the one the stamp names
    third, = filter_stage.run(workspace, FilterSettings(packs="demo", top=1), quiet)
    assert third.name == "pairs-manifest.filtered.v3.json"
    stamp = read_json(workspace.pack_dir("demo") / STAMP_NAME)
    assert stamp["version"] == "v2" and stamp["sha256"] != hashlib.sha256(third.read_bytes()).hexdigest()
    third.unlink()
    first.unlink()  # every version gone: the record still counts on
    fourth, = filter_stage.run(workspace, FilterSettings(packs="demo", top=1), quiet)
    assert fourth.name == "pairs-manifest.filtered.v4.json"


def test_a_file_whose_number_is_no_ascii_digit_is_no_version(workspace):
    odd = workspace.pack_dir("demo") / "pairs-manifest.filtered.v\u00b2.json"
    odd.write_text("{}")
    path, = filter_stage.run(workspace, FilterSettings(packs="demo", top=1), quiet)
    assert path.name == "pairs-manifest.filtered.v1.json" and odd.read_text() == "{}"


def test_a_folder_where_the_current_copy_belongs_is_one_line(workspace):
    (workspace.pack_dir("demo") / CURRENT_NAME).mkdir()
    with pytest.raises(CqError) as error:
        filter_stage.run(workspace, FilterSettings(packs="demo", top=1, current=True), quiet)
    assert CURRENT_NAME in str(error.value) and "a folder is where this file belongs" in str(error.value)
    assert (workspace.pack_dir("demo") / "pairs-manifest.filtered.v1.json").is_file(), "the version is kept"


def test_a_pack_that_keeps_nothing_stops_every_pack(workspace):
    before = pack_files(workspace)
    # demo keeps pairs 5 and 6 (0.69, 0.82); other's scores are 0.05, 0.35, 0.65, 0.95
    with pytest.raises(CqError, match="pack other"):
        filter_stage.run(workspace, FilterSettings(rule="quality01 > 0.66 and quality01 < 0.9"), quiet)
    assert pack_files(workspace) == before


def test_rules_are_parsed_not_run():
    assert Rule("luma > 0.2 and not (motion < 0.1 or black >= 0.5)").fields == {"lumaMean", "motionMean", "blackFrac"}
    assert Rule("-0.5 < audioCorr <= 1").keeps({"audioCorr": 0.2})
    assert not Rule("-0.5 < audioCorr <= 1").keeps({"audioCorr": -0.7})
    with pytest.raises(CqError, match="compares"):
        Rule("status > 1").keeps({"status": "ok"})
    for text in ("quality01 + 1 > 2", "[quality01] == 1", "quality01 in (1, 2)", "x.y > 1"):
        with pytest.raises(CqError):
            Rule(text)


def run_cli(workspace: Workspace, *args: str, prefix: list[str] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "stages.cli", "filter", *args], cwd=CHECKOUT,
                          capture_output=True, text=True, env={**os.environ, "CQ_WORKSPACE": str(workspace.root)},
                          timeout=120)


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_the_filter_command_on_a_read_only_workspace_is_one_line(workspace):
    with tempfile.TemporaryDirectory() as folder:  # pytest's own temp folders are closed to other users
        readable = Workspace(Path(folder) / "ws")
        shutil.copytree(workspace.root, readable.root)
        folders = [Path(folder), readable.root, *(path for path in readable.root.rglob("*") if path.is_dir())]
        for path in folders:
            os.chmod(path, 0o755 if path == Path(folder) else 0o555)
        for path in readable.root.rglob("*"):
            if path.is_file():
                os.chmod(path, 0o444)
        # root writes anywhere; run as nobody then, which may read the repo and the workspace but not write it
        user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
        try:
            result = run_cli(readable, "--packs", "demo", "--top", "2", prefix=user)
        finally:
            for path in folders:
                os.chmod(path, 0o755)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "permission denied" in result.stderr


def test_the_filter_command_and_the_doit_task(workspace, doit):
    result = run_cli(workspace, "--packs", "demo", "--rule", "quality01 >= 0.8", "--current")
    assert result.returncode == 0, result.stderr
    assert read_json(workspace.pack_dir("demo") / STAMP_NAME)["version"] == "v1"
    before = pack_files(workspace)
    result = run_cli(workspace, "--rule", "brightness > 0.1")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: rule 'brightness > 0.1' names an unknown field 'brightness'")
    assert len(result.stderr.strip().splitlines()) == 1 and pack_files(workspace) == before

    doit(workspace, "filter", "--packs", "other", "--top", "2")
    assert [item["pair"] for item in read_json(workspace.pack_dir("other") / "pairs-manifest.filtered.v1.json")[
        "pairs"]] == [2, 3]
    result = doit(workspace, "filter", "--rule", "quality01 >", check=False)
    assert result.returncode != 0 and "does not parse" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_a_rule_given_apart_from_its_option_is_one_line_naming_the_form_that_works(workspace, doit):
    result = doit(workspace, "filter", "--rule", "quality01 >= 0.8", "--top", "2", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output, output
    [line] = [line for line in output.splitlines() if line.strip()]
    assert "--rule=\"quality01 >= 0.8\"" in line and "variable" in line
    assert not list(workspace.pack_dir("demo").glob("pairs-manifest.filtered.*")), "nothing written"
    doit(workspace, "filter", "--rule=quality01 >= 0.8", "--top", "2")
    assert [item["pair"] for item in read_json(workspace.pack_dir("demo") / "pairs-manifest.filtered.v1.json")[
        "pairs"]] == [6, 7]
