"""Filtered manifests: the pairs a rule keeps, in the original app's `pairs-manifest.filtered.vN.json` form.

In: a pack's manifest, its `pairs-quality.v0.json` and its merged eval rows (`eval.jsonl`), a rule such as
`quality01 >= 0.6 and luma >= 0.1` over the fields below, and/or `top` N (best by quality01 after the rule).
Out: `public/presets/<pack>/pairs-manifest.filtered.v<N>.json` =
`{version:"v0", generatedAt, pack, pairs:[manifest entries kept, in manifest order], keptPairs, totalPairs,
generatedFrom:{manifest, quality, qualityGeneratedAt, rule, top}}`, N one above the highest version ever
written (recorded in `pairs-manifest.filtered.issued.json`): an earlier version is never overwritten and a
deleted one's number is never given again. With `current`, also the copy the runtime reads,
`pairs-manifest.filtered.current.json`, and `pairs-manifest.filtered.current.stamp.json` saying which
version and content it came from.

Rules are parsed, never evaluated as Python: numbers, strings, true/false, field names, comparisons,
`and`, `or`, `not`, parentheses. A pair lacking a value the rule names (not sampled, not scored) is not
kept. Nothing is written when the rule does not parse, names an unknown field, or keeps nothing.
"""
from __future__ import annotations

import ast
import hashlib
import operator
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..core.contracts import (
    STAT_FIELDS,
    dumps,
    load_manifest,
    now_iso,
    read_json,
    read_rows,
    validate_quality,
    write_bytes_atomic,
    write_bytes_new,
)
from ..core.errors import ContractError, CqError, file_error
from ..core.workspace import Workspace, command

FILTERED_PREFIX = "pairs-manifest.filtered."
CURRENT_NAME = f"{FILTERED_PREFIX}current.json"
STAMP_NAME = f"{FILTERED_PREFIX}current.stamp.json"
# The highest version number ever written, so a deleted newest version's number is never given again (a
# stamp or a runtime that named it would then name other content).
ISSUED_NAME = f"{FILTERED_PREFIX}issued.json"
VERSION_NAME = re.compile(rf"{re.escape(FILTERED_PREFIX)}v([0-9]+)\.json")
MAX_TOP = 10**9  # more pairs than any pack has; a bigger count is a typo
MAX_RULE_DEPTH = 100  # nesting of not / and / or / parentheses; deeper is no rule a person writes
# Row fields a rule can name, besides quality01 and the statistics (STAT_FIELDS) of the row.
ROW_FIELDS = ("vizAvgLuma", "vizAvgFrameDelta", "pmAvgLumaFg", "pmAvgLumaBg", "audioRms", "audioPeak",
              "okHeuristic", "status")
# The report's short names for the statistics, accepted in rules too.
ALIASES = {"luma": "lumaMean", "motion": "motionMean", "colour": "colourfulness", "color": "colourfulness",
           "audio": "audioCorr", "black": "blackFrac", "white": "whiteFrac", "quality": "quality01"}
FIELDS = ("quality01", *STAT_FIELDS, *ROW_FIELDS)


def _param(default, help_text: str):
    return field(default=default, metadata={"help": help_text})


COMPARISONS = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
               ast.Eq: operator.eq, ast.NotEq: operator.ne}


@dataclass(frozen=True)
class FilterSettings:
    """The filter's knobs (`doit filter --rule="quality01 >= 0.6" --top 200 --current`)."""

    packs: str = _param("", "comma-separated packs to filter (empty: every pack in the workspace)")
    rule: str = _param("", "which pairs to keep, e.g. \"quality01 >= 0.6 and luma >= 0.1\"")
    top: int = _param(0, "keep at most the N best pairs by quality01 (after the rule; 0: no limit)")
    current: bool = _param(False, "also make the new version the runtime's current filtered manifest")

    @property
    def pack_list(self) -> list[str]:
        return [name.strip() for name in self.packs.split(",") if name.strip()]

    @property
    def asked(self) -> bool:
        """Whether a rule or a count was given (without one, the task has nothing to do)."""
        return bool(self.rule.strip()) or self.top != 0


def task_params() -> list[dict]:
    """doit `task_params` specs of `FilterSettings`. A filter's knobs are for one run: unlike the sampler's,
    they are never saved to the workspace config (a saved rule would filter again on every `doit`)."""
    kinds = {"bool": bool, "int": int, "str": str}
    return [{"name": item.name, "long": item.name.replace("_", "-"), "default": item.default,
             "type": kinds[item.type], "help": item.metadata["help"]} for item in fields(FilterSettings)]


