"""The workspace root and the seed-compatible layout under it.

In: the root, from `$CQ_WORKSPACE`; else, in a checkout, `[tool.coupled-quality] workspace` in
pyproject.toml or `workspace/` in the repo (git-ignored); else (an installed tool) the current directory.
Out: a `Workspace` naming every path a stage reads or writes, with the original app's relative layout, so
pointing the root at that app's checkout makes our outputs land where its runtime reads them.

Also where the tool's own files are: in a checkout `web/` and `data/` beside `stages/` and the npm deps in
`web/node_modules`; in an installed wheel `web/` and `data/` inside the package and the npm deps in the
user's cache directory (never inside site-packages, which may be read-only and is shared).

Packs are found one level deep (`public/presets/<pack>/pairs-manifest.v0.json`); user folders are never
scanned recursively.
"""
from __future__ import annotations

import json
import os
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..core.contracts import MANIFEST_NAME, QUALITY_NAME, replace_file
from ..core.errors import ContractError, CqError, disk_error, file_error

PACKAGE_DIR = Path(__file__).resolve().parents[1]
# A checkout has the task graph's entry beside the package; an installed wheel has none.
CHECKOUT = PACKAGE_DIR.parent if (PACKAGE_DIR.parent / "dodo.py").is_file() else None
WEB_DIR = (CHECKOUT or PACKAGE_DIR) / "web"
DATA_DIR = (CHECKOUT or PACKAGE_DIR) / "data"
# inside the package in a checkout too: the report stage's markup is its code (a template edit rebuilds reports)
REPORT_TEMPLATES_DIR = PACKAGE_DIR / "templates" / "report"
# the published JSON Schemas of the manifest and the quality file (`core.schemas`)
SCHEMAS_DIR = (CHECKOUT or PACKAGE_DIR) / "schemas"


def user_cache_dir(platform: str, environ: Mapping[str, str], home: Path) -> Path:
    """The per-user cache directory of this tool on `platform` (a `sys.platform` value)."""
    if platform == "win32":
        base = environ.get("LOCALAPPDATA") or str(home / "AppData" / "Local")
        return Path(base) / "coupled-quality" / "Cache"
    if platform == "darwin":
        return home / "Library" / "Caches" / "coupled-quality"
    return Path(environ.get("XDG_CACHE_HOME") or home / ".cache") / "coupled-quality"


# Where `webdeps` unpacks the pages' renderer: beside the pages in a checkout, else in the user's cache.
WEB_DEPS_DIR = WEB_DIR if CHECKOUT else user_cache_dir(sys.platform, os.environ, Path.home()) / "web-deps"
NODE_MODULES_DIR = WEB_DEPS_DIR / "node_modules"


# The command the user runs, for messages: set by `cli.main` (`coupled-quality`, or `python -m stages.cli`);
# unset, the graph runs under `doit` in a checkout. An environment variable, so that doit's parallel
# workers (spawned processes on Windows and macOS) say the same.
COMMAND_ENV = "CQ_COMMAND"


def command(words: str = "") -> str:
    """`words` as the user types them to run the task graph: `command("train")` is `doit train` under doit
    in a checkout, `coupled-quality train` through the installed command."""
    name = os.environ.get(COMMAND_ENV) or ("doit" if CHECKOUT else "coupled-quality")
    return f"{name} {words}".strip()


def tool_command(words: str) -> str:
    """`words` as the user types them to run a tool (serve, demo-bases, ...), which doit does not have:
    `python -m stages.cli serve` in a checkout, `coupled-quality serve` installed."""
    name = os.environ.get(COMMAND_ENV) or ("python -m stages.cli" if CHECKOUT else "coupled-quality")
    return f"{name} {words}"


def project_config() -> dict:
    """`[tool.coupled-quality]` of the checkout's pyproject.toml (empty when absent or installed)."""
    path = CHECKOUT / "pyproject.toml" if CHECKOUT else None
    if path is None or not path.exists():
        return {}
    with path.open("rb") as handle:
        return tomllib.load(handle).get("tool", {}).get("coupled-quality", {})


def settings_config(workspace: "Workspace") -> dict:
    """Settings defaults by section (`sample`, `train`): the repo's `[tool.coupled-quality.<section>]`,
    overridden by `<workspace>/coupled-quality.toml` so each workspace can carry its own knobs."""
    config = {section: dict(values) for section, values in project_config().items() if isinstance(values, dict)}
    for section, values in workspace_config(workspace).items():
        config.setdefault(section, {}).update(values)
    return config


