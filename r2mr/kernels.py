"""Sparse (CSR) x dense products on the CPU that keep torch's bits and write their output in place.

``csr_mm(a, x)`` computes ``y = A x`` for a CSR tensor ``a`` (n, m) and a dense ``x`` (m, d), giving (n, d).
Summation order: each output row starts at 0.0 and adds ``A[i, k] * x[k]`` over the row's stored entries in
their stored order, one product and one addition per term (no fused multiply-add) -- the order and rounding of
``torch.sparse.mm`` on a CPU, so both give the same bits (tests/test_kernels.py checks it). The output is
allocated uninitialised and written once: no zero-fill and no copy.

Backends (``R2MR_SPMM`` selects one; default ``auto``):

* ``numba``: a single-thread compiled loop (numba), used for float32 CPU tensors; compiled at the first call
  of a process (about a second), nothing is cached on disk.
* ``torch``: ``torch.sparse.mm``, the pure-PyTorch fallback, used on a GPU, for other dtypes, and
  automatically wherever numba cannot be imported.

:func:`use_backend` switches the backend for a block (benchmarks compare both in one process).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any, Callable

import torch

BACKEND_ENV = "R2MR_SPMM"
BACKENDS = ("auto", "numba", "torch")
_forced: list[str] = []  # use_backend's stack
_kernel: Callable[..., None] | None = None


def _compile() -> Callable[..., None] | None:
    """The numba kernel ``(crow, col, val, x, out) -> None`` (out (n, d) written), or None without numba."""
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(inline="always")
    def axpy(v: Any, x: Any, y: Any) -> None:  # y += v * x over one row, in order of the columns
        for j in range(x.shape[0]):
            y[j] += v * x[j]

    @numba.njit(nogil=True)
    def kernel(crow: Any, col: Any, val: Any, x: Any, out: Any) -> None:
        for i in range(out.shape[0]):
            row = out[i]
            row[:] = 0.0
            for k in range(crow[i], crow[i + 1]):
                axpy(val[k], x[col[k]], row)

    return kernel


def numba_available() -> bool:
    """Whether the numba backend can run here (numba imports and compiles)."""
    global _kernel
    if _kernel is None:
        _kernel = _compile() or _unavailable
    return _kernel is not _unavailable


def _unavailable(*args: Any) -> None:  # the marker of "numba cannot be imported"
    raise RuntimeError("numba is not available")


def backend() -> str:
    """The backend in force: :func:`use_backend`'s, else ``$R2MR_SPMM``, else ``auto``."""
    name = _forced[-1] if _forced else os.environ.get(BACKEND_ENV, "auto").strip().lower() or "auto"
    if name not in BACKENDS:
        raise ValueError(f"{BACKEND_ENV}={name!r} is not allowed (allowed: {', '.join(BACKENDS)}); "
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


def _numba_applies(a: torch.Tensor, x: torch.Tensor) -> bool:
    name = backend()
    if (name == "torch" or a.layout != torch.sparse_csr or a.device.type != "cpu" or x.dtype != torch.float32
            or a.dtype != torch.float32):
        return False
    if not numba_available():
        if name == "numba":
            raise RuntimeError(f"{BACKEND_ENV}=numba but numba cannot be imported; fix: pip install numba, or "
                               f"unset {BACKEND_ENV}")
        return False
    return True


def csr_mm(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``A x`` for CSR ``a`` (n, m) and dense ``x`` (m, d) -> (n, d), no gradient (see :func:`r2mr.graph.spmm`)."""
    if not _numba_applies(a, x):
        return torch.sparse.mm(a, x)
    if x.dim() != 2 or a.shape[1] != x.shape[0]:
        raise ValueError(f"csr_mm: shapes {tuple(a.shape)} and {tuple(x.shape)} do not multiply")
    out = torch.empty(a.shape[0], x.shape[1], dtype=x.dtype)
    x = x.detach().contiguous()
    assert _kernel is not None
    _kernel(a.crow_indices().numpy(), a.col_indices().numpy(), a.values().detach().numpy(), x.numpy(), out.numpy())
    return out
