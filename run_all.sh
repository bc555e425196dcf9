#!/usr/bin/env bash
# run_all.sh: regenerate every table and figure of the reproduction with one command.
#
# Usage: bash run_all.sh [options]
#
#   --smoke            CI-sized run: synthetic data, 2 epochs, seed 999, quick scale; outputs go to
#                      scratch/smoke/ (git-ignored), so the committed results are left alone
#   --datasets a,b     data sets to run (default: every <name>/ under the data root and the embedded
#                      synthetic set, generated into the repository's data/synthetic when absent). A named set that
#                      is not there is an error before anything runs
#   --data-dir DIR     data root (default: $R2MR_DATA_DIR, else the repository's data/; relative paths are read from
#                      the directory you call run_all.sh from)
#   --device D         auto | cpu | cuda (default auto: cuda when PyTorch sees a GPU)
#   --seeds 999,1,2    seeds per configuration, integers in [0, 2^32), the same list for every row (default
#                      auto: main rows 5 seeds on synthetic and TikTok, 3 elsewhere; the paper's ablations 5
#                      (converged), other ablations and sensitivities 3; tuning points seed 101 (converged) or 2
#                      seeds (quick); declared in r2mr/runs/plan_specs.py; --smoke: 999)
#   --epochs N         epoch limit per training run (default: quick scale 3 per tuning point, 5 per other
#                      run; converged a limit that never binds; full each model's own; early stopping
#                      applies below the limit)
#   --scale S          converged | quick | full. converged (the default; the evidence, docs/evidence.md)
#                      early-stops every run on validation with a limit that never binds, R2MR at the quick
#                      size; every run already in the evidence archive (results/evidence/) is read, not
#                      retrained. quick (the tutorial, not evidence; the --smoke scale) runs R2MR at a reduced
#                      size (d = 64, a small rewriter) and caps every run's epochs (tuning points 3, other runs
#                      5: r2mr.runs.plan.EPOCH_CAPS). full runs R2MR at the paper's sizes with each model's own
#                      epoch limit. Baselines run at their own sizes. Every model is tuned first on its declared
#                      grid (r2mr/configs/tuning.yaml; converged: on synthetic and TikTok); --smoke skips tuning
#   --notebooks 00,03  run only the notebooks with these prefixes (and only their training runs)
#   --restart          recompute stored training runs (default: reuse them; old name --force)
#   --retrain          the same as --restart: also the runs of the evidence archive (results/evidence/)
#   --train-only       train the plan's missing runs, then stop (no notebooks): how a campaign is run
#   --no-train         train nothing: every run comes from the store or the evidence archive; a run in
#                      neither is a "not run" row (regenerates the committed tables from the archive); notebook
#                      04 reads its committed R2MR benchmark back instead of measuring it
#   --jobs N           train N runs at once on this machine (processes, cores/N torch threads each; default:
#                      one run per core on a CPU, so one thread per run; 1 on a GPU). Idle OpenMP threads
#                      wait passively (OMP_WAIT_POLICY=PASSIVE unless set): they never spin on a busy machine
#   --ray ADDRESS      train the runs as Ray tasks: a cluster address (host:6379), auto (the cluster
#                      this machine joined with `ray start`) or local (a Ray instance for this run);
#                      needs `pip install -e .[ray]`
#   --gpus-per-run F   with --ray: the fraction of a GPU each run asks for (0.166: six runs per GPU)
#   --cpus-per-run N   with --ray: CPUs (and torch threads) per run (default 1)
#   -h, --help         show this help
#
# What it does: creates or reuses the virtual environment .venv and installs r2mr into it
# (scripts/ensure_env.sh; R2MR_VENV / R2MR_NO_VENV=1 change that); validates the options; generates
# the synthetic set if it is asked for and absent; prints the run plan (`python -m r2mr plan` shows
# it without running anything) and trains its missing runs, with progress and ETA; then executes
# notebooks/NN_*.ipynb in order with papermill. The notebooks read every run from the store.
# Each invocation is atomic: executed copies, tables and figures are written to scratch/staging/ and moved
# to results/executed/, results/<notebook>/ (CSV + Markdown) and figures/ only when every notebook succeeded.
#
# Resumable: every training run is stored in runs/ (or $R2MR_RUNS_DIR), keyed by model, resolved
# config, data fingerprint and seed. A second invocation reuses finished runs; an interrupted one
# resumes from the last finished epoch. Exit status: 0 done, 2 bad option or data (one line),
# 3 a run or a notebook failed, 130 interrupted (Ctrl-C, or SIGTERM: `kill PID`).
set -euo pipefail

for arg in "$@"; do
  if [ "$arg" = "-h" ] || [ "$arg" = "--help" ]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    exit 0
  fi
done

# Relative data roots mean what they meant where run_all.sh was called: make them absolute before cd.
absolute() { case "$1" in /*) printf '%s' "$1" ;; "~"*) printf '%s' "$HOME${1#\~}" ;; *) printf '%s' "$PWD/$1" ;; esac; }
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --data-dir) if [ $# -ge 2 ]; then args+=("$1" "$(absolute "$2")"); shift 2; continue; fi ;;
    --data-dir=*) args+=("--data-dir=$(absolute "${1#--data-dir=}")"); shift; continue ;;
  esac
  args+=("$1"); shift
done
if [ -n "${R2MR_DATA_DIR:-}" ]; then export R2MR_DATA_DIR="$(absolute "$R2MR_DATA_DIR")"; fi
if [ -n "${R2MR_RUNS_DIR:-}" ]; then export R2MR_RUNS_DIR="$(absolute "$R2MR_RUNS_DIR")"; fi

cd "$(dirname "$0")"
# shellcheck disable=SC1091
source scripts/ensure_env.sh
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"   # the kernels import this checkout's r2mr
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"  # idle OpenMP threads sleep instead of spinning (r2mr.threads)
exec python -m r2mr run-all ${args[@]+"${args[@]}"}
