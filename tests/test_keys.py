"""A row's identity (stages.core.keys): the content key changes with each of its parts and with nothing else.

Preset identities come from real files; the translator and engine versions are changed the way a developer
changes them, by editing the source in a copy of the repo and asking that copy in a fresh interpreter.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stages.core.contracts import file_hash, value_hash, write_json
from stages.core.keys import (
    KeyVersions,
    audio_identity,
    content_key,
    fingerprint_key,
    layer_render_key,
    preset_identity,
    shard_key,
    stats_key,
)
from stages.core.plan import PlannedPair
from stages.core.settings import RenderSettings, SampleSettings
from stages.render.versions import KEY_VERSIONS

# Every sample setting, by what it does to a row's identity.
PIXELS = {item.name for item in dataclasses.fields(RenderSettings)} | {
    "min_luma", "max_luma", "min_motion", "max_flicker", "min_audio_corr", "min_layer_share", "stats_warmup",
    "allow_degraded"}
# These pick the audio and the browser: a row's key holds what they gave (the audio's key, the renderer),
# a shard's key (decided before any browser starts) holds the settings themselves.
SOURCES = {"audio_file", "gpu_mode", "chromium"}
# How the run is organised: which pairs, how many at once, how long, on which machines (the cluster's
# renderer is in the row's key like any other).
RUN = {"packs", "target_coverage", "max_hours", "workers", "shard_size", "shuffle_seed", "reload_every",
       "browser_max_restarts", "pair_timeout_s", "headed", "executor", "address", "gpus"}
# Cuts a heavy pair short (a too-heavy row) without being part of any key: a row records the cap it was judged
# under, and `core.rows` renders again only the rows a changed cap could judge otherwise (tests/test_cost_cap.py).
CAPS = {"max_frame_ms"}
ENGINE, RENDERER, AUDIO = "butterchurn-3.0.0+page-0123456789ab", "SwiftShader", "click-key"


def changed(settings: SampleSettings, name: str) -> SampleSettings:
    value = getattr(settings, name)
    if isinstance(value, bool):
        other = not value
    elif isinstance(value, int | float):
        other = value + 1 if isinstance(value, int) else value + 0.125
    else:
        other = value + "-changed"
    return dataclasses.replace(settings, **{name: other})


@pytest.fixture
def pair(tmp_path) -> PlannedPair:
    fg, bg = tmp_path / "a_fg.json", tmp_path / "a_bg.json"
    write_json(fg, {"baseVals": {"zoom": 1.01}})
    write_json(bg, {"baseVals": {"zoom": 0.99}})
    return PlannedPair(0, fg, bg, preset_identity(fg, KEY_VERSIONS), preset_identity(bg, KEY_VERSIONS))


def key(pair: PlannedPair, settings: SampleSettings = SampleSettings(), audio: str = AUDIO, engine: str = ENGINE,
        renderer: str = RENDERER) -> str:
    return content_key(pair, settings, audio, engine, renderer, KEY_VERSIONS)


def test_every_sample_setting_is_classified():
    names = {item.name for item in dataclasses.fields(SampleSettings)}
    groups = [PIXELS, SOURCES, RUN, CAPS]
    assert set().union(*groups) == names, "a new setting: decide whether it changes a row's identity"
    assert sum(len(group) for group in groups) == len(names), "each setting in one group"


def test_content_key_changes_with_each_preset_file(pair):
    before = key(pair)
    assert key(pair) == before
    pair.fg_path.write_text('{"baseVals": {"zoom": 1.02}}')
    edited = PlannedPair(0, pair.fg_path, pair.bg_path, preset_identity(pair.fg_path, KEY_VERSIONS), pair.bg_hash)
    assert key(edited) != before
    pair.bg_path.write_text('{"baseVals": {"zoom": 0.98}}')
    both = PlannedPair(0, pair.fg_path, pair.bg_path, edited.fg_hash, preset_identity(pair.bg_path, KEY_VERSIONS))
    assert key(both) not in (before, key(edited))
    swapped = PlannedPair(0, pair.bg_path, pair.fg_path, both.bg_hash, both.fg_hash)
    assert key(swapped) != key(both), "fg over bg is not bg over fg"


def test_content_key_ignores_the_pair_number_and_file_names(pair, tmp_path):
    """The same two presets under another pair number and names render the same pixels."""
    fg, bg = tmp_path / "copy [1]_fg.json", tmp_path / "copy [1]_bg.json"
    shutil.copyfile(pair.fg_path, fg)
    shutil.copyfile(pair.bg_path, bg)
    assert key(PlannedPair(9, fg, bg, preset_identity(fg, KEY_VERSIONS), preset_identity(bg, KEY_VERSIONS))) == key(pair)


@pytest.mark.parametrize("name", sorted(PIXELS))
def test_content_and_shard_keys_change_with_each_pixel_and_statistics_setting(pair, name):
    settings = SampleSettings()
    assert key(pair, changed(settings, name)) != key(pair, settings)
    assert shard_key(changed(settings, name), [pair], KEY_VERSIONS) != shard_key(settings, [pair], KEY_VERSIONS)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_audio_and_browser_settings_reach_the_content_key_through_what_they_give(pair, name):
    settings = SampleSettings()
    assert key(pair, changed(settings, name)) == key(pair, settings)
    assert shard_key(changed(settings, name), [pair], KEY_VERSIONS) != shard_key(settings, [pair], KEY_VERSIONS)


@pytest.mark.parametrize("name", sorted(RUN))
def test_run_settings_change_no_key(pair, name):
    settings = SampleSettings()
    assert key(pair, changed(settings, name)) == key(pair, settings)
    assert shard_key(changed(settings, name), [pair], KEY_VERSIONS) == shard_key(settings, [pair], KEY_VERSIONS)


def test_content_key_changes_with_audio_engine_and_renderer(pair):
    before = key(pair)
    others = {key(pair, audio="another-track"), key(pair, engine="butterchurn-3.0.0+page-ba9876543210"),
              key(pair, renderer="ANGLE (NVIDIA, Vulkan)")}
    assert before not in others and len(others) == 3


def test_audio_identity_follows_the_file(tmp_path):
    track = tmp_path / "track.wav"
    track.write_bytes(b"RIFF" + bytes(100))
    settings = SampleSettings(audio_file=str(track))
    first = audio_identity(settings)
    assert audio_identity(SampleSettings()) == "click" and first != "click"
    assert audio_identity(settings) == first
    track.write_bytes(b"RIFF" + bytes(200))  # another recording under the same name
    assert audio_identity(settings) != first
    track.unlink()
    assert audio_identity(settings).startswith("unreadable:")


def test_preset_identity_of_json_is_its_bytes_and_of_milk_more(tmp_path):
    text = "[preset00]\nfDecay=0.9\nzoom=1.01\n"
    milk, json_named = tmp_path / "a.milk", tmp_path / "a.json"
    milk.write_text(text)
    json_named.write_text(text)
    assert preset_identity(json_named, KEY_VERSIONS) == file_hash(json_named)
    assert preset_identity(milk, KEY_VERSIONS) != file_hash(milk), "a .milk file's picture also depends on the translator"
    (tmp_path / "b.milk").write_text(text)
    assert preset_identity(tmp_path / "b.milk", KEY_VERSIONS) == preset_identity(milk, KEY_VERSIONS)


def test_keys_keep_their_values(tmp_path):
    """Rows already sampled keep their keys: these values were computed by the code that keyed them, under
    these versions (a refactor of how a key is put together must give the same hashes, or every row renders
    again; a bumped version changes them, as it should)."""
    versions = KeyVersions(converter="milk-3", translator="hlsl2glsl-4", stats=1, fingerprint=1)
    fg, milk = tmp_path / "a_fg.json", tmp_path / "a.milk"
    fg.write_text('{"baseVals": {"zoom": 1.01}}\n')
    milk.write_text("[preset00]\nfDecay=0.9\nzoom=1.01\n")
    settings = SampleSettings()
    assert preset_identity(fg, versions) == "57ae6d204e78dbbd"
    assert preset_identity(milk, versions) == "764ab079a361805f"
    pair = PlannedPair(0, fg, milk, preset_identity(fg, versions), preset_identity(milk, versions))
    assert content_key(pair, settings, AUDIO, ENGINE, RENDERER, versions) == "49abd559dcbf94d1"
    # a layer's key gained the readback size when fingerprints came to be made from the frames pairs are
    # composed from (render.pairstats): cae06c336bf36f70 and fdb945fb4d2a0c18 before
    assert fingerprint_key(preset_identity(milk, versions), settings, AUDIO, ENGINE, RENDERER, versions) == "7c0b81e2a5d04cb9"
    assert stats_key(settings, versions) == "1f15c8668e3dd742"
    assert value_hash(layer_render_key(settings, versions)) == "39d2b56eabb40831"


# ------------------------------------------------------------------ versions, in a copy of the repo


def ask(repo: Path, expression: str, *files: Path) -> str:
    """Evaluate `expression` (with stages.core.keys imported as `keys`, and the versions that key rows as
    `KEY_VERSIONS`) in a fresh interpreter using `repo`."""
    code = (f"import sys; from pathlib import Path; from stages.core import keys; "
            f"from stages.render.versions import KEY_VERSIONS; print({expression})")
    done = subprocess.run([sys.executable, "-c", code, *map(str, files)], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(repo)}, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def bump(path: Path, constant: str) -> None:
    """Give a version constant (`NAME = "..."`) a new value, as a developer does after changing the code."""
    text, count = re.subn(rf'^{constant} = "([^"]*)"', rf'{constant} = "\1-next"', path.read_text(), flags=re.M)
    assert count == 1, f"{constant} not found in {path}"
    path.write_text(text)


@pytest.mark.parametrize("module, constant", [("hlsl/__init__.py", "TRANSLATOR_VERSION"), ("conversion.py", "CONVERTER_VERSION")])
def test_milk_identity_includes_the_translator_version(checkout_copy, tmp_path, module, constant):
    milk, json_preset = tmp_path / "a.milk", tmp_path / "a.json"
    milk.write_text("[preset00]\nfDecay=0.9\nwarp_1=`shader_body { ret = 1; }\n")
    write_json(json_preset, {"baseVals": {"decay": 0.9}})
    identities = "keys.preset_identity(Path(sys.argv[1]), KEY_VERSIONS), keys.preset_identity(Path(sys.argv[2]), KEY_VERSIONS)"
    milk_before, json_before = ask(checkout_copy, identities, milk, json_preset).split()
    assert milk_before == preset_identity(milk, KEY_VERSIONS), "the copy computes what the repo does"
    bump(checkout_copy / "stages" / "presets" / module, constant)
    milk_after, json_after = ask(checkout_copy, identities, milk, json_preset).split()
    assert milk_after != milk_before
    assert json_after == json_before, "a butterchurn JSON preset is not translated"


def test_engine_version_changes_when_the_sampling_page_changes(checkout_copy):
    web = checkout_copy / "web"
    before = ask(checkout_copy, "keys.engine_version()")
    assert before.startswith("butterchurn-")
    with (web / "player.js").open("a") as player:
        player.write("\n// the player is not the sampler\n")
    assert ask(checkout_copy, "keys.engine_version()") == before
    for page in sorted(web.glob("sampler.*")):
        original = page.read_bytes()
        page.write_bytes(original + b"\n")
        assert ask(checkout_copy, "keys.engine_version()") != before, page.name
        page.write_bytes(original)
    assert ask(checkout_copy, "keys.engine_version()") == before
    (web / "sampler.extra.js").write_text("export const frames = 1;\n")  # a new file of the page
    assert ask(checkout_copy, "keys.engine_version()") != before
