"""The product's file formats as types: each defined once here, validated by msgspec, published as JSON Schema.

`core.contracts` validates every boundary with these types and words a failure as the one-line
ContractError a user acts on. Every object type tolerates unknown keys (a reader keeps them, unchecked), so a
new optional field is one line in its type: `name: T | UnsetType = UNSET` (absent, or checked when present).

A field's `Meta(extra=...)` may word its own failure (formatted with `context`, `key` and `value`):
`missing` when it is absent, `violated` when its value has the right type but breaks the constraint,
`invalid` for any failure of the field. Without one, `contracts` says `missing field 'KEY'`,
`field 'KEY' has TYPE VALUE` or the constraint.

`core.schemas` publishes the JSON Schemas of the files others read (the manifest and the quality file).
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from msgspec import UNSET, Meta, Struct, UnsetType

# ------------------------------------------------------------------------------------------ pairs manifest

WebPath = Annotated[str, Meta(pattern="^/", extra={"violated": "{context}URL {value!r} must be a web path starting with '/'"},
                              description="a web path resolved against public/, like /presets/<pack>/fg/<file>.milk")]
PackName = Annotated[str, Meta(pattern=r"^(?!\.\.?$)[^/\\]+$", description="the pack's folder name under public/presets/",
                               extra={"violated": "pack name {value!r} is not a plain folder name"})]


class ManifestPair(Struct, frozen=True, omit_defaults=True):
    """One fg/bg pair of a pack."""

    pair: int
    fgUrl: WebPath
    bgUrl: WebPath
    warp_diff: Annotated[float | None, Meta(description="fg.warp - bg.warp, from the pack's generator")] = None
    cx_diff: Annotated[float | None, Meta(description="fg.cx - bg.cx, from the pack's generator")] = None


class PairsManifest(Struct, kw_only=True):
    """`public/presets/<pack>/pairs-manifest.v0.json`: a pack's pairs (pair numbers are unique)."""

    version: Annotated[Literal["v0"], Meta(extra={"invalid": "version is {value!r}, expected 'v0'"})]
    generatedAt: str = ""
    pack: PackName
    pairs: list[ManifestPair]


# ------------------------------------------------------------------------------------------ quality file

Score01 = Annotated[float, Meta(ge=0, le=1, description="the pair's quality: 0 bad, 1 good",
                                extra={"violated": "{context}quality01 {value} is outside [0, 1]"})]


class QualityPair(Struct, kw_only=True):
    """One scored manifest pair."""

    pair: Annotated[int, Meta(description="the manifest's pair number")]
    quality01: Score01
    basis: Annotated[Literal["measured", "model"], Meta(description="what decided the score")] | UnsetType = UNSET
    measured: Annotated[float, Meta(description="the quality measured from the pair's eval row")] | UnsetType = UNSET
    rating: Annotated[float, Meta(description="the user's rating mapped to [0, 1]")] | UnsetType = UNSET


class QualityStats(Struct, kw_only=True):
    """The distribution of quality01 over the file's pairs."""

    min: float
    p50: float
    p95: float
    max: float
    std: float
    mean: float


class ScoringStats(Struct, kw_only=True):
    """How the scores came about."""

    missingFiles: Annotated[int, Meta(description="pairs left out: a preset file is missing")]
    unreadableFiles: Annotated[int, Meta(description="pairs left out: a preset file cannot be read")] | UnsetType = UNSET
    manifestPairs: int | UnsetType = UNSET
    scoredPairs: int | UnsetType = UNSET
    sampledPairs: Annotated[int, Meta(description="pairs with a measurement (an eval row)")] | UnsetType = UNSET
    evalCoverage: Annotated[float, Meta(description="sampledPairs / manifestPairs")] | UnsetType = UNSET
    sampledSpearman: Annotated[float | None, Meta(
        description="rank correlation of the scores with the measured quality over the sampled pairs")] | UnsetType = UNSET
    flaggedInTopDecile: Annotated[list[int], Meta(
        description="pairs scored in the top decile although they failed, are too dark, frozen or too heavy")] | UnsetType = UNSET
    gateFailures: Annotated[list[str], Meta(description="only in a rejected file: the gates it failed")] | UnsetType = UNSET


