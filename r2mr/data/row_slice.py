"""Products needed at some rows of a CSR graph only, e.g. R2MR's last user layer at a batch's users.

* ``csr_positions`` / ``csr_gather``: where the stored entries of some CSR rows sit / their (row, column) ids.
* ``csr_rows``: the row slice A[rows] (b, m) and its transpose (m, b) as CSR tensors, repeats allowed.
* ``spmm_rows(a, rows, x)``: (A x)[rows] (b, d), differentiable in ``x``, with the bits of
  ``spmm(A[rows], x, A[rows]^T)``: forward, each row is the same sum of its stored entries in stored order;
  backward, A[rows]^T g sums each column's terms in the order of ``rows``.

Batches draw users per interaction, so ``rows`` repeats the busiest users: on TikTok a batch of 1,024 users
slices 287k-297k stored entries, five times the whole graph's. With the compiled products (:mod:`r2mr.data.kernels`)
``spmm_rows`` sums each distinct row once and gathers, and adds the gradient's terms straight into the output
rows in the transpose's order (no transpose built, no sort of the entries); elsewhere it composes ``csr_rows``
and ``spmm``. Forward and backward on TikTok's graph, a batch of 1,024 users (287k entries), one thread, medians of
30 alternating calls: 7.5 ms against 26.2 ms through ``csr_rows`` at width 128; 5.6 against 26.1 ms at 64.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable

import torch

from . import kernels
from .prefetch import make_prefetch
from .propagation import spmm
from .stack_buffer import make_stack_buffer

AHEAD = 8  # stored entries ahead whose output rows the scatter prefetches


def csr_positions(indptr: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(counts (b,), positions (n,)): how many entries each of the CSR rows ``rows`` (b,) stores, and where they
    sit in the index and value arrays, row by row in stored order (the one CSR row gather of the package)."""
    starts = indptr.index_select(0, rows)  # (b,)
    counts = indptr.index_select(0, rows + 1) - starts  # (b,)
    offsets = (torch.arange(int(counts.sum()), device=indptr.device)
               - torch.repeat_interleave(counts.cumsum(0) - counts, counts))  # (n,) position within its row
    return counts, torch.repeat_interleave(starts, counts) + offsets


def csr_gather(indptr: torch.Tensor, indices: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch row ids (n,), column ids (n,)) of every stored entry of the CSR rows ``rows`` (b,)."""
    counts, pos = csr_positions(indptr, rows)
    return torch.repeat_interleave(torch.arange(len(rows), device=rows.device), counts), indices[pos]


def csr_tensor(crow: torch.Tensor, col: torch.Tensor, val: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """A CSR tensor from its index and value arrays, without torch's warning that sparse CSR is in beta."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        return torch.sparse_csr_tensor(crow, col, val, shape)


