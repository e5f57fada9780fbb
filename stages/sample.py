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

import contextlib
import time
from dataclasses import dataclass

from .core import rows as row_files
from .core.contracts import append_jsonl, now_iso
from .core.errors import CqError
from .core.keys import content_key, engine_version, fingerprint_identity, fingerprint_key
from .core.plan import PackPlan, PlannedPair, fingerprint_shard
from .core.progress import Progress
from .core.rows import PackRows, drop_torn_tail, mark_shard_done, prepare_shard_file, read_pack_rows
from .core.settings import SampleSettings
from .core.workspace import Workspace
from .render.fingerprint import fingerprint_row, write_thumbnail
from .render.pairstats import LayerFrames, pair_series, pair_thumbnail
from .render.session import RUN_STARTED, SESSION, current_audio, known_renderer, render_pool


def pack_rows(workspace: Workspace, pack: str) -> PackRows:
    """Every valid row already written for the pack (a shard file is parsed again only once it changed)."""
    return read_pack_rows(workspace, pack, lambda warning: print(f"warning: {warning}", flush=True))


def degraded_notes(fg: dict, bg: dict) -> list[str]:
    """What a degraded preset replaced (set by the .milk conversion when allow_degraded is on)."""
    return [f"{layer}: {note}" for layer, preset in (("fg", fg), ("bg", bg)) for note in preset.get("cqDegraded", [])]


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


WORKER_TIMINGS = ("createMs", "loadMs", "renderMs", "framesMs", "readbackMs", "thumbMs", "pairMs")


@dataclass
class _Layer:
    """One preset of the pairs to render: how its render went, and its frames while pairs still need them."""

    status: str
    errors: list[str]
    uses: int = 1                 # pairs of this run composed from it
    preset: dict | None = None    # the butterchurn preset (None when it could not be read)
    result: object = None         # the pool's PairResult for it (None when it was never rendered)
    frames: LayerFrames | None = None

    @property
    def frame_ms(self) -> float:
        return float(self.result.timings.get("frameMs", 0.0)) if self.result is not None else 0.0

    @property
    def peak_ms(self) -> float:
        """The highest cost at one of the page's budget checks (none in a render of one readback chunk, which
        the page never cuts)."""
        return float(self.result.timings.get("peakFrameMs", 0.0)) if self.result is not None else 0.0

    @property
    def alone(self) -> bool:
        return bool(self.result is not None and self.result.timings.get("alone"))


@dataclass
class _Composed:
    """A pair's render, composed from its two layers (what `build_row` reads of a render result)."""

    series: dict | None
    timings: dict
    page_errors: int
    console_errors: int
    attempts: int
    node: str
    gpu: str


def _compose(fg: _Layer, bg: _Layer, settings: SampleSettings) -> tuple[str, list[str], _Composed, bytes | None]:
    """A pair's status, errors, render and thumbnail PNG from its layers rendered alone. A pair is too heavy
    when its layers' frames cost more than `max_frame_ms` together at the page's budget checks (each
    measured alone on the pool). The
    workers' time (createMs ... pairMs) is each layer's divided among the pairs of this run that use it, so
    summed over rows it is the time the workers spent."""
    layers = (("fg", fg), ("bg", bg))
    rendered = [layer for _, layer in layers if layer.result is not None]
    frame_ms = fg.frame_ms + bg.frame_ms
    peak_ms = fg.peak_ms + bg.peak_ms
    cap = settings.max_frame_ms
    timings = {"fgFrameMs": fg.frame_ms, "bgFrameMs": bg.frame_ms, "frameMs": frame_ms, "peakFrameMs": peak_ms,
               "costClock": "wall", "maxFrameMs": cap, "alone": fg.alone and bg.alone,
               **{name: round(sum(layer.result.timings.get(name, 0.0) / layer.uses for layer in rendered), 1)
                  for name in WORKER_TIMINGS}}
    rendered = [layer.result for layer in rendered]
    composed = _Composed(None, timings, sum(r.page_errors for r in rendered), sum(r.console_errors for r in rendered),
                         max((r.attempts for r in rendered), default=0),
                         next((r.node for r in rendered), ""), next((r.gpu for r in rendered), ""))
    for name, layer in layers:
        if layer.status != "ok":
            return layer.status, [f"{name}: {error}" for error in layer.errors], composed, None
    if cap > 0 and peak_ms > cap:
        return "too-heavy", [f"frames cost {peak_ms:.1f} ms each at their peak (wall, fg {fg.peak_ms:.1f} + bg "
                             f"{bg.peak_ms:.1f}, each alone), above the budget of {cap:g} ms"], composed, None
    composed.series = pair_series(fg.frames, bg.frames, settings.blend, settings.fg_opacity)
    return "ok", [], composed, pair_thumbnail(fg.frames, bg.frames, settings.blend, settings.fg_opacity)


