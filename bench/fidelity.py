"""Translation fidelity: our conversion of each `.milk` beside a reference conversion of the same preset.

    python bench/fidelity.py MILK_DIR --out DIR [--reference REF_DIR] [--size 64] [--frames 60] [--only TEXT]

MILK_DIR holds original `.milk` presets; REF_DIR (default: butterchurn-presets' `presets/converted/`) holds
the official butterchurn conversion of each as `<same name>.json` (../shared/fidelity-ref/README.md). Both are
drawn on the sampling page with the same deterministic settings and audio, alone (over a layer that draws
nothing, at full opacity), and their last frames are compared on 32x32 box downsamples:

  mad   mean absolute RGB difference, channels in [0, 1]
  corr  Pearson correlation of the two frames' luma (1.0 when both are flat and equal within `mad`)

Classes, one per preset:
  reference-failed  the reference itself does not draw (shader or EEL failure, or black): not counted
  failed            ours does not translate or does not draw while the reference does
  faithful          mad <= 0.04 or corr >= 0.9
  reference-wrong   different, and listed in bench/fidelity-reference-faults.json: the reference departs from
                    MilkDrop there (each entry says how, and which test pins MilkDrop's behaviour): not counted
  different         the rest

The thresholds (those ../shared/fidelity-ref/README.md measured with) were checked by looking at the
side-by-side thumbnails of 240 presets at 64x64, 60 frames: 205 pairs are bit-identical; every pair above a
threshold reads as the same picture (the worst: mad 0.046 / corr 0.93, a seascape whose waves moved a little;
mad 0.018 / corr 0.73, a flat magenta field whose few highlights shifted); below both, every pair was
another picture (rotated the other way, other colours, another shape) except one at mad 0.06 / corr 0.82
whose noise texture was offset (a fault of the reference: see the faults file).
Writes DIR/fidelity.json (every preset's class and numbers), DIR/thumbs/*.png (each side's last frame) and
DIR/index.html (the thumbnails side by side, worst first). Starts a browser: run it under the shared lock on a shared machine.
"""
from __future__ import annotations

import argparse
import html
import sys
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stages.core.contracts import read_json, write_json  # noqa: E402
from stages.core.errors import CqError  # noqa: E402
from stages.core.workspace import WEB_DIR  # noqa: E402
from stages.presets.conversion import PresetError, convert_milk, load_preset  # noqa: E402
from stages.screen import QUIET_LAYER  # noqa: E402

REFERENCE_DIR = WEB_DIR / "node_modules" / "butterchurn-presets" / "presets" / "converted"
COMPARE_SIZE = 32
FAITHFUL_MAD = 0.04
FAITHFUL_CORR = 0.9
BLACK_LUMA = 0.005   # a reference whose mean luma never reaches this drew nothing (dim pictures still count)
FLAT_STD = 1e-3
CLASSES = ("faithful", "different", "failed", "reference-wrong", "reference-failed")
REFERENCE_FAULTS = Path(__file__).resolve().parent / "fidelity-reference-faults.json"


# ------------------------------------------------------------------------------------ pictures


def decode_png(data: bytes) -> np.ndarray:
    """An 8-bit RGB or RGBA, non-interlaced PNG (what a canvas's toDataURL writes) as (H, W, 3) floats."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    position, chunks, header = 8, [], None
    while position < len(data):
        length = int.from_bytes(data[position:position + 4], "big")
        kind = data[position + 4:position + 8]
        body = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        position += 12 + length
    width, height = int.from_bytes(header[0:4], "big"), int.from_bytes(header[4:8], "big")
    depth, colour, interlace = header[8], header[9], header[12]
    if depth != 8 or colour not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG (depth {depth}, colour type {colour}, interlace {interlace})")
    channels = 4 if colour == 6 else 3
    stride = width * channels
    raw = np.frombuffer(zlib.decompress(b"".join(chunks)), np.uint8).reshape(height, stride + 1)
    pixels = np.zeros((height, stride), np.int32)
    previous = np.zeros(stride, np.int32)
    for row in range(height):
        kind, line = raw[row, 0], raw[row, 1:].astype(np.int32)
        if kind == 0:
            current = line
        elif kind == 2:
            current = (line + previous) & 255
        else:   # Sub, Average, Paeth depend on the pixel to the left: one pixel at a time
            current = np.zeros(stride, np.int32)
            for i in range(stride):
                left = current[i - channels] if i >= channels else 0
                up = previous[i]
                if kind == 1:
                    predicted = left
                elif kind == 3:
                    predicted = (left + up) // 2
                else:
                    upper_left = previous[i - channels] if i >= channels else 0
                    estimate = left + up - upper_left
                    distances = (abs(estimate - left), abs(estimate - up), abs(estimate - upper_left))
                    predicted = (left, up, upper_left)[distances.index(min(distances))]
                current[i] = (line[i] + predicted) & 255
        pixels[row] = current
        previous = current
    return pixels.reshape(height, width, channels)[:, :, :3].astype(np.float64) / 255.0


def downsample(image: np.ndarray, size: int = COMPARE_SIZE) -> np.ndarray:
    """Box average to size x size (the render size must be a multiple of `size`)."""
    height, width, _ = image.shape
    if height % size or width % size:
        raise CqError(f"render size {width}x{height} is not a multiple of {size}: use --size 32, 64, 128, ...")
    return image.reshape(size, height // size, size, width // size, 3).mean(axis=(1, 3))


def luma(image: np.ndarray) -> np.ndarray:
    return image @ np.array([0.2126, 0.7152, 0.0722])


def compare(ours: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(mad, corr) of two downsampled frames."""
    mad = float(np.abs(ours - reference).mean())
    y_ours, y_reference = luma(ours).ravel(), luma(reference).ravel()
    if y_ours.std() < FLAT_STD or y_reference.std() < FLAT_STD:
        corr = 1.0 if mad <= FAITHFUL_MAD else 0.0
    else:
        corr = float(np.corrcoef(y_ours, y_reference)[0, 1])
    return mad, corr


