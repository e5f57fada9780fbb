"""Verify gate: the runtime player, run headless, really uses a pack's scores and really draws.

In: a workspace pack with its manifest and `pairs-quality.v0.json`, and the player page (`web/player.html`).
Out: `reports/<pack>/verify.json` (`VERIFY_KIND`, every check with its numbers) and a `CqError` naming the
failed checks, so `doit verify` fails with the reason.

The player runs in headless Chromium in its verify mode (`?verify=1`): it loads the pack the way a user's
browser does, picks `picks` times by the quality rule without waiting, then plays the best pair and one
picked pair in real time while sampling the composite. The checks:

- `page-loaded` (only when it fails): the page could not load the pack, e.g. a quality file of another pack;
- `same-pack`: the page loaded a manifest and quality file of this pack, with the files' pair counts and std;
- `picks-follow-quality`: top-quartile pairs were picked clearly more often than the bottom quartile: at
  least half the advantage the rule gives them (`expected_pick_ratio`, repeat penalty included), capped at
  `min_pick_ratio` and never below `MIN_PICK_RATIO_FLOOR` (scores too flat to favour anything fail here,
  as they fail the std gate);
- `frames-non-blank` and `frames-change`: the composite was neither black nor uniform, and it moved;
- `no-page-errors`: no uncaught exception or unhandled rejection in the page.
"""
from __future__ import annotations

import math
import os
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlencode

import numpy as np

from .core.contracts import VERIFY_KIND, load_manifest, now_iso, read_json, validate_quality, write_json
from .core.errors import CqError
from .core.progress import Progress
from .core.settings import VerifySettings
from .core.workspace import WEB_DIR, Workspace
from .render.browser import BASE_ARGS, INSTALL_ADVICE, BrowserRegistry, find_chromium, launch_args, new_owner_mark
from .render.server import PLAYER_PATH, serving

# the player's audio must run without a click, as it would after the user's first key
PLAYER_ARGS = ["--autoplay-policy=no-user-gesture-required"]
CHROMIUM_ARGS = [*BASE_ARGS, *PLAYER_ARGS]
NON_BLANK_LUMA = 0.02       # mean luma of a sampled frame above which it is not black
NON_BLANK_SPREAD = 0.01     # luma standard deviation above which it is not one flat colour
CHANGE_DELTA = 0.002        # mean absolute luma change between samples that counts as motion
MIN_GOOD_FRAMES = 3
MIN_PICK_RATIO_FLOOR = 1.1
STEP_NAMES = ("picks made", "best pair played", "picked pair played")
VERIFY_STEPS = len(STEP_NAMES)


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


PLAYER_PAGES = [WEB_DIR / "player.html", WEB_DIR / "player.js", WEB_DIR / "player.css", WEB_DIR / "sampler.dots.js"]