def _render(workspace, plan: PackPlan, rows: PackRows, audio, deadline: float, keys_for) -> dict[int, str]:
    """Render every preset of the pack's pairs that need a row, each once, through one queue; compose each
    pair as soon as both its layers are in, appending its row to its own shard's file and marking a shard
    done once all its pairs have current rows; a layer's frames are dropped once no pair waits for them.
    Each rendered preset's fingerprint row is written too when it lacks one (the same frames: a night renders
    each preset once). Returns the pairs' keys under the pool's renderer."""
    from .presets.conversion import load_preset
    from .render.pool import PairJob

    settings = plan.settings
    pool = render_pool(workspace, settings)
    live = SESSION.live
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
    progress = Progress(f"sample {plan.pack}", total=plan.target,
                        done=sum(1 for key in pair_keys.values() if not rows.needs_render(key, settings.max_frame_ms)))
    thumbs_dir = workspace.thumbs_dir(plan.pack)
    thumbs_dir.mkdir(parents=True, exist_ok=True)

    # the distinct presets of those pairs, in the order the pairs need them
    waiting: dict[str, list[PlannedPair]] = {}
    paths: dict[str, object] = {}
    for planned in todo:
        for digest, path in {planned.fg_hash: planned.fg_path, planned.bg_hash: planned.bg_path}.items():
            paths.setdefault(digest, path)
            waiting.setdefault(digest, []).append(planned)
    layers: dict[str, _Layer] = {}
    jobs, digest_of = [], {}
    for index, (digest, path) in enumerate(paths.items()):
        try:
            preset = load_preset(path, workspace.conversion_cache_dir, settings.allow_degraded)
        except CqError as error:
            layers[digest] = _Layer(getattr(error, "status", "read-failed"), [str(error)])
            continue
        layers[digest] = _Layer("pending", [], len(waiting[digest]), preset)
        digest_of[index] = digest
        jobs.append(PairJob(index, preset, None, path.name, ""))
    def started(worker: int, job) -> None:
        """The watch page shows the first pair waiting for the preset a worker took."""
        pairs = waiting.get(digest_of.get(job.pair, ""), [])
        if pairs:
            live.pair_started(worker, plan.pack, pairs[0].pair, pairs[0].fg_path.name, pairs[0].bg_path.name)

    pool.on_pair_start = started
    fingerprints = _FingerprintWriter(workspace, settings, audio, pool.renderer, plan.versions)

    main_thread = {"rowS": 0.0, "writeS": 0.0, "rows": 0}  # the loop's own cost, printed at the end
    with contextlib.ExitStack() as files:
        handles: dict[int, object] = {}
        files.callback(fingerprints.close)
        files.callback(setattr, pool, "on_pair_start", None)  # the pool outlives this stage

        def write(row: dict) -> None:
            started = time.perf_counter()
            shard = shard_of[row["pair"]]
            if shard not in handles:
                prepare_shard_file(workspace.shard_path(plan.pack, shard))
                handles[shard] = files.enter_context(workspace.shard_path(plan.pack, shard).open("ab"))
            append_jsonl(handles[shard], row)
            rows.add(row)
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

        def finish(planned: PlannedPair, worker: int | None) -> None:
            """Write the pair's row if both its layers are in, then drop frames no pair waits for."""
            fg, bg = layers[planned.fg_hash], layers[planned.bg_hash]
            if "pending" in (fg.status, bg.status):
                return
            started = time.perf_counter()
            key = pair_keys[planned.pair]
            status, errors, composed, png = _compose(fg, bg, settings)
            thumb = ""
            if png:
                thumb = f"thumbs/{key}.png"
                # not fsynced: a thumbnail lost in a crash only costs a picture
                (workspace.eval_dir(plan.pack) / thumb).write_bytes(png)
            degraded = degraded_notes(fg.preset or {}, bg.preset or {})
            row = build_row(plan, planned, key, pool.renderer, audio, status, errors + degraded, composed, thumb)
            if degraded:  # rendered, but not the author's picture: always marked, never "ok" by heuristic
                row["reasons"].append("degraded")
                row["okHeuristic"] = False
            main_thread["rowS"] += time.perf_counter() - started
            write(row)
            if worker is not None:
                live.pair_finished(worker, plan.pack, planned.pair, key)
            for digest in {planned.fg_hash, planned.bg_hash}:
                waiting[digest] = [p for p in waiting[digest] if p is not planned]
                if not waiting[digest]:
                    layers[digest].frames = None

        for digest, layer in list(layers.items()):
            if layer.status != "pending":
                for planned in list(waiting[digest]):
                    finish(planned, None)
        suspects: list[PlannedPair] = []
        for result in pool.render(jobs, deadline=deadline):
            digest = digest_of[result.job.pair]
            layer = layers[digest]
            layer.status, layer.errors, layer.result = result.status, list(result.errors), result
            if result.status == "ok":
                layer.frames = LayerFrames.from_page(result.series, settings.width, settings.height)
            fingerprints.add(paths[digest].name, digest, result, layer.frames)
            for planned in list(waiting[digest]):
                other = layers[planned.bg_hash if planned.fg_hash == digest else planned.fg_hash]
                if _suspect(layer, other, settings.max_frame_ms):
                    suspects.append(planned)  # judged once both are measured alone, below
                    continue
                finish(planned, result.worker)
        _judge_alone(pool, suspects, layers, jobs, digest_of, finish, deadline)
    progress.close()
    if main_thread["rows"]:
        count = main_thread["rows"]
        print(f"sample {plan.pack}: {count} rows; main thread per row: composition and row "
              f"{main_thread['rowS'] / count * 1000:.1f} ms, write and fsync {main_thread['writeS'] / count * 1000:.1f} ms",
              flush=True)
    unfinished = {p.pair for pairs in waiting.values() for p in pairs}
    if unfinished:
        print(f"sample {plan.pack}: MaxHours reached; {len(unfinished)} pairs left for the next run", flush=True)
    return pair_keys


