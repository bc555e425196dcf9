"""The compiled dropout (r2mr.models.dropout) gives F.dropout's bits: outputs, gradients and the generator's
next draws, for sizes around the twister's regeneration (624 words) and the kernel's chunk; and falls back to
F.dropout where its conditions do not hold."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from r2mr.data import bernoulli_kernel, kernels
from r2mr.models import dropout as drop

needs_numba = pytest.mark.skipif(not kernels.numba_available(), reason="numba not installed")
SHAPES = [(1,), (7,), (311,), (2 * 624 + 3,), (3, bernoulli_kernel.CHUNK + 5), (937, 64)]
OFFSETS = [0, 1, 311, 622, 623, 624]  # 32-bit draws before the mask: around the end of the twister's 624 words


def run(fn, shape: tuple[int, ...], p: float, offset: int) -> list[torch.Tensor]:
    """Output, gradient and the next draws of ``fn(x, p)``, the mask drawn ``offset`` words after a seed."""
    g = torch.Generator().manual_seed(7)  # x and the output's gradient from a generator of their own
    x, grad_out = torch.randn(shape, generator=g, requires_grad=True), torch.randn(shape, generator=g)
    torch.manual_seed(11)
    torch.rand(offset)  # one 32-bit draw each
    y = fn(x, p)
    y.backward(grad_out)
    return [y.detach(), x.grad, torch.rand(5), torch.randint(0, 2**62, (3,))]


@needs_numba
@pytest.mark.parametrize("p", [0.3, 0.5, 0.8])
def test_same_bits_as_torch_dropout(p: float, monkeypatch: pytest.MonkeyPatch) -> None:
    assert drop.agrees_with_torch()  # before counting: the self-check draws too
    drawn = []
    original = drop.draw_
    monkeypatch.setattr(drop, "draw_", lambda *a: (drawn.append(a[1].numel()), original(*a))[1])
    for shape, offset in zip(SHAPES, OFFSETS):
        ours = run(drop.dropout, shape, p, offset)
        ref = run(lambda x, q: F.dropout(x, q, True), shape, p, offset)
        for a, b in zip(ours, ref):
            assert torch.equal(a, b), (shape, p)
        assert 0.0 < float((ours[0] == 0).float().mean()) < 1.0 or ours[0].numel() < 20  # a real mask
    assert sorted(drawn) == sorted(torch.Size(s).numel() for s in SHAPES)  # the compiled draw made every mask


@needs_numba
def test_the_self_check_leaves_the_generator_where_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drop, "_agreement", [])
    torch.manual_seed(3)
    before = torch.get_rng_state()
    assert drop.agrees_with_torch() and drop._agreement == [True]
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("why", ["torch backend", "self-check failed", "float64", "not contiguous", "eval"])
def test_falls_back_to_torch(why: str, monkeypatch: pytest.MonkeyPatch) -> None:
    x, training = torch.randn(64, 32), True
    if why == "torch backend":
        monkeypatch.setenv(kernels.BACKEND_ENV, "torch")
    elif why == "self-check failed":
        monkeypatch.setattr(drop, "_agreement", [False])  # as on a processor where ATen draws with MKL
    elif why == "float64":
        x = x.double()
    elif why == "not contiguous":
        x = x.T
    else:
        training = False
    monkeypatch.setattr(drop, "draw_", lambda *a: pytest.fail("the compiled draw ran"))
    torch.manual_seed(0)
    ours = drop.dropout(x, 0.5, training)
    torch.manual_seed(0)
    assert torch.equal(ours, F.dropout(x, 0.5, training))


def test_the_module_is_nn_dropout() -> None:
    module = drop.Dropout(0.3).eval()
    x = torch.randn(5, 4)
    assert isinstance(module, torch.nn.Dropout) and torch.equal(module(x), x)
    torch.manual_seed(1)
    y = module.train()(x)
    torch.manual_seed(1)
    assert torch.equal(y, F.dropout(x, 0.3, True))


def test_threshold_is_exact() -> None:
    """m / 2^53 < q exactly when m < threshold(q), at the boundary too."""
    for q in (0.5, 0.7, 0.2, 1e-9):
        t = bernoulli_kernel.threshold(q)
        assert (t - 1) / 2.0 ** 53 < q <= t / 2.0 ** 53
