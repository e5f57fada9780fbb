"""The pack report: built from fixture artifacts, opened from disk in real headless Chromium."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from packs import make_pack, write_training_report

from stages.core.contracts import VERIFY_KIND, append_jsonl, read_json, read_jsonl, write_json
from stages.core.errors import ContractError
from stages.core.workspace import Workspace
from stages.report import build_report, gather

PAIRS = 60


def write_verify_report(ws: Workspace, pack: str, failing: str = "") -> None:
    names = ("same-pack", "picks-follow-quality", "frames-non-blank", "frames-change", "no-page-errors")
    checks = [{"name": name, "passed": name != failing, "detail": f"measured {name}"} for name in names]
    write_json(ws.verify_report_path(pack), {"kind": VERIFY_KIND, "pack": pack, "passed": not failing,
                                       "checks": checks})


def open_report(browser, path: Path):
    """The report page from disk, and every URL it asked for."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(path.as_uri())
    return page, requested


def test_full_report_opens_from_disk_with_every_section(tmp_path, browser, screenshots):
    ws = Workspace(tmp_path / "ws")
    make_pack(ws, "demo", PAIRS, rows="eval", quality=True)
    write_training_report(ws)
    write_verify_report(ws, "demo", failing="frames-change")
    path = build_report(ws, "demo")
    moved = tmp_path / "elsewhere" / "index.html"  # a static page: it must work after being copied away
    moved.parent.mkdir()
    shutil.copyfile(path, moved)
    page, requested = open_report(browser, moved)
    page.screenshot(path=str(screenshots / "report.png"), full_page=True)
    assert all(url == moved.as_uri() or url.startswith("data:") for url in requested), requested

    histogram_total = page.evaluate("""() => [...document.querySelectorAll(
            'svg[aria-label="score histogram"] rect title')]
        .reduce((sum, t) => sum + Number(t.textContent.split(': ')[1].split(' ')[0]), 0)""")
    assert histogram_total == PAIRS
    titles = page.evaluate("[...document.querySelectorAll('h3')].map(h => h.textContent)")
    assert "24 best pairs" in titles and "24 worst pairs" in titles
    images = page.evaluate("[...document.querySelectorAll('figure img')].map(i => [i.alt, i.naturalWidth])")
    # the best pair (59) failed in sampling and has no thumbnail; all other 47 cards show theirs
    assert len(images) == 47 and all(width == 64 for _, width in images)
    first_card = page.text_content("figure.card")
    assert "#59" in first_card and "shader-failed" in first_card and "0.950" in first_card
    gates = dict(page.evaluate("[...document.querySelectorAll('h2 + table tr')].slice(1).map("
                               "r => [r.cells[0].textContent, r.cells[1].textContent])"))
    assert gates["qualityStats.std ≥ 0.03"] == "pass" and gates["no missing preset files"] == "pass"
    assert gates["verify: frames-change"] == "fail" and gates["verify: same-pack"] == "pass"
    summary = dict(page.evaluate("[...document.querySelectorAll('.cards div')].map("
                                 "d => [d.querySelector('span').textContent, d.querySelector('b').textContent])"))
    assert summary["all gates"] == "fail" and summary["verify"] == "fail" and summary["sampled pairs failed"] == "1"
    failures = page.evaluate("[...document.querySelectorAll('table.failures tr')].slice(1).map(r => r.textContent)")
    assert len(failures) == 1 and "coupled_00059" in failures[0] and "_fg.json" in failures[0]
    assert "texsize_noise" in failures[0]
    curves = page.evaluate("[...document.querySelectorAll('svg[aria-label=\"training curves\"] polyline title')]"
                           ".map(t => t.textContent)")
    assert curves == ["elite", "eval", "neg", "total", "validation"]
    dots = page.evaluate("[...document.querySelectorAll('svg.scatter circle title')].map(t => t.textContent)")
    assert len(dots) == 8 and "#0: measured 0.000, out-of-fold 1.000" in dots
    disagreeing = page.evaluate("[...document.querySelectorAll('table.disagreements tr')].slice(1)"
                                ".map(r => r.cells[0].textContent)")
    assert disagreeing == ["#0", "#7", "#1", "#6"]
    body = page.text_content("main")
    assert "visited 60 of target 60" in body and "0.610 [0.420, 0.770]" in body
    assert "Not available" not in body
    page.close()