class PairsQuality(Struct, kw_only=True):
    """`public/presets/<pack>/pairs-quality.v0.json`: per-pair scores for the runtime. `pack` is the manifest's
    pack; one entry per manifest pair that could be scored."""

    version: Annotated[Literal["v0"], Meta(extra={"invalid": "version must be 'v0'"})]
    pack: PackName
    generatedAt: str
    pairs: list[QualityPair]
    qualityStats: QualityStats
    stats: ScoringStats


QUALITY_STAT_FIELDS = QualityStats.__struct_fields__

# ------------------------------------------------------------------------------------------ eval rows

RowStatus = Literal["ok", "load-failed", "shader-failed", "eel-error", "timeout", "crashed", "black",
                    "read-failed", "translate-failed", "degraded", "missing-file", "too-heavy"]
ROW_STATUSES: tuple[str, ...] = get_args(RowStatus)
Status = Annotated[RowStatus, Meta(extra={"violated": f"status {{value!r}} is not one of {', '.join(ROW_STATUSES)}"})]
# Richer statistics over the composited 64x64 frames (all in [0,1] unless noted); an ok row has them all.
STAT_FIELDS = (
    "lumaMean", "lumaMin", "contrast", "colourfulness", "motionMean", "motionP90", "flicker",
    "blackFrac", "whiteFrac", "audioCorr",  # audioCorr in [-1,1]
    "fgShare", "bgShare",
)


class EvalRow(Struct, kw_only=True):
    """One sampled pair: a line of a shard or of eval.jsonl. The seed's fields first, kept exactly (never a
    row with pair:null), then ours: what makes a row trustworthy and useful."""

    tMs: int
    pack: str
    pair: int
    presetFgId: str
    presetBgId: str
    vizAvgLuma: float
    vizAvgFrameDelta: float
    pmAvgLumaFg: float
    pmAvgLumaBg: float
    audioRms: Annotated[float, Meta(gt=0, extra={
        "violated": "audioRms must be > 0: the visuals were rendered without audio"})]
    audioPeak: float
    pageErrorsSinceLast: int
    consoleErrorsSinceLast: int
    okHeuristic: bool
    reasons: list
    contentKey: str  # hash of fgHash, bgHash, render settings, engine and renderer
    fgHash: str
    bgHash: str
    status: Status
    render: dict  # the settings that change pixels (size, frames, dt, seed, blend, audio key)
    engine: str  # page + butterchurn version
    renderer: str  # WebGL UNMASKED_RENDERER
    errors: list  # shader link / EEL / page errors, as text
    # the page's (createMs, loadMs, renderMs, frameMs, peakFrameMs, ...) and the pool's: pairMs, maxFrameMs (the
    # cost cap the status was judged under, 0: none), alone (nothing else in flight on the pool), sharedFrameMs
    # (a pair cut under load and judged again alone); empty for a row that was never rendered. core.rows
    # judges rows again by them.
    timings: dict
    stats: dict  # STAT_FIELDS, empty when the pair did not render
    attempts: int
    sampledAt: str
    thumb: str  # PNG of the composite at a fixed frame, relative to the pack's eval dir ("" if none)
    # Fields rows written before them lack: checked when present.
    node: str | UnsetType = UNSET  # where it was rendered: "local", or the Dask worker's address
    gpu: str | UnsetType = UNSET  # the GPU its browser was pinned to, "INDEX:UUID" (the gpus setting), else ""


class FingerprintRow(Struct, kw_only=True):
    """One preset rendered alone: a line of a fingerprint shard."""

    presetId: str  # the file name it was rendered from (any file with the same content shares the row)
    presetHash: str  # keys.preset_identity of the file
    contentKey: str  # keys.fingerprint_key: preset, layer render settings, audio, engine, renderer
    status: Status
    errors: list
    engine: str
    renderer: str
    render: dict
    timings: dict  # as an eval row's (the layer's cost, its cap, alone or not)
    attempts: int
    sampledAt: str
    node: str
    thumb: str  # PNG of the layer at the thumbnail frame, relative to the fingerprints dir ("" if none)
    fingerprint: dict  # render.fingerprint's fields, empty unless status is ok


# ------------------------------------------------------------------------------------------ meta

META_KIND = "coupled_eval.v0"
MetaKind = Annotated[Literal["coupled_eval.v0"], Meta(extra={"invalid": f"kind must be {META_KIND!r}"})]


