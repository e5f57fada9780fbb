"""The trainer's three sources as pair-feature arrays with targets in [0, 1].

In: a `Workspace` (pack manifests and presets, eval rows in `shards/*.jsonl` and `eval.jsonl`, the elite
manifest, the player's ratings) and `TrainSettings`.
Out: `gather_sources(...) -> Sources` with one `PairSet` per source present:

- eval:  one example per sampled pair; target = `measured_quality(row)` (a failed or too-heavy render
         scores 0).
- elite: hand-rated pairs (elite manifest + ratings), target `(score - 1) / 4`.
- neg:   mismatched pairs fg_i / bg_j with |i - j| >= NegMinPairDistance (positions in pair-number
         order), target 0, drawn among the sampled pairs (see `gather_sources`).

Every example names the pairs it is made of (`PairSet.groups`: `pack:pair` keys; an elite entry that is
no manifest pair is its own group), and every group has a fold (`fold_of`, a hash of seed and key), so
k-fold cross-validation holds out whole pairs: their row, their rating and every negative built from them.

Which eval row counts: rows whose `fgHash`/`bgHash` match the preset files as they are now (older rows
describe other pictures); of those, the latest `ok` row of a pair, else its latest failed row.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.contracts import EliteEntry, load_elite, load_manifest, read_ratings, read_rows, resolve_url, value_hash
from ..core.errors import ContractError
from ..core.keys import preset_identity
from ..core.progress import Progress
from ..core.settings import SampleSettings, TrainSettings, configured
from ..core.workspace import Workspace, command
from ..learn.features import FeatureCache, pair_features
from ..learn.quality import measured_quality
from ..render.versions import KEY_VERSIONS

# ------------------------------------------------------------------------------------- pack presets

PROGRESS_FROM = 500  # pairs; smaller packs read in a second or two


@dataclass
class PackPresets:
    """A pack's manifest pairs with the feature vectors of their presets, sorted by pair number."""

    pack: str
    pairs: list[int] = field(default_factory=list)            # pairs whose both presets were read
    fg: list[np.ndarray] = field(default_factory=list)
    bg: list[np.ndarray] = field(default_factory=list)
    hashes: dict[int, tuple[str, str]] = field(default_factory=dict)
    families: dict[int, tuple[str, str]] = field(default_factory=dict)  # features.preset_family of fg and bg
    urls: dict[int, tuple[str, str]] = field(default_factory=dict)    # (fgUrl, bgUrl) of every manifest pair
    missing: list[str] = field(default_factory=list)          # "pair N: path" of files that do not exist
    unreadable: list[str] = field(default_factory=list)       # "pair N: message" of files that failed to load
    manifest_pairs: int = 0


def read_pack_presets(workspace: Workspace, pack: str, cache: FeatureCache) -> PackPresets:
    """Feature vectors of every manifest pair of `pack`; missing and unreadable files are listed, not raised."""
    manifest_path = workspace.manifest_path(pack)
    manifest = load_manifest(manifest_path)
    if manifest.pack != pack:
        raise ContractError(manifest_path, f"pack is {manifest.pack!r} but the file is in pack {pack!r}'s folder",
                            "make the manifest's pack match its folder")
    presets = PackPresets(pack, manifest_pairs=len(manifest.pairs))
    progress = Progress(f"features {pack}", len(manifest.pairs)) if len(manifest.pairs) > PROGRESS_FROM else None
    for entry in sorted(manifest.pairs, key=lambda item: item.pair):
        if progress:
            progress.update()
        where = f"{manifest_path} pair {entry.pair}"
        presets.urls[entry.pair] = (entry.fgUrl, entry.bgUrl)
        paths = [resolve_url(workspace.public, url, where) for url in (entry.fgUrl, entry.bgUrl)]
        absent = [path for path in paths if not path.is_file()]
        if absent:
            presets.missing += [f"pair {entry.pair}: {path}" for path in absent]
            continue
        vectors = [cache.get(path) for path in paths]
        if any(vector is None for vector in vectors):
            presets.unreadable += [f"pair {entry.pair}: {cache.failures[path]}" for path, vector
                                   in zip(paths, vectors) if vector is None]
            continue
        presets.pairs.append(entry.pair)
        presets.fg.append(vectors[0])
        presets.bg.append(vectors[1])
        presets.hashes[entry.pair] = (preset_identity(paths[0], KEY_VERSIONS), preset_identity(paths[1], KEY_VERSIONS))
        presets.families[entry.pair] = (cache.families[paths[0]], cache.families[paths[1]])
    if progress:
        progress.close()
    return presets


