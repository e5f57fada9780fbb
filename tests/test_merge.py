"""Merging a pack's shards into eval.jsonl and meta.json (stages.merge), on real files, and the merge task
as real doit runs it.

The shards hold what sampling runs leave: rows keyed by the content key of the pair's files and settings
then, and the identity cache with the renderer and audio those runs used.
"""
from __future__ import annotations

import dataclasses

import pytest
from packs import make_pack, sampled_row, write_rows

from stages import merge
from stages.core import keys
from stages.core.contracts import STAT_FIELDS, append_jsonl, read_json, read_rows, validate_meta
from stages.core.errors import CqError
from stages.core.plan import PackPlan, PlannedPair, plan_pack
from stages.core.settings import SampleSettings
from stages.core.workspace import Workspace
from stages.render.audio import load_audio
from stages.render.versions import KEY_VERSIONS

SETTINGS = SampleSettings(packs="p", frames=16, width=64, height=64, shard_size=2, workers=1)
RENDERER, AUDIO_KEY = "ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device))", "frames-of-the-click-track"


def remember_run(workspace: Workspace, settings: SampleSettings = SETTINGS, audio_key: str = AUDIO_KEY) -> None:
    """The identity cache as a sampling run with these settings leaves it."""
    keys.remember_identity(workspace, "browsers", keys.browser_signature(settings),
                           {"renderer": RENDERER, "vendor": "Google", "gpuModeUsed": "off"})
    keys.remember_identity(workspace, "audio", keys.audio_identity(settings),
                           {"key": audio_key, "mode": "click", "audioFile": "", "fallbackReason": "", "rms": 0.2,
                            "peak": 0.8})


def row(planned: PlannedPair, settings: SampleSettings = SETTINGS, status: str = "ok", renderer: str = RENDERER,
        audio_key: str = AUDIO_KEY) -> dict:
    """The row a sampling run writes for a planned pair: keyed by the pair's files and the settings."""
    key = keys.content_key(planned, settings, audio_key, keys.engine_version(), renderer, KEY_VERSIONS)
    stats = {name: 0.1 + planned.pair / 100 for name in STAT_FIELDS} if status == "ok" else {}
    return sampled_row("p", planned.pair, planned.fg_path, planned.bg_path, stats, status, key=key)


def sample(workspace: Workspace, plan: PackPlan, shards: list[int] | None = None, **row_options) -> None:
    """Write each shard's rows as the sample tasks do (every pair of the listed shards)."""
    for index in range(len(plan.shards)) if shards is None else shards:
        write_rows(workspace.shard_path(plan.pack, index), [row(p, plan.settings, **row_options)
                                                            for p in plan.shards[index]])


def merged(workspace: Workspace, pack: str = "p") -> tuple[list[dict], dict]:
    rows, warnings = read_rows(workspace.eval_path(pack))
    assert warnings == []
    return rows, validate_meta(read_json(workspace.meta_path(pack)))


@pytest.fixture
def sampled(workspace) -> PackPlan:
    """A 6-pair pack in 3 shards, every shard sampled."""
    make_pack(workspace, "p", 6)
    remember_run(workspace)
    plan = plan_pack(workspace, "p", SETTINGS, KEY_VERSIONS)
    sample(workspace, plan)
    return plan


def test_merge_writes_one_row_per_pair_sorted_and_the_meta(workspace, sampled):
    merge.run(workspace, "p", SETTINGS)
    rows, meta = merged(workspace)
    assert [r["pair"] for r in rows] == list(range(6))
    assert meta["progress"] == {"p": {"visited": 6, "target": 6, "done": True}}
    assert meta["pairs"] == {"manifest": 6, "rows": 6, "ok": 6, "okHeuristic": 6}
    assert meta["runtime"]["webgl"]["renderer"] == RENDERER and meta["runtime"]["engine"] == keys.engine_version()
    assert meta["audio"]["mode"] == "click" and meta["audio"]["rms"] == 0.2
    assert meta["startedAt"] == min(r["sampledAt"] for r in rows) and meta["errors"] == []
    assert meta["settings"] == dataclasses.asdict(SETTINGS)


def test_a_row_in_both_a_shard_and_eval_counts_once(workspace, sampled):
    merge.run(workspace, "p", SETTINGS)
    first = workspace.eval_path("p").read_bytes()
    # eval.jsonl now holds every shard row; a re-planned shard wrote pair 0's row again in another shard
    pair_zero = next(p for shard in sampled.shards for p in shard if p.pair == 0)
    write_rows(workspace.shard_path("p", 7), [row(pair_zero)])
    merge.run(workspace, "p", SETTINGS)
    rows, meta = merged(workspace)
    assert [r["pair"] for r in rows] == list(range(6))
    assert meta["progress"]["p"]["visited"] == 6 and meta["pairs"]["rows"] == 6
    assert len(workspace.eval_path("p").read_bytes().splitlines()) == len(first.splitlines())


