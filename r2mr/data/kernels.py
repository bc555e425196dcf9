"""CPU kernels of training and evaluation that give torch's bits faster (numba), each with a torch fallback.

* ``csr_mm(a, x)``: sparse (CSR) x dense, written in place (the propagation of every graph model).
* ``dot_scores(users, items)``: the score product in its fast orientation, same bits.
* ``topk_indices(scores, k)``: the indices of ``torch.topk`` with its tie order: rows without ties from a few
  candidates above a sampled threshold (:mod:`r2mr.data.topk_sampled`), the others with a heap in one pass.

``csr_mm(a, x)`` computes ``y = A x`` for a CSR tensor ``a`` (n, m) and a dense ``x`` (m, d), giving (n, d).
Summation order: each output row starts at 0.0 and adds ``A[i, k] * x[k]`` over the row's stored entries in
their stored order, one product and one addition per term (no fused multiply-add) -- the order and rounding of
``torch.sparse.mm`` on a CPU, so both give the same bits (tests/test_kernels.py checks it). The output is
allocated uninitialised and written once: no zero-fill and no copy. Each row is summed in a buffer on the stack
(:mod:`r2mr.data.stack_buffer`). Widths that are multiples of ``PANEL`` (64: every model's tables; R2MR's two
modalities side by side make 128) go to kernels of constant width, one per output mode and for one panel or
several (the tables viewed as (rows * panels, PANEL)), which keep the buffer in vector registers for the whole
row; other widths to one kernel with panels of at most ``PANEL`` columns. The dense rows of the entries a few
places ahead are prefetched (:mod:`r2mr.data.prefetch`). What bounds it: ``benchmarks/bench_floor.py``.

Backends (``R2MR_SPMM`` selects one; default ``auto``):

* ``numba``: single-thread compiled loops (numba), used for float32 CPU tensors; each compiled at its first
  call in a process (about half a second each), nothing is cached on disk.
* ``torch``: ``torch.sparse.mm``, ``users @ items.T`` and ``torch.topk``, the pure-PyTorch fallback: used on a
  GPU, for other dtypes, and automatically wherever numba cannot be imported.

:func:`use_backend` switches the backend for a block (benchmarks compare both in one process).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any, Callable

import numpy as np
import torch

from ..core.errors import ConfigError
from .prefetch import make_prefetch
from .stack_buffer import make_stack_buffer
from .topk_kernel import compile_topk
from .topk_sampled import compile_topk_sampled, select_topk

BACKEND_ENV = "R2MR_SPMM"
BACKENDS = ("auto", "numba", "torch")
_forced: list[str] = []  # use_backend's stack
PREFETCH_AHEAD = 8  # stored entries ahead whose dense rows the product prefetches
PANEL = 64  # dense columns a row sums at once, in a stack buffer the compiler keeps in registers
PLAIN, ADD_INTO_OTHER, ADD_OTHER = 0, 1, 2  # what csr_mm_add does with the product's rows besides storing them


def _compile() -> dict[str, Callable[..., None]] | None:
    """The numba kernels by name (``csr_mm``, ``topk``), or None where numba cannot be imported."""
    try:
        import numba
    except ImportError:
        return None
    prefetch_row, stack_buffer = make_prefetch(numba, PANEL), make_stack_buffer(numba, PANEL)
    ahead = PREFETCH_AHEAD

    @numba.njit(inline="always")
    def row_sum(crow: Any, col: Any, val: Any, x: Any, i: int, acc: Any, live: Any) -> None:
        # acc = (A x)[i], x of the constant width PANEL (acc stays in registers); rows of x outside a non-empty
        # ``live`` are zero (terms skipped). Unsigned indices: numba tests a signed one for < 0 at every access
        nnz, masked, u_ahead = np.uint64(col.shape[0]), live.shape[0] > 0, np.uint64(ahead)
        for j in range(PANEL):
            acc[j] = 0.0
        for k in range(np.uint64(crow[i]), np.uint64(crow[i + 1])):  # unsigned: no test for negative indices
            if k + u_ahead < nnz:  # the row a few entries ahead, fetched while this one is summed
                prefetch_row(x, np.uint64(col[k + u_ahead]))
            c = np.uint64(col[k])
            if masked and not live[c]:
                continue
            v = val[k]
            for j in range(PANEL):
                acc[j] += v * x[c, j]

    @numba.njit(inline="always")
    def row_panel_sum(crow: Any, col: Any, val: Any, x: Any, panels: int, p: int, i: int, acc: Any,
                      live: Any) -> None:
        # row_sum for the panel p of a width panels * PANEL, x viewed as (m * panels, PANEL) (row c's panel p at
        # row c * panels + p). Kept apart from row_sum: with panels = 1 passed as a constant the additions
        # into the running sum ran ~1.4x slower
        nnz, masked, u_ahead, u_panels, u_p = (np.uint64(col.shape[0]), live.shape[0] > 0, np.uint64(ahead),
                                               np.uint64(panels), np.uint64(p))  # no int64 (uint64 + int64: float)
        for j in range(PANEL):
            acc[j] = 0.0
        for k in range(np.uint64(crow[i]), np.uint64(crow[i + 1])):
            if p == 0 and k + u_ahead < nnz:
                for q in range(u_panels):
                    prefetch_row(x, np.uint64(col[k + u_ahead]) * u_panels + q)
            c = np.uint64(col[k])
            if masked and not live[c]:
                continue
            v, row = val[k], c * u_panels + u_p
            for j in range(PANEL):
                acc[j] += v * x[row, j]

    @numba.njit(inline="always")
    def panel_sum(crow: Any, col: Any, val: Any, x: Any, i: int, j0: int, width: int, acc: Any,
                  live: Any) -> None:
        # acc[:width] = (A x)[i, j0:j0 + width], any width, as row_sum. Unsigned flat indices: a signed j0 + j
        # would make the compiler test each index for a negative value (numpy's wrap-around), ~3x slower
        masked, flat, w = live.shape[0] > 0, x.reshape(-1), np.uint64(width)
        for j in range(w):
            acc[j] = 0.0
        for k in range(crow[i], crow[i + 1]):
            c = col[k]
            if masked and not live[c]:
                continue
            v, base = val[k], np.uint64(c * x.shape[1] + j0)
            for j in range(w):
                acc[j] += v * flat[base + j]

    @numba.njit(inline="always")
    def store(out: Any, other: Any, mode: int, i: int, j0: int, width: int, acc: Any) -> None:
        if mode == ADD_INTO_OTHER:  # other[i] += (A x)[i], the row still in cache
            for j in range(width):
                out[i, j0 + j] = acc[j]
                other[i, j0 + j] += acc[j]
        elif mode == ADD_OTHER:  # out[i] = (A x)[i] + other[i]
            for j in range(width):
                out[i, j0 + j] = acc[j] + other[i, j0 + j]
        else:
            for j in range(width):
                out[i, j0 + j] = acc[j]

    def fast_kernel(mode: int, one_panel: bool) -> Callable[..., None]:
        # the rows of a product whose width is a multiple of PANEL, in mode ``mode``, one panel or several: a
        # function of its own for each (the same arguments; one panel ignores ``panels``), since a second loop
        # in the same function (another mode, or other widths) made this one ~1.3x slower
        @numba.njit(nogil=True)
        def csr_mm_one_panel(crow: Any, col: Any, val: Any, x: Any, out: Any, other: Any, panels: int,
                             rows: Any, live: Any) -> None:
            acc = stack_buffer()  # the row being summed, in vector registers
            for r in range(rows.shape[0] if rows.shape[0] else out.shape[0]):
                i = rows[r] if rows.shape[0] else r
                row_sum(crow, col, val, x, i, acc, live)
                store(out, other, mode, i, 0, PANEL, acc)

        @numba.njit(nogil=True)
        def csr_mm_panels(crow: Any, col: Any, val: Any, x: Any, out: Any, other: Any, panels: int,
                          rows: Any, live: Any) -> None:
            # x, out, other: (rows * panels, PANEL), the (rows, panels * PANEL) tables viewed panel by panel
            acc = stack_buffer()  # the panel being summed, in vector registers
            for r in range(rows.shape[0] if rows.shape[0] else out.shape[0] // panels):
                i = rows[r] if rows.shape[0] else r
                for p in range(panels):
                    row_panel_sum(crow, col, val, x, panels, p, i, acc, live)
                    store(out, other, mode, i * panels + p, 0, PANEL, acc)

        return csr_mm_one_panel if one_panel else csr_mm_panels

    @numba.njit(nogil=True)
    def csr_mm_kernel(crow: Any, col: Any, val: Any, x: Any, out: Any, other: Any, mode: int, rows: Any,
                      live: Any) -> None:
        d, acc = x.shape[1], stack_buffer()
        for r in range(rows.shape[0] if rows.shape[0] else out.shape[0]):  # panels of at most PANEL columns
            i = rows[r] if rows.shape[0] else r
            for j0 in range(0, d, PANEL):
                width = min(PANEL, d - j0)
                panel_sum(crow, col, val, x, i, j0, width, acc, live)
                store(out, other, mode, i, j0, width, acc)

    fast = {f"csr_mm_{mode}_{one}": fast_kernel(mode, one) for mode in (PLAIN, ADD_INTO_OTHER, ADD_OTHER)
            for one in (True, False)}
    return {"csr_mm": csr_mm_kernel, **fast, "topk": compile_topk(numba), "topk_sampled": compile_topk_sampled(numba)}


_kernels: dict[str, Callable[..., None]] | None = None
_UNAVAILABLE: dict[str, Callable[..., None]] = {}  # the marker of "numba cannot be imported"


def numba_available() -> bool:
    """Whether the numba backend can run here (numba imports and compiles)."""
    global _kernels
    if _kernels is None:
        _kernels = _compile() or _UNAVAILABLE
    return _kernels is not _UNAVAILABLE


def backend() -> str:
    """The backend in force: :func:`use_backend`'s, else ``$R2MR_SPMM``, else ``auto``."""
    name = _forced[-1] if _forced else os.environ.get(BACKEND_ENV, "auto").strip().lower() or "auto"
    if name not in BACKENDS:
        raise ConfigError(f"{BACKEND_ENV}={name!r} is not allowed (allowed: {', '.join(BACKENDS)}); "
                         f"fix: unset it or set e.g. {BACKEND_ENV}=auto")
    return name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Products inside the block use backend ``name`` (auto | numba | torch)."""
    if name not in BACKENDS:
        raise ValueError(f"backend {name!r} is not allowed (allowed: {', '.join(BACKENDS)})")
    _forced.append(name)
    try:
        yield
    finally:
        _forced.pop()


def numba_applies(*tensors: torch.Tensor) -> bool:
    """Whether the numba backend computes an operation on ``tensors``: CPU float32, numba asked for or available
    (``R2MR_SPMM`` not ``torch``). Every compiled path of the package asks here (also Adam's step and dropout)."""
    name = backend()
    if name == "torch" or any(t.device.type != "cpu" or t.dtype != torch.float32 for t in tensors):
        return False
    if not numba_available():
        if name == "numba":
            raise ConfigError(f"{BACKEND_ENV}=numba but numba cannot be imported; fix: pip install numba, or "
                               f"unset {BACKEND_ENV}")
        return False
    return True


def csr_mm(a: torch.Tensor, x: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
    """``A x`` for CSR ``a`` (n, m) and dense ``x`` (m, d) -> (n, d), no gradient (see :func:`r2mr.graph.spmm`).
    ``rows`` (r,) int64: only these output rows are needed (the others may be left uninitialised)."""
    if a.layout != torch.sparse_csr or not numba_applies(a, x):
        return torch.sparse.mm(a, x)
    if x.dim() != 2 or a.shape[1] != x.shape[0]:
        raise ValueError(f"csr_mm: shapes {tuple(a.shape)} and {tuple(x.shape)} do not multiply")
    out = torch.empty(a.shape[0], x.shape[1], dtype=x.dtype)
    _run_csr_mm(a, x, out, out, PLAIN, rows)
    return out


_ALL_ROWS, _ALL_LIVE = np.empty(0, np.int64), np.empty(0, np.bool_)  # the kernel's "every row" markers


def _run_csr_mm(a: torch.Tensor, x: torch.Tensor, out: torch.Tensor, other: torch.Tensor, mode: int,
                rows: torch.Tensor | None = None, live: torch.Tensor | None = None) -> None:
    x = x.detach().contiguous()
    assert _kernels is not None
    crow, col, val = a.crow_indices().numpy(), a.col_indices().numpy(), a.values().detach().numpy()
    rows_np = _ALL_ROWS if rows is None else rows.to(torch.int64).contiguous().numpy()
    live_np = _ALL_LIVE if live is None else live.to(torch.bool).contiguous().numpy()
    if x.shape[1] % PANEL == 0:  # the kernels of constant width, on the tables viewed as (rows * panels, PANEL)
        by_panel = [t.numpy().reshape(-1, PANEL) for t in (x, out, other)]
        panels = x.shape[1] // PANEL
        _kernels[f"csr_mm_{mode}_{panels == 1}"](crow, col, val, *by_panel, panels, rows_np, live_np)
    else:
        _kernels["csr_mm"](crow, col, val, x.numpy(), out.numpy(), other.numpy(), mode, rows_np, live_np)


def csr_mm_add(a: torch.Tensor, x: torch.Tensor, other: torch.Tensor, out: torch.Tensor, into_other: bool,
               rows: torch.Tensor | None = None, live: torch.Tensor | None = None) -> None:
    """``out = A x`` (n, d) for CSR ``a`` (n, m) and ``x`` (m, d), fused with one addition per element while each
    row is in cache: ``other += out`` where ``into_other``, else ``out += other``; ``other`` and ``out`` (n, d)
    contiguous float32, written in place. The product's bits are :func:`csr_mm`'s, and one addition of two floats
    is the same either way round, so the result equals the separate product and ``add_``. Numba only: callers
    check :func:`fused_applies` and otherwise compose :func:`csr_mm` and ``add_``.

    ``rows`` (r,) int64: compute only these output rows (the others of ``out`` and ``other`` are left as they
    are). ``live`` (m,) bool: the rows of ``x`` that may be non-zero; the others are taken as zero and their terms
    skipped. A skipped term is ``a * 0.0 = ±0.0``, and a sum that starts at +0.0 is unchanged by adding one, so
    the bits are those of the full product wherever ``x`` is zero outside ``live``."""
    if not (other.is_contiguous() and out.is_contiguous() and other.shape == out.shape == (a.shape[0], x.shape[1])):
        raise ValueError(f"csr_mm_add: shapes {tuple(a.shape)}, {tuple(x.shape)}, {tuple(other.shape)} and "
                         f"{tuple(out.shape)} do not fit, or an output is not contiguous")
    _run_csr_mm(a, x, out, other, ADD_INTO_OTHER if into_other else ADD_OTHER, rows, live)


def fused_applies(a: torch.Tensor, x: torch.Tensor) -> bool:
    """Whether :func:`csr_mm_add` computes ``A x`` for these tensors (CSR ``a``, CPU float32, numba)."""
    return a.layout == torch.sparse_csr and numba_applies(a, x)


def topk_indices(scores: torch.Tensor, k: int) -> torch.Tensor:
    """``scores.topk(k, dim=1).indices`` (B, k) for scores (B, n), the same indices in the same order, ties
    included (:mod:`r2mr.data.topk_sampled`, then the heap of :mod:`r2mr.data.topk_kernel`). Item-major scores (a
    transposed view of (n, B), the score product's fast orientation) are read in that order, without a copy.
    Falls back to ``torch.topk`` off the CPU, for other dtypes, without numba, and where k * 64 > n (torch then
    selects with another algorithm)."""
    if scores.dim() != 2 or not 0 < k * 64 <= scores.shape[1] or not numba_applies(scores):
        return scores.topk(k, dim=1).indices
    out = torch.empty(scores.shape[0], k, dtype=torch.int64)
    by_columns = scores.stride(0) < scores.stride(1)  # item-major storage
    assert _kernels is not None
    select_topk(_kernels, scores.detach().numpy(), k, by_columns, out.numpy())
    return out


FAST_ORIENTATION_MIN = 16  # below this many users or items, MKL's small-size kernels round differently


def dot_scores(users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Scores ``users @ items.T``, (B, I) from users (B, d) and items (I, d), with the same bits.

    On a CPU with B and I >= 16 computed as ``(items @ users.T).T`` (a transposed view of an item-major (I, B)
    product, about 1.5x faster with MKL): each score is then the same dot product, accumulated in the same order
    (tests/test_kernels.py checks shapes from 16 to 18,357 at widths 16 to 1024); :func:`topk_indices` reads it
    item by item. The ``torch`` backend keeps the plain product."""
    if users.device.type == "cpu" and min(users.shape[0], items.shape[0]) >= FAST_ORIENTATION_MIN \
            and backend() != "torch":
        return (items @ users.T).T
    return users @ items.T
