"""The compiled per-user metrics (r2mr/evaluation/user_metrics.py): torch's booleans and float64 bits."""

from __future__ import annotations

import pytest
import torch

from r2mr.data import kernels
from r2mr.data.sampler import pair_keys
from r2mr.evaluation.evaluator import rank_metrics
from r2mr.evaluation.user_metrics import held_out_hits, rank_metrics_compiled

needs_numba = pytest.mark.skipif(not kernels.numba_available(), reason="numba is not installed")


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int64)


@needs_numba
@pytest.mark.parametrize("maxk, ks", [(50, (10, 20, 50)), (20, (20, 5, 10)), (7, (1, 7))])
def test_rank_metrics_same_bits_as_torch(maxk: int, ks: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(maxk)
    hits = torch.rand(3000, maxk, generator=g) < 0.15
    hits[:5] = True  # every rank a hit
    n_truth = torch.randint(0, 70, (3000,), generator=g)  # 0: a user without held-out items gives inf / nan
    n_truth[:5] = torch.tensor([0, 1, maxk, maxk + 1, 3])
    with kernels.use_backend("torch"):  # torch's operations
        want = rank_metrics(hits, n_truth, ks)
    got = rank_metrics_compiled(hits, n_truth, ks)
    dispatched = rank_metrics(hits, n_truth, ks)  # the compiled path where it applies
    assert all(torch.equal(bits(dispatched[key]), bits(got[key])) for key in got)
    assert list(got) == list(want)
    assert all(torch.equal(bits(got[key]), bits(want[key])) for key in want), \
        [key for key in want if not torch.equal(bits(got[key]), bits(want[key]))]


def test_rank_metrics_refuses_a_k_beyond_the_lists() -> None:
    with pytest.raises(ValueError, match="within 1..5"):
        rank_metrics_compiled(torch.zeros(2, 5, dtype=torch.bool), torch.ones(2, dtype=torch.int64), (5, 6))


@pytest.mark.parametrize("backend", ["torch", pytest.param("numba", marks=needs_numba)])
def test_held_out_hits_match_a_set_lookup(backend: str) -> None:
    g = torch.Generator().manual_seed(1)
    n_users, n_items = 300, 500
    users = torch.randint(0, n_users, (2000,), generator=g)
    items = torch.randint(0, n_items, (2000,), generator=g)  # repeated pairs included
    keys = pair_keys(users, items, n_items).sort().values
    start = torch.cat([torch.zeros(1, dtype=torch.int64), torch.bincount(users, minlength=n_users).cumsum(0)])
    asked = torch.randperm(n_users, generator=g)[:200]  # some without held-out items
    top = torch.randint(0, n_items, (200, 30), generator=g)
    first = keys[torch.searchsorted(keys, asked * n_items).clamp(max=len(keys) - 1)]  # each user's first key
    top[:, 0] = first % n_items  # a hit wherever that key is the user's own
    held = {(int(u), int(i)) for u, i in zip(users, items)}
    want = torch.tensor([[(int(u), int(i)) in held for i in row] for u, row in zip(asked, top)])
    with kernels.use_backend(backend):
        got = held_out_hits(keys, start, asked, top, n_items)
    assert got.dtype == torch.bool and torch.equal(got, want) and 0 < int(want.sum()) < want.numel()