class Rule:
    """A parsed rule: `keeps(values)` says whether a pair with these field values is kept."""

    def __init__(self, text: str):
        self.text = text.strip()
        self.fields: set[str] = set()
        if not self.text:
            self.tree = None
            return
        too_deep = CqError(f"rule {self.text[:40]!r}... nests not / and / or / parentheses more than "
                           f"{MAX_RULE_DEPTH} deep: write it flatter")
        try:
            self.tree = ast.parse(self.text, mode="eval").body
        except SyntaxError as error:
            raise CqError(f"rule {self.text!r} does not parse at column {error.offset}: use comparisons like "
                          "quality01 >= 0.6 joined by and / or / not") from None
        except (RecursionError, MemoryError):  # Python's parser gives up on deep nesting
            raise too_deep from None
        self._check(self.tree, 0, too_deep)

    def _check(self, node, depth: int, too_deep: CqError) -> None:
        if depth > MAX_RULE_DEPTH:
            raise too_deep
        if isinstance(node, ast.BoolOp) or (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)):
            for child in getattr(node, "values", None) or [node.operand]:
                self._check(child, depth + 1, too_deep)
        elif isinstance(node, ast.Compare):
            if not all(type(op) in COMPARISONS for op in node.ops):
                raise CqError(f"rule {self.text!r}: only <, <=, >, >=, ==, != compare values")
            for child in (node.left, *node.comparators):
                self._check(child, depth + 1, too_deep)
        elif isinstance(node, ast.Name):
            name = ALIASES.get(node.id, node.id)
            if name not in FIELDS:
                raise CqError(f"rule {self.text!r} names an unknown field {node.id!r}; known fields: "
                              f"{', '.join(FIELDS)} (and {', '.join(ALIASES)})")
            self.fields.add(name)
        elif isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
            return
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) \
                and isinstance(node.operand, ast.Constant):
            return
        else:
            raise CqError(f"rule {self.text!r}: {ast.unparse(node)!r} is not a field, a value or a comparison")

    def keeps(self, values: dict) -> bool:
        if self.tree is None:
            return True
        if any(values.get(name) is None for name in self.fields):
            return False
        return bool(self._eval(self.tree, values))

    def _eval(self, node, values):
        if isinstance(node, ast.BoolOp):
            parts = (self._eval(child, values) for child in node.values)
            return all(parts) if isinstance(node.op, ast.And) else any(parts)
        if isinstance(node, ast.UnaryOp):
            value = self._eval(node.operand, values)
            return not value if isinstance(node.op, ast.Not) else -value
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, values)
            for op, right_node in zip(node.ops, node.comparators):
                right = self._eval(right_node, values)
                try:
                    if not COMPARISONS[type(op)](left, right):
                        return False
                except TypeError:
                    raise CqError(f"rule {self.text!r} compares {left!r} with {right!r}") from None
                left = right
            return True
        if isinstance(node, ast.Name):
            return values[ALIASES.get(node.id, node.id)]
        return node.value


def pair_values(row: dict | None, quality01: float | None) -> dict:
    """The values a rule can name for one pair (missing ones absent)."""
    values = {"quality01": quality01}
    if row is not None:
        values.update({name: row.get(name) for name in ROW_FIELDS})
        values.update(row.get("stats") or {})
    return values


def version_paths(workspace: Workspace, pack: str) -> dict[int, Path]:
    """Existing filtered versions of a pack by number (one folder listing, no recursion)."""
    found = {}
    for path in workspace.pack_dir(pack).glob(f"{FILTERED_PREFIX}v*.json"):
        match = VERSION_NAME.fullmatch(path.name)  # ASCII digits only: `v².json` is no version
        if match:
            found[int(match.group(1))] = path
    return found


def next_version(workspace: Workspace, pack: str) -> int:
    """One above the highest version that exists, was ever issued, or the current stamp names."""
    pack_dir = workspace.pack_dir(pack)
    issued = _recorded_version(pack_dir / ISSUED_NAME, "lastVersion")
    stamped = _recorded_version(pack_dir / STAMP_NAME, "version")
    return max([*version_paths(workspace, pack), issued, stamped]) + 1


def _recorded_version(path: Path, key: str) -> int:
    if not path.exists():
        return 0
    value = read_json(path).get(key) if path.is_file() else None
    match = re.fullmatch(r"v?([0-9]+)", str(value))
    if match is None:
        raise ContractError(path, f"{key} {value!r} is not a version number",
                            "restore it or delete it if no other filtered version was ever written")
    return int(match.group(1))


