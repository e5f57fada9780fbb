"""The watch page during a real (tiny) sampling run, in real headless Chromium: what it shows is what the
shards say, per worker it shows the pair in flight, and it keeps going across shards and a restarted run."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter

import numpy as np
import pytest
from packs import sampled_row, stats_for, write_rows

from stages.core.contracts import Manifest, ManifestPair, load_manifest, read_json, read_rows, write_json
from stages.core.keys import audio_identity, browser_signature, content_key, engine_version, remember_identity
from stages.core.plan import plan_pack
from stages.core.settings import SampleSettings, configured
from stages.core.workspace import CHECKOUT, NODE_MODULES_DIR, Workspace
from stages.render.live import LiveStatus
from stages.render.server import WATCH_PATH, serving
from stages.render.versions import KEY_VERSIONS
from stages.render.watch import Watcher

CONVERTED = NODE_MODULES_DIR / "butterchurn-presets" / "presets" / "converted"
BASES = ["Martin - journey into space.json", "Geiss - Hurricane.json", "Rovastar - Hyperspace.json"]
# enough frames that a pair takes a second or so on software WebGL, so the page can see one in flight
SETTINGS = """[sample]
packs = "tiny"
frames = 150
width = 64
height = 64
shard_size = 2
workers = 1
"""
PAIRS = 6
FIRST_RUN_PAIRS = 4


@pytest.fixture
def workspace(tmp_path) -> Workspace:
    workspace = Workspace(tmp_path / "ws")
    workspace.root.mkdir()
    workspace.config_path.write_text(SETTINGS)
    pairs = []
    for index in range(PAIRS):
        preset = read_json(CONVERTED / BASES[index % len(BASES)])
        fg, bg = f"p{index:02d} fg & co_fg.json", f"p{index:02d}_bg.json"
        write_json(workspace.pack_dir("tiny") / "fg" / fg, preset)
        write_json(workspace.pack_dir("tiny") / "bg" / bg, {**preset, "baseVals": {
            **preset["baseVals"], "zoom": preset["baseVals"].get("zoom", 1) * (1.02 + index / 1000)}})
        # every pair its own content (byte-identical pairs share one row in the shards, re-labelled at merge)
        pairs.append(ManifestPair(index, f"/presets/tiny/fg/{fg}", f"/presets/tiny/bg/{bg}"))
    write_manifest(workspace, pairs)
    return workspace


def write_manifest(workspace: Workspace, pairs: list[ManifestPair]) -> None:
    write_json(workspace.manifest_path("tiny"), Manifest(workspace.manifest_path("tiny"), "tiny", pairs).to_json())


def start_doit(workspace: Workspace, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "doit", "-f", str(CHECKOUT / "dodo.py"), *args],
                            env={**os.environ, "CQ_WORKSPACE": str(workspace.root)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def shard_truth(workspace: Workspace) -> tuple[dict[int, dict], Counter]:
    rows = [row for path in workspace.shard_files("tiny") for row in read_rows(path)[0]]
    by_pair = {row["pair"]: row for row in rows}
    return by_pair, Counter(row["status"] for row in by_pair.values() if row["status"] != "ok")


def test_the_page_follows_a_real_run_and_its_numbers_are_the_shards(workspace, browser):
    names = {pair: (f"p{pair:02d} fg & co_fg.json", f"p{pair:02d}_bg.json") for pair in range(PAIRS)}
    seen_in_flight = []
    with serving(workspace) as server:
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{server.url}{WATCH_PATH}?every=0.25")
        page.wait_for_function("window.cqWatch !== undefined", timeout=20000)
        assert page.evaluate("window.cqWatch.packs.tiny.visited") == 0
        assert page.evaluate("window.cqWatch.packs.tiny.target") == PAIRS

        # a run over the first pairs, then a second doit process after two pairs were added (it renders
        # only those): two sampling processes, seen as two live files
        all_pairs = load_manifest(workspace.manifest_path("tiny")).pairs
        write_manifest(workspace, all_pairs[:FIRST_RUN_PAIRS])
        outputs = []
        for pairs in (all_pairs[:FIRST_RUN_PAIRS], all_pairs):
            write_manifest(workspace, pairs)
            process = start_doit(workspace, "sample")
            while process.poll() is None:
                snapshot = page.evaluate("window.cqWatch")
                for run in snapshot["runs"]:
                    for worker in run["workers"]:
                        if worker["inFlight"]:
                            seen_in_flight.append((worker["pair"], worker["fg"], worker["bg"]))
                page.wait_for_timeout(150)
            outputs.append(process.stdout.read())
            assert process.returncode == 0, outputs[-1][-3000:]
        truth, failures = shard_truth(workspace)
        assert len(truth) == PAIRS, "\n".join(output[-2000:] for output in outputs)
        page.wait_for_function(f"window.cqWatch.packs.tiny.visited === {PAIRS} && !window.cqWatch.running",
                               timeout=20000, polling=200)
        snapshot = page.evaluate("window.cqWatch")
        page.screenshot(path=str(workspace.root / "watch.png"))

        pack = snapshot["packs"]["tiny"]
        assert pack["visited"] == len(truth) and pack["target"] == PAIRS and pack["done"]
        assert pack["failures"] == dict(failures)
        assert pack["shards"] == len(workspace.shard_files("tiny"))
        assert page.text_content("#visited") == f"{PAIRS}/{PAIRS}"
        assert page.text_content("tr[data-pack=tiny] .visited") == str(PAIRS)
        assert page.text_content("#eta") == "done"
        renderers = {row["renderer"] for row in truth.values()}
        assert snapshot["renderer"] in renderers and page.text_content("#renderer") == f"renderer {snapshot['renderer']}"
        assert snapshot["pairsPerMin"] > 0

        # two sampling processes, both ended
        assert len(snapshot["runs"]) == 2 and not any(run["alive"] for run in snapshot["runs"])
        assert all(run["renderer"] in renderers for run in snapshot["runs"])
        worker_rows = [row for run in snapshot["runs"] for worker in run["workers"] for row in worker["lastRows"]]
        assert worker_rows and all(truth[row["pair"]]["contentKey"] == row["contentKey"] for row in worker_rows)
        assert not any(worker["inFlight"] for run in snapshot["runs"] for worker in run["workers"])

        # per worker, the pair in flight with its file names, as the manifest has them
        assert seen_in_flight, "the page never showed a pair in flight"
        for pair, fg, bg in seen_in_flight:
            assert (fg, bg) == names[pair]

        # thumbnails come from the rows and load
        widths = page.evaluate("Array.from(document.querySelectorAll('#last img'), img => img.naturalWidth)")
        assert len(widths) == PAIRS and all(width > 0 for width in widths)
        page.close()
        assert errors == []


def test_a_torn_shard_line_and_a_broken_pack_are_reported_not_fatal(workspace):
    shards = workspace.shards_dir("tiny")
    shards.mkdir(parents=True)
    (shards / "0000.jsonl").write_bytes(b'{"not": "a row"}\n{"torn')
    watcher = Watcher(workspace)
    snapshot = watcher.snapshot()
    assert snapshot["packs"]["tiny"]["badLines"] == 1 and snapshot["packs"]["tiny"]["visited"] == 0
    workspace.manifest_path("tiny").write_text("{ not json")
    snapshot = watcher.snapshot()
    assert "not valid JSON" in snapshot["packs"]["tiny"]["problem"]
    assert Watcher(workspace).settings_for([]) == SampleSettings(packs="tiny", frames=150, width=64, height=64,
                                                                 shard_size=2, workers=1)


def test_the_watch_command_serves_on_localhost_and_a_busy_port_is_one_line(workspace):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "stages.cli", "watch", "--port", str(port)], cwd=CHECKOUT,
                                env={**os.environ, "CQ_WORKSPACE": str(workspace.root)}, capture_output=True,
                                text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == f"error: cannot listen on 127.0.0.1:{port}: Address already in use " \
                                    "(pick another --port)"
    process = subprocess.Popen([sys.executable, "-m", "stages.cli", "watch", "--port", "0"], cwd=CHECKOUT, text=True,
                               env={**os.environ, "CQ_WORKSPACE": str(workspace.root)}, stdout=subprocess.PIPE)
    try:
        url = process.stdout.readline().split()[1]
        assert url.startswith("http://127.0.0.1:") and url.endswith(WATCH_PATH)
        with urllib.request.urlopen(url.replace(WATCH_PATH, "/api/watch"), timeout=10) as response:
            answer = json.loads(response.read())
        assert answer["packs"]["tiny"]["target"] == PAIRS and answer["running"] is False
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_worker_that_runs_ahead_of_the_writer_keeps_its_pair_in_flight(workspace):
    live = LiveStatus(workspace, SampleSettings())
    live.pair_started(0, "tiny", 1, "a_fg.json", "a_bg.json")
    live.pair_started(0, "tiny", 2, "b_fg.json", "b_bg.json")  # took pair 2 before pair 1's row was written
    live.pair_finished(0, "tiny", 1, "key1")
    live.event("restart", {"worker": 0})
    state = read_json(live.path)
    assert state["workers"]["0"]["pair"] == 2 and state["workers"]["0"]["fg"] == "b_fg.json"
    assert state["workers"]["0"]["lastKeys"] == ["key1"] and state["restarts"] == 1
    live.pair_finished(0, "tiny", 2, "key2")
    assert read_json(live.path)["workers"]["0"]["pair"] is None
    live.close()
    [run] = Watcher(workspace).live_runs()
    assert run["finished"] and not run["alive"]


def ended_run(workspace: Workspace, minutes_ago: float, run_minutes: float) -> SampleSettings:
    """A sampling run that ended `minutes_ago`, having sampled every pair of the pack in `run_minutes`: rows
    with the content keys the run's renderer and audio give, and its live file."""
    settings = configured(SampleSettings, workspace)
    remember_identity(workspace, "browsers", browser_signature(settings), {"renderer": "SwiftShader"})
    remember_identity(workspace, "audio", audio_identity(settings), {"key": "audio-key"})
    end_ms = int(time.time() * 1000 - minutes_ago * 60000)
    start_ms = end_ms - int(run_minutes * 60000)
    rows = []
    rng = np.random.default_rng(1)
    planned = [pair for shard in plan_pack(workspace, "tiny", settings, KEY_VERSIONS).shards for pair in shard]
    for index, pair in enumerate(planned):
        row = sampled_row("tiny", pair.pair, pair.fg_path, pair.bg_path, stats_for(0.8, rng),
                          key=content_key(pair, settings, "audio-key", engine_version(), "SwiftShader", KEY_VERSIONS))
        row.update(tMs=start_ms + (index + 1) * (end_ms - start_ms) // len(planned),
                   reasons=["deaf"] if index == 0 else [], okHeuristic=index != 0)
        rows.append(row)
    write_rows(workspace.shard_path("tiny", 0), rows)
    live = LiveStatus(workspace, settings)
    for row in rows:
        live.pair_started(0, "tiny", row["pair"], row["presetFgId"], row["presetBgId"])
        live.pair_finished(0, "tiny", row["pair"], row["contentKey"])
    live.close()
    write_json(live.path, {**read_json(live.path), "startedAtMs": start_ms, "updatedAtMs": end_ms})
    return settings


