"""Old vs new CPU path, side by side in one process, per model and data set: seconds of a training epoch and of
one evaluation (valid + test), the machine's bound for each, and measured ÷ bound.

Usage: python benchmarks/bench_kernels.py [--data-dir DIR] [--cases lightgcn:baby,...] [--batches 12]
       [--rounds 3] [--competitors 0] [--reference-rates] [--out results/benchmarks/kernels_cpu_quiet.json]

* old: today's products (``torch.sparse.mm``, the ``torch`` backend of :mod:`r2mr.data.kernels`), the layer mean by
  stacking the layers, ``users @ items.T``, ``torch.topk``, ``torch.optim.Adam``'s step and ``F.dropout``; new: the
  package as it is (numba kernels, running layer sums, the item-major score product, the heap top-k, the compiled
  Adam and AdamW steps of :mod:`r2mr.training.adam` and the compiled dropout mask of :mod:`r2mr.models.dropout`,
  which the ``torch`` backend turns off; R2MR's batch-row products of :mod:`r2mr.data.row_slice`). Both run on
  the same model, alternating (old, new) ``--rounds`` times; medians are kept, so a drift in the machine's load
  hits both alike.
* Training: process CPU seconds of the epoch's first step (LATTICE learns its graph there) plus ``--batches``
  later steps scaled to the epoch's batches (after one warm-up step); per-epoch hooks are not included.
  Evaluation: CPU seconds of one ``Trainer.evaluate``. One torch thread.
* Bound: the step's (or the evaluation's) work at this machine's measured rates: every sparse product's bytes
  (nnz x (12 + 4 d) + rows x 4 d; R2MR's batch-row products as the work they do since 0.4.7: the distinct rows'
  entries forward, each slice entry reading and writing an output row backward) at the cache bandwidth, dense
  products' FLOPs (torch's FlopCounterMode) at the dense rate, and the Adam update's bytes (7 x 4 B per
  parameter) at the cache bandwidth.
  A floor, not a prediction. Both rates are this machine's (``benchmarks/machine_rates.py``), measured before any
  competing process starts and again after they end, the faster of the two kept (the rates of this virtual
  machine drift by up to 2x over minutes); ``--reference-rates`` uses those of the AMD EPYC the benchmark was
  written on (``REFERENCE_RATES``) instead.
* ``--competitors N`` starts N spinning processes of this benchmark's own for the whole run (a loaded
  machine); they are ended by their process ids.

Writes JSON atomically (``results/benchmarks/kernels_cpu_quiet.json`` by default); ``benchmarks/speed_doc.py``
turns the files into docs/speed.md. A benchmark, not a test: the numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from benchmarks.machine_rates import cache_gbs, gemm_gflops  # noqa: E402
from r2mr.core.atomic_io import run_metadata, write_json  # noqa: E402
from r2mr.core.paths import data_root  # noqa: E402
from r2mr.data import kernels, load_dataset, propagation, row_slice  # noqa: E402
from r2mr.models import bm3, freedom, lattice, lightgcn, mgcn  # noqa: E402
from r2mr.runs.experiment import _wants_cache_dir, make_configs  # noqa: E402
from r2mr.runs.plan_specs import quick_overrides  # noqa: E402
from r2mr.training.runtime import seed_everything  # noqa: E402
from r2mr.training.trainer import Trainer  # noqa: E402

REFERENCE_RATES = (96.0, 82.0)  # GB/s of cache-resident reads, GFLOP/s of dense float32 products (1 thread), as
# measured on the processor this benchmark was written on (an earlier AMD EPYC; the first committed files used it)
CASES = ("lightgcn:baby,lightgcn:sports,lightgcn:tiktok,bpr:sports,bpr:tiktok,vbpr:tiktok,lattice:tiktok,"
         "freedom:tiktok,bm3:tiktok,mgcn:tiktok,r2mr:tiktok,r2mr@full:tiktok")
SPIN = "import time\nwhile True:\n    time.perf_counter()\n"
PROPAGATE_USERS = (lightgcn, lattice, freedom, bm3, mgcn)
NEW_PROPAGATE, NEW_PROPAGATE_PARTS = lightgcn.propagate, lightgcn.propagate_parts


def stacked_propagate(adj: torch.Tensor, ego: torch.Tensor, n_layers: int,
                      adj_t: torch.Tensor | None = None, last_rows: torch.Tensor | None = None) -> torch.Tensor:
    """The layer mean as it was: stack the layers, then mean (every row, whatever ``last_rows`` says)."""
    from r2mr.data.graph import spmm

    layers = [ego]
    for _ in range(n_layers):
        layers.append(spmm(adj, layers[-1], adj_t))
    return torch.stack(layers).mean(0)


def stacked_propagate_parts(adj: torch.Tensor, parts: tuple[torch.Tensor, ...], n_layers: int,
                            adj_t: torch.Tensor | None = None, last_rows: torch.Tensor | None = None
                            ) -> tuple[torch.Tensor, ...]:
    """The parts' layer mean as it was: concatenate, stack-then-mean, slice."""
    return propagation.slice_parts(stacked_propagate(adj, torch.cat(list(parts)), n_layers, adj_t), parts)


