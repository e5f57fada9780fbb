#!/usr/bin/env bash
# Issue 9.11 on the GPU machine, after ../shared/gpu/device-setup.sh's exports (CQ_CHROMIUM = the headless
# shell, CQ_CHROMIUM_GPU_ARGS set): the whole night on the demo pack with hardware WebGL (gpu_mode=require),
# verify included, then `doit` again, which must run nothing. Exit 0 only when both hold.
# Its output, the verify report and meta.json land in $OUT (or /tmp/cq-gpu-out). On a machine without a GPU,
# CQ_GPU_MODE=off runs the same steps on SwiftShader (how this script was tested).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/cq-gpu-out}; mkdir -p "$out"
if [ ! -d web/node_modules ] && [ -f .gpu/node_modules.tar.xz ]; then tar -C web -xJf .gpu/node_modules.tar.xz; fi
ws=/tmp/cq-gpu-verify; rm -rf "$ws"; mkdir -p "$ws"
printf '[sample]\ngpu_mode = "%s"\n' "${CQ_GPU_MODE:-require}" > "$ws/coupled-quality.toml"
export CQ_WORKSPACE=$ws
timeout 420 python3 -m doit -f dodo.py > "$out/doit-first.log" 2>&1; first=$?
tail -n 25 "$out/doit-first.log"
timeout 120 python3 -m doit -f dodo.py > "$out/doit-second.log" 2>&1; second=$?
ran=$(grep -c '^\.  ' "$out/doit-second.log")
cp "$ws/artifacts/coupled-eval/demo/meta.json" "$out/meta.json" 2>/dev/null
cp "$ws/reports/demo/verify.json" "$out/" 2>/dev/null
python3 - "$ws" <<'PY'
import json, sys, pathlib
ws = pathlib.Path(sys.argv[1])
meta = json.loads((ws / "artifacts/coupled-eval/demo/meta.json").read_text())
print("sampling renderer:", meta["runtime"]["webgl"]["renderer"], "| gpu mode used:", meta["runtime"]["gpuModeUsed"])
for path in ws.rglob("verify*.json"):
    report = json.loads(path.read_text())
    print("verify:", "passed" if report["passed"] else "FAILED", "| renderer:", report["page"].get("renderer"))
    for check in report["checks"]:
        print("  ", "ok  " if check["passed"] else "FAIL", check["name"], "-", check["detail"][:150])
PY
echo "first doit: exit $first; second doit: exit $second, tasks run: $ran (must be 0)"
[ "$first" = 0 ] && [ "$second" = 0 ] && [ "$ran" = 0 ]
