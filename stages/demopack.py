"""The bundled demo pack: coupled fg/bg variants of butterchurn-presets that screen clean.

In: `data/demo-bases.json` (the presets of butterchurn-presets that load, link their shaders and draw
non-black frames; written by `python -m stages.cli demo-bases`), the converted presets in
`web/node_modules/butterchurn-presets/presets/converted/`, a seed and a pair count.
Out, under the workspace's `public/presets/demo/`:
    fg/demo_00001_fg.json, bg/demo_00001_bg.json, ...   butterchurn preset JSON, the two variants of each pair
    pairs-manifest.v0.json                               the pairs, with warp_diff and cx_diff
    coupling.v0.json                                     each pair's base preset, its variants' numbers and
                                                         every fg - bg offset

The "3D coupling" the original packs were generated with: both layers of a pair are variants of the same
base preset, pushed apart along three groups of its `baseVals` (motion: centre cx/cy, rotation, zoom and the
motion vectors mv_dx/mv_dy/mv_l; warp; colour: wave_r/g/b). Each base gives VARIANTS presets: for each
parameter, variant k is c + (k - 1)*d, where d is a seeded random offset of 25-100% of that parameter's scale
(either sign) and c is the base value (butterchurn's default where the preset leaves it out), moved inside
the parameter's range where needed so every variant stays valid. Every ordered pair of distinct variants of
a base is a pair of the pack (6 pairs from 3 presets), as in a real pack where each preset plays in many
pairs: the sampler renders each preset once (`stages.sample`), so 120 pairs cost 60 renders, not 240. The
manifest records `warp_diff` = fg.warp - bg.warp and `cx_diff` = fg.cx - bg.cx.

Same seed and count, same bytes: the stdlib's seeded `random.Random`, a fixed `generatedAt`, ordered keys.

`python -m stages.cli demo-bases` renders every converted preset alone (16 frames at 32x32, one browser,
~18 min on two busy cores) with `stages.render.RenderPool` and rewrites `data/demo-bases.json`. A preset is
rejected, with the reason recorded, when its shaders use a `texsize_<image>` butterchurn never declares
(found without rendering), when it fails to load, link or run its equations, times out, draws black (mean
luma below SCREEN_MIN_LUMA in every frame of the second half) or loads slower than SCREEN_MAX_LOAD_MS.
"""
from __future__ import annotations

import copy
import dataclasses
import random
import re
from pathlib import Path

from .core.contracts import Manifest, ManifestPair, read_json, write_json
from .core.errors import ContractError, CqError
from .core.progress import Progress
from .core.settings import SampleSettings
from .core.workspace import DATA_DIR, NODE_MODULES_DIR, Workspace, command, tool_command
from .presets.conversion import load_preset

DEMO_PACK = "demo"
DEFAULT_SEED = 1
DEFAULT_COUNT = 120
VARIANTS = 3  # presets made from each base; each ordered pair of them is a pair of the pack
GENERATED_AT = "2024-01-01T00:00:00Z"  # fixed: the pack is a pure function of seed, count and bases
BASES_PATH = DATA_DIR / "demo-bases.json"
PRESETS_SOURCE = "butterchurn-presets@3.0.0-beta.4"
PRESETS_DIR = NODE_MODULES_DIR / "butterchurn-presets" / "presets" / "converted"
COUPLING_NAME = "coupling.v0.json"
DIGITS = 6
_PAIR_FILE = re.compile(r"^demo_\d{5}_(fg|bg)\.json$")
BUTTERCHURN_JS = NODE_MODULES_DIR / "butterchurn" / "dist" / "butterchurn.js"
SCREEN_FRAMES = 16
SCREEN_SIZE = 32         # a preset's cost here is its equations more than its pixels: small is enough
SCREEN_MIN_LUMA = 0.002  # "draws something": a base must reach this mean luma in a frame of the second half
SCREEN_MAX_LOAD_MS = 5000.0  # slower presets would dominate a demo run on two cores


@dataclasses.dataclass(frozen=True)
class Coupled:
    """One baseVals parameter the variants are pushed apart on."""

    name: str
    group: str      # motion | warp | colour
    default: float  # butterchurn's value when a preset leaves the parameter out
    scale: float    # largest |d|
    low: float = -1e9
    high: float = 1e9


COUPLING = (
    Coupled("cx", "motion", 0.5, 0.03, 0.0, 1.0),
    Coupled("cy", "motion", 0.5, 0.03, 0.0, 1.0),
    Coupled("rot", "motion", 0.0, 0.03),
    Coupled("zoom", "motion", 1.0, 0.01, 0.0),
    Coupled("mv_dx", "motion", 0.0, 0.02, -1.0, 1.0),
    Coupled("mv_dy", "motion", 0.0, 0.02, -1.0, 1.0),
    Coupled("mv_l", "motion", 0.9, 0.3, 0.0, 5.0),
    Coupled("warp", "warp", 1.0, 0.25, 0.0),
    Coupled("wave_r", "colour", 1.0, 0.12, 0.0, 1.0),
    Coupled("wave_g", "colour", 1.0, 0.12, 0.0, 1.0),
    Coupled("wave_b", "colour", 1.0, 0.12, 0.0, 1.0),
)


