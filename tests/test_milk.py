"""The .milk reader: encodings, line ends, headers, duplicates, gaps, bad lines, and the real corpus."""
from pathlib import Path

import pytest

from stages.presets.milk import MilkReadError, parse_milk, read_milk

PRESET = """MILKDROP_PRESET_VERSION=201
PSVERSION=2
PSVERSION_WARP=2
PSVERSION_COMP=2
[preset00]
fRating=3.000000
fDecay=0.950
nWaveMode=5
bTexWrap=1
zoom=1.01
nMotionVectorsX=12.000
wavecode_1_enabled=1
wavecode_1_bSpectrum=1
wave_1_per_point1=x = sample;
wave_1_per_point2=y = 0.5;
shapecode_3_enabled=1
shapecode_3_thickOutline=1
shape_3_per_frame1=ang = time;
per_frame_init_1=t = 0;
per_frame_1=zoom = 1 + 0.1*bass;
per_frame_2=rot = 0.01; // a comment
per_pixel_1=dx = 0.01*sin(y*8);
warp_1=`shader_body
warp_2=`{
warp_3=`    ret = tex2D(sampler_main, uv).xyz;
warp_4=`}
comp_1=`shader_body { ret = tex2D(sampler_main, uv).xyz; }
"""


def read_text(tmp_path: Path, data: bytes):
    path = tmp_path / "preset.milk"
    path.write_bytes(data)
    return read_milk(path)


def test_base_values_use_butterchurn_names():
    milk = parse_milk(PRESET)
    assert milk.base_vals == {"rating": 3.0, "decay": 0.95, "wave_mode": 5.0, "wrap": 1.0, "zoom": 1.01,
                              "mv_x": 12.0}
    assert milk.version == 201 and milk.eel_version == 2
    assert milk.warnings == [] and milk.unknown_keys == []


def test_code_sections_waves_and_shapes():
    milk = parse_milk(PRESET)
    assert milk.init_eel == "t = 0;"
    assert milk.frame_eel == "zoom = 1 + 0.1*bass;\nrot = 0.01; // a comment"
    assert milk.pixel_eel == "dx = 0.01*sin(y*8);"
    assert len(milk.waves) == 4 and len(milk.shapes) == 4
    assert milk.waves[1]["baseVals"] == {"enabled": 1.0, "spectrum": 1.0}
    assert milk.waves[1]["point_eqs_eel"] == "x = sample;\ny = 0.5;"
    assert milk.waves[0] == {"baseVals": {"enabled": 0}, "init_eqs_eel": "", "frame_eqs_eel": "",
                             "point_eqs_eel": ""}
    assert milk.shapes[3]["baseVals"] == {"enabled": 1.0, "thickoutline": 1.0}
    assert milk.shapes[3]["frame_eqs_eel"] == "ang = time;"


def test_shader_lines_lose_their_backtick():
    milk = parse_milk(PRESET)
    assert milk.warp == "shader_body\n{\n    ret = tex2D(sampler_main, uv).xyz;\n}"
    assert milk.comp.startswith("shader_body { ret")


def test_equation_lines_lose_their_backtick_too():
    # MilkDrop's ReadCode drops a leading backtick from every numbered code line, not only from shader lines;
    # left in, butterchurn's EEL parser stops at it
    milk = parse_milk("per_frame_1=`zoom = 1.01;\nper_frame_2=`  rot = 0.1;\nwave_0_per_point1=`x = sample;\n")
    assert milk.frame_eel == "zoom = 1.01;\n  rot = 0.1;"
    assert milk.waves[0]["point_eqs_eel"] == "x = sample;"


@pytest.mark.parametrize("newline", [b"\r\n", b"\r", b"\n"])
def test_line_ends(tmp_path, newline):
    milk = read_text(tmp_path, PRESET.encode().replace(b"\n", newline))
    assert milk.frame_eel == "zoom = 1 + 0.1*bass;\nrot = 0.01; // a comment"
    assert milk.base_vals["zoom"] == 1.01


