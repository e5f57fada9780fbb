"""Chromium for the sampler: which binary, which flags, and which browsers are ours.

In: the `chromium` and `gpu_mode` settings, `$CQ_CHROMIUM` / `$CQ_CHROMIUM_GPU_ARGS`, the workspace state dir.
Out:
- `find_chromium(configured, playwright_path)`: the browser to launch (a CqError saying how to install one
  when there is none);
- `launch_args(gpu)`: the flags (RENDERING.md's base set, plus hardware WebGL flags or forced SwiftShader);
- `is_software_renderer(renderer)`: SwiftShader / llvmpipe / software;
- `BrowserRegistry`: the PIDs of the browsers this tool started, in `<state_dir>/browsers.json`, so that
  `kill_leftovers(state_dir)` can end those of an interrupted run, and only those.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import signal
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from ..core.contracts import read_json, write_json
from ..core.errors import ContractError, CqError

BASE_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run", "--disable-quic"]
DEFAULT_GPU_ARGS = ["--use-angle=vulkan", "--ignore-gpu-blocklist"]
SOFTWARE_ARGS = ["--use-angle=swiftshader"]
SOFTWARE_RENDERERS = ("swiftshader", "llvmpipe", "softpipe", "software", "microsoft basic render")
SYSTEM_CHROMIUMS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
PATH_CHROMIUMS = ("chromium", "chromium-browser", "chromium-headless-shell")
# Chromium ignores switches it does not know; this one marks a process as started by this tool.
OWNER_SWITCH = "--cq-sampler-owner"
REGISTRY_NAME = "browsers.json"
PLAYWRIGHT_PROFILE_PREFIX = "playwright_chromiumdev_profile-"

INSTALL_ADVICE = ("install one with `apt-get install chromium` or `playwright install chromium`, "
                  "or set --chromium to its path")


def find_chromium(configured: str = "", playwright_path: str | None = None) -> str:
    """The Chromium to launch: the setting, else $CQ_CHROMIUM, else Playwright's, else the system's."""
    for source, candidate in (("the chromium setting", configured),
                              ("$CQ_CHROMIUM", os.environ.get("CQ_CHROMIUM", ""))):
        if candidate:
            path = Path(candidate).expanduser()
            if not (path.is_file() and os.access(path, os.X_OK)):
                raise CqError(f"{source} names {candidate}, which is not an executable file "
                              f"({INSTALL_ADVICE})")
            return str(path)
    if playwright_path and Path(playwright_path).is_file():
        return playwright_path
    for candidate in SYSTEM_CHROMIUMS:
        if Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    for name in PATH_CHROMIUMS:
        found = shutil.which(name)
        if found:
            return found
    raise CqError(f"no Chromium found (not configured, not in $CQ_CHROMIUM, not installed by Playwright, "
                  f"not at {SYSTEM_CHROMIUMS[0]} or on PATH): {INSTALL_ADVICE}")


def gpu_args() -> list[str]:
    """Flags for hardware WebGL: $CQ_CHROMIUM_GPU_ARGS, else ANGLE on Vulkan (proven on NVIDIA)."""
    configured = os.environ.get("CQ_CHROMIUM_GPU_ARGS", "").split()
    return configured or list(DEFAULT_GPU_ARGS)


def launch_args(gpu: bool, owner: str) -> list[str]:
    """Chromium's flags: the base set, hardware WebGL flags or forced SwiftShader, and our owner mark."""
    return [*BASE_ARGS, *(gpu_args() if gpu else SOFTWARE_ARGS), f"{OWNER_SWITCH}={owner}"]


def is_software_renderer(renderer: str) -> bool:
    lowered = renderer.lower()
    return any(name in lowered for name in SOFTWARE_RENDERERS)


def new_owner_mark() -> str:
    return uuid.uuid4().hex


# -------------------------------------------------------------------------------- PID registry


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found.extend(int(item) for item in task.read_text().split())
        except (OSError, ValueError):
            continue
    return found


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _process_tree(pid: int) -> list[int]:
    """`pid` and its descendants, parents first."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(_children(current))
    return tree


def is_our_browser(pid: int, owner: str) -> bool:
    """Whether `pid` is still the browser process we started with the owner mark `owner`."""
    return f"{OWNER_SWITCH}={owner}" in _cmdline(pid)


def end_browser(pid: int, owner: str, grace_s: float = 2.0) -> bool:
    """End the browser `pid` and its children if it still is ours; remove Playwright's temp profile of it."""
    if not is_our_browser(pid, owner):
        return False
    profiles = [arg.split("=", 1)[1] for arg in _cmdline(pid) if arg.startswith("--user-data-dir=")]
    tree = _process_tree(pid)
    for signal_number in (signal.SIGTERM, signal.SIGKILL):
        for member in tree:
            try:
                os.kill(member, signal_number)
            except (ProcessLookupError, PermissionError):
                continue
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and is_our_browser(pid, owner):
            time.sleep(0.05)
        if not is_our_browser(pid, owner):
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
        with open(self.state_dir / f"{REGISTRY_NAME}.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

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
