"""The sampling page and the render pool, in real headless Chromium (SwiftShader here): 64x64, 16 frames."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from stages.core.errors import CqError
from stages.core.settings import SampleSettings
from stages.core.workspace import NODE_MODULES_DIR
from stages.presets.conversion import load_preset
from stages.render.audio import load_audio
from stages.render.browser import BrowserRegistry, is_our_browser, kill_leftovers
from stages.render.pairstats import LayerFrames, pair_series, pair_thumbnail
from stages.render.pool import PairJob, RenderPool, require_audible

PRESETS = NODE_MODULES_DIR / "butterchurn-presets" / "presets" / "converted"
FG_NAME = "EVET - RGB Singularity.json"
BG_NAME = "$$$ Royal - Mashup (157).json"
SETTINGS = SampleSettings(width=64, height=64, frames=16, workers=1, pair_timeout_s=60,
                          browser_max_restarts=3, reload_every=0)
SERIES = ("luma", "lumaStd", "colour", "delta", "black", "white", "fgLuma", "bgLuma", "fgShare")


def preset(name: str) -> dict:
    return load_preset(PRESETS / name)


def job(pair: int, fg: dict | None = None, bg: dict | None = None) -> PairJob:
    return PairJob(pair, fg or preset(FG_NAME), bg or preset(BG_NAME), FG_NAME, BG_NAME)


def gone(pid: int) -> bool:
    """The process has exited (or is a zombie waiting for its parent)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def broken_warp() -> dict:
    """The bg preset with an undeclared identifier in its warp shader."""
    broken = preset(BG_NAME)
    assert "ret = tmpvar_3.xyz;" in broken["warp"]
    broken["warp"] = broken["warp"].replace("ret = tmpvar_3.xyz;", "ret = tmpvar_3.xyz + undeclared_thing;")
    return broken


@pytest.fixture(scope="module")
def audio() -> np.ndarray:
    return load_audio(SETTINGS).frames


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("state")


POOL_EVENTS: list[str] = []


@pytest.fixture(scope="module")
def pool(audio, state_dir):
    with RenderPool(SETTINGS, audio, state_dir, on_event=lambda kind, details: POOL_EVENTS.append(kind)) as shared:
        yield shared
    assert BrowserRegistry(state_dir).entries() == []


@pytest.fixture(scope="module")
def reference(pool):
    (result,) = pool.render([job(1)])
    assert result.status == "ok", result.errors
    return result


def test_pool_reports_renderer_and_engine(pool):
    assert "swiftshader" in pool.renderer.lower()
    assert pool.engine.startswith("butterchurn@3.0.0-beta.5+sampler.")
    assert pool.browser_version.split(".")[0].isdigit() and Path(pool.chromium_path).is_file()
    assert pool.gpu_mode_used == "off"
    entries = BrowserRegistry(pool.state_dir).entries()
    assert [entry["pid"] for entry in entries] == pool.browser_pids
    assert all(is_our_browser(entry["pid"], entry["owner"]) for entry in entries)


def test_series_have_one_plausible_value_per_frame(reference):
    series = reference.series
    assert sorted(series) == sorted(SERIES)
    assert all(len(series[name]) == SETTINGS.frames for name in SERIES)
    for name in SERIES:
        assert all(0.0 <= value <= 1.0 for value in series[name]), name
    assert series["delta"][0] == 0 and max(series["delta"]) > 0.001      # it moves
    assert max(series["fgLuma"]) > 0.1 and max(series["bgLuma"]) > 0.01  # both layers draw
    assert max(series["lumaStd"]) > 0.01 and max(series["colour"]) > 0.01
    # normal blend at 0.7: the composite's mean luma is the same mix of the layers' mean lumas
    for luma, fg, bg in zip(series["luma"], series["fgLuma"], series["bgLuma"]):
        assert luma == pytest.approx(0.7 * fg + 0.3 * bg, abs=1e-9)
    assert reference.thumb_png.startswith(b"\x89PNG")
    assert reference.attempts == 1 and reference.page_errors == 0 and reference.errors == []
    assert reference.timings["renderMs"] > 0 and reference.timings["framesRendered"] == SETTINGS.frames
    assert reference.timings["frameMs"] == pytest.approx(reference.timings["renderMs"] / SETTINGS.frames)
    assert reference.timings["pairMs"] >= reference.timings["renderMs"]


def test_same_pair_twice_in_one_page_is_identical(pool, reference):
    results = list(pool.render([job(2), job(3)]))
    assert [result.status for result in results] == ["ok", "ok"]
    assert all(result.series == reference.series for result in results)


