"""Run history: one record per training run, so runs can be compared side by side (as `dvc exp show` does).

In: the trainer's report (`contracts.validate_train_report`) and the inputs digest of the run.
Out: `Workspace.train_history_path` (JSON lines, appended and fsynced, never rewritten): per run
`{kind, runId, trainedAt, trainSeconds, device, settings, sources{name: count}, packs{pack: rows},
inputsDigest, codeVersion, metrics{"crossValidation.net.spearman": value, ...}}`. Metrics are every number of the
report's metric sections, flattened to dotted names, so a metric the trainer adds later is recorded and
compared without a change here.

Reading keeps going past a torn or foreign line: the line stays in the file, and the reader reports it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..core.contracts import append_jsonl, read_jsonl, value_hash
from ..core.workspace import Workspace

HISTORY_KIND = "coupling_train_history.v0"
# Sections of the training report that are not metrics (the rest is flattened into `metrics`).
NOT_METRICS = ("kind", "trainedAt", "trainSeconds", "fitSeconds", "device", "deviceSnapshot", "settings",
               "featureCount", "sources", "epochs", "packs", "warnings")


def flatten_metrics(value, prefix: str = "") -> dict[str, float]:
    """Numbers of a nested report section by dotted name; a `{value, lo, hi}` metric counts as its value."""
    if isinstance(value, bool):
        return {}
    if isinstance(value, (int, float)):
        return {prefix: float(value)}
    if isinstance(value, dict):
        if "value" in value and isinstance(value["value"], (int, float)):
            return {prefix: float(value["value"])}
        flat = {}
        for key, inner in value.items():
            flat.update(flatten_metrics(inner, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {}


def history_record(report: dict, inputs_digest: str = "", code_version: str = "") -> dict:
    """The history record of one training run, from its report."""
    metrics = flatten_metrics({key: value for key, value in report.items() if key not in NOT_METRICS})
    if report.get("epochs"):
        for source, loss in (report["epochs"][-1].get("loss") or {}).items():
            if isinstance(loss, (int, float)):
                metrics[f"finalLoss.{source}"] = float(loss)
    return {
        "kind": HISTORY_KIND,
        "runId": value_hash([report.get("trainedAt"), report.get("trainSeconds"), report.get("settings"),
                             inputs_digest])[:8],
        "trainedAt": report.get("trainedAt", ""),
        "trainSeconds": report.get("trainSeconds"),
        "device": report.get("device", ""),
        "settings": dict(report.get("settings") or {}),
        "sources": {name: (info or {}).get("count", 0) for name, info in (report.get("sources") or {}).items()},
        "packs": {pack: (info or {}).get("rows", 0) for pack, info in (report.get("packs") or {}).items()},
        "inputsDigest": inputs_digest,
        "codeVersion": code_version,
        "metrics": metrics,
    }


def append_run(workspace: Workspace, report: dict, inputs_digest: str = "", code_version: str = "") -> dict:
    """Append the record of a training run; a torn last line of an earlier writer is kept, on its own line."""
    record = history_record(report, inputs_digest, code_version)
    path = workspace.train_history_path
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab+") as handle:
        handle.seek(0, 2)
        if handle.tell():
            handle.seek(-1, 2)
            if handle.read(1) != b"\n":
                handle.write(b"\n")  # end the torn line (kept as it is) so this record starts fresh
        append_jsonl(handle, record)
    return record


@dataclass
class History:
    runs: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_history(workspace: Workspace) -> History:
    """Every readable record, oldest first, plus one problem per line that is not a record (kept in the file)."""
    path = workspace.train_history_path
    read = read_jsonl(path)
    history = History(problems=[f"{path}:{line}: unreadable line (torn write?), kept in the file and skipped"
                                for line in read.bad_lines])
    for row in read.rows:
        if row.get("kind") != HISTORY_KIND or not isinstance(row.get("settings"), dict) \
                or not isinstance(row.get("metrics"), dict):
            history.problems.append(f"{path}: a line that is not a {HISTORY_KIND} record, skipped")
            continue
        history.runs.append(row)
    return history


def changes(before: dict | None, after: dict) -> list[str]:
    """What changed from one run to the next, in words: settings, source sizes, inputs, code."""
    if before is None:
        return ["first run"]
    said = []
    for name in sorted(set(before["settings"]) | set(after["settings"])):
        old, new = before["settings"].get(name), after["settings"].get(name)
        if old != new:
            said.append(f"{name} {old} → {new}")
    for kind in ("sources", "packs"):
        for name in sorted(set(before.get(kind, {})) | set(after.get(kind, {}))):
            old, new = before.get(kind, {}).get(name, 0), after.get(kind, {}).get(name, 0)
            if old != new:
                said.append(f"{name} {'rows' if kind == 'packs' else 'pairs'} {old} → {new}")
    if before.get("inputsDigest") != after.get("inputsDigest") and not any(
            "→" in line and ("rows" in line or "pairs" in line) for line in said):
        said.append("training data changed")
    if before.get("codeVersion") != after.get("codeVersion"):
        said.append("training code changed")
    if before.get("device") != after.get("device"):
        said.append(f"device {before.get('device')} → {after.get('device')}")
    return said or ["nothing (a rerun)"]


def varying_settings(runs: list[dict]) -> list[str]:
    """Settings that differ between at least two runs: the columns worth showing."""
    names = sorted({name for run in runs for name in run["settings"]})
    return [name for name in names if len({repr(run["settings"].get(name)) for run in runs}) > 1]
