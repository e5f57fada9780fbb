"""What a sampling process is doing right now, for `coupled-quality watch`: the one thing rows cannot say.

Rows in the shards are the record of what was rendered (counts, failures, thumbnails, rates all come from
them). This file adds only what is in flight or is not a row: per worker the pair being rendered (pack,
pair, fg/bg file names, since when) and the content keys of its last rows, the renderer, restarts,
reloads and retries of the render pool, and the settings of the run (so the watcher plans the same
coverage target).

Out: `Workspace.live_dir / <pid>.json` = `{kind, pid, startedAtMs, updatedAtMs, finished, settings,
renderer, gpuModeUsed, restarts, reloads, retries, workers{index: {pack, pair, fg, bg, sinceMs, lastKeys}}}`,
replaced atomically on every change (not fsynced: losing it loses nothing). One file per sampling process,
so a restarted run writes a new file and the watcher shows both.

Wiring (three calls): `LiveStatus(workspace, settings)` before the pool starts, its `event` as the pool's
`on_event`, `started(pool)` once the pool is up, `pair_started` from the pool's thread when a worker takes
a pair, `pair_finished` when a row is written, `close()` at the end of the process.
"""
from __future__ import annotations

import dataclasses
import os
import threading
import time

from ..core.contracts import dumps, write_bytes_atomic
from ..core.workspace import Workspace

LIVE_KIND = "cq_live.v0"
LAST_KEYS = 4
KEPT_FILES = 8  # files of ended processes kept for the watch page (it shows the newest few)


def _now_ms() -> int:
    return int(time.time() * 1000)


class LiveStatus:
    def __init__(self, workspace: Workspace, settings):
        self.path = workspace.live_dir / f"{os.getpid()}.json"
        self.lock = threading.Lock()
        self.state = {"kind": LIVE_KIND, "pid": os.getpid(), "startedAtMs": _now_ms(), "updatedAtMs": 0,
                      "finished": False, "settings": dataclasses.asdict(settings), "renderer": "",
                      "gpuModeUsed": "", "restarts": 0, "reloads": 0, "retries": 0, "workers": {}}
        self._write()
        self._prune()

    def _prune(self) -> None:
        """Remove the oldest files beyond KEPT_FILES (this process's own is the newest)."""
        stamped = []
        for path in self.path.parent.glob("*.json"):
            try:
                stamped.append((path.stat().st_mtime_ns, path))
            except FileNotFoundError:
                continue  # another process pruned it
        for _, path in sorted(stamped, reverse=True)[KEPT_FILES:]:
            if path != self.path:
                path.unlink(missing_ok=True)

    def _write(self) -> None:
        """Replace the file; a failed write (a full disk) is skipped: the watch page shows the last state a
        little longer, and sampling, which the file only reports on, goes on."""
        self.state["updatedAtMs"] = _now_ms()
        try:
            write_bytes_atomic(self.path, dumps(self.state), fsync=False)
        except OSError:
            return  # the live status only reports: a full disk must never stop sampling

    def _worker(self, index: int) -> dict:
        return self.state["workers"].setdefault(str(index), {"pack": "", "pair": None, "fg": "", "bg": "",
                                                             "sinceMs": 0, "lastKeys": []})

    def started(self, pool) -> None:
        with self.lock:
            self.state.update(renderer=pool.renderer, gpuModeUsed=pool.gpu_mode_used)
            self._write()

    def event(self, kind: str, details: dict) -> None:
        """The render pool's `on_event`: counts restarts, reloads and retries."""
        counted = {"restart": "restarts", "reload": "reloads", "retry": "retries"}.get(kind)
        if counted is None:
            return
        with self.lock:
            self.state[counted] += 1
            self._write()

    def pair_started(self, worker: int, pack: str, pair: int, fg: str, bg: str) -> None:
        """A worker took a pair (called on the pool's thread)."""
        with self.lock:
            self._worker(worker).update(pack=pack, pair=pair, fg=fg, bg=bg, sinceMs=_now_ms())
            self._write()

    def pair_finished(self, worker: int, pack: str, pair: int, content_key: str) -> None:
        """A worker's row was written. The worker may have taken its next pair already (the pool runs
        ahead of the writer), so only that same pair is cleared."""
        with self.lock:
            state = self._worker(worker)
            state["lastKeys"] = (state["lastKeys"] + [content_key])[-LAST_KEYS:]
            if state["pack"] == pack and state["pair"] == pair:
                state.update(pair=None, fg="", bg="", sinceMs=_now_ms())
            self._write()

    def close(self) -> None:
        with self.lock:
            for state in self.state["workers"].values():
                state.update(pair=None, fg="", bg="")
            self.state["finished"] = True
            self._write()
