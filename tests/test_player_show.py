"""The player for a show, in real headless Chromium with a fake media stream: live input, fullscreen without a
cursor, previous/lock keys, pick settings kept between sessions, playlist export."""
from __future__ import annotations

import csv
import io
import json

import pytest
from packs import make_pack
from playwright.sync_api import sync_playwright

from stages.core.contracts import parse_manifest
from stages.core.workspace import Workspace
from stages.render.browser import find_chromium
from stages.render.server import PLAYER_PATH, serving
from stages.verify import CHROMIUM_ARGS

# Chromium's fake capture device: a beeping tone as the microphone, and no permission prompt.
FAKE_MEDIA = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    ws = Workspace(tmp_path_factory.mktemp("show-ws"))
    make_pack(ws, "demo", 8, rows="eval", quality=True)
    return ws


@pytest.fixture(scope="module")
def server(workspace):
    with serving(workspace) as running:
        yield running


@pytest.fixture(scope="module")
def context():
    """One browser with a fake microphone; one context, so localStorage lives across page loads."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium("", playwright.chromium.executable_path),
                                             args=[*CHROMIUM_ARGS, *FAKE_MEDIA])
        context = browser.new_context(viewport={"width": 800, "height": 450}, accept_downloads=True)
        yield context
        browser.close()


# An EEL trap of one of the fixture's presets (butterchurn's wasm; RENDERING.md): the preset's, not the page's.
PRESET_TRAP = "float unrepresentable in integer range"


def open_player(context, server, query: str = "pack=demo&hold=0&seed=5"):
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: None if PRESET_TRAP in str(error) else errors.append(str(error)))
    page.goto(f"{server.url}{PLAYER_PATH}?{query}")
    page.wait_for_function("window.cqPlayer && window.cqPlayer.current", timeout=30000, polling=200)
    return page, errors


def test_live_input_reaches_the_visuals_and_not_the_speakers(context, server):
    page, errors = open_player(context, server)
    page.keyboard.press("i")
    page.wait_for_function("document.getElementById('audio-source').textContent.startsWith('live:')",
                           timeout=20000, polling=200)
    state = page.evaluate("""() => ({live: !!window.cqPlayer.audio.live,
        tracks: window.cqPlayer.audio.live.stream.getAudioTracks().map(t => t.readyState),
        source: window.cqPlayer.audio.source})""")
    assert state["live"] and state["tracks"] == ["live"] and state["source"] is None
    # the fake device's beep reaches the analyser and both visualizers (128 is silence for them)
    page.wait_for_function("Number(document.getElementById('rms').textContent) > 0.01", timeout=20000, polling=200)
    page.wait_for_function("""() => ['fg', 'bg'].every(name => Math.max(...Array.from(
        window.cqPlayer.layers[name].audio.timeByteArray, v => Math.abs(v - 128))) > 5)""", timeout=20000, polling=200)
    page.keyboard.press("i")  # back to the built-in track; the microphone is released
    page.wait_for_function("document.getElementById('audio-source').textContent === 'built-in click track'",
                           timeout=20000, polling=200)
    assert page.evaluate("window.cqPlayer.audio.live") is None
    page.close()
    assert errors == []


def test_fullscreen_hides_the_cursor_and_the_overlay(context, server):
    page, errors = open_player(context, server)
    page.keyboard.press("f")
    page.wait_for_function("document.fullscreenElement !== null", timeout=10000, polling=100)
    page.wait_for_function("document.body.classList.contains('fullscreen')", timeout=5000, polling=100)
    assert page.evaluate("getComputedStyle(document.getElementById('stage')).cursor") == "none"
    assert page.evaluate("getComputedStyle(document.getElementById('overlay')).display") == "none"
    page.keyboard.press("f")
    page.wait_for_function("document.fullscreenElement === null && "
                           "!document.body.classList.contains('fullscreen')", timeout=10000, polling=100)
    assert page.evaluate("getComputedStyle(document.getElementById('stage')).cursor") != "none"
    page.close()
    assert errors == []


def test_previous_goes_back_and_lock_holds_the_pair(context, server):
    page, errors = open_player(context, server, "pack=demo&hold=1&seed=5")
    page.keyboard.press("k")
    locked = page.evaluate("window.cqPlayer.current.pair")
    assert page.is_visible("#lock")
    page.wait_for_timeout(2500)  # more than the hold time: a locked pair stays
    assert page.evaluate("window.cqPlayer.current.pair") == locked
    page.keyboard.press("n")  # a manual next still works while locked
    page.wait_for_function(f"window.cqPlayer.current.pair !== {locked}", timeout=20000, polling=200)
    page.keyboard.press("p")
    page.wait_for_function(f"window.cqPlayer.current.pair === {locked}", timeout=20000, polling=200)
    page.keyboard.press("p")  # nothing before the first pair: it says so and stays
    page.wait_for_function("document.getElementById('toast').textContent === 'no previous pair'", timeout=5000)
    assert page.evaluate("window.cqPlayer.current.pair") == locked
    page.keyboard.press("k")
    assert not page.is_visible("#lock")
    page.close()
    assert errors == []


def test_pick_settings_come_back_next_session_and_url_parameters_win(context, server):
    page, errors = open_player(context, server)
    page.click("#pick-settings summary")
    for name, value in (("gamma", "3.5"), ("explore", "0.25"), ("hold", "12")):
        page.fill(f"#{name}", value)
        page.dispatch_event(f"#{name}", "change")
    page.select_option("#mode", "shuffle")
    weights = page.evaluate("window.cqPlayer.picker.weights")
    best = max(weights)
    assert abs(best - (0.75 * 0.95 ** 3.5 + 0.25)) < 1e-6, "the picker should use the new gamma and explore"
    page.fill("#gamma", "-1")
    page.dispatch_event("#gamma", "change")  # refused: the kept value stays
    page.close()

    page, errors_again = open_player(context, server, "pack=demo&seed=5")
    assert [page.input_value(f"#{name}") for name in ("gamma", "explore", "hold")] == ["3.5", "0.25", "12"]
    assert page.evaluate("window.cqPlayer.mode") == "shuffle"
    page.close()
    page, _ = open_player(context, server, "pack=demo&seed=5&gamma=1.5&hold=0")
    assert page.input_value("#gamma") == "1.5" and page.input_value("#explore") == "0.25"
    page.close()
    assert errors == [] and errors_again == []


@pytest.mark.parametrize("format_", ["json", "m3u8", "csv"])
def test_export_writes_the_top_pairs_as_a_playlist(context, server, workspace, format_):
    page, errors = open_player(context, server)
    page.click("#export summary")
    page.fill("#export-count", "3")
    page.select_option("#export-format", format_)
    with page.expect_download() as download:
        if format_ == "m3u8":  # the key, once the focus has left the form (keys typed into it are its own)
            page.evaluate("document.activeElement.blur()")
            page.keyboard.press("e")
        else:
            page.click("#export-button")
    text = open(download.value.path(), encoding="utf-8").read()
    assert download.value.suggested_filename == f"demo-top3.{format_}"
    # packs.make_pack: quality rises with the pair number, so the top 3 are pairs 7, 6, 5
    manifest = {entry.pair: entry for entry in parse_manifest("manifest", json.loads(
        workspace.manifest_path("demo").read_text())).pairs}
    if format_ == "json":
        exported = parse_manifest("export", json.loads(text))
        assert [entry.pair for entry in exported.pairs] == [7, 6, 5]
        assert exported.pairs[0] == manifest[7]
        assert json.loads(text)["keptPairs"] == 3 and json.loads(text)["totalPairs"] == 8
    elif format_ == "m3u8":
        lines = text.splitlines()
        assert lines[0] == "#EXTM3U"
        paths = [line for line in lines if not line.startswith("#")]
        assert paths[:2] == [manifest[7].fgUrl.split("/demo/")[1], manifest[7].bgUrl.split("/demo/")[1]]
        assert len(paths) == 6 and all((workspace.pack_dir("demo") / path).is_file() for path in paths)
    else:
        rows = list(csv.DictReader(io.StringIO(text)))
        assert [int(row["pair"]) for row in rows] == [7, 6, 5]
        assert rows[0]["fgUrl"] == manifest[7].fgUrl and float(rows[0]["quality01"]) == pytest.approx(0.95)
    page.close()
    assert errors == []
