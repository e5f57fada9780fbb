"""What decides the coupling net's artifacts, for doit's up-to-date checks (imports no torch, so `doit`
starts fast).

In: a `Workspace` and `TrainSettings`. Out: `inputs_digest` (everything training reads, by content),
`pack_inputs_digest` (what scoring one pack reads besides the checkpoint), `CODE_VERSION` (the feature and
model code) and `TRAINING_CODE_VERSION` (that plus the trainer's), the `InputsUnchanged` uptodate check, and the doit actions `train_action` / `score_action`.
"""
from __future__ import annotations

import importlib
import warnings
from pathlib import Path

from stages.contracts import file_hash, load_manifest, resolve_url, value_hash
from stages.errors import ContractError
from stages.settings import TrainSettings
from stages.workspace import Workspace, settings_config

_HERE = Path(__file__).resolve().parent
# A checkpoint is only valid for the feature and model code it was trained with.
CODE_VERSION = value_hash([(_HERE / "features.py").read_text(), (_HERE / "model.py").read_text()])
# Code that changes what training produces: a change retrains.
TRAINING_CODE_VERSION = value_hash([CODE_VERSION] + [(_HERE / name).read_text() for name in ("sources.py", "train.py")])


def _digest_files(paths) -> list:
    return [[str(path), file_hash(path)] for path in paths if Path(path).is_file()]


def pack_inputs_digest(workspace: Workspace, pack: str) -> str:
    """What a pack contributes to training and scoring: its manifest, preset files and eval rows."""
    manifest_path = workspace.manifest_path(pack)
    presets = set()
    try:
        manifest = load_manifest(manifest_path)
        presets = {resolve_url(workspace.public, url, manifest_path) for entry in manifest.pairs
                   for url in (entry.fgUrl, entry.bgUrl)}
    except ContractError:
        pass  # the train or score action reports the broken manifest; here it only makes the task stale
    return value_hash([_digest_files([manifest_path]), _digest_files(sorted(presets)),
                       _digest_files(workspace.shard_files(pack) + [workspace.eval_path(pack)])])


def elite_path(workspace: Workspace, settings: TrainSettings) -> Path:
    """The elite manifest: `elite_path` (relative to the workspace root), else `elite.json` there."""
    return workspace.root / Path(settings.elite_path or "elite.json").expanduser()


def inputs_digest(workspace: Workspace, settings: TrainSettings) -> str:
    """Everything training reads, by content: each pack's inputs, the elite manifest, the ratings, and the
    sampler's thresholds (they define the measured quality)."""
    return value_hash({"packs": {pack: pack_inputs_digest(workspace, pack) for pack in workspace.packs()},
                       "elite": _digest_files([elite_path(workspace, settings), workspace.ratings_path]),
                       "sample": settings_config(workspace).get("sample", {})})


class InputsUnchanged:
    """doit `uptodate` check: true while `digest()` equals its value at the last successful run.

    Used instead of `file_dep` on the eval files because those are targets of the sample/merge tasks, and a
    file_dep would make `doit train` run them (and start a browser); this check reads the files as they are.
    """

    def __init__(self, digest, name: str = "_inputs_digest"):
        self.digest, self.name, self.value = digest, name, None

    def configure_task(self, task):
        task.value_savers.append(lambda: {self.name: self.value})

    def __call__(self, task, values) -> bool:
        self.value = self.digest()
        return values.get(self.name) == self.value


def _import_quietly(module: str):
    """Import a torch-using stage only when its task really runs; torch's own import of pynvml warns
    about the package's rename on every run, which is noise in a build log."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The pynvml package is deprecated", category=FutureWarning)
        return importlib.import_module(module)


def train_action(workspace: Workspace, settings: TrainSettings) -> None:
    """doit action: train (the report goes to its file, not into doit's database)."""
    _import_quietly("stages.train").train(workspace, settings)


def score_action(workspace: Workspace, pack: str) -> None:
    """doit action: score one pack (the scores go to the file, not into doit's database)."""
    _import_quietly("stages.score").score_pack(workspace, pack)


def rejected_path(workspace: Workspace, pack: str) -> Path:
    """Where scores that failed the gate are written for inspection, beside the product."""
    return workspace.quality_path(pack).with_name("pairs-quality.v0.rejected.json")
