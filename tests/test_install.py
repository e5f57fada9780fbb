"""The installed tool: a wheel built from this checkout, installed into a fresh venv outside it, runs as
`coupled-quality` in an empty directory (no checkout, no ./workspace, files from inside the wheel), speaks as
itself, and fetches the pages' npm packages with no Node on PATH (the player then loads in Chromium)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from packs import make_pack

from stages.core.workspace import CHECKOUT, Workspace

SOURCES = ("stages", "web", "data", "schemas", "pyproject.toml", "README.md")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the venv's bin dir) with the wheel installed; its dependencies come from this interpreter's
    site-packages through a .pth file, so torch is not downloaded again."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    for name in SOURCES:  # a copy, so the build's build/ and egg-info never land in the checkout
        origin = CHECKOUT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("node_modules", "__pycache__"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(origin, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(root / "dist"), str(source)], check=True, timeout=120)
    wheel, = (root / "dist").glob("coupled_quality-*.whl")
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=False)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / ("python.exe" if os.name == "nt" else "python")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                    str(wheel)], check=True, timeout=120)
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    (purelib / "shared-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return bin_dir, purelib


def run_tool(bin_dir: Path, cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key not in ("CQ_WORKSPACE", "PYTHONPATH")}
    command = bin_dir / ("coupled-quality.exe" if os.name == "nt" else "coupled-quality")
    return subprocess.run([str(command), *args], cwd=cwd, env={**environment, **(env or {})}, capture_output=True,
                          text=True, timeout=120)


def without_node(bin_dir: Path, tmp_path: Path) -> dict:
    """PATH with the venv and nothing else (no node, no npm), and an empty user cache."""
    assert shutil.which("node", path=str(bin_dir)) is None
    return {"PATH": str(bin_dir), "XDG_CACHE_HOME": str(tmp_path / "cache")}


def test_wheel_carries_its_files_under_a_unique_name(installed):
    _, purelib = installed
    package = purelib / "coupled_quality"
    assert not (purelib / "stages").exists()
    for relative in ("graph.py", "cli.py", "core/workspace.py", "web/sampler.html", "web/player.js",
                     "web/package-lock.json", "web/package.json", "data/demo-bases.json",
                     "templates/report/page.html", "templates/report/style.css", "templates/report/sections/gates.html",
                     "schemas/pairs-manifest.v0.schema.json", "schemas/pairs-quality.v0.schema.json"):
        assert (package / relative).is_file(), relative
    assert not (package / "web" / "node_modules").exists()


def test_help_and_list_in_an_empty_directory(installed, tmp_path):
    bin_dir, purelib = installed
    empty = tmp_path / "empty"
    empty.mkdir()
    shown = run_tool(bin_dir, empty, "--help")
    assert shown.returncode == 0, shown.stderr
    assert f"workspace: {empty.resolve()}" in shown.stdout
    for tool in ("screen", "manifest", "serve"):
        assert tool in shown.stdout

    listed = run_tool(bin_dir, empty, "list")
    assert listed.returncode == 0, listed.stderr
    tasks = {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}
    assert {"web_deps", "demo_pack", "sample", "merge", "train", "score", "verify", "report"} <= tasks
    # the workspace is the current directory; nothing is written inside the installed package
    assert (empty / ".cq" / "doit.sqlite3").is_file()
    assert not (purelib / "coupled_quality" / ".cq").exists()

    knobs = run_tool(bin_dir, empty, "help", "sample")
    assert knobs.returncode == 0, knobs.stderr
    assert "--shard-size" in knobs.stdout and "[default: 50]" in knobs.stdout


def test_a_tool_error_is_one_line(installed, tmp_path):
    bin_dir, _ = installed
    failed = run_tool(bin_dir, tmp_path, "manifest", str(tmp_path / "no-such-pack"))
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: ") and len(failed.stderr.strip().splitlines()) == 1
    assert "Traceback" not in failed.stderr


def test_it_speaks_as_itself(installed, tmp_path):
    bin_dir, _ = installed
    version = run_tool(bin_dir, tmp_path, "--version")
    assert version.returncode == 0 and version.stdout.startswith("coupled-quality 0.1.0 (doit 0.37.0")
    shown = run_tool(bin_dir, tmp_path, "help")
    assert shown.returncode == 0 and "\n    serve" in shown.stdout and "dumpdb" not in shown.stdout
    missing = run_tool(bin_dir, tmp_path, "info", "no-such-task")
    assert "`coupled-quality list` names them" in missing.stderr

    make_pack(Workspace(tmp_path), "demo", 6, rows="eval", quality=True)
    report = run_tool(bin_dir, tmp_path, "-s", "report")
    assert report.returncode == 0, report.stdout + report.stderr
    html = Workspace(tmp_path).report_index_path("demo").read_text()
    assert "<code>coupled-quality serve</code>" in html and "stages.cli" not in html and "doit verify" not in html


def test_with_no_node_on_path_the_npm_packages_are_fetched_and_the_player_loads(installed, tmp_path, browser):
    bin_dir, _ = installed
    env = without_node(bin_dir, tmp_path)
    fetched = run_tool(bin_dir, tmp_path, "web_deps", env=env)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    modules = tmp_path / "cache" / "coupled-quality" / "web-deps" / "node_modules"
    assert (modules / "butterchurn" / "dist" / "butterchurn.js").is_file()

    make_pack(Workspace(tmp_path), "demo", 6, rows="eval", quality=True)
    command = bin_dir / ("coupled-quality.exe" if os.name == "nt" else "coupled-quality")
    serving = subprocess.Popen([str(command), "serve", "--port", "0"], cwd=tmp_path, stdout=subprocess.PIPE, text=True,
                               env={**{k: v for k, v in os.environ.items() if k != "CQ_WORKSPACE"}, **env})
    try:
        url = serving.stdout.readline().split()[1]
        page = browser.new_page(viewport={"width": 480, "height": 270})
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.goto(f"{url}?pack=demo&hold=0")
        page.wait_for_function("window.cqPlayer && window.cqPlayer.current", timeout=30000, polling=200)
        page.close()
        assert errors == []
    finally:
        serving.terminate()
        serving.wait(timeout=10)
