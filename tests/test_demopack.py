"""stages.demopack: the bundled demo pack is coupled, valid, and byte-for-byte reproducible."""
from pathlib import Path

import pytest

from stages import demopack
from stages.core.contracts import load_manifest, read_json, resolve_url, write_json
from stages.core.errors import ContractError
from stages.core.workspace import Workspace
from stages.demopack import (
    BASES_PATH,
    COUPLING,
    COUPLING_NAME,
    DEFAULT_COUNT,
    DEMO_PACK,
    PRESETS_DIR,
    VARIANTS,
    demo_pack_outputs,
    load_bases,
)
from stages.presets.conversion import load_preset

pytestmark = pytest.mark.skipif(not PRESETS_DIR.is_dir(), reason="butterchurn-presets not installed (doit web_deps)")


def snapshot(workspace: Workspace) -> dict[str, bytes]:
    pack_dir = workspace.pack_dir(DEMO_PACK)
    return {path.relative_to(pack_dir).as_posix(): path.read_bytes() for path in sorted(pack_dir.rglob("*"))
            if path.is_file()}


@pytest.fixture(scope="module")
def default_pack(tmp_path_factory):
    workspace = Workspace(tmp_path_factory.mktemp("demo"))
    return workspace, demopack.run(workspace)


def test_the_default_pack_has_enough_valid_pairs(default_pack):
    workspace, written = default_pack
    manifest = load_manifest(workspace.manifest_path(DEMO_PACK))
    assert manifest.pack == DEMO_PACK and len(manifest.pairs) == DEFAULT_COUNT >= 120
    assert manifest.generatedAt and [entry.pair for entry in manifest.pairs] == list(range(1, DEFAULT_COUNT + 1))
    assert written == demo_pack_outputs(workspace) and all(path.is_file() for path in written)
    assert len(snapshot(workspace)) == len(written)
    for entry in manifest.pairs:
        for url in (entry.fgUrl, entry.bgUrl):
            load_preset(resolve_url(workspace.public, url, manifest.path))
    origins = read_json(workspace.pack_dir(DEMO_PACK) / COUPLING_NAME)["pairs"]
    bases = [origin["base"] for origin in origins]
    per_base = VARIANTS * (VARIANTS - 1)
    assert len(set(bases)) == DEFAULT_COUNT // per_base, "each base gives every ordered pair of its variants"
    assert set(bases) <= set(load_bases())
    contents = {path.read_bytes() for path in written[2:]}
    assert len(contents) == DEFAULT_COUNT // per_base * VARIANTS, "a variant is the same file content in each pair"


def test_variants_differ_by_the_recorded_offsets_and_nothing_else(default_pack):
    workspace, _ = default_pack
    manifest = load_manifest(workspace.manifest_path(DEMO_PACK))
    origins = read_json(workspace.pack_dir(DEMO_PACK) / COUPLING_NAME)["pairs"]
    for entry, origin in zip(manifest.pairs, origins):
        fg = load_preset(resolve_url(workspace.public, entry.fgUrl, manifest.path))
        bg = load_preset(resolve_url(workspace.public, entry.bgUrl, manifest.path))
        base = load_preset(PRESETS_DIR / f"{origin['base']}.json")
        assert fg["baseVals"]["cx"] - bg["baseVals"]["cx"] == pytest.approx(entry.cx_diff, abs=1e-9)
        assert fg["baseVals"]["warp"] - bg["baseVals"]["warp"] == pytest.approx(entry.warp_diff, abs=1e-9)
        for param in COUPLING:
            diff = fg["baseVals"][param.name] - bg["baseVals"][param.name]
            assert diff == pytest.approx(origin["diffs"][param.name], abs=1e-9)
            steps = origin["variants"][0] - origin["variants"][1]
            assert 0.25 * abs(steps) * param.scale - 1e-6 <= abs(diff) <= abs(steps) * param.scale + 1e-6, \
                (entry.pair, param.name)
            for variant in (fg, bg):
                assert param.low <= variant["baseVals"][param.name] <= param.high
            value = base["baseVals"].get(param.name, param.default)
            if param.low + param.scale <= value <= param.high - param.scale and abs(steps) == 2:
                centre = (fg["baseVals"][param.name] + bg["baseVals"][param.name]) / 2
                assert centre == pytest.approx(value, abs=1e-6), "the outer variants are base - d and base + d"
        coupled = {param.name for param in COUPLING}
        for variant in (fg, bg):
            assert {k: v for k, v in variant["baseVals"].items() if k not in coupled} == \
                   {k: v for k, v in base["baseVals"].items() if k not in coupled}
            assert {k: v for k, v in variant.items() if k != "baseVals"} == \
                   {k: v for k, v in base.items() if k != "baseVals"}


