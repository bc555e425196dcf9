"""Seconds per training epoch and per evaluation (valid + test) of any registered model on real data sets.

Usage: python benchmarks/bench_train.py --data-dir DIR [--datasets baby,sports] [--models bpr,lightgcn]
       [--device cpu] [--epochs 3] [--out results/benchmarks/train_<device>.json]

Trains each model for a few epochs with its default configuration (no early stopping) and reports the
median training-only seconds per epoch (per-epoch hooks such as graph re-sampling included), the median
seconds of one evaluation (both splits) and the model's build time (kNN graphs are built, not read from a
cache), and each model's epoch time as a multiple of LightGCN's on the same data (when LightGCN is in the
list), with the machine's load average. R2MR's rewrite rounds are not part of an epoch here: use
bench_r2mr.py for R2MR. Prints a table; writes JSON atomically. A benchmark, not a test: numbers depend on
the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from r2mr.core.atomic_io import device_name, run_metadata, write_json
from r2mr.core.paths import RESULTS, data_root
from r2mr.data import load_dataset
from r2mr.runs.experiment import make_configs
from r2mr.training.runtime import resolve_device, seed_everything
from r2mr.training.trainer import Trainer


def bench(model: str, dataset: str, root: str, device: torch.device, epochs: int) -> dict:
    cls, mcfg, tcfg = make_configs(model, dataset=dataset, max_epochs=epochs)
    ds = load_dataset(dataset, root, features=cls.needs_features)
    seed_everything(tcfg.seed)
    t0 = time.perf_counter()
    trainer = Trainer(cls(ds, mcfg), ds, tcfg, device, None, progress=False)
    build = time.perf_counter() - t0
    hist = [trainer.train_epoch(e)[1] for e in range(epochs)]
    evals = [trainer.evaluate()[2] for _ in range(2)]
    return {"model": model, "dataset": dataset, "n_users": ds.n_users, "n_items": ds.n_items,
            "train_edges": len(ds.train), "batches": len(trainer.sampler), "build_seconds": build,
            "seconds_per_epoch": statistics.median(hist), "seconds_per_eval": statistics.median(evals),
            "peak_cuda_gib": (torch.cuda.max_memory_allocated(device) / 2**30) if device.type == "cuda" else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir")
    p.add_argument("--datasets", default="baby,sports")
    p.add_argument("--models", default="bpr,lightgcn")
    p.add_argument("--device", default="auto")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--out")
    args = p.parse_args()
    device = resolve_device(args.device)
    rows = [bench(m, d, data_root(args.data_dir), device, args.epochs)
            for d in args.datasets.split(",") for m in args.models.split(",")]
    print(f"device: {device_name(device)}")
    print(f"{'model':<10}{'dataset':<10}{'users':>8}{'items':>8}{'edges':>9}{'s/epoch':>9}{'s/eval':>8}")
    for r in rows:
        print(f"{r['model']:<10}{r['dataset']:<10}{r['n_users']:>8}{r['n_items']:>8}{r['train_edges']:>9}"
              f"{r['seconds_per_epoch']:>9.2f}{r['seconds_per_eval']:>8.2f}")
    for r in rows:  # ratio to LightGCN on the same data set, where LightGCN was run
        ref = [x for x in rows if x["model"] == "lightgcn" and x["dataset"] == r["dataset"]]
        r["ratio_to_lightgcn"] = r["seconds_per_epoch"] / ref[0]["seconds_per_epoch"] if ref else None
        if ref:
            print(f"{r['model']:<10}{r['dataset']:<10} x{r['ratio_to_lightgcn']:.2f} LightGCN's epoch")
    out = args.out or RESULTS / "benchmarks" / f"train_{device.type}.json"
    write_json(out, {"rows": rows, **run_metadata(device), "epochs": args.epochs,
                     "loadavg": [round(x, 2) for x in os.getloadavg()]})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