def test_an_ended_run_keeps_the_rate_it_ended_with(workspace):
    ended_run(workspace, minutes_ago=10, run_minutes=2)
    snapshot = Watcher(workspace).snapshot()
    assert snapshot["visited"] == PAIRS and not snapshot["running"]
    assert snapshot["pairsPerMin"] == PAIRS / 2 and snapshot["rateWindow"] == "the whole run"


def test_a_run_whose_process_is_gone_is_shown_as_ended(workspace):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    live = LiveStatus(workspace, SampleSettings())  # never closed: a killed run
    write_json(live.path, {**read_json(live.path), "pid": int(gone.stdout)})
    [run] = Watcher(workspace).live_runs()
    assert not run["finished"] and not run["alive"]
    live = LiveStatus(workspace, SampleSettings())  # this process: alive
    assert [run["alive"] for run in Watcher(workspace).live_runs() if run["pid"] == os.getpid()] == [True]


def test_the_page_drops_ended_workers_and_explains_flags_and_shards(workspace, browser):
    ended_run(workspace, minutes_ago=1, run_minutes=1)
    with serving(workspace) as server:
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{server.url}{WATCH_PATH}?every=0.25")
        page.wait_for_function("window.cqWatch !== undefined", timeout=20000)
        assert page.locator(".worker").count() == 0
        assert "the last one (pid" in page.text_content("#workers")
        assert page.get_attribute("tr[data-pack=tiny] .flags abbr", "title").startswith(
            "the visuals do not follow the music")
        assert "deaf: the visuals do not follow the music" in page.text_content("#legend")
        assert page.text_content("#shards-help").startswith("shards: the files of sampled rows written so far, 2 pairs")
        assert page.text_content("#rate-window") == "pairs/min (the whole run)"
        page.close()
        assert errors == []