def test_same_seed_same_bytes_other_seed_other_pack(default_pack, tmp_path):
    workspace, _ = default_pack
    again = Workspace(tmp_path / "again")
    demopack.run(again)
    assert snapshot(again) == snapshot(workspace)
    other = Workspace(tmp_path / "other")
    demopack.run(other, seed=2, count=5)
    assert snapshot(other)["pairs-manifest.v0.json"] != snapshot(workspace)["pairs-manifest.v0.json"]


def test_a_smaller_rebuild_leaves_no_stale_pairs(tmp_path):
    workspace = Workspace(tmp_path)
    demopack.run(workspace, count=4)
    written = demopack.run(workspace, count=2)
    files = {path for path in workspace.pack_dir(DEMO_PACK).rglob("*") if path.is_file()}
    assert files == set(written) and len(load_manifest(workspace.manifest_path(DEMO_PACK)).pairs) == 2


def test_the_committed_base_list_is_big_enough_and_explains_its_rejections():
    data = read_json(BASES_PATH)
    assert len(load_bases()) >= DEFAULT_COUNT
    assert all(item["why"] for item in data["rejected"])
    assert not set(load_bases()) & {item["name"] for item in data["rejected"]}
    assert all((PRESETS_DIR / f"{name}.json").is_file() for name in load_bases())


@pytest.mark.parametrize("content, message", [
    ({"bases": []}, "non-empty list"),
    ({"bases": ["a", "a"]}, "twice"),
    (["not", "an", "object"], "'bases' list"),
], ids=["empty", "duplicate", "list"])
def test_a_broken_base_list_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "bases.json"
    write_json(path, content)
    with pytest.raises(ContractError, match=message) as error:
        demopack.run(Workspace(tmp_path / "ws"), bases_path=path)
    assert str(path) in str(error.value) and "stages.cli demo-bases" in str(error.value)


def test_a_missing_base_preset_names_the_file(tmp_path):
    path = tmp_path / "bases.json"
    write_json(path, {"bases": ["No Such Preset"]})
    with pytest.raises(ContractError, match="No Such Preset.json.*missing"):
        demopack.run(Workspace(tmp_path / "ws"), bases_path=path)
    assert not Path(tmp_path / "ws" / "public").exists(), "nothing is written before the inputs check out"


def test_the_screen_keeps_clean_presets_and_says_why_it_drops_the_others(tmp_path):
    """A real screen in headless Chromium over four variants of one preset."""
    from stages.demopack import screen

    good = load_preset(PRESETS_DIR / "$$$ Royal - Mashup (220).json")
    presets_dir = tmp_path / "presets"
    variants = {
        "good": good,
        "black": {**good, "comp": " shader_body { \n  ret = vec3(0.0, 0.0, 0.0);\n }"},
        "broken": {**good, "comp": " shader_body { \n  ret = no_such_variable.xyz;\n }"},
        "texsize": {**good, "comp": " shader_body { \n  ret = vec3(texsize_moss1.x);\n }"},
    }
    for name, preset in variants.items():
        write_json(presets_dir / f"{name}.json", preset)
    out = tmp_path / "bases.json"
    report = screen(out, presets_dir=presets_dir, frames=6, size=32, state_dir=tmp_path / "state")
    assert read_json(out) == report and load_bases(out) == ["good"]
    why = {item["name"]: item["why"] for item in report["rejected"]}
    assert set(why) == {"black", "broken", "texsize"}
    assert "black" in why["black"] and why["broken"].startswith("shader-failed")
    assert "texsize_moss1" in why["texsize"]
    assert report["screen"]["renderer"] and report["screen"]["candidates"] == 4


def test_undeclared_texture_sizes_are_found_statically():
    from stages.demopack import undeclared_textures

    preset = {"warp": "uniform vec4 texsize_noise_lq; x = texsize_noise_lq.x;", "comp": "y = texsize_cells.zw;"}
    assert undeclared_textures(preset, {"texsize_noise_lq"}) == ["texsize_cells"]
    assert undeclared_textures({"warp": "", "comp": ""}, set()) == []