class Progress(Struct):
    visited: int
    target: int
    done: int | bool


class Audio(Struct):
    mode: Annotated[Literal["file", "click"], Meta(extra={"violated": "audio.mode must be 'file' or 'click'"})]


RuntimeValue = Annotated[Any, Meta(extra={"missing": "runtime lacks '{key}'"})]


class Runtime(Struct):
    gpuMode: RuntimeValue
    headed: RuntimeValue
    requireGpu: RuntimeValue
    webgl: RuntimeValue


class EvalMeta(Struct, kw_only=True):
    """`artifacts/coupled-eval/<pack>/meta.json`: the run that sampled a pack."""

    kind: MetaKind
    startedAt: str
    finishedAt: str
    settings: dict
    progress: dict[str, Progress]
    audio: Audio
    runtime: Runtime
    errors: list


# ------------------------------------------------------------------------------------------ elite & ratings

Stars = Annotated[float, Meta(ge=1, le=5, extra={"violated": "{context}score {value} is outside 1..5"})]


class EliteEntry(Struct, frozen=True):
    """A hand-rated pair."""

    fgUrl: str
    bgUrl: str
    score: Stars


class EliteManifest(Struct):
    """`{version:"v0", entries:[{fgUrl, bgUrl, score:1..5}]}`."""

    version: Annotated[Literal["v0"], Meta(extra={"invalid": "an elite manifest must be an object with version 'v0'"})]
    entries: list[EliteEntry]


class Rating(Struct, kw_only=True):
    """A rating the player appends to `ratings.jsonl`: the user's 1..5 for one pair. The player's server also
    writes `ratingId` (one per keypress), so a retried POST is recorded once."""

    pack: str
    pair: int
    fgUrl: str
    bgUrl: str
    score: Annotated[int, Meta(ge=1, le=5, extra={"violated": "score {value} is outside 1..5"})]
    ratedAt: str


# ------------------------------------------------------------------------------------------ checkpoint


class Checkpoint(Struct, kw_only=True):
    """The torch.save'd dict scoring needs: weights, feature names + normalisation, config, versions."""

    weights: dict
    featureNames: list
    featureMean: list
    featureStd: list
    config: dict
    codeVersion: str
    torchVersion: str


# ------------------------------------------------------------------------------------------ training report

TRAIN_REPORT_KIND = "coupling_train.v0"
TRAIN_SOURCES = ("elite", "eval", "neg")


class Interval(Struct):
    """A metric with its bootstrap 95% interval."""

    value: float
    lo: float
    hi: float


MetricOrNull = Annotated[Interval | None, Meta(extra={"missing": "{context}lacks '{key}'"})]


class ModelMetrics(Struct):
    spearman: MetricOrNull
    pearson: MetricOrNull


class OutOfFold(Struct):
    key: str  # pack:pair
    measured: float
    net: float


class CrossValidation(Struct, kw_only=True):
    folds: int
    pairs: int
    chosenEpochs: int
    validationLoss: list
    perFold: list
    outOfFold: list[OutOfFold]
    disagreements: list
    net: ModelMetrics
    ridge: ModelMetrics


class Epoch(Struct, kw_only=True):
    epoch: int
    loss: dict  # per source (TRAIN_SOURCES) and total; null for a source absent from the run
    drawn: dict  # per source


NullWhenNone = Meta(extra={"missing": "missing field '{key}' (null when there is none)"})


class TrainReport(Struct, kw_only=True):
    """The trainer's report next to the checkpoint; see `contracts.validate_train_report` for every field."""

    kind: Annotated[Literal["coupling_train.v0"], Meta(extra={"invalid": f"kind must be {TRAIN_REPORT_KIND!r}"})]
    trainedAt: str
    trainSeconds: float
    device: str
    deviceSnapshot: dict
    settings: dict
    featureCount: int
    sources: dict
    epochs: list[Epoch]
    packs: dict
    crossValidation: Annotated[CrossValidation | None, NullWhenNone]
    eliteAuc: Annotated[Any, NullWhenNone]
    crossValidationByPreset: CrossValidation | None | UnsetType = UNSET  # absent in reports from before it


# ------------------------------------------------------------------------------------------ verify report

VERIFY_KIND = "coupled_verify.v0"


class VerifyReport(Struct, kw_only=True):
    kind: Literal["coupled_verify.v0"]
    checks: list
