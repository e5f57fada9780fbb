"""Every knob of the runbook, with its default, in one place.

In: doit task parameters (`doit sample --target-coverage 0.99 --workers 2`), whose defaults come from
these dataclasses, overridden for every task at once (so `sample` and `merge` agree) in `pyproject.toml`
under `[tool.coupled-quality.sample]` / `[...train]`, then in the workspace's `coupled-quality.toml`.
The workspace config is the one source of truth: a value given on the command line for a knob that decides
an artifact is saved there before it is used (`TaskParams.settings`), so `merge` and `train` in the same or
a later run see the value `sample` used. Knobs marked `per_run` (workers, max_hours, ...) only shape one run.
Out: frozen settings objects the stages take, plus `key()` hashes of the parts that decide an artifact
(a changed pixel setting re-renders; a changed trainer knob retrains without resampling).
"""
from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field, fields

from ..core.contracts import value_hash
from ..core.errors import CqError
from ..core.lock import hold_workspace
from ..core.uptodate import described
from ..core.workspace import Workspace, save_settings, settings_config, workspace_config

GPU_MODES = ("off", "safe", "require")
EXECUTORS = ("local", "dask")
ALL_GPUS = "all"


def gpu_request(text: str) -> str | tuple[int, ...] | None:
    """What the `gpus` setting asks for: None (empty or none: as without it), ALL_GPUS, or NVML indices."""
    cleaned = text.strip().lower()
    if cleaned in ("", "none"):
        return None
    if cleaned == ALL_GPUS:
        return ALL_GPUS
    parts = [part.strip() for part in cleaned.split(",")]
    if not all(part.isdecimal() and part.isascii() for part in parts):
        raise CqError(f"--gpus {text!r}: give all, none, or a comma list of GPU indices such as 0,1")
    return tuple(sorted({int(part) for part in parts}))


def _param(default, help_text: str, **extra):
    """A knob; `at_least` / `below` / `at_most` bound its value (checked by `check_ranges`)."""
    return field(default=default, metadata={"help": help_text, **extra})


def check_ranges(settings):
    """CqError (one line) for the first knob outside the bounds its field declares; else `settings`."""
    for item in fields(settings):
        value, bounds = getattr(settings, item.name), item.metadata
        if not bounds.keys() & {"at_least", "below", "at_most"}:
            continue
        option = f"--{item.name.replace('_', '-')} {value:g}"
        if "at_least" in bounds and value < bounds["at_least"]:
            raise CqError(f"{option} must be >= {bounds['at_least']:g}")
        if "below" in bounds and value >= bounds["below"]:
            raise CqError(f"{option} must be below {bounds['below']:g}")
        if "at_most" in bounds and value > bounds["at_most"]:
            raise CqError(f"{option} must be <= {bounds['at_most']:g}")
    return settings


@dataclass(frozen=True)
class RenderSettings:
    """Settings that change the pixels of a pair: part of every row's content key."""

    width: int = _param(128, "render width in pixels")
    height: int = _param(128, "render height in pixels")
    frames: int = _param(120, "frames rendered per pair")
    dt: float = _param(1 / 30, "fixed time step per frame, seconds")
    seed: int = _param(1, "seed of butterchurn's deterministic RNG")
    fg_opacity: float = _param(0.7, "opacity of the fg layer over bg (the original runtime's 0.7)")
    blend: str = _param("normal", "how fg is composited over bg: normal | screen | add")
    readback: int = _param(64, "size of the square downsample read back each frame")
    thumb_frame: int = _param(-1, "frame captured as the pair's thumbnail (-1: the middle frame)")


