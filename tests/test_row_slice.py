"""Products at some rows of a graph (r2mr.data.row_slice): the compiled path (distinct rows summed once, the
transpose by a counting sort) gives the bits of the row slice and its transpose built by torch, forward and
backward, with repeated, unsorted and empty rows."""

from __future__ import annotations

import pytest
import torch

from r2mr.data import kernels
from r2mr.data.graph import spmm
from r2mr.data.row_slice import csr_rows, rows_transpose, spmm_rows
from tests.test_kernels import bits, needs_numba, random_csr


def sliced(a: torch.Tensor, rows: torch.Tensor, x: torch.Tensor, g: torch.Tensor) -> tuple[bytes, bytes]:
    """(bits of (A x)[rows], bits of its gradient in x for the incoming gradient g) through csr_rows."""
    sub, sub_t = csr_rows(a, rows)
    y = spmm(sub, x, sub_t)
    (gx,) = torch.autograd.grad(y, x, g)
    return bits(y), bits(gx)


@needs_numba
@pytest.mark.parametrize("width", [7, 64, 128])
def test_rows_product_same_bits_as_the_row_slice(width: int) -> None:
    gen = torch.Generator().manual_seed(width)
    a = random_csr(90, 60, 0.15, width)  # row 0 empty
    rows = torch.tensor([5, 0, 5, 89, 3, 5, 0, 41, 3])  # repeats, unsorted, the empty row
    x = torch.randn(60, width, generator=gen, requires_grad=True)
    g = torch.randn(len(rows), width, generator=gen)
    g[1] = -0.0  # a signed zero gradient row
    with kernels.use_backend("numba"):
        y = spmm_rows(a, rows, x)
        (gx,) = torch.autograd.grad(y, x, g)
        assert rows_transpose(a, rows).layout == torch.sparse_csr
    with kernels.use_backend("torch"):
        want = sliced(a, rows, x, g)
    assert (bits(y), bits(gx)) == want
    assert bits(y) == bits(torch.sparse.mm(a, x.detach())[rows])  # and the full product's rows


@needs_numba
def test_rows_transpose_entry_for_entry_as_torch_builds_it() -> None:
    a = random_csr(70, 40, 0.2, 1)
    rows = torch.tensor([3, 9, 3, 0, 69, 12, 9])
    want = csr_rows(a, rows)[1]
    with kernels.use_backend("numba"):
        got = rows_transpose(a, rows)
    for part in ("crow_indices", "col_indices", "values"):
        assert torch.equal(getattr(got, part)(), getattr(want, part)()), part
    assert got.shape == want.shape == (40, len(rows))


def test_rows_product_without_the_compiled_path_is_the_row_slice() -> None:
    a, rows = random_csr(30, 20, 0.3, 2), torch.tensor([2, 2, 29, 0])
    x = torch.randn(20, 5, requires_grad=True)
    g = torch.randn(4, 5)
    with kernels.use_backend("torch"):
        y = spmm_rows(a, rows, x)
        (gx,) = torch.autograd.grad(y, x, g)
        assert (bits(y), bits(gx)) == sliced(a, rows, x, g)
