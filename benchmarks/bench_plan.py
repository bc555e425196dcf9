"""Wall time of one run plan under each executor: sequential (in process), ``--jobs 2`` (worker processes) and
Ray on this machine (a local instance), and the ratios. A benchmark, not a test: numbers depend on the
machine and on what else runs on it.

Usage:
    python benchmarks/bench_plan.py                       # CPU: 12 small runs on a generated synthetic set
    python benchmarks/bench_plan.py --gpu --data-dir DIR  # GPU: 12 TikTok baseline runs, sequential vs Ray
                                                          # with a sixth of the GPU per run

CPU mode: LightGCN and VBPR x 6 seeds, 8 epochs each (no early stopping needed), on the embedded synthetic
set's generator (written to a temporary folder). Sequential runs with every core as torch threads (the
default), and again with one thread; ``--jobs 2`` with cores/2 threads per worker; Ray with one CPU (and
thread) per task. The load average before and after each mode is recorded (a shared machine). Each executor fills
its own fresh store, so nothing is read back. Prints a table; writes ``results/benchmarks/bench_plan.json``
(``bench_plan_gpu.json`` with --gpu) atomically.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from r2mr.core import paths  # noqa: E402
from r2mr.core.atomic_io import run_metadata, write_json  # noqa: E402
from r2mr.runs import executors, experiment, plan

GPU_MODELS = "bpr,lightgcn,vbpr,lattice,freedom,bm3"  # x 2 seeds = 12 TikTok baseline runs


def build(models: str, dataset: str, seeds: list[int], epochs: int) -> list[plan.PlannedRun]:
    names = plan.parse_list(models)
    return plan.build_plan([dataset], seeds, "full", epochs, notebooks=["03_main_results"], models=models,
                           registered=names)


def timed(mode: str, planned: list[plan.PlannedRun], data_dir: str, device: str, **kw: object) -> dict:
    """Execute ``planned`` into a fresh store with one executor; wall seconds and the runs' test metrics."""
    store = Path(tempfile.mkdtemp(prefix=f"bench-plan-{mode}-"))
    os.environ[paths.RUNS_ENV] = str(store)
    experiment.RUNS = paths.RUNS = store  # the in-process executor's store too
    t0 = time.perf_counter()
    out = executors.execute_plan(planned, data_dir=data_dir, device=device, stream=io.StringIO(), **kw)
    wall = time.perf_counter() - t0
    bad = [o.status for o in out if o.status != "trained"]
    if bad:
        raise SystemExit(f"{mode}: {len(bad)} runs did not train: {bad[0]}")
    return {"mode": mode, "runs": len(out), "wall_seconds": round(wall, 2),
            "metrics": [o.result["test"]["recall@20"] for o in out]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpu", action="store_true", help="12 TikTok baseline runs on CUDA: sequential vs Ray")
    ap.add_argument("--data-dir", help="data root holding tiktok/ (--gpu)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs per run (default 8 on CPU, 20 with --gpu)")
    ap.add_argument("--out", help="JSON path (default results/benchmarks/bench_plan[_gpu].json)")
    args = ap.parse_args()
    import torch

    cores = os.cpu_count() or 1
    if args.gpu:
        if not torch.cuda.is_available():
            raise SystemExit("error: --gpu needs a CUDA device; fix: run it on a GPU machine")
        data_dir, device = str(paths.data_root(args.data_dir)), "cuda"
        planned = build(GPU_MODELS, "tiktok", [999, 1], args.epochs or 20)
        modes = [("sequential", {}), ("ray, 1/6 GPU per run", dict(ray="local", gpus_per_run=1 / 6))]
    else:
        from r2mr.data.synth import write

        data_dir, device = tempfile.mkdtemp(prefix="bench-plan-data-"), "cpu"
        write(Path(data_dir) / "synthetic")
        planned = build("lightgcn,vbpr", "synthetic", [999, 1, 2, 3, 4, 5], args.epochs or 8)
        modes = [("sequential", {}), ("sequential, 1 thread", {}), ("jobs 2", dict(jobs=2)),
                 ("ray local", dict(ray="local"))]
    rows = []
    for mode, kw in modes:
        torch.set_num_threads(1 if mode.endswith("1 thread") else cores)  # sequential: every core as threads
        load = os.getloadavg()[0]
        rows.append(timed(mode, planned, data_dir, device, **kw))
        rows[-1]["load average before / after"] = [round(load, 2), round(os.getloadavg()[0], 2)]
        print(f"{mode:<22} {rows[-1]['runs']} runs  {rows[-1]['wall_seconds']:8.1f} s  (load average "
              f"{rows[-1]['load average before / after'][0]} -> {rows[-1]['load average before / after'][1]})",
              flush=True)
    base, reference = rows[0]["wall_seconds"], rows[0]["metrics"]
    for r in rows:
        r["speed-up vs sequential"] = round(base / r["wall_seconds"], 2)
    for r in rows:
        r["same recall@20 as sequential"] = r.pop("metrics") == reference
    print("\n".join(f"{r['mode']:<22} speed-up {r['speed-up vs sequential']:.2f}x" for r in rows))
    out = Path(args.out) if args.out else paths.RESULTS / "benchmarks" / f"bench_plan{'_gpu' if args.gpu else ''}.json"
    write_json(out, {"meta": {**run_metadata(torch.device(device)), "cores": cores, "epochs_per_run":
                              planned[0].epochs, "plan": [f"{r.spec.label} seed {r.seed}" for r in planned],
                              "note": "shared machine: other jobs ran at the same time; wall times are noisy"},
                     "rows": rows})
    print(f"wrote {paths.display_path(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
