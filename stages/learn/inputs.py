"""What decides the coupling net's artifacts, for doit's up-to-date checks (imports no torch, so `doit`
starts fast).

In: a `Workspace` and `TrainSettings`. Out: `inputs_digest` (everything training reads, by content),
`pack_inputs_digest` (what scoring one pack reads besides the checkpoint: its files and the
fingerprints), for `core.uptodate.InputsUnchanged`, and `CODE_VERSION`, the hash of the feature and model
code (`core.code`) that a checkpoint records.
"""
from __future__ import annotations

from pathlib import Path

from ..core.code import code_hash
from ..core.contracts import file_hash, load_manifest, resolve_url, value_hash
from ..core.errors import ContractError
from ..core.settings import TrainSettings
from ..core.workspace import Workspace, settings_config

_HERE = Path(__file__).resolve().parent
# A checkpoint is only valid for the feature and model code it was trained with (named by path: importing
# the model would import torch).
CODE_VERSION = code_hash([_HERE / name for name in ("features.py", "fingerprints.py", "composite.py", "quality.py",
                                                    "model.py")])


def _digest_files(workspace: Workspace, paths) -> list:
    """Each file by its path relative to the workspace root and its content: a moved or copied workspace
    has the same digest, so it does not retrain."""
    return [[_relative(workspace, Path(path)), file_hash(path)] for path in paths if Path(path).is_file()]


def _relative(workspace: Workspace, path: Path) -> str:
    return path.relative_to(workspace.root).as_posix() if path.is_relative_to(workspace.root) else str(path)


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
    return value_hash([_digest_files(workspace, [manifest_path]), _digest_files(workspace, sorted(presets)),
                       _digest_files(workspace, workspace.shard_files(pack) + [workspace.eval_path(pack)]),
                       _digest_files(workspace, workspace.fingerprint_files())])


def inputs_digest(workspace: Workspace, settings: TrainSettings) -> str:
    """Everything training reads, by content: each pack's inputs, the elite manifest, the ratings, and the
    sampler's thresholds (they define the measured quality)."""
    return value_hash({"packs": {pack: pack_inputs_digest(workspace, pack) for pack in workspace.packs()},
                       "fingerprints": _digest_files(workspace, workspace.fingerprint_files()),
                       "elite": _digest_files(workspace, [workspace.elite_path(settings.elite_path),
                                                          workspace.ratings_path]),
                       "sample": settings_config(workspace).get("sample", {})})
