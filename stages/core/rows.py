"""The rows a pack already has, found by content key in its shards and its merged eval.jsonl."""
from __future__ import annotations

from ..core.contracts import read_rows
from ..core.workspace import Workspace


def rows_by_key(workspace: Workspace, pack: str) -> tuple[dict[str, dict], list[str]]:
    """Every valid row written for a pack (all shards), by content key, plus warnings for skipped lines."""
    by_key: dict[str, dict] = {}
    warnings: list[str] = []
    for shard_file in workspace.shard_files(pack):
        rows, shard_warnings = read_rows(shard_file)
        warnings += shard_warnings
        by_key.update((row["contentKey"], row) for row in rows)
    return by_key, warnings
