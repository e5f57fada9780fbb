"""Which GPU does a headless Chromium render on, and what pins it to one? (issue 15)

    python bench/multigpu_probe.py [--seconds 6] [--json OUT]

For each candidate way of pinning (environment variables and ANGLE backends, one browser at a time), the
browser renders a heavy WebGL2 fragment shader in a loop while NVML samples every GPU's utilisation and
graphics processes; the verdict says which GPU did the work. Needs the GPU machine and the kit in
`../shared/gpu/` (CQ_CHROMIUM set); prints one JSON line per candidate.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import threading
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from stages.render.browser import BASE_ARGS

VULKAN = ["--use-angle=vulkan", "--ignore-gpu-blocklist"]
GL_EGL = ["--use-gl=angle", "--use-angle=gl-egl", "--ignore-gpu-blocklist"]

LOAD_JS = r"""async (seconds) => {
  const c = document.createElement('canvas'); c.width = 2048; c.height = 2048;
  const gl = c.getContext('webgl2');
  const dbg = gl.getExtension('WEBGL_debug_renderer_info');
  const renderer = gl.getParameter(dbg.UNMASKED_RENDERER_WEBGL);
  const sh = (t, s) => { const o = gl.createShader(t); gl.shaderSource(o, s); gl.compileShader(o); return o; };
  const p = gl.createProgram();
  gl.attachShader(p, sh(gl.VERTEX_SHADER, `#version 300 es
    void main() { vec2 q = vec2((gl_VertexID << 1) & 2, gl_VertexID & 2); gl_Position = vec4(q * 2.0 - 1.0, 0.0, 1.0); }`));
  gl.attachShader(p, sh(gl.FRAGMENT_SHADER, `#version 300 es
    precision highp float; uniform float t; out vec4 o;
    void main() { vec2 z = gl_FragCoord.xy / 2048.0; float a = t;
      for (int i = 0; i < 400; i++) { z = vec2(z.x * z.x - z.y * z.y, 2.0 * z.x * z.y) + vec2(0.3, 0.5) * sin(a); a += 0.01; }
      o = vec4(fract(z), 0.5, 1.0); }`));
  gl.linkProgram(p); gl.useProgram(p); gl.viewport(0, 0, 2048, 2048);
  const loc = gl.getUniformLocation(p, 't'); const px = new Uint8Array(4);
  const end = performance.now() + seconds * 1000; let frames = 0;
  while (performance.now() < end) {
    gl.uniform1f(loc, frames * 0.01); gl.drawArrays(gl.TRIANGLES, 0, 3);
    gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px); frames++;
    if (frames % 10 === 0) await new Promise(r => setTimeout(r, 0));
  }
  return {renderer, frames};
}"""

CANDIDATES = [
    ("vulkan, no env", VULKAN, {}),
    ("vulkan, CUDA_VISIBLE_DEVICES=1", VULKAN, {"CUDA_VISIBLE_DEVICES": "1"}),
    ("vulkan, ANGLE_PREFERRED_DEVICE=nvidia", VULKAN, {"ANGLE_PREFERRED_DEVICE": "nvidia"}),
    ("vulkan, VK_LOADER_DEVICE_SELECT=10de:2335", VULKAN, {"VK_LOADER_DEVICE_SELECT": "10de:2335"}),
    ("vulkan, --gpu-device-index? (unknown switch, control)", [*VULKAN, "--gpu-device-index=1"], {}),
    ("gl-egl, no env", GL_EGL, {}),
    ("gl-egl, CUDA_VISIBLE_DEVICES=1", GL_EGL, {"CUDA_VISIBLE_DEVICES": "1"}),
    ("gl-egl, EGL_DEVICE_ID=1", GL_EGL, {"EGL_DEVICE_ID": "1", "__NV_EGL_DEVICE_ID": "1"}),
    # a private mount namespace in which /dev/nvidia0 is /dev/null: the browser can only open GPU 1
    ("vulkan, /dev/nvidia0 hidden (unshare -m)", VULKAN, {"CQ_HIDE_DEVICE": "/dev/nvidia0"}),
    ("gl-egl, /dev/nvidia0 hidden (unshare -m)", GL_EGL, {"CQ_HIDE_DEVICE": "/dev/nvidia0"}),
]

HIDING_WRAPPER_PATH = "/tmp/cq-hiding-chromium"
HIDING_WRAPPER = """#!/bin/sh
exec unshare -m sh -c 'mount --bind /dev/null "$CQ_HIDE_DEVICE" && exec "$CQ_REAL_CHROMIUM" "$@"' chromium "$@"
"""


def sample_gpus(stop: threading.Event, samples: list) -> None:
    import pynvml

    count = pynvml.nvmlDeviceGetCount()
    handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
    while not stop.is_set():
        row = []
        for handle in handles:
            util = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
            power = pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
            try:
                procs = len(pynvml.nvmlDeviceGetGraphicsRunningProcesses(handle))
            except pynvml.NVMLError:
                procs = -1
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle).used // 2**20
            row.append((util, power, procs, mem))
        samples.append(row)
        time.sleep(0.2)


def probe(playwright, exe: str, name: str, flags: list[str], env: dict, seconds: float) -> dict:
    samples: list = []
    stop = threading.Event()
    thread = threading.Thread(target=sample_gpus, args=(stop, samples))
    if "CQ_HIDE_DEVICE" in env:
        Path(HIDING_WRAPPER_PATH).write_text(HIDING_WRAPPER)
        os.chmod(HIDING_WRAPPER_PATH, 0o755)
        env = {**env, "CQ_REAL_CHROMIUM": exe}
        exe = HIDING_WRAPPER_PATH
    browser = playwright.chromium.launch(executable_path=exe, args=[*BASE_ARGS, *flags],
                                         env={**os.environ, **env})
    try:
        page = browser.new_page()
        page.goto("about:blank")
        thread.start()
        result = page.evaluate(LOAD_JS, seconds)
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()
        browser.close()
    gpus = len(samples[0]) if samples else 0
    busy = [round(sum(row[i][0] for row in samples) / max(1, len(samples)), 1) for i in range(gpus)]
    power = [round(max(row[i][1] for row in samples), 1) for i in range(gpus)] if samples else []
    mem = [max(row[i][3] for row in samples) for i in range(gpus)] if samples else []
    procs = [max(row[i][2] for row in samples) for i in range(gpus)] if samples else []
    worked = max(range(gpus), key=lambda i: busy[i]) if gpus else None
    return {"candidate": name, "flags": flags, "env": env, "renderer": result["renderer"], "frames": result["frames"],
            "meanUtilPerGpu": busy, "maxPowerW": power, "maxMemMiB": mem, "graphicsProcs": procs,
            "busiestGpu": worked}


def print_pinning(results: list[dict]) -> None:
    """Exports for a sampling process whose browsers must render on GPU 1: the first candidate that moved
    the work there (GPU 1 clearly busier than GPU 0, on the NVIDIA renderer)."""
    for record in results:
        busy = record.get("meanUtilPerGpu") or []
        if len(busy) > 1 and busy[1] > busy[0] + 10 and "NVIDIA" in record.get("renderer", ""):
            env = dict(record["env"])
            if "CQ_HIDE_DEVICE" in env:
                env["CQ_REAL_CHROMIUM"] = os.environ["CQ_CHROMIUM"]
                env["CQ_CHROMIUM"] = HIDING_WRAPPER_PATH
                Path(HIDING_WRAPPER_PATH).write_text(HIDING_WRAPPER)
                os.chmod(HIDING_WRAPPER_PATH, 0o755)
            env["CQ_CHROMIUM_GPU_ARGS"] = " ".join(record["flags"])
            print(f"# pinned to GPU 1 by: {record['candidate']}")
            for name, value in env.items():
                print(f"export {name}={shlex.quote(value)}")
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--json", default="")
    parser.add_argument("--pick", default="", help="print the shell exports that pin a browser to GPU 1, from the "
                                                   "results in this JSON file (nothing when no candidate did)")
    args = parser.parse_args()
    if args.pick:
        print_pinning(json.loads(Path(args.pick).read_text()))
        return
    import pynvml

    pynvml.nvmlInit()
    exe = os.environ["CQ_CHROMIUM"]
    results = []
    with sync_playwright() as playwright:
        for name, flags, env in CANDIDATES:
            try:
                record = probe(playwright, exe, name, flags, env, args.seconds)
            except Exception as error:  # a candidate that breaks the browser is a finding, not a stop
                record = {"candidate": name, "error": str(error).splitlines()[0][:300]}
            print(json.dumps(record), flush=True)
            results.append(record)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