def workspace_config(workspace: "Workspace") -> dict:
    """`<workspace>/coupled-quality.toml` as it is written (empty when absent); ContractError, one line, when
    it cannot be read as TOML."""
    path = workspace.config_path
    if not path.exists():
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ContractError(path, f"not valid TOML: {str(error).splitlines()[0]}", "fix that line") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ContractError(path, f"cannot be read: {getattr(error, 'strerror', None) or error}") from None


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def save_settings(workspace: "Workspace", section: str, values: dict) -> None:
    """Set `values` in `[section]` of `<workspace>/coupled-quality.toml`, keeping the file's other lines
    and comments; raises ContractError when the file would not read back with these values."""
    path = workspace.config_path
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    for name, value in values.items():
        line = f"{name} = {_toml_value(value)}"
        header = next((i for i, text in enumerate(lines) if text.strip() == f"[{section}]"), None)
        if header is None:
            lines += ([""] if lines else []) + [f"[{section}]", line]
            continue
        end = next((i for i in range(header + 1, len(lines)) if lines[i].lstrip().startswith("[")), len(lines))
        existing = next((i for i in range(header + 1, end) if re.match(rf"\s*{re.escape(name)}\s*=", lines[i])), None)
        if existing is not None:
            lines[existing] = line
        else:
            last = max([header] + [i for i in range(header + 1, end) if lines[i].strip()])
            lines.insert(last + 1, line)
    text = "\n".join(lines) + "\n"
    try:
        saved = tomllib.loads(text).get(section, {})
    except tomllib.TOMLDecodeError as error:
        saved = {"": error}
    if any(saved.get(name) != value for name, value in values.items()):
        raise ContractError(path, f"could not set {', '.join(values)} in [{section}] automatically",
                            f"set them there yourself: {'; '.join(f'{n} = {_toml_value(v)}' for n, v in values.items())}")
    partial = path.with_name(path.name + ".partial")  # a plain open(): the umask decides who may read it
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(text, encoding="utf-8")
        replace_file(partial, path)
    except OSError as error:  # a full disk: the file keeps its old content, and no partial copy stays
        partial.unlink(missing_ok=True)
        raise file_error(error, path) from None


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def from_environment(cls) -> "Workspace":
        configured = os.environ.get("CQ_WORKSPACE") or project_config().get("workspace")
        if CHECKOUT is None:
            return cls(Path(configured or ".").expanduser().resolve())
        root = Path(configured or "workspace").expanduser()
        return cls((root if root.is_absolute() else CHECKOUT / root).resolve())

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

    @property
    def fingerprints_dir(self) -> Path:
        """Every preset's fingerprint (`render.fingerprint`), shared by all packs: rows keyed by preset content."""
        return self.root / "artifacts" / "fingerprints"

    def fingerprint_shard_path(self, shard: int) -> Path:
        return self.fingerprints_dir / "shards" / f"{shard:04d}.jsonl"

    def fingerprint_done_path(self, shard: int) -> Path:
        return self.fingerprints_dir / "shards" / f"{shard:04d}.done"

    def fingerprint_files(self) -> list[Path]:
        shards = self.fingerprints_dir / "shards"
        return sorted(shards.glob("*.jsonl")) if shards.is_dir() else []

    @property
    def fingerprint_thumbs_dir(self) -> Path:
        return self.fingerprints_dir / "thumbs"

    @property
    def discovered_versions_path(self) -> Path:
        """The last discovered manifest version of each pack, so a deleted version's number is never reused."""
        return self.state_dir / "discovered-versions.json"

    @property
    def fingerprint_meta_path(self) -> Path:
        """Fingerprint coverage: presets wanted, fingerprinted, failed (`stages.fingerprint`)."""
        return self.fingerprints_dir / "meta.json"

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

    @property
    def train_history_path(self) -> Path:
        """One record per training run, appended (`stages.learn.history`), beside the checkpoints."""
        return self.root / "outputs" / "coupling" / "history.jsonl"

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

    def prepare_state_dir(self) -> None:
        """Create the state folder and check that it can be written: CqError (one line) if not."""
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            probe = self.state_dir / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            raise (disk_error(error) or CqError(f"{self.state_dir}: cannot write: {error.strerror}")) from None

    @property
    def conversion_cache_dir(self) -> Path:
        """Converted .milk presets, keyed by file content and translator version."""
        return self.state_dir / "milk-cache"

    @property
    def identity_cache_path(self) -> Path:
        """What the last run learned about its renderer and audio (`core.keys`)."""
        return self.state_dir / "identity.json"

    @property
    def live_dir(self) -> Path:
        """What each sampling process is doing now (`stages.render.live`), for the watch page."""
        return self.state_dir / "live"

    @property
    def doit_db(self) -> Path:
        return self.state_dir / "doit.sqlite3"

    @property
    def root_record_path(self) -> Path:
        """Where the workspace was when doit last ran (`core.doit_state.follow_moved_workspace`)."""
        return self.state_dir / "root.json"

    def packs(self) -> list[str]:
        """Packs with a manifest, one level under public/presets (sorted; no recursion)."""
        presets = self.public / "presets"
        if not presets.is_dir():
            return []
        return sorted(entry.name for entry in presets.iterdir()
                      if entry.is_dir() and (entry / MANIFEST_NAME).is_file())
