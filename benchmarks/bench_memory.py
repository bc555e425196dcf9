"""The memory policy (:mod:`r2mr.core.memory`) side by side: the same training steps and evaluation with the
system's malloc defaults (``R2MR_MALLOC=system``) and with freed memory kept in the heap (``keep``).

Usage: python benchmarks/bench_memory.py [--data-dir DIR] [--cases lightgcn:baby,lightgcn:tiktok] [--batches 20]
       [--repeats 3] [--out results/benchmarks/memory_cpu.json]

Each measurement is a fresh worker process (malloc's policy is process-wide) that builds the model, trains five
warm-up batches, then reports process CPU seconds and page faults of ``--batches`` training steps and of one
evaluation (valid + test) after two that are not measured (the first compiles the top-k kernel; the heap
reaches its peak in two, as in an epoch after the first); policies alternate, medians of
``--repeats`` workers are kept. One torch thread. Prints the table and the ratios system ÷ keep. Numbers of the
runs do not depend on the policy (tests/test_kernels.py trains whole models under it). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from r2mr.core.atomic_io import run_metadata, write_json  # noqa: E402
from r2mr.core.memory import MALLOC_ENV, POLICIES  # noqa: E402

CASES = "lightgcn:baby,lightgcn:sports,lightgcn:tiktok"
WARM_STEPS, WARM_EVALS = 5, 2  # not measured: as in an epoch after the first


def measured(fn) -> tuple[float, int]:
    """(process CPU seconds, minor page faults) of ``fn()``."""
    f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.process_time()
    fn()
    return time.process_time() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0


def worker(model: str, dataset: str, data_dir: str | None, batches: int) -> dict:
    """Steps and an evaluation of ``model`` on ``dataset`` in this process (see the module)."""
    import torch

    from benchmarks.bench_kernels import step
    from r2mr.core.paths import data_root
    from r2mr.data import load_dataset
    from r2mr.runs.experiment import make_configs
    from r2mr.training.runtime import seed_everything
    from r2mr.training.trainer import Trainer

    torch.set_num_threads(1)
    cls, mcfg, tcfg = make_configs(model, dataset=dataset, max_epochs=1)
    ds = load_dataset(dataset, data_root(data_dir), features=cls.needs_features)
    seed_everything(tcfg.seed)
    trainer = Trainer(cls(ds, mcfg), ds, tcfg, "cpu", None, progress=False)
    trainer.model.train()
    it = iter(trainer.sampler)
    pool = [next(it) for _ in range(batches + WARM_STEPS)]
    for batch in pool[:WARM_STEPS]:
        step(trainer, batch)
    train_s, train_faults = measured(lambda: [step(trainer, b) for b in pool[WARM_STEPS:]])
    for _ in range(WARM_EVALS):  # the first compiles the top-k kernel; the heap reaches its peak in two
        trainer.evaluate()
    eval_s, eval_faults = measured(trainer.evaluate)
    return {"step_s": train_s / batches, "step_faults": train_faults / batches, "eval_s": eval_s,
            "eval_faults": eval_faults, "batches_per_epoch": len(trainer.sampler)}


def spawn(policy: str, model: str, dataset: str, args: argparse.Namespace) -> dict:
    env = {**os.environ, MALLOC_ENV: policy, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    cmd = [sys.executable, __file__, "--worker", f"{model}:{dataset}", "--batches", str(args.batches)]
    cmd += ["--data-dir", args.data_dir] if args.data_dir else []
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir")
    p.add_argument("--cases", default=CASES, help="model:dataset pairs, comma-separated")
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(ROOT / "results" / "benchmarks" / "memory_cpu.json"))
    args = p.parse_args()
    if args.worker:
        model, dataset = args.worker.split(":")
        print(json.dumps(worker(model, dataset, args.data_dir, args.batches)))
        return 0
    rows, load = [], [os.getloadavg()[0]]
    print(f"{'model':<9}{'data':<8}{'policy':<8}{'step ms':>9}{'faults':>8}{'epoch s':>9}{'eval s':>8}{'faults':>8}")
    for case in args.cases.split(","):
        model, dataset = case.split(":")
        got: dict[str, list[dict]] = {name: [] for name in POLICIES}
        for _ in range(args.repeats):
            for name in ("system", "keep"):
                got[name].append(spawn(name, model, dataset, args))
        for name in ("system", "keep"):
            med = {k: statistics.median(r[k] for r in got[name]) for k in got[name][0]}
            rows.append({"model": model, "dataset": dataset, "policy": name, "repeats": args.repeats, **med,
                         "epoch_s": med["step_s"] * med["batches_per_epoch"]})
            r = rows[-1]
            print(f"{model:<9}{dataset:<8}{name:<8}{r['step_s'] * 1e3:>9.1f}{r['step_faults']:>8.0f}"
                  f"{r['epoch_s']:>9.2f}{r['eval_s']:>8.2f}{r['eval_faults']:>8.0f}", flush=True)
        old, new = rows[-2], rows[-1]
        print(f"  system / keep: training step x{old['step_s'] / new['step_s']:.2f}, "
              f"evaluation x{old['eval_s'] / new['eval_s']:.2f}", flush=True)
        load.append(os.getloadavg()[0])
    write_json(args.out, {"rows": rows, "loadavg": load, "batches": args.batches, **run_metadata("cpu")})
    print(f"wrote {args.out} (load average {min(load):.1f}-{max(load):.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
