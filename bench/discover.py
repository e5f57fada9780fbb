"""An honest figure for discovery: do the model's top-K pairs of a library measure better than random pairs?

    python bench/discover.py precision --workspace WS [--corpus DIR] [--top 100] [--workers 16] [--gpu-mode require]
    python bench/discover.py scoring [--presets 1000] [--workspace WS]     # 10^6 pairs: time and memory

`precision` needs a workspace whose pack `bench` (bench/evalpack.py) is sampled and fingerprinted
(bench/evalpack_gpu.sh, rows unpacked into WS). In a copy of it:
1. the model is trained on the evaluation pack's pairs that use no corpus preset (their bases are named in
   `coupling.v0.json`), so the library it is judged on is one it has never seen;
2. the shared corpus (`<theme>/*.milk`, copied flat into one folder) is discovered: every preset
   fingerprinted, every fg x bg pair scored, the top K picked (at most 3 per preset);
3. K random pairs of distinct presets of the same library (seeded) become a second pack;
4. both packs are sampled (real renders, the same settings), and the share of pairs whose measured
   quality clears each threshold is printed for both, with bootstrap 95% intervals, and their ratio.
The headline threshold is 0.5 (a pair with no hard problem and at most one soft one measures above it),
stated before measuring; 0.3 and 0.7 are printed too. Also the fingerprint rate (presets/min, from the
fingerprint rows' own timings and the run's wall clock) and the scoring rate (pairs/s).

`scoring` times the streaming scorer alone on N presets (N x (N - 1) pairs; default 1,000 -> 999,000): the
vectors are the workspace's fingerprinted presets resampled with noise when it has some, else random
ones of the right layout, and a freshly initialised net of the default shape scores them. Prints seconds,
pairs/s and the process's peak memory.
"""
from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stages.core.contracts import Manifest, ManifestPair, read_json, write_json  # noqa: E402
from stages.core.errors import CqError  # noqa: E402
from stages.core.workspace import CHECKOUT, Workspace  # noqa: E402

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "cream-of-the-crop"
THRESHOLDS = (0.3, 0.5, 0.7)
HEADLINE = 0.5


def trained_without_corpus(source: Workspace, target: Workspace, log=print) -> None:
    """Copy the evaluation pack's workspace, keep only pairs built from no corpus preset, and train there."""
    from stages.core.settings import TrainSettings
    from stages.learn.training import train

    if target.root.exists():
        shutil.rmtree(target.root)
    for part in ("public", "artifacts", ".cq/identity.json", "coupled-quality.toml"):
        origin = source.root / part
        if origin.is_dir():
            shutil.copytree(origin, target.root / part, ignore=shutil.ignore_patterns("thumbs", "doit.sqlite3*"))
        elif origin.is_file():
            (target.root / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target.root / part)
    manifest_path = target.manifest_path("bench")
    manifest = read_json(manifest_path)
    origins = {item["pair"]: item for item in read_json(target.pack_dir("bench") / "coupling.v0.json")["pairs"]}
    manifest["pairs"] = [pair for pair in manifest["pairs"]
                         if not any(str(origins[pair["pair"]][side]).startswith("corpus:") for side in ("fg", "bg"))]
    write_json(manifest_path, manifest)
    log(f"training on {len(manifest['pairs'])} evaluation pairs built from no corpus preset")
    report = train(target, TrainSettings(threads=os.cpu_count() or 1), log=lambda *_: None)
    for by in ("crossValidation", "crossValidationByPreset"):
        if report[by]:
            log(f"BENCH model ({by}): net {report[by]['net']['spearman']}, ridge {report[by]['ridge']['spearman']}")


