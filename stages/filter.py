"""Stage `filter`: the next `pairs-manifest.filtered.vN.json` of each pack from a rule (`presets.filtering`).

`doit filter --rule="quality01 >= 0.6 and luma >= 0.1" --top 200 --current` (the value joined to its option:
doit takes any other argument holding `=` for a variable), or
`python -m stages.cli filter ...`. Every pack is filtered in memory first; if any pack's input or rule is
wrong, or a pack would keep nothing, nothing at all is written.
"""
from __future__ import annotations

from pathlib import Path

from .core.errors import CqError
from .core.workspace import Workspace
from .presets.filtering import FilterSettings, filtered_manifest, write_version


def run(workspace: Workspace, settings: FilterSettings, log=print) -> list[Path]:
    packs = settings.pack_list or workspace.packs()
    if not packs:
        raise CqError(f"no packs in {workspace.public / 'presets'} to filter")
    documents = {pack: filtered_manifest(workspace, pack, settings, log) for pack in packs}
    return [write_version(workspace, pack, document, settings.current, log) for pack, document in documents.items()]