def classify(ours_status: str, reference_status: str, mad: float | None, corr: float | None,
             reference_fault: str = "") -> str:
    if reference_status != "ok":
        return "reference-failed"
    if ours_status == "ok" and (mad <= FAITHFUL_MAD or corr >= FAITHFUL_CORR):
        return "faithful"
    if reference_fault:
        return "reference-wrong"
    return "failed" if ours_status != "ok" else "different"


def reference_faults(path: Path = REFERENCE_FAULTS) -> dict[str, str]:
    """{preset name: how its reference conversion departs from MilkDrop}."""
    faults = read_json(path).get("presets", {})
    if not isinstance(faults, dict) or not all(isinstance(v, str) and v for v in faults.values()):
        raise CqError(f"{path}: 'presets' must map preset names to the reference's fault")
    return faults


# ------------------------------------------------------------------------------------ the run


@dataclass
class Side:
    status: str = ""
    message: str = ""
    thumb: bytes = b""
    picture: np.ndarray | None = None


def _drawn(result) -> Side:
    if result.status != "ok":
        return Side(result.status, "; ".join(error.splitlines()[0] for error in result.errors)[:500])
    lumas = result.series.get("fgLuma") or [0.0]
    if max(lumas) < BLACK_LUMA:
        return Side("black", f"max mean luma {max(lumas):.4f}", result.thumb_png)
    return Side("ok", "", result.thumb_png, downsample(decode_png(result.thumb_png)))