def flat_library(corpus: Path, folder: Path) -> list[Path]:
    """The corpus's themed presets as one folder (theme in the name, so names stay unique)."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for theme in sorted(p for p in corpus.iterdir() if p.is_dir()):
        for path in sorted(theme.glob("*.milk")):
            target = folder / f"{theme.name} - {path.name}"
            shutil.copyfile(path, target)
            copies.append(target)
    return copies


def random_pack(workspace: Workspace, discovered: str, count: int, seed: int) -> str:
    """K random pairs of distinct presets of the discovered pack's library, as pack `random-<discovered>`."""
    from stages.core.keys import preset_identity
    from stages.render.versions import KEY_VERSIONS

    library = sorted((workspace.pack_dir(discovered) / "library").iterdir())
    rng = random.Random(seed)
    pairs, seen = [], set()
    while len(pairs) < count:
        fg, bg = rng.sample(library, 2)
        if (fg, bg) in seen or preset_identity(fg, KEY_VERSIONS) == preset_identity(bg, KEY_VERSIONS):
            continue
        seen.add((fg, bg))
        urls = ["/" + path.relative_to(workspace.public).as_posix() for path in (fg, bg)]
        pairs.append(ManifestPair(len(pairs) + 1, *urls))
    pack = f"random-{discovered}"
    path = workspace.manifest_path(pack)
    write_json(path, Manifest(path, pack, pairs).to_json())
    return pack


def measured(workspace: Workspace, pack: str) -> list[float]:
    from stages.learn.features import FeatureCache
    from stages.learn.quality import measured_quality
    from stages.learn.sources import eval_pairs, quality_thresholds, read_pack_presets

    presets = read_pack_presets(workspace, pack, FeatureCache(workspace.conversion_cache_dir))
    rows, _, _ = eval_pairs(workspace, presets)
    thresholds = quality_thresholds(workspace)
    return [measured_quality(rows[pair], thresholds) for pair in sorted(rows)]


def share_above(values, threshold: float, seed: int = 0) -> dict | None:
    import numpy as np

    from stages.learn.metrics import bootstrap

    above = np.asarray(values) >= threshold
    return bootstrap(lambda d: float(above[d].mean()), len(above), seed)


def ratio(top, rand, threshold: float, seed: int = 0) -> dict:
    import numpy as np

    top, rand = np.asarray(top) >= threshold, np.asarray(rand) >= threshold
    rng = np.random.default_rng(seed)
    draws = [top[rng.integers(0, len(top), len(top))].mean() / max(rand[rng.integers(0, len(rand), len(rand))].mean(), 1e-9)
             for _ in range(1000)]
    value = top.mean() / max(rand.mean(), 1e-9)
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return {"value": round(float(value), 3), "lo": round(float(lo), 3), "hi": round(float(hi), 3)}