@contextlib.contextmanager
def path(name: str) -> Iterator[None]:
    """``old``: torch products, stacked means, plain scores and torch.topk; ``new``: the package as it is."""
    for module in PROPAGATE_USERS:
        _set_propagation(module, old=name == "old")
    with kernels.use_backend("torch" if name == "old" else "auto"):
        yield
    for module in PROPAGATE_USERS:
        _set_propagation(module, old=False)


def _set_propagation(module: object, old: bool) -> None:
    """The module's layer mean(s) as they were (``old``) or as they are: those it imports of the two."""
    if hasattr(module, "propagate"):
        module.propagate = stacked_propagate if old else NEW_PROPAGATE  # type: ignore[attr-defined]
    if hasattr(module, "propagate_parts"):
        module.propagate_parts = stacked_propagate_parts if old else NEW_PROPAGATE_PARTS  # type: ignore[attr-defined]


@contextlib.contextmanager
def counted() -> Iterator[dict[str, float]]:
    """Count the block's sparse-product bytes and dense FLOPs into the yielded dict."""
    work = {"sparse_bytes": 0.0, "flops": 0.0}
    original, fused = kernels.csr_mm, kernels.csr_mm_add

    def product_bytes(a: torch.Tensor, x: torch.Tensor) -> float:
        return a._nnz() * (12 + 4 * x.shape[1]) + a.shape[0] * 4 * x.shape[1]

    def counting(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        work["sparse_bytes"] += product_bytes(a, x)
        return original(a, x)

    def slice_entries(a: torch.Tensor, rows: torch.Tensor) -> int:
        """Stored entries of the CSR rows ``rows`` of ``a`` (repeats counted each time)."""
        crow = a.crow_indices()
        return int((crow[rows + 1] - crow[rows]).sum())

    def counting_fused(a: torch.Tensor, x: torch.Tensor, other: torch.Tensor, *args, **kw) -> None:
        rows, live, d = kw.get("rows"), kw.get("live"), x.shape[1]
        if rows is None and live is None:
            work["sparse_bytes"] += product_bytes(a, x) + 2 * other.numel() * 4  # + the running sum read, written
        else:  # the work done: the computed rows' entries (index and value), the live rows gathered
            rows = torch.arange(a.shape[0]) if rows is None else rows
            entries = slice_entries(a, rows)
            gathered = entries if live is None else int(live[a.col_indices()].sum())  # live: every row's entries
            work["sparse_bytes"] += (12 * entries + 4 * d * gathered + 3 * 4 * d * len(rows))
        return fused(a, x, other, *args, **kw)

    def counting_rows(a: torch.Tensor, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        distinct, d = torch.unique(rows), x.shape[1]  # the distinct rows summed, then every row gathered
        work["sparse_bytes"] += slice_entries(a, distinct) * (12 + 4 * d) + (len(distinct) + 2 * len(rows)) * 4 * d
        return rows_mm(a, x, rows)

    def counting_scatter(a: torch.Tensor, rows: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        d = g.shape[1]  # each entry reads and writes its output row; the output zero-filled; g read once
        work["sparse_bytes"] += slice_entries(a, rows) * (12 + 8 * d) + (a.shape[1] + len(rows)) * 4 * d
        return rows_transpose_mm(a, rows, g)

    rows_mm, rows_transpose_mm = row_slice.rows_mm, row_slice.rows_transpose_mm
    propagation.csr_mm, propagation.csr_mm_add = counting, counting_fused
    row_slice.rows_mm, row_slice.rows_transpose_mm = counting_rows, counting_scatter
    try:
        with FlopCounterMode(display=False) as fc:
            yield work
        work["flops"] = float(fc.get_total_flops())
    finally:
        propagation.csr_mm, propagation.csr_mm_add = original, fused
        row_slice.rows_mm, row_slice.rows_transpose_mm = rows_mm, rows_transpose_mm


def step(trainer: Trainer, batch) -> None:
    loss = trainer.model.loss(batch)
    trainer.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    trainer.optimizer.step()


def cpu_seconds(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def bench_case(model: str, dataset: str, root: str, batches: int, rounds: int, scale: str = "quick") -> dict:
    """One model on one data set at ``scale`` (a run plan's: the quick preset, or ``full``), old and new
    alternating: seconds, and the work of the epoch and of one evaluation (``*_bytes`` read at cache speed,
    ``*_flops`` of dense products) for :func:`add_bounds`. The row's model is ``"<model> full"`` at full scale."""
    _, quick = quick_overrides(model, scale)
    quick.pop("max_epochs", None)
    cls, mcfg, tcfg = make_configs(model, quick, dataset=dataset, max_epochs=1)
    ds = load_dataset(dataset, root, features=cls.needs_features)
    seed_everything(tcfg.seed)
    kw = {"cache_dir": ROOT / "scratch" / "bench-cache"} if _wants_cache_dir(cls) else {}
    trainer = Trainer(cls(ds, mcfg, **kw), ds, tcfg, "cpu", None, progress=False)
    trainer.model.train()
    trainer.model.on_epoch_start(0)
    it = iter(trainer.sampler)
    pool = [next(it) for _ in range(min(batches, len(trainer.sampler) - 1) + 1)]
    batches = len(pool) - 1
    n_batches = len(trainer.sampler)
    with path("new"), counted() as first:  # the work of the epoch's first step, a later step, an evaluation
        trainer.model.on_epoch_start(0)
        step(trainer, pool[0])
    with path("new"), counted() as later:
        step(trainer, pool[1])
    n_params = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)


    with path("new"), counted() as ework:
        trainer.evaluate()
    train = {"old": [], "new": []}
    evals = {"old": [], "new": []}
    for _ in range(rounds):
        for name in ("old", "new"):
            with path(name):
                step(trainer, pool[0])  # warm-up (the first call compiles the kernels)
                trainer.model.on_epoch_start(0)  # not timed (a hook); the epoch's first step is timed apart
                t_first = cpu_seconds(lambda: step(trainer, pool[0]))
                t_later = cpu_seconds(lambda: [step(trainer, b) for b in pool[1:]]) / batches
                train[name].append(t_first + t_later * (n_batches - 1))
                evals[name].append(cpu_seconds(trainer.evaluate))
    label = model if scale == "quick" else f"{model} {scale}"
    row = {"model": label, "dataset": dataset, "n_users": ds.n_users, "n_items": ds.n_items,
           "train_edges": len(ds.train), "batches": n_batches, "timed_batches": batches, "rounds": rounds,
           "train_bytes": first["sparse_bytes"] + later["sparse_bytes"] * (n_batches - 1) + 28 * n_params * n_batches,
           "train_flops": first["flops"] + later["flops"] * (n_batches - 1),
           "eval_bytes": ework["sparse_bytes"], "eval_flops": ework["flops"]}
    for name in ("old", "new"):
        row[f"train_{name}_s"] = statistics.median(train[name])
        row[f"eval_{name}_s"] = statistics.median(evals[name])
    return row


def add_bounds(rows: list[dict], rates: tuple[float, float]) -> None:
    """Each row's ``train_bound_s`` and ``eval_bound_s``: its work at ``rates`` (cache GB/s, dense GFLOP/s)."""
    for r in rows:
        for part in ("train", "eval"):
            r[f"{part}_bound_s"] = r[f"{part}_bytes"] / (rates[0] * 1e9) + r[f"{part}_flops"] / (rates[1] * 1e9)


def measured_rates() -> tuple[float, float]:
    """(cache GB/s, dense GFLOP/s) of this machine now (benchmarks/machine_rates.py)."""
    return cache_gbs(), gemm_gflops()


def print_rows(rows: list[dict]) -> None:
    print(f"{'model':<10}{'data':<8}| {'train old':>9}{'new':>7}{'x':>6}{'bound':>7}{'new/bd':>7} | "
          f"{'eval old':>8}{'new':>7}{'x':>6}{'bound':>7}{'new/bd':>7}")
    for r in rows:
        print(f"{r['model']:<10}{r['dataset']:<8}| {r['train_old_s']:>9.2f}{r['train_new_s']:>7.2f}"
              f"{r['train_old_s'] / r['train_new_s']:>6.2f}{r['train_bound_s']:>7.2f}"
              f"{r['train_new_s'] / r['train_bound_s']:>7.1f} | {r['eval_old_s']:>8.2f}{r['eval_new_s']:>7.2f}"
              f"{r['eval_old_s'] / r['eval_new_s']:>6.2f}{r['eval_bound_s']:>7.2f}"
              f"{r['eval_new_s'] / r['eval_bound_s']:>7.1f}", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir")
    p.add_argument("--cases", default=CASES,
                   help="model:dataset pairs, comma-separated; model@full:dataset for a model at full size")
    p.add_argument("--batches", type=int, default=12)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--competitors", type=int, default=0, help="spinning processes for a loaded machine")
    p.add_argument("--reference-rates", action="store_true",
                   help="bounds at the rates of the processor this was written on, not this machine's")
    p.add_argument("--out")
    args = p.parse_args()
    torch.set_num_threads(1)
    if not kernels.numba_available():
        raise SystemExit("numba is not installed: the new path would be the old one; fix: pip install numba")
    label = "loaded" if args.competitors else "quiet"
    start_rates = None if args.reference_rates else measured_rates()  # before any competitor starts
    out = args.out or ROOT / "results" / "benchmarks" / f"kernels_cpu_{label}.json"
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(args.competitors)]
    rows, load = [], [os.getloadavg()[0]]
    try:
        for case in args.cases.split(","):
            name, dataset = case.split(":")
            model, _, scale = name.partition("@")
            rows.append(bench_case(model, dataset, data_root(args.data_dir), args.batches, args.rounds,
                                   scale or "quick"))
            load.append(os.getloadavg()[0])
            print(f"[{len(rows)}] {name} on {dataset} done (load {load[-1]:.1f})", flush=True)
    finally:
        for proc in spinners:  # only the processes started here, by id
            proc.kill()
            proc.wait()
    measured = {}
    if args.reference_rates:
        rates = REFERENCE_RATES
    else:  # the faster of the rates before and after (competitors ended): this VM's speed drifts by minutes
        end_rates = measured_rates()
        rates = (max(start_rates[0], end_rates[0]), max(start_rates[1], end_rates[1]))
        measured = {"rates_start": start_rates, "rates_end": end_rates}
        print(f"rates (GB/s, GFLOP/s): {start_rates[0]:.1f}, {start_rates[1]:.1f} at the start; {end_rates[0]:.1f}, "
              f"{end_rates[1]:.1f} at the end; the bounds take the faster", flush=True)
    add_bounds(rows, rates)
    print(f"CPU seconds, 1 thread, {label} machine ({args.competitors} competing processes of this benchmark; "
          f"load average {min(load):.1f}-{max(load):.1f} from all work on it); x = old / new")
    print_rows(rows)
    write_json(out, {"rows": rows, "machine": label, "competitors": args.competitors, "loadavg": load,
                     "cache_gbs": rates[0], "gemm_gflops": rates[1],
                     "rates": "reference" if args.reference_rates else "measured", **measured,
                     **run_metadata("cpu")})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