def csr_rows(a: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(A[rows], A[rows]^T) as CSR tensors for a CSR ``a`` (n, m) and row ids ``rows`` (b,), repeats allowed.

    Each kept row keeps its stored entries in the same order, so ``spmm(A[rows], x, A[rows]^T)`` gives
    ``(A x)[rows]`` with the same float operations, and its gradient equals A^T g for a g that is zero
    outside ``rows``. The transpose stores each column's entries in the order of ``rows``. Shapes (b, m) and
    (m, b).
    """
    col, val = a.col_indices(), a.values()
    counts, pos = csr_positions(a.crow_indices(), rows)  # (b,), (n,) positions of the kept entries
    cols, vals = col.index_select(0, pos), val.index_select(0, pos)
    local = torch.repeat_interleave(torch.arange(len(rows), device=a.device), counts)  # (n,) row in the slice
    zero = counts.new_zeros(1)
    order = torch.argsort(cols * len(rows) + local)  # column-major for the transpose
    t_crow = torch.cat([zero, torch.bincount(cols, minlength=a.shape[1]).cumsum(0)])
    sub = csr_tensor(torch.cat([zero, counts.cumsum(0)]), cols, vals, (len(rows), a.shape[1]))
    return sub, csr_tensor(t_crow, local.index_select(0, order), vals.index_select(0, order), (a.shape[1], len(rows)))


def compile_rows_scatter(numba: Any, width: int) -> Callable[..., None]:
    """The kernel ``(crow, col, val, rows (b,), g (b, width), out (m, width)) -> None`` adding A[rows]^T g into a
    zero-filled ``out``: row by row of the slice, in the order of ``rows``, each stored entry's term added to its
    column's output row. Each output row thus starts at +0.0 and adds its terms in the order of the transpose
    that :func:`csr_rows` builds, one product and one addition each: the bits of that transpose's product,
    without building it. ``width`` is a constant of the kernel, so that the compiler keeps g's row in a stack
    buffer (:mod:`r2mr.data.stack_buffer`) and unrolls the row update."""
    prefetch_row, stack_buffer = make_prefetch(numba, width), make_stack_buffer(numba, width)

    @numba.njit(nogil=True)
    def rows_scatter(crow: Any, col: Any, val: Any, rows: Any, g: Any, out: Any) -> None:
        for r in range(rows.shape[0]):
            g_row, start, stop = stack_buffer(), crow[rows[r]], crow[rows[r] + 1]
            for j in range(width):
                g_row[j] = g[r, j]
            for k in range(start, stop):
                if k + AHEAD < stop:  # the output row a few entries ahead, fetched while this one is updated
                    prefetch_row(out, col[k + AHEAD])
                v, o = val[k], out[col[k]]
                for j in range(width):
                    o[j] += v * g_row[j]

    return rows_scatter


@functools.cache
def _scatter_kernel(width: int) -> Callable[..., None]:
    import numba

    return compile_rows_scatter(numba, width)


def rows_transpose_mm(a: torch.Tensor, rows: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """A[rows]^T g (m, d) for a CSR ``a`` (n, m), ``rows`` (b,) and ``g`` (b, d): the bits of
    ``csr_mm(csr_rows(a, rows)[1], g)``, which it is where the compiled kernels do not apply."""
    if not kernels.fused_applies(a, g):
        return kernels.csr_mm(csr_rows(a, rows)[1], g)
    out = torch.zeros(a.shape[1], g.shape[1], dtype=g.dtype)
    crow, col, val = (t.numpy() for t in (a.crow_indices(), a.col_indices(), a.values().detach()))
    _scatter_kernel(g.shape[1])(crow, col, val, rows.to(torch.int64).contiguous().numpy(),
                                g.detach().contiguous().numpy(), out.numpy())
    return out


def rows_mm(a: torch.Tensor, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """(A x)[rows] (b, d), no gradient: each distinct row of ``rows`` summed once (:func:`kernels.csr_mm`'s bits),
    then gathered."""
    return kernels.csr_mm(a, x, rows=torch.unique(rows)).index_select(0, rows)


class _RowsSpMM(torch.autograd.Function):
    """y = (A x)[rows]: each distinct row summed once, then gathered; the gradient A[rows]^T g by scatter."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.a, ctx.rows = a, rows
        return rows_mm(a, x, rows)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[None, None, torch.Tensor]:
        return None, None, rows_transpose_mm(ctx.a, ctx.rows, g)


def spmm_rows(a: torch.Tensor, rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(A x)[rows] (b, d) for a CSR ``a`` (n, m), row ids ``rows`` (b,) (repeats allowed) and ``x`` (m, d),
    differentiable in ``x``; the same bits, forward and backward, as ``spmm(*csr_rows(a, rows), x)``
    (itself, where the compiled products do not apply)."""
    if not kernels.fused_applies(a, x):
        sub, sub_t = csr_rows(a, rows)
        return spmm(sub, x, sub_t)
    return _RowsSpMM.apply(a, rows, x)