@dataclass(frozen=True)
class SampleSettings(RenderSettings):
    """The sampler's knobs: render settings plus how the run is organised."""

    packs: str = _param("", "comma-separated packs to sample (empty: every pack in the workspace)", per_run=True)
    target_coverage: float = _param(1.0, "fraction of each pack's pairs to sample (TargetCoverage)")
    max_hours: float = _param(10.0, "stop sampling cleanly after this many hours (MaxHours)", per_run=True)
    workers: int = _param(0, "browser processes, one page each (0: one per CPU core)", per_run=True)
    # Fixed, not derived from workers: the shards (and so the doit tasks and their keys) of a pack must not
    # change when the same workspace is sampled on a machine with another core count.
    shard_size: int = _param(50, "pairs per shard task")
    shuffle_seed: int = _param(7, "seed of the shuffled sampling order")
    reload_every: int = _param(200, "restart a worker's browser every N pairs (ReloadEvery)", per_run=True)
    browser_max_restarts: int = _param(20, "give up after this many browser restarts (BrowserMaxRestarts)",
                                       per_run=True)
    pair_timeout_s: float = _param(60.0, "time limit for one pair, seconds", per_run=True)
    # 400 (measured, bench/benchmark.py): no demo pair reached it on 2 busy software cores (max 174 ms); of
    # 539 bench-pack pairs under 16 browsers on one H200 it cuts 19 (3.5%; 250 would cut ~5.6%, over the
    # 5% the issue allows). A pair that cannot reach 2.5 fps at the sampling size is no pair for a live show.
    max_frame_ms: float = _param(400.0, "render-cost cap: a pair whose frames cost more than this many ms each "
                                        "(wall, both layers, at the sampling size) stops early as too-heavy "
                                        "(0: no cap)")
    gpu_mode: str = _param("off", "WebGL: off (software) | safe (try hardware) | require (fail on software)")
    chromium: str = _param("", "path of a Chromium to use (empty: Playwright's, then the system's)")
    headed: bool = _param(False, "show the browser window", per_run=True)
    audio_file: str = _param("", "audio file the visuals react to (WAV, AIFF, FLAC, OGG, MP3, ...; empty: built-in click track)")
    allow_degraded: bool = _param(False, "sample .milk presets whose shader failed to translate, with "
                                         "butterchurn's default shader instead (rows say 'degraded')")
    min_luma: float = _param(0.06, "okHeuristic: mean luma below this is too-dark")
    max_luma: float = _param(0.90, "okHeuristic: mean luma above this is too-bright")
    min_motion: float = _param(0.004, "okHeuristic: mean frame-to-frame change below this is low-motion")
    max_flicker: float = _param(0.15, "okHeuristic: flicker above this is strobing")
    min_audio_corr: float = _param(0.0, "okHeuristic: correlation of motion with audio energy below this is deaf")
    min_layer_share: float = _param(0.05, "okHeuristic: a layer showing less than this share is drowned")
    stats_warmup: float = _param(0.1, "fraction of the first frames left out of the statistics (fade-in from black)")
    executor: str = _param("local", "where pairs are rendered: local (this machine's browsers) | dask (the "
                                    "workers of a Dask cluster at --address; install the `cluster` extra)",
                             per_run=True)
    address: str = _param("", "the Dask scheduler for executor dask, HOST:PORT or tcp://HOST:PORT", per_run=True)
    # Per run: pinning moves work between identical GPUs without changing a pixel, and the renderer it gives
    # is in every row's content key anyway.
    gpus: str = _param("", "GPUs of this host (of each Dask worker's host) to render on, one browser group per GPU, "
                           "each pinned to its GPU: all | a comma list of NVML indices, e.g. 0,1 (empty or none: "
                           "every browser where the driver puts it, GPU 0)", per_run=True)

    def validate(self) -> "SampleSettings":
        if self.gpu_mode not in GPU_MODES:
            raise CqError(f"gpu_mode {self.gpu_mode!r} is not one of {', '.join(GPU_MODES)}")
        if not 0 < self.target_coverage <= 1:
            raise CqError(f"--target-coverage {self.target_coverage:g} must be in (0, 1]: the fraction of each "
                          "pack's pairs to sample, e.g. 0.99")
        if self.shard_size < 1 or self.frames < 2 or self.width < 8 or self.height < 8:
            raise CqError(f"--frames {self.frames}, --width {self.width}, --height {self.height}, --shard-size "
                          f"{self.shard_size}: frames must be >= 2, the render size >= 8 pixels and "
                          "shard_size >= 1")
        if self.workers < 0:
            raise CqError(f"--workers {self.workers}: give a number of browsers >= 1, or 0 for one per CPU core")
        if self.pair_timeout_s <= 0 or self.max_hours <= 0:
            raise CqError(f"--pair-timeout-s {self.pair_timeout_s:g} and --max-hours {self.max_hours:g} "
                          "must be > 0")
        if self.max_frame_ms < 0:
            raise CqError(f"--max-frame-ms {self.max_frame_ms:g} must be >= 0 (0: no cap)")
        if self.blend not in ("normal", "screen", "add"):
            raise CqError(f"blend {self.blend!r} is not one of normal, screen, add")
        if self.executor not in EXECUTORS:
            raise CqError(f"executor {self.executor!r} is not one of {', '.join(EXECUTORS)}")
        if self.executor == "dask" and not self.address:
            raise CqError("executor dask needs the scheduler's address: --address HOST:PORT (or address = "
                          "\"HOST:PORT\" under [sample] in coupled-quality.toml)")
        if gpu_request(self.gpus) is not None and self.gpu_mode == "off":
            raise CqError(f"--gpus {self.gpus} pins browsers to GPUs, but gpu_mode is off (software WebGL): use "
                          "gpu_mode safe or require")
        return self

    @property
    def worker_count(self) -> int:
        return self.workers if self.workers > 0 else (os.cpu_count() or 1)

    @property
    def pack_list(self) -> list[str]:
        return [name.strip() for name in self.packs.split(",") if name.strip()]

    def render(self) -> RenderSettings:
        return RenderSettings(**{f.name: getattr(self, f.name) for f in fields(RenderSettings)})

    def render_key(self) -> str:
        return value_hash(dataclasses.asdict(self.render()))


