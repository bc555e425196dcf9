"""Per-user metrics from the top-K lists, compiled (numba) on the CPU: the hit matrix and the rank metrics.

Hits: which of each user's top-K items are held out.
The held-out pairs of a split are kept as sorted keys ``user * n_items + item`` (ascending, so each user's keys
are one run); ``start`` (n_users + 1,) gives each user's run. A top-K entry is a hit when its key is in the
user's run. The compiled kernel reads the user's run (a few keys) for each of the K entries; the torch path
(:func:`r2mr.data.sampler.contains`, a binary search of every key in all of the split's keys) gives the same
booleans and runs off the CPU, without numba, or with ``R2MR_SPMM=torch``. Measured on Baby's 19,445
validation users and K = 50 (one thread): 70 ms for ``pair_keys`` + ``contains`` + the metrics, of which the
lookup is 40-60 ms.

Rank metrics: :func:`rank_metrics_compiled` computes :func:`r2mr.evaluation.evaluator.rank_metrics`'s float64
arithmetic per user in one pass, each value by the same operations in the same order (a cumulative sum adds
left to right, as torch's on a CPU; no fused multiply-add), so the values are bit for bit equal
(tests/test_user_metrics.py); :func:`r2mr.evaluation.evaluator.rank_metrics` calls it where it applies. The
tables of ranks and discounts are torch's (:func:`rank_tables`).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import torch

from ..data import kernels
from ..data.sampler import contains, pair_keys


def rank_tables(maxk: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ranks 1..maxK, discounts 1 / log2(rank + 1), ideal DCG for 1..maxK relevant items), each (maxK,) float64."""
    ranks = torch.arange(1, maxk + 1, device=device, dtype=torch.float64)
    discount = 1.0 / torch.log2(ranks + 1.0)
    return ranks, discount, discount.cumsum(0)


@functools.cache
def _kernels() -> dict[str, Callable[..., None]]:
    import numba

    @numba.njit(nogil=True)
    def member_hits(keys: Any, start: Any, users: Any, top: Any, n_items: int, hits: Any) -> None:
        for r in range(top.shape[0]):
            u = users[r]
            base, a, b = u * n_items, start[u], start[u + 1]
            for q in range(top.shape[1]):
                key, hit = base + top[r, q], False
                for p in range(a, b):
                    if keys[p] == key:
                        hit = True
                        break
                hits[r, q] = hit

    @numba.njit(nogil=True, error_model="numpy")  # IEEE division (x / 0 = inf or nan), as torch
    def metrics(hits: Any, n_truth: Any, ks: Any, ranks: Any, discount: Any, idcg: Any, out: Any) -> None:
        # out (4 * len(ks), N): recall, precision, ndcg, map for each k, in that order
        for r in range(hits.shape[0]):
            n, cum, dcg, ap = float(n_truth[r]), 0.0, 0.0, 0.0
            for q in range(hits.shape[1]):
                h = 1.0 if hits[r, q] else 0.0
                cum = cum + h
                dcg = dcg + h * discount[q]
                ap = ap + h * cum / ranks[q]
                for m in range(ks.shape[0]):
                    if ks[m] == q + 1:
                        cap = min(n, float(ks[m]))
                        out[4 * m, r] = cum / n
                        out[4 * m + 1, r] = cum / float(ks[m])
                        out[4 * m + 2, r] = dcg / idcg[int(cap - 1)]
                        out[4 * m + 3, r] = ap / cap

    return {"member_hits": member_hits, "metrics": metrics}


def compiled_applies(*tensors: torch.Tensor) -> bool:
    """Whether the compiled kernels compute for ``tensors``: all on the CPU, numba available and not refused."""
    return all(t.device.type == "cpu" for t in tensors) and kernels.numba_applies()


def held_out_hits(sorted_keys: torch.Tensor, start: torch.Tensor, users: torch.Tensor, top: torch.Tensor,
                  n_items: int) -> torch.Tensor:
    """(N, K) bool: ``top[r, q]`` (item ids) is a held-out item of ``users[r]`` (user ids, (N,)); ``sorted_keys``
    the split's keys (ascending) and ``start`` (n_users + 1,) where each user's run starts (the last entry: the
    number of keys)."""
    if not (compiled_applies(sorted_keys, start, users, top) and top.dim() == 2):
        return contains(sorted_keys, pair_keys(users[:, None].expand_as(top), top, n_items))
    hits = torch.empty(top.shape, dtype=torch.bool)
    arrays = [t.to(torch.int64).contiguous().numpy() for t in (sorted_keys, start, users, top)]
    _kernels()["member_hits"](*arrays, n_items, hits.numpy())
    return hits


def rank_metrics_compiled(hits: torch.Tensor, n_truth: torch.Tensor, ks: Sequence[int]) -> dict[str, torch.Tensor]:
    """:func:`r2mr.evaluation.evaluator.rank_metrics` (hits (N, maxK) bool, held-out counts (N,)) with the same
    bits: ``{"recall@k", "precision@k", "ndcg@k", "map@k": (N,) float64}`` in that order for each k (CPU)."""
    if any(not 1 <= k <= hits.shape[1] for k in ks):
        raise ValueError(f"rank_metrics: each k in {list(ks)} must be within 1..{hits.shape[1]}")
    ranks, discount, idcg = rank_tables(hits.shape[1])
    out = torch.empty(4 * len(ks), hits.shape[0], dtype=torch.float64)
    _kernels()["metrics"](hits.to(torch.bool).contiguous().numpy(), n_truth.to(torch.int64).contiguous().numpy(),
                          torch.tensor(list(ks), dtype=torch.int64).numpy(), ranks.numpy(), discount.numpy(),
                          idcg.numpy(), out.numpy())
    names = [f"{name}@{k}" for k in ks for name in ("recall", "precision", "ndcg", "map")]
    return dict(zip(names, out))
