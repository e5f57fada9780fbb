"""The workspace root and the seed-compatible layout under it.

In: the root, from `$CQ_WORKSPACE`, else `[tool.coupled-quality] workspace` in pyproject.toml, else
`workspace/` in the repo (git-ignored). Out: a `Workspace` naming every path a stage reads or writes, with
the original app's relative layout, so pointing the root at that app's checkout makes our outputs land
where its runtime reads them.

Packs are found one level deep (`public/presets/<pack>/pairs-manifest.v0.json`); user folders are never
scanned recursively.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..core.contracts import MANIFEST_NAME, QUALITY_NAME
from ..core.errors import ContractError

REPO = Path(__file__).resolve().parents[2]
WEB_DIR = REPO / "web"
DATA_DIR = REPO / "data"


def project_config() -> dict:
    """`[tool.coupled-quality]` of the repo's pyproject.toml (empty when absent)."""
    path = REPO / "pyproject.toml"
    if not path.exists():
        return {}
    with path.open("rb") as handle:
        return tomllib.load(handle).get("tool", {}).get("coupled-quality", {})


def settings_config(workspace: "Workspace") -> dict:
    """Settings defaults by section (`sample`, `train`): the repo's `[tool.coupled-quality.<section>]`,
    overridden by `<workspace>/coupled-quality.toml` so each workspace can carry its own knobs."""
    config = {section: dict(values) for section, values in project_config().items() if isinstance(values, dict)}
    local = workspace.config_path
    if local.is_file():
        try:
            with local.open("rb") as handle:
                overrides = tomllib.load(handle)
        except tomllib.TOMLDecodeError as error:
            raise ContractError(local, f"not valid TOML: {error}") from None
        for section, values in overrides.items():
            config.setdefault(section, {}).update(values)
    return config


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def from_environment(cls) -> "Workspace":
        configured = os.environ.get("CQ_WORKSPACE") or project_config().get("workspace") or "workspace"
        root = Path(configured).expanduser()
        if not root.is_absolute():
            root = REPO / root
        return cls(root.resolve())

    # -- inputs the user owns (never deleted by `doit clean`)
    @property
    def public(self) -> Path:
        return self.root / "public"

    def pack_dir(self, pack: str) -> Path:
        return self.public / "presets" / pack

    def manifest_path(self, pack: str) -> Path:
        return self.pack_dir(pack) / MANIFEST_NAME

    @property
    def config_path(self) -> Path:
        return self.root / "coupled-quality.toml"

    @property
    def ratings_path(self) -> Path:
        return self.root / "ratings.jsonl"

    def elite_path(self, configured: str = "") -> Path:
        """The elite manifest: `configured` (relative to the root, or absolute), else `elite.json` there."""
        return self.root / Path(configured or "elite.json").expanduser()

    # -- generated
    def quality_path(self, pack: str) -> Path:
        return self.pack_dir(pack) / QUALITY_NAME

    def eval_dir(self, pack: str) -> Path:
        return self.root / "artifacts" / "coupled-eval" / pack

    def shards_dir(self, pack: str) -> Path:
        return self.eval_dir(pack) / "shards"

    def shard_path(self, pack: str, shard: int) -> Path:
        return self.shards_dir(pack) / f"{shard:04d}.jsonl"

    def shard_done_path(self, pack: str, shard: int) -> Path:
        return self.shards_dir(pack) / f"{shard:04d}.done"

    def shard_files(self, pack: str) -> list[Path]:
        """Every shard file of a pack, complete or partial, in shard order."""
        shards = self.shards_dir(pack)
        return sorted(shards.glob("*.jsonl")) if shards.is_dir() else []

    def thumbs_dir(self, pack: str) -> Path:
        return self.eval_dir(pack) / "thumbs"

    def conversion_report_path(self, pack: str) -> Path:
        return self.eval_dir(pack) / "conversion.json"

    def rejected_quality_path(self, pack: str) -> Path:
        """Scores that failed the gate, written beside the product for inspection."""
        return self.quality_path(pack).with_name("pairs-quality.v0.rejected.json")

    def eval_path(self, pack: str) -> Path:
        return self.eval_dir(pack) / "eval.jsonl"

    def meta_path(self, pack: str) -> Path:
        return self.eval_dir(pack) / "meta.json"

    @property
    def models_dir(self) -> Path:
        return self.root / "outputs" / "coupling" / "models"

    @property
    def checkpoint_path(self) -> Path:
        return self.models_dir / "coupling_net_final.pth"

    @property
    def train_report_path(self) -> Path:
        """The trainer's report (`contracts.validate_train_report`), next to the checkpoint."""
        return self.models_dir / "coupling_net_final.report.json"

    def report_dir(self, pack: str) -> Path:
        return self.root / "reports" / pack

    def report_index_path(self, pack: str) -> Path:
        return self.report_dir(pack) / "index.html"

    def verify_report_path(self, pack: str) -> Path:
        return self.report_dir(pack) / "verify.json"

    @property
    def state_dir(self) -> Path:
        """Tool state that is not a product: doit's database, browser PIDs, caches."""
        return self.root / ".cq"

    @property
    def conversion_cache_dir(self) -> Path:
        """Converted .milk presets, keyed by file content and translator version."""
        return self.state_dir / "milk-cache"

    @property
    def identity_cache_path(self) -> Path:
        """What the last run learned about its renderer and audio (`core.keys`)."""
        return self.state_dir / "identity.json"

    @property
    def doit_db(self) -> Path:
        return self.state_dir / "doit.sqlite3"

    def packs(self) -> list[str]:
        """Packs with a manifest, one level under public/presets (sorted; no recursion)."""
        presets = self.public / "presets"
        if not presets.is_dir():
            return []
        return sorted(entry.name for entry in presets.iterdir()
                      if entry.is_dir() and (entry / MANIFEST_NAME).is_file())