# ------------------------------------------------------------------------------------------ sources

ENUMERATE_LIMIT = 4_000_000  # candidate pairs; above this, negatives are drawn by rejection instead


@dataclass
class PairSet:
    """Examples of one source: pair features, targets in [0, 1], a key naming each example, the groups
    (`pack:pair` keys) each example is made of, and the families of its fg and bg presets
    (`features.preset_family`), for cross-validation by preset."""

    features: np.ndarray
    targets: np.ndarray
    keys: list[str]
    groups: list[tuple[str, ...]]
    families: list[tuple[str, str]]

    def __len__(self) -> int:
        return len(self.keys)

    def subset(self, mask: np.ndarray) -> "PairSet":
        return PairSet(self.features[mask], self.targets[mask], [k for k, keep in zip(self.keys, mask) if keep],
                       [g for g, keep in zip(self.groups, mask) if keep],
                       [f for f, keep in zip(self.families, mask) if keep])

    def touches(self, fold: int, folds: int, seed: int) -> np.ndarray:
        """Mask of the examples made of at least one pair of `fold`."""
        return np.array([any(fold_of(group, folds, seed) == fold for group in groups) for groups in self.groups],
                        bool)

    def fg_family_in(self, fold: int, folds: int, seed: int) -> np.ndarray:
        """Mask of the examples whose fg preset's family falls in `fold` (the test pairs of a fold by preset)."""
        return np.array([fold_of(fg, folds, seed) == fold for fg, _ in self.families], bool)

    def uses_any(self, families: set[str]) -> np.ndarray:
        """Mask of the examples with an fg or bg preset of one of `families`."""
        return np.array([fg in families or bg in families for fg, bg in self.families], bool)


def fold_of(key: str, folds: int, seed: int) -> int:
    """The cross-validation fold of a pair: a hash of seed and key alone, so adding pairs later leaves every
    earlier pair in its fold."""
    return int(value_hash([seed, key])[:12], 16) % folds


@dataclass
class Sources:
    sets: dict[str, PairSet]                      # "elite" | "eval" | "neg", only the sources present
    notes: dict[str, str]                         # per source: why it is absent or how it was built
    packs: dict[str, dict]                        # per pack: row and preset counts for the report
    warnings: list[str]


def _latest_rows(workspace: Workspace, pack: str) -> tuple[list[dict], list[str]]:
    """Every readable row of a pack once, in write order: shards (sorted), then the merged eval.jsonl (whose
    rows are copies of shard rows, unless the shards were cleaned away)."""
    files = workspace.shard_files(pack) + [workspace.eval_path(pack)]
    rows, seen, warnings = [], set(), []
    for path in files:
        file_rows, file_warnings = read_rows(path)
        warnings += file_warnings
        for row in file_rows:
            identity = (row["pair"], row["contentKey"], row["sampledAt"], row["status"])
            if identity not in seen:
                seen.add(identity)
                rows.append(row)
    return rows, warnings


def eval_pairs(workspace: Workspace, presets: PackPresets) -> tuple[dict[int, dict], dict, list[str]]:
    """The row that counts for each sampled pair of a pack, plus counts for the report."""
    rows, warnings = _latest_rows(workspace, presets.pack)
    chosen: dict[int, dict] = {}
    counts = {"rows": len(rows), "okRows": 0, "failedRows": 0, "staleRows": 0}
    # Stable sort by time keeps write order among rows of the same second.
    for row in sorted(rows, key=lambda r: r["sampledAt"]):
        if row["pack"] != presets.pack or presets.hashes.get(row["pair"]) != (row["fgHash"], row["bgHash"]):
            counts["staleRows"] += 1
            continue
        counts["okRows" if row["status"] == "ok" else "failedRows"] += 1
        previous = chosen.get(row["pair"])
        if previous is None or row["status"] == "ok" or previous["status"] != "ok":
            chosen[row["pair"]] = row
    counts["pairs"] = len(chosen)
    return chosen, counts, warnings


def _elite_entries(workspace: Workspace, settings: TrainSettings) -> tuple[list[EliteEntry], str, list[str]]:
    path = workspace.elite_path(settings.elite_path)
    entries: dict[tuple[str, str], EliteEntry] = {}
    found = []
    if path.is_file():
        entries.update(((e.fgUrl, e.bgUrl), e) for e in load_elite(path))
        found.append(f"{len(entries)} from {path}")
    elif settings.elite_path:
        raise ContractError(path, "elite manifest not found", "fix --elite-path or leave it empty")
    ratings, warnings = read_ratings(workspace.ratings_path)
    if ratings:
        entries.update(((e.fgUrl, e.bgUrl), e) for e in ratings)  # the player's latest word wins
        found.append(f"{len(ratings)} ratings from {workspace.ratings_path}")
    note = ", ".join(found) if found else f"skipped: no elite manifest at {path} and no ratings"
    return list(entries.values()), note, warnings


