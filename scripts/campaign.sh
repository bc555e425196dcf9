#!/usr/bin/env bash
# The converged campaign (the evidence behind the tables), in increments, most important first: each step is
# `python -m r2mr run-all --scale converged --train-only` on some data sets and notebooks, followed by
# `python -m r2mr archive add` (the finished runs into results/evidence/, to be committed).
#
# Usage: bash scripts/campaign.sh [run-all options, e.g. --data-dir DIR --jobs 2]
# Resumable: run it again and every stored or archived run is skipped; a killed run resumes from its
# checkpoint. Runs one thread per run (JOBS runs at once, default: the number of cores) with a passive OpenMP
# wait policy, so that a busy machine does not make idle threads spin. `python -m r2mr plan --scale converged`
# prints the whole campaign and its CPU-hours first.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
source scripts/ensure_env.sh
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
jobs="${JOBS:-$(nproc 2>/dev/null || echo 1)}"
steps=("tiktok 03" "synthetic 03" "tiktok 01,02" "tiktok 05" "synthetic 05" "baby,sports 03,02" "synthetic 01,02")
for step in "${steps[@]}"; do
  read -r datasets notebooks <<<"$step"
  echo "[campaign] $(date -u +%FT%TZ) step: $datasets, notebooks $notebooks"
  python -m r2mr run-all --scale converged --datasets "$datasets" --notebooks "$notebooks" --jobs "$jobs" \
    --train-only "$@"
  python -m r2mr archive add
done
echo "[campaign] $(date -u +%FT%TZ) done: commit results/evidence/"