def quartile_pick_ratio(scores: dict[int, float], counts: dict[int, float]) -> tuple[float, float, float]:
    """(top-quartile picks / bottom-quartile picks, top picks, bottom picks), quartiles by score."""
    ranked = sorted(scores, key=lambda pair: (scores[pair], pair))
    size = max(1, len(ranked) // 4)
    bottom = sum(counts.get(pair, 0) for pair in ranked[:size])
    top = sum(counts.get(pair, 0) for pair in ranked[-size:])
    return (top / bottom if bottom else math.inf if top else 0.0), top, bottom


def expected_pick_ratio(scores: dict[int, float], rule: dict, picks: int, seed: int = 0) -> float:
    """Top-quartile / bottom-quartile pick ratio the runtime's rule gives, repeat penalty included: the rule
    w = (1-explore)*q^gamma + explore, each of the last `dedupN` picks' weight times `dedupPenalty`, played
    out `picks` times here (an independent model of the page's picker, so the page is checked against it)."""
    pairs = list(scores)
    base = np.array([(1 - rule["explore"]) * scores[pair] ** rule["gamma"] + rule["explore"] for pair in pairs])
    window = int(rule["dedupN"])
    if window == 0:
        return quartile_pick_ratio(scores, dict(zip(pairs, base)))[0]
    random = np.random.default_rng(seed)
    counts = np.zeros(len(pairs))
    recent: list[int] = []
    for draw in random.random(picks):
        weights = base.copy()
        weights[recent] *= rule["dedupPenalty"]
        cumulative = np.cumsum(weights)
        index = min(int(np.searchsorted(cumulative, draw * cumulative[-1], side="right")), len(pairs) - 1)
        counts[index] += 1
        recent = (recent + [index])[-window:]
    return quartile_pick_ratio(scores, dict(zip(pairs, counts)))[0]


def required_pick_ratio(expected: float, settings: VerifySettings) -> float:
    return max(MIN_PICK_RATIO_FLOOR, min(settings.min_pick_ratio, 1 + 0.5 * (expected - 1)))


def check_result(result: dict, manifest, quality: dict, page_errors: list[str],
                 settings: VerifySettings) -> list[Check]:
    """Judge what the page reported against the files on disk (pure: no browser, no I/O)."""
    if "fatal" in result:
        return [Check("page-loaded", False, f"the player stopped: {result['fatal']}"),
                Check("no-page-errors", not page_errors, "; ".join(page_errors) or "none")]
    checks = []
    file_std = quality["qualityStats"]["std"]
    same = (result["pack"] == manifest.pack == quality["pack"] == result["qualityPack"]
            and result["manifestPairs"] == len(manifest.pairs) and result["qualityPairs"] == len(quality["pairs"])
            and abs(result["qualityStd"] - file_std) <= 1e-3 + 0.01 * file_std)
    checks.append(Check("same-pack", same,
                        f"page: pack {result['pack']!r}/{result['qualityPack']!r}, {result['manifestPairs']} "
                        f"manifest pairs, {result['qualityPairs']} scored, std {result['qualityStd']:.4f}; files: "
                        f"pack {manifest.pack!r}/{quality['pack']!r}, {len(manifest.pairs)} pairs, "
                        f"{len(quality['pairs'])} scored, std {file_std:.4f}"))
    scores = {entry["pair"]: entry["quality01"] for entry in quality["pairs"]}
    counts = {int(pair): count for pair, count in result["pickCounts"].items()}
    if len(scores) < 2:
        checks.append(Check("picks-follow-quality", True, "fewer than 2 scored pairs: nothing to compare"))
    else:
        ratio, top, bottom = quartile_pick_ratio(scores, counts)
        rule = result["pickSettings"]
        expected = expected_pick_ratio(scores, rule, result["picks"])
        required = required_pick_ratio(expected, settings)
        checks.append(Check("picks-follow-quality", ratio >= required,
                            f"{result['picks']} picks: top quartile {top}, bottom quartile {bottom}, ratio "
                            f"{ratio:.2f} (the rule gives {expected:.2f}; needs >= {required:.2f})"))
    frames = result["frames"]
    non_blank = [f for f in frames if f["luma"] >= NON_BLANK_LUMA and f["spread"] >= NON_BLANK_SPREAD]
    moving = [f for f in frames if f["delta"] is not None and f["delta"] >= CHANGE_DELTA]
    failures = "".join(f"; pair {item['pair']} did not load: {item['error']}" for item in result["presetFailures"])
    checks.append(Check("frames-non-blank", len(non_blank) >= MIN_GOOD_FRAMES,
                        f"{len(non_blank)} of {len(frames)} sampled frames non-blank "
                        f"({result['renderedFrames']} rendered, pairs {result['shownPairs']}){failures}"))
    checks.append(Check("frames-change", len(moving) >= MIN_GOOD_FRAMES,
                        f"{len(moving)} of {len(frames)} sampled frames changed from the previous one"))
    listed = f": {'; '.join(page_errors[:3])}" if page_errors else ""
    checks.append(Check("no-page-errors", not page_errors, f"{len(page_errors)} page error(s){listed}"))
    return checks


def _browser_pid(browser) -> int:
    session = browser.new_browser_cdp_session()
    processes = session.send("SystemInfo.getProcessInfo")["processInfo"]
    session.detach()
    return next(item["id"] for item in processes if item["type"] == "browser")


def _await_result(page, pack: str, settings: VerifySettings, page_errors: list[str]) -> dict:
    """Poll the page until it publishes its result, with a progress bar over its steps."""
    progress = Progress(f"verify {pack}", VERIFY_STEPS, unit="steps", every_s=2.0)
    deadline = time.monotonic() + settings.timeout_s
    while time.monotonic() < deadline:
        state = page.evaluate("[window.cqVerifyStep || 0, window.cqVerifyResult !== undefined]")
        step, finished = min(state[0], VERIFY_STEPS), state[1]
        if step > progress.done:
            progress.update(step - progress.done, extra=STEP_NAMES[step - 1])
        if finished:
            progress.close()
            return page.evaluate("window.cqVerifyResult")
        page.wait_for_timeout(250)
    raise CqError(f"verify {pack}: the player did not finish within {settings.timeout_s:.0f} s "
                  f"(page errors: {'; '.join(page_errors) or 'none'})")


FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".pfb", ".pfa", ".pcf", ".pcf.gz", ".woff", ".woff2")


FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path("~/.fonts"), Path("~/.local/share/fonts"))


def font_problem(environ=os.environ, platform: str = sys.platform, font_dirs=FONT_DIRS) -> str:
    """Why headless Chromium on this Linux machine dies on the first page that draws text ('' when it
    will not): no fontconfig file, or no font where it or the usual folders say. Containers and headless
    GPU servers often have neither (../shared/RENDERING.md); the sampler draws no text, the player does."""
    if platform != "linux":
        return ""
    folder = Path(environ.get("FONTCONFIG_PATH") or "/etc/fonts")
    config = Path(environ.get("FONTCONFIG_FILE") or folder / "fonts.conf")
    if not config.is_file():
        return f"no fontconfig file ({config})"
    listed = re.findall(r"<dir[^>]*>\s*([^<]+?)\s*</dir>", config.read_text(encoding="utf-8", errors="replace"))
    places = sorted({Path(name).expanduser() for name in [*listed, *map(str, font_dirs)]
                     if name.startswith(("/", "~"))})
    if not any(_holds_a_font(place) for place in places):
        return f"no font in {', '.join(map(str, places))}"
    return ""


