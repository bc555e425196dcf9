#!/usr/bin/env bash
# run_all.sh: regenerate every table and figure of the reproduction with one command.
#
# Usage: bash run_all.sh [options]
#
#   --smoke            CI-sized run: synthetic data, 2 epochs, seed 999, quick scale; outputs go to
#                      scratch/smoke/ (git-ignored), so the committed results are left alone
#   --datasets a,b     data sets to run (default: every <name>/ under the data root; if there is none,
#                      the embedded synthetic set, generated into ./data/synthetic)
#   --data-dir DIR     data root (default: $R2MR_DATA_DIR, else ./data)
#   --device D         auto | cpu | cuda (default auto: cuda when PyTorch sees a GPU)
#   --seeds 999,1,2    seeds per configuration (default 999,1,2; --smoke: 999)
#   --epochs N         max epochs per training run (default: each model's, with early stopping)
#   --scale S          quick | full: the notebooks' size switch. quick runs R2MR at a reduced size
#                      (d = 64, a small rewriter, at most 50 epochs): the default on CPU and with
#                      --smoke; full runs it at the paper's sizes: the default on a GPU. Baselines run
#                      at their own sizes and epoch limits at both scales
#   --notebooks 00,03  run only the notebooks with these prefixes (default: all, in order)
#   --force            recompute cached training runs (default: reuse them)
#   -h, --help         show this help
#
# What it does: creates or reuses the virtual environment .venv and installs r2mr into it
# (scripts/ensure_env.sh; R2MR_VENV / R2MR_NO_VENV=1 change that), detects the data and the device,
# then executes notebooks/NN_*.ipynb in order with papermill. Executed copies go to results/executed/,
# tables to results/<notebook>/ (CSV + Markdown), figures to figures/ (PNG + PDF). The committed
# notebooks are never modified.
#
# Resumable: every training run is cached in runs/ (or $R2MR_RUNS_DIR), keyed by model, data set,
# resolved config, data fingerprint, device type and seed. A second invocation reuses finished runs;
# an interrupted one resumes from the last finished epoch. It stops at the first failing notebook with
# a one-line message (exit status 2) naming the notebook, the cell and the error.
set -euo pipefail

for arg in "$@"; do
  if [ "$arg" = "-h" ] || [ "$arg" = "--help" ]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 0
  fi
done

export R2MR_CALLER_CWD="$PWD"   # relative --data-dir / $R2MR_DATA_DIR are read from here
cd "$(dirname "$0")"
# shellcheck disable=SC1091
source scripts/ensure_env.sh
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"   # the kernels import this checkout's r2mr
exec python -m r2mr run-all "$@"
