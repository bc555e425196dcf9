"""Which processor made a CPU result, and how to make CPU kernels pick the same code path on any x86 processor.

Same seed, same numbers holds bit for bit on one processor model. Across models it does not: MKL's matrix
products (and PyTorch's own vectorised kernels) choose their code path from the processor's instruction sets,
and another path sums in another order. Measured: VBPR on the synthetic set retrained on an AVX2-only AMD
EPYC gives its archived first-epoch loss bit for bit but a second-epoch loss 2e-8 relative off the archive's
(made on an EPYC with another instruction set), with the same validation metrics. Hence:

* :func:`processor_id` names the processor and the kernel path PyTorch picked; every run record stores it
  (``cpu``), so a bit-for-bit check knows when it applies.
* :data:`PORTABLE_KERNELS` are the environment variables that pin the code paths (MKL's conditional numerical
  reproducibility, PyTorch's and oneDNN's instruction set), for checks whose expected numbers must not depend on
  the machine that runs them (the notebook replays of the test suite). They slow matrix products down, so
  training runs do not use them. They act only when set before ``import torch`` (in a child's environment).

Light to import: no torch at module level.
"""

from __future__ import annotations

import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
PORTABLE_KERNELS = {"MKL_CBWR": "COMPATIBLE,STRICT", "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def _cpuinfo_fields(text: str) -> dict[str, str]:
    """The ``key: value`` fields of the first processor block of ``/proc/cpuinfo`` text."""
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def processor_model(cpuinfo: str | None = None) -> str:
    """The processor's model, e.g. ``AMD EPYC (family 25, model 1)``; ``platform.processor()`` where the OS
    has no ``/proc/cpuinfo``."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text()
        except OSError:
            return platform.processor() or platform.machine()
    f = _cpuinfo_fields(cpuinfo)
    name = f.get("model name") or f.get("vendor_id") or platform.machine()
    return f"{name} (family {f['cpu family']}, model {f['model']})" if "cpu family" in f and "model" in f else name


def processor_id() -> str:
    """The processor model and PyTorch's kernel path, e.g. ``AMD EPYC (family 25, model 1), AVX2``: two CPU
    results can agree bit for bit only where this string is the same."""
    import torch

    return f"{processor_model()}, {torch.backends.cpu.get_cpu_capability()}"