def test_a_pair_composed_from_its_layers_rendered_alone_measures_what_the_page_measures(pool, reference):
    """Sampling renders each preset alone and composes its pairs in Python (render.pairstats): frame by frame,
    the series the page computes for the pair rendered together."""
    layers = {result.job.pair: LayerFrames.from_page(result.series, SETTINGS.width, SETTINGS.height)
              for result in pool.render([PairJob(1, preset(FG_NAME), None, FG_NAME, ""),
                                         PairJob(2, preset(BG_NAME), None, BG_NAME, "")])}
    composed = pair_series(layers[1], layers[2], SETTINGS.blend, SETTINGS.fg_opacity)
    for name in SERIES:
        np.testing.assert_allclose(composed[name], reference.series[name], rtol=0, atol=1e-9, err_msg=name)
    assert pair_thumbnail(layers[1], layers[2], SETTINGS.blend, SETTINGS.fg_opacity).startswith(b"\x89PNG")


def test_broken_warp_shader_fails_with_its_log_and_the_run_goes_on(pool, reference):
    bad_eel = preset(FG_NAME)
    bad_eel["frame_eqs_eel"] = "x = = 1;"
    results = {result.job.pair: result for result in pool.render(
        [job(10, bg=broken_warp()), job(11, fg=bad_eel), job(12)])}
    shader = results[10]
    assert shader.status == "shader-failed" and shader.series is None
    assert shader.attempts == 2
    assert any("undeclared_thing" in error and "compile" in error for error in shader.errors)
    assert results[11].status == "eel-error" and "fg" in results[11].errors[0]
    assert results[12].status == "ok" and results[12].series == reference.series


def test_deadline_in_the_past_renders_nothing(pool):
    assert list(pool.render([job(20)], deadline=time.time() - 1)) == []


def test_leaving_render_early_stops_its_pairs_and_keeps_the_pool_usable(pool, reference):
    restarts = pool.restarts
    first = next(iter(pool.render([job(70), job(71), job(72)])))
    assert first.status == "ok"
    (after,) = pool.render([job(73)])
    assert after.status == "ok" and after.series == reference.series and pool.restarts == restarts


def test_killed_browser_is_restarted_and_renders_the_same(pool, reference):
    restarts = pool.restarts
    victim = pool.browser_pids[0]
    slow = preset(FG_NAME)  # seconds of EEL per pair, so that the kill lands mid-pair
    slow["frame_eqs_eel"] = "loop(30000000, q1 = q1 + 1);" + slow["frame_eqs_eel"]
    killer = threading.Timer(0.3, os.kill, (victim, signal.SIGKILL))
    killer.start()
    results = list(pool.render([job(30, fg=slow), job(31)]))
    killer.join()
    assert [(result.status, result.attempts) for result in results] == [("ok", 2), ("ok", 1)]
    assert results[1].series == reference.series
    assert pool.restarts == restarts + 1 and "restart" in POOL_EVENTS
    assert pool.browser_pids[0] != victim and gone(victim)
    assert [entry["pid"] for entry in BrowserRegistry(pool.state_dir).entries()] == pool.browser_pids


def test_two_browsers_safe_mode_fallback_reloads_and_self_test_match(audio, tmp_path, reference):
    settings = SampleSettings(**{**vars(SETTINGS), "workers": 2, "gpu_mode": "safe", "reload_every": 2})
    events = []
    with RenderPool(settings, audio, tmp_path, on_event=lambda kind, details: events.append(kind)) as second:
        assert second.gpu_mode_used == "off" and "software" in second.gpu_fallback
        assert "gpu-fallback" in events
        second.self_test(job(40))  # one pair on each browser
        results = list(second.render([job(41), job(42), job(43)]))  # the third needs a reload
        pids = second.browser_pids
        assert second.reloads == 1 and second.restarts == 0 and "reload" in events
    assert [result.status for result in results] == ["ok"] * 3
    assert {result.worker for result in results} <= {0, 1}
    assert all(result.series == reference.series for result in results)  # other pool, other launches
    assert BrowserRegistry(tmp_path).entries() == []
    assert all(gone(pid) for pid in pids)


def test_statistics_do_not_depend_on_readback_chunks_or_pairs_in_flight(audio, tmp_path, reference):
    # 30 frames are read back in two strips (24 + 6) by two browsers at once; the reference read its 16
    # frames in one strip with one pair in flight: the frames they share must measure bit-identically
    settings = SampleSettings(**{**vars(SETTINGS), "workers": 2, "frames": 30})
    with RenderPool(settings, load_audio(settings).frames, tmp_path) as two:
        results = list(two.render([job(80), job(81), job(82)]))
    assert [result.status for result in results] == ["ok"] * 3
    assert {result.worker for result in results} == {0, 1}
    for result in results:
        assert result.series == results[0].series
        assert {name: values[:SETTINGS.frames] for name, values in result.series.items()} == reference.series


def test_too_heavy_pair_stops_early_with_its_cost_and_is_not_retried(audio, tmp_path):
    settings = SampleSettings(**{**vars(SETTINGS), "frames": 30, "max_frame_ms": 0.01})
    with RenderPool(settings, load_audio(settings).frames, tmp_path) as capped:
        (result,) = capped.render([job(90)])
    assert result.status == "too-heavy" and result.attempts == 1 and result.series is None
    assert result.timings["framesRendered"] == 24  # stopped at the first read, before the last 6 frames
    assert result.timings["frameMs"] > 0.01 and result.timings["costClock"] == "wall"
    assert "above the budget of 0.01 ms" in result.errors[0]