# ------------------------------------------------------------------------------------------- bases


def load_bases(path: Path = BASES_PATH) -> list[str]:
    """Names (file stems in PRESETS_DIR) of the base presets that screened clean."""
    data = read_json(path)
    advice = f"regenerate it with: {tool_command('demo-bases')}"
    if not isinstance(data, dict) or not isinstance(data.get("bases"), list):
        raise ContractError(path, "expected an object with a 'bases' list", advice)
    bases = data["bases"]
    if not bases or not all(isinstance(name, str) and name for name in bases):
        raise ContractError(path, "'bases' must be a non-empty list of preset names", advice)
    if len(set(bases)) != len(bases):
        raise ContractError(path, "'bases' names a preset twice", advice)
    return sorted(bases)


# ---------------------------------------------------------------------------------------- variants


def offsets(rng: random.Random) -> dict[str, float]:
    """One pair's d per coupled parameter: 25-100% of its scale, either sign."""
    return {param.name: round(rng.choice((-1.0, 1.0)) * param.scale * rng.uniform(0.25, 1.0), DIGITS)
            for param in COUPLING}


def variants(preset: dict, deltas: dict[str, float]) -> list[dict]:
    """VARIANTS copies of `preset`, variant k at c + (k - 1)*d on each COUPLING parameter."""
    steps = [k - (VARIANTS - 1) / 2 for k in range(VARIANTS)]
    out = [copy.deepcopy(preset) for _ in steps]
    for param in COUPLING:
        delta = deltas[param.name]
        base = float(preset["baseVals"].get(param.name, param.default))
        reach = max(steps) * abs(delta)
        centre = min(max(base, param.low + reach), param.high - reach)
        for variant, step in zip(out, steps):
            variant["baseVals"][param.name] = round(centre + step * delta, DIGITS)
    return out


def pairings() -> list[tuple[int, int]]:
    """(fg, bg) variant indices of a base's pairs: every ordered pair of distinct variants, nearest first."""
    return sorted(((i, j) for i in range(VARIANTS) for j in range(VARIANTS) if i != j),
                  key=lambda pair: (abs(pair[0] - pair[1]), pair))


# -------------------------------------------------------------------------------------------- pack


def pair_paths(workspace: Workspace, pair: int) -> tuple[Path, Path]:
    pack_dir = workspace.pack_dir(DEMO_PACK)
    return pack_dir / "fg" / f"demo_{pair:05d}_fg.json", pack_dir / "bg" / f"demo_{pair:05d}_bg.json"


def demo_pack_outputs(workspace: Workspace, count: int = DEFAULT_COUNT) -> list[Path]:
    """Every file `run` writes (the doit task's targets)."""
    files = [workspace.manifest_path(DEMO_PACK), workspace.pack_dir(DEMO_PACK) / COUPLING_NAME]
    for pair in range(1, count + 1):
        files.extend(pair_paths(workspace, pair))
    return files


def demo_pack_inputs() -> list[Path]:
    """What the pack is built from (the doit task's file_dep): the base list and the presets (its code is
    an input as every task's is: `core.code`)."""
    return [BASES_PATH, NODE_MODULES_DIR / ".package-lock.json"]


def run(workspace: Workspace, seed: int = DEFAULT_SEED, count: int = DEFAULT_COUNT,
                    bases_path: Path = BASES_PATH, presets_dir: Path = PRESETS_DIR) -> list[Path]:
    """Write the demo pack into the workspace; returns the files written (manifest first)."""
    if count < 1:
        raise CqError(f"the demo pack needs at least one pair, got count={count}")
    bases = load_bases(bases_path)
    presets = {}
    for name in bases:
        path = Path(presets_dir) / f"{name}.json"
        if not path.is_file():
            raise ContractError(path, f"base preset {name!r} of {bases_path} is missing",
                                f"run `{command('web_deps')}` to install butterchurn-presets, or rescreen the bases")
        presets[name] = load_preset(path)   # dotted waves too: the page sets their dot size (sampler.dots.js)

    rng = random.Random(f"demo-pack:{seed}")
    order = sorted(presets)
    rng.shuffle(order)
    manifest_pairs, origins = [], []
    per_base = pairings()
    made: list[dict] = []
    for pair in range(1, count + 1):
        index = (pair - 1) // len(per_base)
        base = order[index % len(order)]
        if (pair - 1) % len(per_base) == 0:
            made = variants(presets[base], offsets(rng))
        first, second = per_base[(pair - 1) % len(per_base)]
        fg, bg = made[first], made[second]
        diffs = {param.name: round(fg["baseVals"][param.name] - bg["baseVals"][param.name], DIGITS)
                 for param in COUPLING}
        fg_path, bg_path = pair_paths(workspace, pair)
        write_json(fg_path, fg)
        write_json(bg_path, bg)
        manifest_pairs.append(ManifestPair(pair, _url(workspace, fg_path), _url(workspace, bg_path),
                                           warp_diff=diffs["warp"], cx_diff=diffs["cx"]))
        origins.append({"pair": pair, "base": base, "variants": [first, second], "diffs": diffs})

    _remove_stale(workspace, count)
    manifest_path = workspace.manifest_path(DEMO_PACK)
    manifest = Manifest(manifest_path, DEMO_PACK, manifest_pairs, generatedAt=GENERATED_AT)
    write_json(manifest_path, manifest.to_json())
    write_json(workspace.pack_dir(DEMO_PACK) / COUPLING_NAME, {
        "version": "v0", "pack": DEMO_PACK, "seed": seed, "count": count, "source": PRESETS_SOURCE,
        "coupling": [dataclasses.asdict(param) for param in COUPLING], "pairs": origins})
    return demo_pack_outputs(workspace, count)


