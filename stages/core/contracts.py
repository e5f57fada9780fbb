"""The contracts between stages, defined once and validated at every boundary.

Files (seed formats from DESIGN.md, plus our additions):

- pairs manifest   `public/presets/<pack>/pairs-manifest.v0.json`   -> `load_manifest` / `Manifest`
- eval row         one JSON object per line in shards and eval.jsonl -> `validate_eval_row`, `read_rows`
- fingerprint row  one JSON object per line in fingerprint shards    -> `validate_fingerprint_row`
- meta             `artifacts/coupled-eval/<pack>/meta.json`        -> `validate_meta`
- quality file     `public/presets/<pack>/pairs-quality.v0.json`    -> `validate_quality`
- elite manifest   hand-rated pairs                                  -> `load_elite`
- ratings          `ratings.jsonl` in the workspace, from the player -> `validate_rating`, `read_ratings`
- checkpoint       `outputs/coupling/models/coupling_net_final.pth` -> `validate_checkpoint`
- training report  next to the checkpoint                            -> `validate_train_report`

Each format is a type in `core.formats` (one definition: the validator here, and the JSON Schemas that
`core.schemas` publishes); this module checks data against them and words a failure as one line, with the
few rules a type cannot say (unique pair numbers, a quality file's pairs in its manifest, an ok row's stats).

Everything JSON goes through `read_json` / `write_json` / `read_jsonl` / `append_jsonl` here, so no other
module parses these files by hand. Writes are atomic (temp file + fsync + rename); appends are flushed
and fsynced line by line, and a torn last line (a killed writer) is skipped and reported, never fatal.
"""
from __future__ import annotations

import functools
import hashlib
import math
import os
import re
import secrets
import time
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, TypeVar

import msgspec
import orjson

from ..core.errors import ContractError
from ..core.formats import (
    META_KIND,
    STAT_FIELDS,
    TRAIN_REPORT_KIND,
    TRAIN_SOURCES,
    VERIFY_KIND,
    Checkpoint,
    EliteEntry,
    EliteManifest,
    EvalMeta,
    EvalRow,
    FingerprintRow,
    ManifestPair,
    PairsManifest,
    PairsQuality,
    Rating,
    TrainReport,
    VerifyReport,
)

MANIFEST_NAME = "pairs-manifest.v0.json"
QUALITY_NAME = "pairs-quality.v0.json"
ELITE_NOT_V0 = "an elite manifest must be an object with version 'v0'"
T = TypeVar("T")

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


# ---------------------------------------------------------------------------------------- typed checks

# msgspec words a failure as `WHAT - at `$.a[0].b``; the path and the data say where, today's words say what
_FAILURE = re.compile(r"(?P<what>.*?)(?: - at `\$(?P<path>.*)`)?", re.S)
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_MISSING = re.compile(r"Object missing required field `(?P<key>[^`]+)`")
_WRONG_TYPE = re.compile(r"Expected `[^`]+`, got `[^`]+`")


@functools.cache
def _field_types(struct: type) -> dict[str, Any]:
    return typing.get_type_hints(struct, include_extras=True)


def _unwrapped(annotation) -> tuple[Any, dict]:
    """The type under `Annotated[...]` and a union with None/UNSET, plus the wording its Meta carries."""
    wording: dict = {}
    while typing.get_origin(annotation) is Annotated:
        annotation, *metas = typing.get_args(annotation)
        for meta in metas:
            wording.update(getattr(meta, "extra", None) or {})
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [member for member in typing.get_args(annotation) if member not in (type(None), msgspec.UnsetType)]
        if len(members) == 1:
            annotation, more = _unwrapped(members[0])
            wording = {**more, **wording}
    return annotation, wording


def _conforms(value: Any, kind, as_written: bool) -> bool:
    try:
        msgspec.json.decode(dumps(value), type=kind) if as_written else msgspec.convert(value, kind)
    except msgspec.ValidationError:
        return False
    return True


