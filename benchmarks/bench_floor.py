"""What bounds the CPU kernels: each against the same work with the memory traffic taken away, side by side in
one process (one thread).

Usage: python benchmarks/bench_floor.py [--data-dir DIR] [--datasets baby,sports,tiktok] [--repeats 30]
       [--out results/benchmarks/floor_cpu.json]

* Sparse product ``A x`` (d = 64) on each data set's normalised graph: the package's kernel
  (:func:`r2mr.data.kernels.csr_mm`) on the real graph; the same kernel on the same rows with every column index
  folded into the first 256 rows of ``x`` (the same entries, instructions and prefetches, but every dense row
  read from the first-level cache); ``torch.sparse.mm``; and the cache-bandwidth bound ``bench_kernels.py``
  uses (the product's bytes at this machine's cache-read rate). real ÷ folded is what the misses cost,
  folded ÷ bound what the instructions cost.
* Score product of evaluation (4,096 users x the data set's items, inner width 64, item-major as the package
  computes it): GFLOP/s against this machine's rate on a large square product (``machine_rates.py``).

Under the package's memory policy (:mod:`r2mr.core.memory`), as in training.

Medians of ``--repeats`` calls, the real, folded and torch products in turn. Writes JSON atomically;
``speed_doc.py`` renders it. A benchmark, not a test: the numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.machine_rates import cache_gbs, gemm_gflops  # noqa: E402
from r2mr.core import memory  # noqa: E402
from r2mr.core.atomic_io import run_metadata, write_json  # noqa: E402
from r2mr.core.paths import data_root  # noqa: E402
from r2mr.data import kernels, load_dataset  # noqa: E402
from r2mr.data.graph import sym_adj, to_torch  # noqa: E402

WIDTH, EVAL_USERS, FOLD = 64, 4096, 256


def medians(fns: dict[str, object], repeats: int) -> dict[str, float]:
    """Median wall seconds of each callable, called in turn ``repeats`` times (after one warm-up each)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # type: ignore[operator]
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()  # type: ignore[operator]
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(v) for name, v in times.items()}


def folded(a: torch.Tensor) -> torch.Tensor:
    """``a`` (CSR) with its column indices taken mod ``FOLD``: the same rows and entries, L1-resident columns."""
    return torch.sparse_csr_tensor(a.crow_indices(), a.col_indices() % FOLD, a.values(), a.shape)


def product_row(name: str, root: str, repeats: int, gbs: float) -> dict:
    """Seconds of one sparse product on data set ``name``: real, folded, torch; and its cache-bandwidth bound."""
    ds = load_dataset(name, root, features=False)
    a = to_torch(sym_adj(ds.train.users, ds.train.items, ds.n_users, ds.n_items))
    x, fa, nnz = torch.randn(a.shape[0], WIDTH), folded(a), a.values().numel()
    t = medians({"real": lambda: kernels.csr_mm(a, x), "folded": lambda: kernels.csr_mm(fa, x),
                 "torch": lambda: torch.sparse.mm(a, x)}, repeats)
    bound = (nnz * (12 + 4 * WIDTH) + a.shape[0] * 4 * WIDTH) / (gbs * 1e9)
    return {"dataset": name, "rows": a.shape[0], "nnz": nnz, "product_s": t["real"], "folded_s": t["folded"],
            "torch_s": t["torch"], "bound_s": bound, "n_items": ds.n_items}


def score_rate(n_items: int, repeats: int) -> float:
    """GFLOP/s of evaluation's score product for ``EVAL_USERS`` users and ``n_items`` items (width 64)."""
    users, items = torch.randn(EVAL_USERS, WIDTH), torch.randn(n_items, WIDTH)
    seconds = medians({"scores": lambda: kernels.dot_scores(users, items)}, repeats)["scores"]
    return 2 * EVAL_USERS * n_items * WIDTH / seconds / 1e9


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default=None, help="folder holding baby/, sports/, tiktok/ (default: the data root)")
    p.add_argument("--datasets", default="baby,sports,tiktok")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--out", default=str(ROOT / "results" / "benchmarks" / "floor_cpu.json"))
    args = p.parse_args()
    torch.set_num_threads(1)
    memory.keep_freed_memory()  # as a training process (a CPU trainer applies it): no page faults per call
    root = str(args.data_dir or data_root())
    gbs, gflops = cache_gbs(), gemm_gflops()
    rows = []
    for name in args.datasets.split(","):
        row = product_row(name, root, args.repeats, gbs)
        row["score_gflops"] = score_rate(row["n_items"], args.repeats)
        rows.append(row)
        print(f"{name}: product {row['product_s'] * 1e3:.2f} ms, L1-resident columns {row['folded_s'] * 1e3:.2f}, "
              f"torch {row['torch_s'] * 1e3:.2f}, bound {row['bound_s'] * 1e3:.2f} "
              f"(real ÷ folded ×{row['product_s'] / row['folded_s']:.2f}, folded ÷ bound "
              f"×{row['folded_s'] / row['bound_s']:.2f}); scores {row['score_gflops']:.1f} GFLOP/s of {gflops:.1f}",
              flush=True)
    doc = {"rows": rows, "cache_gbs": gbs, "gemm_gflops": gflops, "width": WIDTH, "fold": FOLD,
           "eval_users": EVAL_USERS, "repeats": args.repeats, "loadavg": os.getloadavg()[0],
           **run_metadata("cpu")}
    write_json(args.out, doc)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