def test_stale_rows_are_left_out(workspace, sampled):
    planned = {p.pair: p for p in sampled.ordered}
    older = [row(planned[1], dataclasses.replace(SETTINGS, width=32)),     # other pixel settings
             row(planned[2], renderer="llvmpipe"),                        # another renderer
             row(planned[3], audio_key="a-user-track"),                   # other audio
             row(PlannedPair(4, planned[4].fg_path, planned[4].bg_path, "0" * 16, planned[4].bg_hash))]  # old fg file
    write_rows(workspace.shard_path("p", 5), older)
    edited = planned[5].bg_path
    edited.write_bytes(edited.read_bytes() + b" ")  # edited after sampling
    merge.run(workspace, "p", SETTINGS)
    rows, meta = merged(workspace)
    assert [r["pair"] for r in rows] == [0, 1, 2, 3, 4]
    assert {r["contentKey"] for r in rows}.isdisjoint(r["contentKey"] for r in older)
    assert meta["progress"]["p"] == {"visited": 5, "target": 6, "done": False}


def test_progress_counts_the_coverage_target_only(workspace):
    make_pack(workspace, "p", 10)
    remember_run(workspace)
    everything = plan_pack(workspace, "p", SETTINGS, KEY_VERSIONS)
    half = dataclasses.replace(SETTINGS, target_coverage=0.5)
    plan = plan_pack(workspace, "p", half, KEY_VERSIONS)
    assert plan.target == 5 and [len(shard) for shard in plan.shards] == [2, 2, 1]
    # an earlier run at full coverage sampled the last 3 pairs of the order; this one sampled shard 0
    write_rows(workspace.shard_path("p", 9), [row(p) for p in everything.ordered[7:]])
    sample(workspace, plan, shards=[0])
    merge.run(workspace, "p", half)
    rows, meta = merged(workspace)
    assert len(rows) == 5, "every current row is kept, targeted or not"
    assert meta["progress"]["p"] == {"visited": 2, "target": 5, "done": False}
    sample(workspace, plan, shards=[1, 2])
    merge.run(workspace, "p", half)
    rows, meta = merged(workspace)
    assert len(rows) == 8 and meta["progress"]["p"] == {"visited": 5, "target": 5, "done": True}


def test_failed_rows_and_missing_files_are_counted_in_meta(workspace):
    make_pack(workspace, "p", 6)
    remember_run(workspace)
    plan = plan_pack(workspace, "p", SETTINGS, KEY_VERSIONS)
    sample(workspace, plan, shards=[0], status="shader-failed")
    sample(workspace, plan, shards=[1, 2])
    gone = plan.shards[2][0].fg_path
    gone.unlink()
    merge.run(workspace, "p", SETTINGS)
    rows, meta = merged(workspace)
    assert len(rows) == 5 and meta["pairs"]["ok"] == 3 and meta["pairs"]["rows"] == 5
    assert "2 pairs shader-failed" in meta["errors"]
    assert f"preset file not found: {gone.resolve()}" in meta["errors"]
    assert meta["progress"]["p"] == {"visited": 5, "target": 6, "done": False}


def test_before_any_sampling_run_nothing_is_merged(workspace):
    make_pack(workspace, "p", 4)
    with pytest.raises(CqError, match="none of the 4 pairs to sample has a row"):
        merge.run(workspace, "p", SETTINGS)
    assert not workspace.eval_path("p").exists() and not workspace.meta_path("p").exists()


def test_a_corrupt_shard_line_is_reported_and_the_good_rows_kept(workspace, sampled):
    with workspace.shard_path("p", 1).open("ab") as shard:
        shard.write(b'{"pair": 3, "status": "ok"}\n{"tMs": 1, "pack"\n')
    merge.run(workspace, "p", SETTINGS)
    rows, meta = merged(workspace)
    assert len(rows) == 6
    assert len(meta["errors"]) == 2 and all("0001.jsonl" in error for error in meta["errors"])


# ------------------------------------------------------------------------------- as doit runs it


def test_doit_merges_again_when_a_shard_changes_and_never_starts_a_browser(workspace, doit, no_browser):
    workspace.config_path.write_text('[sample]\npacks = "p"\nframes = 16\nwidth = 64\nheight = 64\n'
                                     'shard_size = 2\nworkers = 1\n')
    make_pack(workspace, "p", 6)
    click_track = load_audio(SETTINGS).key  # what the sample tasks will find for the audio
    remember_run(workspace, audio_key=click_track)
    plan = plan_pack(workspace, "p", SETTINGS, KEY_VERSIONS)
    sample(workspace, plan, audio_key=click_track)

    first = doit(workspace, "merge", env=no_browser)
    assert "merge:p" in first.executed and all(f"sample:p:{i}" in first.executed for i in range(3))
    rows, meta = merged(workspace)
    assert len(rows) == 6 and meta["progress"]["p"]["done"]
    assert doit(workspace, "merge", env=no_browser).executed == []

    stale = row(plan.shards[2][0], dataclasses.replace(SETTINGS, width=32), audio_key=click_track)
    with workspace.shard_path("p", 2).open("ab") as shard:  # a row of another run lands in a shard file
        append_jsonl(shard, stale)
    assert doit(workspace, "merge", env=no_browser).executed == ["merge:p"]
    rows, meta = merged(workspace)
    assert len(rows) == 6 and stale["contentKey"] not in {r["contentKey"] for r in rows}
