"""coupled-quality: the overnight runbook as an incremental build.

    doit                 build what is stale: web deps -> demo pack -> sample shards -> merge -> ...
    doit sample --help   the sampler's knobs (TargetCoverage, MaxHours, workers, ...)
    doit clean           remove generated artifacts; never a user's presets, manifests, elite or ratings

Each task is a few declarative lines; the work lives in `stages/`.
"""
from stages.workspace import WEB_DIR, Workspace

WS = Workspace.from_environment()
WS.state_dir.mkdir(parents=True, exist_ok=True)

DOIT_CONFIG = {
    "dep_file": str(WS.doit_db),
    "backend": "sqlite3",
    "verbosity": 2,
}


def task_web_deps():
    """Install the pinned renderer (butterchurn) for the browser pages with npm ci."""
    return {
        "actions": [f"npm ci --prefix {WEB_DIR} --no-audit --no-fund --loglevel=error"],
        "file_dep": [WEB_DIR / "package-lock.json"],
        "targets": [WEB_DIR / "node_modules" / ".package-lock.json"],
    }
