"""What differs per platform, tested on this machine with the platform passed in (nothing global faked):
Chromium discovery on Windows, macOS and Linux, GPU flags, the cache directory; plus no module of the
package importing `fcntl`, and ending processes through psutil (what replaced /proc reads)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from stages.core.errors import CqError
from stages.core.workspace import CHECKOUT, user_cache_dir
from stages.render.browser import OWNER_SWITCH, BrowserRegistry, find_chromium, gpu_args, is_our_browser, kill_leftovers


def make_file(path: Path, executable: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    path.chmod(0o755 if executable else 0o644)
    return path


def windows_env(tmp_path: Path) -> dict:
    return {"PROGRAMFILES": str(tmp_path / "Program Files"), "PROGRAMFILES(X86)": str(tmp_path / "Program Files (x86)"),
            "LOCALAPPDATA": str(tmp_path / "Local"), "PATH": ""}


def test_windows_finds_chrome_before_edge_and_needs_no_execute_bit(tmp_path):
    environ = windows_env(tmp_path)
    edge = make_file(tmp_path / "Program Files (x86)" / "Microsoft" / "Edge" / "Application" / "msedge.exe")
    assert find_chromium("", None, platform="win32", environ=environ, home=tmp_path) == str(edge)
    chrome = make_file(tmp_path / "Local" / "Google" / "Chrome" / "Application" / "chrome.exe")
    assert find_chromium("", None, platform="win32", environ=environ, home=tmp_path) == str(chrome)


def test_windows_error_lists_where_it_looked(tmp_path):
    with pytest.raises(CqError) as raised:
        find_chromium("", None, platform="win32", environ=windows_env(tmp_path), home=tmp_path)
    message = str(raised.value)
    assert str(tmp_path / "Program Files" / "Google" / "Chrome" / "Application" / "chrome.exe") in message
    assert str(tmp_path / "Local" / "Microsoft" / "Edge" / "Application" / "msedge.exe") in message
    assert "Playwright's (not installed)" in message and "install-chromium" in message


def test_macos_finds_an_app_bundle_in_the_users_applications(tmp_path):
    bundle = tmp_path / "Applications" / "Google Chrome.app" / "Contents" / "MacOS" / "Google Chrome"
    make_file(bundle)  # not executable: not a browser on macOS
    with pytest.raises(CqError, match="Google Chrome.app"):
        find_chromium("", None, platform="darwin", environ={"PATH": ""}, home=tmp_path)
    make_file(bundle, executable=True)
    assert find_chromium("", None, platform="darwin", environ={"PATH": ""}, home=tmp_path) == str(bundle)


def test_the_setting_and_playwright_come_before_the_system(tmp_path):
    environ = windows_env(tmp_path)
    make_file(tmp_path / "Local" / "Google" / "Chrome" / "Application" / "chrome.exe")
    playwright = make_file(tmp_path / "ms-playwright" / "chrome.exe")
    assert find_chromium("", str(playwright), platform="win32", environ=environ) == str(playwright)
    configured = make_file(tmp_path / "portable" / "chrome", executable=True)
    assert find_chromium(str(configured), str(playwright), platform="linux", environ={}) == str(configured)
    with pytest.raises(CqError, match="CQ_CHROMIUM names"):
        find_chromium("", None, platform="linux", environ={"CQ_CHROMIUM": str(tmp_path / "nowhere")})


def test_gpu_flags_per_platform_and_overridable():
    assert "--use-angle=vulkan" in gpu_args("linux", {})
    for platform in ("win32", "darwin"):  # ANGLE's own default backend there: Direct3D 11, Metal
        flags = gpu_args(platform, {})
        assert "--ignore-gpu-blocklist" in flags and not any(flag.startswith("--use-angle") for flag in flags)
    for platform in ("linux", "win32", "darwin"):
        assert gpu_args(platform, {"CQ_CHROMIUM_GPU_ARGS": "--use-angle=gl --foo"}) == ["--use-angle=gl", "--foo"]


def test_cache_dir_per_platform(tmp_path):
    assert user_cache_dir("win32", {"LOCALAPPDATA": "C:/Users/vj/AppData/Local"}, tmp_path) == \
        Path("C:/Users/vj/AppData/Local") / "coupled-quality" / "Cache"
    assert user_cache_dir("darwin", {}, tmp_path) == tmp_path / "Library" / "Caches" / "coupled-quality"
    assert user_cache_dir("linux", {}, tmp_path) == tmp_path / ".cache" / "coupled-quality"
    assert user_cache_dir("linux", {"XDG_CACHE_HOME": "/xdg"}, tmp_path) == Path("/xdg") / "coupled-quality"


def test_no_module_imports_fcntl(tmp_path):
    """Every module of the package imports with `fcntl` unavailable, as on Windows. Except render.cluster:
    it imports Dask, whose `locket` takes msvcrt where there is no fcntl, which Linux does not have either.
    The task graph prepares and locks its workspace when imported: a temp one, not the checkout's."""
    script = ("import sys, pkgutil, importlib\n"
              "sys.modules['fcntl'] = None\n"
              "import stages\n"
              "names = [m.name for m in pkgutil.walk_packages(stages.__path__, 'stages.')\n"
              "         if m.name != 'stages.render.cluster']\n"
              "for name in names:\n"
              "    importlib.import_module(name)\n"
              "print(len(names))\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=CHECKOUT, capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(CHECKOUT),
                                              "CQ_WORKSPACE": str(tmp_path / "ws")})
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 30


def test_leftovers_are_ended_with_their_children_and_strangers_are_spared(tmp_path):
    """Real processes with the owner mark in their command line (a Python standing in for a browser, with a
    child process like a renderer), recorded for a tool process that is gone."""
    spawn_child = ("import subprocess, sys, time; "
                   "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)")
    leftover = subprocess.Popen([sys.executable, "-c", spawn_child, f"{OWNER_SWITCH}=left"])
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", f"{OWNER_SWITCH}=other"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    try:
        deadline = time.monotonic() + 10
        while not psutil.Process(leftover.pid).children() and time.monotonic() < deadline:
            time.sleep(0.05)
        child, = psutil.Process(leftover.pid).children()
        registry = BrowserRegistry(tmp_path)
        registry.add(leftover.pid, "left", tool_pid=gone.pid)
        registry.add(stranger.pid, "not-its-mark", tool_pid=gone.pid)
        registry.add(os.getpid(), "alive-tool", tool_pid=os.getpid())
        assert is_our_browser(leftover.pid, "left") and not is_our_browser(stranger.pid, "not-its-mark")
        assert kill_leftovers(tmp_path) == [leftover.pid]
        assert leftover.wait(timeout=10) is not None
        psutil.wait_procs([child], timeout=10)
        assert not child.is_running()
        assert stranger.poll() is None
        assert [entry["pid"] for entry in registry.entries()] == [os.getpid()]
    finally:
        for process in (leftover, stranger):
            process.kill()
            process.wait()
