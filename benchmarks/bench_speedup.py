"""R2MR's quick-size training epoch, an older checkout against this one, side by side in one run.

Each repetition trains ``--batches`` batches of R2MR (quick size, r2mr.report.QUICK; random features of
the real widths) on the chosen scale, once with the old checkout's ``r2mr`` (``--old``, e.g. a
``git worktree`` of b44c64a) and once with this one, in fresh processes, alternating, and extrapolates
to a whole epoch (training only: rewrite rounds and evaluation excluded). It reports the median over
repetitions of wall-clock and process CPU seconds per epoch, the ratios old/new (also of each side's
fastest run, the least disturbed on a busy machine, and the median of the per-repetition ratios: old and new
of one repetition run back to back, so they share the machine's state), and the machine's load
average before and after (a shared machine inflates wall-clock; CPU time is less affected).

Each run then profiles ``--profiled`` more batches (torch.profiler) and splits its step into the parts that
the maths and the RNG stream fix and the rest: ``rng`` (the dropout masks: ``bernoulli_`` and the other
sampling operators, drawn serially from the global generator on CPUs where PyTorch does not use MKL's
generator), ``sparse`` (every sparse-dense product and the Reviewer's sampled products, with their output
buffers: memory-bound gathers whose float order is fixed) and ``other``. ``ceiling`` = old step / the new
step's ``rng + sparse``: the most any change that keeps those operators could gain over the old code.
Writes ``results/benchmarks/speedup_cpu.json``. Example::

    python benchmarks/bench_speedup.py --old /tmp/r2mr-before --data-dir /path/to/data --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1]); sys.path.insert(1, sys.argv[2])
import torch
from graphs import load_scale, r2mr_overrides, trainer_api
make_configs, Trainer, seed_everything = trainer_api()
scale, data_dir, batches = sys.argv[3], sys.argv[4], int(sys.argv[5])
KIND = {**dict.fromkeys(["aten::bernoulli_", "aten::uniform_", "aten::normal_", "aten::random_"], "rng"),
        **dict.fromkeys(["aten::_sparse_mm", "aten::sparse_sampled_addmm", "aten::_sparse_csr_mm"], "sparse")}
ds = load_scale(scale, data_dir)
cls, mcfg, tcfg = make_configs("r2mr", r2mr_overrides("quick"))
seed_everything(tcfg.seed)
model = cls(ds, mcfg)
trainer = Trainer(model, ds, tcfg, torch.device("cpu"), None, progress=False)
model.train()
losses = []
def step(b):
    loss = model.loss(b)
    trainer.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    trainer.optimizer.step()
    losses.append(loss.item())
it = iter(trainer.sampler)
step(next(it))  # warm-up
todo = [next(it) for _ in range(batches)]
w0, c0 = time.perf_counter(), time.process_time()
for b in todo:
    step(b)
wall, cpu = time.perf_counter() - w0, time.process_time() - c0
n = len(trainer.sampler)
profiled = [next(it) for _ in range(int(sys.argv[6]))]
with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
    w1 = time.perf_counter()
    for b in profiled:
        step(b)
    w1 = time.perf_counter() - w1
parts = {"rng": 0.0, "sparse": 0.0}
for e in prof.events():  # top-level operators of each kind; cpu_time_total includes their children
    kind = KIND.get(e.name)
    if kind and not (e.cpu_parent is not None and e.cpu_parent.name in KIND):
        parts[kind] += e.cpu_time_total / 1e3 / len(profiled)
step_ms = 1e3 * w1 / len(profiled)
print(json.dumps({"wall_s_per_epoch": wall / batches * n, "cpu_s_per_epoch": cpu / batches * n,
                  "batches_per_epoch": n, "threads": torch.get_num_threads(), "losses": losses,
                  "profiled_ms_per_step": {**parts, "other": step_ms - sum(parts.values()), "step": step_ms}}))
"""


