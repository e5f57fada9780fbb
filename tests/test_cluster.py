"""Sampling on a Dask cluster: a real LocalCluster (a scheduler and two worker processes of one thread
each) started by the test, real `doit` in temp workspaces, real headless Chromium, a tiny pack (16 frames, 64²).

The same pack is sampled once locally (under `python -X importtime`, which lists every module imported) and
once on the cluster; the rows must be the same content.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter

import pytest
from packs import PRESETS, make_pack
from test_pipeline import SETTINGS, eval_rows, one_line_error, shard_rows

from stages.core.contracts import load_manifest, read_jsonl
from stages.core.workspace import CHECKOUT, Workspace
from stages.render.browser import kill_leftovers

SAME_CONTENT = ("contentKey", "fgHash", "bgHash", "status", "renderer", "engine", "stats", "vizAvgLuma",
                "vizAvgFrameDelta", "pmAvgLumaFg", "pmAvgLumaBg", "audioRms", "audioPeak", "okHeuristic",
                "reasons", "render", "errors")


def new_workspace(root, settings: str) -> Workspace:
    workspace = Workspace(root / "ws")
    workspace.root.mkdir(parents=True)
    workspace.config_path.write_text(settings)
    return workspace


def on_cluster(address: str, settings: str = SETTINGS) -> str:
    return settings + f'executor = "dask"\naddress = "{address}"\n'


def doit(workspace: Workspace, *args: str) -> subprocess.CompletedProcess:
    """Real doit, under `-X importtime` so stderr lists every module the process imported."""
    env = {**os.environ, "CQ_WORKSPACE": str(workspace.root)}
    return subprocess.run([sys.executable, "-X", "importtime", "-m", "doit", "-f", str(CHECKOUT / "dodo.py"), *args],
                          env=env, capture_output=True, text=True, timeout=600)


def imported(result: subprocess.CompletedProcess) -> set[str]:
    """Top-level packages the doit process imported (from -X importtime's lines)."""
    return {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in result.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


def succeeded(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def cluster():
    """A Dask scheduler and two worker processes (one thread, so one browser, each) on this machine."""
    from distributed import Client

    from stages.render.cluster import local_cluster, node_state_dir

    with local_cluster(workers=2, browsers=1) as local, Client(local) as client:
        yield local.scheduler_address, client
    kill_leftovers(node_state_dir())  # browsers of a worker killed by a test


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    workspace = new_workspace(tmp_path_factory.mktemp("local"), SETTINGS)
    make_pack(workspace, "tiny", 4)
    return workspace, succeeded(doit(workspace, "merge"))


def test_doit_without_the_executor_setting_never_imports_dask(local_run):
    workspace, result = local_run
    assert len(eval_rows(workspace, "tiny")) == 4  # it did sample: the rendering path ran
    modules = imported(result)
    assert "doit" in modules and "playwright" in modules  # the listing is real
    assert not modules & {"dask", "distributed"}


def test_cluster_rows_are_the_same_content_as_a_local_run(local_run, cluster, tmp_path):
    address, client = cluster
    workspace = new_workspace(tmp_path, on_cluster(address))
    make_pack(workspace, "tiny", 4)
    result = succeeded(doit(workspace, "merge"))
    assert {"dask", "distributed"} <= imported(result)
    assert "cluster: worker" in result.stdout and "2 cluster workers" in result.stdout
    local = {row["pair"]: row for row in eval_rows(local_run[0], "tiny")}
    remote = {row["pair"]: row for row in eval_rows(workspace, "tiny")}
    assert sorted(remote) == sorted(local) == [0, 1, 2, 3]
    workers = set(client.nthreads())
    for pair, row in remote.items():
        assert row["status"] == "ok", row["errors"]
        assert {name: row[name] for name in SAME_CONTENT} == {name: local[pair][name] for name in SAME_CONTENT}
        assert row["node"] in workers and local[pair]["node"] == "local"
        assert (workspace.eval_dir("tiny") / row["thumb"]).read_bytes()[:4] == b"\x89PNG"


def test_a_worker_killed_mid_run_costs_only_its_pairs_in_flight(cluster, tmp_path):
    address, client = cluster
    workspace = new_workspace(tmp_path, on_cluster(address, SETTINGS.replace("shard_size = 2", "shard_size = 6")))
    make_pack(workspace, "tiny", len(PRESETS))  # one pair per preset: no two pairs share their content
    env = {**os.environ, "CQ_WORKSPACE": str(workspace.root)}
    process = subprocess.Popen([sys.executable, "-m", "doit", "-f", str(CHECKOUT / "dodo.py"), "merge"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    shard = workspace.shard_path("tiny", 0)
    deadline = time.time() + 300
    while time.time() < deadline and not (shard.exists() and read_jsonl(shard).rows):
        time.sleep(0.1)
    victim, pid = sorted(client.run(os.getpid).items())[0]
    os.kill(pid, signal.SIGKILL)  # the worker process, as a lost machine would
    written = len(read_jsonl(shard).rows)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-3000:]
    assert 1 <= written < len(PRESETS), "the kill should land in the middle of the run"
    counts = Counter(row["pair"] for row in shard_rows(workspace, "tiny"))
    assert counts == Counter(range(len(PRESETS))), "every pair exactly once"
    assert all(row["status"] == "ok" for row in shard_rows(workspace, "tiny"))
    assert sorted(row["pair"] for row in eval_rows(workspace, "tiny")) == list(range(len(PRESETS)))


def test_an_unreachable_scheduler_is_one_clear_line_and_loses_nothing(local_run, tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    workspace = Workspace(tmp_path / "ws")
    shutil.copytree(local_run[0].root, workspace.root)
    workspace.config_path.write_text(on_cluster(address))
    make_pack(workspace, "tiny", len(load_manifest(workspace.manifest_path("tiny")).pairs) + 1)  # one to render
    before = {path.name: path.read_bytes() for path in workspace.shards_dir("tiny").glob("*.jsonl")}
    line = one_line_error(doit(workspace, "merge"))
    assert address in line and "Dask scheduler" in line and "dask worker" in line
    assert {path.name: path.read_bytes() for path in workspace.shards_dir("tiny").glob("*.jsonl")} == before
