"""A pack's manifest from its folders, and the preset files a manifest names.

`manifest_from_folder`: a pack's `pairs-manifest.v0.json` from its `fg/` and `bg/` folders by the seed's
naming (`coupled_<pair>_<stamp>_fg.milk` / `_bg.milk`), unmatched files reported; nothing outside the pack
folder is looked at. `pack_preset_paths`: the existing files a manifest names (a conversion task's file_dep).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..core.contracts import MANIFEST_NAME, Manifest, ManifestPair, load_manifest, resolve_url, write_json
from ..core.errors import ContractError
from ..presets.conversion import PRESET_SUFFIXES


def pack_preset_paths(workspace, pack: str) -> list[Path]:
    """The existing preset files a pack's manifest names, once each (a conversion task's file_dep)."""
    manifest = load_manifest(workspace.manifest_path(pack))
    paths = {resolve_url(workspace.public, url, manifest.path) for entry in manifest.pairs
             for url in (entry.fgUrl, entry.bgUrl)}
    return sorted(path for path in paths if path.is_file())


_SEED_NAME = re.compile(r"^coupled_(\d+)(.*)_(fg|bg)\.(milk|json)$", re.IGNORECASE)


def manifest_from_folder(pack_dir: Path, pack: str | None = None) -> tuple[Manifest, list[str]]:
    """Pairs from `<pack_dir>/fg` and `<pack_dir>/bg` (those two folders only, not recursive).

    A pair is an fg file and a bg file with the same pair number in the seed's naming. Returns the manifest
    and one line per file that is not part of a pair (wrong name, no partner, or a duplicate number)."""
    pack_dir = Path(pack_dir)
    pack = pack or pack_dir.name
    found: dict[str, dict[int, list[str]]] = {"fg": {}, "bg": {}}
    unmatched: list[str] = []
    for side in ("fg", "bg"):
        folder = pack_dir / side
        if not folder.is_dir():
            raise ContractError(folder, "folder not found", f"put the pack's {side} presets in {folder}")
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if not entry.is_file() or Path(entry.name).suffix.lower() not in PRESET_SUFFIXES:
                continue
            match = _SEED_NAME.match(entry.name)
            if not match or match.group(3).lower() != side:
                unmatched.append(f"{side}/{entry.name}: name is not coupled_<pair>_<stamp>_{side}.milk")
                continue
            found[side].setdefault(int(match.group(1)), []).append(entry.name)
    pairs = []
    for number in sorted(set(found["fg"]) | set(found["bg"])):
        fg, bg = found["fg"].get(number, []), found["bg"].get(number, [])
        if len(fg) == 1 and len(bg) == 1:
            pairs.append(ManifestPair(number, f"/presets/{pack}/fg/{fg[0]}", f"/presets/{pack}/bg/{bg[0]}"))
            continue
        for side, names, other in (("fg", fg, bg), ("bg", bg, fg)):
            for name in names:
                reason = "no partner" if not other else f"pair {number} has {len(fg)} fg and {len(bg)} bg files"
                unmatched.append(f"{side}/{name}: {reason}")
    return Manifest(pack_dir / MANIFEST_NAME, pack, pairs), unmatched


def write_manifest_from_folder(pack_dir: Path, pack: str | None = None) -> list[str]:
    """Write `<pack_dir>/pairs-manifest.v0.json` from the folders; returns the unmatched files."""
    manifest, unmatched = manifest_from_folder(pack_dir, pack)
    if not manifest.pairs:
        raise ContractError(pack_dir, "no fg/bg pairs found",
                            "name presets coupled_<pair>_<stamp>_fg.milk and ..._bg.milk in fg/ and bg/")
    write_json(Path(pack_dir) / MANIFEST_NAME, manifest.to_json())
    return unmatched