def _url(workspace: Workspace, path: Path) -> str:
    return "/" + path.relative_to(workspace.public).as_posix()


def _remove_stale(workspace: Workspace, count: int) -> None:
    """Drop pair files of an earlier, larger build so the folder holds exactly this pack."""
    keep = {path.name for pair in range(1, count + 1) for path in pair_paths(workspace, pair)}
    for side in ("fg", "bg"):
        folder = workspace.pack_dir(DEMO_PACK) / side
        if folder.is_dir():
            for entry in folder.iterdir():
                if _PAIR_FILE.match(entry.name) and entry.name not in keep:
                    entry.unlink()


# ------------------------------------------------------------------------------------------ screen


def undeclared_textures(preset: dict, declared: set[str]) -> list[str]:
    """`texsize_<image>` uniforms a preset's shaders use but butterchurn never declares (a link failure)."""
    used = set(re.findall(r"texsize_\w+", f"{preset.get('warp', '')}\n{preset.get('comp', '')}"))
    return sorted(used - declared)


def screen_verdict(result, min_luma: float = SCREEN_MIN_LUMA, max_load_ms: float = SCREEN_MAX_LOAD_MS) -> str:
    """Why a preset rendered alone (as fg and bg of one pair) is not a clean base; "" when it is."""
    first_error = " ".join(" / ".join(result.errors).split())[:240]
    if result.status != "ok":
        return f"{result.status}: {first_error}" if first_error else result.status
    if first_error:
        return f"rendered with errors: {first_error}"
    luma = result.series["fgLuma"]
    late = max(luma[len(luma) // 2:])
    if late < min_luma:
        return f"draws black frames (mean luma at most {late:.4f} after the first half)"
    load_ms = float(result.timings.get("loadMs", 0.0))
    if load_ms > max_load_ms:
        return f"loads slowly ({load_ms:.0f} ms)"
    return ""


def screen(out_path: Path = BASES_PATH, presets_dir: Path = PRESETS_DIR, limit: int = 0,
           frames: int = SCREEN_FRAMES, size: int = SCREEN_SIZE, workers: int = 1,
           state_dir: Path | None = None) -> dict:
    """Render every converted preset alone for a few frames; write the clean ones to `out_path`.

    "Alone": the preset is both layers of a pair at fg opacity 1, so the composite is that preset; a link
    failure or an exception in either layer rejects it, and its `fgLuma` series decides "draws something".
    """
    from .render.audio import load_audio
    from .render.pool import PairJob, RenderPool

    paths = sorted(Path(presets_dir).glob("*.json"))[: limit or None]
    if not paths:
        raise CqError(f"no presets in {presets_dir} (run `{command('web_deps')}` to install butterchurn-presets)")
    declared = set(re.findall(r"texsize_\w+", BUTTERCHURN_JS.read_text(encoding="utf-8")))
    rejected, jobs = [], []
    for number, path in enumerate(paths, start=1):
        preset = load_preset(path)
        missing = undeclared_textures(preset, declared)
        if missing:
            rejected.append({"name": path.stem, "why": f"uses {', '.join(missing)}, never declared by butterchurn"})
        else:
            jobs.append(PairJob(number, preset, preset, path.stem, path.stem))

    settings = SampleSettings(frames=frames, width=size, height=size, readback=min(size, 64), workers=workers,
                              pair_timeout_s=30.0, reload_every=100, fg_opacity=1.0)
    audio = load_audio(settings)
    progress = Progress("screen", len(jobs), unit="presets")
    bases = []
    state_dir = state_dir or Workspace.from_environment().state_dir
    with RenderPool(settings, audio.frames, state_dir) as pool:
        for result in pool.render(jobs):
            why = screen_verdict(result)
            if why:
                rejected.append({"name": result.job.fg_id, "why": why})
            else:
                bases.append(result.job.fg_id)
            progress.update(extra=f"{len(bases)} clean")
        renderer, engine = pool.renderer, pool.engine
    progress.close()
    rejected.sort(key=lambda item: item["name"])
    report = {"version": "v0", "source": PRESETS_SOURCE,
              "screen": {"kind": "rendered", "frames": frames, "size": size, "minLuma": SCREEN_MIN_LUMA,
                         "maxLoadMs": SCREEN_MAX_LOAD_MS, "renderer": renderer, "engine": engine,
                         "candidates": len(paths)},
              "bases": sorted(bases), "rejected": rejected}
    write_json(out_path, report)
    return report
