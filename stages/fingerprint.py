"""Fingerprinting one shard: render each preset that lacks a current fingerprint alone, once.

In: the workspace, a `FingerprintPlan` (every distinct preset of the packs, or of a library folder for
`discover`) and a shard index (the doit task `fingerprint:<shard>`). Out: fingerprint rows appended to
`artifacts/fingerprints/shards/NNNN.jsonl` (durable one by one), the layer's thumbnail in `thumbs/`,
`NNNN.done` once every preset of the shard has a current row, and `meta.json`: the coverage of the
fingerprints (presets wanted, fingerprinted, failed).

A fingerprint is keyed by the preset's content (`keys.fingerprint_key`), not by pack or file name: a
preset shared by five packs renders once, an edited file renders again. Rows are found by key in every
shard, so a resumed run never renders a preset twice. As with pairs, the first shard task with work feeds
every preset of the plan that needs it to the browsers through one queue (`render.session`'s pool, local
or on a Dask cluster); the later shard tasks find their rows current. A preset that cannot be read gets a
row with its status and message, and the rest goes on.
"""
from __future__ import annotations

import contextlib
import time

from .core.contracts import append_jsonl, now_iso, write_json
from .core.errors import CqError
from .core.keys import engine_version, fingerprint_identity, fingerprint_key
from .core.plan import FingerprintPlan, PlannedPreset
from .core.progress import Progress
from .core.rows import PackRows, drop_torn_tail, mark_shard_done, prepare_shard_file, read_fingerprint_rows
from .core.workspace import Workspace
from .render.fingerprint import fingerprint_row, write_thumbnail
from .render.pairstats import LayerFrames
from .render.session import RUN_STARTED, SESSION, current_audio, known_renderer, render_pool


def fingerprint_rows(workspace: Workspace) -> PackRows:
    return read_fingerprint_rows(workspace, lambda warning: print(f"warning: {warning}", flush=True))


def build_row(plan: FingerprintPlan, preset: PlannedPreset, key: str, renderer: str, audio, status: str,
              errors: list[str], result=None, frames=None, thumb: str = "") -> dict:
    """One fingerprint row per the contract (`render.fingerprint.fingerprint_row`)."""
    identity = fingerprint_identity(key, plan.settings, audio.key, renderer, plan.versions)
    return fingerprint_row(preset.path.name, preset.digest, identity, plan.settings, audio, status, errors, result,
                           frames, thumb)


def run(workspace: Workspace, plan: FingerprintPlan, shard: int) -> None:
    """Bring one fingerprint shard up to date; rows already written are kept whatever happens."""
    settings = plan.settings
    shard_path, done_path = workspace.fingerprint_shard_path(shard), workspace.fingerprint_done_path(shard)
    shard_path.parent.mkdir(parents=True, exist_ok=True)
    done_path.unlink(missing_ok=True)
    drop_torn_tail(shard_path)
    shard_path.touch()
    rows = fingerprint_rows(workspace)
    audio = current_audio(workspace, settings)
    engine = engine_version()

    def keys_for(renderer: str) -> dict[str, str]:
        return {p.digest: fingerprint_key(p.digest, settings, audio.key, engine, renderer, plan.versions)
                for p in plan.presets}

    renderer = known_renderer(workspace, settings)
    preset_keys = keys_for(renderer or "")
    todo = [p for p in plan.shards[shard] if not renderer or _to_render(rows, preset_keys[p.digest], settings.max_frame_ms)]
    if todo and time.time() < RUN_STARTED + settings.max_hours * 3600:
        preset_keys = render(workspace, plan, rows, audio, keys_for)
    left = [p for p in plan.shards[shard] if rows.needs_render(preset_keys[p.digest], settings.max_frame_ms)]
    write_coverage(workspace, plan, rows, preset_keys)
    if left:
        print(f"fingerprint {shard}: {len(left)} presets failed for a passing reason or were not reached; the "
              f"next run renders them", flush=True)
    else:
        mark_shard_done(done_path, plan.shard_key(shard), [preset_keys[p.digest] for p in plan.shards[shard]])


def _to_render(rows: PackRows, key: str, max_frame_ms: float) -> bool:
    return rows.needs_render(key, max_frame_ms) and key not in SESSION.attempted


