"""What one doit process shares between the tasks that render (pair shards and fingerprint shards): the
audio, the browsers (here, or the workers of a Dask cluster) and the content keys rendered so far.

Browsers start once per process, only when something needs rendering; leftovers of an interrupted run are
ended first, and a self-test renders a known pair twice before any real work. What the run learned about
its renderer and audio goes to the identity cache (`core.keys`) so later runs can key rows without a browser.
"""
from __future__ import annotations

import atexit
import time

from ..core import keys
from ..core.keys import engine_version
from ..core.settings import SampleSettings
from ..core.workspace import NODE_MODULES_DIR, Workspace

RUN_STARTED = time.time()
# The self-test renders this preset alone twice, as every preset is rendered for sampling: it checks the
# renderer, so it uses a preset known to render reproducibly, not the user's first (some presets never do on
# software WebGL; see demopack).
SELF_TEST_PRESET = "Martin - journey into space.json"


class _Session:
    """What one doit process shares between shard tasks: the audio, the browsers, the rows seen."""

    def __init__(self):
        self.audio = None
        self.pool = None
        self.attempted: set[str] = set()  # content keys rendered in this process
        self.live = None  # what the watch page reads besides the rows (stages.render.live)


SESSION = _Session()


def current_audio(workspace: Workspace, settings: SampleSettings):
    from ..core.keys import audio_identity
    from ..render.audio import load_audio

    if SESSION.audio is None:
        track = load_audio(settings)
        SESSION.audio = track
        keys.remember_identity(workspace, "audio", audio_identity(settings), {
            "key": track.key, "mode": track.mode, "audioFile": track.audio_file,
            "fallbackReason": track.fallback_reason, "rms": float(track.rms), "peak": float(track.peak)})
        if track.fallback_reason:
            print(f"audio: {track.fallback_reason}; using the built-in click track", flush=True)
    return SESSION.audio


def _close_pool() -> None:
    if SESSION.pool is not None:
        pool, SESSION.pool = SESSION.pool, None
        pool.__exit__(None, None, None)
    if SESSION.live is not None:
        SESSION.live.close()


def self_test_job():
    from ..presets.conversion import load_preset
    from ..render.pool import PairJob

    converted = NODE_MODULES_DIR / "butterchurn-presets" / "presets" / "converted"
    return PairJob(0, load_preset(converted / SELF_TEST_PRESET), None, SELF_TEST_PRESET, "")


def render_pool(workspace: Workspace, settings: SampleSettings):
    """Start the browsers once per process (here, or on the cluster's workers), end leftovers of an
    interrupted run, and self-test."""
    from ..render.live import LiveStatus

    if SESSION.pool is None:
        SESSION.live = LiveStatus(workspace, settings)
        if settings.executor == "dask":
            pool, where = _cluster_pool(workspace, settings)
        else:
            pool = _local_pool(workspace, settings)
            where = f"{settings.worker_count} workers" + (f" on {pool.pinning.summary()}" if pool.pinning else "")
        SESSION.live.started(pool)
        keys.remember_identity(workspace, "browsers", keys.browser_signature(settings), {
            "renderer": pool.renderer, "vendor": pool.vendor, "gpuModeUsed": pool.gpu_mode_used})
        print(f"renderer: {pool.renderer} ({where}, gpu mode {pool.gpu_mode_used})", flush=True)
    return SESSION.pool


def _local_pool(workspace: Workspace, settings: SampleSettings):
    from ..render.browser import kill_leftovers
    from ..render.gpus import pin_gpus
    from ..render.pool import RenderPool

    kill_leftovers(workspace.state_dir)
    pinning = pin_gpus(settings, settings.worker_count, workspace.state_dir, lambda line: print(line, flush=True))
    pool = RenderPool(settings, current_audio(workspace, settings).frames, workspace.state_dir,
                      on_event=SESSION.live.event, pinning=pinning)
    pool.__enter__()
    SESSION.pool = pool
    atexit.register(_close_pool)
    pool.self_test(self_test_job())
    return pool


def _cluster_pool(workspace: Workspace, settings: SampleSettings):
    """The workers of the Dask cluster at settings.address (dask is imported only here)."""
    from ..render.cluster import ClusterRenderer

    def tell(kind: str, details: dict) -> None:
        print(f"cluster: {details['message']}", flush=True)
        SESSION.live.event(kind, details)

    pool = ClusterRenderer(settings, current_audio(workspace, settings).frames, self_test_job(),
                           engine_version(), on_event=tell)
    SESSION.pool = pool
    atexit.register(_close_pool)
    return pool, f"{len(pool.nodes)} cluster workers with {pool.browsers} browsers at {settings.address}"


def known_renderer(workspace: Workspace, settings: SampleSettings) -> str | None:
    if SESSION.pool is not None:
        return SESSION.pool.renderer
    record = keys.load_identity_cache(workspace)["browsers"].get(keys.browser_signature(settings))
    return record["renderer"] if record else None
