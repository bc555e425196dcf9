"""The run's runtime: device, seeding, and the process-wide switches a run turns on only while it trains.

* ``resolve_device`` / ``seed_everything``: the device a run asks for, and one seed for Python, NumPy and torch.
* ``keep_freed_memory()``: tells glibc's allocator to serve blocks of any size from the heap and keep
  freed blocks there instead of returning them to the OS (``mallopt``: no mmap, no trimming). A training
  step frees and reallocates the same large temporaries every step; without this each reallocation is
  fresh memory whose first touch costs page faults (measured: up to a third of a step on CPU). Numbers
  are unchanged, so it is on by default. A no-op where glibc is not the C library.
  ``R2MR_KEEP_FREED_MEMORY=1``: only blocks up to 32 MiB (glibc's cap on the mmap threshold); ``=0``: off.
  ``release_freed_memory()`` puts glibc's documented defaults back and returns the kept memory to the OS
  (glibc's *dynamic* mmap threshold, which any ``mallopt`` call switches off, does not come back).
* ``set_tf32(on)``: TF32 matmuls and cuDNN convolutions on Ampere+ GPUs. It changes float32 results (about
  1e-3 relative on the scores), so it is opt-in (R2MR's ``tf32`` key).
* ``run_switches(tf32)``: both switches for the length of one run (the trainer's ``fit``), restored afterwards;
  it yields what was set, which the trainer records in the run's result (``"switches"``). Building a model
  touches none of them, so a model trained later in the same process (a notebook, the sequential executor)
  starts from the process's own settings.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import random
from collections.abc import Iterator

import numpy as np
import torch

from ..core.errors import ConfigError

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -2, -3, -4  # glibc malloc.h
GLIBC_DEFAULTS = {M_MMAP_THRESHOLD: 128 << 10, M_TRIM_THRESHOLD: 128 << 10, M_TOP_PAD: 128 << 10,
                  M_MMAP_MAX: 65536}  # mallopt(3)
KEEP_ENV = "R2MR_KEEP_FREED_MEMORY"


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
    except (OSError, TypeError):
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None  # glibc only


def keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 2**31 - 1, top_pad: int = 64 << 20) -> bool:
    """Serve large allocations from the heap and keep freed memory; True if applied."""
    mode, libc = os.environ.get(KEEP_ENV, "all"), _libc()
    if mode == "0" or libc is None:
        return False
    opts = [(M_MMAP_THRESHOLD, mmap_threshold), (M_TRIM_THRESHOLD, trim_threshold), (M_TOP_PAD, top_pad)]
    if mode != "1":  # also blocks above 32 MiB (glibc's cap on the threshold) from the heap
        opts.append((M_MMAP_MAX, 0))
    ok = all(libc.mallopt(key, value) for key, value in opts)
    log.debug("glibc mallopt (keep freed memory): %s", "applied" if ok else "refused")
    return bool(ok)


def release_freed_memory() -> None:
    """Put glibc's default allocator parameters back and return the kept free memory to the OS."""
    libc = _libc()
    if libc is None:
        return
    for key, value in GLIBC_DEFAULTS.items():
        libc.mallopt(key, value)
    libc.malloc_trim(0)


def set_tf32(on: bool) -> None:
    """Allow (or forbid) TF32 in CUDA matmuls and cuDNN; no effect on CPU."""
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


@contextlib.contextmanager
def run_switches(tf32: bool = False) -> Iterator[dict[str, bool]]:
    """Turn on the run's process-wide switches, yield them as a record, restore the previous state on exit."""
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    kept = keep_freed_memory()
    set_tf32(tf32)
    try:
        yield {"keep_freed_memory": kept, "tf32": tf32}
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
        if kept:
            release_freed_memory()


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda if available, else cpu; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA device is available; fix: use --device cpu or auto")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
