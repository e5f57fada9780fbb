"""A row's identity, in one place: the content key and every part of it.

A row's statistics are a pure function of its content key: both presets' identities (file bytes, plus the
translator's version for .milk), the pixel settings, the statistics settings, the audio, the engine (page
files + butterchurn version) and the WebGL renderer. Shards and merges are keyed from the same parts.

Identity is the ground floor: the versions of the code that decides what a row measures are declared beside
that code, in the layers above (`KeyVersions` names them), and handed in by the caller
(`render.versions.KEY_VERSIONS`), so this module imports none of it.

Also the identity cache: what the last sampling run learned about its renderer and audio, kept so later
runs can compute content keys without starting a browser or decoding audio.
In/out: `<workspace>/.cq/identity.json` = `{"browsers": {signature: {renderer, vendor, engine, gpuModeUsed}},
"audio": {audio_identity: {key, mode, audioFile, fallbackReason, rms, peak}}}`.
A browser's signature is the launch settings that decide the renderer (gpu mode, chromium path, GPU flags;
the executor and its address when pairs are rendered on a cluster).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from pathlib import Path

from ..core.contracts import file_hash, read_json, value_hash, write_json
from ..core.errors import ContractError
from ..core.settings import SampleSettings
from ..core.uptodate import described
from ..core.workspace import NODE_MODULES_DIR, WEB_DIR, Workspace

# the knobs `stats_key` hashes, by name for `info`
STATS_KNOBS = ("stats_warmup", "min_luma", "max_luma", "min_motion", "max_flicker", "min_audio_corr", "min_layer_share")


@dataclasses.dataclass(frozen=True)
class KeyVersions:
    """The versions, bumped by hand, of the code that decides what a row measures (`core.code` says why a
    version and not the code): `presets.conversion.CONVERTER_VERSION` and `presets.hlsl.TRANSLATOR_VERSION`
    (a .milk file's picture), `render.framestats.STATS_VERSION` (frames -> statistics) and
    `render.fingerprint.FINGERPRINT_VERSION` (a layer's fingerprint)."""

    converter: str
    translator: str
    stats: int
    fingerprint: int


def browser_signature(settings: SampleSettings) -> str:
    parts = [settings.gpu_mode, settings.chromium, os.environ.get("CQ_CHROMIUM", ""),
             os.environ.get("CQ_CHROMIUM_GPU_ARGS", "")]
    if settings.executor != "local":  # the cluster's browsers decide the renderer, not this machine's
        parts += [settings.executor, settings.address]
    return value_hash(parts)


def load_identity_cache(workspace: Workspace) -> dict:
    path = workspace.identity_cache_path
    try:
        data = read_json(path) if path.exists() else {}
    except ContractError:
        data = {}  # a damaged cache only costs a browser start
    return {"browsers": data.get("browsers", {}), "audio": data.get("audio", {})}


def remember_identity(workspace: Workspace, section: str, key: str, record: dict) -> None:
    data = load_identity_cache(workspace)
    data[section][key] = record
    write_json(workspace.identity_cache_path, data)


def preset_identity(path: Path, versions: KeyVersions) -> str:
    """What a preset file renders as, as a hash: its bytes, plus the converter's version for .milk files
    (a better translator changes the picture without changing the file). Rows record it as fgHash/bgHash."""
    path = Path(path)
    digest = file_hash(path)
    if path.suffix.lower() == ".milk":
        digest = value_hash([digest, versions.converter, versions.translator])
    return digest


def stats_key(settings: SampleSettings, versions: KeyVersions) -> str:
    """Hash of everything besides the pixels that decides `render.framestats.pair_stats`' output."""
    return value_hash({"version": versions.stats, "warmup": settings.stats_warmup,
                       "min_luma": settings.min_luma, "max_luma": settings.max_luma,
                       "min_motion": settings.min_motion, "max_flicker": settings.max_flicker,
                       "min_audio_corr": settings.min_audio_corr, "min_layer_share": settings.min_layer_share})


@functools.cache
def engine_version() -> str:
    """butterchurn's installed version plus a hash of the sampling page's files: part of every content
    key, so a page that changes its pixels or statistics re-renders."""
    package = NODE_MODULES_DIR / "butterchurn" / "package.json"
    version = read_json(package).get("version", "?") if package.exists() else "not-installed"
    page = hashlib.sha256()
    for path in sorted(WEB_DIR.glob("sampler.*")):
        page.update(path.name.encode() + b"\0" + path.read_bytes())
    return f"butterchurn-{version}+page-{page.hexdigest()[:12]}"


def audio_identity(settings: SampleSettings) -> str:
    """The audio's identity without decoding it: the file's path, size and mtime, or the click track."""
    if not settings.audio_file:
        return "click"
    path = Path(settings.audio_file).expanduser()
    try:
        stat = path.stat()
    except OSError:
        return f"unreadable:{path}"
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def content_key(pair, settings: SampleSettings, audio_key: str, engine: str, renderer: str,
                versions: KeyVersions) -> str:
    """A row's identity (`pair`: a planned pair, for its fg_hash and bg_hash): its statistics are a pure
    function of this key (the thresholds and warm-up that turn frames into statistics included, so changing
    one recomputes the rows). A pair with a missing file is keyed by the paths it misses, not by the
    renderer: its row says so without a browser."""
    if pair.missing:
        return value_hash({"missing": [str(path) for path in pair.missing], "fg": pair.fg_hash,
                           "bg": pair.bg_hash})
    return value_hash({"fg": pair.fg_hash, "bg": pair.bg_hash, "render": settings.render_key(),
                       "stats": stats_key(settings, versions), "degraded": settings.allow_degraded,
                       "audio": audio_key, "engine": engine,
                       "renderer": renderer})


def shard_key(settings: SampleSettings, pairs, versions: KeyVersions) -> str:
    """What decides a shard's rows: its pairs' files and every setting that changes pixels (a `described`
    key: `info` names the knob, the pair or the engine that changed)."""
    audio, engine = audio_identity(settings), engine_version()
    digest = value_hash({
        "render": settings.render_key(),
        "stats": stats_key(settings, versions),
        "degraded": settings.allow_degraded,
        "audio": audio,
        "browser": [settings.gpu_mode, settings.chromium],
        "engine": engine,
        "pairs": [[p.pair, p.fg_hash, p.bg_hash] for p in pairs],
    })
    knobs = [*dataclasses.asdict(settings.render()), *STATS_KNOBS, "allow_degraded", "gpu_mode", "chromium"]
    return described(digest, {**{name: getattr(settings, name) for name in knobs}, "audio": audio,
                              "engine": engine, **{f"pair {p.pair}'s presets": [p.fg_hash, p.bg_hash] for p in pairs}})


def layer_render_key(settings: SampleSettings, versions: KeyVersions) -> dict:
    """What decides one preset's frames when rendered alone (a pair's compositing settings do not)."""
    return {"width": settings.width, "height": settings.height, "frames": settings.frames, "dt": settings.dt,
            "seed": settings.seed, "readback": settings.readback, "warmup": settings.stats_warmup,
            "degraded": settings.allow_degraded, "fingerprint": versions.fingerprint}


def fingerprint_key(preset_hash: str, settings: SampleSettings, audio_key: str, engine: str, renderer: str,
                    versions: KeyVersions) -> str:
    """A fingerprint's identity: the preset's content (`preset_identity`), how a layer is rendered and
    measured, the audio, the engine and the renderer. Five packs sharing a preset share its fingerprint."""
    return value_hash({"preset": preset_hash, "layer": layer_render_key(settings, versions), "audio": audio_key,
                       "engine": engine, "renderer": renderer})


def fingerprint_identity(key: str, settings: SampleSettings, audio_key: str, renderer: str,
                         versions: KeyVersions) -> dict:
    """The identity fields of a fingerprint row with content key `key`."""
    return {"contentKey": key, "engine": engine_version(), "renderer": renderer,
            "render": {**layer_render_key(settings, versions), "audioKey": audio_key}}


def fingerprint_shard_key(settings: SampleSettings, preset_hashes: list[str], versions: KeyVersions) -> str:
    """What decides a fingerprint shard's rows: its presets and every setting that changes a layer's frames."""
    return value_hash({"layer": layer_render_key(settings, versions), "audio": audio_identity(settings),
                       "browser": [settings.gpu_mode, settings.chromium], "engine": engine_version(),
                       "presets": sorted(preset_hashes)})