@dataclass(frozen=True)
class TrainSettings:
    """The trainer's and scorer's knobs (changing one retrains and rescores, never resamples)."""

    epochs: int = _param(20, "most training epochs (Epochs); k-fold validation picks how many the final fit runs",
                         at_least=1)
    batch_size: int = _param(256, "batch size (BatchSize)", at_least=1)
    learning_rate: float = _param(2e-3, "AdamW learning rate (LearningRate)", at_least=0)
    extra_eval_weight: float = _param(0.35, "loss weight of eval rows (ExtraEvalWeight)", at_least=0)
    # 0 (measured on the 1,200-pair evaluation pack, bench/evalpack.py): a mismatched pair labelled 0 is often
    # one that measures well, so negatives taught the net to distrust what the fingerprints show. At 50,000
    # the out-of-fold Spearman fell from 0.95 to 0.76 by pair and from 0.93 to 0.57 by preset.
    neg_samples: int = _param(0, "mismatched negative pairs per pack, target 0 (NegSamples; the runbook's 50000 "
                                 "teaches that mismatched means bad, which fingerprints show is often false)",
                              at_least=0)
    neg_weight: float = _param(0.20, "loss weight of negatives (NegWeight)", at_least=0)
    neg_min_pair_distance: int = _param(50, "negatives pair fg_i with bg_j, |i-j| >= this (NegMinPairDistance)",
                                        at_least=0)
    elite_path: str = _param("", "elite manifest, relative to the workspace (empty: elite.json there, skipped if absent)")
    folds: int = _param(5, "k of the k-fold cross-validation by pair (folds below 2 skip it)", at_least=0)
    hidden: int = _param(32, "hidden units per layer of the coupling net", at_least=1)
    layers: int = _param(2, "hidden layers of the coupling net", at_least=1)
    dropout: float = _param(0.2, "dropout after each hidden layer", at_least=0, below=1)
    weight_decay: float = _param(0.05, "AdamW weight decay (strong: eval sets are small and must not be memorised)",
                                 at_least=0)
    share_elite: float = _param(0.25, "share of drawn examples from elite pairs (shares are renormalised over "
                                      "the sources present)", at_least=0)
    share_eval: float = _param(0.25, "share of drawn examples from eval rows", at_least=0)
    share_neg: float = _param(0.50, "share of drawn examples from mismatched negatives", at_least=0)
    model_share: float = _param(0.2, "score of a sampled pair: measured x (1 - s + s x model), s = this share",
                                at_least=0, at_most=1)
    rating_share: float = _param(0.5, "score of a rated pair: moved this share of the way to its rating",
                                 at_least=0, at_most=1)
    seed: int = _param(0, "training seed")
    require_cuda: bool = _param(False, "fail fast when no CUDA GPU is present", per_run=True)
    min_quality_std: float = _param(0.03, "gate: qualityStats.std must reach this (MinQualityStd)", at_least=0)
    threads: int = _param(1, "CPU threads for training (a small net trains fastest on one, and shares the CPU)",
                          at_least=1)

    def validate(self) -> "TrainSettings":
        return check_ranges(self)

    def key(self) -> str:
        return artifact_key(self)


