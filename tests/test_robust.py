"""Issue 9, the parts that need no browser: which rows are current, the run lock, doit's state, one-line
errors, the ratings file after a torn write, the server's odd requests, the player's server and a lost
identity cache. The cases that render live in test_robust_browser.py."""
from __future__ import annotations

import errno
import http.client
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from packs import make_pack

from stages.core.contracts import append_jsonl, read_json, read_ratings, write_json
from stages.core.errors import CqError, report_errors
from stages.core.lock import hold_workspace
from stages.core.rows import TRANSIENT_TRIES, PackRows, labelled
from stages.core.settings import SampleSettings
from stages.core.workspace import CHECKOUT, Workspace
from stages.presets.conversion import MAX_PRESET_BYTES, PresetError, load_preset
from stages.render.live import LiveStatus
from stages.render.server import serving
from stages.report import run as report_action


def single_error_line(result: subprocess.CompletedProcess) -> str:
    """The run failed with exactly one line that says what is wrong, and no traceback."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith(("error: ", "ERROR: "))]
    assert len(lines) == 1, output
    return lines[0]


def row(key: str, status: str, pair: int = 1) -> dict:
    return {"contentKey": key, "status": status, "pair": pair, "presetFgId": "a_fg.json", "presetBgId": "a_bg.json",
            "timings": {}}


# ------------------------------------------------------------------------------- 9.2, 9.3: current rows


def test_a_transient_failure_is_rendered_again_a_bounded_number_of_times():
    rows = PackRows()
    rows.add(row("k", "timeout"))
    assert rows.needs_render("k", 400.0)
    for _ in range(TRANSIENT_TRIES - 1):
        rows.add(row("k", "crashed"))
    assert not rows.needs_render("k", 400.0), "after TRANSIENT_TRIES tries the failure stands"


@pytest.mark.parametrize("status", ["shader-failed", "eel-error", "read-failed", "missing-file", "ok"])
def test_a_failure_of_the_preset_itself_is_kept(status):
    rows = PackRows()
    rows.add(row("k", status))
    assert not rows.needs_render("k", 400.0)


def test_a_lasting_row_is_not_replaced_by_a_later_transient_one():
    rows = PackRows()
    rows.add(row("k", "ok"))
    rows.add(row("k", "timeout"))  # e.g. read from a later shard file
    assert rows.row_for("k")["status"] == "ok" and not rows.needs_render("k", 400.0)


def test_a_row_found_by_content_key_is_labelled_for_the_pair_that_needs_it():
    found = row("k", "ok", pair=1)
    again = labelled(found, 7, "b_fg.json", "b_bg.json")
    assert (again["pair"], again["presetFgId"], again["presetBgId"]) == (7, "b_fg.json", "b_bg.json")
    assert found["pair"] == 1, "the stored row is not changed"


# --------------------------------------------------------------------------------------- 9.6: lock


HOLDER = ("import sys, time; from stages.core.lock import hold_workspace; from stages.core.workspace import Workspace;"
          "from pathlib import Path; hold_workspace(Workspace(Path(sys.argv[1]))); print('held', flush=True);"
          "time.sleep(120)")


def start_holder(workspace: Workspace) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(workspace.root)], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(CHECKOUT)})
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_run_refuses_with_one_line_naming_the_first(tmp_path, doit):
    workspace = Workspace(tmp_path / "ws")
    holder = start_holder(workspace)
    try:
        line = single_error_line(doit(workspace, "demo_pack", check=False))
        assert f"pid {holder.pid}" in line and "in use by another run" in line and "started" in line
        assert not workspace.pack_dir("demo").exists(), "the refused run wrote nothing"
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_killed_run_is_taken_over(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    holder = start_holder(workspace)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    hold_workspace(workspace)  # raises if the dead run's lock were still honoured
    assert read_json(workspace.state_dir / "run.owner.json")["pid"] == os.getpid()


def test_a_refused_run_saves_no_knob(tmp_path, doit):
    workspace = Workspace(tmp_path / "ws")
    workspace.root.mkdir()
    workspace.config_path.write_text("[train]\nepochs = 30\n")
    holder = start_holder(workspace)  # the first run, sampling
    try:  # train's knobs are read when doit loads the graph, before any action
        line = single_error_line(doit(workspace, "train", "--epochs", "8", check=False))
    finally:
        holder.kill()
        holder.wait()
    assert "in use by another run" in line
    assert workspace.config_path.read_text() == "[train]\nepochs = 30\n", "the first run's epochs are kept"


@pytest.mark.parametrize("command", [["clean"], ["forget"], ["clean", "report"]])
def test_clean_and_forget_wait_for_the_running_run(tmp_path, doit, command):
    workspace = Workspace(tmp_path / "ws")
    make_pack(workspace, "demo", 4, rows="eval", quality=True)
    doit(workspace, "-s", "report")  # the report alone: nothing renders
    index = workspace.report_index_path("demo")
    with sqlite3.connect(workspace.doit_db) as db:
        before = sorted(db.execute("select task_id, task_data from doit"))
    holder = start_holder(workspace)
    try:
        line = single_error_line(doit(workspace, *command, check=False))
    finally:
        holder.kill()
        holder.wait()
    assert "in use by another run" in line
    assert index.is_file(), "nothing was cleaned under the running run"
    with sqlite3.connect(workspace.doit_db) as db:
        assert sorted(db.execute("select task_id, task_data from doit")) == before, "nothing was forgotten"


def test_doit_list_needs_no_lock(tmp_path, doit):
    workspace = Workspace(tmp_path / "ws")
    holder = start_holder(workspace)
    try:
        result = doit(workspace, "list", check=False)
        assert result.returncode == 0 and "sample" in result.stdout, result.stderr
    finally:
        holder.kill()
        holder.wait()


# --------------------------------------------------------------------------- 9.7: doit's state, SIGTERM

SLOW_DODO = """
import time
from pathlib import Path
from stages.core.doit_state import keep_doit_state_current, sigterm_like_ctrl_c
from stages.core.errors import before_each_action, report_errors
DOIT_CONFIG = {"dep_file": "state.sqlite3", "backend": "sqlite3", "verbosity": 2}
before_each_action(keep_doit_state_current)
sigterm_like_ctrl_c()

