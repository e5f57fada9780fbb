#!/usr/bin/env bash
# Sampling throughput on the GPU machine, after ../shared/gpu/device-setup.sh's exports (CQ_CHROMIUM and
# CQ_CHROMIUM_GPU_ARGS set): a 960-pair demo-style pack at 128x128, 120 frames, gpu_mode=require, sampled
# by 1, 16 and 32 browsers with bench/benchmark.py (rates, busy fraction, CPU, GPU power/utilisation/memory
# via NVML, per-stage profile, render cost and what each max_frame_ms cap would cut).
# Each run stops itself cleanly at its MaxHours (doit's own deadline, so no browser is left behind) and the
# whole script fits one 600-s command. Output: $OUT/throughput.txt (or /tmp/cq-gpu-out).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/cq-gpu-out}; mkdir -p "$out"
run() {  # workers pairs max_hours
    ws=/tmp/cq-gpu-throughput-w$1; rm -rf "$ws"; mkdir -p "$ws"
    echo "=== $1 workers, up to $2 pairs, max_hours $3"
    python3 bench/benchmark.py sample --workspace "$ws" --workers "$1" --count 960 --pairs "$2" \
        --gpu-mode require --max-hours "$3"
}
{
    python3 -c "import pynvml; pynvml.nvmlInit(); h = pynvml.nvmlDeviceGetHandleByIndex(0); print('gpu:', pynvml.nvmlDeviceGetName(h), 'driver', pynvml.nvmlSystemGetDriverVersion())" || true
    nproc
    run 1 150 0.035
    run 16 960 0.045
    run 32 960 0.045
} 2>&1 | tee "$out/throughput.txt"
