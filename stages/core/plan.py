"""The sampling plan of a pack: which pairs, in what order, cut into which shards.

In: a pack's `pairs-manifest.v0.json`, the `SampleSettings` and the versions that key rows
(`render.versions.KEY_VERSIONS`). Out: a `PackPlan` whose `shards` list the
pairs each `sample:<pack>:<shard>` task renders, and a `shard_key` per shard that changes exactly when that
shard's content changes (a preset file edited, a pair added, a pixel setting changed).

Order: pairs sorted by a seeded hash of their pair number. That is a shuffle (coverage grows linearly with
no coupon-collector tail, and any prefix is a fair sample for `TargetCoverage`), and it is stable: adding
pairs slots them in without reordering the others, and rows are found by content key anywhere in the
pack, so adding 5 pairs renders 5 pairs.

Planning never renders, never starts a browser and never raises for a missing preset file: such a pair is
planned with `missing` set, and the shard that holds it reports it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..core.contracts import Manifest, load_manifest, resolve_url, value_hash
from ..core.errors import ContractError
from ..core.keys import KeyVersions, fingerprint_shard_key, preset_identity, shard_key
from ..core.settings import SampleSettings
from ..core.workspace import Workspace


@dataclass(frozen=True)
class PlannedPair:
    pair: int
    fg_path: Path
    bg_path: Path
    fg_hash: str  # "" when the file is missing
    bg_hash: str

    @property
    def missing(self) -> list[Path]:
        return [path for path, digest in ((self.fg_path, self.fg_hash), (self.bg_path, self.bg_hash))
                if not digest]


@dataclass
class PackPlan:
    pack: str
    manifest: Manifest
    ordered: list[PlannedPair]  # every manifest pair, in sampling order
    target: int                 # pairs to sample: ceil(TargetCoverage * pairs)
    shards: list[list[PlannedPair]]
    settings: SampleSettings
    versions: KeyVersions

    def shard_key(self, index: int) -> str:
        return shard_key(self.settings, self.shards[index], self.versions)

    def key(self) -> str:
        """What decides the merged rows: every shard's key."""
        return value_hash([self.shard_key(index) for index in range(len(self.shards))])


def _identity_or_blank(path: Path, versions: KeyVersions) -> str:
    try:
        return preset_identity(path, versions)
    except OSError:
        return ""


def order_key(seed: int, pair: int) -> str:
    return value_hash([seed, pair])


def plan_pack(workspace: Workspace, pack: str, settings: SampleSettings, versions: KeyVersions) -> PackPlan:
    """Read the manifest (ContractError if it is malformed or a URL escapes public/) and plan the shards."""
    manifest_path = workspace.manifest_path(pack)
    manifest = load_manifest(manifest_path)
    if manifest.pack != pack:
        raise ContractError(manifest_path, f"pack is {manifest.pack!r} but the file is in the folder of "
                                           f"pack {pack!r}", "make the manifest's pack match its folder")
    if not manifest.pairs:
        raise ContractError(manifest_path, "lists no pairs, so there is nothing to sample or score",
                            "add pairs, or move the folder out of public/presets")
    planned = []
    for entry in manifest.pairs:
        where = f"{manifest_path} pair {entry.pair}"
        fg_path = resolve_url(workspace.public, entry.fgUrl, where)
        bg_path = resolve_url(workspace.public, entry.bgUrl, where)
        planned.append(PlannedPair(entry.pair, fg_path, bg_path, _identity_or_blank(fg_path, versions),
                                   _identity_or_blank(bg_path, versions)))
    planned.sort(key=lambda p: order_key(settings.shuffle_seed, p.pair))
    target = min(len(planned), math.ceil(settings.target_coverage * len(planned) - 1e-9))
    chosen = planned[:target]
    size = settings.shard_size
    shards = [chosen[i:i + size] for i in range(0, len(chosen), size)]
    return PackPlan(pack, manifest, planned, target, shards, settings, versions)


# ------------------------------------------------------------------------------------ fingerprints

FINGERPRINT_SHARDS = 16  # fixed: a preset's shard is a function of its content alone, on every machine


def fingerprint_shard(digest: str) -> int:
    """The fingerprint shard of a preset (its `preset_identity`)."""
    return int(digest[:8], 16) % FINGERPRINT_SHARDS


@dataclass(frozen=True)
class PlannedPreset:
    path: Path   # the first file found with this content
    digest: str  # preset_identity


@dataclass
class FingerprintPlan:
    """The distinct presets (by content) to fingerprint, each in the shard its identity falls in."""

    presets: list[PlannedPreset]
    shards: dict[int, list[PlannedPreset]]
    unreadable: list[str]  # "path: reason" of files that could not be read to hash
    settings: SampleSettings
    versions: KeyVersions

    def shard_key(self, shard: int) -> str:
        return fingerprint_shard_key(self.settings, [p.digest for p in self.shards[shard]], self.versions)


def plan_fingerprints(paths, settings: SampleSettings, versions: KeyVersions) -> FingerprintPlan:
    """Every distinct preset among `paths` (missing files are left to the pair sampler, which reports them)."""
    seen: dict[str, PlannedPreset] = {}
    unreadable = []
    for path in paths:
        try:
            digest = preset_identity(path, versions)
        except OSError as error:
            if Path(path).exists():
                unreadable.append(f"{path}: {error.strerror or error}")
            continue
        seen.setdefault(digest, PlannedPreset(Path(path), digest))
    presets = sorted(seen.values(), key=lambda preset: preset.digest)
    shards: dict[int, list[PlannedPreset]] = {}
    for preset in presets:
        shards.setdefault(fingerprint_shard(preset.digest), []).append(preset)
    return FingerprintPlan(presets, dict(sorted(shards.items())), unreadable, settings, versions)
