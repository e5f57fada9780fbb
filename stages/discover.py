"""Discovery: the best fg x bg pairs of a library folder, by the model, as a new pack to sample.

In: `DiscoverSettings` (the folder, K, the per-preset limit, ...), the workspace's checkpoint
(`doit train` first) and sampler settings. Out, in `public/presets/<pack>/`:
- `library/`: copies of the folder's presets (the folder itself is only read; a copy is made once per
  content, and nothing in it is ever deleted), unless the folder already is that library;
- `pairs-manifest.discovered.vN.json`: the next version (never an earlier one overwritten, never a number
  used twice), in the pack manifest form, each pair with its `predicted` quality and `rank`, plus
  `generatedFrom` (rule, K, limit, model, library, counts, time) and `bestBackgrounds` per fg;
- `pairs-manifest.v0.json`: the same pairs, so the next `doit` samples them like any pack and the
  measurements check the model's picks (only in a pack discovery made: a manifest of yours is never
  replaced).

Steps: list the folder's `.milk` and `.json` files (its own files only, no subfolders); fingerprint each
(`stages.fingerprint`, the same content-addressed rows and browsers as a night's run; an interrupted
discovery resumes); read every preset's vector (an unreadable preset is listed with its reason and left
out); score every pair (`learn.discovery`, streaming); write the manifests.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from . import fingerprint
from .core.contracts import dumps, file_hash, now_iso, read_json, write_bytes_new, write_json
from .core.errors import CqError
from .core.keys import preset_identity
from .core.plan import plan_fingerprints
from .core.settings import SampleSettings, configured
from .core.workspace import Workspace, command
from .learn.discovery import DiscoverSettings
from .render.versions import KEY_VERSIONS

PRESET_SUFFIXES = (".milk", ".json")
DISCOVERED_PREFIX = "pairs-manifest.discovered.v"
LIBRARY_DIR = "library"


def library_presets(folder: Path) -> list[Path]:
    """The folder's preset files, its own only (never a walk into subfolders), sorted by name."""
    if not folder.is_dir():
        raise CqError(f"{folder}: not a folder; give a folder of .milk and .json presets")
    found = sorted(path for path in folder.iterdir()
                   if path.is_file() and path.suffix.lower() in PRESET_SUFFIXES and not path.name.startswith("pairs-"))
    if not found:
        raise CqError(f"{folder}: holds no .milk or .json presets (subfolders are not searched)")
    return found


def pack_name(settings: DiscoverSettings, folder: Path) -> str:
    name = settings.pack or "discovered-" + re.sub(r"[^A-Za-z0-9._-]+", "-", folder.name).strip("-.")
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise CqError(f"pack name {name!r} is not a plain folder name: give --pack NAME")
    return name


def copy_library(files: list[Path], library: Path) -> list[Path]:
    """The presets as files of the pack's library folder (copied when absent or different)."""
    library.mkdir(parents=True, exist_ok=True)
    copies = []
    for source in files:
        target = library / source.name
        if source.resolve() != target.resolve() and (not target.is_file() or file_hash(target) != file_hash(source)):
            shutil.copyfile(source, target)
        copies.append(target)
    return copies


def next_version(workspace: Workspace, pack: str) -> int:
    """One more than any discovered version this pack has had (on disk, or recorded when written)."""
    on_disk = [int(match.group(1)) for path in workspace.pack_dir(pack).glob(f"{DISCOVERED_PREFIX}*.json")
               if (match := re.fullmatch(rf"{re.escape(DISCOVERED_PREFIX)}(\d+)\.json", path.name))]
    recorded = _versions_record(workspace).get(pack, 0)
    return max([recorded, *on_disk]) + 1


def _versions_record(workspace: Workspace) -> dict:
    path = workspace.discovered_versions_path
    try:
        record = read_json(path) if path.is_file() else {}
    except CqError:
        record = {}
    return record if isinstance(record, dict) else {}