def elite_set(workspace: Workspace, settings: TrainSettings, cache: FeatureCache, pair_keys: dict[tuple[str, str], str],
              thresholds: SampleSettings = SampleSettings()) -> tuple[PairSet | None, str, list[str]]:
    """The rated pairs; `pair_keys` maps (fgUrl, bgUrl) of manifest pairs to their `pack:pair` key."""
    entries, note, warnings = _elite_entries(workspace, settings)
    features, targets, keys, families = [], [], [], []
    for entry in entries:
        where = f"elite entry {entry.fgUrl} + {entry.bgUrl}"
        try:
            paths = [resolve_url(workspace.public, url, where) for url in (entry.fgUrl, entry.bgUrl)]
        except ContractError as error:
            warnings.append(f"{error} (entry skipped)")
            continue
        vectors = [cache.get(path) for path in paths]
        if any(vector is None for vector in vectors):
            warnings.append(f"{where}: a preset is missing or unreadable (entry skipped)")
            continue
        features.append(pair_features(*vectors, thresholds))
        families.append((cache.families[paths[0]], cache.families[paths[1]]))
        targets.append((entry.score - 1.0) / 4.0)
        keys.append(f"{entry.fgUrl}|{entry.bgUrl}")
    if not keys:
        return None, note, warnings
    groups = [(pair_keys.get(tuple(key.split("|", 1)), f"elite:{key}"),) for key in keys]
    return PairSet(np.stack(features), np.asarray(targets, np.float32), keys, groups, families), note, warnings


def ratings_by_urls(workspace: Workspace, settings: TrainSettings) -> dict[tuple[str, str], float]:
    """Every rated pair's rating as a target in [0, 1] ((score - 1) / 4), by (fgUrl, bgUrl)."""
    entries, _, _ = _elite_entries(workspace, settings)
    return {(entry.fgUrl, entry.bgUrl): (entry.score - 1.0) / 4.0 for entry in entries}


def quality_thresholds(workspace: Workspace) -> SampleSettings:
    """The sampler's okHeuristic settings as configured for the workspace (`measured_quality` uses them)."""
    return configured(SampleSettings, workspace)


