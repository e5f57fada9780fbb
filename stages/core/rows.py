"""Which rows of a pack are current: the one rule the sampler, its shard check and the merge share.

In: every shard file of a pack (complete, partial, or with a corrupt line), read once per file version.
Out: `PackRows` (the rows by content key and how often each key failed for a transient reason),
`needs_render` (the sampler's question), `labelled` (a row re-labelled for the pair that needs it) and
`shard_covered` (doit's question: are a finished shard's rows all still there?).

Rules:
- A row is found by its content key anywhere in the pack. Two pairs with byte-identical presets share a
  key, so the row is re-labelled (pair number, preset names) for the pair that asks: every manifest pair
  appears exactly once, under its own number.
- Failures that depend on the moment (`timeout`, `crashed`) are rendered again by the next run, at most
  `TRANSIENT_TRIES` times per key; then the last one stands. Failures that are properties of the preset
  (`shader-failed`, `eel-error`, `read-failed`, `missing-file`, ...) are kept: rendering again changes nothing.
  (A run that hits the restart limit writes no row for its pairs, so they are simply rendered next time.)
- A render's status is judged under the cost cap `max_frame_ms` (`timings.maxFrameMs`, the cap it was judged
  under; 0: none), so a row stands only while the cap now would give the same status: a `too-heavy` row while
  the cap is no higher than its own (a lower cap cuts it as well), any other rendered row while its
  `timings.peakFrameMs` (the highest cost at a read where the page could cut) is within the cap. Otherwise it
  is rendered again: a raised cap may let a cut pair through, a lowered one may cut a pair that passed. A row
  that was never rendered (a missing file, an unreadable preset) has no cost and stands.
- A shard is done only while its rows cover its pairs: `NNNN.done` lists the keys the shard covered, and a
  key whose row was lost (a corrupt line, an edited file) makes the shard stale again.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..core.contracts import dumps, read_json, read_rows, validate_eval_row, validate_fingerprint_row, write_bytes_atomic
from ..core.errors import ContractError
from ..core.keys import content_key, engine_version
from ..core.plan import PackPlan
from ..core.workspace import Workspace

TRANSIENT_STATUSES = ("timeout", "crashed")
TRANSIENT_TRIES = 3

# path -> ((mtime_ns, size), rows, warnings): a shard file is parsed again only after it changed
_PARSED: dict[Path, tuple[tuple[int, int], list[dict], list[str]]] = {}


@dataclass
class PackRows:
    by_key: dict[str, dict] = field(default_factory=dict)
    transient_tries: Counter = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)  # lines that were skipped, once per file version

    def add(self, row: dict) -> None:
        """Take one row (as read, or as just written); a lasting row is never replaced by a transient one."""
        key = row["contentKey"]
        transient = row["status"] in TRANSIENT_STATUSES
        if transient:
            self.transient_tries[key] += 1
        known = self.by_key.get(key)
        if known is None or not transient or known["status"] in TRANSIENT_STATUSES:
            self.by_key[key] = row

    def needs_render(self, key: str, max_frame_ms: float) -> bool:
        """True when the key has no row, only transient failures and tries are left, or a row whose status
        the cost cap `max_frame_ms` (0: none) would not give now."""
        row = self.by_key.get(key)
        if row is None:
            return True
        if row["status"] in TRANSIENT_STATUSES:
            return self.transient_tries[key] < TRANSIENT_TRIES
        return not stands_under_cap(row, max_frame_ms)

    def row_for(self, key: str) -> dict | None:
        return self.by_key.get(key)


def stands_under_cap(row: dict, max_frame_ms: float) -> bool:
    """Whether a lasting row's status is the one the cost cap `max_frame_ms` (0: none) would give (module
    docstring)."""
    timings = row["timings"]
    if "maxFrameMs" not in timings:
        return True
    if row["status"] == "too-heavy":
        return 0 < max_frame_ms <= timings["maxFrameMs"]
    return max_frame_ms == 0 or timings.get("peakFrameMs", 0.0) <= max_frame_ms


def _parse(path: Path, announce, validate=validate_eval_row) -> tuple[list[dict], list[str]]:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return [], []
    signature = (stat.st_mtime_ns, stat.st_size)
    cached = _PARSED.get(path)
    if cached is None or cached[0] != signature:
        rows, warnings = read_rows(path, validate)
        for warning in warnings:
            announce(warning)
        cached = _PARSED[path] = (signature, rows, warnings)
    return cached[1], cached[2]


def read_pack_rows(workspace: Workspace, pack: str, announce=lambda warning: None) -> PackRows:
    """Every valid row written for the pack; `announce` hears each skipped line once per file version."""
    rows = PackRows()
    for shard_file in workspace.shard_files(pack):
        shard_rows, warnings = _parse(shard_file, announce)
        rows.warnings += warnings
        for row in shard_rows:
            rows.add(row)
    return rows


def read_fingerprint_rows(workspace: Workspace, announce=lambda warning: None) -> PackRows:
    """Every valid fingerprint row of the workspace, by content key, under the same rules as a pack's rows."""
    rows = PackRows()
    for shard_file in workspace.fingerprint_files():
        shard_rows, warnings = _parse(shard_file, announce, validate_fingerprint_row)
        rows.warnings += warnings
        for row in shard_rows:
            rows.add(row)
    return rows


