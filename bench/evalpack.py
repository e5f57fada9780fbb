"""A real evaluation pack of >= 1,000 pairs, and the k-fold figure of the coupling net against ridge on it.

    python bench/evalpack.py build --workspace WS [--pairs 1200]   # write pack `bench` into WS (no browser)
    python bench/evalpack.py archive --workspace WS --out .bench/evalpack.tar.xz   # the pack as one file
    python bench/evalpack.py cv --workspace WS [--folds 5]         # after sampling: k-fold net vs ridge

Built from real presets: the clean butterchurn-presets bases (`data/demo-bases.json`) and the .milk files of
the shared corpus (`../shared/corpus/cream-of-the-crop/<theme>/*.milk`, read by our converter; those that do
not translate are left out). Coupled the way the seed's packs are (and `stages.demopack`): both layers of a
pair are one base pushed apart by +/- d on its motion, warp and colour values, with several d per base
(offset levels SPREADS x the demo pack's); and a share of mismatched cross pairs (fg of one base over bg of
another) that the coupling should score low. Pair numbers follow the seeded shuffle; `coupling.v0.json`
records each pair's kind, base(s) and offsets.

Sampling the pack and fingerprinting its presets takes a GPU machine (bench/evalpack_gpu.sh, one command
there); `cv` then trains with k-fold cross-validation by pair and by preset and prints the out-of-fold
Spearman of the net and the ridge baseline with 95% intervals, overall and per pair kind (coupled, cross);
`--no-fingerprints` gives the same figures from the preset text alone. With fingerprints it also prints the
composite estimate's Spearman alone (no learning) and an ablation: ridge by preset on each group of pair
features (text, layer scalars, composite) alone and without it, and each composite field against the
measurement.
"""
from __future__ import annotations

import argparse
import random
import sys
import tarfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stages.core.contracts import Manifest, ManifestPair, read_json, write_json  # noqa: E402
from stages.core.errors import CqError  # noqa: E402
from stages.core.workspace import Workspace  # noqa: E402
from stages.demopack import BASES_PATH, COUPLING, PRESETS_DIR, load_bases, offsets, variants  # noqa: E402

PACK = "bench"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "cream-of-the-crop"
SPREADS = (0.5, 2.0)      # each base gives one pair per level: close variants and far ones
CROSS_SHARE = 0.25        # mismatched pairs among all pairs
GENERATED_AT = "2024-01-01T00:00:00Z"


def corpus_presets(corpus: Path, cache_dir: Path) -> dict[str, dict]:
    """The corpus .milk presets that convert cleanly, by `corpus:<theme>/<stem>` (two named levels, no walk)."""
    from stages.presets.conversion import load_preset

    found = {}
    for theme in sorted(p for p in corpus.iterdir() if p.is_dir()) if corpus.is_dir() else []:
        for path in sorted(theme.glob("*.milk")):
            try:
                found[f"corpus:{theme.name}/{path.stem}"] = load_preset(path, cache_dir=cache_dir)
            except CqError:
                continue  # does not translate: the sampler would record it as failed, not as coupling
    return found


def build(workspace: Workspace, pairs: int, seed: int, corpus: Path) -> dict:
    """Write pack `bench`: coupled pairs (one per base and spread level) then cross pairs, `pairs` in all."""
    from stages.presets.conversion import load_preset

    bases = {f"butterchurn:{name}": load_preset(PRESETS_DIR / f"{name}.json") for name in load_bases(BASES_PATH)}
    bases.update(corpus_presets(corpus, workspace.conversion_cache_dir))
    rng = random.Random(f"bench-pack:{seed}")
    names = sorted(bases)
    coupled_wanted = pairs - round(pairs * CROSS_SHARE)
    plan = [("coupled", name, name, spread) for spread in SPREADS for name in names]
    rng.shuffle(plan)  # an even mix of spreads and bases when not every base gets every spread
    plan = plan[:coupled_wanted]
    while len(plan) < pairs:
        fg, bg = rng.sample(names, 2)
        plan.append(("cross", fg, bg, 1.0))
    rng.shuffle(plan)

    pack_dir = workspace.pack_dir(PACK)
    manifest_pairs, origins = [], []
    for number, (kind, fg_base, bg_base, spread) in enumerate(plan, start=1):
        deltas = {name: round(value * spread, 6) for name, value in offsets(rng).items()}
        low, _, fg = variants(bases[fg_base], deltas)   # the base pushed -d and +d (demopack.VARIANTS == 3)
        bg = variants(bases[bg_base], deltas)[0]
        diffs = {param.name: round(fg["baseVals"][param.name] - low["baseVals"][param.name], 6) for param in COUPLING}
        paths = [pack_dir / side / f"bench_{number:05d}_{side}.json" for side in ("fg", "bg")]
        for path, preset in zip(paths, (fg, bg)):
            write_json(path, preset, pretty=False)
        urls = ["/" + path.relative_to(workspace.public).as_posix() for path in paths]
        manifest_pairs.append(ManifestPair(number, *urls, warp_diff=diffs["warp"], cx_diff=diffs["cx"]))
        origins.append({"pair": number, "kind": kind, "fg": fg_base, "bg": bg_base, "spread": spread})
    manifest_path = workspace.manifest_path(PACK)
    write_json(manifest_path, Manifest(manifest_path, PACK, manifest_pairs, generatedAt=GENERATED_AT).to_json())
    summary = {"version": "v0", "pack": PACK, "seed": seed, "pairs": len(plan), "bases": len(names),
               "corpusBases": sum(name.startswith("corpus:") for name in names), "spreads": list(SPREADS),
               "crossShare": CROSS_SHARE}
    write_json(pack_dir / "coupling.v0.json", {**summary, "pairs": origins})
    return summary