def precision(workspace: Workspace, corpus: Path, top: int, workers: int, gpu_mode: str, log=print) -> None:
    from stages import discover
    from stages.learn.discovery import DiscoverSettings

    bench = Workspace(workspace.root.parent / (workspace.root.name + "-discover"))
    trained_without_corpus(workspace, bench, log)
    library = flat_library(corpus, bench.root / "corpus-library")
    started = time.monotonic()
    path = discover.run(bench, DiscoverSettings(folder=str(bench.root / "corpus-library"), pack="discovered-corpus",
                                                top=top, max_per_preset=3))
    document = read_json(path)
    discover_seconds = time.monotonic() - started
    rows = [row for row in _fingerprint_rows(bench) if row["presetId"] in {p.name for p in library}]
    render_ms = sum(row["timings"].get("renderMs", 0) + row["timings"].get("loadMs", 0) for row in rows)
    made = document["generatedFrom"]
    log(f"BENCH discovery: {len(library)} presets, {made['scoredPairs']} pairs scored in {made['seconds']} s "
        f"({made['scoredPairs'] / max(made['seconds'], 1e-9):,.0f} pairs/s); fingerprinting + scoring "
        f"{discover_seconds:.1f} s wall with {workers} browsers; per preset "
        f"{render_ms / max(len(rows), 1):.0f} ms of page time (load + 120 frames)")
    random_name = random_pack(bench, "discovered-corpus", top, seed=1)
    env = {**os.environ, "CQ_WORKSPACE": str(bench.root),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH", "")]))}
    subprocess.run([sys.executable, "-m", "doit", "-f", str(CHECKOUT / "dodo.py"), "sample", "--packs",
                    f"discovered-corpus,{random_name}", "--workers", str(workers), "--gpu-mode", gpu_mode],
                   cwd=CHECKOUT, env=env, check=False)
    top_measured, random_measured = measured(bench, "discovered-corpus"), measured(bench, random_name)
    predicted = [pair["predicted"] for pair in document["pairs"]]
    import numpy as np

    from stages.learn.metrics import spearman

    log(f"BENCH sampled: top-{top} {len(top_measured)} pairs (median measured {np.median(top_measured):.3f}), "
        f"random {len(random_measured)} (median {np.median(random_measured):.3f}); predicted vs measured over the "
        f"top-{top}: spearman {spearman(np.asarray(predicted[:len(top_measured)]), np.asarray(top_measured)):.3f}")
    for threshold in THRESHOLDS:
        mark = " (headline)" if threshold == HEADLINE else ""
        log(f"BENCH measured >= {threshold}{mark}: top-{top} {share_above(top_measured, threshold)}, random "
            f"{share_above(random_measured, threshold)}, ratio {ratio(top_measured, random_measured, threshold)}")


def _fingerprint_rows(workspace: Workspace) -> list[dict]:
    from stages.core.rows import read_fingerprint_rows

    return list(read_fingerprint_rows(workspace).by_key.values())


def scoring(presets: int, workspace: Workspace | None, log=print) -> None:
    """Time `learn.discovery.discover` on `presets` presets with a fresh default net."""
    import numpy as np
    import torch

    from stages.core.settings import SampleSettings, TrainSettings
    from stages.learn.discovery import DiscoverSettings, discover
    from stages.learn.features import PAIR_FEATURES, TEXT_WIDTH, FeatureCache
    from stages.learn.fingerprints import SCALARS, Layout
    from stages.learn.model import CouplingNet, NetConfig, predict_quality

    torch.set_num_threads(os.cpu_count() or 1)
    settings = SampleSettings()
    layout = Layout.of_settings(settings)
    rng = np.random.default_rng(0)
    real = []
    if workspace is not None:
        cache = FeatureCache.of_workspace(workspace, settings)
        for digest in list(cache.fingerprints.rows)[:300]:
            vector = cache.fingerprints.vector(digest)
            real.append(np.concatenate([rng.random(TEXT_WIDTH).astype(np.float32), vector]))
    if real:
        base = np.stack(real)
        vectors = base[rng.integers(0, len(base), presets)] * rng.normal(1.0, 0.05, (presets, base.shape[1]))
        source = f"{len(base)} fingerprinted presets resampled with 5% noise"
    else:
        vectors = rng.random((presets, TEXT_WIDTH + layout.width)).astype(np.float32)
        vectors[:, TEXT_WIDTH + SCALARS.index("fingerprinted")] = 1.0
        source = "random vectors of the fingerprint layout"
    vectors = vectors.astype(np.float32)
    features = len(PAIR_FEATURES)
    net = CouplingNet(NetConfig(features=features, hidden=TrainSettings().hidden, layers=TrainSettings().layers))
    mean, std = np.zeros(features, np.float32), np.ones(features, np.float32)
    found = discover(vectors, [str(i) for i in range(presets)], lambda x: predict_quality(net, x, mean, std),
                     settings, DiscoverSettings(folder="-", top=100))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log(f"BENCH scoring {found.scored:,} pairs of {presets} presets ({source}): {found.seconds:.1f} s, "
        f"{found.pairs_per_second:,.0f} pairs/s on {torch.get_num_threads()} threads; peak memory {peak:,.0f} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("precision")
    run.add_argument("--workspace", required=True, type=Path)
    run.add_argument("--corpus", type=Path, default=CORPUS)
    run.add_argument("--top", type=int, default=100)
    run.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    run.add_argument("--gpu-mode", default="off")
    timing = commands.add_parser("scoring")
    timing.add_argument("--presets", type=int, default=1000)
    timing.add_argument("--workspace", type=Path)
    args = parser.parse_args()
    try:
        if args.command == "precision":
            precision(Workspace(args.workspace.resolve()), args.corpus, args.top, args.workers, args.gpu_mode)
        else:
            scoring(args.presets, Workspace(args.workspace.resolve()) if args.workspace else None)
    except CqError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
