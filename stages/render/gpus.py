"""One browser group per GPU of this host, each pinned to its GPU and probed (the `gpus` setting).

A headless Chromium renders on GPU 0 whatever `CUDA_VISIBLE_DEVICES`, ANGLE's or Vulkan's variables say
(bench/multigpu_probe.py, on 2×H200). What pins one is a private mount namespace in which every other GPU's
device file (`/dev/nvidiaN`) is `/dev/null`: there the driver can open only the GPU the browser was given.
The browser is launched through a small wrapper script that makes that namespace with `unshare` and then
runs the real Chromium (which keeps its PID, so the browser registry still finds it).

In: the `gpus` setting (`all` or NVML indices), the host's GPUs (NVML, or a list passed in), the folder of
device files (`/dev`, or one passed in), the `unshare` command (or one passed in), a state dir for the wrapper.
Out: `pin_gpus(...)` -> a `Pinning` (which GPU each browser renders on, and the executable and environment
that pin it) or None after one line saying why the run goes on as without the setting: no NVML, no GPU,
no namespaces. A GPU that cannot be pinned (its device file is missing, it is another model than the run's
first GPU, its pinned browser does not start, or its WebGL renderer does not name it) is left out with one
line. Browsers are dealt to the GPUs in turn, so the counts differ by at most one and a pool's first two
browsers (its self-test) render on two different GPUs.
"""
from __future__ import annotations

import asyncio
import os
import re
import shlex
import subprocess
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core.contracts import value_hash, write_bytes_atomic
from ..core.errors import CqError
from ..core.settings import ALL_GPUS, SampleSettings, gpu_request
from ..render.browser import find_chromium, is_software_renderer, launch_args, new_owner_mark

DEV = Path("/dev")
DEVICE_FILE = re.compile(r"nvidia(\d+)")
PROBE_TIMEOUT_S = 60.0
# The wrapper's arguments are Chromium's; the device files to hide and the real Chromium come in through
# the environment, so one wrapper serves every GPU. A failed bind mount stops it: a browser that is not
# pinned must not start as if it were.
WRAPPER = """#!/bin/sh
# coupled-quality (stages/render/gpus.py): Chromium in a private mount namespace where the device files in
# $CQ_HIDE_DEVICES are /dev/null, so it can only open the GPU it was given.
exec {unshare} sh -c 'for device in $CQ_HIDE_DEVICES; do mount --bind /dev/null "$device" || exit 97; done; \
exec "$CQ_REAL_CHROMIUM" "$@"' chromium "$@"
"""
RENDERER_JS = """() => {
  const gl = document.createElement('canvas').getContext('webgl2');
  if (!gl) return '';
  const info = gl.getExtension('WEBGL_debug_renderer_info');
  return gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER);
}"""


@dataclass(frozen=True)
class Gpu:
    index: int        # NVML's (what the setting names)
    name: str         # NVML's, e.g. "NVIDIA H200"
    uuid: str
    minor: int        # its device file is /dev/nvidia<minor>
    pci_device: int = 0  # PCI device id, which ANGLE's renderer string carries as (0x0000XXXX)

    @property
    def label(self) -> str:
        """What a row records: the index this host gives it and its UUID (the same on every host)."""
        return f"{self.index}:{self.uuid}"

    def named_by(self, renderer: str) -> bool:
        """Whether a WebGL renderer string names this GPU: its model, or its PCI device id."""
        lowered = renderer.lower()
        return self.name.lower() in lowered or bool(self.pci_device and f"0x{self.pci_device:08x}" in lowered)


def pinned_env(chromium: str, hidden: Sequence[str]) -> dict[str, str]:
    """The wrapper's environment: the real Chromium, and the device files it must not open."""
    return {**os.environ, "CQ_REAL_CHROMIUM": chromium, "CQ_HIDE_DEVICES": " ".join(hidden)}


@dataclass(frozen=True)
class Pinning:
    """Browser i renders on `browsers[i]`, launched as `wrapper` around `chromium`."""

    wrapper: Path
    chromium: str
    browsers: tuple[Gpu, ...]
    hidden: dict[int, tuple[str, ...]]  # GPU index -> the device files its browsers must not open

    def launch(self, browser: int) -> tuple[str, dict[str, str], str]:
        """The executable, the environment and the GPU label of browser `browser`."""
        gpu = self.browsers[browser % len(self.browsers)]
        return str(self.wrapper), pinned_env(self.chromium, self.hidden[gpu.index]), gpu.label

    @property
    def gpus(self) -> list[Gpu]:
        return sorted(set(self.browsers), key=lambda gpu: gpu.index)

    def summary(self) -> str:
        return ", ".join(f"GPU {gpu.index} ({self.browsers.count(gpu)} browsers)" for gpu in self.gpus)


