"""The run's runtime: device, seeding, and the process-wide switches a run turns on only while it trains.

* ``resolve_device`` / ``seed_everything``: the device a run asks for, and one seed for Python, NumPy and torch.
* the allocator: :mod:`r2mr.core.memory` (``R2MR_MALLOC``) keeps freed memory in the heap; a CPU trainer
  applies it for the process when built, and ``run_switches`` applies it for a run where nothing had (and puts
  back what it changed afterwards).
* ``set_tf32(on)``: TF32 matmuls and cuDNN convolutions on Ampere+ GPUs. It changes float32 results (about
  1e-3 relative on the scores), so it is opt-in (R2MR's ``tf32`` key).
* ``run_switches(tf32)``: both switches for the length of one run (the trainer's ``fit``), restored afterwards
  (the allocator only where the run applied it); it yields what was in force, which the trainer records in the
  run's result (``"switches"``). Building a model touches none of them, so a model trained later in the same
  process (a notebook, the sequential executor) starts from the process's own settings.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch

from ..core import memory
from ..core.errors import ConfigError


def set_tf32(on: bool) -> None:
    """Allow (or forbid) TF32 in CUDA matmuls and cuDNN; no effect on CPU."""
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on


@contextlib.contextmanager
def run_switches(tf32: bool = False) -> Iterator[dict[str, bool]]:
    """Turn on the run's process-wide switches, yield them as a record, restore the previous state on exit."""
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    applied_here = not memory.in_force()
    kept = memory.keep_freed_memory()
    set_tf32(tf32)
    try:
        yield {"keep_freed_memory": kept, "tf32": tf32}
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
        if kept and applied_here:
            memory.release_freed_memory()


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
