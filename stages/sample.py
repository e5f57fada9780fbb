"""Sampling one shard: render the pairs that lack a current row; each row is durable once written.

In: the workspace, a pack, a shard index and `SampleSettings` (the doit task `sample:<pack>:<shard>`).
Out: rows appended to `shards/NNNN.jsonl` (flushed and fsynced one by one), thumbnails in `thumbs/`, and
`NNNN.done` (the shard key and the content keys it covers) once every pair of the shard has a current row
(`stages.core.rows` decides which rows are current: a passing failure is tried again, a missing preset file
is a row with its reason). What the run learned
about its renderer and audio goes to the identity cache (`core.keys`) for later runs and the merge.

A row is current when its `contentKey` matches the pair's key now. Rows are looked up in every shard of
the pack, so a resumed, reshuffled or re-planned shard never renders a pair twice, and a killed run loses
at most the pairs in flight. Browsers start only when something needs rendering, once per doit process.
Shards are the unit of durability and of doit's bookkeeping, not of work: the first shard task that has
pairs to render feeds every planned pair of the pack that needs rendering to the browsers through one
queue, in plan order, so no worker idles at a shard's end. Each row goes to its own shard's file, and a
shard's `.done` is written as soon as all its pairs have current rows; the later shard tasks find their
rows current. A pair is rendered at most once per doit process (a passing failure waits for the next run).
`MaxHours` counts from the start of the doit process; at the deadline rendering stops cleanly, the
unfinished shards stay unmarked, and the next `doit` resumes them.

With `executor = "dask"` the queue's pairs are rendered by the workers of a Dask cluster (`render.cluster`,
imported only then) instead of browsers here; rows are written here all the same, and say which worker
made them.
"""
from __future__ import annotations

import base64
import contextlib
import time

from .core.contracts import append_jsonl, now_iso
from .core.errors import CqError
from .core.keys import content_key, engine_version
from .core.plan import PackPlan, PlannedPair
from .core.progress import Progress
from .core.rows import PackRows, drop_torn_tail, mark_shard_done, prepare_shard_file, read_pack_rows
from .core.settings import SampleSettings
from .core.workspace import Workspace
from .render.session import RUN_STARTED, SESSION, current_audio, known_renderer, render_pool


def pack_rows(workspace: Workspace, pack: str) -> PackRows:
    """Every valid row already written for the pack (a shard file is parsed again only once it changed)."""
    return read_pack_rows(workspace, pack, lambda warning: print(f"warning: {warning}", flush=True))


def _load_job(workspace: Workspace, planned: PlannedPair, settings: SampleSettings):
    """Both presets as butterchurn objects (.milk through the workspace's conversion cache)."""
    from .presets.conversion import load_preset
    from .render.pool import PairJob

    fg, bg = (load_preset(path, workspace.conversion_cache_dir, settings.allow_degraded)
              for path in (planned.fg_path, planned.bg_path))
    return PairJob(planned.pair, fg, bg, planned.fg_path.name, planned.bg_path.name)


def degraded_notes(job) -> list[str]:
    """What a degraded preset replaced (set by the .milk conversion when allow_degraded is on)."""
    return [f"{layer}: {note}" for layer, preset in (("fg", job.fg), ("bg", job.bg))
            for note in preset.get("cqDegraded", [])]


def build_row(plan: PackPlan, planned: PlannedPair, key: str, renderer: str, audio, status: str,
              errors: list[str], result=None, thumb: str = "") -> dict:
    """One eval row per the contract, from a render result (or a failure before rendering)."""
    from .render.framestats import pair_stats

    settings = plan.settings
    seed_fields = {"vizAvgLuma": 0.0, "vizAvgFrameDelta": 0.0, "pmAvgLumaFg": 0.0, "pmAvgLumaBg": 0.0}
    stats: dict = {}
    ok, reasons = False, [status]
    if result is not None and status == "ok" and result.series:
        seed_fields, stats, ok, reasons = pair_stats(result.series, audio.energy, settings)
    page_errors = result.page_errors if result is not None else 0
    console_errors = result.console_errors if result is not None else 0
    reasons = list(reasons)
    if page_errors:
        reasons.append("pageerror")
    if console_errors:
        reasons.append("consoleerror")
    return {
        "tMs": int(time.time() * 1000), "pack": plan.pack, "pair": planned.pair,
        "presetFgId": planned.fg_path.name, "presetBgId": planned.bg_path.name,
        **{name: float(value) for name, value in seed_fields.items()},
        "audioRms": float(audio.rms), "audioPeak": float(audio.peak),
        "pageErrorsSinceLast": page_errors, "consoleErrorsSinceLast": console_errors,
        "okHeuristic": bool(ok and not page_errors), "reasons": reasons,
        "contentKey": key, "fgHash": planned.fg_hash, "bgHash": planned.bg_hash, "status": status,
        "render": {**vars(settings.render()), "audioKey": audio.key}, "engine": engine_version(),
        "renderer": renderer, "errors": errors,
        "timings": dict(result.timings) if result is not None else {},
        "stats": {name: float(value) for name, value in stats.items()},
        "attempts": result.attempts if result is not None else 0, "sampledAt": now_iso(), "thumb": thumb,
        "node": result.node if result is not None else "",
        "gpu": result.gpu if result is not None else "",
    }


