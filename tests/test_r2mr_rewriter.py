"""Modality Rewriter (spec 7, 15.1, 15.7): sizes, VQ straight-through, update order, pairs, acceptance."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from r2mr.models.r2mr.rewriter import (
    Discriminator,
    Generator,
    Rewriter,
    RewriterConfig,
    accept,
    modality_pairs,
    training_pairs,
)

SMALL = RewriterConfig(rw_prompt_dim=4, rw_hidden=(16, 32), rw_latent=16, rw_codebook=32, rw_code_dim=4,
                       rw_disc_hidden=(8, 4), rw_batch=8)


def count(module: torch.nn.Module | torch.nn.Parameter) -> int:
    if isinstance(module, torch.nn.Parameter):
        return module.numel()
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_at_official_sizes() -> None:
    cfg = RewriterConfig()
    g, d = Generator(384, 2, cfg), Discriminator(384, cfg)
    parts = (count(g.encoder), count(g.decoder), count(g.codebook), count(g.prompt))
    assert parts == (4_861_952, 3_942_528, 131_072, 512)
    assert count(g) == 8_936_064 and count(d) == 264_193


def test_quantiser_straight_through_and_vq_weights() -> None:
    torch.manual_seed(0)
    g = Generator(6, 2, SMALL)
    z = torch.randn(3, 16, requires_grad=True)
    zq, vq = g.quantise(z)
    flat = z.detach().reshape(-1, 4)
    nearest = g.codebook[torch.cdist(flat, g.codebook).argmin(1)].reshape(3, 16)
    assert torch.allclose(zq, nearest)  # forward: the codes
    (zq * torch.arange(48.0).view(3, 16)).sum().backward(retain_graph=True)
    assert torch.equal(z.grad, torch.arange(48.0).view(3, 16))  # backward: identity to z
    z.grad, g.codebook.grad = None, None
    vq.backward()
    q = nearest.detach()
    assert torch.allclose(z.grad, 2 * (z.detach() - q) / z.numel(), atol=1e-6)  # commitment weight 1
    book = torch.zeros_like(g.codebook)
    idx = torch.cdist(flat, g.codebook).argmin(1)
    book.index_add_(0, idx, (0.1 * 2 * (q - z.detach()) / z.numel()).reshape(-1, 4))  # beta 0.1 on the codebook
    assert torch.allclose(g.codebook.grad, book, atol=1e-7)


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x, pair = torch.randn(8, 6, generator=g), torch.randint(0, 2, (8,), generator=g)
    return x, pair, torch.tanh(torch.randn(8, 6, generator=g))


def test_default_update_leaks_nothing_into_the_generator() -> None:
    """With detached fakes, the generator's update does not depend on the discriminator at all."""
    torch.manual_seed(0)
    a = Rewriter(6, ["text", "image"], SMALL)
    b = copy.deepcopy(a)
    torch.nn.init.normal_(b.disc.head.weight)  # a different discriminator
    for r in (a, b):
        for s in range(3):
            r.step(*batch(s))
        assert all(p.grad is None for p in r.gen.parameters())
    assert all(torch.equal(p, q) for p, q in zip(a.gen.parameters(), b.gen.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.disc.parameters(), b.disc.parameters()))


def test_leak_flag_adds_the_lagged_discriminator_gradient() -> None:
    """Official order: step t+1 uses grad L_G(t+1) + 0.1 grad_G BCE(D(y_hat_t), 0) (pre-step weights here)."""
    torch.manual_seed(0)
    leak = Rewriter(6, ["text", "image"], RewriterConfig(**{**SMALL.__dict__, "leak_disc_grad": True}))
    clean = copy.deepcopy(leak)
    clean.cfg = SMALL
    x, c, y = batch(0)
    y_hat, _ = leak.gen(x, c)
    want = torch.autograd.grad(0.1 * F.binary_cross_entropy_with_logits(leak.disc(y_hat), torch.zeros(8)),
                               list(leak.gen.decoder.parameters()))
    leak.step(x, c, y)
    clean.step(x, c, y)
    assert all(torch.equal(p, q) for p, q in zip(leak.gen.parameters(), clean.gen.parameters()))  # first step equal
    pending = [p.grad for p in leak.gen.decoder.parameters()]
    assert all(torch.allclose(p, w, atol=1e-7) for p, w in zip(pending, want))
    assert torch.count_nonzero(leak.gen.codebook.grad) == 0  # no path through the straight-through estimator
    leak.step(*batch(1))
    clean.step(*batch(1))
    assert not all(torch.equal(p, q) for p, q in zip(leak.gen.parameters(), clean.gen.parameters()))
    state = leak.state_dict()  # the pending gradient is part of the checkpointed state
    other = Rewriter(6, ["text", "image"], leak.cfg)
    other.load_state_dict(state)
    assert all(torch.equal(p.grad, q.grad) for p, q in zip(leak.gen.parameters(), other.gen.parameters()))


def test_pairs_every_direction_one_prompt_each() -> None:
    pairs = modality_pairs(["text", "image", "audio"])
    assert len(pairs) == 6 and pairs[0] == ("text", "image")
    assert modality_pairs(["text", "image"]) == [("text", "image"), ("image", "text")]
    feats = {m: torch.full((5, 2), float(k)) for k, m in enumerate(["text", "image", "audio"])}
    x, ids, y = training_pairs(feats, torch.tensor([1, 3]), pairs)
    assert x.shape == (12, 2) and ids.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    for k, (s, t) in enumerate(pairs):
        assert torch.equal(x[ids == k], feats[s][[1, 3]]) and torch.equal(y[ids == k], feats[t][[1, 3]])
    empty = training_pairs(feats, torch.tensor([], dtype=torch.long), pairs)
    assert empty[0].shape == (0, 2)


def test_training_reduces_reconstruction_and_empty_generation() -> None:
    torch.manual_seed(0)
    r = Rewriter(6, ["text", "image"], SMALL)
    x, c, y = batch(0)
    first = r.train_round(x, c, y, epochs=1)
    last = r.train_round(x, c, y, epochs=60)
    assert last["rec"] < first["rec"]
    assert r.generate(x[:0], c[:0]).shape == (0, 6)
    assert r.generate(x, c).shape == (8, 6)


def test_acceptance_is_strict() -> None:
    new, old = torch.tensor([0.5, 0.51, 0.3, 0.2]), torch.tensor([0.1, 0.6, 0.3, 0.1])
    assert accept(new, old, 0.5, "eta").tolist() == [False, True, False, False]
    assert accept(new, old, 0.5, "improve").tolist() == [True, False, False, True]
