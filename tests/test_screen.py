"""Conversion cache, manifests from folders, and screening in real headless Chromium.

The semantic probes are comp shaders that draw white where an HLSL fact holds and black where it does not,
so each translated construct is compiled by Chromium and its meaning (not only its syntax) is checked.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stages import convert
from stages.core.contracts import load_manifest
from stages.core.errors import ContractError
from stages.core.workspace import Workspace
from stages.presets import conversion
from stages.presets.conversion import PresetError, convert_milk, load_preset
from stages.presets.manifests import manifest_from_folder, pack_preset_paths, write_manifest_from_folder
from stages.screen import QUIET_LAYER, preset_files
from stages.screen import run as screen

REPO = Path(__file__).resolve().parents[1]
HEADER = "MILKDROP_PRESET_VERSION=201\nPSVERSION=2\nPSVERSION_WARP=2\nPSVERSION_COMP=2\n[preset00]\nfDecay=0.9\n"


def milk(warp: str = "", comp: str = "", extra: str = "") -> str:
    lines = [HEADER, extra]
    for stage, text in (("warp", warp), ("comp", comp)):
        lines += [f"{stage}_{n}=`{line}\n" for n, line in enumerate(text.splitlines(), start=1)]
    return "".join(lines)


def probe(setup: str, condition: str, header: str = "") -> str:
    return milk(comp=f"{header}\nshader_body {{\n{setup}\nret = ({condition}) ? 1 : 0;\n}}")


# Each is true in HLSL (as MilkDrop runs it); a wrong translation draws black.
PROBES = {
    "fmod_truncates": probe("", "abs(fmod(-3.5, 2) - (-1.5)) < 0.001"),
    "percent_truncates": probe("float a = -3.5;", "abs(a % 2 - (-1.5)) < 0.001"),
    "mul_row_vector": probe("float2 v = mul(float2(1, 0), float2x2(1, 2, 3, 4));", "abs(v.y - 2) < 0.001"),
    "mul_column_vector": probe("float2 v = mul(float2x2(1, 2, 3, 4), float2(1, 0));", "abs(v.y - 3) < 0.001"),
    "matrix_rows": probe("float2x2 m = {1, 2, 3, 4};", "abs(m[1].x - 3) < 0.001"),
    "lum_is_a_float": probe("", "abs(lum(float3(1, 1, 1)) - 1.1) < 0.001"),
    "int_division": probe("int a = 7; int b = 2;", "a / b == 3"),
    "frac_negative": probe("", "abs(frac(-0.25) - 0.75) < 0.001"),
    "truncation": probe("float2 a = float3(1, 2, 3);", "abs(a.y - 2) < 0.001"),
    "scalar_broadcast": probe("float3 c = 2;", "abs(c.z - 2) < 0.001"),
    "bool_arithmetic": probe("bool t = true;", "t + t == 2"),
    "atan2_order": probe("", "abs(atan2(1, 0) - 1.5707963) < 0.001"),
    "rsqrt_and_saturate": probe("", "abs(rsqrt(4) - 0.5) < 0.001 && saturate(2) == 1"),
    "q_written": probe("q1 = 5;", "q1 == 5"),
    "global_initializer": probe("", "k == 3", header="static const float k = 1 + 2;"),
    "out_parameter": probe("float a; twice(2, a);", "a == 4",
                           header="void twice(float x, out float y) { y = x * 2; }"),
    "loops": probe("float s = 0; for (int i = 0; i < 4; i++) s += i; int n = 0; while (n < 3) n++;",
                   "s == 6 && n == 3"),
    "preprocessor": probe("", "VALUE == 3", header="#define ADD(a, b) ((a) + (b))\n#define VALUE ADD(1, 2)"),
    "texsize_of_a_user_texture": probe("", "texsize_worms.x == 128",
                                       header="sampler sampler_worms; float4 texsize_worms;"),
    "multi_declaration_half1": probe("half1 a = 1, b = 2; double3 c = a + b;", "c.y == 3"),
    "negative_literals": probe("float2 a = float2(0, -1024);", "a.y == -1024 && -(-3) == 3 && 2 - -1 == 3"),
    "user_texture_sampled": probe("float4 t = tex2d(sampler_worms, uv);", "t.a > 0.5",
                                  header="sampler sampler_worms;"),
    "matrix_times_scalar": probe("float2x2 m = {1, 2, 3, 4}; float f = 2; m = m * f;",
                                 "abs(m[1].x - 6) < 0.001 && abs(m[0].y - 4) < 0.001"),
    "matrix_from_a_vector_fills_rows": probe("float2x2 a = float2x2(float4(1, 2, 3, 4)); float2x2 b = {1, 2, 3, 4};",
                                             "all(a[0] == b[0]) && all(a[1] == b[1]) && a[1].x == 3"),
    "comma_operator_is_its_last_operand": probe("float2 t = float2(2, 3); float2 v = t * (5, 4);", "all(v == float2(8, 12))"),
    "modf_splits": probe("float whole; float f = modf(-2.75, whole);", "abs(f + 0.75) < 0.001 && whole == -2"),
    "text_after_the_body": milk(comp="shader_body { ret = 1; }\nwritten by martin's hand"),
    "warp_writes_uv": milk(warp="shader_body { uv = uv * 0 + 0.5; ret = uv.x == 0.5 ? 1 : 0; }",
                           comp="shader_body { ret = tex2D(sampler_main, uv).xyz; }"),
}


@pytest.fixture(scope="module")
def probe_report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("probes")
    for name, text in PROBES.items():
        (folder / f"{name}.milk").write_text(text)
    (folder / "control_false.milk").write_text(probe("", "1 == 2"))   # must come out black
    (folder / "lights_up_after_a_second.milk").write_text(probe("", "time > 1"))
    # no wave, and no motion vectors (butterchurn draws them by default): nothing draws
    (folder / "quiet_by_design.milk").write_text(milk(extra="fWaveAlpha=0\nmv_a=0\n"))
    cache = tmp_path_factory.mktemp("state") / "milk-cache"
    return screen(folder, frames=3, size=16, cache_dir=cache)


@pytest.mark.parametrize("name", sorted(PROBES))
def test_semantic_probe_draws_white(probe_report, name):
    record = next(r for r in probe_report["presets"] if r["file"] == f"{name}.milk")
    assert record["status"] == "ok", record
    assert record["luma"] > 0.9, record


def test_a_false_probe_draws_black(probe_report):
    record = next(r for r in probe_report["presets"] if r["file"] == "control_false.milk")
    assert record["status"] == "black" and "luma" in record["message"]
    assert "its own shader keeps the frame black" in record["message"]


def test_black_presets_get_a_longer_look(probe_report):
    records = {r["file"]: r for r in probe_report["presets"]}
    late = records["lights_up_after_a_second.milk"]
    assert late["status"] == "dark-start", late
    first = int(late["message"].split("black for the first ")[1].split()[0])
    assert 25 <= first <= 35, late   # time passes 1 s at frame 30 (dt 1/30)
    quiet = records["quiet_by_design.milk"]
    assert quiet["status"] == "black" and "its equations draw nothing" in quiet["message"], quiet


# ------------------------------------------------------------------------------------ statuses


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mixed")
    (folder / "good.milk").write_text(milk(comp="shader_body { ret = float3(uv, 0.5); }"))
    (folder / "untranslatable.milk").write_text(milk(comp="shader_body { ret = nowhere; }"))
    # HLSL forbids recursion too, but only GLSL's compiler notices: a shader failure found by drawing
    (folder / "recursive.milk").write_text(milk(
        comp="float f(float x) { return x < 1 ? x : f(x - 1); }\nshader_body { ret = f(uv.x); }"))
    (folder / "binary.milk").write_bytes(b"\x00\x01\x02 not a preset")
    (folder / "bad_eel.milk").write_text(milk(extra="per_frame_1=zoom = (;\n"))
    nested = folder / "sub dir [x]"
    nested.mkdir()
    (nested / "butterchurn.json").write_text(json.dumps(
        {**QUIET_LAYER, "comp": " shader_body { ret = vec3(0.8); }"}))
    (folder / "pairs-manifest.v0.json").write_text("{}")    # a pack file, not a preset: skipped
    (folder / "notes.txt").write_text("skipped")
    return folder


def test_screen_reports_every_status(mixed_folder, tmp_path):
    out = tmp_path / "report.json"
    report = screen(mixed_folder, out, frames=3, size=16, cache_dir=tmp_path / "cache")
    assert json.loads(out.read_text()) == report
    statuses = {r["file"]: r["status"] for r in report["presets"]}
    assert statuses == {"good.milk": "ok", "untranslatable.milk": "translate-failed",
                        "recursive.milk": "shader-failed", "binary.milk": "read-failed",
                        "bad_eel.milk": "eel-error", "sub dir [x]/butterchurn.json": "ok"}
    assert report["total"] == 6 and report["ok"] == 2
    assert report["by_status"] == {"ok": 2, "translate-failed": 1, "shader-failed": 1, "read-failed": 1,
                                   "eel-error": 1}
    messages = {r["file"]: r["message"] for r in report["presets"]}
    assert "undeclared identifier 'nowhere'" in messages["untranslatable.milk"]
    assert "comp shader replaced by butterchurn's default draws" in messages["recursive.milk"]
    assert "NUL bytes" in messages["binary.milk"]
    assert report["translateMs"]["count"] == 5 and report["translateMs"]["median"] > 0


def test_screen_with_degraded_presets_allowed(mixed_folder, tmp_path):
    folder = tmp_path / "presets"
    folder.mkdir()
    for name in ("untranslatable.milk", "recursive.milk", "binary.milk"):
        (folder / name).write_bytes((mixed_folder / name).read_bytes())
    report = screen(folder, frames=3, size=16, cache_dir=tmp_path / "cache", allow_degraded=True)
    statuses = {r["file"]: r["status"] for r in report["presets"]}
    assert statuses == {"untranslatable.milk": "degraded", "recursive.milk": "degraded",
                        "binary.milk": "read-failed"}
    messages = {r["file"]: r["message"] for r in report["presets"]}
    assert messages["recursive.milk"].startswith("comp shader replaced by butterchurn's default draws; ")


def test_screen_command_line(mixed_folder, tmp_path):
    out = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "stages.cli", "screen", str(mixed_folder), "--out", str(out),
                           "--no-render"], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={"CQ_WORKSPACE": str(tmp_path / "ws"), "PATH": os.environ["PATH"]})
    assert done.returncode == 0, done.stderr
    assert "ok (" in done.stdout and json.loads(out.read_text())["total"] == 6
    assert (tmp_path / "ws" / ".cq" / "milk-cache").is_dir()
    missing = subprocess.run([sys.executable, "-m", "stages.cli", "screen", str(tmp_path / "nope"), "--out",
                              str(out)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope'}: not a folder "
                                                   "(point the screen at a folder of presets)"]


def test_preset_files_stay_inside_the_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.milk").write_text(milk())
    folder = tmp_path / "pack"
    folder.mkdir()
    (folder / "a.milk").write_text(milk())
    (folder / "link").symlink_to(outside, target_is_directory=True)
    (folder / "b.milk").symlink_to(outside / "secret.milk")
    assert preset_files(folder) == [folder / "a.milk"]


# --------------------------------------------------------------------------------- conversion cache


def test_conversion_is_cached_by_content_and_translator_version(tmp_path, monkeypatch):
    path = tmp_path / "a.milk"
    cache = tmp_path / "cache"
    path.write_text(milk(comp="shader_body { ret = 1; }"))
    first = convert_milk(path, cache)
    assert first.status == "ok" and not first.cached and "ret = vec3(1.0);" in first.preset["comp"]
    again = convert_milk(path, cache)
    assert again.cached and again.preset == first.preset
    path.write_text(milk(comp="shader_body { ret = 0.5; }"))         # an edited file reconverts
    edited = convert_milk(path, cache)
    assert not edited.cached and "ret = vec3(0.5);" in edited.preset["comp"]
    monkeypatch.setattr(conversion, "TRANSLATOR_VERSION", "a-newer-translator")
    assert not convert_milk(path, cache).cached
    assert len(list(cache.glob("*.json"))) == 3


def test_failures_are_cached_outcomes_too(tmp_path):
    path = tmp_path / "a.milk"
    path.write_text(milk(comp="shader_body { ret = missing; }"))
    first = convert_milk(path, tmp_path / "cache")
    second = convert_milk(path, tmp_path / "cache")
    assert first.status == second.status == "translate-failed" and second.cached
    assert first.message == second.message


def test_damaged_cache_entry_is_converted_again(tmp_path):
    path = tmp_path / "a.milk"
    path.write_text(milk())
    convert_milk(path, tmp_path / "cache")
    (entry,) = (tmp_path / "cache").glob("*.json")
    entry.write_text("{torn")
    again = convert_milk(path, tmp_path / "cache")
    assert again.status == "ok" and not again.cached
    assert json.loads(entry.read_text())["status"] == "ok"


def test_load_preset_milk_and_errors(tmp_path):
    path = tmp_path / "a.milk"
    path.write_text(milk(comp="shader_body { ret = nothing; }", extra="zoom=1.1\nper_frame_1=rot = 0.1;\n"))
    with pytest.raises(PresetError) as caught:
        load_preset(path, tmp_path / "cache")
    assert caught.value.status == "translate-failed" and "a.milk" in str(caught.value)
    degraded = load_preset(path, tmp_path / "cache", allow_degraded=True)
    assert degraded["comp"] == "" and "undeclared identifier" in degraded["cqDegraded"][0]
    assert degraded["baseVals"] == {"decay": 0.9, "zoom": 1.1} and degraded["frame_eqs_eel"] == "rot = 0.1;"
    assert degraded["version"] == 2 and len(degraded["shapes"]) == 4 and len(degraded["waves"]) == 4
    with pytest.raises(PresetError, match="not supported") as caught:
        load_preset(tmp_path / "a.txt")
    assert caught.value.status == "read-failed"


def test_convert_pack_converts_only_what_changed(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    pack_dir = workspace.pack_dir("p")
    for side in ("fg", "bg"):
        (pack_dir / side).mkdir(parents=True)
    (pack_dir / "fg" / "coupled_00001_a_fg.milk").write_text(milk(comp="shader_body { ret = 1; }"))
    (pack_dir / "bg" / "coupled_00001_a_bg.milk").write_text(milk(comp="shader_body { ret = nope; }"))
    (pack_dir / "fg" / "coupled_00002_b_fg.milk").write_text(milk())
    (pack_dir / "bg" / "coupled_00002_b_bg.json").write_text(json.dumps(QUIET_LAYER))
    write_manifest_from_folder(pack_dir)
    assert [path.name for path in pack_preset_paths(workspace, "p")] == [
        "coupled_00001_a_bg.milk", "coupled_00002_b_bg.json", "coupled_00001_a_fg.milk", "coupled_00002_b_fg.milk"]
    first = convert.run(workspace, "p")
    assert first["total"] == 3 and first["converted"] == 3 and first["cached"] == 0
    assert first["by_status"] == {"ok": 2, "translate-failed": 1}
    assert json.loads(workspace.conversion_report_path("p").read_text()) == first
    assert convert.run(workspace, "p")["converted"] == 0
    (pack_dir / "fg" / "coupled_00002_b_fg.milk").write_text(milk(comp="shader_body { ret = 0.25; }"))
    again = convert.run(workspace, "p")
    assert again["converted"] == 1 and again["cached"] == 2


# ---------------------------------------------------------------------------------- pack manifests


def test_manifest_from_folder(tmp_path):
    pack = tmp_path / "mypack"
    for side in ("fg", "bg"):
        (pack / side / "deeper").mkdir(parents=True)
        (pack / side / "deeper" / f"coupled_00009_x_{side}.milk").write_text(milk())   # not looked at
    for number in (1, 2, 65):
        (pack / "fg" / f"coupled_{number:05d}_20240101 a&b_fg.milk").write_text(milk())
    for number in (2, 1, 65, 7):
        (pack / "bg" / f"coupled_{number:05d}_20240101 a&b_bg.milk").write_text(milk())
    (pack / "fg" / "coupled_00002_other_fg.milk").write_text(milk())       # a second fg for pair 2
    (pack / "fg" / "random name.milk").write_text(milk())
    (pack / "bg" / "coupled_00001_wrong_fg.milk").write_text(milk())       # an fg file in bg/
    manifest, unmatched = manifest_from_folder(pack)
    assert manifest.pack == "mypack"
    assert [(p.pair, p.fgUrl, p.bgUrl) for p in manifest.pairs] == [
        (1, "/presets/mypack/fg/coupled_00001_20240101 a&b_fg.milk", "/presets/mypack/bg/coupled_00001_20240101 a&b_bg.milk"),
        (65, "/presets/mypack/fg/coupled_00065_20240101 a&b_fg.milk", "/presets/mypack/bg/coupled_00065_20240101 a&b_bg.milk")]
    assert sorted(unmatched) == sorted([
        "bg/coupled_00001_wrong_fg.milk: name is not coupled_<pair>_<stamp>_bg.milk",
        "fg/random name.milk: name is not coupled_<pair>_<stamp>_fg.milk",
        "fg/coupled_00002_20240101 a&b_fg.milk: pair 2 has 2 fg and 1 bg files",
        "fg/coupled_00002_other_fg.milk: pair 2 has 2 fg and 1 bg files",
        "bg/coupled_00002_20240101 a&b_bg.milk: pair 2 has 2 fg and 1 bg files",
        "bg/coupled_00007_20240101 a&b_bg.milk: no partner"])
    write_manifest_from_folder(pack)
    written = load_manifest(pack / "pairs-manifest.v0.json")
    assert [p.pair for p in written.pairs] == [1, 65] and written.pack == "mypack"


def test_manifest_from_folder_errors(tmp_path):
    with pytest.raises(ContractError, match="folder not found"):
        manifest_from_folder(tmp_path)
    (tmp_path / "fg").mkdir()
    (tmp_path / "bg").mkdir()
    with pytest.raises(ContractError, match="no fg/bg pairs found"):
        write_manifest_from_folder(tmp_path)