def run(workspace: Workspace, settings: DiscoverSettings, log=print) -> Path:
    """Discover the best pairs of `settings.folder`; return the new versioned manifest's path."""
    import numpy as np

    from .learn.checkpoint import load_checkpoint
    from .learn.discovery import discover
    from .learn.features import FeatureCache

    folder = Path(settings.folder).expanduser()
    if settings.top < 1 or settings.max_per_preset < 1 or settings.per_fg < 0:
        raise CqError(f"--top {settings.top}, --max-per-preset {settings.max_per_preset}, --per-fg "
                      f"{settings.per_fg}: top and max-per-preset must be >= 1, per-fg >= 0")
    scorer = load_checkpoint(workspace.checkpoint_path)  # before any rendering: no model, no discovery
    pack = pack_name(settings, folder)
    pack_dir = workspace.pack_dir(pack)
    manifest_path = workspace.manifest_path(pack)
    if manifest_path.is_file() and not _made_by_discovery(manifest_path):
        raise CqError(f"{manifest_path} exists and was not written by discovery: give another --pack NAME")
    presets = copy_library(library_presets(folder), pack_dir / LIBRARY_DIR)
    log(f"discover: {len(presets)} presets from {folder} in {pack_dir / LIBRARY_DIR}")

    sample_settings = configured(SampleSettings, workspace)
    plan = plan_fingerprints(presets, sample_settings, KEY_VERSIONS)
    for shard in plan.shards:
        fingerprint.run(workspace, plan, shard)

    cache = FeatureCache.of_workspace(workspace, sample_settings)
    vectors, readable, identities, unreadable = [], [], [], []
    for path in presets:
        vector = cache.get(path)
        if vector is None:
            unreadable.append(cache.failures[path])
            continue
        digest = preset_identity(path, KEY_VERSIONS)
        row = cache.fingerprints.rows.get(digest)
        if row is not None and row["status"] != "ok":  # a pair with it would fail the same way
            unreadable.append(f"{path.name}: {row['status']}: {(row['errors'] or [''])[0][:200]}")
            continue
        vectors.append(vector)
        readable.append(path)
        identities.append(digest)
    if len(readable) < 2:
        raise CqError(f"{folder}: fewer than 2 presets could be read and rendered ({len(unreadable)} could not; "
                      f"first: {unreadable[:1]})")
    for line in unreadable[:10]:
        log(f"discover: left out {line}")
    found = discover(np.stack(vectors), identities, scorer.predict, sample_settings, settings)
    log(f"discover: scored {found.scored} pairs of {len(readable)} presets in {found.seconds:.1f} s "
        f"({found.pairs_per_second:,.0f} pairs/s); picked {len(found.picks)}")

    url = lambda path: "/" + path.relative_to(workspace.public).as_posix()  # noqa: E731
    pairs = [{"pair": rank, "fgUrl": url(readable[fg]), "bgUrl": url(readable[bg]), "predicted": round(score, 6),
              "rank": rank} for rank, (fg, bg, score) in enumerate(found.picks, start=1)]
    document = {
        "version": "v0", "generatedAt": now_iso(), "pack": pack, "pairs": pairs,
        "generatedFrom": {
            "discovered": True, "rule": settings.rule(), "top": settings.top,
            "maxPerPreset": settings.max_per_preset, "perFg": settings.per_fg, "library": str(folder.resolve()),
            "model": {"checkpoint": workspace.checkpoint_path.name, "sha256": file_hash(workspace.checkpoint_path),
                      "codeVersion": scorer.checkpoint["codeVersion"]},
            "presets": len(presets), "scoredPresets": len(readable), "scoredPairs": found.scored,
            "seconds": round(found.seconds, 3), "unreadable": unreadable[:50],
        },
        "bestBackgrounds": [{"fgUrl": url(readable[fg]), "backgrounds": [
            {"bgUrl": url(readable[bg]), "predicted": round(score, 6)} for bg, score in best]}
            for fg, best in sorted(found.best_backgrounds.items())],
    }
    number = next_version(workspace, pack)
    path = pack_dir / f"{DISCOVERED_PREFIX}{number}.json"
    write_bytes_new(path, dumps(document, pretty=True) + b"\n")
    record = _versions_record(workspace)
    record[pack] = number
    write_json(workspace.discovered_versions_path, record)
    write_json(manifest_path, {key: document[key] for key in ("version", "generatedAt", "pack", "pairs", "generatedFrom")})
    log(f"discover: wrote {path} and {manifest_path.name} ({len(pairs)} pairs); `{command()}` samples them next")
    return path


def _made_by_discovery(manifest_path: Path) -> bool:
    try:
        return bool(read_json(manifest_path).get("generatedFrom", {}).get("discovered"))
    except (CqError, AttributeError):
        return False
