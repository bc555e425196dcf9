"""Products at some rows of a graph (r2mr.data.row_slice): the compiled path (distinct rows summed once, the
gradient added into the output rows in the transpose's order) gives the bits of the row slice and its transpose
built by torch, forward and backward, with repeated, unsorted and empty rows."""

from __future__ import annotations

import pytest
import torch

from r2mr.data import kernels
from r2mr.data.graph import spmm
from r2mr.data.row_slice import csr_rows, rows_transpose_mm, spmm_rows
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
    with kernels.use_backend("torch"):
        want = sliced(a, rows, x, g)
    assert (bits(y), bits(gx)) == want
    assert bits(y) == bits(torch.sparse.mm(a, x.detach())[rows])  # and the full product's rows


@needs_numba
@pytest.mark.parametrize("width", [1, 7, 64, 128])
def test_transposed_product_by_scatter_same_bits_as_the_built_transpose(width: int) -> None:
    gen = torch.Generator().manual_seed(width)
    a = random_csr(70, 40, 0.2, 1)  # row 0 empty; some columns with no entry in the slice
    rows = torch.tensor([3, 9, 3, 0, 69, 12, 9, 3])
    g = torch.randn(len(rows), width, generator=gen)
    g[2] = -0.0  # terms -0.0: an output row whose only terms they are stays +0.0, as in the built transpose
    g[5, 0] = 3e38  # rounding: the order of the additions shows in the bits
    with kernels.use_backend("numba"):
        got = rows_transpose_mm(a, rows, g)
        want = kernels.csr_mm(csr_rows(a, rows)[1], g)
    assert bits(got) == bits(want) and got.shape == (40, width)
    assert bits(want) == bits(torch.sparse.mm(csr_rows(a, rows)[1], g))


def test_rows_product_without_the_compiled_path_is_the_row_slice() -> None:
    a, rows = random_csr(30, 20, 0.3, 2), torch.tensor([2, 2, 29, 0])
    x = torch.randn(20, 5, requires_grad=True)
    g = torch.randn(4, 5)
    with kernels.use_backend("torch"):
        y = spmm_rows(a, rows, x)
        (gx,) = torch.autograd.grad(y, x, g)
        assert (bits(y), bits(gx)) == sliced(a, rows, x, g)
