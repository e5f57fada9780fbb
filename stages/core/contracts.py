"""The contracts between stages, defined once and validated at every boundary.

Files (seed formats from DESIGN.md, plus our additions):

- pairs manifest   `public/presets/<pack>/pairs-manifest.v0.json`   -> `load_manifest` / `Manifest`
- eval row         one JSON object per line in shards and eval.jsonl -> `validate_eval_row`, `read_rows`
- meta             `artifacts/coupled-eval/<pack>/meta.json`        -> `validate_meta`
- quality file     `public/presets/<pack>/pairs-quality.v0.json`    -> `validate_quality`
- elite manifest   hand-rated pairs                                  -> `load_elite`
- ratings          `ratings.jsonl` in the workspace, from the player -> `validate_rating`, `read_ratings`
- checkpoint       `outputs/coupling/models/coupling_net_final.pth` -> `validate_checkpoint`

Everything JSON goes through `read_json` / `write_json` / `read_jsonl` / `append_jsonl` here, so no other
module parses these files by hand. Writes are atomic (temp file + fsync + rename); appends are flushed
and fsynced line by line, and a torn last line (a killed writer) is skipped and reported, never fatal.
"""
from __future__ import annotations

import hashlib
import math
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from ..core.errors import ContractError

MANIFEST_NAME = "pairs-manifest.v0.json"
QUALITY_NAME = "pairs-quality.v0.json"
META_KIND = "coupled_eval.v0"

# ---------------------------------------------------------------------------------------------- JSON I/O


def read_bytes(path: Path) -> bytes:
    """A file's bytes; a missing or unreadable file is a ContractError naming it."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ContractError(path, "file not found") from None
    except OSError as error:
        raise ContractError(path, f"cannot read: {error.strerror}") from None


def read_json(path: Path) -> Any:
    """Parse a JSON file; a missing or malformed file is a ContractError naming it."""
    data = read_bytes(path)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise ContractError(path, f"not valid JSON: {error}", "fix or regenerate the file") from None


def dumps(value: Any, pretty: bool = False) -> bytes:
    option = orjson.OPT_SERIALIZE_NUMPY | (orjson.OPT_INDENT_2 if pretty else 0)
    return orjson.dumps(value, option=option)


# A temporary file is created with os.open's 0o666 (the umask applies, as for a plain open()), not
# mkstemp's 0o600: a product served by another user (nginx, a container) must stay readable.
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
REPLACE_TRIES = 20  # os.replace, 50 ms apart: Windows refuses it while a reader holds the target open


def _temp_beside(path: Path, data: bytes, fsync: bool) -> Path:
    """`data` written (and fsynced) to a new temporary file beside `path`; returns that file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, _NEW_FILE, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def replace_file(source: Path, target: Path) -> None:
    """os.replace, retried briefly while the target is held open elsewhere (PermissionError on Windows)."""
    for attempt in range(REPLACE_TRIES):
        try:
            os.replace(source, target)
            return
        except PermissionError:
            if attempt == REPLACE_TRIES - 1:
                raise
            time.sleep(0.05)