def run(milk_dir: Path, out_dir: Path, reference_dir: Path = REFERENCE_DIR, size: int = 64, frames: int = 60,
        only: tuple[str, ...] = (), workers: int = 1, chromium: str = "") -> dict:
    from stages.core.progress import Progress
    from stages.core.settings import SampleSettings
    from stages.render.audio import load_audio
    from stages.render.pool import PairJob, RenderPool

    milk_paths = sorted(path for path in Path(milk_dir).glob("*.milk")
                        if not only or any(text.lower() in path.name.lower() for text in only))
    pairs = [(path, Path(reference_dir) / f"{path.stem}.json") for path in milk_paths]
    pairs = [(milk, reference) for milk, reference in pairs if reference.is_file()]
    if not pairs:
        raise CqError(f"{milk_dir}: no .milk preset with a reference conversion in {reference_dir}")
    settings = SampleSettings(width=size, height=size, frames=frames, readback=min(size, COMPARE_SIZE),
                              fg_opacity=1.0, thumb_frame=frames - 1, workers=workers, pair_timeout_s=60.0,
                              chromium=chromium).validate()
    records, jobs = [], []
    with tempfile.TemporaryDirectory(prefix="cq-fidelity-") as state:
        cache = Path(state) / "milk-cache"
        for index, (milk_path, reference_path) in enumerate(pairs):
            record = {"name": milk_path.stem, "ours": Side(), "reference": Side()}
            records.append(record)
            conversion = convert_milk(milk_path, cache)
            if conversion.status == "ok":
                jobs.append(PairJob(2 * index, conversion.preset, QUIET_LAYER, "ours", "quiet"))
            else:
                record["ours"] = Side(conversion.status, conversion.message.removeprefix(f"{milk_path}: "))
            try:
                jobs.append(PairJob(2 * index + 1, load_preset(reference_path), QUIET_LAYER, "reference", "quiet"))
            except PresetError as error:
                record["reference"] = Side(error.status, str(error))
        progress = Progress("fidelity", total=len(jobs), unit="renders")
        with RenderPool(settings, load_audio(settings).frames, Path(state)) as pool:
            for result in pool.render(jobs):
                records[result.job.pair // 2][result.job.fg_id] = _drawn(result)
                progress.update()
            renderer = pool.renderer
        progress.close()
    faults = reference_faults()
    rows = []
    for record in records:
        ours, reference = record["ours"], record["reference"]
        mad = corr = None
        if ours.picture is not None and reference.picture is not None:
            mad, corr = compare(ours.picture, reference.picture)
        fault = faults.get(record["name"], "")
        rows.append({"name": record["name"], "class": classify(ours.status, reference.status, mad, corr, fault),
                     "referenceFault": fault,
                     "mad": None if mad is None else round(mad, 4), "corr": None if corr is None else round(corr, 4),
                     "ours": {"status": ours.status, "message": ours.message},
                     "reference": {"status": reference.status, "message": reference.message},
                     "thumbs": (ours.thumb, reference.thumb)})
    counts = {name: sum(row["class"] == name for row in rows) for name in CLASSES}
    counted = len(rows) - counts["reference-failed"] - counts["reference-wrong"]
    summary = {"milk": str(milk_dir), "reference": str(reference_dir), "renderer": renderer,
               "settings": {"size": size, "frames": frames, "compare": COMPARE_SIZE, "faithfulMad": FAITHFUL_MAD,
                            "faithfulCorr": FAITHFUL_CORR},
               "total": len(rows), "counted": counted, "counts": counts,
               "faithfulShare": round(counts["faithful"] / counted, 4) if counted else 0.0}
    out_dir = Path(out_dir)
    (out_dir / "thumbs").mkdir(parents=True, exist_ok=True)
    for number, row in enumerate(rows):
        row["files"] = []
        for side, thumb in zip(("ours", "reference"), row["thumbs"]):
            name = f"thumbs/{number:04d}-{side}.png" if thumb else ""
            if thumb:
                (out_dir / name).write_bytes(thumb)
            row["files"].append(name)
    write_json(out_dir / "fidelity.json", {**summary, "presets": [{k: v for k, v in row.items() if k != "thumbs"}
                                                                    for row in rows]})
    (out_dir / "index.html").write_text(_page(summary, rows), encoding="utf-8")
    return summary


def _page(summary: dict, rows: list[dict]) -> str:
    order = {"failed": 0, "different": 1, "reference-wrong": 2, "faithful": 3, "reference-failed": 4}
    rows = sorted(rows, key=lambda row: (order[row["class"]], -(row["mad"] or 0)))
    lines = ["<!doctype html><meta charset='utf-8'><title>fidelity</title>",
             "<style>body{font:13px sans-serif;background:#222;color:#ddd} td{padding:4px;vertical-align:top}"
             " img{width:128px;height:128px;image-rendering:pixelated;background:#000}"
             " .different,.failed{color:#f88}</style>",
             f"<h1>Fidelity: {summary['counts']['faithful']} of {summary['counted']} counted faithful "
             f"({100 * summary['faithfulShare']:.1f}%)</h1>",
             f"<p>{html.escape(str(summary['counts']))}; {summary['settings']}; {html.escape(summary['renderer'])}"
             "</p><table><tr><th>preset</th><th>ours</th><th>reference</th><th>class</th><th>mad</th><th>corr</th>"
             "<th>notes</th></tr>"]
    for row in rows:
        images = "".join(f"<td><img src='{name}'></td>" if name else "<td>-</td>" for name in row["files"])
        notes = "; ".join([f"{side}: {row[side]['status']} {row[side]['message']}" for side in ("ours", "reference")
                           if row[side]["status"] != "ok"] + [row["referenceFault"]] * bool(row["referenceFault"]))
        lines.append(f"<tr><td>{html.escape(row['name'])}</td>{images}<td class='{row['class']}'>{row['class']}</td>"
                     f"<td>{row['mad']}</td><td>{row['corr']}</td><td>{html.escape(notes)}</td></tr>")
    lines.append("</table>")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("milk_dir", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="folder for fidelity.json and index.html")
    parser.add_argument("--reference", type=Path, default=REFERENCE_DIR, help="folder of reference .json conversions")
    parser.add_argument("--size", type=int, default=64, help="render size (a multiple of 32)")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--only", action="append", default=[],
                        help="only presets whose name contains this text (repeat for several)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--chromium", default="")
    args = parser.parse_args(argv)
    try:
        summary = run(args.milk_dir, args.out, args.reference, args.size, args.frames, tuple(args.only), args.workers,
                      args.chromium)
    except CqError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{summary['counts']['faithful']}/{summary['counted']} counted faithful "
          f"({100 * summary['faithfulShare']:.1f}%); {summary['counts']}; report: {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
