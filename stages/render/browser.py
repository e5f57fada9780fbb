"""Chromium for the sampler: which binary, which flags, and which browsers are ours.

In: the `chromium` and `gpu_mode` settings, `$CQ_CHROMIUM` / `$CQ_CHROMIUM_GPU_ARGS`, the workspace state dir,
and the platform (passed in, default `sys.platform`, so each platform's branch is testable on any machine).
Out:
- `find_chromium(configured, playwright_path)`: the browser to launch: the setting, Playwright's, or a
  system Chromium / Chrome / Edge on Linux, macOS or Windows (a CqError listing where it looked and how to
  install one when there is none);
- `launch_args(gpu)`: the flags (RENDERING.md's base set, plus the platform's hardware WebGL flags or forced
  SwiftShader);
- `is_software_renderer(renderer)`: SwiftShader / llvmpipe / software;
- `BrowserRegistry`: the PIDs of the browsers this tool started, in `<state_dir>/browsers.json`, so that
  `kill_leftovers(state_dir)` can end those of an interrupted run, and only those (processes are read and
  ended through psutil, the registry is guarded by a filelock: both work on every platform).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path

import psutil
from filelock import FileLock

from ..core.contracts import read_json, write_json
from ..core.errors import ContractError, CqError

BASE_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run", "--disable-quic"]
# Hardware WebGL per platform: ANGLE on Vulkan on Linux (proven on NVIDIA); elsewhere ANGLE's own default
# backend (Direct3D 11 on Windows, Metal on macOS), which is what Chrome ships and tests there.
GPU_ARGS = {"linux": ["--use-angle=vulkan", "--ignore-gpu-blocklist"],
            "win32": ["--ignore-gpu-blocklist"],
            "darwin": ["--ignore-gpu-blocklist"]}
SOFTWARE_ARGS = ["--use-angle=swiftshader"]
SOFTWARE_RENDERERS = ("swiftshader", "llvmpipe", "softpipe", "software", "microsoft basic render")
# Chromium ignores switches it does not know; this one marks a process as started by this tool.
OWNER_SWITCH = "--cq-sampler-owner"
REGISTRY_NAME = "browsers.json"
PLAYWRIGHT_PROFILE_PREFIX = "playwright_chromiumdev_profile-"

INSTALL_ADVICE = ("install one with `coupled-quality install-chromium` (Playwright's build), or install "
                  "Chromium, Google Chrome or Microsoft Edge, or set the chromium setting to its path")


def _platform_key(platform: str) -> str:
    return "linux" if platform.startswith("linux") else platform


def system_chromiums(platform: str, environ: Mapping[str, str], home: Path) -> tuple[list[Path], list[str]]:
    """Where a Chromium-family browser is installed on `platform` (a `sys.platform` value): fixed paths,
    and names to look up on PATH. Chromium first (what the rows were made with elsewhere), then Chrome,
    then Edge."""
    key = _platform_key(platform)
    if key == "win32":
        roots = [environ.get(name) for name in ("PROGRAMFILES", "PROGRAMFILES(X86)", "LOCALAPPDATA")]
        apps = [("Chromium", "Application", "chrome.exe"), ("Google", "Chrome", "Application", "chrome.exe"),
                ("Microsoft", "Edge", "Application", "msedge.exe")]
        return [Path(root).joinpath(*app) for app in apps for root in roots if root], ["chrome", "msedge"]
    if key == "darwin":
        apps = [("Chromium.app", "Chromium"), ("Google Chrome.app", "Google Chrome"),
                ("Microsoft Edge.app", "Microsoft Edge")]
        return ([folder / app / "Contents" / "MacOS" / binary for app, binary in apps
                 for folder in (Path("/Applications"), home / "Applications")],
                ["chromium", "google-chrome"])
    return ([Path("/usr/bin/chromium"), Path("/usr/bin/chromium-browser"), Path("/snap/bin/chromium"),
             Path("/usr/bin/google-chrome"), Path("/usr/bin/google-chrome-stable"), Path("/usr/bin/microsoft-edge")],
            ["chromium", "chromium-browser", "chromium-headless-shell", "google-chrome", "microsoft-edge"])


def _executable(path: Path, platform: str) -> bool:
    # Windows has no execute bit: an existing file is runnable.
    return path.is_file() and (_platform_key(platform) == "win32" or os.access(path, os.X_OK))


def find_chromium(configured: str = "", playwright_path: str | None = None, platform: str = sys.platform,
                  environ: Mapping[str, str] = os.environ, home: Path | None = None) -> str:
    """The Chromium to launch: the setting, else $CQ_CHROMIUM, else Playwright's, else the system's
    (Chromium, Chrome, Edge at their usual places for `platform`, then on PATH). A CqError lists every
    place it looked."""
    for source, candidate in (("the chromium setting", configured),
                              ("$CQ_CHROMIUM", environ.get("CQ_CHROMIUM", ""))):
        if candidate:
            path = Path(candidate).expanduser()
            if not _executable(path, platform):
                raise CqError(f"{source} names {candidate}, which is not an executable file "
                              f"({INSTALL_ADVICE})")
            return str(path)
    if playwright_path and Path(playwright_path).is_file():
        return playwright_path
    paths, names = system_chromiums(platform, environ, home or Path.home())
    for candidate in paths:
        if _executable(candidate, platform):
            return str(candidate)
    search_path = environ.get("PATH", "")
    for name in names:
        found = shutil.which(name, path=search_path)
        if found:
            return found
    looked = [f"Playwright's ({playwright_path or 'not installed'})", *map(str, paths),
              f"{', '.join(names)} on PATH"]
    raise CqError(f"no Chromium found (the chromium setting and $CQ_CHROMIUM are empty); looked at: "
                  f"{'; '.join(looked)}. To fix: {INSTALL_ADVICE}")


def gpu_args(platform: str = sys.platform, environ: Mapping[str, str] = os.environ) -> list[str]:
    """Flags for hardware WebGL: $CQ_CHROMIUM_GPU_ARGS, else the platform's (`GPU_ARGS`)."""
    configured = environ.get("CQ_CHROMIUM_GPU_ARGS", "").split()
    return configured or list(GPU_ARGS.get(_platform_key(platform), ["--ignore-gpu-blocklist"]))


