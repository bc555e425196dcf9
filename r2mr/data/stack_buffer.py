"""A small float32 buffer on the stack for numba kernels: ``stack_buffer()`` returns an array of ``size`` floats
that lives in the calling kernel's stack frame, a change of where the values live, never of what they are.

Why: the sparse product sums each output row in a private buffer (:mod:`r2mr.data.kernels`). A buffer from
``np.empty`` is heap memory the compiler cannot tell apart from the dense operand, so it loads and stores the
whole buffer for every term (and tests at run time that the two do not overlap). A buffer on the stack cannot
overlap any argument; with a constant width the compiler keeps it in vector registers for the whole row: a
product on the Baby graph took 2.8-3.0 instead of 3.5-4.1 ms, side by side, same bits. Built with an
``alloca`` in the kernel's entry block; where that cannot be built, :func:`make_stack_buffer` returns one
that allocates with ``np.empty``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def _intrinsic(numba: Any, size: int) -> Callable[..., Any]:
    """The numba intrinsic ``stack_pointer()``: a pointer to ``size`` float32 values in the caller's frame."""
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    @intrinsic
    def stack_pointer(typingctx: Any) -> Any:
        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            return cgutils.alloca_once(builder, ir.FloatType(), size=size)  # in the function's entry block
        return types.CPointer(types.float32)(), codegen

    return stack_pointer


def _stack_buffer(numba: Any, size: int) -> Callable[[], Any]:
    """``stack_buffer()`` built on the intrinsic, compiled once here (raises where it cannot be)."""
    stack_pointer = _intrinsic(numba, size)

    @numba.njit(inline="always")
    def stack_buffer() -> Any:
        return numba.carray(stack_pointer(), size)

    def probe() -> float:
        buf = stack_buffer()
        buf[size - 1] = 1.5
        return buf[size - 1]

    if numba.njit(probe)() != 1.5:  # compile and run now: fail here, not inside a kernel
        raise RuntimeError("the stack buffer did not hold its value")
    return stack_buffer


def make_stack_buffer(numba: Any, size: int) -> Callable[[], Any]:
    """``stack_buffer()`` -> a (size,) float32 array, inlined into numba kernels; call it once per kernel call
    (outside loops). Falls back to ``np.empty(size, np.float32)`` where the intrinsic cannot be built."""
    try:
        return _stack_buffer(numba, size)
    except Exception:  # noqa: BLE001 -- this numba or LLVM cannot build it: the heap buffer keeps the bits
        pass

    @numba.njit(inline="always")
    def heap_buffer() -> Any:
        return np.empty(size, np.float32)

    return heap_buffer
