"""Issue 20: `too-heavy` is a property of the pair and the cap, not of how busy the machine was.

The rule for which rows stand under a cap needs no browser; the pool's quiet re-check and the doit graph's
re-judging run real headless Chromium (run them under `flock /tmp/cq-browser.lock`)."""
from __future__ import annotations

import pytest
from packs import make_pack
from test_pipeline import SETTINGS
from test_render import BG_NAME, FG_NAME, preset

from stages.core.contracts import read_jsonl
from stages.core.rows import PackRows
from stages.core.settings import SampleSettings
from stages.render.audio import load_audio
from stages.render.pool import PairJob, RenderPool

# 48 frames: two reads of 24, so the page can cut a pair at the first
RENDER = dict(width=64, height=64, frames=48, pair_timeout_s=120, browser_max_restarts=3, reload_every=0)
BROWSERS = 4  # on 2 cores, 4 browsers make a light pair's wall time per frame 2-4x its cost alone


def rendered(status: str, cap: float, peak: float) -> dict:
    return {"contentKey": "k", "status": status, "pair": 0, "presetFgId": "a_fg.json", "presetBgId": "a_bg.json",
            "timings": {"maxFrameMs": cap, "peakFrameMs": peak, "frameMs": peak}}


@pytest.mark.parametrize("status, judged, peak, cap, stands", [
    ("too-heavy", 50.0, 60.0, 50.0, True),    # the same cap
    ("too-heavy", 50.0, 60.0, 30.0, True),    # a lower cap cuts it as well
    ("too-heavy", 50.0, 60.0, 80.0, False),   # a higher cap may let it through
    ("too-heavy", 50.0, 60.0, 0.0, False),    # no cap at all
    ("ok", 50.0, 40.0, 45.0, True),           # its peak cost is within the lowered cap
    ("ok", 50.0, 40.0, 30.0, False),          # ... and above this one: judged again
    ("ok", 50.0, 40.0, 0.0, True),
    ("ok", 0.0, 40.0, 30.0, False),           # rendered with no cap, then one was set
    ("ok", 0.0, 40.0, 1000.0, True),
    ("eel-error", 50.0, 40.0, 30.0, False),   # it failed after frames a lower cap would have cut
    ("shader-failed", 50.0, 0.0, 1.0, True),  # failed before a frame: no cost to judge
])
def test_a_row_stands_only_while_the_cap_would_give_its_status(status, judged, peak, cap, stands):
    rows = PackRows()
    rows.add(rendered(status, judged, peak))
    assert rows.needs_render("k", cap) is not stands


def test_a_row_that_was_never_rendered_has_no_cost_and_stands():
    rows = PackRows()
    rows.add({**rendered("missing-file", 0.0, 0.0), "timings": {}})
    assert not rows.needs_render("k", 1.0) and not rows.needs_render("k", 0.0)


def heavy_bg() -> dict:
    """The bg preset with a warp shader that costs several times the whole light pair per frame (64x64,
    SwiftShader)."""
    bg = preset(BG_NAME)
    assert "ret = tmpvar_3.xyz;" in bg["warp"]
    bg["warp"] = bg["warp"].replace(
        "ret = tmpvar_3.xyz;",
        "ret = tmpvar_3.xyz; for (int i = 0; i < 4500; i++) { ret = abs(sin(ret * 1.0001 + 0.001)); }")
    return bg


def jobs() -> list[PairJob]:
    heavy = {2, 5}
    return [PairJob(pair, preset(FG_NAME), heavy_bg() if pair in heavy else preset(BG_NAME), FG_NAME, BG_NAME)
            for pair in range(8)]


def render(workers: int, cap: float, state_dir) -> tuple[dict[int, object], list[str]]:
    settings = SampleSettings(**RENDER, workers=workers, max_frame_ms=cap)
    events: list[str] = []
    with RenderPool(settings, load_audio(settings).frames, state_dir,
                    on_event=lambda kind, _: events.append(kind)) as pool:
        results = {result.job.pair: result for result in pool.render(jobs())}
    return results, events


def test_the_same_pairs_get_the_same_statuses_at_one_and_at_many_browsers(tmp_path):
    # the cap sits at twice the light pair's own cost: under load the light pair crosses it, the heavy
    # pair is over it by itself
    calibration, _ = render(1, 0.0, tmp_path)
    light = max(result.timings["peakFrameMs"] for pair, result in calibration.items() if pair not in (2, 5))
    cap = round(2 * light, 1)
    assert min(calibration[pair].timings["peakFrameMs"] for pair in (2, 5)) > 1.5 * cap  # well over it alone

    one, _ = render(1, cap, tmp_path)
    many, events = render(BROWSERS, cap, tmp_path)
    statuses = {pair: result.status for pair, result in one.items()}
    assert statuses == {pair: "too-heavy" if pair in (2, 5) else "ok" for pair in range(8)}
    assert {pair: result.status for pair, result in many.items()} == statuses
    assert all(result.timings["alone"] and result.timings["maxFrameMs"] == cap for result in one.values())
    assert all(result.timings["maxFrameMs"] == cap for result in many.values())

    # the load did push light pairs over the cap: without the quiet re-check they would have been cut
    suspects = {pair: result for pair, result in many.items() if "sharedFrameMs" in result.timings}
    cleared = [pair for pair, result in suspects.items() if result.status == "ok"]
    assert cleared, {pair: result.timings["peakFrameMs"] for pair, result in many.items()}
    assert all(suspects[pair].timings["sharedFrameMs"] > cap for pair in cleared)
    assert all(result.timings["alone"] and result.attempts == 2 for result in suspects.values())
    assert events.count("recheck") == len(suspects)


@pytest.fixture
def workspace(workspace):
    workspace.config_path.write_text(SETTINGS.replace("frames = 16", "frames = 48"))
    return workspace


def shard_statuses(workspace, start: int) -> list[tuple[int, str, float]]:
    """(pair, status, cap) of the shard's rows from line `start` on, by pair."""
    rows = read_jsonl(workspace.shard_path("tiny", 0)).rows[start:]
    return sorted((row["pair"], row["status"], row["timings"]["maxFrameMs"]) for row in rows)


def test_a_changed_cap_re_judges_exactly_the_rows_it_could_change(workspace, doit):
    make_pack(workspace, "tiny", 2)
    doit(workspace, "sample", "--max-frame-ms", "0.01")
    assert shard_statuses(workspace, 0) == [(0, "too-heavy", 0.01), (1, "too-heavy", 0.01)]

    doit(workspace, "sample", "--max-frame-ms", "0")  # no cap: the cut pairs are rendered whole
    assert shard_statuses(workspace, 2) == [(0, "ok", 0.0), (1, "ok", 0.0)]

    doit(workspace, "sample", "--max-frame-ms", "0.005")  # their peak cost is over a lowered cap
    assert shard_statuses(workspace, 4) == [(0, "too-heavy", 0.005), (1, "too-heavy", 0.005)]

    run = doit(workspace, "sample", "--max-frame-ms", "0.001")  # a lower cap still cuts them: nothing to do
    assert len(shard_statuses(workspace, 0)) == 6 and not [name for name in run.executed if name.startswith("sample")]
