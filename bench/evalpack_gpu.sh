#!/bin/bash
# bench/evalpack_gpu.sh [PACK_ARCHIVE]   sample the evaluation pack (bench/evalpack.py) in one command
#
# Meant for the GPU machine, after the kit's setup (../shared/gpu/GPU.md), from the repository root:
#     S=$(bash .gpu/kit/device-setup.sh .gpu) && eval "$S" && bash bench/evalpack_gpu.sh
# sending along .gpu/kit, web/node_modules and .bench/ (the pack archive that
# `python bench/evalpack.py archive` wrote, and the rows of an earlier run if there are any).
#
# Unpacks the pack into a fresh workspace, adds the rows (pairs and fingerprints) of an earlier run (.bench/evalpack-rows.tar.xz, so a
# second run resumes: rows are found by content key and never rendered twice), samples pack `bench` for at
# most EVALPACK_MINUTES with hardware WebGL, and writes every row (no thumbnails) to
# $OUT/evalpack-rows.tar.xz; then trains there (CUDA) with k-fold cross-validation and writes the figures and
# the training time on the GPU machine to $OUT/evalpack-cv.txt. Copy the rows to .bench/ here, then:
#     mkdir WS && tar -xJf .bench/evalpack.tar.xz -C WS && tar -xJf .bench/evalpack-rows.tar.xz -C WS
#     python bench/evalpack.py cv --workspace WS
# Environment: EVALPACK_NO_CV (set: stop after sampling), EVALPACK_MINUTES (6.5), EVALPACK_WORKERS (16), EVALPACK_GPU_MODE (require; "off" tests it here
# on software WebGL), OUT (where the rows go; required), PYTHON (python3).
set -euo pipefail

ARCHIVE=${1:-.bench/evalpack.tar.xz}
ROWS=.bench/evalpack-rows.tar.xz
MINUTES=${EVALPACK_MINUTES:-6.5}
WORKERS=${EVALPACK_WORKERS:-16}
GPU_MODE=${EVALPACK_GPU_MODE:-require}
PY=${PYTHON:-python3}
: "${OUT:?set OUT to the folder the rows go to}"
[ -f "$ARCHIVE" ] || { echo "evalpack_gpu: no pack archive at $ARCHIVE: run python bench/evalpack.py build and archive first" >&2; exit 1; }

export CQ_WORKSPACE
CQ_WORKSPACE=$(mktemp -d "${TMPDIR:-/tmp}/cq-evalpack.XXXXXX")
tar -xJf "$ARCHIVE" -C "$CQ_WORKSPACE"
if [ -f "$ROWS" ]; then
  tar -xJf "$ROWS" -C "$CQ_WORKSPACE"
  echo "evalpack_gpu: resuming with the rows in $ROWS" >&2
fi
knobs=(--packs bench --gpu-mode "$GPU_MODE" --workers "$WORKERS")
hours=$("$PY" -c "print($MINUTES / 60)")
started=$(date +%s)
# A run cut by max-hours leaves shards unfinished, and doit reports that as a failed task: the rows written
# so far are kept and go back all the same.
# pairs, then each preset alone (its fingerprint), in one doit run
"$PY" -m doit -f dodo.py sample "${knobs[@]}" --max-hours "$hours" fingerprint "${knobs[@]}" --max-hours "$hours" || echo "evalpack_gpu: sampling ended early (status $?)" >&2
# No merge: the shards hold every row and the trainer reads them (`doit merge` would first run the sample
# tasks of every pack with default knobs). doit's demo_pack task wrote the demo pack here; it is not part of
# the evaluation, and its unsampled pairs would feed the negatives.
rm -rf "$CQ_WORKSPACE/public/presets/demo"
eval_dir=artifacts/coupled-eval/bench
tar -cJf "$OUT/evalpack-rows.tar.xz" -C "$CQ_WORKSPACE" --exclude "$eval_dir/thumbs" --exclude artifacts/fingerprints/thumbs \
  "$eval_dir" artifacts/fingerprints .cq/identity.json
rows=$(cat "$CQ_WORKSPACE/$eval_dir"/shards/*.jsonl 2>/dev/null | wc -l)
prints=$(cat "$CQ_WORKSPACE"/artifacts/fingerprints/shards/*.jsonl 2>/dev/null | wc -l)
echo "evalpack_gpu: $rows pair rows and $prints fingerprints in $(( $(date +%s) - started )) s; wrote $OUT/evalpack-rows.tar.xz" >&2
[ -n "${EVALPACK_NO_CV:-}" ] && exit 0
"$PY" bench/evalpack.py cv --workspace "$CQ_WORKSPACE" > "$OUT/evalpack-cv.txt" 2>&1 ||
  echo "evalpack_gpu: cross-validation ended with status $? (see $OUT/evalpack-cv.txt)" >&2
cat "$OUT/evalpack-cv.txt" >&2