def write_bytes_atomic(path: Path, data: bytes, fsync: bool = True) -> None:
    """Replace `path` with `data` so a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    tmp = _temp_beside(path, data, fsync)
    try:
        replace_file(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_new(path: Path, data: bytes) -> None:
    """Create `path` with `data`; FileExistsError when it exists (never overwrites). The name is claimed
    with O_EXCL and the durable content moved over the claim, so no hard link is needed (exFAT, FAT and
    many SMB shares have none); a reader may see the claim empty for an instant, never half the data."""
    path = Path(path)
    tmp = _temp_beside(path, data, fsync=True)
    try:
        os.close(os.open(path, _NEW_FILE, 0o666))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        replace_file(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        path.unlink(missing_ok=True)  # our own empty claim
        raise


def write_json(path: Path, value: Any, pretty: bool = True) -> None:
    write_bytes_atomic(path, dumps(value, pretty) + b"\n")


@dataclass
class JsonlRead:
    """Rows of a JSON-lines file plus the lines that could not be parsed (1-based line numbers)."""

    rows: list[dict] = field(default_factory=list)
    bad_lines: list[int] = field(default_factory=list)


def read_jsonl(path: Path) -> JsonlRead:
    """Read a JSON-lines file; unparsable lines (a torn last line after a kill) are skipped and listed."""
    result = JsonlRead()
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return result
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            result.bad_lines.append(number)
            continue
        if isinstance(row, dict):
            result.rows.append(row)
        else:
            result.bad_lines.append(number)
    return result


def append_jsonl(handle, row: dict) -> None:
    """Append one row to an open binary file and make it durable before returning."""
    handle.write(dumps(row) + b"\n")
    handle.flush()
    os.fsync(handle.fileno())


def file_hash(path: Path) -> str:
    """Content hash of a file (sha256, first 16 hex digits): the identity of a preset or audio file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def value_hash(value: Any) -> str:
    """Stable hash of a JSON-able value (keys sorted), for content keys and settings keys."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ------------------------------------------------------------------------------------------ checks


def _require(where, record: dict, key: str, kinds, context: str = ""):
    if key not in record:
        raise ContractError(where, f"{context}missing field '{key}'")
    value = record[key]
    if kinds is float:
        kinds = (int, float)
    if not isinstance(value, kinds) or (isinstance(value, bool) and kinds in (int, (int, float))):
        raise ContractError(where, f"{context}field '{key}' has {type(value).__name__} {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ContractError(where, f"{context}field '{key}' is {value}")
    return value


# ---------------------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class ManifestPair:
    pair: int
    fgUrl: str
    bgUrl: str
    warp_diff: float | None = None
    cx_diff: float | None = None


@dataclass
class Manifest:
    path: Path
    pack: str
    pairs: list[ManifestPair]
    generatedAt: str = ""

    def to_json(self) -> dict:
        pairs = []
        for entry in self.pairs:
            item = {"pair": entry.pair, "fgUrl": entry.fgUrl, "bgUrl": entry.bgUrl}
            if entry.warp_diff is not None:
                item["warp_diff"] = entry.warp_diff
            if entry.cx_diff is not None:
                item["cx_diff"] = entry.cx_diff
            pairs.append(item)
        return {"version": "v0", "generatedAt": self.generatedAt or now_iso(), "pack": self.pack,
                "pairs": pairs}


def parse_manifest(path: Path, data: Any) -> Manifest:
    where = Path(path)
    if not isinstance(data, dict):
        raise ContractError(where, "a pairs manifest must be a JSON object")
    if data.get("version") != "v0":
        raise ContractError(where, f"version is {data.get('version')!r}, expected 'v0'")
    pack = _require(where, data, "pack", str)
    if not pack or "/" in pack or "\\" in pack or pack in (".", ".."):
        raise ContractError(where, f"pack name {pack!r} is not a plain folder name")
    raw_pairs = _require(where, data, "pairs", list)
    pairs: list[ManifestPair] = []
    seen: set[int] = set()
    for index, item in enumerate(raw_pairs):
        context = f"pairs[{index}]: "
        if not isinstance(item, dict):
            raise ContractError(where, f"{context}must be an object")
        pair = _require(where, item, "pair", int, context)
        if pair in seen:
            raise ContractError(where, f"{context}pair {pair} appears twice")
        seen.add(pair)
        urls = [_require(where, item, key, str, context) for key in ("fgUrl", "bgUrl")]
        for url in urls:
            if not url.startswith("/"):
                raise ContractError(where, f"{context}URL {url!r} must be a web path starting with '/'")
        extras = {}
        for key in ("warp_diff", "cx_diff"):
            if item.get(key) is not None:
                extras[key] = float(_require(where, item, key, float, context))
        pairs.append(ManifestPair(pair, urls[0], urls[1], **extras))
    return Manifest(where, pack, pairs, str(data.get("generatedAt", "")))


def load_manifest(path: Path) -> Manifest:
    """Read and validate a pairs manifest."""
    return parse_manifest(path, read_json(path))


def resolve_url(public_dir: Path, url: str, where) -> Path:
    """Map a web path like `/presets/pack/fg/a.milk` to a file under `public_dir`; refuse escapes."""
    parts = PurePosixPath(url).parts[1:]
    if any(part == ".." for part in parts) or "\\" in url or not parts:
        raise ContractError(where, f"URL {url!r} escapes public/", "use a path inside public/")
    base = Path(public_dir).resolve()
    target = base.joinpath(*parts).resolve()
    if base != target and base not in target.parents:
        raise ContractError(where, f"URL {url!r} escapes public/ (via a link)", "use a path inside public/")
    return target


# ---------------------------------------------------------------------------------------- eval row

# The seed's fields, kept exactly; a row never has pair:null.
SEED_ROW_FIELDS: dict[str, Any] = {
    "tMs": int, "pack": str, "pair": int, "presetFgId": str, "presetBgId": str,
    "vizAvgLuma": float, "vizAvgFrameDelta": float, "pmAvgLumaFg": float, "pmAvgLumaBg": float,
    "audioRms": float, "audioPeak": float, "pageErrorsSinceLast": int, "consoleErrorsSinceLast": int,
    "okHeuristic": bool, "reasons": list,
}
# What makes a row trustworthy and useful (ours).
EXTRA_ROW_FIELDS: dict[str, Any] = {
    "contentKey": str,     # hash of fgHash, bgHash, render settings, engine and renderer
    "fgHash": str, "bgHash": str,
    "status": str,         # one of ROW_STATUSES
    "render": dict,        # the settings that change pixels (size, frames, dt, seed, blend, audio key)
    "engine": str,         # page + butterchurn version
    "renderer": str,       # WebGL UNMASKED_RENDERER
    "errors": list,        # shader link / EEL / page errors, as text
    "timings": dict,       # the page's (createMs, loadMs, renderMs, frameMs, peakFrameMs, ...) and the pool's: pairMs,
                           # maxFrameMs (the cost cap the status was judged under, 0: none), alone (nothing else in
                           # flight on the pool), sharedFrameMs (a pair cut under load and judged again alone);
                           # empty for a row that was never rendered. core.rows judges rows again by them.
    "stats": dict,         # STAT_FIELDS, empty when the pair did not render
    "attempts": int,
    "sampledAt": str,
    "thumb": str,          # PNG of the composite at a fixed frame, relative to the pack's eval dir ("" if none)
}
# Fields rows written before them lack: checked when present.
OPTIONAL_ROW_FIELDS: dict[str, Any] = {
    "node": str,           # where it was rendered: "local", or the Dask worker's address
    "gpu": str,            # the GPU its browser was pinned to, "INDEX:UUID" (the gpus setting), else ""
}
ROW_STATUSES = ("ok", "load-failed", "shader-failed", "eel-error", "timeout", "crashed", "black",
                "read-failed", "translate-failed", "degraded", "missing-file", "too-heavy")
# Richer statistics over the composited 64x64 frames (all in [0,1] unless noted).
STAT_FIELDS = (
    "lumaMean", "lumaMin", "contrast", "colourfulness", "motionMean", "motionP90", "flicker",
    "blackFrac", "whiteFrac", "audioCorr",  # audioCorr in [-1,1]
    "fgShare", "bgShare",
)


def validate_eval_row(row: Any, where="eval row") -> dict:
    """Check one eval row against the contract; return it unchanged."""
    if not isinstance(row, dict):
        raise ContractError(where, "an eval row must be a JSON object")
    for key, kind in {**SEED_ROW_FIELDS, **EXTRA_ROW_FIELDS}.items():
        _require(where, row, key, kind)
    for key, kind in OPTIONAL_ROW_FIELDS.items():
        if key in row:
            _require(where, row, key, kind)
    if row["status"] not in ROW_STATUSES:
        raise ContractError(where, f"status {row['status']!r} is not one of {', '.join(ROW_STATUSES)}")
    if row["status"] == "ok":
        missing = [name for name in STAT_FIELDS if name not in row["stats"]]
        if missing:
            raise ContractError(where, f"stats lack {', '.join(missing)}")
    if not row["audioRms"] > 0:
        raise ContractError(where, "audioRms must be > 0: the visuals were rendered without audio")
    return row


FINGERPRINT_ROW_FIELDS = {
    "presetId": str,       # the file name it was rendered from (any file with the same content shares the row)
    "presetHash": str,     # keys.preset_identity of the file
    "contentKey": str,     # keys.fingerprint_key: preset, layer render settings, audio, engine, renderer
    "status": str,         # ROW_STATUSES
    "errors": list, "engine": str, "renderer": str, "render": dict,
    "timings": dict,       # as an eval row's (the layer's cost, its cap, alone or not)
    "attempts": int, "sampledAt": str, "node": str,
    "thumb": str,          # PNG of the layer at the thumbnail frame, relative to the fingerprints dir ("" if none)
    "fingerprint": dict,   # render.fingerprint's fields, empty unless status is ok
}


def validate_fingerprint_row(row: Any, where="fingerprint row") -> dict:
    """Check one fingerprint row against the contract; return it unchanged."""
    if not isinstance(row, dict):
        raise ContractError(where, "a fingerprint row must be a JSON object")
    for key, kind in FINGERPRINT_ROW_FIELDS.items():
        _require(where, row, key, kind)
    if row["status"] not in ROW_STATUSES:
        raise ContractError(where, f"status {row['status']!r} is not one of {', '.join(ROW_STATUSES)}")
    if row["status"] == "ok" and not all(isinstance(row["fingerprint"].get(name), list) for name in ("luma", "map")):
        raise ContractError(where, "an ok fingerprint lacks its luma series or map")
    return row


def read_rows(path: Path, validate=validate_eval_row) -> tuple[list[dict], list[str]]:
    """Valid rows of a shard or eval.jsonl (eval rows, or fingerprint rows with validate_fingerprint_row),
    plus one warning per line that was skipped."""
    read = read_jsonl(path)
    warnings = [f"{path}:{line}: unreadable line skipped (torn write?)" for line in read.bad_lines]
    rows = []
    for number, row in enumerate(read.rows, start=1):
        try:
            named = f"pair {row['pair']}" if isinstance(row, dict) and "pair" in row else f"row {number}"
            rows.append(validate(row, f"{path} {named}"))
        except ContractError as error:
            warnings.append(f"{error} (row skipped)")
    return rows, warnings


# -------------------------------------------------------------------------------------------- meta


def validate_meta(meta: Any, where="meta.json") -> dict:
    if not isinstance(meta, dict) or meta.get("kind") != META_KIND:
        raise ContractError(where, f"kind must be {META_KIND!r}")
    for key, kind in {"startedAt": str, "finishedAt": str, "settings": dict, "progress": dict,
                      "audio": dict, "runtime": dict, "errors": list}.items():
        _require(where, meta, key, kind)
    for pack, progress in meta["progress"].items():
        for key in ("visited", "target", "done"):
            _require(where, progress, key, (int, bool) if key == "done" else int, f"progress[{pack}]: ")
    _require(where, meta["audio"], "mode", str, "audio: ")
    if meta["audio"]["mode"] not in ("file", "click"):
        raise ContractError(where, "audio.mode must be 'file' or 'click'")
    for key in ("gpuMode", "headed", "requireGpu", "webgl"):
        if key not in meta["runtime"]:
            raise ContractError(where, f"runtime lacks '{key}'")
    return meta


# ------------------------------------------------------------------------------------ quality file

QUALITY_STAT_FIELDS = ("min", "p50", "p95", "max", "std", "mean")


def validate_quality(quality: Any, where="pairs-quality.v0.json", manifest: Manifest | None = None) -> dict:
    if not isinstance(quality, dict) or quality.get("version") != "v0":
        raise ContractError(where, "version must be 'v0'")
    pack = _require(where, quality, "pack", str)
    if manifest is not None and pack != manifest.pack:
        raise ContractError(where, f"pack is {pack!r} but the manifest's pack is {manifest.pack!r}")
    _require(where, quality, "generatedAt", str)
    pairs = _require(where, quality, "pairs", list)
    known = {entry.pair for entry in manifest.pairs} if manifest is not None else None
    seen = set()
    for index, item in enumerate(pairs):
        context = f"pairs[{index}]: "
        if not isinstance(item, dict):
            raise ContractError(where, f"{context}must be an object")
        pair = _require(where, item, "pair", int, context)
        score = _require(where, item, "quality01", float, context)
        if not 0.0 <= score <= 1.0:
            raise ContractError(where, f"{context}quality01 {score} is outside [0, 1]")
        if pair in seen or (known is not None and pair not in known):
            raise ContractError(where, f"{context}pair {pair} is duplicated or not in the manifest")
        seen.add(pair)
    stats = _require(where, quality, "qualityStats", dict)
    for key in QUALITY_STAT_FIELDS:
        _require(where, stats, key, float, "qualityStats: ")
    _require(where, _require(where, quality, "stats", dict), "missingFiles", int, "stats: ")
    return quality


# --------------------------------------------------------------------------------- elite & ratings


@dataclass(frozen=True)
class EliteEntry:
    fgUrl: str
    bgUrl: str
    score: float  # 1..5


def _elite_entry(where, item: Any, context: str) -> EliteEntry:
    if not isinstance(item, dict):
        raise ContractError(where, f"{context}must be an object")
    urls = [_require(where, item, key, str, context) for key in ("fgUrl", "bgUrl")]
    score = _require(where, item, "score", float, context)
    if not 1 <= score <= 5:
        raise ContractError(where, f"{context}score {score} is outside 1..5")
    return EliteEntry(urls[0], urls[1], float(score))


def load_elite(path: Path) -> list[EliteEntry]:
    """Read an elite manifest `{version:"v0", entries:[{fgUrl, bgUrl, score:1..5}]}`."""
    data = read_json(path)
    if not isinstance(data, dict) or data.get("version") != "v0":
        raise ContractError(path, "an elite manifest must be an object with version 'v0'")
    entries = _require(path, data, "entries", list)
    return [_elite_entry(path, item, f"entries[{i}]: ") for i, item in enumerate(entries)]


RATING_FIELDS = {"pack": str, "pair": int, "fgUrl": str, "bgUrl": str, "score": int, "ratedAt": str}


def validate_rating(rating: Any, where="rating") -> dict:
    """A rating the player appends to `ratings.jsonl`: the user's 1..5 for one pair.

    The player's server also writes `ratingId` (one per keypress), so a retried POST is recorded once."""
    if not isinstance(rating, dict):
        raise ContractError(where, "a rating must be a JSON object")
    for key, kind in RATING_FIELDS.items():
        _require(where, rating, key, kind)
    if not 1 <= rating["score"] <= 5:
        raise ContractError(where, f"score {rating['score']} is outside 1..5")
    return rating


