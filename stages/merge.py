"""Merge a pack's shards into `eval.jsonl` and `meta.json`.

In: every shard file of the pack (complete and partial), the manifest, `SampleSettings`, and the identity
cache (renderer, audio) of the last sampling run. Out: `eval.jsonl` with one current row per manifest
pair that has one (sorted by pair), and `meta.json` (`kind: coupled_eval.v0`) with the settings, per-pack
`progress = {visited, target, done}`, audio, runtime (gpu mode, WebGL renderer) and errors. Both files are
written atomically. Rows left by other settings, renderers or older preset files stay in the shards but
are not current, so they are not merged.
"""
from __future__ import annotations

import dataclasses
from collections import Counter

from .core import keys
from .core.contracts import META_KIND, dumps, now_iso, validate_meta, write_bytes_atomic, write_json
from .core.errors import CqError
from .core.keys import audio_identity, engine_version
from .core.plan import plan_pack
from .core.rows import identities_from_rows, pair_rows, read_pack_rows
from .core.settings import SampleSettings
from .core.workspace import Workspace, command
from .render.versions import KEY_VERSIONS


def current_rows(workspace: Workspace, pack: str, settings: SampleSettings):
    """(plan, {pair: current row}, warnings, runtime record, audio record) for a pack. Without the identity
    cache (deleted, or from another machine) the renderer and audio key are read from the rows themselves."""
    plan = plan_pack(workspace, pack, settings, KEY_VERSIONS)
    known = keys.load_identity_cache(workspace)
    browser = known["browsers"].get(keys.browser_signature(settings), {})
    audio = known["audio"].get(audio_identity(settings), {})
    rows = read_pack_rows(workspace, pack)
    if browser and audio:
        current = pair_rows(plan, rows, audio["key"], browser["renderer"])
    elif found := identities_from_rows(plan, rows):
        audio_key, renderer = found
        current = pair_rows(plan, rows, audio_key, renderer)
        browser = browser or {"renderer": renderer}
        audio = audio or {"key": audio_key}
    else:  # nothing rendered yet: missing-file rows need no identity
        current = pair_rows(plan, rows, "", "")
    return plan, current, rows.warnings, browser, audio


def run(workspace: Workspace, pack: str, settings: SampleSettings) -> None:
    plan, current, warnings, browser, audio = current_rows(workspace, pack, settings)
    rows = [current[pair] for pair in sorted(current)]
    if not rows and plan.target:
        raise CqError(f"merge {pack}: none of the {plan.target} pairs to sample has a row in "
                      f"{workspace.shards_dir(pack)}; eval.jsonl is left as it was (run `{command('sample')}` first)")
    write_bytes_atomic(workspace.eval_path(pack), b"".join(dumps(row) + b"\n" for row in rows))

    targeted = {planned.pair for shard in plan.shards for planned in shard}
    visited = sum(1 for pair in current if pair in targeted)
    missing = sorted({str(path) for planned in plan.ordered for path in planned.missing})
    failures = Counter(row["status"] for row in rows if row["status"] not in ("ok", "missing-file"))
    sampled_at = sorted(row["sampledAt"] for row in rows)
    errors = warnings + [f"{count} pairs {status}" for status, count in sorted(failures.items())]
    errors += [f"preset file not found: {path}" for path in missing]
    meta = {
        "kind": META_KIND,
        "pack": pack,
        "startedAt": sampled_at[0] if sampled_at else "",
        "finishedAt": sampled_at[-1] if sampled_at else "",
        "mergedAt": now_iso(),
        "settings": dataclasses.asdict(settings),
        "progress": {pack: {"visited": visited, "target": plan.target, "done": visited >= plan.target}},
        "pairs": {"manifest": len(plan.ordered), "rows": len(rows), "ok": sum(r["status"] == "ok" for r in rows),
                  "okHeuristic": sum(bool(r["okHeuristic"]) for r in rows)},
        "audio": {"mode": audio.get("mode", "click"), "audioFile": audio.get("audioFile", ""),
                  "fallbackReason": audio.get("fallbackReason", ""), "rms": audio.get("rms"),
                  "peak": audio.get("peak")},
        "runtime": {"gpuMode": settings.gpu_mode, "gpuModeUsed": browser.get("gpuModeUsed", ""),
                    "headed": settings.headed, "requireGpu": settings.gpu_mode == "require",
                    "webgl": {"vendor": browser.get("vendor", ""), "renderer": browser.get("renderer", "")},
                    "engine": engine_version()},
        "errors": errors,
    }
    write_json(workspace.meta_path(pack), validate_meta(meta, workspace.meta_path(pack)))
    print(f"merge {pack}: {len(rows)} rows ({visited}/{plan.target} of the coverage target)", flush=True)