def run(workspace: Workspace, plan: PackPlan, shard: int) -> None:
    """Bring one shard of the plan doit listed up to date (the plan's preset hashes are computed once per
    run, not once per shard); raise CqError for problems the user must fix (rows are kept)."""
    pack, settings = plan.pack, plan.settings
    shard_path = workspace.shard_path(pack, shard)
    done_path = workspace.shard_done_path(pack, shard)
    shard_path.parent.mkdir(parents=True, exist_ok=True)
    done_path.unlink(missing_ok=True)
    drop_torn_tail(shard_path)
    shard_path.touch()

    deadline = RUN_STARTED + settings.max_hours * 3600
    planned_pairs = plan.shards[shard]
    rows = pack_rows(workspace, pack)
    audio = current_audio(workspace, settings)
    engine = engine_version()

    def keys_for(renderer: str) -> dict[int, str]:
        """Content keys of every planned pair of the pack (the queue spans the shards)."""
        return {p.pair: content_key(p, settings, audio.key, engine, renderer, plan.versions)
                for s in plan.shards for p in s}

    renderer = known_renderer(workspace, settings)
    pair_keys = keys_for(renderer or "")
    missing = [p for p in planned_pairs if p.missing]
    _record_missing(workspace, plan, shard, missing, pair_keys, rows, audio, renderer or "")
    todo = [p for p in planned_pairs
            if not p.missing and (not renderer or _to_render(rows, pair_keys[p.pair], settings.max_frame_ms))]
    if todo and time.time() < deadline:
        pair_keys = _render(workspace, plan, rows, audio, deadline, keys_for)
    elif todo:
        print(f"sample {pack}:{shard}: MaxHours reached; {len(todo)} pairs left for the next run", flush=True)
        return

    left = [p for p in planned_pairs if rows.needs_render(pair_keys[p.pair], settings.max_frame_ms)]
    if missing:
        print(f"sample {pack}:{shard}: {len(missing)} pairs have a missing preset file (first: "
              f"{missing[0].missing[0]}); recorded as 'missing-file' rows, the rest goes on", flush=True)
    if left:
        print(f"sample {pack}:{shard}: {len(left)} pairs failed for a passing reason (timeout, crash) or were "
              f"not reached; the next run renders them again", flush=True)
    else:
        mark_shard_done(done_path, plan.shard_key(shard), [pair_keys[p.pair] for p in planned_pairs])


def _to_render(rows: PackRows, key: str, max_frame_ms: float) -> bool:
    return rows.needs_render(key, max_frame_ms) and key not in SESSION.attempted


def _record_missing(workspace: Workspace, plan: PackPlan, shard: int, missing: list[PlannedPair],
                    pair_keys: dict[int, str], rows: PackRows, audio, renderer: str) -> None:
    """A pair whose preset file is missing gets a row saying so (no browser needed), like a failed render."""
    new = [p for p in missing if rows.needs_render(pair_keys[p.pair], plan.settings.max_frame_ms)]
    if not new:
        return
    with workspace.shard_path(plan.pack, shard).open("ab") as out:
        for planned in new:
            errors = [f"{path}: preset file not found (restore it or remove pair {planned.pair} from the "
                      f"manifest)" for path in planned.missing]
            row = build_row(plan, planned, pair_keys[planned.pair], renderer, audio, "missing-file", errors)
            append_jsonl(out, row)
            rows.add(row)