def read_ratings(path: Path) -> tuple[list[EliteEntry], list[str]]:
    """Ratings as elite entries (the latest rating of a pair wins), plus warnings for skipped lines."""
    read = read_jsonl(path)
    warnings = [f"{path}:{line}: unreadable line skipped" for line in read.bad_lines]
    latest: dict[tuple[str, str], EliteEntry] = {}
    for row in read.rows:
        try:
            rating = validate_rating(row, path)
        except ContractError as error:
            warnings.append(f"{error} (rating skipped)")
            continue
        latest[(rating["fgUrl"], rating["bgUrl"])] = EliteEntry(rating["fgUrl"], rating["bgUrl"],
                                                                  float(rating["score"]))
    return list(latest.values()), warnings


# ------------------------------------------------------------------------------------- checkpoint

CHECKPOINT_FIELDS = {"weights": dict, "featureNames": list, "featureMean": list, "featureStd": list,
                     "config": dict, "codeVersion": str, "torchVersion": str}


def validate_checkpoint(checkpoint: Any, where="checkpoint") -> dict:
    """A checkpoint carries all scoring needs: weights, feature names + normalisation, config, versions."""
    if not isinstance(checkpoint, dict):
        raise ContractError(where, "a checkpoint must be a dict saved with torch.save")
    for key, kind in CHECKPOINT_FIELDS.items():
        _require(where, checkpoint, key, kind)
    size = len(checkpoint["featureNames"])
    if len(checkpoint["featureMean"]) != size or len(checkpoint["featureStd"]) != size:
        raise ContractError(where, "feature normalisation does not match the feature names")
    return checkpoint



