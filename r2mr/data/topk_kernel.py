"""The top-k selection kernel of evaluation (numba): the indices ``torch.topk`` gives on a CPU, ties included,
in one pass with a heap per row; :func:`r2mr.data.kernels.topk_indices` calls it and falls back to torch."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def compile_topk(numba: Any) -> Callable[..., None]:
    """The top-k kernel ``(s (B, n), k, by_columns, out (B, k) int64) -> None``: per row, the selection of
    ``torch.topk(largest=True, sorted=True)`` on a CPU where k * 64 <= n, step by step -- a heap of the first k
    (value, index) pairs ordered by "NaN first, then greater", each later entry that comes before the heap's top
    replacing it, then the heap sorted (the partial sort of the C++ library torch is built with) -- so that
    tied values come out in the same order. ``by_columns`` walks the items in the outer loop (for scores stored
    item-major, ``s`` a transposed view), else the users."""
    njit = numba.njit

    @njit(inline="always")
    def before(a: Any, b: Any) -> bool:  # torch.topk's order (largest): NaN first, then greater
        return (a != a and b == b) or a > b

    @njit
    def adjust(hv: Any, hi: Any, hole: int, length: int, v: Any, vi: int) -> None:  # sift the hole down, push v
        top, child = hole, hole
        while child < (length - 1) // 2:
            child = 2 * (child + 1)
            if before(hv[child], hv[child - 1]):
                child -= 1
            hv[hole], hi[hole] = hv[child], hi[child]
            hole = child
        if length % 2 == 0 and child == (length - 2) // 2:
            child = 2 * (child + 1)
            hv[hole], hi[hole] = hv[child - 1], hi[child - 1]
            hole = child - 1
        while hole > top and before(hv[(hole - 1) // 2], v):
            parent = (hole - 1) // 2
            hv[hole], hi[hole] = hv[parent], hi[parent]
            hole = parent
        hv[hole], hi[hole] = v, vi

    @njit
    def make_heap(hv: Any, hi: Any, length: int) -> None:
        parent = (length - 2) // 2
        while length >= 2:
            adjust(hv, hi, parent, length, hv[parent], hi[parent])
            if parent == 0:
                return
            parent -= 1

    @njit
    def sort_heap(hv: Any, hi: Any, length: int) -> None:
        last = length
        while last > 1:
            last -= 1
            v, vi = hv[last], hi[last]
            hv[last], hi[last] = hv[0], hi[0]
            adjust(hv, hi, 0, last, v, vi)

    @njit(nogil=True)
    def topk_kernel(s: Any, k: int, by_columns: bool, out: Any) -> None:
        n_rows, n = s.shape
        hv, hi, top = np.empty((n_rows, k), s.dtype), np.empty((n_rows, k), np.int64), np.empty(n_rows, s.dtype)
        for j in range(k):
            for i in range(n_rows):
                hv[i, j], hi[i, j] = s[i, j], j
        for i in range(n_rows):
            make_heap(hv[i], hi[i], k)
            top[i] = hv[i, 0]
        if by_columns:
            for j in range(k, n):
                for i in range(n_rows):
                    if before(s[i, j], top[i]):
                        adjust(hv[i], hi[i], 0, k, s[i, j], j)
                        top[i] = hv[i, 0]
        else:
            for i in range(n_rows):
                for j in range(k, n):
                    if before(s[i, j], top[i]):
                        adjust(hv[i], hi[i], 0, k, s[i, j], j)
                        top[i] = hv[i, 0]
        for i in range(n_rows):
            sort_heap(hv[i], hi[i], k)
            out[i] = hi[i]

    return topk_kernel
