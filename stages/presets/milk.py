"""The `.milk` reader: MilkDrop preset files -> their parts, with butterchurn's names.

In: the bytes of a `.milk` file as MilkDrop writes them (an INI-like list of `key=value` lines, optionally
under a `[preset00]` header), in any of the encodings real packs use: UTF-8 with or without a BOM, UTF-16
with a BOM, Latin-1; CRLF, LF or lone-CR line ends.
Out: a `MilkPreset`: base values under butterchurn's names, the init / per-frame / per-pixel EEL as text,
four shapes and four waves with their base values and EEL, the warp and comp shaders as HLSL text (no
translation here: `presets.hlsl` does that), the preset version, and one warning per line that could not be
read (with its line number). Reading follows MilkDrop: keys are case-insensitive, a duplicate key's last
value wins, numbered code lines are read from 1 up to the first missing number, missing sections fall back
to butterchurn's defaults.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..core.contracts import read_bytes
from ..core.errors import ContractError

# MilkDrop's .milk key (lower-cased) -> butterchurn's baseVals key.
BASE_KEYS = {
    "frating": "rating", "fgammaadj": "gammaadj", "fdecay": "decay", "fvideoechozoom": "echo_zoom",
    "fvideoechoalpha": "echo_alpha", "nvideoechoorientation": "echo_orient", "nwavemode": "wave_mode",
    "badditivewaves": "additivewave", "bwavedots": "wave_dots", "bwavethick": "wave_thick",
    "bmodwavealphabyvolume": "modwavealphabyvolume", "bmaximizewavecolor": "wave_brighten",
    "btexwrap": "wrap", "bdarkencenter": "darken_center", "bredbluestereo": "red_blue",
    "bbrighten": "brighten", "bdarken": "darken", "bsolarize": "solarize", "binvert": "invert",
    "fwavealpha": "wave_a", "fwavescale": "wave_scale", "fwavesmoothing": "wave_smoothing",
    "fwaveparam": "wave_mystery", "fmodwavealphastart": "modwavealphastart",
    "fmodwavealphaend": "modwavealphaend", "fwarpanimspeed": "warpanimspeed", "fwarpscale": "warpscale",
    "fzoomexponent": "zoomexp", "fshader": "fshader", "nmotionvectorsx": "mv_x", "nmotionvectorsy": "mv_y",
    "bmotionvectorson": "bmotionvectorson",
    **{name: name for name in (
        "zoom", "rot", "cx", "cy", "dx", "dy", "warp", "sx", "sy", "wave_r", "wave_g", "wave_b", "wave_x",
        "wave_y", "ob_size", "ob_r", "ob_g", "ob_b", "ob_a", "ib_size", "ib_r", "ib_g", "ib_b", "ib_a",
        "mv_dx", "mv_dy", "mv_l", "mv_r", "mv_g", "mv_b", "mv_a", "b1n", "b2n", "b3n", "b1x", "b2x", "b3x",
        "b1ed")},
}
WAVE_KEYS = {"enabled": "enabled", "samples": "samples", "sep": "sep", "bspectrum": "spectrum",
             "busedots": "usedots", "bdrawthick": "thick", "badditive": "additive", "scaling": "scaling",
             "smoothing": "smoothing", "r": "r", "g": "g", "b": "b", "a": "a"}
SHAPE_KEYS = {"enabled": "enabled", "sides": "sides", "additive": "additive", "thickoutline": "thickoutline",
              "textured": "textured", "num_inst": "num_inst", "tex_zoom": "tex_zoom", "tex_ang": "tex_ang",
              **{name: name for name in ("x", "y", "rad", "ang", "r", "g", "b", "a", "r2", "g2", "b2", "a2",
                                         "border_r", "border_g", "border_b", "border_a")}}
# Header keys that are read but are not base values.
HEADER_KEYS = ("milkdrop_preset_version", "psversion", "psversion_warp", "psversion_comp")
SHAPE_COUNT = WAVE_COUNT = 4

_NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_CODE_KEY = re.compile(
    r"(?:(per_frame_init_)|(per_frame_)|(per_pixel_)|(warp_)|(comp_)"
    r"|wave_(\d+)_(init|per_frame|per_point)|shape_(\d+)_(init|per_frame))(\d+)$")
_OBJECT_KEY = re.compile(r"(wavecode|shapecode)_(\d+)_(\w+)$")


class MilkReadError(ContractError):
    """A `.milk` file that cannot be read at all (empty, binary, not key=value lines)."""


@dataclass
class MilkPreset:
    """One .milk file's content under butterchurn's names; `warp`/`comp` are still HLSL."""

    version: int = 100                     # MILKDROP_PRESET_VERSION (100 when absent: a MilkDrop 1 preset)
    warp_ps_version: int = 0               # PSVERSION_WARP: 0 = no warp shader
    comp_ps_version: int = 0
    base_vals: dict[str, float] = field(default_factory=dict)
    init_eel: str = ""
    frame_eel: str = ""
    pixel_eel: str = ""
    shapes: list[dict] = field(default_factory=list)  # {baseVals, init_eqs_eel, frame_eqs_eel}
    waves: list[dict] = field(default_factory=list)   # {baseVals, init_eqs_eel, frame_eqs_eel, point_eqs_eel}
    warp: str = ""                         # HLSL, "" when the preset has none
    comp: str = ""
    warnings: list[str] = field(default_factory=list)  # "line N: what could not be read"
    unknown_keys: list[str] = field(default_factory=list)

    @property
    def eel_version(self) -> int:
        """butterchurn's `version`: EEL 1 semantics for MilkDrop 1 presets, EEL 2 from version 200 on."""
        return 2 if self.version >= 200 else 1


