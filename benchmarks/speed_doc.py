"""Write docs/speed.md from the benchmark files: the thread policy (results/benchmarks/threads_cpu.json) and the
old vs new CPU path per model and data set on an idle, a quiet and a loaded machine
(kernels_cpu_{idle,quiet,loaded}.json, written by bench_kernels.py), with the bounds, the issue's goals, and the
plan's per-epoch timings rescaled by the speed-ups of the newest idle run (the numbers
r2mr/cli/plan_commands.py declares).

Usage: python benchmarks/speed_doc.py [--out docs/speed.md] [--check]
``--check`` prints the per-epoch table the plan should declare and whether r2mr/cli/plan_commands.py agrees.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from r2mr.cli.plan_commands import SECONDS_PER_EPOCH, TYPICAL_EPOCHS  # noqa: E402
from r2mr.core.atomic_io import write_text  # noqa: E402

BENCH = ROOT / "results" / "benchmarks"
# The plan's declared seconds per epoch + one evaluation per 100,000 training interactions before the kernels
# (r2mr/cli/plan_commands.py at the commit before this work); the new table is this one divided by the measured
# speed-up.
OLD_SECONDS_PER_EPOCH = {"bpr": 1.1, "lightgcn": 2.8, "vbpr": 1.7, "lattice": 5.2, "freedom": 3.2, "bm3": 4.1,
                         "mgcn": 35.0, "r2mr": 10.0, "r2mr full": 150.0}
# Goals of the work (seconds, one thread): LightGCN's training epoch and the evaluation of both splits.
TRAIN_GOALS = {("lightgcn", "baby"): 1.5, ("lightgcn", "sports"): 5.0, ("lightgcn", "tiktok"): 0.5}
EVAL_GOALS = {"baby": 0.45, "sports": 2.0, "tiktok": 0.2}
EARLIER_PROCESSOR = "the AMD EPYC of the first sessions (model not recorded)"
RATES = {"measured": "this processor's rates, measured by the benchmark: benchmarks/machine_rates.py",
         "reference": "the rates measured on the AMD EPYC the benchmark was written on"}
INTERACTIONS = {"synthetic": 25_000, "tiktok": None, "baby": None, "sports": None}  # None: counted from the data


def load(name: str) -> dict | None:
    path = BENCH / name
    return json.loads(path.read_text()) if path.is_file() else None


def speedups(rows: list[dict], dataset: str = "tiktok") -> dict[str, float]:
    """old / new of (training epoch + one evaluation) per model on ``dataset``."""
    return {r["model"]: (r["train_old_s"] + r["eval_old_s"]) / (r["train_new_s"] + r["eval_new_s"])
            for r in rows if r["dataset"] == dataset}


def new_table(rows: list[dict]) -> dict[str, float]:
    """The plan's table rescaled by the measured speed-ups (models without a measurement unchanged)."""
    s = speedups(rows)
    return {k: round(v / s.get(k, 1.0), 2) for k, v in OLD_SECONDS_PER_EPOCH.items()}


def cpu_hours(table: dict[str, float], interactions: dict[str, int]) -> dict[str, float]:
    """One converged seed of every model (quick-size R2MR) per data set, from a per-epoch table."""
    return {d: sum(table[m] * n / 1e5 * TYPICAL_EPOCHS[m] for m in TYPICAL_EPOCHS) / 3600
            for d, n in interactions.items()}


