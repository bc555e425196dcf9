"""The sampled top-k (r2mr/data/topk_sampled.py): torch.topk's indices, the rows with ties left to the heap."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from r2mr.data import kernels
from r2mr.data.topk_sampled import CAP_PER_K, sample_step

needs_numba = pytest.mark.skipif(not kernels.numba_available(), reason="numba is not installed")
GROUP = 2  # rows planted of each kind (14 of 1,200: item-major, fewer than SENT_ON go to the heap)


def planted_scores(n_rows: int, n: int, k: int, seed: int) -> tuple[torch.Tensor, dict[str, list[int]]]:
    """(n_rows, n) random scores with masked (-inf) items, and groups of rows whose top k the heap must decide."""
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(n_rows, n, generator=g)
    s[torch.rand(s.shape, generator=g) < 0.2] = -torch.inf
    kinds = ["boundary tie", "inner tie", "signed zeros", "nan", "few candidates", "all masked", "constant"]
    rows = {kind: list(range(i * GROUP, (i + 1) * GROUP)) for i, kind in enumerate(kinds)}
    for r in rows["boundary tie"] + rows["inner tie"]:
        order = s[r].argsort(descending=True)
        inner = int(torch.randint(1, k, (1,), generator=g)) if k > 1 else 1
        at = k if r in rows["boundary tie"] else inner
        s[r, order[at]] = s[r, order[at - 1]]  # the (at+1)-th largest equals the at-th
    for r in rows["signed zeros"]:
        s[r] = -1.0 - torch.rand(n, generator=g)
        s[r, torch.randperm(n, generator=g)[:k - 1]] = 5.0 + torch.rand(k - 1, generator=g)
        free = (s[r] < 0).nonzero().squeeze(1)
        s[r, free[0]], s[r, free[1]] = 0.0, -0.0  # the k-th and (k+1)-th largest: a tie for torch's order
    for r in rows["nan"]:
        s[r, torch.randint(0, n, (1,), generator=g)] = torch.nan
    for r in rows["few candidates"]:  # the largest scores only where the threshold is sampled: too few above it
        s[r, ::sample_step(k)] = 100.0 + torch.rand(len(range(0, n, sample_step(k))), generator=g)
    s[rows["all masked"]] = -torch.inf
    s[rows["constant"]] = 0.5
    return s, rows


@needs_numba
@pytest.mark.parametrize("item_major", [False, True])
@pytest.mark.parametrize("n, k", [(7050, 50), (3200, 50), (2000, 20), (640, 1)])
def test_same_indices_as_torch_and_ties_go_to_the_heap(item_major: bool, n: int, k: int) -> None:
    s, planted = planted_scores(1200, n, k, seed=n + k)
    if item_major:
        s = s.T.contiguous().T
    with kernels.use_backend("numba"):
        got = kernels.topk_indices(s, k)
    assert torch.equal(got, s.topk(k, dim=1).indices)
    out, fallback = np.zeros((len(s), k), np.int64), np.full(len(s), -1, np.int64)
    table = s.numpy().T if item_major else s.numpy()
    n_fallback = kernels._kernels["topk_sampled"](table, k, item_major, out, fallback)
    to_heap = set(fallback[:n_fallback].tolist())
    decided = sorted(set(range(len(s))) - to_heap)
    assert torch.equal(torch.from_numpy(out[decided]), s[decided].topk(k, dim=1).indices)
    # every planted row went to the heap (with every score sampled, k = 1, the threshold never leaves too few)
    must = {r for kind, rows in planted.items() for r in rows if kind != "few candidates" or sample_step(k) > 1}
    assert must <= to_heap, sorted(must - to_heap)
    assert len(to_heap) <= len(must) + 0.02 * len(s)  # the random rows are decided by the sampled path


@needs_numba
@pytest.mark.parametrize("levels", [1, 8])
def test_a_batch_of_ties_goes_to_the_heap_whole(levels: int) -> None:
    """Item-major scores with ties everywhere: the collecting pass stops early and the heap takes the batch."""
    s = torch.randint(0, levels, (3000, 500), generator=torch.Generator().manual_seed(levels)).float().T
    out, fallback = np.zeros((500, 20), np.int64), np.zeros(500, np.int64)
    assert kernels._kernels["topk_sampled"](s.numpy().T, 20, True, out, fallback) == 500
    assert torch.equal(kernels.topk_indices(s, 20), s.topk(20, dim=1).indices)


@needs_numba
def test_too_many_candidates_go_to_the_heap() -> None:
    """More than CAP_PER_K * k scores at or above the threshold (distinct values): the heap decides."""
    k, n = 20, 2000
    s = torch.linspace(0.0, 1.0, n).repeat(3, 1)
    s[:, ::sample_step(k)] = -1.0  # the sampled scores are the lowest: every other score is above the threshold
    assert n - len(range(0, n, sample_step(k))) > CAP_PER_K * k
    out, fallback = np.zeros((3, k), np.int64), np.zeros(3, np.int64)
    assert kernels._kernels["topk_sampled"](s.numpy(), k, False, out, fallback) == 3
    assert torch.equal(kernels.topk_indices(s, k), s.topk(k, dim=1).indices)