def measure(repo: str, scale: str, data_dir: str, batches: int, threads: int, profiled: int = 5) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONPATH": repo}
    out = subprocess.run([sys.executable, "-c", WORKER, repo, str(HERE), scale, data_dir or "", str(batches),
                          str(profiled)],
                         capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def commit(repo: str) -> str:
    return subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=False).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old", required=True, help="checkout of the older commit")
    p.add_argument("--new", default=str(HERE.parent), help="checkout to compare (default: this one)")
    p.add_argument("--data-dir", help="data root holding <scale>/")
    p.add_argument("--scale", default="sports")
    p.add_argument("--batches", type=int, default=30, help="timed batches per run (after one warm-up)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--profiled", type=int, default=5, help="batches profiled per run after the timed ones")
    p.add_argument("--out", default=str(HERE.parent / "results" / "benchmarks" / "speedup_cpu.json"))
    a = p.parse_args(argv)
    sys.path.insert(0, str(HERE.parent))
    from r2mr.core.atomic_io import write_json

    load_before = [round(x, 2) for x in os.getloadavg()]
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    for rep in range(a.reps):
        for name in ("old", "new"):
            r = measure(getattr(a, name), a.scale, a.data_dir, a.batches, a.threads, a.profiled)
            runs[name].append(r)
            print(f"rep {rep} {name}: {r['wall_s_per_epoch']:.1f} s/epoch wall, {r['cpu_s_per_epoch']:.1f} s CPU "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
    med = {n: {k: statistics.median(r[k] for r in rs) for k in ("wall_s_per_epoch", "cpu_s_per_epoch")}
           for n, rs in runs.items()}
    best = {n: {k: min(r[k] for r in rs) for k in ("wall_s_per_epoch", "cpu_s_per_epoch")}
            for n, rs in runs.items()}  # the least disturbed run of each: robust to a busy machine
    same = runs["old"][0]["losses"] == runs["new"][0]["losses"]
    pairs = [o["wall_s_per_epoch"] / n["wall_s_per_epoch"] for o, n in zip(runs["old"], runs["new"])]  # per rep
    parts = {n: {k: statistics.median(r["profiled_ms_per_step"][k] for r in rs)
                 for k in ("rng", "sparse", "other", "step")} for n, rs in runs.items()}
    old_step = 1e3 * med["old"]["wall_s_per_epoch"] / runs["old"][0]["batches_per_epoch"]
    fixed = parts["new"]["rng"] + parts["new"]["sparse"]
    res = {"scale": a.scale, "size": "quick", "batches_timed": a.batches, "reps": a.reps, "threads": a.threads,
           "old_commit": commit(a.old), "new_commit": commit(a.new), "loadavg_before": load_before,
           "loadavg_after": [round(x, 2) for x in os.getloadavg()], "cpu_count": os.cpu_count(),
           "median": med, "ratio_wall": med["old"]["wall_s_per_epoch"] / med["new"]["wall_s_per_epoch"],
           "ratio_cpu": med["old"]["cpu_s_per_epoch"] / med["new"]["cpu_s_per_epoch"],
           "best": best, "ratio_wall_best": best["old"]["wall_s_per_epoch"] / best["new"]["wall_s_per_epoch"],
           "ratio_wall_pairs": pairs, "ratio_wall_pairs_median": statistics.median(pairs),
           "losses_identical": same,
           "max_rel_loss_diff": max(abs(x - y) / abs(x) for x, y in zip(runs["old"][0]["losses"],
                                                                      runs["new"][0]["losses"])),
           "profiled_ms_per_step": parts, "old_ms_per_step": old_step, "fixed_ms_per_step": fixed,
           "ceiling": old_step / fixed, "goal": 3.0,
           "runs": {n: [{k: v for k, v in r.items() if k != "losses"} for r in rs] for n, rs in runs.items()}}
    write_json(a.out, res)
    print(f"{a.scale} quick epoch: old {med['old']['wall_s_per_epoch']:.1f} s, "
          f"new {med['new']['wall_s_per_epoch']:.1f} s "
          f"wall (x{res['ratio_wall']:.2f}; best runs x{res['ratio_wall_best']:.2f}; median of the per-rep ratios "
          f"x{res['ratio_wall_pairs_median']:.2f}, range x{min(pairs):.2f}-x{max(pairs):.2f}); "
          f"CPU x{res['ratio_cpu']:.2f}; "
          f"load {load_before} -> {res['loadavg_after']}; "
          f"losses identical: {same} (max rel diff {res['max_rel_loss_diff']:.1e}); wrote {a.out}")
    for n, q in parts.items():
        print(f"{n} step under the profiler: {q['step']:.0f} ms = RNG {q['rng']:.0f} + sparse products "
              f"{q['sparse']:.0f} + other {q['other']:.0f}")
    print(f"ceiling: old step {old_step:.0f} ms / new RNG + sparse {fixed:.0f} ms = x{res['ceiling']:.2f} "
          f"(goal x{res['goal']:.0f}): the most a change keeping those operators could reach")
    return 0


if __name__ == "__main__":
    sys.exit(main())
