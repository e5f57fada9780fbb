"""Stage `convert`: a pack's .milk presets converted ahead of sampling, through the conversion cache.

In: the presets a pack's manifest names. Out: `<eval dir>/conversion.json`, each preset's status
(ok | read-failed | translate-failed) and message, and how many came from the cache.
"""
from __future__ import annotations

from .core.contracts import write_json
from .core.progress import Progress
from .presets.conversion import TRANSLATOR_VERSION, convert_milk
from .presets.manifests import pack_preset_paths


def run(workspace, pack: str) -> dict:
    """Convert every .milk preset of a pack through the cache and write the pack's conversion report.

    Only files whose content (or the translator) changed are converted again."""
    cache_dir = workspace.conversion_cache_dir
    paths = [path for path in pack_preset_paths(workspace, pack) if path.suffix.lower() == ".milk"]
    progress = Progress(f"convert {pack}", total=len(paths), unit="presets")
    presets, fresh = [], 0
    for path in paths:
        conversion = convert_milk(path, cache_dir)
        fresh += not conversion.cached
        presets.append({"file": path.relative_to(workspace.public).as_posix(), "status": conversion.status,
                        "message": conversion.message})
        progress.update()
    progress.close()
    by_status: dict[str, int] = {}
    for record in presets:
        by_status[record["status"]] = by_status.get(record["status"], 0) + 1
    report = {"pack": pack, "translator": TRANSLATOR_VERSION, "total": len(presets), "converted": fresh,
              "cached": len(presets) - fresh, "by_status": by_status, "presets": presets}
    write_json(workspace.conversion_report_path(pack), report)
    return report

