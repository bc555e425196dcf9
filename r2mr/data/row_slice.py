"""Products needed at some rows of a CSR graph only, e.g. R2MR's last user layer at a batch's users.

* ``csr_positions`` / ``csr_gather``: where the stored entries of some CSR rows sit / their (row, column) ids.
* ``csr_rows``: the row slice A[rows] (b, m) and its transpose (m, b) as CSR tensors, repeats allowed.
* ``spmm_rows(a, rows, x)``: (A x)[rows] (b, d), differentiable in ``x``, with the bits of
  ``spmm(A[rows], x, A[rows]^T)``: forward, each row is the same sum of its stored entries in stored order;
  backward, A[rows]^T g sums each column's terms in the order of ``rows``.

Batches draw users per interaction, so ``rows`` repeats the busiest users: on TikTok a batch of 1,024 users
slices ~297k stored entries, five times the whole graph's. With the compiled products (:mod:`r2mr.data.kernels`)
``spmm_rows`` sums each distinct row once and gathers, and builds the transpose by a counting sort in one pass
(no sort of the entries); elsewhere it composes ``csr_rows`` and ``spmm``.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable

import numpy as np
import torch

from . import kernels
from .propagation import spmm


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


def compile_rows_transpose(numba: Any) -> Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The kernel ``(crow, col, val, rows (b,), m) -> (crow (m + 1,), col (n,), val (n,))`` of A[rows]^T: a
    counting sort by column, the entries placed in the order of ``rows``, each row's in stored order -- the
    order of :func:`csr_rows`' transpose, in two passes over the slice's n entries."""

    @numba.njit(nogil=True)
    def rows_transpose(crow: Any, col: Any, val: Any, rows: Any, m: int) -> tuple[Any, Any, Any]:
        t_crow = np.zeros(m + 1, np.int64)
        for r in range(rows.shape[0]):
            for k in range(crow[rows[r]], crow[rows[r] + 1]):
                t_crow[col[k] + 1] += 1
        for c in range(m):
            t_crow[c + 1] += t_crow[c]
        t_col, t_val, nxt = np.empty(t_crow[m], np.int64), np.empty(t_crow[m], val.dtype), t_crow[:m].copy()
        for r in range(rows.shape[0]):
            for k in range(crow[rows[r]], crow[rows[r] + 1]):
                p = nxt[col[k]]
                t_col[p], t_val[p] = r, val[k]
                nxt[col[k]] = p + 1
        return t_crow, t_col, t_val

    return rows_transpose


@functools.cache
def _transpose_kernel() -> Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]:
    import numba

    return compile_rows_transpose(numba)


def rows_transpose(a: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """A[rows]^T (m, b) as a CSR tensor, equal entry for entry (order included) to :func:`csr_rows`' second."""
    if not kernels.numba_applies(a.values()):
        return csr_rows(a, rows)[1]
    crow, col, val = (t.numpy() for t in (a.crow_indices(), a.col_indices(), a.values().detach()))
    arrays = _transpose_kernel()(crow, col, val, rows.to(torch.int64).contiguous().numpy(), a.shape[1])
    return csr_tensor(*(torch.from_numpy(v) for v in arrays), (a.shape[1], len(rows)))


class _RowsSpMM(torch.autograd.Function):
    """y = (A x)[rows]: each distinct row summed once, then gathered; the gradient A[rows]^T g."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.a, ctx.rows = a, rows
        return kernels.csr_mm(a, x, rows=torch.unique(rows)).index_select(0, rows)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[None, None, torch.Tensor]:
        return None, None, kernels.csr_mm(rows_transpose(ctx.a, ctx.rows), g)


def spmm_rows(a: torch.Tensor, rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """(A x)[rows] (b, d) for a CSR ``a`` (n, m), row ids ``rows`` (b,) (repeats allowed) and ``x`` (m, d),
    differentiable in ``x``; the same bits, forward and backward, as ``spmm(*csr_rows(a, rows), x)``
    (itself, where the compiled products do not apply)."""
    if not kernels.fused_applies(a, x):
        sub, sub_t = csr_rows(a, rows)
        return spmm(sub, x, sub_t)
    return _RowsSpMM.apply(a, rows, x)
