"""Benchmark the coupling net's training time, on CPU here or on CUDA on a GPU machine.

    python3 bench/bench_train.py                       # synthetic 3,000-pair pack, 50,000 negatives, 20 epochs
    python3 bench/bench_train.py --require-cuda        # the same, failing fast without a GPU
    python3 bench/bench_train.py --workspace WS        # every pack of an existing workspace (e.g. the demo
                                                       # pack after `doit`), then scores them

Needs only torch, numpy, orjson, pynvml and doit (no browser). Prints the device line, the pynvml snapshot
before and after on CUDA, the training time (k-fold cross-validation and the final fit), the out-of-fold
Spearman of the net and of the ridge baseline,
and, with --workspace, each pack's qualityStats. With --out FILE the numbers are also written as JSON.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stages.core.contracts import write_json  # noqa: E402
from stages.core.errors import CqError  # noqa: E402
from stages.core.settings import TrainSettings  # noqa: E402
from stages.core.workspace import Workspace  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workspace", help="train on this workspace's packs instead of a synthetic pack")
    parser.add_argument("--pairs", type=int, default=3000, help="pairs of the synthetic pack")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--neg-samples", type=int, default=50000)
    parser.add_argument("--batch-size", type=int, default=TrainSettings.batch_size)
    parser.add_argument("--threads", type=int, default=TrainSettings.threads, help="CPU threads")
    parser.add_argument("--require-cuda", action="store_true")
    parser.add_argument("--out", help="also write the numbers to this JSON file")
    args = parser.parse_args()

    from stages.learn.scoring import score_pack
    from stages.learn.training import train
    from tests.packs import make_pack

    settings = TrainSettings(epochs=args.epochs, neg_samples=args.neg_samples, batch_size=args.batch_size,
                             threads=args.threads, require_cuda=args.require_cuda)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as scratch:
        if args.workspace:
            workspace = Workspace(Path(args.workspace).resolve())
        else:
            workspace = Workspace(Path(scratch))
            started = time.monotonic()
            make_pack(workspace, "synthetic", args.pairs, presets=None, seed=0, rows="shard")
            print(f"synthetic pack: {args.pairs} pairs in {time.monotonic() - started:.1f} s", flush=True)
        started = time.monotonic()
        try:
            report = train(workspace, settings)
        except CqError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        total = time.monotonic() - started
        results = {"device": report["device"], "deviceSnapshot": report["deviceSnapshot"],
                   "epochs": args.epochs, "trainSeconds": report["trainSeconds"], "fitSeconds": report["fitSeconds"],
                   "totalSeconds": round(total, 2), "crossValidationSeconds": report["crossValidationSeconds"],
                   "chosenEpochs": len(report["epochs"]),
                   "examples": {name: source["count"] for name, source in report["sources"].items()},
                   "crossValidation": {key: (report["crossValidation"] or {}).get(key)
                                       for key in ("folds", "pairs", "net", "ridge", "netMinusRidge")},
                   "eliteAuc": report["eliteAuc"], "qualityStats": {}}
        if args.workspace:
            for pack in workspace.packs():
                try:
                    results["qualityStats"][pack] = score_pack(workspace, pack)["qualityStats"]
                except CqError as error:
                    results["qualityStats"][pack] = {"error": str(error)}
    print(f"\nBENCH device={results['device']} epochs={args.epochs} examples={results['examples']}")
    print(f"BENCH k-fold cross-validation {results['crossValidationSeconds']:.1f} s; final fit "
          f"({results['chosenEpochs']} epochs) {results['fitSeconds']:.1f} s; {results['trainSeconds']:.1f} s with "
          f"reading the pack and building features; {results['totalSeconds']:.1f} s with saving")
    validated = results["crossValidation"]
    for model in ("net", "ridge", "netMinusRidge"):
        print(f"BENCH out-of-fold {model}: spearman {(validated[model] or {}).get('spearman')}")
    if results["device"] == "cuda":
        print(f"BENCH nvml before {results['deviceSnapshot']['before']}")
        print(f"BENCH nvml after  {results['deviceSnapshot']['after']}")
    for pack, stats in results["qualityStats"].items():
        print(f"BENCH qualityStats {pack}: {stats}")
    if args.out:
        write_json(Path(args.out), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
