"""This machine's floor rates at one thread, measured in a few seconds: reads of a cache-resident table and dense
float32 products. ``bench_kernels.py`` divides each step's bytes and FLOPs by them to get its bound, so the
bound is the processor's own, not the one the benchmark was written on.

Usage: python benchmarks/machine_rates.py   (prints both rates)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import torch

TABLE_MIB = 8  # the size of a graph's embedding table (4-14 MB here): it stays in the last-level cache
GEMM_N = 1024  # a square product large enough to reach the library's peak


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` timed calls (wall seconds), after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def cache_gbs(mib: int = TABLE_MIB, repeats: int = 40) -> float:
    """GB/s of streaming reads of a ``mib``-MiB float32 table that stays in cache (the fastest of a sum and a
    max reduction, the best of ``repeats`` passes each)."""
    x = torch.rand(mib * 2**20 // 4)
    seconds = min(best_seconds(x.sum, repeats), best_seconds(x.amax, repeats))
    return x.numel() * 4 / seconds / 1e9


def gemm_gflops(n: int = GEMM_N, repeats: int = 10) -> float:
    """GFLOP/s of an (n, n) x (n, n) float32 product (the best of ``repeats``)."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    return 2 * n**3 / best_seconds(lambda: a @ b, repeats) / 1e9


def main() -> int:
    torch.set_num_threads(1)
    print(f"one thread: cache reads {cache_gbs():.1f} GB/s ({TABLE_MIB} MiB table), dense products "
          f"{gemm_gflops():.1f} GFLOP/s ({GEMM_N}^3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