def _worded(failure: str, data: Any, kind: type, not_object: str, as_written: bool) -> str:
    """Today's one-line wording of a msgspec failure: `CONTEXT: missing field 'KEY'`, `CONTEXT: field 'KEY' has
    TYPE VALUE`, or the wording the failing field carries in its type (`core.formats`)."""
    match = _FAILURE.fullmatch(failure)
    what, path = match["what"], match["path"] or ""
    labels: list[str] = []
    annotation, value, key = kind, data, None
    for name, index in _STEP.findall(path):
        container, _ = _unwrapped(annotation)
        if name:
            annotation, value, key = _field_types(container)[name], value[name], name
            labels.append(name)
            continue
        element_type = typing.get_args(container)[-1]  # list[T] or dict[str, T]
        if index == "...":  # msgspec does not name the failing key of a dict: find it
            index = next((item for item, element in value.items() if not _conforms(element, element_type, as_written)),
                         next(iter(value)))
            value = value[index]
        else:
            value = value[int(index)]
        annotation, key = element_type, None
        labels[-1] += f"[{index}]"
    missing = _MISSING.fullmatch(what)
    if missing:
        struct, _ = _unwrapped(annotation)
        context = "".join(f"{label}: " for label in labels)
        field_type = _field_types(struct).get(missing["key"], Any)
        _, wording = _unwrapped(field_type)
        template = wording.get("invalid") or wording.get("missing") or "{context}missing field '{key}'"
        return template.format(context=context, key=missing["key"], value=None)
    if not labels:
        return not_object or "must be a JSON object"
    if key is None:  # an element of a list or dict
        context = "".join(f"{label}: " for label in labels)
        return f"{context}must be an object" if what.startswith("Expected `object`") else f"{context}{what}"
    _, wording = _unwrapped(annotation)
    context = "".join(f"{label}: " for label in labels[:-1])
    if "invalid" in wording:
        return wording["invalid"].format(context=context, key=key, value=value)
    if isinstance(value, float) and not math.isfinite(value):
        return f"{context}field '{key}' is {value}"
    if _WRONG_TYPE.match(what):
        return f"{context}field '{key}' has {type(value).__name__} {value!r}"
    if "violated" in wording:
        return wording["violated"].format(context=context, key=key, value=value)
    return f"{context}field '{key}': {what}"


def typed(where, data: Any, kind: type[T], not_object: str = "", as_written: bool = False) -> T:
    """`data` (decoded JSON) as the type `kind` of `core.formats`; a failure is a one-line ContractError.

    `as_written` checks the JSON that `write_json` makes of `data` (numpy numbers as numbers, NaN as null),
    for what the tool writes from Python; otherwise `data` is checked as it is (what was read)."""
    try:
        if as_written:
            return msgspec.json.decode(dumps(data), type=kind)
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as error:
        try:
            problem = _worded(str(error), data, kind, not_object, as_written)
        except (AttributeError, IndexError, KeyError, StopIteration, TypeError):
            problem = str(error)  # msgspec's words are not an API: a wording we cannot read is shown as it is
        raise ContractError(where, problem) from None


# ---------------------------------------------------------------------------------------- manifest


@dataclass
class Manifest:
    path: Path
    pack: str
    pairs: list[ManifestPair]
    generatedAt: str = ""

    def to_json(self) -> dict:
        return {"version": "v0", "generatedAt": self.generatedAt or now_iso(), "pack": self.pack,
                "pairs": msgspec.to_builtins(self.pairs)}


def parse_manifest(path: Path, data: Any) -> Manifest:
    where = Path(path)
    manifest = typed(where, data, PairsManifest, "a pairs manifest must be a JSON object")
    seen: set[int] = set()
    for index, entry in enumerate(manifest.pairs):
        if entry.pair in seen:
            raise ContractError(where, f"pairs[{index}]: pair {entry.pair} appears twice")
        seen.add(entry.pair)
    return Manifest(where, manifest.pack, manifest.pairs, manifest.generatedAt)


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


