"""Speed switches that leave the maths alone (CPU allocator) or change it only where asked (TF32, compile).

* ``keep_freed_memory()``: tells glibc's allocator to serve blocks of any size from the heap and keep
  freed blocks there instead of returning them to the OS (``mallopt``: no mmap, no trimming). A training
  step frees and reallocates the same large temporaries every step; without this each reallocation is
  fresh memory whose first touch costs page faults (measured: up to a third of a step on CPU). Numbers
  are unchanged; the process's resident memory stays at its peak. A no-op where glibc is not the C
  library. ``R2MR_KEEP_FREED_MEMORY=1``: only blocks up to 32 MiB (glibc's cap on the mmap threshold);
  ``R2MR_KEEP_FREED_MEMORY=0``: off.
* ``set_tf32(on)``: TF32 matmuls and cuDNN convolutions on Ampere+ GPUs. Off by default; on changes
  float32 results (about 1e-3 relative on the scores), beyond the CUDA-vs-CPU tolerance of the tests.
* ``maybe_compile(fn, mode)``: ``torch.compile`` of a model's dense forward (``mode``: ``off``,
  ``default`` or ``reduce-overhead``, the latter using CUDA graphs where the inputs allow).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -2, -3, -4  # glibc malloc.h
COMPILE_MODES = ("off", "default", "reduce-overhead")
_done = False


def keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 2**31 - 1, top_pad: int = 64 << 20) -> bool:
    """Serve large allocations from the heap and keep freed memory (once per process); True if applied."""
    global _done
    if _done:
        return True
    mode = os.environ.get("R2MR_KEEP_FREED_MEMORY", "all")
    if mode == "0":
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    opts = [(M_MMAP_THRESHOLD, mmap_threshold), (M_TRIM_THRESHOLD, trim_threshold), (M_TOP_PAD, top_pad)]
    if mode != "1":  # also blocks above 32 MiB (glibc's cap on the threshold) from the heap
        opts.append((M_MMAP_MAX, 0))
    ok = all(mallopt(key, value) for key, value in opts)
    _done = bool(ok)
    log.debug("glibc mallopt (keep freed memory): %s", "applied" if ok else "refused")
    return _done


def set_tf32(on: bool) -> None:
    """Allow (or forbid) TF32 in CUDA matmuls and cuDNN; no effect on CPU."""
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


def maybe_compile(fn: Callable, mode: str) -> Callable:
    """``fn`` itself (``off``) or ``torch.compile(fn, mode=...)``; ``reduce-overhead`` captures CUDA graphs."""
    if mode == "off":
        return fn
    return torch.compile(fn, mode=mode, dynamic=False)
