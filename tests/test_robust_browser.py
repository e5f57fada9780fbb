"""Issue 9, the cases that render: real doit in a temp workspace with real headless Chromium (run them under
`flock /tmp/cq-browser.lock`), and the player page."""
from __future__ import annotations

import shutil

import orjson
import pytest
from packs import make_pack
from test_pipeline import SETTINGS, eval_rows, shard_rows

from stages.core.contracts import Manifest, ManifestPair, read_json, read_jsonl, write_json
from stages.core.errors import CqError
from stages.core.settings import SampleSettings
from stages.core.workspace import Workspace
from stages.merge import run as merge_pack
from stages.render.server import PLAYER_PATH, serving


@pytest.fixture
def workspace(workspace) -> Workspace:
    """A workspace whose coupled-quality.toml makes rendering quick (as in test_pipeline)."""
    workspace.config_path.write_text(SETTINGS)
    return workspace


def configured_settings() -> SampleSettings:
    return SampleSettings(packs="tiny", frames=16, width=64, height=64, shard_size=5, workers=1)


def test_lost_rows_and_passing_failures_are_rendered_again_and_a_lost_cache_loses_nothing(workspace, doit):
    make_pack(workspace, "tiny", 3)
    workspace.config_path.write_text(SETTINGS.replace("shard_size = 2", "shard_size = 5"))
    doit(workspace, "merge")
    shard = workspace.shard_path("tiny", 0)
    lines = shard.read_bytes().splitlines(keepends=True)
    assert len(lines) == 3
    corrupt_pair = read_jsonl(shard).rows[1]["pair"]
    timed_out = read_jsonl(shard).rows[2]
    timed_out.update(status="timeout", okHeuristic=False, reasons=["timeout"], stats={})
    lines[1] = b'{"tMs": 1, "pack": "tiny", "pa\x00rt of a line}\n'  # 9.1: a corrupt middle line
    lines[2] = orjson.dumps(timed_out) + b"\n"                     # 9.2: a timeout under load
    shard.write_bytes(b"".join(lines))

    doit(workspace, "merge")  # the .done marker must not keep this shard "up to date"
    rows = eval_rows(workspace, "tiny")
    assert sorted(row["pair"] for row in rows) == [0, 1, 2]
    assert all(row["status"] == "ok" for row in rows), [row["status"] for row in rows]
    rerendered = sorted(row["pair"] for row in read_jsonl(shard).rows[2:] if row["status"] == "ok")
    assert rerendered == sorted([corrupt_pair, timed_out["pair"]])

    # 9.9: without the identity cache the merge reads what it needs from the rows themselves
    workspace.identity_cache_path.unlink()
    merge_pack(workspace, "tiny", configured_settings())
    assert sorted(row["pair"] for row in eval_rows(workspace, "tiny")) == [0, 1, 2]
    # ... and an empty merge is never published silently
    before = workspace.eval_path("tiny").read_bytes()
    shutil.rmtree(workspace.shards_dir("tiny"))
    with pytest.raises(CqError, match="none of the 3 pairs"):
        merge_pack(workspace, "tiny", configured_settings())
    assert workspace.eval_path("tiny").read_bytes() == before


def test_every_manifest_pair_once_under_its_own_number_and_a_missing_file_is_a_row(workspace, doit):
    manifest = make_pack(workspace, "tiny", 3).manifest
    first = manifest.pairs[0]
    for url, twin in ((first.fgUrl, "twin_fg.json"), (first.bgUrl, "twin_bg.json")):
        # pair 3: byte-identical copies of pair 0's presets, under other names
        source = workspace.public / url.lstrip("/")
        shutil.copyfile(source, source.with_name(twin))
    missing = ManifestPair(4, manifest.pairs[1].fgUrl, "/presets/tiny/bg/gone_bg.json")
    pairs = [*manifest.pairs, ManifestPair(3, "/presets/tiny/fg/twin_fg.json", "/presets/tiny/bg/twin_bg.json"),
             missing]
    write_json(workspace.manifest_path("tiny"), Manifest(manifest.path, "tiny", pairs).to_json())

    result = doit(workspace, "merge")  # 9.4: the other shards and the merge still run, exit 0
    rows = {row["pair"]: row for row in eval_rows(workspace, "tiny")}
    assert sorted(rows) == [0, 1, 2, 3, 4], "every manifest pair exactly once"
    assert rows[3]["presetFgId"] == "twin_fg.json" and rows[3]["contentKey"] == rows[0]["contentKey"]
    assert rows[4]["status"] == "missing-file" and "gone_bg.json" in rows[4]["errors"][0]
    assert "missing preset file" in result.stdout
    meta = read_json(workspace.meta_path("tiny"))
    assert any("gone_bg.json" in error for error in meta["errors"])

    # a renumbered pair takes its new number, and nothing is rendered again
    rendered = len(shard_rows(workspace, "tiny"))
    renumbered = [ManifestPair(30 if p.pair == 2 else p.pair, p.fgUrl, p.bgUrl) for p in pairs]
    write_json(workspace.manifest_path("tiny"), Manifest(manifest.path, "tiny", renumbered).to_json())
    doit(workspace, "merge")
    assert sorted(row["pair"] for row in eval_rows(workspace, "tiny")) == [0, 1, 3, 4, 30]
    assert len(shard_rows(workspace, "tiny")) == rendered


def test_the_player_never_picks_a_pair_without_a_score(tmp_path, browser):
    ws = Workspace(tmp_path / "ws")
    make_pack(ws, "demo", 8, quality=True)
    quality = read_json(ws.quality_path("demo"))
    # the two best pairs could not be read, so they have no score (the median would have been given)
    quality["pairs"] = [entry for entry in quality["pairs"] if entry["pair"] not in (6, 7)]
    write_json(ws.quality_path("demo"), quality)
    with serving(ws) as server:
        page = browser.new_page(viewport={"width": 320, "height": 240})
        page.goto(f"{server.url}{PLAYER_PATH}?pack=demo&seed=3&hold=0")
        page.wait_for_function("window.cqPlayer && window.cqPlayer.picker", timeout=30000, polling=200)
        picks = page.evaluate("""() => ['weighted', 'shuffle', 'random'].flatMap((mode) =>
            Array.from({length: 300}, () => window.cqPlayer.picker.next(mode).pair))""")
        page.close()
    assert set(picks) <= {0, 1, 2, 3, 4, 5} and len(set(picks)) == 6