def launch_args(gpu: bool, owner: str) -> list[str]:
    """Chromium's flags: the base set, hardware WebGL flags or forced SwiftShader, and our owner mark."""
    return [*BASE_ARGS, *(gpu_args() if gpu else SOFTWARE_ARGS), f"{OWNER_SWITCH}={owner}"]


def is_software_renderer(renderer: str) -> bool:
    lowered = renderer.lower()
    return any(name in lowered for name in SOFTWARE_RENDERERS)


def new_owner_mark() -> str:
    return uuid.uuid4().hex


# -------------------------------------------------------------------------------- PID registry


def _process(pid) -> psutil.Process | None:
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def _cmdline(process: psutil.Process | None) -> list[str]:
    try:
        return process.cmdline() if process is not None else []
    except psutil.Error:  # gone, a zombie, or not ours to read
        return []


def _alive(pid) -> bool:
    process = _process(pid)
    if process is None:
        return False
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.AccessDenied:
        return True
    except psutil.Error:
        return False


def is_our_browser(pid: int, owner: str) -> bool:
    """Whether `pid` is still the browser process we started with the owner mark `owner`."""
    return f"{OWNER_SWITCH}={owner}" in _cmdline(_process(pid))


def end_browser(pid: int, owner: str, grace_s: float = 2.0) -> bool:
    """End the browser `pid` and its children if it still is ours; remove Playwright's temp profile of it."""
    browser = _process(pid)
    arguments = _cmdline(browser)
    if f"{OWNER_SWITCH}={owner}" not in arguments:
        return False
    profiles = [arg.split("=", 1)[1] for arg in arguments if arg.startswith("--user-data-dir=")]
    try:
        tree = [browser, *browser.children(recursive=True)]
    except psutil.Error:
        tree = [browser]
    for end in (psutil.Process.terminate, psutil.Process.kill):
        for member in tree:
            try:
                end(member)
            except psutil.Error:
                continue
        _, tree = psutil.wait_procs(tree, timeout=grace_s)
        if not tree:
            break
    temp = Path(tempfile.gettempdir()).resolve()
    for profile in profiles:
        path = Path(profile)
        if path.name.startswith(PLAYWRIGHT_PROFILE_PREFIX) and path.resolve().parent == temp:
            shutil.rmtree(path, ignore_errors=True)
    return True


class BrowserRegistry:
    """The browsers this tool started and has not closed yet, one entry per browser process.

    Kept in `<state_dir>/browsers.json` (`{"browsers": [{"pid", "owner", "toolPid", "startedAt"}]}`), updated under a
    file lock, so a run killed before it could close its browsers leaves their PIDs for `kill_leftovers`
    (which spares the browsers of a tool process that is still alive).
    """

    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / REGISTRY_NAME

    @contextmanager
    def _locked(self):
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(self.state_dir / f"{REGISTRY_NAME}.lock"):
            yield

    def _read(self) -> list[dict]:
        if not self.path.exists():
            return []
        try:
            data = read_json(self.path)
        except ContractError:
            return []  # a torn registry must not block sampling; its browsers can only be missed
        entries = data.get("browsers", []) if isinstance(data, dict) else []
        return [entry for entry in entries if isinstance(entry, dict)
                and isinstance(entry.get("pid"), int) and isinstance(entry.get("owner"), str)]

    def _write(self, entries: list[dict]) -> None:
        if entries:
            write_json(self.path, {"browsers": entries})
        else:
            self.path.unlink(missing_ok=True)

    def entries(self) -> list[dict]:
        with self._locked():
            return self._read()

    def add(self, pid: int, owner: str, tool_pid: int | None = None) -> None:
        """Record browser `pid` with its owner mark, started by `tool_pid` (default: this process)."""
        with self._locked():
            entries = [entry for entry in self._read() if entry["pid"] != pid]
            entries.append({"pid": pid, "owner": owner, "toolPid": tool_pid or os.getpid(),
                            "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            self._write(entries)

    def remove(self, pid: int) -> None:
        with self._locked():
            self._write([entry for entry in self._read() if entry["pid"] != pid])

    def kill_leftovers(self) -> list[int]:
        """End every listed browser whose starting process is gone and that still is ours; drop them."""
        ended = []
        with self._locked():
            kept = []
            for entry in self._read():
                if _alive(entry.get("toolPid")):
                    kept.append(entry)  # a sampler that is still running owns it: not a leftover
                elif end_browser(entry["pid"], entry["owner"]):
                    ended.append(entry["pid"])
            self._write(kept)
        return ended


def kill_leftovers(state_dir: Path) -> list[int]:
    """End the browsers an interrupted run left behind (only those it recorded); returns their PIDs."""
    return BrowserRegistry(state_dir).kill_leftovers()
