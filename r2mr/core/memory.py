"""The memory policy of training on a CPU: freed blocks stay in the process's heap for the next step.

Each training step frees and allocates tables of the same sizes again (N x d floats, 4-14 MB on the Amazon
graphs), and each evaluation batch a score block of B x I floats (115 MB on Baby, 300 MB on Sports). With its
defaults, glibc's malloc serves a block above its mmap threshold (32 MB at most) from a fresh mapping and hands
freed heap memory above its trim threshold back to the system, so the next block of the same size is paged in
again: one page fault per 4 KiB, about 2.4 us each on the virtual machine this was measured on, 4 ms for one
Baby table -- a third of a LightGCN step and of an evaluation on Baby went to page faults.

:func:`keep_freed_memory` asks malloc (``mallopt``) to serve every block from its heap (``M_MMAP_MAX`` = 0)
and never to trim it (``M_TRIM_THRESHOLD`` at its largest value): a process then keeps its peak heap until it
ends (a training run's peak is what it needs anyway) and reuses it without a fault. Numbers do not change
(only where memory comes from). It applies to glibc only; elsewhere it does nothing. ``R2MR_MALLOC=system``
keeps the system's defaults, for the whole process (training included). Measured by
``benchmarks/bench_memory.py``.

A CPU :class:`~r2mr.training.trainer.Trainer` applies it when built, for the rest of the process (evaluations
outside ``fit`` too); ``fit`` applies it where no trainer did (a GPU run) and then :func:`release_freed_memory`
puts back what it changed (:func:`r2mr.training.runtime.run_switches`). This module is the one place that sets
the allocator.

Light to import: no torch here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

MALLOC_ENV = "R2MR_MALLOC"
RETIRED_ENV = "R2MR_KEEP_FREED_MEMORY"  # the run-scoped switch this module replaced; no longer read
POLICIES = ("keep", "system")
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameter numbers (malloc.h)
GLIBC_DEFAULTS = ((M_MMAP_MAX, 65536), (M_TRIM_THRESHOLD, 128 << 10))  # mallopt(3)
_applied: list[str] = []


def policy() -> str:
    """The policy asked for: ``$R2MR_MALLOC`` (keep | system), ``keep`` by default."""
    from .errors import ConfigError

    if RETIRED_ENV in os.environ:
        raise ConfigError(f"{RETIRED_ENV} is no longer read; fix: unset it (use {MALLOC_ENV}=system to keep the "
                          f"system's allocator defaults, {MALLOC_ENV}=keep for the default)")
    name = os.environ.get(MALLOC_ENV, "keep").strip().lower() or "keep"
    if name not in POLICIES:
        raise ConfigError(f"{MALLOC_ENV}={name!r} is not allowed (allowed: {', '.join(POLICIES)}); "
                          f"fix: unset it or set {MALLOC_ENV}=keep")
    return name


def _glibc() -> ctypes.CDLL | None:
    """The C library where it is glibc, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - present in glibc only (musl has mallopt as a stub)
    except (OSError, AttributeError):
        return None
    return libc


def _libc_mallopt() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """glibc's ``mallopt``, or None where the C library is not glibc."""
    libc = _glibc()
    if libc is None:
        return None
    fn = libc.mallopt
    fn.argtypes, fn.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return fn


def keep_freed_memory() -> bool:
    """Apply the ``keep`` policy to this process once (see the module); True where it is in force."""
    if _applied:
        return _applied[0] == "keep"
    name = policy()
    mallopt = _libc_mallopt() if name == "keep" else None
    ok = mallopt is not None and mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
    _applied.append("keep" if ok else "system")
    return ok


def in_force() -> bool:
    """Whether :func:`keep_freed_memory` is in force in this process (applied and not released)."""
    return _applied == ["keep"]


def release_freed_memory() -> None:
    """Undo :func:`keep_freed_memory`: glibc's defaults for the two parameters it set, the kept free memory
    handed back to the system (``malloc_trim``); the next :func:`keep_freed_memory` applies the policy again."""
    if not in_force():
        return
    mallopt, libc = _libc_mallopt(), _glibc()
    if mallopt is not None and libc is not None:
        for param, value in GLIBC_DEFAULTS:
            mallopt(param, value)
        libc.malloc_trim(0)
    _applied.clear()