def work(name, seconds):
    time.sleep(seconds)
    Path(name).write_text("done")

def task_first():
    return {"actions": [(report_errors(work), ["first", 0])], "targets": ["first"]}

def task_second():
    return {"actions": [(report_errors(work), ["second", 60])], "targets": ["second"], "task_dep": ["first"]}
"""


def run_until_second_starts(folder, dodo: str = SLOW_DODO) -> subprocess.Popen:
    (folder / "dodo.py").write_text(dodo)
    process = subprocess.Popen([sys.executable, "-m", "doit"], cwd=folder, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(CHECKOUT)})
    deadline = time.time() + 60
    while not (folder / "first").exists() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # the first task's record is saved before the second task starts
    return process


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_run_remembers_the_tasks_it_finished(tmp_path, how):
    process = run_until_second_starts(tmp_path)
    process.send_signal(how)
    process.communicate(timeout=30)
    assert process.returncode != 0
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:
        recorded = {task for (task,) in db.execute("select task_id from doit")}
    assert "first" in recorded and "second" not in recorded


def test_sigterm_ends_the_run_like_ctrl_c_with_one_line(tmp_path):
    dodo = SLOW_DODO.replace("sigterm_like_ctrl_c()", "sigterm_like_ctrl_c()\nimport sys\n"
                             "from stages.core.errors import one_line_interrupt\nsys.excepthook = one_line_interrupt")
    process = run_until_second_starts(tmp_path, dodo)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode != 0
    assert "Traceback" not in out + err and "error: interrupted" in err


# ----------------------------------------------------------------------------- 9.10: one-line errors


@pytest.mark.parametrize("args, words", [
    (["sample", "--target-coverage", "0"], "--target-coverage 0"),
    (["sample", "--frames", "1"], "--frames 1"),
    (["sample", "--workers", "-1"], "--workers -1"),
])
def test_a_bad_knob_is_one_line(tmp_path, args, words, doit):
    workspace = Workspace(tmp_path / "ws")
    workspace.root.mkdir()
    assert words in single_error_line(doit(workspace, *args, check=False))


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_a_read_only_workspace_is_one_line_even_for_doit_list(tmp_path, doit):
    workspace = Workspace(tmp_path / "ws")
    workspace.root.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(workspace.root, 0o555)
    # root writes anywhere; run as nobody then, which may read the repo but not write the workspace
    user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    try:
        line = single_error_line(doit(workspace, "list", check=False, prefix=user))
    finally:
        os.chmod(workspace.root, 0o755)
    assert str(workspace.state_dir) in line and ("read-only" in line or "permission denied" in line)


def test_a_full_disk_is_one_line_and_names_the_file():
    def write_on_a_full_disk():
        raise OSError(errno.ENOSPC, "No space left on device", "/ws/artifacts/shards/0000.jsonl")

    failure = report_errors(write_on_a_full_disk)()
    text = str(failure.get_msg()).strip()
    assert text.count("\n") == 0 and "0000.jsonl" in text and "disk is full" in text


def test_a_knob_given_on_a_full_disk_is_one_line_and_leaves_nothing_half_written(tmp_path, doit):
    workspace = Workspace(tmp_path / "ws")
    workspace.root.mkdir()
    workspace.config_path.write_text("[train]\nepochs = 30\n")
    partial = workspace.config_path.with_name(workspace.config_path.name + ".partial")
    partial.symlink_to("/dev/full")  # every write there fails as on a full disk (ENOSPC)
    line = single_error_line(doit(workspace, "train", "--epochs", "8", check=False))
    assert "coupled-quality.toml" in line and "disk is full" in line
    assert workspace.config_path.read_text() == "[train]\nepochs = 30\n" and not partial.is_symlink()


def test_a_folder_where_the_run_lock_belongs_is_one_line(tmp_path, doit):
    workspace = Workspace(tmp_path / "ws")
    (workspace.state_dir / "run.lock").mkdir(parents=True)
    line = single_error_line(doit(workspace, "train", check=False))
    assert "run.lock" in line and "a folder is where this file belongs" in line


FULL_DB_DODO = """
from pathlib import Path
from doit import Globals
from doit.tools import config_changed
from stages.core.doit_state import keep_doit_state_current
from stages.core.errors import before_each_action, report_errors
DOIT_CONFIG = {"dep_file": "state.sqlite3", "backend": "sqlite3", "verbosity": 2}
before_each_action(keep_doit_state_current)