def _write(path: Path, data: bytes, new: bool = False) -> None:
    """Write `path` atomically, one line on any failure; with `new`, refuse if it exists (never overwrite a
    version)."""
    try:
        (write_bytes_new if new else write_bytes_atomic)(path, data)
    except FileExistsError:
        raise CqError(f"{path} appeared while it was being written (another filter run?); run it again") from None
    except OSError as error:
        raise file_error(error, path) from None


def filtered_manifest(workspace: Workspace, pack: str, settings: FilterSettings, log=print) -> dict:
    """The filtered manifest of a pack (not written): CqError when the input or the rule is wrong, or the
    rule keeps nothing."""
    if pack not in workspace.packs():
        known = ", ".join(workspace.packs()) or "none"
        raise CqError(f"there is no pack {pack!r} in {workspace.public / 'presets'} (packs: {known})")
    if not 0 <= settings.top <= MAX_TOP:
        raise CqError(f"top {settings.top} must be a number of pairs from 0 (no limit) to {MAX_TOP}")
    if not settings.rule.strip() and settings.top <= 0:
        raise CqError("give a rule (--rule=\"quality01 >= 0.6\") or a count (--top 200): without one every "
                      "pair would be kept")
    rule = Rule(settings.rule)
    manifest = load_manifest(workspace.manifest_path(pack))
    quality_path = workspace.quality_path(pack)
    if not quality_path.exists():
        raise CqError(f"{quality_path}: not there yet; run `{command()}` (sample, train, score) before filtering")
    quality = validate_quality(read_json(quality_path), quality_path, manifest)
    scores = {item["pair"]: item["quality01"] for item in quality["pairs"]}
    rows: dict[int, dict] = {}
    if rule.fields - {"quality01"}:
        eval_path = workspace.eval_path(pack)
        if not eval_path.exists():
            raise ContractError(eval_path, "not there yet, and the rule names measurements",
                                f"run `{command('merge')}`")
        good_rows, warnings = read_rows(eval_path)
        for warning in warnings[:5]:
            log(f"warning: {warning}")
        rows = {row["pair"]: row for row in good_rows}
    kept = [entry for entry in manifest.pairs if rule.keeps(pair_values(rows.get(entry.pair), scores.get(entry.pair)))]
    if settings.top > 0:
        best = sorted((entry for entry in kept if entry.pair in scores), key=lambda e: (-scores[e.pair], e.pair))
        chosen = {entry.pair for entry in best[:settings.top]}
        kept = [entry for entry in kept if entry.pair in chosen]
    if not kept:
        raise CqError(f"pack {pack}: the rule {settings.rule!r}{f' with top {settings.top}' if settings.top else ''} "
                      f"keeps none of {len(manifest.pairs)} pairs; nothing written (loosen it)")

    kept_pairs = {entry.pair for entry in kept}
    full = manifest.to_json()
    return {**full, "generatedAt": now_iso(), "pairs": [item for item in full["pairs"] if item["pair"] in kept_pairs],
            "keptPairs": len(kept), "totalPairs": len(manifest.pairs),
            "generatedFrom": {"manifest": manifest.path.name, "quality": quality_path.name,
                              "qualityGeneratedAt": quality["generatedAt"], "rule": rule.text, "top": settings.top}}


def write_version(workspace: Workspace, pack: str, document: dict, current: bool, log=print) -> Path:
    """Write a filtered manifest as the pack's next version (and the current copy when asked)."""
    number = next_version(workspace, pack)
    path = workspace.pack_dir(pack) / f"{FILTERED_PREFIX}v{number}.json"
    # issued before written: a run stopped between the two leaves a gap, never a number given twice
    _write(workspace.pack_dir(pack) / ISSUED_NAME, dumps({"lastVersion": number}, pretty=True) + b"\n")
    _write(path, dumps(document, pretty=True) + b"\n", new=True)
    log(f"filter {pack}: kept {document['keptPairs']} of {document['totalPairs']} pairs -> {path.name}")
    if current:
        set_current(workspace, pack, number, log)
    return path


def set_current(workspace: Workspace, pack: str, number: int, log=print) -> Path:
    """Copy version `number` to the current filtered manifest, then write the stamp naming it."""
    source = version_paths(workspace, pack).get(number)
    if source is None:
        raise CqError(f"pack {pack} has no {FILTERED_PREFIX}v{number}.json")
    data = source.read_bytes()
    current = workspace.pack_dir(pack) / CURRENT_NAME
    _write(current, data)
    stamp = {"version": f"v{number}", "file": source.name, "sha256": hashlib.sha256(data).hexdigest(),
             "setAt": now_iso()}
    _write(workspace.pack_dir(pack) / STAMP_NAME, dumps(stamp, pretty=True) + b"\n")
    log(f"filter {pack}: {CURRENT_NAME} is now v{number}")
    return current