def nvml_gpus() -> list[Gpu]:
    """This host's NVIDIA GPUs as NVML lists them; a CqError saying why where NVML or its driver is missing."""
    with warnings.catch_warnings():  # the pynvml shim announces its rename on import
        warnings.simplefilter("ignore", FutureWarning)
        try:
            import pynvml
        except ImportError:
            raise CqError("NVML is not installed (the nvidia-ml-py package)") from None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        raise CqError(f"no NVIDIA driver answers (NVML: {error})") from None
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name, uuid = (value.decode() if isinstance(value, bytes) else value
                          for value in (pynvml.nvmlDeviceGetName(handle), pynvml.nvmlDeviceGetUUID(handle)))
            gpus.append(Gpu(index, name, uuid, pynvml.nvmlDeviceGetMinorNumber(handle),
                            pynvml.nvmlDeviceGetPciInfo(handle).pciDeviceId >> 16))
        return gpus
    except pynvml.NVMLError as error:
        raise CqError(f"NVML could not list the GPUs ({error})") from None
    finally:
        pynvml.nvmlShutdown()


def choose(request: str | tuple[int, ...], gpus: Sequence[Gpu], dev: Path) -> tuple[list[Gpu], list[str]]:
    """The GPUs `request` names that can be pinned, and one line for each one left out (one run renders
    with one renderer: a GPU of another model than the first chosen one is left out)."""
    by_index = {gpu.index: gpu for gpu in gpus}
    indices = sorted(by_index) if request == ALL_GPUS else list(request)
    chosen, notes = [], []
    for index in indices:
        gpu = by_index.get(index)
        if gpu is None:
            notes.append(f"gpus: GPU {index} left out: this host has no such GPU "
                         f"(NVML lists {', '.join(map(str, sorted(by_index))) or 'none'})")
        elif not (dev / f"nvidia{gpu.minor}").exists():
            notes.append(f"gpus: GPU {index} ({gpu.name}) left out: no device file {dev / f'nvidia{gpu.minor}'}")
        elif chosen and gpu.name != chosen[0].name:
            notes.append(f"gpus: GPU {index} ({gpu.name}) left out: another model than GPU {chosen[0].index} "
                         f"({chosen[0].name}), and a run renders with one renderer; sample with gpus = {index} "
                         "in a run of its own")
        else:
            chosen.append(gpu)
    return chosen, notes


def deal(browsers: int, gpus: Sequence[Gpu]) -> tuple[Gpu, ...]:
    """The GPU of each of `browsers` browsers: dealt in turn, so no GPU gets more than one browser more than
    another, and a pool's first two browsers (its self-test pair) render on two GPUs when there are two."""
    return tuple(gpus[browser % len(gpus)] for browser in range(browsers))


def hidden_files(gpu: Gpu, dev: Path) -> tuple[str, ...]:
    """Every GPU device file in `dev` but `gpu`'s: those of GPUs left out, or not chosen, are hidden too."""
    files = [path for path in _device_files(dev) if path.name != f"nvidia{gpu.minor}"]
    return tuple(str(path) for path in sorted(files, key=lambda path: int(path.name.removeprefix("nvidia"))))


def unshare_command() -> list[str]:
    """`unshare` for a private mount namespace: as root directly, otherwise inside a new user namespace."""
    return ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-r", "-m"]