def negative_indices(positions: np.ndarray, wanted: int, min_distance: int, rng: np.random.Generator
                     ) -> tuple[np.ndarray, int, str]:
    """Up to `wanted` distinct (a, b) with |positions[a] - positions[b]| >= distance, where `positions` are
    manifest positions of the pairs to draw from; the distance is clamped to half the span of positions for
    small packs. Returns (indices into `positions` of shape (n, 2), distance used, note)."""
    positions = np.asarray(positions, np.int64)
    span = int(positions.max() - positions.min() + 1) if len(positions) else 0
    distance = max(1, min(min_distance, span // 2))
    note = "" if distance == min_distance else f"NegMinPairDistance clamped from {min_distance} to {distance} " \
                                               f"for {span} pairs"
    count = len(positions)
    if count < 2 or wanted <= 0:
        return np.zeros((0, 2), np.int64), distance, note
    if count * count <= ENUMERATE_LIMIT:
        a, b = np.meshgrid(np.arange(count), np.arange(count), indexing="ij")
        allowed = np.abs(positions[a] - positions[b]) >= distance
        every = np.stack([a[allowed], b[allowed]], axis=1)
        if wanted < len(every):
            return every[np.sort(rng.choice(len(every), wanted, replace=False))], distance, note
        if wanted > len(every):
            note = (note + "; " if note else "") + f"only {len(every)} distinct negatives exist"
        return every, distance, note
    found = np.zeros((0, 2), np.int64)
    while len(found) < wanted:
        draw = rng.integers(0, count, size=(2 * (wanted - len(found)) + 16, 2))
        draw = draw[np.abs(positions[draw[:, 0]] - positions[draw[:, 1]]) >= distance]
        found = np.unique(np.concatenate([found, draw]), axis=0)
    return found[np.sort(rng.permutation(len(found))[:wanted])], distance, note


def gather_sources(workspace: Workspace, settings: TrainSettings, cache: FeatureCache | None = None,
                   packs: list[str] | None = None, thresholds: SampleSettings = SampleSettings()) -> Sources:
    """Read every pack's presets and rows, the elite entries and ratings, and draw the negatives.

    Negatives are drawn among the sampled pairs (all readable pairs of a pack that has none): a preset that
    appeared only in negatives would teach the net "unsampled means bad". A negative belongs to the groups
    of both its pairs, so cross-validation drops it from training when either is held out. `thresholds`
    are the sampler's okHeuristic settings that `measured_quality` shares."""
    cache = cache or FeatureCache.of_workspace(workspace, thresholds)
    rng = np.random.default_rng(settings.seed)
    eval_features, eval_targets, eval_keys, eval_families = [], [], [], []
    pack_presets, pack_report, warnings, pair_keys = [], {}, [], {}
    for pack in workspace.packs() if packs is None else packs:
        try:
            presets = read_pack_presets(workspace, pack, cache)
        except ContractError as error:  # one broken manifest must not stop training on the other packs
            warnings.append(f"{error} (pack {pack} left out of training; its score task reports it too)")
            pack_report[pack] = {"error": str(error)}
            continue
        chosen, counts, pack_warnings = eval_pairs(workspace, presets)
        warnings += pack_warnings + presets.unreadable[:5]
        pair_keys.update((urls, f"{pack}:{pair}") for pair, urls in presets.urls.items())
        position = {pair: index for index, pair in enumerate(presets.pairs)}
        indices = [position[pair] for pair in sorted(chosen)]
        if indices:  # one call for the pack: the composite estimate is vectorised over pairs
            eval_features.append(pair_features(np.stack([presets.fg[i] for i in indices]),
                                               np.stack([presets.bg[i] for i in indices]), thresholds))
        for pair, row in sorted(chosen.items()):
            eval_targets.append(measured_quality(row, thresholds))
            eval_keys.append(f"{pack}:{pair}")
            eval_families.append(presets.families[pair])
        pack_presets.append(presets)
        pack_report[pack] = {**counts, "manifestPairs": presets.manifest_pairs, "readablePairs": len(presets.pairs),
                             "missingFiles": len(presets.missing), "unreadableFiles": len(presets.unreadable)}
    sampled = set(eval_keys)
    neg_features, neg_keys, neg_groups, neg_families, neg_notes = [], [], [], [], []
    for presets in pack_presets:
        pool = [i for i, pair in enumerate(presets.pairs) if f"{presets.pack}:{pair}" in sampled]
        pool_note = "from its eval pairs"
        if not pool:
            pool, pool_note = list(range(len(presets.pairs))), "from all its pairs (none sampled yet)"
        indices, distance, note = negative_indices(np.asarray(pool), settings.neg_samples,
                                                   settings.neg_min_pair_distance, rng)
        if len(indices):
            chosen = np.asarray(pool)[indices]
            fg, bg = np.stack(presets.fg), np.stack(presets.bg)
            neg_features.append(pair_features(fg[chosen[:, 0]], bg[chosen[:, 1]], thresholds))
            neg_families += [(presets.families[presets.pairs[i]][0], presets.families[presets.pairs[j]][1])
                             for i, j in chosen]
            neg_keys += [f"{presets.pack}:{presets.pairs[i]}/{presets.pairs[j]}" for i, j in chosen]
            neg_groups += [(f"{presets.pack}:{presets.pairs[i]}", f"{presets.pack}:{presets.pairs[j]}")
                           for i, j in chosen]
        neg_notes.append(f"{presets.pack}: {len(indices)} {pool_note} at |i-j| >= {distance}"
                         + (f" ({note})" if note else ""))

    sets: dict[str, PairSet] = {}
    notes: dict[str, str] = {}
    elite, notes["elite"], elite_warnings = elite_set(workspace, settings, cache, pair_keys, thresholds)
    warnings += elite_warnings
    if elite is not None:
        sets["elite"] = elite
    if eval_keys:
        sets["eval"] = PairSet(np.concatenate(eval_features), np.asarray(eval_targets, np.float32), eval_keys,
                               [(key,) for key in eval_keys], eval_families)
        notes["eval"] = f"{len(eval_keys)} sampled pairs"
    else:
        notes["eval"] = f"skipped: no eval rows yet (run `{command('sample')}`)"
    if neg_keys:
        sets["neg"] = PairSet(np.concatenate(neg_features), np.zeros(len(neg_keys), np.float32), neg_keys,
                              neg_groups, neg_families)
    notes["neg"] = "; ".join(neg_notes) if neg_notes else "skipped: no packs"
    return Sources(sets, notes, pack_report, warnings)