def _render(workspace, plan: PackPlan, rows: PackRows, audio, deadline: float, keys_for) -> dict[int, str]:
    """Render every planned pair of the pack that needs it through one queue, appending each row to its own
    shard's file as it arrives and marking a shard done once all its pairs have current rows; return the
    pairs' keys under the pool's renderer."""
    settings = plan.settings
    pool = render_pool(workspace, settings)
    live = SESSION.live
    pool.on_pair_start = lambda worker, job: live.pair_started(worker, plan.pack, job.pair, job.fg_id, job.bg_id)
    pair_keys = keys_for(pool.renderer)  # the renderer is known for sure now
    shard_of = {p.pair: index for index, shard in enumerate(plan.shards) for p in shard}
    todo, queued = [], set()
    for planned in (p for shard in plan.shards for p in shard):
        key = pair_keys[planned.pair]
        if not planned.missing and key not in queued and _to_render(rows, key, settings.max_frame_ms):  # one render per content
            queued.add(key)
            todo.append(planned)
    left = [{pair_keys[p.pair] for p in shard if rows.needs_render(pair_keys[p.pair], settings.max_frame_ms)}
            for shard in plan.shards]
    SESSION.attempted.update(pair_keys[p.pair] for p in todo)
    by_pair = {p.pair: p for p in todo}
    progress = Progress(f"sample {plan.pack}", total=plan.target,
                        done=sum(1 for key in pair_keys.values() if not rows.needs_render(key, settings.max_frame_ms)))
    thumbs_dir = workspace.thumbs_dir(plan.pack)
    thumbs_dir.mkdir(parents=True, exist_ok=True)
    jobs, load_failures = [], []
    for planned in todo:
        try:
            jobs.append(_load_job(workspace, planned, settings))
        except CqError as error:
            load_failures.append((planned, getattr(error, "status", "read-failed"), str(error)))

    main_thread = {"rowS": 0.0, "writeS": 0.0, "rows": 0}  # the loop's own cost, printed at the end
    with contextlib.ExitStack() as files:
        handles: dict[int, object] = {}

        def write(row: dict) -> None:
            started = time.perf_counter()
            shard = shard_of[row["pair"]]
            if shard not in handles:
                prepare_shard_file(workspace.shard_path(plan.pack, shard))
                handles[shard] = files.enter_context(workspace.shard_path(plan.pack, shard).open("ab"))
            append_jsonl(handles[shard], row)
            rows.add(row)
            by_pair.pop(row["pair"], None)
            if not rows.needs_render(row["contentKey"], settings.max_frame_ms):
                for index, keys_left in enumerate(left):  # pairs of identical content share the row
                    if row["contentKey"] in keys_left:
                        keys_left.discard(row["contentKey"])
                        if not keys_left:
                            mark_shard_done(workspace.shard_done_path(plan.pack, index), plan.shard_key(index),
                                            [pair_keys[p.pair] for p in plan.shards[index]])
            main_thread["writeS"] += time.perf_counter() - started
            main_thread["rows"] += 1
            progress.update(extra=f"restarts {pool.restarts}")

        for planned, status, message in load_failures:
            write(build_row(plan, planned, pair_keys[planned.pair], pool.renderer, audio, status, [message]))
        for result in pool.render(jobs, deadline=deadline):
            started = time.perf_counter()
            planned = by_pair[result.job.pair]
            key = pair_keys[planned.pair]
            thumb = ""
            if result.thumb_png:
                thumb = f"thumbs/{key}.png"
                # not fsynced: a thumbnail lost in a crash only costs a picture, and the row's fsync is
                # the one that must not wait behind another
                (workspace.eval_dir(plan.pack) / thumb).write_bytes(_png_bytes(result.thumb_png))
            degraded = degraded_notes(result.job)
            row = build_row(plan, planned, key, pool.renderer, audio, result.status,
                            list(result.errors) + degraded, result, thumb)
            if degraded:  # rendered, but not the author's picture: always marked, never "ok" by heuristic
                row["reasons"].append("degraded")
                row["okHeuristic"] = False
            main_thread["rowS"] += time.perf_counter() - started
            write(row)
            live.pair_finished(result.worker, plan.pack, result.job.pair, key)
    progress.close()
    if main_thread["rows"]:
        count = main_thread["rows"]
        print(f"sample {plan.pack}: {count} rows; main thread per row: statistics and row "
              f"{main_thread['rowS'] / count * 1000:.1f} ms, write and fsync {main_thread['writeS'] / count * 1000:.1f} ms",
              flush=True)
    if by_pair:
        print(f"sample {plan.pack}: MaxHours reached; {len(by_pair)} pairs left for the next run", flush=True)
    return pair_keys


def _png_bytes(thumb) -> bytes:
    return base64.b64decode(thumb) if isinstance(thumb, str) else bytes(thumb)