def test_timeout_stops_a_pair_from_outside_and_the_run_goes_on(audio, tmp_path, reference):
    settings = SampleSettings(**{**vars(SETTINGS), "pair_timeout_s": 5})
    endless = preset(FG_NAME)
    endless["frame_eqs_eel"] = "loop(1000000, loop(1000000, q1 = q1 + 1));" + endless["frame_eqs_eel"]
    with RenderPool(settings, audio, tmp_path) as slow_pool:
        started = time.monotonic()
        results = list(slow_pool.render([job(50, fg=endless), job(51)]))
        elapsed = time.monotonic() - started
    assert [result.status for result in results] == ["timeout", "ok"] and results[0].attempts == 2
    assert "pair_timeout_s=5" in results[0].errors[0]
    assert results[1].series == reference.series
    assert elapsed < 60  # the endless pair alone would take hours


def test_silent_audio_fails_the_self_test_check(audio):
    require_audible(audio)
    with pytest.raises(CqError, match="silent"):
        require_audible(np.full((SETTINGS.frames, 3, 1024), 128, dtype=np.uint8))


def test_require_gpu_fails_fast_on_software(audio, tmp_path):
    settings = SampleSettings(**{**vars(SETTINGS), "gpu_mode": "require"})
    started = time.monotonic()
    with pytest.raises(CqError, match="gpu_mode=require.*software.*SwiftShader"):
        RenderPool(settings, audio, tmp_path)
    assert time.monotonic() - started < 30
    assert BrowserRegistry(tmp_path).entries() == []


def test_wrong_audio_shape_is_a_clear_error(tmp_path):
    with pytest.raises(CqError, match=r"shape \(F, 3, 1024\)"):
        RenderPool(SETTINGS, np.zeros((16, 1024), dtype=np.uint8), tmp_path)
    with pytest.raises(CqError, match="8 audio frames for 16"):
        RenderPool(SETTINGS, np.zeros((8, 3, 1024), dtype=np.uint8), tmp_path)


def test_leftover_browsers_of_an_interrupted_run_are_ended_only_ours(tmp_path):
    # An interrupted run: a process starts a Chromium, records it, and is killed before closing it.
    script = (
        "import os, subprocess, sys\n"
        "from stages.render.browser import BASE_ARGS, BrowserRegistry, OWNER_SWITCH, find_chromium\n"
        "chromium = subprocess.Popen([find_chromium(), '--headless', *BASE_ARGS, f'{OWNER_SWITCH}=left',\n"
        f"    '--user-data-dir={tmp_path / 'profile'}', 'about:blank'], start_new_session=True,\n"
        "    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        f"BrowserRegistry({str(tmp_path)!r}).add(chromium.pid, 'left')\n"
        "print(chromium.pid, os.getpid(), flush=True)\n"
        "os.kill(os.getpid(), 9)\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent)
    leftover, dead_tool = (int(word) for word in run.stdout.split())
    # A listed PID that is not our browser any more (reused by another program) must survive.
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        BrowserRegistry(tmp_path).add(stranger.pid, "someone-else", tool_pid=dead_tool)
        assert is_our_browser(leftover, "left")
        assert kill_leftovers(tmp_path) == [leftover]
        assert not is_our_browser(leftover, "left")
        assert stranger.poll() is None
        assert BrowserRegistry(tmp_path).entries() == []
    finally:
        stranger.kill()
        stranger.wait()


def test_ctrl_c_closes_every_browser(tmp_path):
    script = (
        # as in a terminal: a run started in the background (CI, `cmd &`) inherits SIGINT as ignored
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "import itertools\n"
        "from pathlib import Path\n"
        "from tests.test_render import SETTINGS, job\n"
        "from stages.render.audio import load_audio\n"
        "from stages.render.pool import RenderPool\n"
        f"with RenderPool(SETTINGS, load_audio(SETTINGS).frames, Path({str(tmp_path)!r})) as pool:\n"
        "    print(*pool.browser_pids, flush=True)\n"
        "    for result in pool.render(job(pair) for pair in itertools.count()):\n"
        "        print(result.status, flush=True)\n")
    sampler = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=Path(__file__).resolve().parent.parent)
    try:
        pids = [int(word) for word in sampler.stdout.readline().split()]
        assert sampler.stdout.readline().strip() == "ok"  # mid-run
        sampler.send_signal(signal.SIGINT)
        _, errors = sampler.communicate(timeout=60)
    finally:
        sampler.kill()
    assert "KeyboardInterrupt" in errors
    assert pids and all(gone(pid) for pid in pids)
    assert BrowserRegistry(tmp_path).entries() == []