def render(workspace: Workspace, plan: FingerprintPlan, rows: PackRows, audio, keys_for) -> dict[str, str]:
    """Render every preset of the plan that needs it through one queue; each row goes to its own shard's
    file as it arrives. Returns the presets' keys under the pool's renderer."""
    from .presets.conversion import load_preset
    from .render.pool import PairJob

    settings = plan.settings
    pool = render_pool(workspace, settings)
    preset_keys = keys_for(pool.renderer)
    shard_of = {p.digest: index for index, presets in plan.shards.items() for p in presets}
    todo = [p for p in plan.presets if _to_render(rows, preset_keys[p.digest], settings.max_frame_ms)]
    SESSION.attempted.update(preset_keys[p.digest] for p in todo)
    thumbs = workspace.fingerprint_thumbs_dir
    thumbs.mkdir(parents=True, exist_ok=True)
    jobs, by_index, failures = [], {}, []
    for index, preset in enumerate(todo):
        try:
            loaded = load_preset(preset.path, workspace.conversion_cache_dir, settings.allow_degraded)
        except CqError as error:
            failures.append((preset, getattr(error, "status", "read-failed"), str(error)))
            continue
        by_index[index] = preset
        jobs.append(PairJob(index, loaded, None, preset.path.name, ""))
    progress = Progress("fingerprint", total=len(plan.presets), unit="presets",
                        done=sum(1 for key in preset_keys.values() if not rows.needs_render(key, settings.max_frame_ms)))
    with contextlib.ExitStack() as files:
        handles: dict[int, object] = {}

        def write(row: dict) -> None:
            shard = shard_of[row["presetHash"]]
            if shard not in handles:
                prepare_shard_file(workspace.fingerprint_shard_path(shard))
                handles[shard] = files.enter_context(workspace.fingerprint_shard_path(shard).open("ab"))
            append_jsonl(handles[shard], row)
            rows.add(row)
            if all(not rows.needs_render(preset_keys[p.digest], settings.max_frame_ms) for p in plan.shards[shard]):
                mark_shard_done(workspace.fingerprint_done_path(shard), plan.shard_key(shard),
                                [preset_keys[p.digest] for p in plan.shards[shard]])
            progress.update(extra=f"restarts {pool.restarts}")

        for preset, status, message in failures:
            write(build_row(plan, preset, preset_keys[preset.digest], pool.renderer, audio, status, [message]))
        deadline = RUN_STARTED + settings.max_hours * 3600
        for result in pool.render(jobs, deadline=deadline):
            preset = by_index[result.job.pair]
            key = preset_keys[preset.digest]
            frames = None
            if result.status == "ok":
                frames = LayerFrames.from_page(result.series, settings.width, settings.height)
            thumb = write_thumbnail(workspace.fingerprints_dir, key, frames)
            write(build_row(plan, preset, key, pool.renderer, audio, result.status, list(result.errors), result,
                            frames.frames if frames is not None else None, thumb))
    progress.close()
    return preset_keys


def write_coverage(workspace: Workspace, plan: FingerprintPlan, rows: PackRows, preset_keys: dict[str, str]) -> dict:
    """The fingerprints' own coverage figure, in meta.json and one line."""
    found = [rows.row_for(preset_keys[p.digest]) for p in plan.presets]
    done = [row for row in found if row is not None and not rows.needs_render(row["contentKey"], plan.settings.max_frame_ms)]
    failed = [row for row in done if row["status"] != "ok"]
    coverage = {"kind": "fingerprints.v0", "updatedAt": now_iso(), "presets": len(plan.presets),
                "fingerprinted": len(done) - len(failed), "failed": len(failed),
                "coverage": round(len(done) / len(plan.presets), 4) if plan.presets else 1.0,
                "unreadable": plan.unreadable[:20],
                "failures": [f"{row['presetId']}: {row['status']}: {(row['errors'] or [''])[0][:200]}"
                             for row in failed[:20]]}
    write_json(workspace.fingerprint_meta_path, coverage)
    print(f"fingerprints: {coverage['fingerprinted']}/{coverage['presets']} presets fingerprinted, "
          f"{coverage['failed']} failed (coverage {coverage['coverage']:.0%})", flush=True)
    return coverage