def drop_torn_tail(path: Path) -> None:
    """A writer killed mid-line leaves a partial last line: cut it so appends start on a fresh line."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data[: data.rfind(b"\n") + 1]
        print(f"warning: {path}: dropped a torn last line from an interrupted run "
              f"({len(data) - len(keep)} bytes); every complete row is kept", flush=True)
        write_bytes_atomic(path, keep)


def prepare_shard_file(path: Path) -> None:
    """The shard's file exists and ends on a complete line, ready for appends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    drop_torn_tail(path)
    path.touch()


def labelled(row: dict, pair: int, fg_name: str, bg_name: str) -> dict:
    """The row as the result of `pair` (a row found by content key may have been rendered for another)."""
    if (row["pair"], row["presetFgId"], row["presetBgId"]) == (pair, fg_name, bg_name):
        return row
    return {**row, "pair": pair, "presetFgId": fg_name, "presetBgId": bg_name}


def pair_rows(plan: PackPlan, rows: PackRows, audio_key: str, renderer: str) -> dict[int, dict]:
    """{pair: its row, labelled for it} for each manifest pair that has a row under these identities."""
    engine = engine_version()
    found = {}
    for planned in plan.ordered:
        row = rows.row_for(content_key(planned, plan.settings, audio_key, engine, renderer, plan.versions))
        if row is not None:
            found[planned.pair] = labelled(row, planned.pair, planned.fg_path.name, planned.bg_path.name)
    return found


def identities_from_rows(plan: PackPlan, rows: PackRows) -> tuple[str, str] | None:
    """(audio key, renderer) that the rows themselves were rendered with, when the identity cache is lost:
    of the identities in this engine's rows, the one that explains the most manifest pairs."""
    engine = engine_version()
    seen = Counter((row["render"].get("audioKey", ""), row["renderer"]) for row in rows.by_key.values()
                   if row["engine"] == engine and row["renderer"])
    best = max(seen, key=lambda pair: (len(pair_rows(plan, rows, *pair)), seen[pair]), default=None)
    return best


def mark_shard_done(path: Path, shard_key: str, keys: list[str]) -> None:
    write_bytes_atomic(path, dumps({"shardKey": shard_key, "keys": sorted(set(keys))}) + b"\n")


def shard_covered(workspace: Workspace, pack: str, shard: int, max_frame_ms: float) -> bool:
    """doit uptodate check: the shard was marked done and every key it covered still has its row, current
    under the cost cap `max_frame_ms`."""
    path = workspace.shard_done_path(pack, shard)
    try:
        keys = read_json(path)["keys"]
    except (ContractError, KeyError, TypeError):
        return False
    rows = read_pack_rows(workspace, pack)
    return all(key in rows.by_key and not rows.needs_render(key, max_frame_ms) for key in keys)


def fingerprint_covered(workspace: Workspace, shard: int, max_frame_ms: float) -> bool:
    """doit uptodate check: the fingerprint shard was marked done and every key it covered still has its row,
    current under the cost cap `max_frame_ms`."""
    try:
        keys = read_json(workspace.fingerprint_done_path(shard))["keys"]
    except (ContractError, KeyError, TypeError):
        return False
    rows = read_fingerprint_rows(workspace)
    return all(key in rows.by_key and not rows.needs_render(key, max_frame_ms) for key in keys)