def pinning_problem(unshare: Sequence[str], scratch: Path) -> str:
    """Why this process may not pin a browser ('' when it may): `unshare` must make a mount namespace in
    which /dev/null can be bind-mounted over a file, as the wrapper does over the other GPUs'."""
    scratch.mkdir(parents=True, exist_ok=True)
    target = scratch / "gpus-mount-check"
    target.touch()
    try:
        done = subprocess.run([*unshare, "sh", "-c", 'mount --bind /dev/null "$0"', str(target)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"`{shlex.join(unshare)}` cannot run ({error})"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return (f"`{shlex.join(unshare)}` cannot bind-mount in a private mount namespace "
                f"({lines[-1] if lines else f'exit status {done.returncode}'}): no user namespaces, or not root")
    return ""


def write_wrapper(state_dir: Path, unshare: Sequence[str]) -> Path:
    """The wrapper script for `unshare`, in `state_dir` (named by its text, so runs never rewrite one in use)."""
    text = WRAPPER.format(unshare=shlex.join(unshare))
    path = state_dir / f"pinned-chromium-{value_hash(text)[:12]}.sh"
    if not path.is_file():
        write_bytes_atomic(path, text.encode())
    path.chmod(0o755)
    return path


def _device_files(dev: Path) -> list[Path]:
    return [path for path in dev.iterdir() if DEVICE_FILE.fullmatch(path.name)] if dev.is_dir() else []


async def _renderer(playwright, executable: str, env: dict[str, str]) -> str:
    """The WebGL renderer of one browser launched as `executable` with `env` and hardware WebGL flags; a
    CqError saying why there is none. (Not in the browser registry: it lives for a second, and Playwright's
    driver ends it if this process dies.)"""
    try:
        browser = await playwright.chromium.launch(executable_path=executable, env=env,
                                                   args=launch_args(True, new_owner_mark()),
                                                   timeout=PROBE_TIMEOUT_S * 1000)
    except Exception as error:
        raise CqError(f"its pinned browser did not start ({_first_line(error)})") from None
    try:
        page = await browser.new_page()
        return await asyncio.wait_for(page.evaluate(RENDERER_JS), PROBE_TIMEOUT_S)
    except Exception as error:
        raise CqError(f"its pinned browser gave no renderer ({_first_line(error)})") from None
    finally:
        await browser.close()


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


async def _probe(settings: SampleSettings, wrapper: Path, hidden: dict[int, tuple[str, ...]]
                 ) -> tuple[str, dict[int, str | CqError]]:
    """The Chromium found for `settings` (as the render pool finds it), and the renderer of one pinned
    browser per GPU of `hidden` (or why there is none), all at once."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = find_chromium(settings.chromium, playwright.chromium.executable_path)
        found = await asyncio.gather(*(_renderer(playwright, str(wrapper), pinned_env(chromium, files))
                                       for files in hidden.values()), return_exceptions=True)
    return chromium, dict(zip(hidden, found))


def pin_gpus(settings: SampleSettings, browsers: int, state_dir: Path, say: Callable[[str], None], *,
             gpus: Sequence[Gpu] | None = None, dev: Path = DEV, unshare: Sequence[str] | None = None,
             platform: str = sys.platform) -> Pinning | None:
    """`browsers` browsers dealt to the GPUs `settings.gpus` names, each GPU probed through its wrapper; None
    when the setting is off, or after one line (`say`) saying why the run goes on as without it. `gpus`,
    `dev`, `unshare` and `platform` stand in for NVML's list, /dev, the unshare command and sys.platform."""
    request = gpu_request(settings.gpus)
    if request is None:
        return None
    refused = f"gpus {settings.gpus}: %s; rendering as without the setting"
    if not platform.startswith("linux"):
        say(refused % "pinning a browser to a GPU needs Linux (a private mount namespace)")
        return None
    if gpus is None:
        try:
            gpus = nvml_gpus()
        except CqError as error:
            say(refused % f"no GPU to pin here: {error}")
            return None
    if not gpus or not _device_files(dev):
        say(refused % f"no GPU to pin here ({'NVML lists none' if not gpus else f'no nvidiaN device files in {dev}'})")
        return None
    unshare = list(unshare or unshare_command())
    problem = pinning_problem(unshare, state_dir)
    if problem:
        say(refused % f"pinning is not allowed here: {problem}")
        return None
    chosen, notes = choose(request, gpus, dev)
    for note in notes:
        say(note)
    if not chosen:
        say(refused % "none of the GPUs it names can be pinned")
        return None
    wrapper = write_wrapper(state_dir, unshare)
    hidden = {gpu.index: hidden_files(gpu, dev) for gpu in chosen}
    chromium, renderers = asyncio.run(_probe(settings, wrapper, hidden))
    kept = []
    for gpu in chosen:
        renderer = renderers[gpu.index]
        if isinstance(renderer, BaseException):
            say(f"gpus: GPU {gpu.index} ({gpu.name}) left out: {_first_line(renderer)}")
        elif is_software_renderer(renderer) or not gpu.named_by(renderer):
            say(f"gpus: GPU {gpu.index} ({gpu.name}) left out: its pinned browser renders with "
                f"{renderer or 'no WebGL2'}, which does not name it")
        else:
            kept.append(gpu)
    if not kept:
        say(refused % "no GPU it names could be pinned")
        return None
    return Pinning(wrapper, chromium, deal(browsers, kept), {gpu.index: hidden[gpu.index] for gpu in kept})
