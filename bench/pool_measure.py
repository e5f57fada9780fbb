"""`python bench/pool_measure.py DIR`: pairs/min of the render pool on consecutive presets of DIR (*.json),
browser start excluded, with median per-pair timings."""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from stages.core.errors import CqError
from stages.core.progress import Progress
from stages.core.settings import SampleSettings
from stages.presets.conversion import load_preset
from stages.render.audio import load_audio
from stages.render.pool import PairJob, RenderPool


def measure(settings: SampleSettings, jobs: list[PairJob], audio_frames, state_dir: Path) -> dict:
    """Render `jobs` in a fresh pool and report pairs/min (browser start excluded) and per-pair timings."""
    started = time.perf_counter()
    with RenderPool(settings, audio_frames, state_dir) as pool:
        ready = time.perf_counter()
        progress = Progress("measure", total=len(jobs))
        results = []
        for result in pool.render(jobs):
            results.append(result)
            progress.update(extra=f"{result.status} restarts {pool.restarts}")
        progress.close()
        finished = time.perf_counter()
        renderer, restarts = pool.renderer, pool.restarts

    def median(key: str) -> float:
        values = [result.timings[key] for result in results if result.timings.get(key)]
        return float(np.median(values)) if values else 0.0

    statuses: dict[str, int] = {}
    for result in results:
        statuses[result.status] = statuses.get(result.status, 0) + 1
    return {"renderer": renderer, "workers": settings.worker_count, "size": f"{settings.width}x{settings.height}",
            "frames": settings.frames, "pairs": len(results), "statuses": statuses, "restarts": restarts,
            "startS": round(ready - started, 2), "renderS": round(finished - ready, 2),
            "pairsPerMin": round(len(results) / (finished - ready) * 60, 2) if results else 0.0,
            "medianMs": {key: round(median(key), 1) for key in ("createMs", "loadMs", "renderMs")}}


def main(argv: list[str] | None = None) -> None:
    """Pairs/min of the render pool on consecutive presets of a folder."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("presets", type=Path, help="folder of butterchurn .json presets (read one level deep)")
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--gpu-mode", default="off", choices=["off", "safe", "require"])
    parser.add_argument("--chromium", default="")
    args = parser.parse_args(argv)
    files = sorted(args.presets.glob("*.json"))
    if len(files) < 2:
        raise SystemExit(f"{args.presets}: need at least 2 .json presets")
    settings = SampleSettings(width=args.size, height=args.size, frames=args.frames, workers=args.workers,
                              gpu_mode=args.gpu_mode, chromium=args.chromium)
    jobs = []
    for index in range(args.pairs):
        fg, bg = files[index % len(files)], files[(index + 1) % len(files)]
        jobs.append(PairJob(index, load_preset(fg), load_preset(bg), fg.name, bg.name))
    with tempfile.TemporaryDirectory(prefix="cq-measure-") as state_dir:
        try:
            report = measure(settings, jobs, load_audio(settings).frames, Path(state_dir))
        except CqError as error:
            raise SystemExit(f"error: {error}") from None
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
