"""The numbers of a sampling run while it runs, read from what the run writes (for `coupled-quality watch`).

In: the shards (every row: counts, failures, thumbnails, rates), the plan of each pack (the coverage
target and which content keys count, as the merge computes them), the identity cache (renderer and audio
of the run) and the live files of `stages.render.live` (pairs in flight, restarts; see there).
Out: `Watcher.snapshot()`, a JSON-able dict: per pack `{visited, target, done, rows, failures{status: n},
flags{reason: n}, lastRows}`, per run (live file) its workers with the pair in flight and their last rows,
restarts, renderer; and for the whole run pairs/min over the last minutes and the ETA of every pack's target.

Shards are read incrementally (each file from where the last read stopped, complete lines only), so
polling a long run stays cheap; a shard that shrank (its torn tail was cut) is read again from the start.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field

import orjson
import psutil

from ..core.contracts import read_json, validate_eval_row, value_hash
from ..core.errors import ContractError, CqError
from ..core.keys import audio_identity, browser_signature, content_key, engine_version, load_identity_cache
from ..core.plan import plan_pack
from ..core.settings import SampleSettings, configured, from_params
from ..core.workspace import Workspace
from .live import LIVE_KIND
from .versions import KEY_VERSIONS

RUNS_SHOWN = 4
RATE_WINDOW_S = 300.0  # pairs/min over the last five minutes (or since the run started, if later)
LAST_ROWS = 8
SLIM_FIELDS = ("pack", "pair", "presetFgId", "presetBgId", "status", "reasons", "okHeuristic", "thumb", "tMs",
               "contentKey")


@dataclass
class _ShardTail:
    """What has been read of one shard file so far."""

    offset: int = 0
    bad_lines: int = 0


@dataclass
class _PackState:
    plan_key: str = ""
    target_keys: dict[str, int] = field(default_factory=dict)  # content key -> pair
    target: int = 0
    rows: dict[str, dict] = field(default_factory=dict)  # content key -> slim row (every shard row)
    tails: dict[str, _ShardTail] = field(default_factory=dict)
    problem: str = ""


class Watcher:
    """Keeps what was read between snapshots; safe to call from several server threads."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self.lock = threading.Lock()
        self.packs: dict[str, _PackState] = {}

    # ------------------------------------------------------------------ sources

    def live_runs(self) -> list[dict]:
        """Every sampling process's live file, newest first; a dead process's file is shown as ended."""
        runs = []
        folder = self.workspace.live_dir
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                run = read_json(path)
            except ContractError:
                continue  # replaced atomically, so only a foreign file gets here
            if not isinstance(run, dict) or run.get("kind") != LIVE_KIND:
                continue
            run["alive"] = not run.get("finished") and psutil.pid_exists(int(run.get("pid", 0)))
            runs.append(run)
        return sorted(runs, key=lambda run: run.get("startedAtMs", 0), reverse=True)[:RUNS_SHOWN]

    def settings_for(self, runs: list[dict]) -> SampleSettings:
        """The newest run's settings (so the target is the run's), else the workspace's configured ones."""
        if runs:
            return from_params(SampleSettings, runs[0].get("settings", {}))
        return configured(SampleSettings, self.workspace)

    def _target(self, state: _PackState, pack: str, settings: SampleSettings) -> None:
        """Plan the pack as the run does; the content keys that count need the run's renderer and audio.
        Planned again when the settings, the manifest, the renderer or the audio change (an edited preset
        file alone is seen when the watcher restarts)."""
        manifest = self.workspace.manifest_path(pack)
        known = load_identity_cache(self.workspace)
        browser = known["browsers"].get(browser_signature(settings), {})
        audio = known["audio"].get(audio_identity(settings), {})
        stamp = manifest.stat().st_mtime_ns if manifest.exists() else 0
        key = value_hash([dataclasses.asdict(settings), stamp, browser.get("renderer", ""), audio.get("key", "")])
        if key == state.plan_key:
            return
        plan = plan_pack(self.workspace, pack, settings, KEY_VERSIONS)
        state.plan_key, state.target = key, plan.target
        state.target_keys = {}
        if browser and audio:
            engine = engine_version()
            state.target_keys = {content_key(planned, settings, audio["key"], engine, browser["renderer"], plan.versions):
                                 planned.pair for shard in plan.shards for planned in shard if not planned.missing}

    def _read_shards(self, state: _PackState, pack: str) -> None:
        for path in self.workspace.shard_files(pack):
            tail = state.tails.setdefault(path.name, _ShardTail())
            try:
                size = path.stat().st_size
                if size < tail.offset:
                    tail.offset, tail.bad_lines = 0, 0
                if size == tail.offset:
                    continue
                with path.open("rb") as handle:
                    handle.seek(tail.offset)
                    data = handle.read(size - tail.offset)
            except OSError:
                continue  # a shard being replaced; read on the next poll
            complete = data[: data.rfind(b"\n") + 1]  # a line still being written is read next time
            tail.offset += len(complete)
            for line in complete.split(b"\n"):
                if not line.strip():
                    continue
                try:
                    row = validate_eval_row(orjson.loads(line), f"{path}")
                except (orjson.JSONDecodeError, ContractError):
                    tail.bad_lines += 1
                    continue
                state.rows[row["contentKey"]] = {name: row.get(name) for name in SLIM_FIELDS}

    # ------------------------------------------------------------------ the snapshot

    def snapshot(self) -> dict:
        with self.lock:
            return self._snapshot()

    def _snapshot(self) -> dict:
        now_ms = int(time.time() * 1000)
        runs = self.live_runs()
        settings = self.settings_for(runs)
        packs = settings.pack_list or self.workspace.packs()
        by_key: dict[str, dict] = {}
        pack_views = {}
        for pack in packs:
            state = self.packs.setdefault(pack, _PackState())
            try:
                self._target(state, pack, settings)
                state.problem = ""
            except CqError as error:
                state.problem = str(error)
            self._read_shards(state, pack)
            by_key.update(state.rows)
            current = {key: row for key, row in state.rows.items() if key in state.target_keys}
            visited = len({row["pair"] for row in current.values()})
            failures: dict[str, int] = {}
            flags: dict[str, int] = {}
            for row in current.values():
                if row["status"] != "ok":
                    failures[row["status"]] = failures.get(row["status"], 0) + 1
                else:
                    for reason in row["reasons"]:
                        if reason != "ok":
                            flags[reason] = flags.get(reason, 0) + 1
            latest = sorted(current.values(), key=lambda row: row["tMs"], reverse=True)[:LAST_ROWS]
            pack_views[pack] = {
                "visited": visited, "target": state.target, "done": state.target > 0 and visited >= state.target,
                "rows": len(state.rows), "currentRows": len(current), "failures": failures, "flags": flags,
                "badLines": sum(tail.bad_lines for tail in state.tails.values()),
                "shards": len(state.tails), "lastRows": latest, "problem": state.problem,
            }

        running = any(run["alive"] for run in runs)
        # While a run goes on, the last minutes; once it ended, the whole run up to its last write, so the
        # figure stays what the terminal showed at the end instead of falling as the clock goes on.
        started_ms = runs[0]["startedAtMs"] if runs else 0
        end_ms = now_ms if running or not runs else runs[0].get("updatedAtMs") or now_ms
        window_start = max(end_ms - RATE_WINDOW_S * 1000, started_ms) if running else started_ms
        recent = sum(1 for state in self.packs.values() if state.plan_key
                     for key, row in state.rows.items()
                     if key in state.target_keys and window_start <= row["tMs"] <= end_ms)
        minutes = (end_ms - window_start) / 60000
        rate = recent / minutes if runs and minutes > 0 else 0.0
        left = sum(max(0, view["target"] - view["visited"]) for view in pack_views.values())
        live_view = [{
            "pid": run.get("pid"), "alive": run["alive"], "startedAtMs": run.get("startedAtMs"),
            "updatedAtMs": run.get("updatedAtMs"), "renderer": run.get("renderer", ""),
            "gpuModeUsed": run.get("gpuModeUsed", ""), "restarts": run.get("restarts", 0),
            "reloads": run.get("reloads", 0), "retries": run.get("retries", 0),
            "workers": [{"worker": int(index), **{k: v for k, v in worker.items() if k != "lastKeys"},
                         "inFlight": run["alive"] and worker.get("pair") is not None,
                         "lastRows": [by_key[key] for key in reversed(worker.get("lastKeys", [])) if key in by_key]}
                        for index, worker in sorted(run.get("workers", {}).items(), key=lambda item: int(item[0]))],
        } for run in runs]
        renderer = runs[0].get("renderer", "") if runs else ""
        if not renderer:
            renderer = load_identity_cache(self.workspace)["browsers"].get(browser_signature(settings), {}).get(
                "renderer", "")
        return {
            "nowMs": now_ms, "workspace": str(self.workspace.root), "packs": pack_views, "runs": live_view,
            "running": running, "renderer": renderer,
            "visited": sum(view["visited"] for view in pack_views.values()),
            "target": sum(view["target"] for view in pack_views.values()),
            "pairsPerMin": round(rate, 2), "etaS": round(left / rate * 60) if running and rate > 0 and left else None,
            "rateWindow": f"last {RATE_WINDOW_S / 60:g} min" if running else "the whole run" if runs else "",
            "restarts": sum(run["restarts"] for run in live_view), "shardSize": settings.shard_size,
            "explain": explanations(settings),
        }