def fill_the_disk(name):
    # sqlite's own limit on the file's size: it fails with the error a full disk gives (SQLITE_FULL)
    Globals.dep_manager.backend._conn.execute("PRAGMA max_page_count = 1")
    Path(name).write_text("done")

def task_big():
    return {"actions": [(report_errors(fill_the_disk), ["big"])], "targets": ["big"],
            "uptodate": [config_changed("x" * 200000)]}
"""


def test_doit_state_on_a_full_disk_is_one_line(tmp_path):
    (tmp_path / "dodo.py").write_text(FULL_DB_DODO)
    result = subprocess.run([sys.executable, "-m", "doit"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(CHECKOUT)})
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    [line] = [line for line in output.splitlines() if line.startswith("error: ")]
    assert "state.sqlite3" in line and "full" in line and "free some space" in line
    assert (tmp_path / "big").read_text() == "done", "what the task wrote is kept"


def test_the_live_status_never_stops_sampling(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    workspace.state_dir.mkdir(parents=True)
    workspace.live_dir.write_text("")  # a file where its folder belongs: every write fails
    live = LiveStatus(workspace, SampleSettings())
    live.pair_started(0, "demo", 1, "a_fg.json", "a_bg.json")
    live.close()
    assert workspace.live_dir.read_text() == ""


def test_a_shard_path_that_is_a_folder_is_one_line(tmp_path, doit, no_browser):
    workspace = Workspace(tmp_path / "ws")
    make_pack(workspace, "tiny", 3)
    workspace.config_path.write_text('[sample]\npacks = "tiny"\n')
    workspace.shard_path("tiny", 0).mkdir(parents=True)
    line = single_error_line(doit(workspace, "merge", check=False, env=no_browser))
    assert "0000.jsonl" in line and "a folder is where this file belongs" in line


# --------------------------------------------------------------------------- 9.5, 9.12: the server


def send_raw(server, raw: bytes) -> bytes:
    import socket

    with socket.create_connection(server.server_address, timeout=10) as connection:
        connection.sendall(raw)
        return connection.recv(65536)


@pytest.fixture
def scored(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    make_pack(workspace, "demo", 4, quality=True)
    with serving(workspace) as server:
        yield workspace, server


def post_rating(server, body: dict) -> tuple[int, dict]:
    import json

    connection = http.client.HTTPConnection(*server.server_address, timeout=10)
    connection.request("POST", "/api/rating", json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def test_a_rating_after_a_torn_line_is_kept(scored):
    workspace, server = scored
    with workspace.ratings_path.open("ab") as handle:
        append_jsonl(handle, {"pack": "demo", "pair": 1, "fgUrl": "x", "bgUrl": "y", "score": 3,
                              "ratedAt": "2026-01-01T00:00:00Z", "ratingId": "before-00001"})
        handle.write(b'{"pack": "demo", "pair": 2, "sco')  # a full disk cut this write short
    status, _ = post_rating(server, {"pack": "demo", "pair": 3, "score": 5, "ratingId": "after-000001"})
    assert status == 201
    ratings, warnings = read_ratings(workspace.ratings_path)
    assert {entry.score for entry in ratings} == {3.0, 5.0}, "the acknowledged rating is readable"
    assert len(warnings) == 1, "the fragment stays, on its own line"


def test_a_rating_that_cannot_be_written_is_not_acknowledged(scored):
    workspace, server = scored
    workspace.ratings_path.mkdir()  # any write error: the file cannot be opened for appending
    status, answer = post_rating(server, {"pack": "demo", "pair": 1, "score": 4, "ratingId": "unsaved-0001"})
    assert status == 507 and "not saved" in answer["error"]


def test_pair_true_is_not_pair_one(scored):
    _, server = scored
    status, answer = post_rating(server, {"pack": "demo", "pair": True, "score": 4, "ratingId": "bool-pair-01"})
    assert status == 400 and "not in pack" in answer["error"]


@pytest.mark.parametrize("raw", [
    b"POST /api/rating HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}",
    b"GET /presets/demo/%00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /api/preset?url=/presets/demo/%00.json HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_odd_requests_get_an_answer(scored, raw):
    _, server = scored
    assert send_raw(server, raw).startswith(b"HTTP/1.1 400")


LONG_NAME = "a" * 300  # a file name over the file system's 255 bytes


@pytest.mark.parametrize("path", [f"/presets/demo/{LONG_NAME}.json", f"/web/{LONG_NAME}.js",
                                  f"/node_modules/{LONG_NAME}.js", f"/artifacts/demo/thumbs/{LONG_NAME}.png",
                                  f"/api/preset?url=/presets/demo/fg/{LONG_NAME}.json"])
def test_a_file_name_over_255_bytes_gets_an_answer(scored, path):
    _, server = scored
    assert send_raw(server, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()).startswith(b"HTTP/1.1 404")


# ------------------------------------------------------------------------ 9.4, 9.12: presets and files


def test_a_huge_preset_says_why(tmp_path):
    path = tmp_path / "huge_fg.json"
    path.write_bytes(b" " * (MAX_PRESET_BYTES + 1))
    with pytest.raises(PresetError) as raised:
        load_preset(path, tmp_path)
    assert raised.value.status == "read-failed" and "MB" in str(raised.value) and "huge_fg.json" in str(raised.value)


def test_a_manifest_without_pairs_names_its_file(tmp_path, doit):
    workspace = Workspace(tmp_path / "ws")
    write_json(workspace.manifest_path("empty"), {"version": "v0", "pack": "empty", "pairs": []})
    workspace.config_path.write_text('[sample]\npacks = "empty"\n')
    line = single_error_line(doit(workspace, "sample:empty", check=False))
    assert "pairs-manifest.v0.json" in line and "no pairs" in line


def test_the_night_ends_non_zero_naming_a_missing_preset_file(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    manifest = make_pack(workspace, "demo", 4, rows="eval", quality=True).manifest
    gone = workspace.public / manifest.pairs[2].bgUrl.lstrip("/")
    gone.unlink()
    with pytest.raises(CqError) as raised:
        report_action(workspace, "demo")
    assert gone.name in str(raised.value) and "restore" in str(raised.value)
    assert (workspace.root / "reports" / "demo" / "index.html").exists(), "the report is written first"
