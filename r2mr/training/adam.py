"""Adam and AdamW for CPU training: ``torch.optim.Adam``'s (and ``AdamW``'s) update in three passes over each
parameter instead of seven (eight), the same bits.

``torch.optim.Adam`` (no AMSGrad, not maximising, no foreach or fused path: the CPU default) updates each
parameter with seven tensor operations, each a pass over the parameter's size (two tables of U x d and I x d for
the graph models): ``grad + wd * p``, ``m.lerp_``, ``v.mul_``, ``v.addcmul_``, ``v.sqrt()``, ``/ sqrt(bc2)
+ eps`` and ``p.addcdiv_``. :class:`Adam` computes the same arithmetic in two compiled loops (numba) around
torch's own square root:

* pass 1: ``g' = fma(p, wd, g)`` (if wd), ``m = fma(1 - b1, g' - m, m)``, ``v = fma((1 - b2) g', g', v b2)``;
  with decoupled weight decay (AdamW) first ``p = p * (1 - lr wd)`` (torch's ``p.mul_``) and ``g' = g``;
* ``s = torch.sqrt(v)`` (torch's vectorised square root, which is not always the correctly rounded one, so it
  is not recomputed here);
* pass 2: ``p = p + (-step_size m) / (s / sqrt(bc2) + eps)``,

with every scalar rounded to float32 as ATen rounds it, and a fused multiply-add exactly where ATen's vectorised
kernels use one on a CPU (``lerp``, ``add`` with ``alpha``, ``addcmul``), so that each element gets the bits
of torch's step (tests/test_adam.py compares every state over several steps). ATen computes the last
``numel % 16`` elements of each operation with scalar code, which need not round alike, so the compiled loops
cover a prefix of whole 64-element blocks and torch's own operations the rest (a slice starting on a block
boundary runs the same vectorised code). Used for CPU float32 parameters with one torch thread (with more,
ATen splits each operation at other boundaries) where numba is available, ``R2MR_SPMM`` is not ``torch``, and
a self-check at the first step finds the bits equal on this processor (:func:`agrees_with_torch`); anything
else is ``torch.optim.Adam.step`` itself. The state (``step``, ``exp_avg``, ``exp_avg_sq``) is
torch's, so checkpoints load into either.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ..data import kernels

BLOCK = 64  # the compiled loops cover whole blocks; ATen's vector loops step by 16 (AVX2) or 32 (AVX-512)
MIN_NUMEL = 4096  # smaller parameters: torch's own step (the call overhead would exceed the gain)
_compiled: dict[str, Callable[..., None]] = {}


def _compile() -> dict[str, Callable[..., None]]:
    """The two numba loops and an exact float32 fused multiply-add (LLVM's ``llvm.fma``)."""
    import numba
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    @intrinsic
    def fma32(typingctx: Any, a: Any, b: Any, c: Any) -> Any:  # a * b + c, rounded once
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            f32 = ir.FloatType()
            fn = builder.module.declare_intrinsic("llvm.fma", [f32], ir.FunctionType(f32, [f32, f32, f32]))
            return builder.call(fn, args)
        return types.float32(types.float32, types.float32, types.float32), codegen

    @numba.njit(nogil=True)
    def moments(p: Any, g: Any, m: Any, v: Any, n: int, wd: Any, use_wd: bool, decay: Any, use_decay: bool, w1: Any,
                b2: Any, w2: Any) -> None:
        for i in range(n):  # p.mul_(decay) (AdamW) or grad.add(p, alpha=wd); m.lerp_(grad, w1); v.mul_(b2)...
            if use_decay:
                p[i] = p[i] * decay
            gi = fma32(p[i], wd, g[i]) if use_wd else g[i]
            m[i] = fma32(w1, gi - m[i], m[i])
            v[i] = fma32(w2 * gi, gi, v[i] * b2)

    @numba.njit(nogil=True, error_model="numpy")  # IEEE division (x / 0 = inf), as torch: no check, vectorised
    def update(p: Any, m: Any, s: Any, n: int, bc2_sqrt: Any, eps: Any, neg_step: Any) -> None:
        for i in range(n):  # p.addcdiv_(m, s / bc2_sqrt + eps, value=neg_step)
            p[i] = p[i] + (neg_step * m[i]) / (s[i] / bc2_sqrt + eps)

    return {"moments": moments, "update": update}


def _kernels() -> dict[str, Callable[..., None]]:
    if not _compiled:
        _compiled.update(_compile())
    return _compiled


def _group_applies(group: dict[str, Any]) -> bool:
    """Whether a parameter group's options are those of torch's plain CPU step (the one reproduced here), every
    parameter on the CPU (on a GPU torch's own step, with its multi-tensor kernels, is faster)."""
    if any(p.device.type != "cpu" for p in group["params"]):
        return False
    plain = not any(group.get(k) for k in ("amsgrad", "maximize", "foreach", "fused", "capturable", "differentiable"))
    return plain and all(isinstance(group[k], float) for k in ("lr", "eps", "weight_decay")) \
        and all(isinstance(b, float) for b in group["betas"])


def _param_applies(p: torch.Tensor) -> bool:
    g = p.grad
    return (p.device.type == "cpu" and p.dtype == torch.float32 and p.is_contiguous() and g is not None
            and not g.is_sparse and g.dtype == torch.float32 and g.is_contiguous() and p.numel() >= MIN_NUMEL)


def fast_path_applies() -> bool:
    """One torch thread, numba importable, ``R2MR_SPMM`` not ``torch``, and :func:`agrees_with_torch` here."""
    return torch.get_num_threads() == 1 and kernels.numba_applies() and agrees_with_torch()


_agreement: list[bool] = []  # the self-check's answer, once per process


def agrees_with_torch() -> bool:
    """Whether the compiled step gives torch's bits on this processor and build: three steps of both on a small
    random problem (whole blocks and a remainder, with and without weight decay), checked once per process. Where
    they differ (another processor's vector code), torch's own step is used."""
    if not _agreement:
        gen = torch.Generator().manual_seed(0)
        ok = True
        for wd, decoupled in ((0.0, False), (1e-2, False), (1e-2, True)):
            base = torch.randn(70 * BLOCK + 37, generator=gen)
            ref, ours = (torch.nn.Parameter(base.clone()) for _ in range(2))
            ref_opt, our_opt = (cls([t], lr=1e-2, weight_decay=wd, decoupled_weight_decay=decoupled)
                                for cls, t in ((torch.optim.Adam, ref), (Adam, ours)))
            for _ in range(3):
                grad = torch.randn(base.shape, generator=gen)
                ref.grad, ours.grad = grad.clone(), grad.clone()
                ref_opt.step()
                our_opt._step_all_fast()
            ok = ok and torch.equal(ref, ours)
        _agreement.append(ok)
    return _agreement[0]


class Adam(torch.optim.Adam):
    """``torch.optim.Adam`` whose CPU step takes three passes per parameter (see the module), same bits."""

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        if not fast_path_applies() or not all(_group_applies(g) for g in self.param_groups):
            return super().step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._step_all_fast()
        return loss

    @torch.no_grad()
    def _step_all_fast(self) -> None:
        """Every parameter with a gradient: the compiled passes where :func:`_param_applies`, else torch's step."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state, bias = self._advance(p, group)
                start = self._step_fast(p, group, state, bias) if _param_applies(p) else 0
                if start < p.numel():
                    self._step_torch(p, group, state, bias, start)

    def _advance(self, p: torch.Tensor, group: dict[str, Any]) -> tuple[dict[str, torch.Tensor], tuple[float, float]]:
        """Count the step in ``p``'s state (created as torch creates it: ``step`` a float scalar tensor,
        ``exp_avg``, ``exp_avg_sq``) and return it with torch's bias terms (sqrt(1 - b2^t), -lr / (1 - b1^t))."""
        state = self.state[p]
        if not state:
            dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
            state["step"] = torch.tensor(0.0, dtype=dtype)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        beta1, beta2 = group["betas"]
        step = state["step"].item()
        return state, ((1 - beta2 ** step) ** 0.5, -(group["lr"] / (1 - beta1 ** step)))

    @staticmethod
    def _step_torch(p: torch.Tensor, group: dict[str, Any], state: dict[str, torch.Tensor],
                    bias: tuple[float, float], start: int) -> None:
        """torch's single-tensor step, operation by operation, on the elements of ``p`` from ``start`` on (all of
        them, as shaped, where ``start`` is 0: ``p`` need not be contiguous then)."""
        beta1, beta2 = group["betas"]
        tensors = (p, state["exp_avg"], state["exp_avg_sq"], p.grad)
        param, m, v, grad = tensors if start == 0 else (t.reshape(-1)[start:] for t in tensors)
        if group["weight_decay"] != 0 and group.get("decoupled_weight_decay", False):
            param.mul_(1 - group["lr"] * group["weight_decay"])
        elif group["weight_decay"] != 0:
            grad = grad.add(param, alpha=group["weight_decay"])
        m.lerp_(grad, 1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (v.sqrt() / bias[0]).add_(group["eps"])
        param.addcdiv_(m, denom, value=bias[1])

    @staticmethod
    def _step_fast(p: torch.Tensor, group: dict[str, Any], state: dict[str, torch.Tensor],
                   bias: tuple[float, float]) -> int:
        """The compiled passes over the whole blocks of ``p``; returns where they stopped (torch's step does the
        rest)."""
        beta1, beta2 = group["betas"]
        wd, decoupled, f32 = group["weight_decay"], group.get("decoupled_weight_decay", False), np.float32
        n = p.numel() - p.numel() % BLOCK
        arrays = [t.view(-1).numpy() for t in (p, p.grad, state["exp_avg"], state["exp_avg_sq"])]
        k = _kernels()
        k["moments"](*arrays, n, f32(wd), wd != 0 and not decoupled, f32(1 - group["lr"] * wd), wd != 0 and decoupled,
                     f32(1 - beta1), f32(beta2), f32(1 - beta2))
        root = torch.sqrt(state["exp_avg_sq"].view(-1)[:n])  # torch's own square root (see the module)
        k["update"](arrays[0], arrays[2], root.numpy(), n, f32(bias[0]), f32(group["eps"]), f32(bias[1]))
        return n


class AdamW(Adam):
    """``torch.optim.AdamW`` (Adam with decoupled weight decay, ``p *= 1 - lr * wd`` before the moments) with the
    compiled CPU step of :class:`Adam`, same bits; torch's default weight decay 0.01."""

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, **kwargs: Any) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, decoupled_weight_decay=True, **kwargs)
