"""Stage `train`: fit the coupling net on the samples that exist (the recipe is `learn.training`).

Never starts a browser. torch is imported when the task runs, not when doit reads the task graph, so
`doit list` and a no-op `doit` stay fast.
"""
from __future__ import annotations

import warnings
from pathlib import Path

from .core.code import code_hash
from .core.settings import TrainSettings
from .core.workspace import Workspace
from .learn.history import append_run
from .learn.inputs import inputs_digest


def run(workspace: Workspace, settings: TrainSettings) -> None:
    """doit action: train (the report goes to its file, not into doit's database)."""
    # torch's import of pynvml warns about the package's rename on every run: noise in a build log
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The pynvml package is deprecated", category=FutureWarning)
        from .learn.training import train
    report = train(workspace, settings)
    # the hash the task's CodeUnchanged compares: "code changed" between two runs in the report is what retrained
    append_run(workspace, report, inputs_digest(workspace, settings), code_hash([Path(__file__)]))