def kernel_table(doc: dict) -> list[str]:
    lines = ["| model | data set | train old (s) | train new (s) | old ÷ new | train bound (s) | new ÷ bound | "
             "eval old (s) | eval new (s) | old ÷ new | eval bound (s) | new ÷ bound |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in doc["rows"]:
        lines.append(f"| {r['model']} | {r['dataset']} | {r['train_old_s']:.2f} | {r['train_new_s']:.2f} | "
                     f"{r['train_old_s'] / r['train_new_s']:.2f} | {r['train_bound_s']:.2f} | "
                     f"{r['train_new_s'] / r['train_bound_s']:.1f} | {r['eval_old_s']:.2f} | {r['eval_new_s']:.2f} | "
                     f"{r['eval_old_s'] / r['eval_new_s']:.2f} | {r['eval_bound_s']:.2f} | "
                     f"{r['eval_new_s'] / r['eval_bound_s']:.1f} |")
    return lines


def goal_lines(doc: dict) -> list[str]:
    out = ["Goals (one thread, set for an idle machine; the seconds here carry the load stated above):"]
    if doc.get("rates") == "measured":
        out[0] = (f"Goals (one thread, idle machine; set in seconds on the earlier processor, whose cache reads ran "
                  f"at 96 GB/s, against {doc['cache_gbs']:.0f} GB/s here: read new ÷ bound beside them):")
    for r in doc["rows"]:
        goal = TRAIN_GOALS.get((r["model"], r["dataset"]))
        if goal:
            out.append(f"- LightGCN training epoch on {r['dataset']}: {r['train_new_s']:.2f} s (goal ≤ {goal} s: "
                       f"{'met' if r['train_new_s'] <= goal else 'not met'})")
        if r["model"] == "lightgcn" and r["dataset"] in EVAL_GOALS:
            goal = EVAL_GOALS[r["dataset"]]
            out.append(f"- evaluation of both splits on {r['dataset']} (LightGCN): {r['eval_new_s']:.2f} s "
                       f"(goal ≤ {goal} s: {'met' if r['eval_new_s'] <= goal else 'not met'})")
    return out


def threads_section(doc: dict | None) -> list[str]:
    if doc is None:
        return ["(no results/benchmarks/threads_cpu.json: run benchmarks/bench_threads.py)"]
    lines = [f"{doc['model']} on {doc['dataset']}, {doc['batches']} training steps per measurement, "
             f"{doc['cores']} cores; loaded = {doc['competitors']} spinning process(es) of the benchmark's own. "
             "Milliseconds per step (medians of fresh worker processes); load = the machine's load average; "
             f"commit {doc.get('commit', 'not recorded')}; processor: {doc.get('cpu', EARLIER_PROCESSOR)}.", "",
             "| policy | machine | threads | wall ms | CPU ms | load |", "|---|---|---:|---:|---:|---:|"]
    for r in doc["rows"]:
        lines.append(f"| {r['policy']} | {'loaded' if r['loaded'] else 'alone'} | {r['threads']} | "
                     f"{r['wall_ms']:.1f} | {r['cpu_ms']:.1f} | {r['loadavg']:.1f} |")
    lines += ["", *(f"- {k}: ×{v:.2f}" for k, v in doc["ratios"].items())]
    return lines


def memory_section(doc: dict | None) -> list[str]:
    if doc is None:
        return ["(no results/benchmarks/memory_cpu.json: run benchmarks/bench_memory.py)"]
    lines = ["The system's malloc defaults (`R2MR_MALLOC=system`) against freed memory kept in the heap (`keep`, "
             "the default: `r2mr/core/memory.py`). One thread, default configuration, fresh worker processes "
             f"(medians of {doc['rows'][0]['repeats']}); {doc['batches']} steps after five warm-up steps; "
             "one evaluation after two; page faults counted by the OS; "
             f"load average {min(doc['loadavg']):.1f}-{max(doc['loadavg']):.1f}; commit {doc['commit']}.", "",
             "| model | data set | policy | step (ms) | faults per step | epoch (s) | evaluation (s) | "
             "faults per evaluation |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in doc["rows"]:
        lines.append(f"| {r['model']} | {r['dataset']} | {r['policy']} | {r['step_s'] * 1e3:.1f} | "
                     f"{r['step_faults']:.0f} | {r['epoch_s']:.2f} | {r['eval_s']:.2f} | {r['eval_faults']:.0f} |")
    pairs = [(a, b) for a, b in zip(doc["rows"][::2], doc["rows"][1::2])]
    lines += ["", *(f"- {a['model']} on {a['dataset']}, system ÷ keep: training step ×{a['step_s'] / b['step_s']:.2f}, "
                    f"evaluation ×{a['eval_s'] / b['eval_s']:.2f}" for a, b in pairs)]
    return lines


def floor_section(doc: dict | None) -> list[str]:
    """The sparse product against its L1-resident twin and its bound, and the score product's rate."""
    if doc is None:
        return ["(no results/benchmarks/floor_cpu.json: run benchmarks/bench_floor.py)"]
    lines = [f"One sparse product (d = {doc['width']}) and evaluation's score product ({doc['eval_users']:,} users, "
             f"width {doc['width']}), one thread, medians of {doc['repeats']} calls in turn; load average "
             f"{doc['loadavg']:.1f}; commit {doc['commit']}; processor: {doc['cpu']}. *Folded*: the same kernel on the "
             f"same rows and entries with every column index taken mod {doc['fold']}, so that each dense row it "
             "reads is in the first-level cache: the same instructions without the misses. *Bound*: the product's "
             f"bytes at {doc['cache_gbs']:.0f} GB/s (this machine's cache reads), as in the tables above.", "",
             "| data set | entries | product (ms) | folded (ms) | torch.sparse.mm (ms) | bound (ms) | product ÷ folded "
             "| folded ÷ bound | scores (GFLOP/s) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in doc["rows"]:
        lines.append(f"| {r['dataset']} | {r['nnz']:,} | {r['product_s'] * 1e3:.2f} | {r['folded_s'] * 1e3:.2f} | "
                     f"{r['torch_s'] * 1e3:.2f} | {r['bound_s'] * 1e3:.2f} | {r['product_s'] / r['folded_s']:.2f} | "
                     f"{r['folded_s'] / r['bound_s']:.2f} | {r['score_gflops']:.1f} |")
    lines += ["", f"The score product's rate is to be read against {doc['gemm_gflops']:.0f} GFLOP/s on a large square "
              "product, measured in the same run (the kind of rate the evaluation's bound uses)."]
    return lines


def render(interactions: dict[str, int]) -> str:
    quiet, loaded = load("kernels_cpu_quiet.json"), load("kernels_cpu_loaded.json")
    out = ["# Speed on a CPU", "",
           "Generated by `benchmarks/speed_doc.py` from `results/benchmarks/` (do not edit by hand). Every number is",
           "measured with old and new side by side in one run, so that the ratios hold even though the machine (2",
           "cores) carried other work while they were taken: absolute seconds are inflated by that load, the ratios",
           "much less; the goals are judged on the idle runs (nothing else running). Old = `torch.sparse.mm`,",
           "stacked layer means, `users @ items.T`, `torch.topk`, the metrics in torch, `torch.optim.Adam` and",
           "`F.dropout`; new = the numba kernels of `r2mr/data/kernels.py` (rows summed in vector registers with the",
           "next rows prefetched (from the 0.4.6 runs on; a heap buffer before; with unsigned indices and the",
           "prefetch unrolled from the 0.4.9 runs on), the layer mean fused into the products, its backward joining",
           "the user and item parts' gradients once (0.4.6), LightGCN's last layer at the batch's rows only:",
           "`r2mr/data/propagation.py`; R2MR's at the batch's distinct rows, its gradient added into the output rows",
           "without building the transpose: `r2mr/data/row_slice.py`, 0.4.7), Adam's step in two compiled passes",
           "(`r2mr/training/adam.py`: in the later processor's idle and loaded runs, not in the earlier processor's;",
           "AdamW, R2MR's, from the 0.4.7 runs on) and dropout's mask drawn by a compiled copy of torch's generator",
           "(`r2mr/models/dropout.py`, R2MR and BM3: from the 0.4.5 runs on); in evaluation, the top-k of rows",
           "without ties from candidates above a sampled threshold (`r2mr/data/topk_sampled.py`) and the per-user",
           "hits and metrics compiled (`r2mr/evaluation/user_metrics.py`), both from the 0.4.8 runs on. Both give",
           "the same bits (tests/test_kernels.py, tests/test_row_slice.py, tests/test_adam.py,",
           "tests/test_dropout.py, tests/test_topk_sampled.py, tests/test_user_metrics.py); both run under the",
           "memory policy, measured apart below.",
           "Each run names its processor: the goals were set on an earlier AMD EPYC (idle run kept as",
           "`kernels_cpu_idle_before.json`, quiet run); the newest idle and loaded runs are on a later one whose",
           "cache reads measured 42-62 GB/s against 96, and each run's bounds use its own processor's rates. This",
           "virtual machine's speed drifts by 10-25% between runs minutes apart (up to 2x on the later processor),",
           "also idle: read the ratios, measured side by side.",
           "",
           "## Thread policy (`benchmarks/bench_threads.py`)", "",
           "Old: every core as a torch thread, the OpenMP runtime's default (spinning) wait. New: one thread per",
           "run (`--jobs` = cores), `OMP_WAIT_POLICY=PASSIVE`.", "", *threads_section(load("threads_cpu.json"))]
    out += ["", "## Memory policy (`benchmarks/bench_memory.py`)", "", *memory_section(load("memory_cpu.json"))]
    runs = (("idle", load("kernels_cpu_idle.json")), ("idle_before", load("kernels_cpu_idle_before.json")),
            ("quiet", quiet), ("loaded", loaded))
    for label, doc in runs:
        title = {"idle": "on an idle machine (the goals are judged here)",
                 "idle_before": "on an idle machine, the earlier processor (the goals were set on it)",
                 "quiet": "no competing process of the benchmark's own, other work on the machine",
                 "loaded": "loaded by the benchmark"}[label]
        out += ["", f"## Old vs new, {title} (`benchmarks/bench_kernels.py`)", ""]
        if doc is None:
            out.append(f"(no results/benchmarks/kernels_cpu_{label}.json)")
            continue
        out += [f"CPU seconds, one thread; {doc['competitors']} competing process(es) of the benchmark's own; "
                f"load average {min(doc['loadavg']):.1f}-{max(doc['loadavg']):.1f}; commit {doc['commit']}; "
                f"processor: {doc.get('cpu', EARLIER_PROCESSOR)}. Bounds: sparse bytes at {doc['cache_gbs']:.0f} "
                f"GB/s, dense FLOPs at {doc['gemm_gflops']:.0f} GFLOP/s ({RATES[doc.get('rates', 'reference')]}), "
                "the Adam update's bytes.", "", *kernel_table(doc), "", *goal_lines(doc)]
    out += ["", "## What bounds the kernels (`benchmarks/bench_floor.py`)", "", *floor_section(load("floor_cpu.json"))]
    idle = load("kernels_cpu_idle.json")
    if idle:
        table = new_table(idle["rows"])
        old_h, new_h = cpu_hours(OLD_SECONDS_PER_EPOCH, interactions), cpu_hours(table, interactions)
        out += ["", "## The plan's estimate", "",
                "`python -m r2mr plan` declares seconds per epoch + one evaluation per 100,000 training "
                "interactions (one thread); the new values are the old ones divided by the measured old ÷ new of "
                "(epoch + evaluation) on TikTok (the newest idle run, from 0.4.7 on; the quiet run before; R2MR at "
                "full size from its own row, measured from 0.4.7 on, before unchanged). Per-epoch hooks (R2MR's "
                "rewrite rounds) are not in the measured epochs: their share of the old seconds is scaled alike.", "",
                "| model | old | new |", "|---|---:|---:|",
                *(f"| {m} | {OLD_SECONDS_PER_EPOCH[m]} | {table[m]} |" for m in table), "",
                "One converged seed of every model (typical epochs to early stopping, quick-size R2MR), CPU-hours:", "",
                "| data set | interactions | old | new |", "|---|---:|---:|---:|",
                *(f"| {d} | {interactions[d]:,} | {old_h[d]:.2f} | {new_h[d]:.2f} |" for d in interactions),
                f"| all four | | {sum(old_h.values()):.2f} | {sum(new_h.values()):.2f} |"]
    return "\n".join(out) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", help="data root (counts the training interactions of tiktok, baby, sports)")
    p.add_argument("--out", default=str(ROOT / "docs" / "speed.md"))
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    from r2mr.cli.plan_commands import _interactions

    interactions = {d: n or _interactions(d, args.data_dir) for d, n in INTERACTIONS.items()}
    idle = load("kernels_cpu_idle.json")
    if args.check:
        table = new_table(idle["rows"]) if idle else {}
        print("declared in r2mr/cli/plan_commands.py:", SECONDS_PER_EPOCH)
        print("measured:                    ", table)
        return 0 if table == SECONDS_PER_EPOCH else 1
    write_text(args.out, render(interactions))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