def archive(workspace: Workspace, out: Path) -> Path:
    """The pack's folder as one .tar.xz (paths relative to the workspace root), to carry to the GPU machine."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:xz") as tar:
        tar.add(workspace.pack_dir(PACK), arcname=workspace.pack_dir(PACK).relative_to(workspace.root).as_posix())
    return out


def cross_validate(workspace: Workspace, folds: int, epochs: int, threads: int, pack: str = PACK,
                   fingerprints: bool = True) -> dict:
    """Train with k-fold cross-validation by pair and by preset; print net vs ridge overall and per pair kind
    (pack `bench`), then `explained` for `pack`. Without `fingerprints`, every preset counts as never
    fingerprinted (the text features alone, as before fingerprints existed)."""
    import numpy as np

    from stages.core.settings import TrainSettings
    from stages.learn.features import FeatureCache
    from stages.learn.metrics import spearman, with_interval
    from stages.learn.training import train

    started = time.monotonic()
    cache = None if fingerprints else FeatureCache(workspace.conversion_cache_dir)
    report = train(workspace, TrainSettings(folds=folds, epochs=epochs, threads=threads), log=lambda *_: None,
                   cache=cache)
    seconds = time.monotonic() - started
    label = "with fingerprints" if fingerprints else "text features only"
    coupling = workspace.pack_dir(pack) / "coupling.v0.json"
    kinds = {f"{pack}:{item['pair']}": item.get("kind") for item in read_json(coupling)["pairs"]} \
        if coupling.is_file() else {}
    for by in ("crossValidation", "crossValidationByPreset"):
        validated = report[by]
        if validated is None:
            raise CqError(f"too few sampled pairs in {workspace.root} for {folds}-fold cross-validation: sample first")
        print(f"BENCH [{label}] {folds}-fold by {validated['by']} over {validated['pairs']} sampled pairs, "
              f"{validated['chosenEpochs']} epochs, {seconds:.1f} s on {report['device']}")
        for model in ("net", "ridge"):
            print(f"BENCH [{label}] by {validated['by']}: {model} spearman {validated[model]['spearman']} "
                  f"pearson {validated[model]['pearson']}")
        print(f"BENCH [{label}] by {validated['by']}: net - ridge spearman {validated['netMinusRidge']['spearman']}")
        items = validated["outOfFold"]
        for kind in ("coupled", "cross"):
            chosen = [item for item in items if kinds.get(item["key"]) == kind]
            if len(chosen) >= 5:
                measured = np.array([item["measured"] for item in chosen])
                for model in ("net", "ridge"):
                    values = np.array([item[model] for item in chosen])
                    print(f"BENCH [{label}] by {validated['by']}, {kind} pairs ({len(chosen)}): {model} spearman "
                          f"{with_interval(spearman, values, measured, 0)}")
    measured = np.array([item["measured"] for item in report["crossValidation"]["outOfFold"]])
    print(f"BENCH measured quality: {np.mean(measured == 0):.1%} of pairs measure 0 (failed, cut, or a factor at 0); "
          f"median {np.median(measured):.3f}")
    if fingerprints:
        explained(workspace, folds, pack)
    return report


# Column groups of the pair vector, for the ablation (names from features.PAIR_FEATURES).
def _groups(names: list[str]) -> dict[str, list[int]]:
    prefixes = {"text": ("fg.", "bg.", "diff.", "prod."), "layer": ("layer.",), "mix": ("mix.",)}
    groups = {name: [i for i, feature in enumerate(names) if feature.startswith(start)] for name, start in prefixes.items()}
    groups["mix.estimate"] = [names.index("mix.estimate")]
    return groups


def explained(workspace: Workspace, folds: int, pack: str) -> None:
    """Ridge by preset family on feature groups (which fields matter), and the composite estimate alone."""
    import numpy as np

    from stages.learn.features import PAIR_FEATURES, FeatureCache, pair_features
    from stages.learn.metrics import ridge_predict, spearman, with_interval
    from stages.learn.model import feature_std, standardise
    from stages.learn.quality import measured_quality
    from stages.learn.sources import eval_pairs, fold_of, quality_thresholds, read_pack_presets

    thresholds = quality_thresholds(workspace)
    presets = read_pack_presets(workspace, pack, FeatureCache.of_workspace(workspace, thresholds))
    rows, _, _ = eval_pairs(workspace, presets)
    index = {pair: i for i, pair in enumerate(presets.pairs)}
    pairs = sorted(rows)
    features = pair_features(np.stack([presets.fg[index[p]] for p in pairs]),
                             np.stack([presets.bg[index[p]] for p in pairs]), thresholds)
    measured = np.array([measured_quality(rows[p], thresholds) for p in pairs])
    families = [presets.families[p] for p in pairs]
    fold_by_preset = np.array([fold_of(fg, folds, 0) for fg, _ in families])
    names = list(PAIR_FEATURES)
    estimate = features[:, names.index("mix.estimate")]
    print(f"BENCH composite estimate alone (no learning): spearman {with_interval(spearman, estimate, measured, 0)}")

    def ridge_by_preset(columns: list[int]) -> dict | None:
        predicted = np.full(len(pairs), np.nan)
        for k in range(folds):
            test = fold_by_preset == k
            unseen = {family for pair, tested in zip(families, test) if tested for family in pair}
            train = np.array([fg not in unseen and bg not in unseen for fg, bg in families])
            if test.any() and train.sum() >= 5:
                x = features[:, columns]
                mean, std = x[train].mean(axis=0), feature_std(x[train])
                predicted[test] = ridge_predict(standardise(x[train], mean, std), measured[train],
                                                standardise(x[test], mean, std), 0)
        done = np.isfinite(predicted)
        return with_interval(spearman, predicted[done], measured[done], 0)

    groups = _groups(names)
    everything = list(range(len(names)))
    print(f"BENCH ablation, ridge by preset, all features: {ridge_by_preset(everything)}")
    for name, columns in groups.items():
        rest = [c for c in everything if c not in set(columns)]
        print(f"BENCH ablation, ridge by preset, without {name}: {ridge_by_preset(rest)}; "
              f"{name} alone: {ridge_by_preset(columns)}")
    for name in [n for n in names if n.startswith("mix.factor.") or n.startswith("mix.stat.")]:
        column = features[:, names.index(name)]
        if column.std() > 1e-9:
            print(f"BENCH field {name}: spearman with measured {spearman(column, measured):.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("build", "archive", "cv"):
        command = commands.add_parser(name)
        command.add_argument("--workspace", required=True, type=Path)
    commands.choices["build"].add_argument("--pairs", type=int, default=1200)
    commands.choices["build"].add_argument("--seed", type=int, default=1)
    commands.choices["build"].add_argument("--corpus", type=Path, default=CORPUS)
    commands.choices["archive"].add_argument("--out", type=Path, default=Path(".bench/evalpack.tar.xz"))
    commands.choices["cv"].add_argument("--folds", type=int, default=5)
    commands.choices["cv"].add_argument("--epochs", type=int, default=20)
    commands.choices["cv"].add_argument("--threads", type=int, default=1)
    commands.choices["cv"].add_argument("--pack", default=PACK, help="the pack `explained` looks at (e.g. demo)")
    commands.choices["cv"].add_argument("--no-fingerprints", action="store_true",
                                        help="text features only, as before fingerprints (for the comparison)")
    args = parser.parse_args()
    workspace = Workspace(args.workspace.resolve())
    try:
        if args.command == "build":
            started = time.monotonic()
            summary = build(workspace, args.pairs, args.seed, args.corpus)
            print(f"wrote pack {PACK} into {workspace.root}: {summary['pairs']} pairs from {summary['bases']} bases "
                  f"({summary['corpusBases']} from the corpus) in {time.monotonic() - started:.1f} s")
        elif args.command == "archive":
            out = archive(workspace, args.out)
            print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")
        else:
            cross_validate(workspace, args.folds, args.epochs, args.threads, args.pack, not args.no_fingerprints)
    except CqError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
