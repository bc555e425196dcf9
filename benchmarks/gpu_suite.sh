#!/usr/bin/env bash
# gpu_suite.sh: the CUDA checks and GPU benchmarks in one call, for a machine with one NVIDIA GPU.
#
# Usage: bash benchmarks/gpu_suite.sh DATA_DIR OUT_DIR [SECONDS]
#
#   1. the gpu-marked tests (every model on CUDA against CPU, with the tolerances stated in the tests)
#   2. bench_train.py: seconds per epoch / evaluation of BPR, LightGCN (baby, sports) and the baselines (tiktok)
#   3. bench_r2mr.py: R2MR at Baby, Sports and Clothing scale, edge-wise vs dense Reviewer
#   4. profile_r2mr.py --device cuda: CUDA kernels per training step and the top kernels (Baby, Clothing;
#      quick and full size)
#   5. one whole R2MR run (official, full size, random features) on the generated Clothing-sized graph,
#      alone on the GPU, stopped after at most 300 s (issue 10's goal: the whole run in <= 5 min); its log
#      shows how far it got
#   6. full training runs, in parallel, until SECONDS (default 540) after the start: the configurations
#      listed in RUNS below; each writes OUT_DIR/runs/<name>.json and a log
# Everything ends up in OUT_DIR/gpu_suite.tgz (plus suite.log). DATA_DIR holds baby/, sports/, tiktok/.
set -uo pipefail
DATA=$(realpath "$1"); OUT=$(realpath -m "$2"); BUDGET=${3:-540}
START=$(date +%s)
mkdir -p "$OUT/runs"
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 R2MR_RUNS_DIR="${TMPDIR:-/tmp}/r2mr_gpu_runs"
PY=${PYTHON:-python3}
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
pack() {  # atomically: build the archive outside OUT_DIR, then move it in
  local tmp="${TMPDIR:-/tmp}/gpu_suite.$$.tgz"
  mkdir -p "$OUT/run_dirs" "$R2MR_RUNS_DIR"  # the runs' result.json, logs and R2MR artifacts (no checkpoints)
  tar -C "$R2MR_RUNS_DIR" --exclude=checkpoint.pt --exclude=cache -cf - . | tar -C "$OUT/run_dirs" -xf -
  tar -czf "$tmp" -C "$OUT" --exclude=gpu_suite.tgz . && mv "$tmp" "$OUT/gpu_suite.tgz"
}
step() { echo "== $(date +%T) [$(( $(date +%s) - START ))s] $*"; }

step "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"

step "gpu tests"
timeout 150 $PY -m pytest -q -m gpu tests/test_gpu.py tests/test_r2mr_model.py 2>&1 | tail -25 | tee "$OUT/pytest_gpu.log"
pack

step "bench_train"
timeout 120 $PY benchmarks/bench_train.py --data-dir "$DATA" --device cuda --datasets baby,sports \
  --models bpr,lightgcn --epochs 3 --out "$OUT/train_cuda.json" 2>&1 | grep -v Warn
timeout 120 $PY benchmarks/bench_train.py --data-dir "$DATA" --device cuda --datasets tiktok \
  --models lightgcn,vbpr,lattice,freedom,bm3,mgcn --epochs 3 --out "$OUT/train_tiktok_cuda.json" 2>&1 | grep -v Warn
pack

step "bench_r2mr"
timeout 200 $PY benchmarks/bench_r2mr.py --data-dir "$DATA" --device cuda --scales baby,sports,clothing \
  --out "$OUT/r2mr_cuda.json" 2>&1 | grep -v Warn
pack

step "profile (cuda)"
timeout 150 $PY benchmarks/profile_r2mr.py --device cuda --data-dir "$DATA" --scales baby,clothing \
  --label cuda --out "$OUT/profile_r2mr_cuda" 2>&1 | grep -v Warn | head -12
pack

step "whole clothing-sized run"
ROOT="${TMPDIR:-/tmp}/gpu_suite_data.$$"  # the data sets plus the generated graph as an MMRec folder
mkdir -p "$ROOT" && for d in "$DATA"/*/; do ln -s "$d" "$ROOT/$(basename "$d")"; done
$PY benchmarks/graphs.py "$ROOT/clothing-like"
T=$(( $(left) - 60 )); T=$(( T < 300 ? T : 300 ))
S=$(date +%s)
timeout "$T" $PY -m r2mr train --model r2mr --dataset clothing-like --data-dir "$ROOT" --device cuda \
  --seed 999 --set content=random --out "$OUT/runs/r2mr_clothing_like.json" > "$OUT/runs/r2mr_clothing_like.log" 2>&1
printf '\nexit %s, wall %s s (limit %s s)\n' "$?" "$(( $(date +%s) - S ))" "$T" >> "$OUT/runs/r2mr_clothing_like.log"
echo "r2mr_clothing_like: $(grep -v '%|' "$OUT/runs/r2mr_clothing_like.log" | tail -3)"
pack

# name | model | dataset | --set overrides
RUNS="lightgcn_sports_L4|lightgcn|sports|
lightgcn_sports_L3|lightgcn|sports|n_layers=3
lightgcn_baby_L4|lightgcn|baby|
r2mr_tiktok_official|r2mr|tiktok|
r2mr_tiktok_paper|r2mr|tiktok|variant=paper
r2mr_baby_random|r2mr|baby|content=random
r2mr_sports_random|r2mr|sports|content=random
vbpr_tiktok_r0.1|vbpr|tiktok|reg_weight=0.1
vbpr_tiktok_r1e-2|vbpr|tiktok|reg_weight=0.01
vbpr_tiktok_r1e-5|vbpr|tiktok|reg_weight=1e-5"
T=$(( $(left) - 15 ))
step "full runs for ${T}s"
while IFS='|' read -r name model ds sets; do
  [ -n "$name" ] || continue
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=1 timeout "$T" $PY -m r2mr train --model "$model" --dataset "$ds" --data-dir "$DATA" \
    --device cuda --seed 999 ${sets:+--set $sets} --out "$OUT/runs/$name.json" > "$OUT/runs/$name.log" 2>&1 &
done <<< "$RUNS"
wait
for f in "$OUT"/runs/*.log; do echo "$(basename "$f" .log): $(grep -v '%|' "$f" | tail -1)"; done
step "done"
pack