# ---------------------------------------------------------------------------------------- rows


def validate_eval_row(row: Any, where="eval row") -> dict:
    """Check one eval row against `formats.EvalRow`; return it unchanged (unknown keys kept, unchecked)."""
    typed(where, row, EvalRow, "an eval row must be a JSON object")
    if row["status"] == "ok":
        missing = [name for name in STAT_FIELDS if name not in row["stats"]]
        if missing:
            raise ContractError(where, f"stats lack {', '.join(missing)}")
    return row


def validate_fingerprint_row(row: Any, where="fingerprint row") -> dict:
    """Check one fingerprint row against `formats.FingerprintRow`; return it unchanged."""
    typed(where, row, FingerprintRow, "a fingerprint row must be a JSON object")
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


# ---------------------------------------------------------------------------------------- meta & quality


def validate_meta(meta: Any, where="meta.json") -> dict:
    typed(where, meta, EvalMeta, f"kind must be {META_KIND!r}", as_written=True)
    return meta


def validate_quality(quality: Any, where="pairs-quality.v0.json", manifest: Manifest | None = None) -> dict:
    typed(where, quality, PairsQuality, "version must be 'v0'", as_written=True)
    if manifest is not None and quality["pack"] != manifest.pack:
        raise ContractError(where, f"pack is {quality['pack']!r} but the manifest's pack is {manifest.pack!r}")
    known = {entry.pair for entry in manifest.pairs} if manifest is not None else None
    seen = set()
    for index, item in enumerate(quality["pairs"]):
        pair = item["pair"]
        if pair in seen or (known is not None and pair not in known):
            raise ContractError(where, f"pairs[{index}]: pair {pair} is duplicated or not in the manifest")
        seen.add(pair)
    return quality


# --------------------------------------------------------------------------------- elite & ratings


def load_elite(path: Path) -> list[EliteEntry]:
    """Read an elite manifest `{version:"v0", entries:[{fgUrl, bgUrl, score:1..5}]}`."""
    return typed(path, read_json(path), EliteManifest, ELITE_NOT_V0).entries


def validate_rating(rating: Any, where="rating") -> dict:
    """A rating the player appends to `ratings.jsonl` (`formats.Rating`); returned unchanged."""
    typed(where, rating, Rating, "a rating must be a JSON object")
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


def validate_checkpoint(checkpoint: Any, where="checkpoint") -> dict:
    """A checkpoint carries all scoring needs: weights, feature names + normalisation, config, versions."""
    typed(where, checkpoint, Checkpoint, "a checkpoint must be a dict saved with torch.save")
    size = len(checkpoint["featureNames"])
    if len(checkpoint["featureMean"]) != size or len(checkpoint["featureStd"]) != size:
        raise ContractError(where, "feature normalisation does not match the feature names")
    return checkpoint


# ---------------------------------------------------------------------------------- training report


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
    `pack:pair`. `formats.TrainReport` types the fields checked.
    """
    typed(where, report, TrainReport, f"kind must be {TRAIN_REPORT_KIND!r}", as_written=True)
    for index, epoch in enumerate(report["epochs"]):
        for key in ("loss", "drawn"):
            missing = [name for name in TRAIN_SOURCES if name not in epoch[key]]
            if missing:
                raise ContractError(where, f"epochs[{index}]: {key} lacks {', '.join(missing)}")
    return report


# ------------------------------------------------------------------------------------ verify report


def load_verify_report(path: Path) -> dict:
    """Read a verify report written by `verify_pack`."""
    report = read_json(path)
    try:
        typed(path, report, VerifyReport)
    except ContractError:
        raise ContractError(path, f"not a verify report (kind {VERIFY_KIND!r} with checks)", "rerun doit verify") from None
    return report
