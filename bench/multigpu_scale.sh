#!/usr/bin/env bash
# Issue 15 on a host with several GPUs, after ../shared/gpu/device-setup.sh's exports: which mechanism pins a
# headless Chromium to one GPU (bench/multigpu_probe.py), then pairs/min of the demo-style 960-pair pack at
# 128x128, 120 frames, gpu_mode=require, with 16 browsers on GPU 0 alone and with one sampling process per
# GPU (16 browsers each, the second pinned to GPU 1 by the mechanism the probe found), while NVML samples
# every GPU's utilisation and power. Output: $OUT/multigpu.txt and $OUT/multigpu-probe.json.
# SCALE_SECONDS (default 120) is each run's MaxHours in seconds.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/cq-gpu-out}; mkdir -p "$out"
seconds=${SCALE_SECONDS:-120}
hours=$(python3 -c "print($seconds / 3600)")

nvml_log() {  # file: per-GPU utilisation % and power W every 0.5 s until killed
    python3 - "$1" <<'PY'
import sys, time, pynvml
pynvml.nvmlInit()
handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
with open(sys.argv[1], "w") as log:
    while True:
        log.write(" ".join(f"{pynvml.nvmlDeviceGetUtilizationRates(h).gpu}:{pynvml.nvmlDeviceGetPowerUsage(h) / 1000:.0f}"
                           for h in handles) + "\n")
        log.flush()
        time.sleep(0.5)
PY
}

summarise() {  # file label
    python3 - "$1" "$2" <<'PY'
import sys
rows = [[tuple(map(float, cell.split(":"))) for cell in line.split()] for line in open(sys.argv[1]) if line.strip()]
busy = [row for row in rows if any(util > 5 for util, _ in row)]
gpus = len(rows[0]) if rows else 0
for i in range(gpus):
    util = sum(row[i][0] for row in busy) / max(1, len(busy))
    power = sum(row[i][1] for row in busy) / max(1, len(busy))
    peak = max((row[i][1] for row in busy), default=0)
    print(f"{sys.argv[2]}: GPU {i} mean utilisation {util:.0f}%, mean power {power:.0f} W, peak {peak:.0f} W")
PY
}

sample() {  # workspace workers [env assignments...]: one benchmark run, its output to $ws.log
    ws=$1; workers=$2; shift 2
    rm -rf "$ws"; mkdir -p "$ws"
    env "$@" python3 bench/benchmark.py sample --workspace "$ws" --workers "$workers" --count 960 --pairs 960 \
        --gpu-mode require --max-hours "$hours" > "$ws.log" 2>&1
}

{
    nvidia-smi -L || true
    nproc
    export PYTHONPATH="$PWD:${PYTHONPATH:-}"
    python3 bench/multigpu_probe.py --seconds 4 --json "$out/multigpu-probe.json"
    pin=$(python3 bench/multigpu_probe.py --pick "$out/multigpu-probe.json")
    echo "$pin"

    if [ -z "${SKIP_ONE:-}" ]; then echo "=== one process, 16 browsers, GPU 0 (no pinning)"
    nvml_log /tmp/nvml-one.log & logger=$!
    sample /tmp/cq-scale-one 16
    kill $logger
    grep -E "pairs/min|busy|renderer|cut" /tmp/cq-scale-one.log | head -20
    summarise /tmp/nvml-one.log "one process"; fi

    if [ -n "$pin" ]; then
        echo "=== two processes, 16 browsers each: GPU 0, and GPU 1 by: $(echo "$pin" | head -1)"
        assignments=$(echo "$pin" | grep '^export ' | sed 's/^export //' | tr '\n' ' ')
        nvml_log /tmp/nvml-two.log & logger=$!
        sample /tmp/cq-scale-a 16 & first=$!
        eval "sample /tmp/cq-scale-b 16 $assignments" & second=$!
        wait $first $second
        kill $logger
        for ws in /tmp/cq-scale-a /tmp/cq-scale-b; do echo "--- $ws"; grep -E "pairs/min|busy|renderer" "$ws.log" | head -8; done
        summarise /tmp/nvml-two.log "two processes"
    else
        echo "=== no candidate pinned a browser to GPU 1: every browser renders on GPU 0 (see the probe above)"
        echo "=== two processes, 16 browsers each, both unpinned (what a user gets without pinning)"
        nvml_log /tmp/nvml-two.log & logger=$!
        sample /tmp/cq-scale-a 16 & first=$!
        sample /tmp/cq-scale-b 16 & second=$!
        wait $first $second
        kill $logger
        for ws in /tmp/cq-scale-a /tmp/cq-scale-b; do echo "--- $ws"; grep -E "pairs/min|busy|renderer" "$ws.log" | head -8; done
        summarise /tmp/nvml-two.log "two processes, unpinned"
    fi
    cp /tmp/cq-scale-one.log "$out/scale-one.log" 2>/dev/null
} 2>&1 | tee "$out/multigpu.txt"
