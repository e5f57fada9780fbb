"""How fast rows are read and written, and how a bad file is worded: the hand-written checks vs typed candidates.

Builds a 100k-row eval.jsonl of sampler-shaped rows (every seed and extra field, the page's timings and the
twelve statistics, values varied per row) in a temp folder and prints, best of --repeat runs in CPU seconds
(the process's own time, so a busy machine disturbs it less):

- decode, bytes -> validated rows: `read_rows` of the hand-written contracts (git revision --baseline) and of
  this checkout (msgspec types, dicts out), msgspec decoding straight into `EvalRow` structs, and pydantic v2
  (a TypedDict keeping unknown keys, dicts out; a BaseModel) when pydantic is installed;
- encode, rows -> bytes: orjson (what `append_jsonl` writes, before and after), msgspec, pydantic;
- the error each gives for a few malformed rows and manifests.

    python bench/contracts.py [--rows 100000] [--repeat 5] [--baseline c84a374]
"""
import argparse
import copy
import gc
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Literal, NotRequired

import msgspec
import orjson

try:
    import pydantic
    from typing_extensions import TypedDict  # pydantic needs it for a TypedDict before Python 3.12
except ImportError:  # a candidate that was not chosen: compared when installed
    pydantic = None

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages.core import contracts  # noqa: E402
from stages.core.formats import ROW_STATUSES, STAT_FIELDS, EvalRow, PairsManifest  # noqa: E402

# the last revision whose contracts were hand-written checks
HAND_WRITTEN_REV = "c84a374"


def sampler_row(pair: int) -> dict:
    """A row as the sampler writes it (the shape of a real demo-pack row), its numbers varied by `pair`."""
    wobble = (pair % 997) / 997
    return {
        "tMs": 1796407850355 + pair * 631, "pack": "demo", "pair": pair,
        "presetFgId": f"coupled_{pair:05d}_20260101 EoS + Phat - Emergent factors_fg.milk",
        "presetBgId": f"coupled_{pair:05d}_20260101 Rism - The Descent_bg.milk",
        "vizAvgLuma": 0.2 + 0.5 * wobble, "vizAvgFrameDelta": 0.014602 + 0.01 * wobble,
        "pmAvgLumaFg": 0.643649, "pmAvgLumaBg": 0.192102, "audioRms": 0.13425647920285552, "audioPeak": 0.7734375,
        "pageErrorsSinceLast": 0, "consoleErrorsSinceLast": 0, "okHeuristic": wobble > 0.1,
        "reasons": [] if wobble > 0.1 else ["too-dark"], "contentKey": f"{pair * 2654435761 % 2**64:016x}",
        "fgHash": f"{pair * 40503 % 2**64:016x}", "bgHash": f"{pair * 65599 % 2**64:016x}", "status": "ok",
        "render": {"width": 64, "height": 64, "frames": 16, "dt": 0.03333333333333333, "seed": 1, "fg_opacity": 0.7,
                   "blend": "normal", "readback": 64, "thumb_frame": -1, "audioKey": "b0d7cdf3ac6dc4ce"},
        "engine": "butterchurn-3.0.0-beta.5+page-eb3adb4b064a",
        "renderer": "ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device (Subzero) (0x0000C0DE)), SwiftShader driver)",
        "errors": [],
        "timings": {"createMs": 148.4 + wobble, "loadMs": 32.8, "renderMs": 328.3 + 10 * wobble, "framesMs": 31.8,
                    "readbackMs": 36.2, "statsMs": 0.8, "thumbMs": 258.6, "frameMs": 20.51874999993015 + wobble,
                    "peakFrameMs": 0, "framesRendered": 16, "costClock": "wall", "pairMs": 633.5, "maxFrameMs": 400.0,
                    "alone": True},
        "stats": {name: round(0.05 + 0.9 * ((wobble + index / 12) % 1), 6) for index, name in enumerate(STAT_FIELDS)},
        "attempts": 1, "sampledAt": "2026-12-04T18:10:50Z", "thumb": f"thumbs/{pair:016x}.png", "node": "local",
        "gpu": "",
    }


def hand_written_contracts(revision: str):
    """contracts.py as of `revision`, imported beside today's (same package, so its relative imports work)."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{revision}:stages/core/contracts.py"],
                            capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "contracts_hand_written.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("stages.core.contracts_hand_written", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


if pydantic is not None:
    RowStatus = Literal[ROW_STATUSES]  # type: ignore[valid-type]
    RowConfig = pydantic.ConfigDict(extra="allow", strict=True, allow_inf_nan=False)

    class PydanticRow(TypedDict):
        """EvalRow's fields as pydantic would take them: a dict out, unknown keys kept."""

        __pydantic_config__ = RowConfig
        tMs: int
        pack: str
        pair: int
        presetFgId: str
        presetBgId: str
        vizAvgLuma: float
        vizAvgFrameDelta: float
        pmAvgLumaFg: float
        pmAvgLumaBg: float
        audioRms: Annotated[float, pydantic.Field(gt=0)]
        audioPeak: float
        pageErrorsSinceLast: int
        consoleErrorsSinceLast: int
        okHeuristic: bool
        reasons: list
        contentKey: str
        fgHash: str
        bgHash: str
        status: RowStatus
        render: dict
        engine: str
        renderer: str
        errors: list
        timings: dict
        stats: dict
        attempts: int
        sampledAt: str
        thumb: str
        node: NotRequired[str]
        gpu: NotRequired[str]

    class PydanticRowModel(pydantic.BaseModel):
        """The same as a model (attributes out)."""

        model_config = RowConfig
        tMs: int
        pack: str
        pair: int
        presetFgId: str
        presetBgId: str
        vizAvgLuma: float
        vizAvgFrameDelta: float
        pmAvgLumaFg: float
        pmAvgLumaBg: float
        audioRms: Annotated[float, pydantic.Field(gt=0)]
        audioPeak: float
        pageErrorsSinceLast: int
        consoleErrorsSinceLast: int
        okHeuristic: bool
        reasons: list
        contentKey: str
        fgHash: str
        bgHash: str
        status: RowStatus
        render: dict
        engine: str
        renderer: str
        errors: list
        timings: dict
        stats: dict
        attempts: int
        sampledAt: str
        thumb: str
        node: str = ""
        gpu: str = ""


