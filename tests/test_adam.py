"""The CPU Adam and AdamW (r2mr.training.adam) give torch.optim.Adam's and AdamW's bits: parameters and both
moments after every step, for tables, odd sizes (ATen's scalar tails), small parameters, weight decay, zero and
missing gradients, a changing learning rate; and fall back to torch's step where their conditions do not hold."""

from __future__ import annotations

import pytest
import torch

from r2mr.data import kernels
from r2mr.training import adam

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # the compiled step runs at one thread only
needs_numba = pytest.mark.skipif(not kernels.numba_available(), reason="numba not installed")
SHAPES = [(1000, 64), (333, 64), (4099,), (5000, 3), (37,), (8, 8), (4096,)]


def make_params(seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=g)) for s in SHAPES]


def run(opt_cls: type, weight_decay: float, steps: int = 7) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    params = make_params(0)
    opt = opt_cls(params, lr=1e-3, weight_decay=weight_decay)
    if isinstance(opt, torch.optim.AdamW) or type(opt) is adam.AdamW:
        assert opt.param_groups[0]["decoupled_weight_decay"]
    g = torch.Generator().manual_seed(1)
    for step in range(steps):
        for i, p in enumerate(params):
            grad = torch.randn(p.shape, generator=g) * 10.0 ** (step % 5 - 3)
            grad[torch.rand(p.shape, generator=g) < 0.3] = 0.0  # rows a batch did not touch
            p.grad = None if (i == 3 and step == 2) else grad  # a parameter without a gradient this step
        opt.param_groups[0]["lr"] = 1e-3 * 0.9 ** step  # the trainer's schedule changes lr between steps
        opt.step()
    states = [t for p in params for t in (opt.state[p]["exp_avg"], opt.state[p]["exp_avg_sq"], opt.state[p]["step"])]
    return [p.detach() for p in params], states


@needs_numba
@pytest.mark.parametrize("weight_decay", [0.0, 1e-4, 0.1])
@pytest.mark.parametrize("ours_cls, torch_cls", [(adam.Adam, torch.optim.Adam), (adam.AdamW, torch.optim.AdamW)])
def test_same_bits_as_torch_adam(weight_decay: float, ours_cls: type, torch_cls: type,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert torch.get_num_threads() == 1 and adam.agrees_with_torch() and adam.fast_path_applies()
    calls = []
    original = adam.Adam._step_fast
    monkeypatch.setattr(adam.Adam, "_step_fast",
                        staticmethod(lambda p, *rest: (calls.append(p.numel()), original(p, *rest))[1]))
    ours = run(ours_cls, weight_decay)
    monkeypatch.undo()
    ref = run(torch_cls, weight_decay)
    assert calls and min(calls) >= adam.MIN_NUMEL  # the compiled path ran (the big parameters), torch's the rest
    for a, b in zip(ours[0] + ours[1], ref[0] + ref[1]):
        assert torch.equal(a, b)


@pytest.mark.parametrize("why", ["torch backend", "self-check failed", "two threads"])
def test_falls_back_to_torch(why: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if why == "torch backend":
        monkeypatch.setenv(kernels.BACKEND_ENV, "torch")
    elif why == "self-check failed":
        monkeypatch.setattr(adam, "_agreement", [False])  # as on a processor whose vector code rounds otherwise
    else:
        monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert not adam.fast_path_applies()
    monkeypatch.setattr(adam.Adam, "_step_fast", lambda *a: pytest.fail("the compiled path ran"))
    ours, ref = run(adam.Adam, 1e-4, steps=2), run(torch.optim.Adam, 1e-4, steps=2)
    assert all(torch.equal(a, b) for a, b in zip(ours[0], ref[0]))


def test_a_parameter_off_the_cpu_leaves_the_group_to_torch() -> None:
    group = {"params": [torch.nn.Parameter(torch.zeros(8, device="meta"))], "lr": 1e-3, "eps": 1e-8,
             "weight_decay": 0.0, "betas": (0.9, 0.999)}
    assert not adam._group_applies(group)
    group["params"] = [torch.nn.Parameter(torch.zeros(8))]
    assert adam._group_applies(group)


@needs_numba
def test_a_torch_checkpoint_resumes_with_the_same_bits() -> None:
    """Two torch steps equal one torch step, its state saved and loaded into :class:`adam.Adam`, and one step."""
    import copy

    def two_steps(second: type) -> list[torch.Tensor]:
        params = make_params(0)
        first = torch.optim.Adam(params, lr=1e-2)
        for k in (1.0, -0.5):
            for p in params:
                p.grad = torch.full_like(p, k) + p.detach() * 0.1
            if k == 1.0:
                first.step()
                saved = copy.deepcopy(first.state_dict())
                opt = second(params, lr=1e-2)
                opt.load_state_dict(saved)
            else:
                opt.step()
        assert opt.state_dict()["state"][0]["step"].item() == 2.0
        return [p.detach() for p in params]

    assert all(torch.equal(a, b) for a, b in zip(two_steps(adam.Adam), two_steps(torch.optim.Adam)))


@needs_numba
def test_adamw_on_a_parameter_that_is_not_contiguous() -> None:
    """A transposed table (R2MR has one) goes through torch's operations as shaped, with AdamW's bits."""
    def run_t(cls: type) -> torch.Tensor:
        p = torch.nn.Parameter(torch.randn(64, 70, generator=torch.Generator().manual_seed(3)).T)
        opt = cls([p], lr=1e-2)
        for k in range(3):
            p.grad = torch.full_like(p, 0.5 - k) + p.detach() * 0.1
            opt.step()
        return p.detach()

    assert not run_t(adam.AdamW).is_contiguous()
    assert torch.equal(run_t(adam.AdamW), run_t(torch.optim.AdamW))