def test_report_of_a_pack_with_only_rejected_scores_says_what_is_missing(tmp_path, browser, screenshots):
    ws = Workspace(tmp_path)
    make_pack(ws, "fresh", 12, quality=True)
    quality = read_json(ws.quality_path("fresh"))
    for item in quality["pairs"]:
        item["quality01"] = 0.5
    quality["qualityStats"].update(min=0.5, p50=0.5, p95=0.5, max=0.5, std=0.0, mean=0.5)
    write_json(ws.rejected_quality_path("fresh"), quality)
    ws.quality_path("fresh").unlink()
    page, _ = open_report(browser, build_report(ws, "fresh"))
    page.screenshot(path=str(screenshots / "report-rejected.png"), full_page=True)
    problems = page.evaluate("[...document.querySelectorAll('.problems li')].map(li => li.textContent)")
    assert any("doit sample" in text for text in problems) and any("doit train" in text for text in problems)
    assert any("doit verify" in text for text in problems)
    gates = dict(page.evaluate("[...document.querySelectorAll('h2 + table tr')].slice(1).map("
                               "r => [r.cells[0].textContent, r.cells[1].textContent])"))
    assert gates["qualityStats.std ≥ 0.03"] == "fail" and gates["scores accepted"] == "fail"
    assert gates["verify"] == "not run"
    page.close()


def test_a_thumbnail_path_outside_the_eval_dir_is_not_embedded(tmp_path):
    ws = Workspace(tmp_path / "ws")
    make_pack(ws, "demo", 8, rows="eval", quality=True)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG not for the report")
    rows = read_jsonl(ws.eval_path("demo")).rows
    rows[0]["thumb"] = "../../../../secret.png"
    ws.eval_path("demo").unlink()
    with ws.eval_path("demo").open("ab") as handle:
        for row in rows:
            append_jsonl(handle, row)
    html = build_report(ws, "demo").read_text()
    assert gather(ws, "demo").rows[0]["thumb"] == "../../../../secret.png"
    # 8 pairs: pair 7 failed without a thumbnail, pair 0's points outside; the other 6 are embedded
    assert "all 8 pairs, best first" in html and html.count("data:image/png;base64,") == 6
    # the score gates pass but verify has not run: the summary must not claim the gates pass
    assert "<b>incomplete</b><span>all gates</span>" in html


def test_a_pack_without_a_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(ContractError, match="pairs-manifest.v0.json: file not found"):
        build_report(Workspace(tmp_path), "nope")


def test_markup_in_a_preset_name_and_a_message_is_text_on_the_page(tmp_path):
    ws = Workspace(tmp_path)
    make_pack(ws, "demo", 4, rows="eval", quality=True)
    # the last pair failed: its fg file name shows in its card and in the failures table with its error
    manifest = read_json(ws.manifest_path("demo"))
    old_url = manifest["pairs"][3]["fgUrl"]
    new_url = old_url.replace("coupled_00003", "coupled_<script>alert(1)<!--")
    (ws.public / old_url.lstrip("/")).rename(ws.public / new_url.lstrip("/"))
    manifest["pairs"][3]["fgUrl"] = new_url
    write_json(ws.manifest_path("demo"), manifest)
    rows = read_jsonl(ws.eval_path("demo")).rows
    rows[3]["errors"] = ['fg load: "<img src=x onerror=alert(2)>" & more']
    ws.eval_path("demo").unlink()
    with ws.eval_path("demo").open("ab") as handle:
        for row in rows:
            append_jsonl(handle, row)
    page = build_report(ws, "demo").read_text()
    assert "<script" not in page and "<img src=x" not in page and "<!--" not in page
    assert "fg coupled_&lt;script&gt;alert(1)&lt;!--" in page, "the name is shown, as text"
    assert "&lt;img src=x onerror=alert(2)&gt;" in page and "&amp; more" in page, "the message too"
