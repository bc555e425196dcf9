"""R2MR's tensor maths outside the module (spec sections 5.1-5.5): the gate, the row normalisation with a
fused backward, layer 0, the plain propagation (the reference for R2MR.propagate), the kNN mix weights and
the rewrite-round schedule. Shapes: I items, U users, M modalities, d width, w = M d.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...data.graph import spmm


def gate(e: torch.Tensor, s: torch.Tensor, h: torch.Tensor | None, offset: float) -> torch.Tensor:
    """(s + offset) e + (1 - s) h, element-wise; e (I, d), s (I,), h (I, d) -> (I, d), or stacked over
    modalities: e (I, M, d), s (I, M), h (I, d) -> (I, M, d). ``h=None``: the feature term alone."""
    stacked = e.dim() == 3
    feat = (s + offset).unsqueeze(-1) * e
    if h is None:
        return feat
    return feat + (1 - s).unsqueeze(-1) * (h.unsqueeze(1) if stacked else h)


class _RowNormalise(torch.autograd.Function):
    """y = x / max(||x||, eps) over the last dim (the values of F.normalize) with the closed-form gradient
    g_x = (g - y <g, y>) / n where ||x|| > eps, else g / eps: two passes instead of autograd's chain."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, eps: float) -> torch.Tensor:
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)  # (..., 1)
        n = norm.clamp_min(eps)
        y = x / n
        ctx.save_for_backward(y, n, norm > eps)
        return y

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, None]:
        y, n, big = ctx.saved_tensors
        dot = (g * y).sum(-1, keepdim=True) * big  # (..., 1); no radial part where the norm was clamped
        return (g - y * dot) / n, None


def row_normalise(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """F.normalize(x, dim=-1) with a fused backward; x (..., d)."""
    return _RowNormalise.apply(x, eps)


def layer0(tables: list[torch.Tensor]) -> torch.Tensor:
    """Row-normalised tables side by side: [rn(T_1) || ... || rn(T_M)], (n, M d) from M tables (n, d)."""
    return row_normalise(torch.stack(tables, 1)).flatten(1)


def propagate_sum(adj: torch.Tensor, adj_t: torch.Tensor, u0: torch.Tensor, i0: torch.Tensor,
                  n_layers: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of layers 0..L of U_{l+1} = A I_l, I_{l+1} = A^T U_l (simultaneous); u0 (U, w), i0 (I, w).
    The plain reference form (tests); R2MR.propagate computes the same sums with fewer products."""
    u, i, su, si = u0, i0, u0, i0
    for _ in range(n_layers):
        u, i = spmm(adj, i, adj_t), spmm(adj_t, u, adj)  # (U, w), (I, w)
        su, si = su + u, si + i
    return su, si


def knn_weights(modalities: list[str], image_weight: float) -> dict[str, float]:
    """Mix weights of the per-modality kNN graphs: image gets ``image_weight``, the others share the rest
    equally (official: 0.1 image, 0.9 text); without an image modality every modality gets 1/M."""
    if "image" not in modalities:
        return {m: 1 / len(modalities) for m in modalities}
    rest = (1 - image_weight) / (len(modalities) - 1)
    return {m: image_weight if m == "image" else rest for m in modalities}


def round_epochs(every: int, max_rounds: int, max_epochs: int) -> list[int]:
    """The epochs after which a rewrite round runs: 6, 12, ..., 60 by default."""
    return [e for e in range(1, max_epochs) if e % every == 0][:max_rounds]


COMPILE_MODES = ("off", "default", "reduce-overhead")


def maybe_compile(fn: Callable, mode: str) -> Callable:
    """``fn`` itself (``off``) or ``torch.compile(fn, mode=...)``; ``reduce-overhead`` captures CUDA graphs. The
    compiled function belongs to one model (nothing process-wide changes)."""
    if mode == "off":
        return fn
    return torch.compile(fn, mode=mode, dynamic=False)
