"""The player page in real headless Chromium against the real local server, and the server on its own."""
from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import urllib.request
import wave
from urllib.parse import quote

import numpy as np
import pytest
from packs import make_pack

from stages.core.contracts import read_jsonl, read_ratings
from stages.core.workspace import CHECKOUT, Workspace
from stages.render.server import PLAYER_PATH, serving


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    ws = Workspace(tmp_path_factory.mktemp("player-ws"))
    make_pack(ws, "demo", 8, rows="eval", quality=True)
    return ws


@pytest.fixture(scope="module")
def server(workspace):
    with serving(workspace) as running:
        yield running


@pytest.fixture(scope="module")
def player(server, browser):
    """One player page for the module (a page load costs seconds on a software renderer)."""
    page = browser.new_page(viewport={"width": 560, "height": 315})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server.url}{PLAYER_PATH}?pack=demo&seed=3&hold=0")
    page.wait_for_function("window.cqPlayer && window.cqPlayer.current && "
                           "document.getElementById('status').textContent === ''", timeout=30000, polling=200)
    yield page
    page.close()
    assert errors == []


def request(server, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    payload = json.dumps(body).encode() if body is not None else None
    connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, (json.loads(data) if data and response.getheader("Content-Type", "").startswith(
        "application/json") else {})


def canvas_luma(page) -> float:
    return page.evaluate("""() => {
        const probe = document.createElement('canvas'); probe.width = probe.height = 16;
        const context = probe.getContext('2d');
        context.drawImage(document.getElementById('stage'), 0, 0, 16, 16);
        const data = context.getImageData(0, 0, 16, 16).data;
        let sum = 0; for (let i = 0; i < data.length; i += 4) sum += data[i] + data[i + 1] + data[i + 2];
        return sum / (16 * 16 * 3 * 255);
    }""")


def test_player_plays_a_pair_with_its_overlay(player, screenshots):
    player.wait_for_timeout(2500)
    shown = player.evaluate("window.cqPlayer.current")
    overlay = {key: player.text_content(f"#{key}") for key in ("pair", "score", "visited", "fg", "bg", "rms")}
    player.screenshot(path=str(screenshots / "player.png"))
    assert overlay["pair"] == str(shown["pair"])
    assert overlay["score"] == f"{shown['quality']:.3f}"
    assert overlay["visited"].startswith("1/8")
    assert overlay["fg"] in shown["fgUrl"] and overlay["fg"].endswith("_fg.json")
    assert overlay["bg"] in shown["bgUrl"] and overlay["bg"].endswith("_bg.json")
    assert float(overlay["rms"]) > 0, "the built-in track should reach the analyser"
    # both visualizers hear it too (128 is silence in their time-domain samples)
    deviation = player.evaluate("""() => ['fg', 'bg'].map(name => Math.max(...Array.from(
        window.cqPlayer.layers[name].audio.timeByteArray, value => Math.abs(value - 128))))""")
    assert min(deviation) > 5, deviation
    assert canvas_luma(player) > 0.02, "the composite should not be black"


def test_next_key_shows_another_pair(player):
    first = player.evaluate("window.cqPlayer.current.pair")
    player.keyboard.press("n")
    player.wait_for_function(f"window.cqPlayer.current.pair !== {first}", timeout=20000, polling=200)
    player.wait_for_function("document.getElementById('visited').textContent.startsWith('2/8')",
                             timeout=10000, polling=200)


def test_shuffle_visits_every_pair_once_per_round(player):
    pairs = player.evaluate("""() => {
        const picker = window.cqPlayer.picker;
        return Array.from({length: 16}, () => picker.next('shuffle').pair);
    }""")
    assert sorted(pairs[:8]) == list(range(8)) and sorted(pairs[8:]) == list(range(8))


def test_weighted_picks_favour_good_pairs_and_avoid_recent_ones(player):
    picks = player.evaluate("""() => {
        const picker = window.cqPlayer.picker;
        return Array.from({length: 800}, () => picker.next('weighted').pair);
    }""")
    # pair 7 has the best score, pair 0 the worst (packs.make_pack)
    assert picks.count(7) > 1.8 * picks.count(0)
    immediate_repeats = sum(1 for a, b in zip(picks, picks[1:]) if a == b)
    assert immediate_repeats < 0.05 * len(picks)


def test_a_chosen_audio_file_replaces_the_click_track(player, tmp_path):
    path = tmp_path / "tone & beat.wav"
    rate = 22050
    t = np.arange(rate * 2) / rate
    samples = (0.5 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(samples.tobytes())
    player.set_input_files("#audio-file", str(path))
    player.wait_for_function("document.getElementById('audio-source').textContent === 'tone & beat.wav'",
                             timeout=20000, polling=200)
    # a 0.5-amplitude sine has an RMS of about 0.35; the click track's differs
    player.wait_for_function("Math.abs(Number(document.getElementById('rms').textContent) - 0.354) < 0.03",
                             timeout=20000, polling=200)


def test_rating_keypress_lands_in_the_ratings_file_exactly_once(player, workspace, screenshots):
    before = len(read_jsonl(workspace.ratings_path).rows)
    shown = player.evaluate("window.cqPlayer.current")
    player.keyboard.press("4")
    player.wait_for_function("document.getElementById('rating').textContent.includes('saved')",
                             timeout=20000, polling=200)
    player.screenshot(path=str(screenshots / "player-rated.png"))
    # a held key auto-repeats: the repeats must not send more ratings
    player.keyboard.down("5")
    player.keyboard.down("5")
    player.keyboard.down("5")
    player.keyboard.up("5")
    player.wait_for_function("document.getElementById('rating').textContent.startsWith('★★★★★')",
                             timeout=20000, polling=200)
    player.wait_for_timeout(300)
    rows = read_jsonl(workspace.ratings_path).rows[before:]
    assert [(row["pair"], row["score"]) for row in rows] == [(shown["pair"], 4), (shown["pair"], 5)]
    assert rows[0]["fgUrl"] == shown["fgUrl"] and rows[0]["bgUrl"] == shown["bgUrl"]
    entries, warnings = read_ratings(workspace.ratings_path)
    assert warnings == [] and (shown["fgUrl"], shown["bgUrl"], 5.0) in {(e.fgUrl, e.bgUrl, e.score) for e in entries}


def test_an_unknown_pack_is_explained_and_another_can_be_picked(server, browser, screenshots):
    page = browser.new_page(viewport={"width": 480, "height": 270})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{server.url}{PLAYER_PATH}?pack=nope&hold=0")
    page.wait_for_function("document.getElementById('status').textContent !== ''", timeout=20000, polling=200)
    assert page.text_content("#status") == 'there is no pack "nope" in this workspace (it has demo): pick one above'
    page.screenshot(path=str(screenshots / "player-unknown-pack.png"))
    page.keyboard.press("n")  # nothing to play yet: the key must not break the page
    page.select_option("#pack", "demo")
    page.wait_for_function("window.cqPlayer.current && window.cqPlayer.pack.pack === 'demo'", timeout=20000,
                           polling=200)
    page.close()
    assert errors == []


def test_server_rejects_bad_ratings_and_appends_a_retry_once(server, workspace):
    before = len(read_jsonl(workspace.ratings_path).rows)
    good = {"pack": "demo", "pair": 3, "score": 2, "ratingId": "retry-test-0001"}
    assert request(server, "POST", "/api/rating", good)[0] == 201
    status, answer = request(server, "POST", "/api/rating", good)
    assert status == 200 and answer["recorded"] is False
    for bad, problem in (({**good, "score": 9, "ratingId": "bad-score-0001"}, "outside 1..5"),
                         ({**good, "pair": 99, "ratingId": "bad-pair-0001"}, "not in pack"),
                         ({**good, "pack": "nope", "ratingId": "bad-pack-0001"}, "unknown pack"),
                         ({**good, "ratingId": 7}, "ratingId")):
        status, answer = request(server, "POST", "/api/rating", bad)
        assert status == 400 and problem in answer["error"]
    assert len(read_jsonl(workspace.ratings_path).rows) == before + 1


def test_server_converts_milk_presets_and_explains_a_broken_one(server, workspace, corpus):
    milk = sorted(corpus.glob("*/*.milk"))[0]
    shutil.copyfile(milk, workspace.pack_dir("demo") / "fg" / "from corpus & co [1].milk")
    (workspace.pack_dir("demo") / "fg" / "broken.milk").write_bytes(b"\x00\x01 not a preset")
    status, preset = request(server, "GET", "/api/preset?url=" + quote("/presets/demo/fg/from corpus & co [1].milk"))
    assert status == 200 and isinstance(preset["baseVals"], dict) and isinstance(preset["warp"], str)
    status, answer = request(server, "GET", "/api/preset?url=" + quote("/presets/demo/fg/broken.milk"))
    assert status == 422 and "broken.milk" in answer["error"]


def test_server_serves_presets_as_json_and_refuses_escapes(server):
    assert server.server_address[0] == "127.0.0.1"
    status, preset = request(server, "GET", "/api/preset?url=/presets/demo/fg/"
                             + "coupled_00000%20%5BFlexi%20-%20mind%5D_fg.json")
    assert status == 200 and isinstance(preset["baseVals"], dict)
    assert request(server, "GET", "/api/preset?url=/presets/demo/../../ratings.jsonl")[0] == 422
    assert request(server, "GET", "/api/preset?url=/etc/passwd")[0] == 400
    assert request(server, "GET", "/presets/../ratings.jsonl")[0] == 404
    assert request(server, "GET", "/web/../stages/server.py")[0] == 404
    status, packs = request(server, "GET", "/api/packs")
    assert status == 200 and packs == {"packs": ["demo"]}


def test_the_server_command_serves_the_player_on_localhost(workspace):
    process = subprocess.Popen([sys.executable, "-m", "stages.cli", "serve", "--port", "0"], cwd=CHECKOUT, text=True,
                               env={**os.environ, "CQ_WORKSPACE": str(workspace.root)}, stdout=subprocess.PIPE)
    try:
        line = process.stdout.readline()
        url = line.split()[1]
        assert url.startswith("http://127.0.0.1:") and url.endswith(PLAYER_PATH)
        with urllib.request.urlopen(url.replace(PLAYER_PATH, "/"), timeout=10) as response:
            assert response.url == url and b'<script type="module" src="player.js">' in response.read()
    finally:
        process.terminate()
        process.wait(timeout=10)
