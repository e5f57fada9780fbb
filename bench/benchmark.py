"""Benchmarks that print the figures the issues name (measured, never asserted).

    python bench/benchmark.py sample --workers 1 --pairs 40   # demo pack pairs/min at 128x128, 120 frames
    python bench/benchmark.py sample --workers 1,16,32 --count 960 --pairs 960   # one run per concurrency
    python bench/benchmark.py sample --workers 16 --count 960 --pairs 960   # a bigger pack "bench" of demo-style
                                                                            # pairs, for many workers
    python bench/benchmark.py sample --workspace WS --pack corpus --pairs 40   # a pack already in WS
    python bench/benchmark.py noop                            # wall time of a no-op `doit` (all up to date)

Each run uses its own workspace under /tmp (or --workspace), builds the demo pack there, and runs real
`doit` in a subprocess, as a user would. `sample` reports two rates: wall (browser start and self-test
included) and steady (first row to last row), how busy the workers were, the machine's CPU and (when pynvml
sees one) the GPU's utilisation, power and memory, a profile of the workers' time per stage (create, load,
render calls, readback, page statistics, thumbnail, IPC) plus the main thread's cost per row, and the
render cost per frame with how many pairs each `max_frame_ms` cap would cut. Extra arguments go to
`doit sample` (e.g. `--gpu-mode require --max-frame-ms 100`).

Every run states its too-heavy share beside its rate: a rate bought by cutting pairs is not the same figure.
`--workers` takes a list: each concurrency samples the same pairs in its own workspace (a subfolder), and the
summary names the headline (the best steady rate) with the too-heavy share measured in that same run, as well
as how many pairs the pool re-checked alone (cut under load, then judged with nothing else in flight).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stages import demopack  # noqa: E402
from stages.core.contracts import MANIFEST_NAME, Manifest, load_manifest, read_jsonl, write_json  # noqa: E402
from stages.core.workspace import CHECKOUT, Workspace  # noqa: E402


def doit(workspace: Workspace, *args: str, capture: bool = False) -> tuple[float, str]:
    """Run doit in the workspace; return its wall time in seconds (and its output when captured)."""
    env = {**os.environ, "CQ_WORKSPACE": str(workspace.root)}
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "doit", "-f", str(CHECKOUT / "dodo.py"), *args], env=env,
                            check=True, stdout=subprocess.PIPE if capture else subprocess.DEVNULL, text=True)
    return time.perf_counter() - started, result.stdout or ""


class Monitor:
    """Samples the machine while a run goes on: CPU busy fraction (psutil) and, when NVML sees a GPU,
    its utilisation, power and memory (every `period` seconds, in a background thread)."""

    def __init__(self, period: float = 0.5):
        self.period = period
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._gpus = []
        try:
            import pynvml
            pynvml.nvmlInit()
            self._nvml = pynvml
            self._gpus = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception:  # no driver or no GPU: CPU figures only
            self._nvml = None

    def __enter__(self) -> "Monitor":
        psutil.cpu_percent(interval=None)  # starts the interval that __exit__ reads
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.cpu_busy = psutil.cpu_percent(interval=None) / 100

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            if not self._gpus:
                continue
            sample = {"util": 0.0, "powerW": 0.0, "memGiB": 0.0}
            for handle in self._gpus:
                sample["util"] = max(sample["util"], self._nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
                sample["powerW"] += self._nvml.nvmlDeviceGetPowerUsage(handle) / 1000
                sample["memGiB"] += self._nvml.nvmlDeviceGetMemoryInfo(handle).used / 2**30
            self.samples.append(sample)

    def report(self) -> list[str]:
        lines = [f"  machine CPU busy {self.cpu_busy:.0%} ({os.cpu_count()} cores) during the run"]
        if self.samples:
            def stat(key):
                values = [sample[key] for sample in self.samples]
                return statistics.mean(values), max(values)
            util, power, memory = stat("util"), stat("powerW"), stat("memGiB")
            lines.append(f"  GPU utilisation mean {util[0]:.0f}% max {util[1]:.0f}%, power mean {power[0]:.0f} W "
                         f"max {power[1]:.0f} W, memory max {memory[1]:.2f} GiB ({len(self._gpus)} GPU)")
        else:
            lines.append("  GPU: none seen by pynvml")
        return lines


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


@dataclasses.dataclass
class SampleRun:
    """What one concurrency gave: its rates and the share of its pairs cut as too-heavy."""

    workers: int
    pairs: int
    wall_rate: float
    steady_rate: float
    too_heavy: int
    rechecked: int  # cut under load, then rendered again alone
    caps: list[float]  # the max_frame_ms the rows were judged under

    def line(self) -> str:
        share = self.too_heavy / self.pairs if self.pairs else 0.0
        caps = ", ".join(f"{cap:g}" for cap in self.caps) or "?"
        return (f"{self.workers:>3} browsers: {self.wall_rate:7.1f} pairs/min wall, {self.steady_rate:7.1f} steady; "
                f"too-heavy {self.too_heavy} of {self.pairs} ({share:.1%}) under max_frame_ms {caps} ms, "
                f"{self.rechecked} re-checked alone")


def bench_sample(workspace: Workspace, workers: int, pairs: int, count: int, pack: str, extra: list[str]) -> SampleRun:
    if pack:
        pass  # a pack already in the workspace (e.g. real .milk presets)
    elif count:
        pack = build_bench_pack(workspace, count)
    else:
        pack = "demo"
        doit(workspace, "demo_pack")
    manifest_pairs = len(load_manifest(workspace.manifest_path(pack)).pairs)
    coverage = min(1.0, pairs / manifest_pairs)
    with Monitor() as monitor:
        wall, output = doit(workspace, "sample", "--packs", pack, "--workers", str(workers),
                            "--target-coverage", f"{coverage:.6f}", *extra, capture=True)
    rows = sampled_rows(workspace, pack)
    print(f"sample: {len(rows)} pairs, workers={workers}, renderer={rows[0]['renderer'] if rows else '?'}")
    statuses = Counter(row["status"] for row in rows)
    print("  statuses: " + ", ".join(f"{name} {number}" for name, number in statuses.most_common()))
    print(f"  wall   {wall:.1f} s -> {len(rows) / wall * 60:.1f} pairs/min (browser start + self-test included)")
    stamps = sorted(row["tMs"] / 1000 for row in rows)
    span = stamps[-1] - stamps[0] if len(rows) > 1 else 0
    steady = (len(rows) - 1) / span * 60 if span > 0 else 0.0
    if span > 0:
        print(f"  steady {steady:.1f} pairs/min (first row to last row)")
    run = SampleRun(workers, len(rows), len(rows) / wall * 60, steady,
                    sum(row["status"] == "too-heavy" for row in rows),
                    sum("sharedFrameMs" in row["timings"] for row in rows),
                    sorted({row["timings"]["maxFrameMs"] for row in rows if "maxFrameMs" in row["timings"]}))
    print("  " + run.line())
    timed = [row["timings"] for row in rows if row["timings"].get("pairMs")]
    if timed and span > 0:
        print(f"  workers busy with a pair {sum(t['pairMs'] for t in timed) / 1000 / (workers * span):.0%} "
              "of the steady time")
    for line in monitor.report():
        print(line)
    if timed:
        print_profile(timed, output)
        print_cost(rows)
    return run


def print_profile(timed: list[dict], output: str) -> None:
    """Where a pair's time goes, summed over the run (per-pair medians alongside)."""
    stages = {
        "create": [t.get("createMs", 0) for t in timed],
        "load": [t.get("loadMs", 0) for t in timed],
        "frames (render calls)": [t.get("framesMs", 0) for t in timed],
        "readback (GPU wait)": [t.get("readbackMs", 0) for t in timed],
        "statistics (page)": [t.get("statsMs", 0) for t in timed],
        "thumbnail": [t.get("thumbMs", 0) for t in timed],
        "IPC, fresh pages, retries": [t["pairMs"] - t.get("createMs", 0) - t.get("loadMs", 0) - t.get("renderMs", 0)
                                      for t in timed],
    }
    total = sum(t["pairMs"] for t in timed)
    print(f"  profile of the workers' time ({total / 1000:.1f} s over {len(timed)} pairs):")
    for name, values in stages.items():
        print(f"    {name:<28} {sum(values) / total:6.1%}   median {statistics.median(values):7.1f} ms/pair")
    main_thread = re.search(r"main thread per row: composition and row ([\d.]+) ms, write and fsync ([\d.]+) ms",
                            output)
    if main_thread:
        print(f"    main thread (Python), per row: composition and row {main_thread[1]} ms, write and fsync "
              f"{main_thread[2]} ms")


