#!/usr/bin/env bash
# Measurements on the GPU machine, after ../shared/gpu/device-setup.sh's exports (CQ_CHROMIUM and
# CQ_CHROMIUM_GPU_ARGS set): the demo pack sampled with hardware WebGL (gpu_mode=require) by 1 and by 16
# browsers, the coupling net trained on CUDA on those rows and on a synthetic 3,000-pair pack.
# Everything it prints and the meta.json files land in $OUT (or /tmp/cq-gpu-out).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/cq-gpu-out}; mkdir -p "$out"
python3 -c "import pynvml; pynvml.nvmlInit(); h = pynvml.nvmlDeviceGetHandleByIndex(0); print('gpu:', pynvml.nvmlDeviceGetName(h), 'driver', pynvml.nvmlSystemGetDriverVersion())"
for workers in 1 16; do
    ws=/tmp/cq-gpu-w$workers; rm -rf "$ws"; mkdir -p "$ws"
    printf '[sample]\npacks = "demo"\ngpu_mode = "require"\nworkers = %s\n' "$workers" > "$ws/coupled-quality.toml"
    timeout 300 python3 bench/benchmark.py sample --workspace "$ws" --workers "$workers" --pairs 120
    CQ_WORKSPACE=$ws python3 -m doit -f dodo.py merge >/dev/null && cp "$ws/artifacts/coupled-eval/demo/meta.json" "$out/meta-w$workers.json"
done
CQ_WORKSPACE=/tmp/cq-gpu-w1 timeout 240 python3 bench/bench_train.py --workspace /tmp/cq-gpu-w1 --require-cuda --out "$out/train-demo.json"
timeout 240 python3 bench/bench_train.py --require-cuda --out "$out/train-synthetic.json"