def _suspect(layer: _Layer, other: _Layer, cap: float) -> bool:
    """A pair over the cap whose layers were not both measured alone: its cost may be the load's."""
    if layer.status != "ok" or other.status != "ok" or cap <= 0:
        return False
    return layer.peak_ms + other.peak_ms > cap and not (layer.alone and other.alone)


def _judge_alone(pool, suspects: list[PlannedPair], layers: dict[str, _Layer], jobs: list, digest_of: dict,
                 finish, deadline: float) -> None:
    """Render each layer of the suspect pairs again with nothing else in flight on the pool (one job at a
    time), so a pair's too-heavy never depends on how busy the machine was, then write their rows."""
    job_of = {digest_of[job.pair]: job for job in jobs}
    for digest in dict.fromkeys(d for p in suspects for d in (p.fg_hash, p.bg_hash)):
        layer = layers[digest]
        if layer.alone or time.time() >= deadline:
            continue
        for result in pool.render([job_of[digest]], deadline=deadline):
            if result.status == "ok":
                result.timings["alone"] = True
                result.timings["sharedFrameMs"] = layer.frame_ms
                layer.result = result
    for planned in suspects:
        if all(layers[d].alone for d in (planned.fg_hash, planned.bg_hash)):
            finish(planned, None)


class _FingerprintWriter:
    """Writes the fingerprint row of each preset rendered for pairs, when it lacks a current one: the
    fingerprint tasks then find it done (rows are found by key in any shard)."""

    def __init__(self, workspace: Workspace, settings: SampleSettings, audio, renderer: str, versions):
        self.workspace, self.settings, self.audio, self.renderer = workspace, settings, audio, renderer
        self.versions = versions
        self.rows = row_files.read_fingerprint_rows(workspace, lambda warning: print(f"warning: {warning}", flush=True))
        self.engine = engine_version()
        self.handles: dict[int, object] = {}

    def add(self, preset_id: str, digest: str, result, frames: LayerFrames | None) -> None:
        if result.status not in ("ok", "too-heavy"):
            return  # a passing failure: the fingerprint task tries again
        key = fingerprint_key(digest, self.settings, self.audio.key, self.engine, self.renderer, self.versions)
        if not self.rows.needs_render(key, self.settings.max_frame_ms):
            return
        thumb = write_thumbnail(self.workspace.fingerprints_dir, key, frames)
        identity = fingerprint_identity(key, self.settings, self.audio.key, self.renderer, self.versions)
        row = fingerprint_row(preset_id, digest, identity, self.settings, self.audio, result.status,
                              list(result.errors), result, frames.frames if frames is not None else None, thumb)
        shard = fingerprint_shard(digest)
        if shard not in self.handles:
            path = self.workspace.fingerprint_shard_path(shard)
            path.parent.mkdir(parents=True, exist_ok=True)
            prepare_shard_file(path)
            self.handles[shard] = path.open("ab")
        append_jsonl(self.handles[shard], row)
        self.rows.add(row)

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()
