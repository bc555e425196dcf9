"""A software prefetch for numba kernels: ``prefetch_row(x, i)`` asks the CPU to bring row ``i`` of a
C-contiguous 2-D array of a fixed width into cache (every 64-byte line of it), a hint that changes no value.

The sparse product gathers rows of its dense operand in the order of the stored column indices, and on the
larger graphs those rows miss the cache: fetching the row needed a few entries ahead overlaps the misses
(``r2mr.data.kernels``; about 1.3x on Sports). Built with ``llvm.prefetch``; where this LLVM cannot build it,
:func:`make_prefetch` returns a kernel that does nothing, so the product keeps its bits and only loses the hint.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

LINE_FLOATS = 16  # float32 values per 64-byte cache line


NAMES = ("llvm.prefetch.p0", "llvm.prefetch.p0i8")  # the intrinsic's name with opaque / typed pointers


def _intrinsic(numba: Any, name: str) -> Callable[..., None]:
    """The numba intrinsic ``prefetch_at(x, i, j)``: prefetch the line holding ``x[i, j]`` (read, keep in cache)."""
    from llvmlite import ir
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def prefetch_at(typingctx: Any, arr: Any, row: Any, col: Any) -> Any:
        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            ary = context.make_array(sig.args[0])(context, builder, args[0])
            ptr = cgutils.get_item_pointer(context, builder, sig.args[0], ary, [args[1], args[2]])
            i8p, i32 = ir.PointerType(ir.IntType(8)), ir.IntType(32)
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                                name)
            builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])  # read, high locality, data
            return context.get_dummy_value()
        return numba.types.void(arr, row, col), codegen

    return prefetch_at


def _row_prefetch(numba: Any, name: str, width: int) -> Callable[..., None]:
    """``prefetch_row(x, i)`` for rows of ``width`` floats, built on the intrinsic ``name`` and compiled once here
    (raises where it cannot be). The width is a constant of the function, so the lines are prefetched without a
    loop (a loop over ``x.shape[1]`` cost the product ~1.15x at cache-resident columns)."""
    prefetch_at = _intrinsic(numba, name)

    @numba.njit(inline="always")
    def prefetch_row(x: Any, i: int) -> None:
        for j in range(0, width, LINE_FLOATS):  # a constant trip count: unrolled
            prefetch_at(x, i, j)

    numba.njit(lambda x: prefetch_row(x, 0))(np.zeros((1, width), np.float32))  # compile now: fail here, not later
    return prefetch_row


def make_prefetch(numba: Any, width: int) -> Callable[..., None]:
    """``prefetch_row(x, i)`` as an inlined numba function for arrays ``x`` of ``width`` columns; a no-op where no
    name of the intrinsic compiles."""
    for name in NAMES:
        try:
            return _row_prefetch(numba, name, width)
        except Exception:  # noqa: BLE001 -- this LLVM does not build it under that name: try the next, or none
            continue

    @numba.njit(inline="always")
    def no_prefetch(x: Any, i: int) -> None:
        pass

    return no_prefetch
