#!/usr/bin/env bash
# Measurements on the GPU machine, after ../shared/gpu/device-setup.sh's exports (CQ_CHROMIUM and
# CQ_CHROMIUM_GPU_ARGS set): the demo pack sampled with hardware WebGL (gpu_mode=require) by 1 browser, a
# 960-pair pack of demo-style pairs by 16 browsers, then the coupling net trained on CUDA on the demo rows
# and on a synthetic 3,000-pair pack (skip training with CQ_SKIP_TRAIN=1).
# Everything it prints and the meta.json files land in $OUT (or /tmp/cq-gpu-out).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/cq-gpu-out}; mkdir -p "$out"
python3 -c "import pynvml; pynvml.nvmlInit(); h = pynvml.nvmlDeviceGetHandleByIndex(0); print('gpu:', pynvml.nvmlDeviceGetName(h), 'driver', pynvml.nvmlSystemGetDriverVersion())"
run() {  # workers pack count
    ws=/tmp/cq-gpu-w$1; rm -rf "$ws"; mkdir -p "$ws"
    printf '[sample]\npacks = "%s"\ngpu_mode = "require"\nworkers = %s\n' "$2" "$1" > "$ws/coupled-quality.toml"
    timeout 300 python3 bench/benchmark.py sample --workspace "$ws" --workers "$1" --pairs "${3:-120}" ${3:+--count $3}
    CQ_WORKSPACE=$ws python3 -m doit -f dodo.py merge >/dev/null && cp "$ws/artifacts/coupled-eval/$2/meta.json" "$out/meta-w$1.json"
}
run 1 demo
run 16 bench 960
[ -n "${CQ_SKIP_TRAIN:-}" ] && exit 0
CQ_WORKSPACE=/tmp/cq-gpu-w1 timeout 240 python3 bench/bench_train.py --workspace /tmp/cq-gpu-w1 --require-cuda --out "$out/train-demo.json"
timeout 240 python3 bench/bench_train.py --require-cuda --out "$out/train-synthetic.json"
