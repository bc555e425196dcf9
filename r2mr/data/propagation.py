"""Differentiable propagation over a sparse graph: ``spmm`` (A x) and ``layer_mean`` (LightGCN's mean of
[E^0, A E^0, ..., A^L E^0]), on the compiled products of :mod:`r2mr.data.kernels` where they apply, else on
torch's operations composed by autograd -- the same bits either way (tests/test_kernels.py).

``layer_mean_parts`` takes the embedding tables that are stacked as the graph's rows (users, then items) and
returns the mean's rows split the same way: the stacking and splitting are part of the one operation, so the
backward builds the joined gradient once instead of padding each part's gradient with zeros and adding them.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .kernels import csr_mm, csr_mm_add, fused_applies


class _SpMM(torch.autograd.Function):
    """y = A x with the gradient A^T g computed from a stored transpose (no transposition per call); both
    products by :func:`r2mr.data.kernels.csr_mm` (torch's summation order, output written in place)."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, at: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.at = at
        return csr_mm(a, x)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[None, None, torch.Tensor]:
        return None, None, csr_mm(ctx.at, g)


def spmm(a: torch.Tensor, x: torch.Tensor, at: torch.Tensor | None = None) -> torch.Tensor:
    """Sparse (n, m) @ dense (m, d) -> (n, d), differentiable in ``x``; ``at`` = A^T (default: A is symmetric)."""
    return _SpMM.apply(a, a if at is None else at, x)


def _scaled_gradient(grads: Sequence[torch.Tensor | None], sizes: list[int], divisor: int) -> torch.Tensor:
    """(N, d): the gradient of the stacked mean from its parts' gradients (None: a part not used), divided by
    ``divisor``, with autograd's bits for slices of one tensor: each slice's gradient is padded with +0.0 and the
    padded tensors added, so where two or more parts have a gradient each value is g + 0.0 (-0.0 becomes +0.0),
    and where one has, the others' rows are +0.0 and its own are g."""
    if len(grads) == 1:
        return grads[0].contiguous() / divisor  # type: ignore[union-attr]
    present = [g for g in grads if g is not None]
    joined = torch.cat([g.contiguous() if g is not None else present[0].new_zeros(n, present[0].shape[1])
                        for g, n in zip(grads, sizes)])
    if len(present) > 1:
        joined.add_(0.0)
    return joined.div_(divisor)


class _LayerMean(torch.autograd.Function):
    """mean(E^0, A E^0, ..., A^L E^0) as one operation, E^0 the parts stacked: L fused products forward (each adds
    its rows into the running sum while they are in cache), L backward, two (N, d) buffers in turn, nothing
    saved but A^T. Returns the mean, or with several parts its rows split as the parts were stacked.

    ``last_rows`` (sorted, unique): the last layer is computed at these rows only; the other rows of the output
    then hold the first L layers' share and must not be read (their gradient must be zero).

    Backward: with g_t = g / (L + 1), the gradient of layer L is g_t and that of layer l < L is
    g_t + A^T (gradient of layer l + 1): the two terms autograd adds for the running sum's graph (an addition of
    two floats is the same either way round), so the bits equal the composed operations'. With ``last_rows``
    the first product reads only those rows of g (the others are zero, as they are not read): the others' terms
    are zeros."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, at: torch.Tensor, n_layers: int, last_rows: torch.Tensor | None,
                *parts: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        ctx.set_materialize_grads(False)
        ctx.at, ctx.n_layers, ctx.live, ctx.sizes = at, n_layers, None, [len(p) for p in parts]
        ego = parts[0] if len(parts) == 1 else torch.cat(parts)  # (N, d)
        if last_rows is not None:
            ctx.live = torch.zeros(len(ego), dtype=torch.bool).index_fill_(0, last_rows, True)
        total = ego + 0.0  # (N, d); -0.0 entries become +0.0 as in the stacked sum
        h, spare = ego, torch.empty_like(total)
        for layer in range(n_layers):
            rows = last_rows if layer == n_layers - 1 else None
            csr_mm_add(a, h, total, spare, into_other=True, rows=rows)  # spare = A h; total += spare
            h, spare = spare, (h if h is not ego else torch.empty_like(total))
        total.div_(n_layers + 1)
        return total if len(parts) == 1 else total.split(ctx.sizes)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        g_t = _scaled_gradient(grads, ctx.sizes, ctx.n_layers + 1)  # (N, d), every layer's share of the sum
        live = ctx.live  # (N,) bool: the rows that may have a gradient (last_rows), or None: all
        cur, spare = g_t, torch.empty_like(g_t)
        for _ in range(ctx.n_layers):
            csr_mm_add(ctx.at, cur, g_t, spare, into_other=False, live=live)  # spare = A^T cur + g_t
            cur, spare, live = spare, (cur if cur is not g_t else torch.empty_like(g_t)), None
        return (None, None, None, None, *cur.split(ctx.sizes))


def layer_mean(a: torch.Tensor, ego: torch.Tensor, n_layers: int, at: torch.Tensor | None = None,
               last_rows: torch.Tensor | None = None) -> torch.Tensor:
    """mean(E^0, A E^0, ..., A^L E^0) for CSR ``a`` (N, N) and ``ego`` (N, d) -> (N, d), differentiable in
    ``ego``; ``at`` = A^T (default: A is symmetric). The fused numba path where :func:`kernels.fused_applies`,
    else products and in-place additions composed by autograd: the same bits (tests/test_kernels.py).

    ``last_rows`` (r,) sorted unique int64: the rows a loss reads; the fused path computes the last layer there
    only (same values there), and the output's other rows are then not the mean: read only ``last_rows``."""
    at = a if at is None else at
    if fused_applies(a, ego) and fused_applies(at, ego):
        return _LayerMean.apply(a, at, n_layers, last_rows, ego)
    h = ego
    total = ego + 0.0  # (N, d); -0.0 entries become +0.0 as in the stacked sum
    for _ in range(n_layers):
        h = spmm(a, h, at)
        total.add_(h)  # in place: autograd saves nothing of ``total`` for these two operations
    return total.div_(n_layers + 1)


def layer_mean_parts(a: torch.Tensor, parts: Sequence[torch.Tensor], n_layers: int, at: torch.Tensor | None = None,
                     last_rows: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """:func:`layer_mean` of ``torch.cat(parts)`` (each (N_k, d)), split back into the parts' rows: the same bits
    as concatenating, taking the mean and slicing it, values and gradients, in one operation on the fused path."""
    at = a if at is None else at
    if all(fused_applies(a, p) and fused_applies(at, p) for p in parts):
        return _LayerMean.apply(a, at, n_layers, last_rows, *parts)
    return slice_parts(layer_mean(a, torch.cat(list(parts)), n_layers, at, last_rows), parts)


def slice_parts(out: torch.Tensor, parts: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """``out`` (N, d), rows stacked as ``parts`` (each (N_k, d)), cut back into slices of the parts' rows: views,
    whose gradients autograd pads with zeros and adds (the bits :class:`_LayerMean`'s backward reproduces)."""
    pieces, start = [], 0
    for part in parts:
        pieces.append(out[start:start + len(part)])
        start += len(part)
    return tuple(pieces)
