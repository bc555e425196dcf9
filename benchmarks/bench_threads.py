"""The thread policy on a loaded machine: the same training steps alone and beside a competing process of this
benchmark's own, with the old policy (every core as a torch thread, the OpenMP runtime's default wait policy)
and the new one (:mod:`r2mr.core.threads`: one thread per run, ``OMP_WAIT_POLICY=PASSIVE``), side by side.

Usage: python benchmarks/bench_threads.py [--data-dir DIR] [--dataset tiktok] [--model lightgcn] [--batches 20]
       [--competitors 1] [--repeats 3] [--out results/benchmarks/threads_cpu.json]

Each measurement is a fresh worker process (the wait policy is read once, when torch loads) that trains the
model's first ``--batches`` mini-batches after two warm-up batches and reports process CPU seconds and wall
seconds per batch; the median of ``--repeats`` workers is kept. The competing processes spin in pure Python
(one per ``--competitors``) for the loaded rows only, and are ended by their process ids. Prints the table and
the ratios (loaded ÷ alone for each policy; old ÷ new when loaded), of wall and of CPU seconds. The goal of the
policy: loaded no more than 1.5x the time alone. A benchmark, not a test: the machine may carry other work too
(its load average is recorded); where the load exceeds the cores, the wall ratio includes the waiting for a core
that any process would see, and the CPU ratio is the policy's own cost.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from r2mr.core.atomic_io import run_metadata, write_json  # noqa: E402
from r2mr.core.threads import WAIT_POLICY_ENV, cores_available, worker_env  # noqa: E402

SPIN = "import time\nwhile True:\n    time.perf_counter()\n"


def worker(args: argparse.Namespace) -> None:
    """Train ``args.batches`` batches in this process; print one JSON line of seconds per batch."""
    import torch

    from r2mr.core.paths import data_root
    from r2mr.data import load_dataset
    from r2mr.runs.experiment import make_configs
    from r2mr.training.runtime import seed_everything
    from r2mr.training.trainer import Trainer

    cls, mcfg, tcfg = make_configs(args.model, dataset=args.dataset, max_epochs=1)
    ds = load_dataset(args.dataset, data_root(args.data_dir), features=cls.needs_features)
    seed_everything(tcfg.seed)
    trainer = Trainer(cls(ds, mcfg), ds, tcfg, "cpu", None, progress=False)
    trainer.model.train()
    trainer.model.on_epoch_start(0)
    batches = iter(trainer.sampler)
    warm, wall, cpu = 2, 0.0, 0.0
    for b in range(warm + args.batches):
        batch = next(batches)
        t0, c0 = time.perf_counter(), time.process_time()
        loss = trainer.model.loss(batch)
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.optimizer.step()
        if b >= warm:
            wall, cpu = wall + time.perf_counter() - t0, cpu + time.process_time() - c0
    print(json.dumps({"threads": torch.get_num_threads(), "wall_ms": 1000 * wall / args.batches,
                      "cpu_ms": 1000 * cpu / args.batches}))


def measure(args: argparse.Namespace, policy: str, loaded: bool) -> dict:
    """Median per-batch wall and CPU milliseconds of ``args.repeats`` fresh workers under ``policy``."""
    env = {k: v for k, v in os.environ.items() if k not in (WAIT_POLICY_ENV, "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(worker_env(1) if policy == "new" else
               {"OMP_NUM_THREADS": str(cores_available()), "MKL_NUM_THREADS": str(cores_available())})
    cmd = [sys.executable, __file__, "--worker", "--dataset", args.dataset, "--model", args.model,
           "--batches", str(args.batches)] + (["--data-dir", args.data_dir] if args.data_dir else [])
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(args.competitors if loaded else 0)]
    try:
        time.sleep(0.5 if spinners else 0.0)
        runs = [json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout)
                for _ in range(args.repeats)]
    finally:
        for p in spinners:  # only the processes started here, by id
            p.kill()
            p.wait()
    return {"policy": policy, "loaded": loaded, "threads": runs[0]["threads"],
            "wall_ms": statistics.median(r["wall_ms"] for r in runs),
            "cpu_ms": statistics.median(r["cpu_ms"] for r in runs), "loadavg": os.getloadavg()[0]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir")
    p.add_argument("--dataset", default="tiktok")
    p.add_argument("--model", default="lightgcn")
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--competitors", type=int, default=1, help="spinning processes for the loaded rows")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", default=str(ROOT / "results" / "benchmarks" / "threads_cpu.json"))
    args = p.parse_args()
    if args.worker:
        worker(args)
        return 0
    rows = [measure(args, policy, loaded) for loaded in (False, True) for policy in ("old", "new")]
    print(f"{args.model} on {args.dataset}, {args.batches} batches, {cores_available()} cores, "
          f"{args.competitors} competing process(es) when loaded; per batch, median of {args.repeats}")
    print(f"{'policy':<8}{'machine':<9}{'threads':>8}{'wall ms':>9}{'cpu ms':>9}{'load':>6}")
    for r in rows:
        print(f"{r['policy']:<8}{'loaded' if r['loaded'] else 'alone':<9}{r['threads']:>8}{r['wall_ms']:>9.1f}"
              f"{r['cpu_ms']:>9.1f}{r['loadavg']:>6.1f}")
    (old_q, new_q, old_l, new_l) = rows
    ratios = {"old loaded / alone (wall)": old_l["wall_ms"] / old_q["wall_ms"],
              "new loaded / alone (wall)": new_l["wall_ms"] / new_q["wall_ms"],
              "old loaded / alone (cpu)": old_l["cpu_ms"] / old_q["cpu_ms"],
              "new loaded / alone (cpu)": new_l["cpu_ms"] / new_q["cpu_ms"],
              "loaded: old / new (wall)": old_l["wall_ms"] / new_l["wall_ms"],
              "loaded: old / new (cpu)": old_l["cpu_ms"] / new_l["cpu_ms"]}
    for name, value in ratios.items():
        print(f"{name:<28} x{value:.2f}")
    write_json(args.out, {"model": args.model, "dataset": args.dataset, "batches": args.batches,
                          "competitors": args.competitors, "cores": cores_available(), "rows": rows,
                          "ratios": ratios, "goal": "new loaded / alone <= 1.5",
                          **{k: v for k, v in run_metadata("cpu").items() if k != "threads"}})  # threads: per row
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
