"""Fixtures shared by the tests: a workspace, real doit, a headless Chromium, screenshots, the preset corpus."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from stages.core.workspace import CHECKOUT, Workspace
from stages.render.browser import find_chromium
from stages.verify import CHROMIUM_ARGS

# Real MilkDrop presets: `$CQ_CORPUS` (e.g. a full corpus of your own), else the 23-preset sample kept in
# tests/data (public-domain projectM "cream of the crop" presets, with their odd file names).
SAMPLE_CORPUS = Path(__file__).resolve().parent / "data" / "cream-of-the-crop"


@pytest.fixture
def workspace(tmp_path) -> Workspace:
    """An empty workspace in the test's temp folder."""
    workspace = Workspace(tmp_path / "ws")
    workspace.root.mkdir()
    return workspace


@dataclass
class DoitRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def executed(self) -> list[str]:
        """Names of the tasks doit ran ('.  name'; up-to-date ones print '-- name')."""
        return [line[3:].strip() for line in self.stdout.splitlines() if line.startswith(".  ")]


@pytest.fixture(scope="session")
def doit():
    """Run real `doit` on this checkout's dodo.py for a workspace: `doit(workspace, "merge", ...)`; unless
    `check=False`, a failed run fails the test with doit's output. `env` adds environment variables (a
    PYTHONPATH goes before the checkout's); `prefix` is a command the run goes through (e.g. setpriv, to run
    as another user); `checkout` another checkout to run (a `checkout_copy`)."""
    def run(workspace: Workspace, *args: str, check: bool = True, env: dict | None = None,
            prefix: list[str] = (), timeout: float = 600, checkout: Path = CHECKOUT) -> DoitRun:
        env = dict(env or {})
        path = os.pathsep.join([*filter(None, [env.pop("PYTHONPATH", "")]), str(checkout)])
        done = subprocess.run([*prefix, sys.executable, "-m", "doit", "-f", str(checkout / "dodo.py"), *args],
                              cwd=checkout, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "CQ_WORKSPACE": str(workspace.root), "PYTHONPATH": path, **env})
        if check and done.returncode != 0:
            raise AssertionError(f"doit {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return DoitRun(done.returncode, done.stdout, done.stderr)
    return run


@pytest.fixture
def no_browser(tmp_path) -> dict:
    """Environment for a doit run that must not start a browser: there, importing playwright fails."""
    site = tmp_path / "no-browser-site"
    (site / "playwright").mkdir(parents=True)
    (site / "playwright" / "__init__.py").write_text("raise ImportError('this run must not start a browser')\n")
    return {"PYTHONPATH": str(site)}


@pytest.fixture
def checkout_copy(tmp_path) -> Path:
    """A copy of the checkout's code to edit: dodo.py, pyproject.toml, stages/ and the browser pages (dodo.py
    makes it a checkout, whose web/ is its own); the npm packages and data/ are links to this checkout's."""
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ("dodo.py", "pyproject.toml"):
        shutil.copyfile(CHECKOUT / name, copy / name)
    shutil.copytree(CHECKOUT / "stages", copy / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "web").mkdir()
    for path in (CHECKOUT / "web").glob("*.*"):
        shutil.copyfile(path, copy / "web" / path.name)
    (copy / "web" / "node_modules").symlink_to(CHECKOUT / "web" / "node_modules", target_is_directory=True)
    (copy / "data").symlink_to(CHECKOUT / "data", target_is_directory=True)
    return copy


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium (the tool's own finder and flags), one per test module."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=find_chromium("", playwright.chromium.executable_path), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    """Where screenshots go: $CQ_SCREENSHOTS to keep them for a look, else a temp folder."""
    folder = Path(os.environ.get("CQ_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def corpus() -> Path:
    """A folder of real .milk presets (in sub-folders, as MilkDrop packs come)."""
    folder = Path(os.environ.get("CQ_CORPUS") or SAMPLE_CORPUS)
    if not folder.is_dir():
        raise FileNotFoundError(f"CQ_CORPUS={folder} is not a folder of presets")
    return folder