# ---------------------------------------------------------------------------------- training report

TRAIN_REPORT_KIND = "coupling_train.v0"
TRAIN_SOURCES = ("elite", "eval", "neg")


def _require_metric(where, record: dict, name: str, context: str) -> None:
    """A metric is `{value, lo, hi}` (bootstrap 95% interval) or null when there are too few pairs."""
    if name not in record:
        raise ContractError(where, f"{context}lacks '{name}'")
    if record[name] is not None:
        for key in ("value", "lo", "hi"):
            _require(where, record[name], key, float, f"{context}{name}: ")


def validate_train_report(report: Any, where="training report") -> dict:
    """The trainer's JSON report next to the checkpoint (`Workspace.train_report_path`), read by the report page.

    `{kind, trainedAt, trainSeconds, fitSeconds (the final fit's epochs), crossValidationSeconds, device,
      deviceSnapshot{before, after}, settings, featureCount,
      sources{elite|eval|neg: {count, share, lossWeight, note}},
      epochs[{epoch, loss{elite, eval, neg, total}, drawn{elite, eval, neg}, validationLoss, seconds}],
      crossValidation{folds, seed, pairs, chosenEpochs, validationLoss[], trainingLoss[],
                      perFold[{fold, pairs, trained, validationLoss[], trainingLoss[], seconds, net, ridge}],
                      net{spearman, pearson}, ridge{spearman, pearson}, netMinusRidge{spearman}, eliteAuc,
                      outOfFold[{key, fold, measured, net, ridge}], disagreements[key]} | null,
      crossValidationByPreset{the same, `by: "preset"`: folds by the fg preset's family, no tested pair's
                              preset (fg or bg) in training} | null (absent in reports from before it),
      eliteAuc{value, lo, hi, positives, negatives, heldOut} | null,
      packs{pack: {rows, okRows, failedRows, staleRows, pairs}}}`
    where a metric is `{value, lo, hi}` or null; `epochs` are the final fit's (its validationLoss is the
    k-fold mean, null without cross-validation); a loss of a source absent from the run is null; keys are
    `pack:pair`.
    """
    if not isinstance(report, dict) or report.get("kind") != TRAIN_REPORT_KIND:
        raise ContractError(where, f"kind must be {TRAIN_REPORT_KIND!r}")
    for key, kind in {"trainedAt": str, "trainSeconds": float, "device": str, "deviceSnapshot": dict,
                      "settings": dict, "featureCount": int, "sources": dict, "epochs": list,
                      "packs": dict}.items():
        _require(where, report, key, kind)
    for index, epoch in enumerate(report["epochs"]):
        context = f"epochs[{index}]: "
        _require(where, epoch, "epoch", int, context)
        for key in ("loss", "drawn"):
            missing = [name for name in TRAIN_SOURCES if name not in _require(where, epoch, key, dict, context)]
            if missing:
                raise ContractError(where, f"{context}{key} lacks {', '.join(missing)}")
    for key in ("crossValidation", "eliteAuc"):
        if key not in report:
            raise ContractError(where, f"missing field {key!r} (null when there is none)")
    for name in ("crossValidation", "crossValidationByPreset"):
        validated = report.get(name)
        if validated is None:
            continue
        context = f"{name}: "
        for key, kind in {"folds": int, "pairs": int, "chosenEpochs": int, "validationLoss": list,
                          "perFold": list, "outOfFold": list, "disagreements": list}.items():
            _require(where, validated, key, kind, context)
        for model in ("net", "ridge"):
            metrics = _require(where, validated, model, dict, context)
            for metric in ("spearman", "pearson"):
                _require_metric(where, metrics, metric, f"{context}{model}: ")
        for index, item in enumerate(validated["outOfFold"]):
            for key, kind in {"key": str, "measured": float, "net": float}.items():
                _require(where, item, key, kind, f"{context}outOfFold[{index}]: ")
    return report


# ------------------------------------------------------------------------------------ verify report

VERIFY_KIND = "coupled_verify.v0"


def load_verify_report(path: Path) -> dict:
    """Read a verify report written by `verify_pack`."""
    report = read_json(path)
    if not isinstance(report, dict) or report.get("kind") != VERIFY_KIND or not isinstance(report.get("checks"), list):
        raise ContractError(path, f"not a verify report (kind {VERIFY_KIND!r} with checks)", "rerun doit verify")
    return report