def decode_milk(data: bytes, where="preset") -> str:
    """Bytes -> text: BOM-marked UTF-8/UTF-16, else UTF-8, else Latin-1 (never fails on 8-bit text)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as error:
            raise MilkReadError(where, f"UTF-16 text is broken at byte {error.start}",
                                "re-save the preset as UTF-8") from None
    if b"\x00" in data:
        raise MilkReadError(where, "contains NUL bytes: this is a binary file, not a .milk preset",
                            "check that the file is a MilkDrop preset")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _number(text: str) -> float | None:
    """MilkDrop reads numbers like C's atof: the longest numeric prefix counts, trailing text is ignored."""
    match = _NUMBER.match(text)
    return float(match.group(0)) if match else None


def _code(lines: dict[int, str]) -> tuple[str, int, int]:
    """Numbered code lines 1, 2, ... up to the first missing number, joined by newlines, that missing number, and
    how many numbered lines after it are left unread. MilkDrop's ReadCode joins the lines with nothing at all (a
    name split over two lines is one name: `is_` + `beat`); butterchurn's EEL reader drops newlines the same way
    after ending `//` and `\\` comments at them, so newlines give MilkDrop's program and keep shaders' lines."""
    out = []
    number = 1
    while number in lines:
        out.append(lines[number])
        number += 1
    return "\n".join(out), number, sum(1 for n in lines if n > number)