@dataclass(frozen=True)
class VerifySettings:
    """The gate's knobs (`doit verify --picks N --seconds S ...`)."""

    picks: int = _param(5000, "fast picks the page makes by the quality rule (cheap: no rendering)", at_least=1)
    seconds: float = _param(4.0, "real-time playback sampled for non-blank, changing frames", at_least=0.1)
    min_pick_ratio: float = _param(1.5, "the most the top/bottom-quartile pick ratio is asked to reach", at_least=0)
    seed: int = _param(1, "seed of the page's pick RNG, so a verify run is reproducible")
    width: int = _param(320, "player viewport width in pixels", at_least=16)
    height: int = _param(240, "player viewport height in pixels", at_least=16)
    timeout_s: float = _param(120.0, "time limit for the whole player run, seconds", per_run=True, at_least=1)
    chromium: str = _param("", "Chromium executable (empty: the sampler's, then $CQ_CHROMIUM, Playwright's, "
                               "the system's)")
    gpu: bool = _param(False, "hardware WebGL flags ($CQ_CHROMIUM_GPU_ARGS or ANGLE on Vulkan); on by itself "
                              "when the sampler's gpu_mode is safe or require")

    def validate(self) -> "VerifySettings":
        return check_ranges(self)

    def with_browser_of(self, sample: "SampleSettings") -> "VerifySettings":
        """The player runs in the browser the sampler uses (same executable, same WebGL flags), so verify
        works wherever sampling does (a GPU host whose only Chromium is the headless shell)."""
        return dataclasses.replace(self, chromium=self.chromium or sample.chromium,
                                   gpu=self.gpu or sample.gpu_mode in ("safe", "require"))


def artifact_key(settings) -> str:
    """A hash of the knobs that decide what a task makes (not those that only shape one run), which names
    them for `info`."""
    knobs = {item.name: getattr(settings, item.name) for item in fields(settings) if not item.metadata.get("per_run")}
    return described(value_hash(knobs), knobs)


CONFIG_SECTIONS = {"SampleSettings": "sample", "TrainSettings": "train", "VerifySettings": "verify"}
SECTION_CLASSES = {"sample": SampleSettings, "train": TrainSettings, "verify": VerifySettings}
KINDS = {bool: "true or false", int: "a whole number", float: "a number", str: "a quoted string"}


def _closest(name: str, known) -> str:
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f"did you mean {match[0]!r}?" if match else f"known: {', '.join(known)}"


