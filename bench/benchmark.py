"""Benchmarks that print the figures the issues name (measured, never asserted).

    python bench/benchmark.py sample --workers 1 --pairs 40   # demo pack pairs/min at 128x128, 120 frames
    python bench/benchmark.py sample --workers 16 --count 960 --pairs 960   # a bigger pack "bench" of demo-style
                                                                            # pairs, for many workers
    python bench/benchmark.py sample --workspace WS --pack corpus --pairs 40   # a pack already in WS
    python bench/benchmark.py noop                            # wall time of a no-op `doit` (all up to date)

Each run uses its own workspace under /tmp (or --workspace), builds the demo pack there, and runs real
`doit` in a subprocess, as a user would. `sample` reports two rates: wall (browser start and self-test
included) and steady (first row to last row).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stages import demopack  # noqa: E402
from stages.core.contracts import MANIFEST_NAME, Manifest, load_manifest, read_jsonl, write_json  # noqa: E402
from stages.core.workspace import CHECKOUT, Workspace  # noqa: E402


def doit(workspace: Workspace, *args: str) -> float:
    """Run doit in the workspace; return its wall time in seconds."""
    env = {**os.environ, "CQ_WORKSPACE": str(workspace.root)}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "doit", "-f", str(CHECKOUT / "dodo.py"), *args], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def sampled_rows(workspace: Workspace, pack: str) -> list[dict]:
    return [row for path in sorted(workspace.shards_dir(pack).glob("*.jsonl")) for row in read_jsonl(path).rows]


def build_bench_pack(workspace: Workspace, count: int) -> str:
    """A pack named "bench" of `count` demo-style pairs (the demo pack itself is fixed at its size)."""
    staging = Workspace(workspace.root / ".bench-build")
    demopack.run(staging, count=count)
    target = workspace.pack_dir("bench")
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(staging.pack_dir("demo"), target)
    shutil.rmtree(staging.root)
    moved = load_manifest(target / MANIFEST_NAME)
    pairs = [dataclasses.replace(p, fgUrl=p.fgUrl.replace("/demo/", "/bench/", 1),
                                 bgUrl=p.bgUrl.replace("/demo/", "/bench/", 1)) for p in moved.pairs]
    write_json(target / MANIFEST_NAME, Manifest(moved.path, "bench", pairs, moved.generatedAt).to_json())
    return "bench"


def bench_sample(workspace: Workspace, workers: int, pairs: int, count: int, pack: str, extra: list[str]) -> None:
    if pack:
        pass  # a pack already in the workspace (e.g. real .milk presets)
    elif count:
        pack = build_bench_pack(workspace, count)
    else:
        pack = "demo"
        doit(workspace, "demo_pack")
    manifest_pairs = len(load_manifest(workspace.manifest_path(pack)).pairs)
    coverage = min(1.0, pairs / manifest_pairs)
    wall = doit(workspace, "sample", "--packs", pack, "--workers", str(workers),
                "--target-coverage", f"{coverage:.6f}", *extra)
    rows = sampled_rows(workspace, pack)
    stamps = sorted(row["tMs"] / 1000 for row in rows)
    steady = (len(rows) - 1) / (stamps[-1] - stamps[0]) * 60 if len(rows) > 1 and stamps[-1] > stamps[0] else 0
    ok = sum(row["status"] == "ok" for row in rows)
    render_ms = [row["timings"].get("renderMs", 0) for row in rows if row["timings"]]
    page_ms = [sum(row["timings"].get(k, 0) for k in ("createMs", "loadMs", "renderMs")) for row in rows]
    print(f"sample: {len(rows)} pairs ({ok} ok), workers={workers}, renderer={rows[0]['renderer'] if rows else '?'}")
    print(f"  wall   {wall:.1f} s -> {len(rows) / wall * 60:.1f} pairs/min (browser start + self-test included)")
    print(f"  steady {steady:.1f} pairs/min (first row to last row)")
    if render_ms:
        print(f"  per-pair render time: median {statistics.median(render_ms):.0f} ms")
        for name in ("createMs", "loadMs"):
            print(f"  per-pair {name}: median {statistics.median(r['timings'].get(name, 0) for r in rows):.0f} ms")
    if len(rows) > 1 and stamps[-1] > stamps[0]:
        busy = sum(page_ms) / 1000 / (workers * (stamps[-1] - stamps[0]))
        print(f"  workers busy in the page (create + load + render) {busy:.0%} of the steady time")


def bench_noop(workspace: Workspace, repeats: int) -> None:
    doit(workspace)
    times = [doit(workspace) for _ in range(repeats)]
    print(f"no-op doit: median {statistics.median(times):.2f} s, min {min(times):.2f} s over {repeats} runs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["sample", "noop"])
    parser.add_argument("--workspace", type=Path, help="workspace root (default: a new temp folder)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=40, help="pairs to sample")
    parser.add_argument("--count", type=int, default=0, help="sample a pack of this many pairs, not the demo")
    parser.add_argument("--pack", default="", help="sample this pack of the workspace as it is")
    parser.add_argument("--repeats", type=int, default=5)
    args, extra = parser.parse_known_args()
    root = args.workspace or Path(tempfile.mkdtemp(prefix="cq-bench-"))
    workspace = Workspace(root.resolve())
    print(f"workspace: {workspace.root}")
    if args.what == "sample":
        bench_sample(workspace, args.workers, args.pairs, args.count, args.pack, extra)
    else:
        bench_noop(workspace, args.repeats)


if __name__ == "__main__":
    main()