def best_cpu_seconds(work, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        started = time.process_time()
        result = work()
        times.append(time.process_time() - started)
        del result
    return min(times)


def error_of(work) -> str:
    try:
        work()
    except Exception as error:  # each library raises its own kind
        return " | ".join(str(error).splitlines()[:3])
    return "(accepted)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", default=HAND_WRITTEN_REV, help="git revision of the hand-written contracts")
    args = parser.parse_args()
    hand = hand_written_contracts(args.baseline)
    folder = Path(tempfile.mkdtemp(prefix="cq-contracts-bench-"))
    path = folder / "eval.jsonl"
    rows = [sampler_row(pair) for pair in range(args.rows)]
    data = b"".join(contracts.dumps(row) + b"\n" for row in rows)
    path.write_bytes(data)
    lines = data.splitlines()
    print(f"{args.rows} rows, {len(data) / 1e6:.0f} MB ({path}); CPU seconds, best of {args.repeat}; "
          f"msgspec {msgspec.__version__}, orjson {orjson.__version__}, "
          f"pydantic {pydantic.VERSION if pydantic else 'not installed (pip install pydantic to compare it)'}")

    row_struct = msgspec.json.Decoder(EvalRow)
    decoders = {
        f"hand-written read_rows ({args.baseline}), dicts": lambda: hand.read_rows(path),
        "typed read_rows (this checkout: msgspec), dicts": lambda: contracts.read_rows(path),
        "orjson alone, no checks (floor), dicts": lambda: [orjson.loads(line) for line in lines],
        "msgspec straight into EvalRow structs": lambda: [row_struct.decode(line) for line in lines],
    }
    if pydantic:
        row_dict = pydantic.TypeAdapter(PydanticRow)
        decoders["pydantic TypedDict (extra kept), dicts"] = lambda: [row_dict.validate_json(line) for line in lines]
        decoders["pydantic BaseModel, models"] = lambda: [PydanticRowModel.model_validate_json(line) for line in lines]
    print("\ndecode (bytes -> validated rows)")
    for name, work in decoders.items():
        seconds = best_cpu_seconds(work, args.repeat)
        print(f"  {name:50s} {seconds:6.2f} s  {args.rows / seconds / 1000:6.0f}k rows/s")

    structs = [row_struct.decode(line) for line in lines]
    encoder = msgspec.json.Encoder()
    encoders = {
        "orjson dicts (append_jsonl, before and after)": lambda: [contracts.dumps(row) for row in rows],
        "msgspec EvalRow structs": lambda: [encoder.encode(row) for row in structs],
    }
    if pydantic:
        models = [PydanticRowModel.model_validate_json(line) for line in lines]
        encoders["pydantic TypedDict dump_json"] = lambda: [row_dict.dump_json(row) for row in rows]
        encoders["pydantic BaseModel model_dump_json"] = lambda: [model.model_dump_json() for model in models]
    print("\nencode (rows -> bytes)")
    for name, work in encoders.items():
        seconds = best_cpu_seconds(work, args.repeat)
        print(f"  {name:50s} {seconds:6.2f} s  {args.rows / seconds / 1000:6.0f}k rows/s")

    row = sampler_row(7)
    malformed = {
        "row: pair is a string": {**row, "pair": "7"},
        "row: contentKey missing": {key: value for key, value in row.items() if key != "contentKey"},
        "row: audioRms 0 (out of range)": {**row, "audioRms": 0},
        "row: status unknown": {**row, "status": "exploded"},
    }
    manifest = {"version": "v0", "pack": "demo", "pairs": [{"pair": 1, "fgUrl": "/presets/demo/fg/a.milk",
                                                            "bgUrl": "/presets/demo/bg/b.milk"}]}
    bad_manifest = copy.deepcopy(manifest)
    bad_manifest["pairs"][0]["fgUrl"] = "fg/a.milk"
    print("\nerrors")
    for name, bad in malformed.items():
        print(f"  {name}\n    hand-written: {error_of(lambda bad=bad: hand.validate_eval_row(bad))}"
              f"\n    typed (ours): {error_of(lambda bad=bad: contracts.validate_eval_row(bad))}"
              f"\n    msgspec raw:  {error_of(lambda bad=bad: msgspec.convert(bad, EvalRow))}")
        if pydantic:
            print(f"    pydantic raw: {error_of(lambda bad=bad: row_dict.validate_python(bad))}")
    print(f"  manifest: a URL without '/'\n    hand-written: {error_of(lambda: hand.parse_manifest('m.json', bad_manifest))}"
          f"\n    typed (ours): {error_of(lambda: contracts.parse_manifest('m.json', bad_manifest))}"
          f"\n    msgspec raw:  {error_of(lambda: msgspec.convert(bad_manifest, PairsManifest))}")
    path.unlink()
    folder.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
