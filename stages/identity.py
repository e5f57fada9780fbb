"""What the last sampling run learned about its renderer and audio, kept so later runs can compute
content keys without starting a browser or decoding audio.

In/out: `<workspace>/.cq/identity.json` = `{"browsers": {signature: {renderer, vendor, engine, gpuModeUsed}},
"audio": {audio_identity: {key, mode, audioFile, fallbackReason, rms, peak}}}`.
A browser's signature is the launch settings that decide the renderer (gpu mode, chromium path, GPU flags).
"""
from __future__ import annotations

import os

from stages.contracts import read_json, value_hash, write_json
from stages.errors import ContractError
from stages.settings import SampleSettings
from stages.workspace import Workspace


def browser_signature(settings: SampleSettings) -> str:
    return value_hash([settings.gpu_mode, settings.chromium, os.environ.get("CQ_CHROMIUM", ""),
                       os.environ.get("CQ_CHROMIUM_GPU_ARGS", "")])


def load(workspace: Workspace) -> dict:
    path = workspace.state_dir / "identity.json"
    try:
        data = read_json(path) if path.exists() else {}
    except ContractError:
        data = {}  # a damaged cache only costs a browser start
    return {"browsers": data.get("browsers", {}), "audio": data.get("audio", {})}


def remember(workspace: Workspace, section: str, key: str, record: dict) -> None:
    data = load(workspace)
    data[section][key] = record
    write_json(workspace.state_dir / "identity.json", data)
