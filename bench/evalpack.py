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

Sampling the pack takes a GPU machine (bench/evalpack_gpu.sh, one command there); `cv` then trains with
k-fold cross-validation by pair and prints the out-of-fold Spearman of the net and the ridge baseline with
95% intervals, overall and per pair kind; how well the out-of-fold score follows each factor of the measured
quality (what the preset-text features can and cannot explain); and whether cheap render statistics would
lift it, measured before building them: the k-fold ridge with and without each layer's mean luma as rendered
(`pmAvgLumaFg/Bg`, what a render of each preset alone at a few frames would give).
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
from stages.demopack import BASES_PATH, PRESETS_DIR, couple, load_bases, offsets  # noqa: E402

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
        fg, _, diffs = couple(bases[fg_base], deltas)
        _, bg, _ = couple(bases[bg_base], deltas)
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


def cross_validate(workspace: Workspace, folds: int, epochs: int, threads: int, pack: str = PACK) -> dict:
    """Train with k-fold cross-validation on the workspace; print net vs ridge overall, per pair kind (pack
    `bench`), and `explained` for `pack`."""
    import numpy as np

    from stages.core.settings import TrainSettings
    from stages.learn.metrics import spearman, with_interval
    from stages.learn.training import train

    started = time.monotonic()
    report = train(workspace, TrainSettings(folds=folds, epochs=epochs, threads=threads), log=lambda *_: None)
    seconds = time.monotonic() - started
    validated = report["crossValidation"]
    if validated is None:
        raise CqError(f"too few sampled pairs in {workspace.root} for {folds}-fold cross-validation: sample first")
    coupling = workspace.pack_dir(pack) / "coupling.v0.json"
    kinds = {f"{pack}:{item['pair']}": item.get("kind") for item in read_json(coupling)["pairs"]} \
        if coupling.is_file() else {}
    print(f"BENCH {folds}-fold by pair over {validated['pairs']} sampled pairs, {validated['chosenEpochs']} "
          f"epochs chosen, {seconds:.1f} s on {report['device']} (cross-validation "
          f"{report['crossValidationSeconds']:.1f} s)")
    for model in ("net", "ridge"):
        print(f"BENCH out-of-fold {model}: spearman {validated[model]['spearman']} "
              f"pearson {validated[model]['pearson']}")
    print(f"BENCH net - ridge: spearman {validated['netMinusRidge']['spearman']}")
    print("BENCH per fold (net / ridge): " + ", ".join(f"{f['net']} / {f['ridge']}" for f in validated["perFold"]))
    items = validated["outOfFold"]
    for kind in ("coupled", "cross"):
        chosen = [item for item in items if kinds.get(item["key"]) == kind]
        if len(chosen) >= 5:
            measured = np.array([item["measured"] for item in chosen])
            for model in ("net", "ridge"):
                values = np.array([item[model] for item in chosen])
                print(f"BENCH {kind} pairs ({len(chosen)}): {model} spearman "
                      f"{with_interval(spearman, values, measured, 0)}")
    measured = np.array([item["measured"] for item in items])
    print(f"BENCH measured quality: {np.mean(measured == 0):.1%} of pairs measure 0 (failed, cut, or a factor at 0); "
          f"median {np.median(measured):.3f}")
    explained(workspace, validated, folds, pack)
    return report


def explained(workspace: Workspace, validated: dict, folds: int, pack: str) -> None:
    """Spearman of the out-of-fold net score with each quality factor (ok rows), and the k-fold ridge lift
    from each layer's rendered mean luma."""
    import numpy as np

    from stages.learn.features import FeatureCache, pair_features
    from stages.learn.metrics import ridge_predict, spearman, with_interval
    from stages.learn.model import feature_std, standardise
    from stages.learn.quality import measured_quality, quality_factors
    from stages.learn.sources import (
        eval_pairs,
        fold_of,
        quality_thresholds,
        read_pack_presets,
    )

    presets = read_pack_presets(workspace, pack, FeatureCache(workspace.conversion_cache_dir))
    rows, _, _ = eval_pairs(workspace, presets)
    net = {item["key"]: item["net"] for item in validated["outOfFold"]}
    thresholds = quality_thresholds(workspace)
    ok = [pair for pair in sorted(rows) if rows[pair]["status"] == "ok"]
    factors = [quality_factors(rows[pair]["stats"], thresholds) for pair in ok]
    scores = np.array([net[f"{pack}:{pair}"] for pair in ok])
    for name in factors[0] if factors else []:
        values = np.array([factor[name] for factor in factors])
        if values.std() > 1e-9:
            print(f"BENCH factor {name}: spread {values.std():.3f}, spearman with the out-of-fold net "
                  f"{spearman(scores, values):.3f}")
    index = {pair: i for i, pair in enumerate(presets.pairs)}
    pairs = sorted(rows)
    features = pair_features(np.stack([presets.fg[index[p]] for p in pairs]),
                             np.stack([presets.bg[index[p]] for p in pairs]))
    lumas = np.array([[rows[p]["pmAvgLumaFg"], rows[p]["pmAvgLumaBg"]] for p in pairs])
    measured = np.array([measured_quality(rows[p], thresholds) for p in pairs])
    by_pair = np.array([fold_of(f"{pack}:{p}", folds, 0) for p in pairs])
    coupling = workspace.pack_dir(pack) / "coupling.v0.json"
    base_of = {item["pair"]: item.get("fg", item.get("base")) for item in read_json(coupling)["pairs"]} \
        if coupling.is_file() else {}
    by_base = np.array([fold_of(str(base_of.get(p, p)), folds, 0) for p in pairs])

    def ridge_spearman(x: np.ndarray, fold: np.ndarray) -> dict | None:
        predicted = np.zeros(len(pairs))
        for k in range(folds):
            train, test = fold != k, fold == k
            if test.any():
                mean, std = x[train].mean(axis=0), feature_std(x[train])
                predicted[test] = ridge_predict(standardise(x[train], mean, std), measured[train],
                                                standardise(x[test], mean, std), 0)
        return with_interval(spearman, predicted, measured, 0)

    for label, x in (("preset features", features), ("+ rendered layer luma", np.hstack([features, lumas]))):
        print(f"BENCH ridge on {label}: k-fold spearman {ridge_spearman(x, by_pair)}")
    # pairs of one base (its close and far variants) share most features: folds by pair let a base's other
    # pair train the model that scores it; folds by fg base are the figure for presets never seen
    print(f"BENCH ridge on preset features, folds by fg base: k-fold spearman {ridge_spearman(features, by_base)}")


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
            cross_validate(workspace, args.folds, args.epochs, args.threads, args.pack)
    except CqError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
