"""The sampling pipeline end to end: real doit in a temp workspace, real headless Chromium, a tiny pack.

Settings for speed live in the workspace's coupled-quality.toml (16 frames, 64x64, shards of 2 pairs), so
every `doit` invocation of a test agrees on the plan, as a user's would.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from packs import make_pack

from stages.core.contracts import (
    Manifest,
    ManifestPair,
    read_json,
    read_jsonl,
    read_rows,
    validate_meta,
    write_json,
)
from stages.core.plan import plan_pack
from stages.core.settings import SampleSettings
from stages.core.workspace import CHECKOUT, Workspace
from stages.render.versions import KEY_VERSIONS

SETTINGS = """[sample]
packs = "tiny"
frames = 16
width = 64
height = 64
shard_size = 2
workers = 1
"""


@pytest.fixture
def workspace(workspace) -> Workspace:
    workspace.config_path.write_text(SETTINGS)
    return workspace


def shard_rows(workspace: Workspace, pack: str) -> list[dict]:
    return [row for path in sorted(workspace.shards_dir(pack).glob("*.jsonl"))
            for row in read_jsonl(path).rows]


def eval_rows(workspace: Workspace, pack: str) -> list[dict]:
    rows, warnings = read_rows(workspace.eval_path(pack))
    assert not warnings
    return rows


def test_rows_follow_the_contract_and_a_second_doit_runs_nothing(workspace, doit):
    make_pack(workspace, "tiny", 3)
    first = doit(workspace, "merge")
    assert any(name.startswith("sample:tiny:") for name in first.executed)
    # one queue across the shards: the first shard task renders all 3 pairs, each row lands in its own
    # shard's file and both shards are marked done
    assert first.stdout.count("sample tiny: 3 rows; main thread per row") == 1
    plan = plan_pack(workspace, "tiny", SampleSettings(packs="tiny", frames=16, width=64, height=64, shard_size=2,
                                                       workers=1), KEY_VERSIONS)
    assert len(plan.shards) == 2
    for index, shard in enumerate(plan.shards):
        assert sorted(row["pair"] for row in read_jsonl(workspace.shard_path("tiny", index)).rows) == \
            sorted(p.pair for p in shard)
        assert read_json(workspace.shard_done_path("tiny", index))["shardKey"] == plan.shard_key(index)
    rows = eval_rows(workspace, "tiny")  # read_rows validates every row against the contract
    assert sorted(row["pair"] for row in rows) == [0, 1, 2]
    for row in rows:
        assert row["status"] == "ok", row["errors"]
        assert row["audioRms"] > 0 and row["audioPeak"] > 0
        assert row["render"]["frames"] == 16 and row["render"]["width"] == 64
        assert "SwiftShader" in row["renderer"] or row["renderer"]
        assert (workspace.eval_dir("tiny") / row["thumb"]).read_bytes()[:4] == b"\x89PNG"
    meta = validate_meta(read_json(workspace.meta_path("tiny")))
    assert meta["progress"]["tiny"] == {"visited": 3, "target": 3, "done": True}
    assert meta["runtime"]["webgl"]["renderer"] == rows[0]["renderer"]
    assert meta["audio"]["mode"] == "click"

    again = doit(workspace, "merge")
    assert again.executed == []


def test_same_pair_twice_gives_identical_statistics(workspace, doit):
    manifest = make_pack(workspace, "tiny", 1).manifest
    twin = ManifestPair(1, manifest.pairs[0].fgUrl, manifest.pairs[0].bgUrl)
    write_json(workspace.manifest_path("tiny"), Manifest(manifest.path, "tiny", [manifest.pairs[0], twin]).to_json())
    doit(workspace, "merge")
    first, second = eval_rows(workspace, "tiny")
    assert first["contentKey"] == second["contentKey"]
    # the same content is rendered once; render it again from scratch and compare the statistics
    shutil.rmtree(workspace.shards_dir("tiny"))
    doit(workspace, "merge")
    again = eval_rows(workspace, "tiny")[0]
    assert again["stats"] == first["stats"]
    assert again["vizAvgLuma"] == first["vizAvgLuma"]


def test_adding_a_pair_renders_exactly_that_pair(workspace, doit):
    make_pack(workspace, "tiny", 3)
    doit(workspace, "merge")
    before = Counter(row["pair"] for row in shard_rows(workspace, "tiny"))
    make_pack(workspace, "tiny", 4)  # the same 3 pairs and one more
    doit(workspace, "merge")
    after = Counter(row["pair"] for row in shard_rows(workspace, "tiny"))
    assert after - before == Counter({3: 1})
    assert sorted(row["pair"] for row in eval_rows(workspace, "tiny")) == [0, 1, 2, 3]


def test_kill_9_mid_shard_then_doit_again_loses_nothing(workspace, doit):
    make_pack(workspace, "tiny", 5)
    workspace.config_path.write_text(SETTINGS.replace("shard_size = 2", "shard_size = 5"))
    env = {**os.environ, "CQ_WORKSPACE": str(workspace.root)}
    process = subprocess.Popen([sys.executable, "-m", "doit", "-f", str(CHECKOUT / "dodo.py"), "merge"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    shard = workspace.shard_path("tiny", 0)
    deadline = time.time() + 240
    while time.time() < deadline and len(read_jsonl(shard).rows) < 2:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # doit and the browsers it started, as a crash would
    process.wait()
    written = len(read_jsonl(shard).rows)
    assert 2 <= written < 5, "the kill should land in the middle of the shard"
    assert not workspace.shard_done_path("tiny", 0).exists()

    doit(workspace, "merge")
    counts = Counter(row["pair"] for row in shard_rows(workspace, "tiny"))
    assert counts == Counter({0: 1, 1: 1, 2: 1, 3: 1, 4: 1}), "each pair rendered exactly once"
    assert sorted(row["pair"] for row in eval_rows(workspace, "tiny")) == [0, 1, 2, 3, 4]


def test_a_torn_last_line_is_dropped_and_good_rows_kept(workspace, doit):
    make_pack(workspace, "tiny", 2)
    doit(workspace, "merge")
    shard = workspace.shard_path("tiny", 0)
    good = shard.read_bytes()
    shard.write_bytes(good + b'{"tMs": 12, "pack": "ti')  # a writer killed mid-line
    workspace.shard_done_path("tiny", 0).unlink()
    result = doit(workspace, "merge")
    assert "torn last line" in result.stdout + result.stderr
    assert shard.read_bytes() == good
    assert len(eval_rows(workspace, "tiny")) == 2


def one_line_error(result) -> str:
    assert result.returncode != 0
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return errors[0]


def test_malformed_manifest_is_one_clear_line(workspace, doit):
    make_pack(workspace, "tiny", 1)
    workspace.manifest_path("tiny").write_text('{"version": "v0", "pack": "tiny", "pairs": [')
    line = one_line_error(doit(workspace, "merge", check=False))
    assert "pairs-manifest.v0.json" in line and "not valid JSON" in line


def test_missing_preset_file_is_a_row_naming_the_file_and_the_night_goes_on(workspace, doit):
    manifest = make_pack(workspace, "tiny", 2).manifest
    missing = workspace.public / manifest.pairs[1].bgUrl.lstrip("/")
    missing.unlink()
    doit(workspace, "merge")
    rows = {row["pair"]: row for row in shard_rows(workspace, "tiny")}
    assert rows[0]["status"] == "ok" and rows[1]["status"] == "missing-file"
    assert missing.name in rows[1]["errors"][0] and "not found" in rows[1]["errors"][0]


def test_url_escaping_public_is_refused(workspace, doit):
    manifest = make_pack(workspace, "tiny", 1).manifest
    outside = ManifestPair(1, "/presets/../../secret.json", manifest.pairs[0].bgUrl)
    write_json(workspace.manifest_path("tiny"), Manifest(manifest.path, "tiny", [manifest.pairs[0], outside]).to_json())
    line = one_line_error(doit(workspace, "merge", check=False))
    assert "escapes public/" in line and "pairs-manifest.v0.json" in line


def test_a_moved_workspace_renders_merges_and_verifies_nothing_again(workspace, doit, tmp_path):
    make_pack(workspace, "tiny", 3)
    doit(workspace, "merge")
    make_pack(workspace, "scored", 8, quality=True)
    workspace.config_path.write_text(SETTINGS + "[verify]\nseconds = 2.0\nwidth = 240\nheight = 160\n")
    doit(workspace, "-s", "verify:scored")
    elsewhere = Workspace(tmp_path / "bigger-machine" / "ws")
    elsewhere.root.parent.mkdir()
    shutil.move(workspace.root, elsewhere.root)
    again = doit(elsewhere, "merge")
    assert again.executed == [], again.stdout
    assert doit(elsewhere, "-s", "verify:scored").executed == []


def test_clean_keeps_the_users_pack(workspace, doit):
    make_pack(workspace, "tiny", 2)
    user_files = sorted(path for path in workspace.pack_dir("tiny").rglob("*") if path.is_file())
    contents = {path: path.read_bytes() for path in user_files}
    doit(workspace, "merge")
    assert workspace.eval_path("tiny").exists()
    doit(workspace, "clean")
    assert not workspace.eval_path("tiny").exists()
    assert not list(workspace.shards_dir("tiny").glob("*.jsonl"))
    assert {path: path.read_bytes() for path in user_files} == contents
