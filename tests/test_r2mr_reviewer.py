"""Edge-wise Reviewer (spec 4, 15.2): equals the dense masked mean, values and gradients; quality states."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from r2mr.models.r2mr.reviewer import (
    DISPARITY,
    HIGH,
    LOW,
    EdgePattern,
    Reviewer,
    consensus,
    dense_consensus,
    edge_dot,
    quality_states,
)


def pattern(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> EdgePattern:
    return EdgePattern.build(torch.from_numpy(users), torch.from_numpy(items), n_users, n_items)


def random_graph(n_users: int = 23, n_items: int = 17, n_edges: int = 90, seed: int = 0):
    """Random bipartite edges; items 0 and 5 are left without any user."""
    rng = np.random.default_rng(seed)
    keys = rng.choice(n_users * n_items, n_edges, replace=False)
    users, items = keys // n_items, keys % n_items
    keep = (items != 0) & (items != 5)
    return users[keep], items[keep]


def dense_mask(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> torch.Tensor:
    m = torch.zeros(n_items, n_users)
    m[torch.from_numpy(items), torch.from_numpy(users)] = 1.0
    return m  # (I, U)


@pytest.mark.parametrize("k", [1, 3])
def test_edgewise_equals_dense_values_and_grads(k: int) -> None:
    n_users, n_items, r = 23, 17, 4
    users, items = random_graph(n_users, n_items)
    g = torch.Generator().manual_seed(k)
    a0 = torch.randn(n_users, k, r, generator=g)
    b0 = torch.randn(n_items, r, generator=g)
    w = torch.randn(n_items, generator=g)  # a random linear read-out, for gradients
    a1, b1 = a0.clone().requires_grad_(), b0.clone().requires_grad_()
    s1 = consensus(a1, b1, pattern(users, items, n_users, n_items))
    (s1 * w).sum().backward()
    a2, b2 = a0.clone().requires_grad_(), b0.clone().requires_grad_()
    s2 = dense_consensus(a2, b2, dense_mask(users, items, n_users, n_items))
    (s2 * w).sum().backward()
    assert torch.allclose(s1, s2, atol=1e-6, rtol=0)
    assert torch.allclose(a1.grad, a2.grad, atol=1e-6) and torch.allclose(b1.grad, b2.grad, atol=1e-6)
    assert s1[0] == 0 and s1[5] == 0 and ((s1 >= 0) & (s1 <= 1)).all()


def test_per_chunk_definition_by_hand() -> None:
    """K = 2: s_i = mean over users and chunks of sigmoid(a_u^(k) . b_i), written as loops."""
    users, items = np.array([0, 1, 1, 2]), np.array([0, 0, 1, 1])
    a, b = torch.randn(3, 2, 3), torch.randn(3, 3)
    s = consensus(a, b, pattern(users, items, 3, 3))
    for i in range(3):
        us = users[items == i]
        want = np.mean([torch.sigmoid(a[u, k] @ b[i]).item() for u in us for k in range(2)]) if len(us) else 0.0
        assert s[i].item() == pytest.approx(want, abs=1e-6)


def test_edge_dot_gradcheck_and_edge_order() -> None:
    """The hand-written backward passes gradcheck (float64); logits come in item-major edge order."""
    users, items = random_graph(9, 8, 40)
    pat = pattern(users, items, 9, 8)
    a = torch.randn(9, 2, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: edge_dot(a, b, pat), (a, b))
    order = np.lexsort((users, items))
    want = torch.einsum("ekr,er->ek", a[users[order]], b[items[order]])
    assert torch.allclose(edge_dot(a, b, pat), want) and torch.equal(pat.items, torch.from_numpy(items[order]))
    empty = pattern(users[:0], items[:0], 9, 8)
    assert edge_dot(a, b, empty).shape == (0, 2) and consensus(a, b, empty).abs().sum() == 0


def test_reviewer_module_split_and_full_widths() -> None:
    users, items = random_graph()
    rev = Reviewer(users, items, 23, 17, 12, ["text", "image"], n_perspectives=3, split=True, dropout=0.0)
    assert (rev.k, rev.r, rev.user_map.out_features) == (3, 4, 12)
    full = Reviewer(users, items, 23, 17, 12, ["text", "image"], n_perspectives=3, split=False, dropout=0.0)
    assert (full.r, full.user_map.out_features) == (12, 36)
    z = torch.randn(23, 12)
    feats = {"text": torch.randn(17, 12), "image": torch.randn(17, 12)}
    s = rev(z, feats)
    mask = dense_mask(users, items, 23, 17)
    a = rev.user_map(z).view(23, 3, 4)
    assert s.shape == (17, 2)
    assert torch.allclose(s[:, 1], dense_consensus(a, rev.item_maps["image"](feats["image"]), mask), atol=1e-6)
    rows = torch.tensor([3, 0, 9])  # candidate rows, incl. an item without users
    x = torch.randn(3, 12)
    sub = rev.score_rows(a, "text", rows, x)
    b = rev.item_maps["text"](feats["text"]).detach()
    b[rows] = rev.item_maps["text"](x).detach()
    assert torch.allclose(sub, dense_consensus(a.detach(), b, mask)[rows], atol=1e-6)


def test_quality_states_thresholds() -> None:
    """High uses >=, low uses <; any number of modalities."""
    s = torch.tensor([[0.5, 0.5], [0.5, 0.4999], [0.2, 0.1], [0.0, 0.9]])
    assert quality_states(s, 0.5).tolist() == [HIGH, DISPARITY, LOW, DISPARITY]
    s3 = torch.tensor([[0.6, 0.7, 0.8], [0.6, 0.1, 0.8], [0.1, 0.2, 0.3]])
    assert quality_states(s3, 0.5).tolist() == [HIGH, DISPARITY, LOW]


def test_xavier_init_option_is_not_saturated() -> None:
    """U(-1, 1) maps saturate the sigmoids on tanh-range features (spec 4.6); Xavier-uniform does not."""
    users, items = random_graph(200, 50, 1500)
    z, e = torch.rand(200, 64) * 2 - 1, torch.tanh(torch.randn(50, 64))
    share = {}
    for init in ("uniform", "xavier"):
        torch.manual_seed(0)
        rev = Reviewer(users, items, 200, 50, 64, ["text"], dropout=0.0, init=init)
        logits = edge_dot(rev.user_views(z), rev.item_maps["text"](e), rev.pattern())
        share[init] = (logits.abs() > 10).float().mean().item()
    assert share["uniform"] > 0.8 and share["xavier"] < 0.05, share
