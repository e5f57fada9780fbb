"""Stage `score`: a pack's `pairs-quality.v0.json` from the checkpoint, behind the gates (`learn.scoring`).

torch is imported when the task runs, not when doit reads the task graph.
"""
from __future__ import annotations

import warnings

from .core.workspace import Workspace


def run(workspace: Workspace, pack: str) -> None:
    """doit action: score one pack (the scores go to the file, not into doit's database)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The pynvml package is deprecated", category=FutureWarning)
        from .learn.scoring import score_pack
    score_pack(workspace, pack)
