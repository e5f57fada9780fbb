"""coupled-quality: the overnight runbook as an incremental build (`doit` in a checkout).

    doit                 build what is stale: web deps -> demo pack -> sample shards -> merge -> ...
    doit help sample     the sampler's knobs (TargetCoverage, MaxHours, workers, ...) with their defaults
    doit clean           remove generated artifacts; never a user's presets, manifests, elite or ratings

The task graph itself is `stages/graph.py`, so the installed `coupled-quality` command runs the same graph.
"""
from stages.core.progress import lines_in_order
from stages.graph import (
    DOIT_CONFIG,
    task_convert,
    task_demo_pack,
    task_discover,
    task_filter,
    task_fingerprint,
    task_merge,
    task_report,
    task_sample,
    task_score,
    task_train,
    task_verify,
    task_web_deps,
)

lines_in_order()

__all__ = ["DOIT_CONFIG", "task_web_deps", "task_demo_pack", "task_convert", "task_sample", "task_fingerprint", "task_merge",
           "task_train", "task_score", "task_verify", "task_report", "task_filter", "task_discover"]
