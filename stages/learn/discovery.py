"""Pair discovery: score every fg x bg pair of a library with the model, streaming, and pick the best.

In: the library's preset vectors (`features.FeatureCache`: text + fingerprint), their content identities
(a preset is never paired with a copy of itself), a scorer (`checkpoint.Scorer.predict`), the sampler's
settings (the composite estimate follows them) and `DiscoverSettings`.
Out: `Discovery`: the picked pairs (index of fg, index of bg, predicted quality), best first; for each fg
its best backgrounds; how many pairs were scored and how fast.

How: N presets make N x (N - 1) pairs; they are never all in memory. Pair vectors are built and scored
for a block of fg presets against every bg (about BLOCK_PAIRS at a time), and only the best CANDIDATES
pairs seen so far are kept, plus each fg's best `per_fg`. The pick is then greedy down the candidates:
a pair is taken unless its fg or its bg is already in `max_per_preset` picked pairs (as fg or bg), so no
preset floods the result.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..core.progress import Progress
from ..core.settings import SampleSettings
from ..learn.features import pair_features

BLOCK_PAIRS = 16_000   # pair vectors scored at once: a few hundred MB of working memory
MIN_CANDIDATES = 5_000  # best pairs kept while streaming, at least; more when K or the limit asks for it


def _param(default, help_text: str):
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class DiscoverSettings:
    """`doit discover --folder LIBRARY` / `coupled-quality discover LIBRARY`: one run's knobs, never saved."""

    folder: str = _param("", "a folder of .milk and .json presets (only its own files, never subfolders)")
    pack: str = _param("", "the pack the picks become (default: discovered-<folder name>)")
    top: int = _param(100, "how many pairs to pick (K)")
    max_per_preset: int = _param(3, "the most picked pairs any one preset may be in, as fg or bg (M)")
    per_fg: int = _param(3, "best backgrounds listed for each fg preset")

    @property
    def asked(self) -> bool:
        return bool(self.folder.strip())

    def rule(self) -> str:
        return (f"the {self.top} pairs with the highest predicted quality01 of the coupling net, fg != bg, "
                f"no preset in more than {self.max_per_preset} of them")


@dataclass
class Discovery:
    picks: list[tuple[int, int, float]]                 # (fg index, bg index, predicted), best first
    best_backgrounds: dict[int, list[tuple[int, float]]]  # fg index -> [(bg index, predicted)], best first
    scored: int
    seconds: float

    @property
    def pairs_per_second(self) -> float:
        return self.scored / self.seconds if self.seconds > 0 else 0.0


def _keep_best(scores: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` highest scores, in no particular order."""
    if len(scores) <= count:
        return np.arange(len(scores))
    return np.argpartition(-scores, count - 1)[:count]


def discover(vectors: np.ndarray, identities: list[str], predict, thresholds: SampleSettings,
             settings: DiscoverSettings, progress_label: str = "discover") -> Discovery:
    """Score every pair of distinct presets among `vectors` (N, D) with `predict(pair_vectors)`, streaming."""
    started = time.perf_counter()
    count = len(vectors)
    identity = np.unique(np.asarray(identities), return_inverse=True)[1]
    keep_count = max(MIN_CANDIDATES, settings.top * max(10, settings.max_per_preset * 10))
    best_i, best_j, best_score = (np.zeros(0, np.int64),) * 2 + (np.zeros(0),)
    best_backgrounds: dict[int, list[tuple[int, float]]] = {}
    fg_per_block = max(1, BLOCK_PAIRS // max(1, count))
    scored = 0
    progress = Progress(progress_label, total=count * max(0, count - 1), unit="pairs")
    for start in range(0, count, fg_per_block):
        fg_index = np.arange(start, min(count, start + fg_per_block))
        i = np.repeat(fg_index, count)
        j = np.tile(np.arange(count), len(fg_index))
        distinct = identity[i] != identity[j]
        i, j = i[distinct], j[distinct]
        if not len(i):
            continue
        scores = np.asarray(predict(pair_features(vectors[i], vectors[j], thresholds)), dtype=np.float64)
        scored += len(scores)
        bounds = np.searchsorted(i, fg_index, side="left"), np.searchsorted(i, fg_index, side="right")
        for fg, low, high in zip(fg_index, *bounds):
            top = low + _keep_best(scores[low:high], settings.per_fg)
            top = top[np.argsort(-scores[top], kind="stable")]
            best_backgrounds[int(fg)] = [(int(j[k]), float(scores[k])) for k in top]
        merged_i, merged_j = np.concatenate([best_i, i]), np.concatenate([best_j, j])
        merged_score = np.concatenate([best_score, scores])
        kept = _keep_best(merged_score, keep_count)
        best_i, best_j, best_score = merged_i[kept], merged_j[kept], merged_score[kept]
        progress.update(len(scores))
    progress.close()
    order = np.lexsort((best_j, best_i, -best_score))  # best first; ties in a fixed order
    used = np.zeros(count, np.int64)
    picks = []
    for k in order:
        fg, bg = int(best_i[k]), int(best_j[k])
        if used[fg] >= settings.max_per_preset or used[bg] >= settings.max_per_preset:
            continue
        picks.append((fg, bg, float(best_score[k])))
        used[fg] += 1
        used[bg] += 1
        if len(picks) >= settings.top:
            break
    return Discovery(picks, best_backgrounds, scored, time.perf_counter() - started)
