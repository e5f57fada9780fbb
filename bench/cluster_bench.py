"""Pairs/min of the Dask executor against the local pool on the same pack (the engine's overhead).

    python bench/cluster_bench.py --browsers 2 --pairs 40            # this box: 2 browsers either way
    python bench/cluster_bench.py --browsers 16 --pairs 480 --gpu-mode require   # a GPU machine, 16 cores as one
                                                                                  # node with GPU=1

Builds a pack "bench" of demo-style pairs (128x128, 120 frames: the sampler's defaults) in two temp
workspaces, then samples it with real `doit`: once locally with --workers B, once with executor dask on a
LocalCluster this script starts (one worker process with B threads, so B browsers, and `GPU=1` as a resource
under gpu_mode require), as a user's one-node cluster would be. Prints wall (browser start and self-test
included) and steady (first row to last row) pairs/min for both, the import cost of `distributed` and the
cluster's start time, and checks that both runs wrote the same content keys.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmark import build_bench_pack, doit, sampled_rows  # noqa: E402

from stages.core.contracts import load_manifest  # noqa: E402
from stages.core.workspace import Workspace  # noqa: E402


def rates(workspace: Workspace, wall: float) -> tuple[int, float, float]:
    rows = sampled_rows(workspace, "bench")
    stamps = sorted(row["tMs"] / 1000 for row in rows)
    steady = (len(rows) - 1) / (stamps[-1] - stamps[0]) * 60 if len(rows) > 1 and stamps[-1] > stamps[0] else 0.0
    return len(rows), len(rows) / wall * 60, steady


def import_cost() -> float:
    """Seconds a fresh interpreter takes to import distributed (what a local user never pays)."""
    code = "import time; t = time.perf_counter(); import distributed; print(time.perf_counter() - t)"
    return float(subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True,
                                check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--browsers", type=int, default=2, help="browsers: --workers locally, threads of the node")
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--gpu-mode", default="off", choices=["off", "safe", "require"])
    parser.add_argument("--root", type=Path, help="folder for the two workspaces (default: a new temp folder)")
    args, extra = parser.parse_known_args()
    root = (args.root or Path(tempfile.mkdtemp(prefix="cq-cluster-bench-"))).resolve()
    local, remote = Workspace(root / "local"), Workspace(root / "dask")
    build_bench_pack(local, args.pairs)
    shutil.copytree(local.pack_dir("bench"), remote.pack_dir("bench"))
    coverage = min(1.0, args.pairs / len(load_manifest(local.manifest_path("bench")).pairs))
    common = ["sample", "--packs", "bench", "--target-coverage", f"{coverage:.6f}", "--gpu-mode", args.gpu_mode,
              "--workers", str(args.browsers), *extra]
    print(f"workspaces: {root}; {args.pairs} pairs, {args.browsers} browsers, gpu mode {args.gpu_mode}", flush=True)
    print(f"import distributed: {import_cost():.2f} s (paid only with executor dask)", flush=True)

    wall = doit(local, *common)
    count, wall_rate, steady = rates(local, wall)
    print(f"local: {count} pairs, wall {wall:.1f} s -> {wall_rate:.1f} pairs/min, steady {steady:.1f} pairs/min",
          flush=True)

    from stages.render.cluster import local_cluster

    started = time.perf_counter()
    with local_cluster(args.gpu_mode, workers=1, browsers=args.browsers) as cluster:
        print(f"LocalCluster up in {time.perf_counter() - started:.1f} s at {cluster.scheduler_address}", flush=True)
        wall = doit(remote, *common, "--executor", "dask", "--address", cluster.scheduler_address)
    count, dask_wall_rate, dask_steady = rates(remote, wall)
    print(f"dask:  {count} pairs, wall {wall:.1f} s -> {dask_wall_rate:.1f} pairs/min, steady {dask_steady:.1f} "
          f"pairs/min", flush=True)
    if steady:
        print(f"dask/local: wall {dask_wall_rate / wall_rate:.2f}, steady {dask_steady / steady:.2f}")
    keys = [{row["contentKey"] for row in sampled_rows(workspace, "bench")} for workspace in (local, remote)]
    print(f"same content keys: {keys[0] == keys[1]} ({len(keys[0] & keys[1])} shared)")


if __name__ == "__main__":
    main()
