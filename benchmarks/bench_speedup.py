"""R2MR's quick-size training epoch, an older checkout against this one, side by side in one run.

Each repetition trains ``--batches`` batches of R2MR (quick size, r2mr.report.QUICK; random features of
the real widths) on the chosen scale, once with the old checkout's ``r2mr`` (``--old``, e.g. a
``git worktree`` of b44c64a) and once with this one, in fresh processes, alternating, and extrapolates
to a whole epoch (training only: rewrite rounds and evaluation excluded). It reports the median over
repetitions of wall-clock and process CPU seconds per epoch, the ratios old/new (also of each side's
fastest run, the least disturbed on a busy machine), and the machine's load
average before and after (a shared machine inflates wall-clock; CPU time is less affected). Writes
``results/benchmarks/speedup_cpu.json``. Example::

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
from graphs import load_scale, r2mr_overrides
from r2mr.experiment import make_configs
from r2mr.train import Trainer, seed_everything
scale, data_dir, batches = sys.argv[3], sys.argv[4], int(sys.argv[5])
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
print(json.dumps({"wall_s_per_epoch": wall / batches * n, "cpu_s_per_epoch": cpu / batches * n,
                  "batches_per_epoch": n, "threads": torch.get_num_threads(), "losses": losses}))
"""


def measure(repo: str, scale: str, data_dir: str, batches: int, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONPATH": repo}
    out = subprocess.run([sys.executable, "-c", WORKER, repo, str(HERE), scale, data_dir or "", str(batches)],
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
    p.add_argument("--out", default=str(HERE.parent / "results" / "benchmarks" / "speedup_cpu.json"))
    a = p.parse_args(argv)
    sys.path.insert(0, str(HERE.parent))
    from r2mr.results import write_json

    load_before = [round(x, 2) for x in os.getloadavg()]
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    for rep in range(a.reps):
        for name in ("old", "new"):
            r = measure(getattr(a, name), a.scale, a.data_dir, a.batches, a.threads)
            runs[name].append(r)
            print(f"rep {rep} {name}: {r['wall_s_per_epoch']:.1f} s/epoch wall, {r['cpu_s_per_epoch']:.1f} s CPU "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
    med = {n: {k: statistics.median(r[k] for r in rs) for k in ("wall_s_per_epoch", "cpu_s_per_epoch")}
           for n, rs in runs.items()}
    best = {n: {k: min(r[k] for r in rs) for k in ("wall_s_per_epoch", "cpu_s_per_epoch")}
            for n, rs in runs.items()}  # the least disturbed run of each: robust to a busy machine
    same = runs["old"][0]["losses"] == runs["new"][0]["losses"]
    res = {"scale": a.scale, "size": "quick", "batches_timed": a.batches, "reps": a.reps, "threads": a.threads,
           "old_commit": commit(a.old), "new_commit": commit(a.new), "loadavg_before": load_before,
           "loadavg_after": [round(x, 2) for x in os.getloadavg()], "cpu_count": os.cpu_count(),
           "median": med, "ratio_wall": med["old"]["wall_s_per_epoch"] / med["new"]["wall_s_per_epoch"],
           "ratio_cpu": med["old"]["cpu_s_per_epoch"] / med["new"]["cpu_s_per_epoch"],
           "best": best, "ratio_wall_best": best["old"]["wall_s_per_epoch"] / best["new"]["wall_s_per_epoch"],
           "losses_identical": same,
           "max_rel_loss_diff": max(abs(x - y) / abs(x) for x, y in zip(runs["old"][0]["losses"],
                                                                      runs["new"][0]["losses"])),
           "runs": {n: [{k: v for k, v in r.items() if k != "losses"} for r in rs] for n, rs in runs.items()}}
    write_json(a.out, res)
    print(f"{a.scale} quick epoch: old {med['old']['wall_s_per_epoch']:.1f} s, "
          f"new {med['new']['wall_s_per_epoch']:.1f} s "
          f"wall (x{res['ratio_wall']:.2f}; best runs x{res['ratio_wall_best']:.2f}); CPU x{res['ratio_cpu']:.2f}; "
          f"load {load_before} -> {res['loadavg_after']}; "
          f"losses identical: {same} (max rel diff {res['max_rel_loss_diff']:.1e}); wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