def parse_milk(text: str, where="preset") -> MilkPreset:
    """Parse decoded .milk text; unreadable lines become warnings, a file with nothing readable an error."""
    preset = MilkPreset()
    values: dict[str, tuple[int, str]] = {}   # lower-cased key -> (line number, raw value); last wins
    for number, line in enumerate(re.split(r"\r\n|\r|\n", text), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("//", ";")):
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            preset.warnings.append(f"line {number}: not a key=value line: {stripped[:60]!r}")
            continue
        values[key.strip().lower()] = (number, value)
    if not values:
        raise MilkReadError(where, "no key=value lines: not a MilkDrop preset",
                            "check that the file is a .milk preset")

    code: dict[tuple, dict[int, str]] = {}
    objects: dict[tuple[str, int], dict[str, float]] = {}

    def numeric(key: str) -> float | None:
        number, raw = values[key]
        parsed = _number(raw)
        if parsed is None:
            preset.warnings.append(f"line {number}: {key} has no number: {raw.strip()[:40]!r}")
        return parsed

    for key, (_line_number, raw) in values.items():
        if key in HEADER_KEYS:
            parsed = numeric(key)
            if parsed is not None:
                if key == "milkdrop_preset_version":
                    preset.version = int(parsed)
                elif key == "psversion_warp":
                    preset.warp_ps_version = int(parsed)
                elif key == "psversion_comp":
                    preset.comp_ps_version = int(parsed)
            continue
        if key in BASE_KEYS:
            parsed = numeric(key)
            if parsed is not None:
                preset.base_vals[BASE_KEYS[key]] = parsed
            continue
        match = _CODE_KEY.match(key)
        if match:
            init, frame, pixel, warp, comp, wave, wave_part, shape, shape_part, index = match.groups()
            if init or frame or pixel or warp or comp:
                section = (next(name for name, hit in (("init", init), ("frame", frame), ("pixel", pixel),
                                                        ("warp", warp), ("comp", comp)) if hit),)
            elif wave is not None:
                section = ("wave", int(wave), wave_part)
            else:
                section = ("shape", int(shape), shape_part)
            # MilkDrop writes a backtick before each shader line so leading spaces survive INI reading, and its
            # ReadCode drops one from every code line, equations too; butterchurn's EEL parser rejects it.
            raw = raw[1:] if raw.startswith("`") else raw
            code.setdefault(section, {})[int(index)] = raw.rstrip()
            continue
        match = _OBJECT_KEY.match(key)
        if match:
            kind, index, name = match.group(1), int(match.group(2)), match.group(3)
            names = WAVE_KEYS if kind == "wavecode" else SHAPE_KEYS
            limit = WAVE_COUNT if kind == "wavecode" else SHAPE_COUNT
            if index < limit and name in names:
                parsed = numeric(key)
                if parsed is not None:
                    objects.setdefault((kind, index), {})[names[name]] = parsed
                continue
        preset.unknown_keys.append(key)

    def section_code(section: tuple) -> str:
        text, missing, unread = _code(code.get(section, {}))
        if unread:
            name = " ".join(str(part) for part in section)
            preset.warnings.append(f"{name} code: line {missing} is missing, so {unread} later line(s) are not "
                                   "read (MilkDrop stops at the first gap)")
        return text

    preset.init_eel = section_code(("init",))
    preset.frame_eel = section_code(("frame",))
    preset.pixel_eel = section_code(("pixel",))
    has_version = "milkdrop_preset_version" in values
    if not has_version or preset.warp_ps_version > 0 or "psversion_warp" not in values:
        preset.warp = section_code(("warp",))
    if not has_version or preset.comp_ps_version > 0 or "psversion_comp" not in values:
        preset.comp = section_code(("comp",))
    for index in range(WAVE_COUNT):
        preset.waves.append({
            "baseVals": {"enabled": 0, **objects.get(("wavecode", index), {})},
            "init_eqs_eel": section_code(("wave", index, "init")),
            "frame_eqs_eel": section_code(("wave", index, "per_frame")),
            "point_eqs_eel": section_code(("wave", index, "per_point")),
        })
    for index in range(SHAPE_COUNT):
        preset.shapes.append({
            "baseVals": {"enabled": 0, **objects.get(("shapecode", index), {})},
            "init_eqs_eel": section_code(("shape", index, "init")),
            "frame_eqs_eel": section_code(("shape", index, "per_frame")),
        })
    return preset


def read_milk(path: Path) -> MilkPreset:
    """Read one .milk file; errors name the file (and the line where one is to blame)."""
    path = Path(path)
    try:
        data = read_bytes(path)
    except ContractError as error:
        raise MilkReadError(path, error.problem) from None
    if not data.strip():
        raise MilkReadError(path, "file is empty", "re-export the preset from MilkDrop")
    return parse_milk(decode_milk(data, path), path)
