"""Preset files -> butterchurn-3 preset objects.

In: a preset file of a pack (`.json`, butterchurn's converted format; `.milk` arrives with the .milk issue).
Out: the dict butterchurn's `loadPreset` takes (`baseVals`, `*_eqs_eel`, `shapes`, `waves`, `warp`, `comp`).
"""
from __future__ import annotations

from pathlib import Path

from stages.contracts import read_json
from stages.errors import ContractError


def load_preset(path: Path) -> dict:
    """Read one preset file as a butterchurn-3 preset object; errors name the file."""
    path = Path(path)
    if path.suffix.lower() != ".json":
        raise ContractError(path, f"preset type {path.suffix!r} is not supported", "use .json presets")
    preset = read_json(path)
    if not isinstance(preset, dict) or not isinstance(preset.get("baseVals"), dict):
        raise ContractError(path, "not a butterchurn preset (no baseVals object)")
    return preset