def explanations(settings: SampleSettings) -> dict[str, str]:
    """What each failure status and each flag of an ok row means, with the run's thresholds (the page's
    tooltips and legend)."""
    return {
        "too-dark": f"mean brightness below min_luma {settings.min_luma:g}",
        "too-bright": f"mean brightness above max_luma {settings.max_luma:g}",
        "low-motion": f"the picture hardly changes (mean frame change below min_motion {settings.min_motion:g})",
        "strobing": f"brightness flips from frame to frame (flicker above max_flicker {settings.max_flicker:g})",
        "deaf": f"the visuals do not follow the music (correlation of motion with the audio's energy "
                f"below min_audio_corr {settings.min_audio_corr:g})",
        "fg-drowned": f"the fg layer is less than min_layer_share {settings.min_layer_share:g} of the picture",
        "bg-drowned": f"the bg layer is less than min_layer_share {settings.min_layer_share:g} of the picture",
        "too-heavy": f"frames cost more than max_frame_ms {settings.max_frame_ms:g} ms each: cut short",
        "timeout": f"the pair took longer than pair_timeout_s {settings.pair_timeout_s:g} s",
        "load-failed": "the page could not load a preset",
        "shader-failed": "a shader of a preset did not compile",
        "eel-error": "a preset's equations failed to run",
        "crashed": "the browser page crashed while rendering it",
        "black": "it rendered nothing but black",
        "read-failed": "its frames could not be read back",
        "translate-failed": "a .milk shader could not be translated to GLSL",
        "degraded": "drawn with butterchurn's default shader in place of one that failed (allow_degraded)",
        "missing-file": "a preset file of the pair is missing",
    }