def _fits(value, kind) -> bool:
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def check_config(config: dict, where) -> None:
    """Check a settings file like any input: every section and key known (an unknown one named with the
    closest valid name), every value of its knob's type and in its range. CqError (one line) on the first
    problem, naming the file."""
    for section, values in config.items():
        if section not in SECTION_CLASSES:
            raise CqError(f"{where}: unknown section [{section}] ({_closest(section, SECTION_CLASSES)})")
        if not isinstance(values, dict):
            raise CqError(f"{where}: {section} = {values!r}: [{section}] is a section of settings, not a value")
        cls = SECTION_CLASSES[section]
        kinds = {item.name: type(item.default) for item in fields(cls)}
        for name, value in values.items():
            if name not in kinds:
                raise CqError(f"{where}: unknown setting {name!r} in [{section}] ({_closest(name, kinds)})")
            if not _fits(value, kinds[name]):
                raise CqError(f"{where}: [{section}] {name} = {value!r}: must be {KINDS[kinds[name]]}")
        try:
            cls(**values).validate()
        except CqError as error:
            raise CqError(f"{where}: [{section}]: {error}") from None


def checked_config(workspace: Workspace) -> dict:
    """`settings_config` after `check_config` of the workspace's own file."""
    check_config(workspace_config(workspace), workspace.config_path)
    return settings_config(workspace)


class TaskParams:
    """A settings class as doit task parameters (`--target-coverage`, `--workers`, ...), with the workspace
    config as the one source of truth.

    The parameters' defaults are the dataclass's overridden by the configured ones, as loaded when doit
    reads the task graph; `doit help TASK` shows them.
    """

    def __init__(self, cls, workspace: Workspace):
        self.cls, self.workspace = cls, workspace
        self.section = CONFIG_SECTIONS[cls.__name__]
        self.loaded = self._configured()

    def _configured(self) -> dict:
        config = checked_config(self.workspace).get(self.section, {})
        return {item.name: config.get(item.name, item.default) for item in fields(self.cls)}

    def specs(self) -> list[dict]:
        """doit `task_params` specs."""
        specs = []
        for item in fields(self.cls):
            kind = type(item.default)
            help_text = item.metadata.get("help", "").replace("%", "%%")
            specs.append({"name": item.name, "long": item.name.replace("_", "-"), "default": self.loaded[item.name],
                          "type": kind if kind in (bool, int, float) else str,
                          "help": f"{help_text} [default: %(default)r]"})
        return specs

    def settings(self, params: dict):
        """The settings of a task: the workspace config as it is now, plus the values given on this command
        line (those that differ from the loaded defaults). A given knob that decides an artifact is saved
        to the workspace config first, so every task of this run and of later runs uses the same value."""
        given = {name: value for name, value in params.items()
                 if name in self.loaded and value != self.loaded[name]}
        current = self._configured()
        chosen = self.cls(**{**current, **given})
        chosen.validate()
        per_run = {item.name for item in fields(self.cls) if item.metadata.get("per_run")}
        changed = {name: value for name, value in given.items() if name not in per_run and current[name] != value}
        if changed:
            hold_workspace(self.workspace)  # a run another run refuses must not change that run's knobs
            save_settings(self.workspace, self.section, changed)
            listed = ", ".join(f"{name} = {value!r}" for name, value in changed.items())
            print(f"saved {listed} to [{self.section}] in {self.workspace.config_path}: every task uses it "
                  f"from now on (edit that file to change it)", flush=True)
        return chosen


def configured(cls, workspace: Workspace):
    """A settings object with a workspace's configured values (pyproject, workspace toml), no command line."""
    return from_params(cls, checked_config(workspace).get(CONFIG_SECTIONS[cls.__name__], {}))


def from_params(cls, params: dict):
    """Build a settings object from a dict of values (unknown keys ignored)."""
    names = {item.name for item in fields(cls)}
    return cls(**{key: value for key, value in params.items() if key in names})