def _holds_a_font(folder: Path) -> bool:
    """Whether a font folder (a system's, not a user's data) holds a font file: stops at the first one."""
    for _, _, names in os.walk(folder):
        if any(name.lower().endswith(FONT_SUFFIXES) for name in names):
            return True
    return False


def run_player(workspace: Workspace, pack: str, settings: VerifySettings,
               web_dir: Path = WEB_DIR) -> tuple[dict, list[str], list[str]]:
    """Run the player's verify mode headless; (its result, page errors, console errors)."""
    missing = font_problem()
    if missing:
        raise CqError(f"{missing}: headless Chromium dies on the player page, which draws text; install a "
                      "fontconfig file and a font (Debian/Ubuntu: `apt-get install fontconfig-config "
                      "fonts-dejavu-core`) and run again (sampling draws no text and works without)")
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    query = urlencode({"pack": pack, "verify": 1, "picks": settings.picks, "seconds": settings.seconds,
                       "seed": settings.seed, "mode": "weighted"})
    page_errors: list[str] = []
    console_errors: list[str] = []
    registry = BrowserRegistry(workspace.state_dir)
    registry.kill_leftovers()
    owner = new_owner_mark()
    with serving(workspace, web_dir=web_dir) as server, sync_playwright() as playwright:
        executable = find_chromium(settings.chromium, playwright.chromium.executable_path)
        try:
            browser = playwright.chromium.launch(executable_path=executable,
                                                 args=[*launch_args(settings.gpu, owner), *PLAYER_ARGS])
        except PlaywrightError as error:
            raise CqError(f"cannot start Chromium {executable}: {str(error).splitlines()[0]} "
                          f"({INSTALL_ADVICE})") from None
        browser_pid = None
        try:
            browser_pid = _browser_pid(browser)
            registry.add(browser_pid, owner)  # so an interrupted run's browser is ended by the next one
            page = browser.new_page(viewport={"width": settings.width, "height": settings.height})
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
            try:
                page.goto(f"{server.url}{PLAYER_PATH}?{query}")
                result = _await_result(page, pack, settings, page_errors)
            except PlaywrightError as error:  # the page or browser died: say which browser and flags
                raise CqError(f"the player page died in Chromium {executable} with "
                              f"{' '.join(launch_args(settings.gpu, '')[:-1] + PLAYER_ARGS)}: "
                              f"{str(error).splitlines()[0]} (sampling uses the same browser and flags; "
                              "check `--chromium` / $CQ_CHROMIUM and `--gpu`)") from None
        finally:
            browser.close()
            if browser_pid is not None:
                registry.remove(browser_pid)
    return result, page_errors, console_errors


def verify_pack(workspace: Workspace, pack: str, settings: VerifySettings = VerifySettings(),
                web_dir: Path = WEB_DIR) -> dict:
    """Run the verify gate for one pack; writes the report, raises a CqError naming failed checks."""
    manifest = load_manifest(workspace.manifest_path(pack))
    quality_path = workspace.quality_path(pack)
    quality = validate_quality(read_json(quality_path), quality_path)
    started = time.monotonic()
    print(f"verify {pack}: headless player, {settings.picks} picks + {settings.seconds:.0f} s of playback",
          file=sys.stderr, flush=True)
    result, page_errors, console_errors = run_player(workspace, pack, settings, web_dir)
    checks = check_result(result, manifest, quality, page_errors, settings)
    failed = [check for check in checks if not check.passed]
    report = {
        "kind": VERIFY_KIND, "pack": pack, "verifiedAt": now_iso(), "passed": not failed,
        "seconds": round(time.monotonic() - started, 1), "settings": asdict(settings),
        "checks": [asdict(check) for check in checks],
        "pageErrors": page_errors, "consoleErrors": console_errors[:50],
        "page": {key: value for key, value in result.items() if key != "frames"},
        "frames": result.get("frames", []),
    }
    write_json(workspace.verify_report_path(pack), report)
    for check in checks:
        print(f"  {'ok  ' if check.passed else 'FAIL'} {check.name}: {check.detail}", file=sys.stderr, flush=True)
    if failed:
        reasons = "; ".join(f"{check.name}: {check.detail}" for check in failed)
        raise CqError(f"verify failed for pack {pack!r}: {reasons} (details in {workspace.verify_report_path(pack)})")
    return report


def run(workspace: Workspace, pack: str, settings: VerifySettings) -> None:
    """doit action: run the gate (its findings go to the verify report, not into doit's database)."""
    verify_pack(workspace, pack, settings)