def test_utf8_bom_and_latin1_bytes(tmp_path):
    with_bom = read_text(tmp_path, b"\xef\xbb\xbf" + PRESET.encode())
    assert with_bom.version == 201     # the BOM does not glue itself to the first key
    latin1 = read_text(tmp_path, PRESET.replace("// a comment", "// caf\u00e9 \u00b5").encode("latin-1"))
    assert latin1.frame_eel.endswith("// caf\u00e9 \u00b5")


def test_utf16_with_bom(tmp_path):
    milk = read_text(tmp_path, PRESET.encode("utf-16"))
    assert milk.base_vals["decay"] == 0.95 and milk.warp.startswith("shader_body")


def test_duplicate_keys_last_wins_and_keys_are_case_insensitive():
    milk = parse_milk(PRESET + "zoom=0.5\nFDECAY=0.7\nper_frame_1=zoom = 2;\n")
    assert milk.base_vals["zoom"] == 0.5 and milk.base_vals["decay"] == 0.7
    assert milk.frame_eel.startswith("zoom = 2;")


def test_code_stops_at_the_first_missing_line_number():
    milk = parse_milk("per_frame_1=a = 1;\nper_frame_2=b = 2;\nper_frame_4=c = 3;\nshape_3_per_frame1=x = 1;\n"
                      "shape_3_per_frame3=y = 2;\nshape_3_per_frame4=z = 3;\n")
    assert milk.frame_eel == "a = 1;\nb = 2;"
    assert milk.shapes[3]["frame_eqs_eel"] == "x = 1;"
    # MilkDrop's ReadCode and projectM stop at the gap; butterchurn's converter reads on (fidelity reference)
    assert milk.warnings == ["frame code: line 3 is missing, so 1 later line(s) are not read (MilkDrop stops at "
                             "the first gap)",
                             "shape 3 per_frame code: line 2 is missing, so 2 later line(s) are not read "
                             "(MilkDrop stops at the first gap)"]


def test_missing_sections_and_no_version_header():
    milk = parse_milk("fDecay=0.9\nzoom=1.0\n")
    assert milk.version == 100 and milk.eel_version == 1
    assert milk.warp == "" and milk.comp == "" and milk.frame_eel == ""
    assert [wave["baseVals"] for wave in milk.waves] == [{"enabled": 0}] * 4


def test_shader_ignored_when_its_ps_version_is_zero():
    milk = parse_milk(PRESET.replace("PSVERSION_WARP=2", "PSVERSION_WARP=0"))
    assert milk.warp == "" and milk.comp != ""


def test_unreadable_lines_are_reported_with_their_line_number():
    milk = parse_milk("fDecay=0.9\nthis line has no equals sign\nzoom=abc\nrot=0.5junk\n")
    assert milk.warnings == ["line 2: not a key=value line: 'this line has no equals sign'",
                             "line 3: zoom has no number: 'abc'"]
    assert "zoom" not in milk.base_vals
    assert milk.base_vals["rot"] == 0.5    # like C's atof, the numeric prefix counts


def test_unknown_keys_are_listed_not_fatal():
    milk = parse_milk("fDecay=0.9\nbSomethingNew=1\n")
    assert milk.unknown_keys == ["bsomethingnew"]


@pytest.mark.parametrize("data, problem", [
    (b"", "file is empty"),
    (b"  \r\n\r\n", "file is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "NUL bytes"),
    (b"just some text\nwithout keys\n", "no key=value lines"),
])
def test_unreadable_files_raise_a_clear_error(tmp_path, data, problem):
    with pytest.raises(MilkReadError) as caught:
        read_text(tmp_path, data)
    assert problem in str(caught.value) and "preset.milk" in str(caught.value)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(MilkReadError, match="missing.milk: file not found"):
        read_milk(tmp_path / "missing.milk")


def test_every_corpus_preset_reads(corpus):
    files = sorted(corpus.rglob("*.milk"))
    assert len(files) >= 20
    with_shaders = 0
    for path in files:
        milk = read_milk(path)
        assert milk.base_vals, path
        with_shaders += bool(milk.warp or milk.comp)
    assert with_shaders >= 0.8 * len(files)