def print_cost(rows: list[dict]) -> None:
    """The render cost per frame (wall, both layers) and how many pairs each cap would cut."""
    costs = sorted(row["timings"]["frameMs"] for row in rows if row["timings"].get("frameMs"))
    if not costs:
        return
    def quantile(q):
        return costs[min(len(costs) - 1, int(q * len(costs)))]
    print(f"  render cost per frame (ms, {rows[0]['timings'].get('costClock', 'wall')}): median {quantile(0.5):.1f}, "
          f"p90 {quantile(0.9):.1f}, p99 {quantile(0.99):.1f}, max {costs[-1]:.1f}")
    cuts = ", ".join(f"{cap} ms: {sum(cost > cap for cost in costs)}" for cap in (10, 25, 50, 100, 200, 400))
    print(f"  pairs whose cost here is over a cap (of {len(costs)}; wall time under this run's load, while a cut "
          f"is judged alone): {cuts}")


def bench_noop(workspace: Workspace, repeats: int) -> None:
    doit(workspace)
    times = [doit(workspace)[0] for _ in range(repeats)]
    print(f"no-op doit: median {statistics.median(times):.2f} s, min {min(times):.2f} s over {repeats} runs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["sample", "noop"])
    parser.add_argument("--workspace", type=Path, help="workspace root (default: a new temp folder)")
    parser.add_argument("--workers", default="1", help="browsers, or a comma-separated list: one run each")
    parser.add_argument("--pairs", type=int, default=40, help="pairs to sample")
    parser.add_argument("--count", type=int, default=0, help="sample a pack of this many pairs, not the demo")
    parser.add_argument("--pack", default="", help="sample this pack of the workspace as it is")
    parser.add_argument("--repeats", type=int, default=5)
    args, extra = parser.parse_known_args()
    root = args.workspace or Path(tempfile.mkdtemp(prefix="cq-bench-"))
    workspace = Workspace(root.resolve())
    print(f"workspace: {workspace.root}")
    if args.what == "sample":
        concurrencies = [int(value) for value in args.workers.split(",")]
        if len(concurrencies) == 1:
            bench_sample(workspace, concurrencies[0], args.pairs, args.count, args.pack, extra)
            return
        if args.pack:
            parser.error("--pack samples a workspace's pack as it is: give one --workers value")
        runs = [bench_sample(Workspace(workspace.root / f"workers-{workers}"), workers, args.pairs, args.count, "",
                             extra) for workers in concurrencies]
        print("summary (each concurrency sampled the same pairs from scratch):")
        for run in runs:
            print("  " + run.line())
        best = max(runs, key=lambda run: run.steady_rate)
        print(f"headline: {best.line()}")
    else:
        bench_noop(workspace, args.repeats)


if __name__ == "__main__":
    main()
