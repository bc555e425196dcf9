"""The processor a CPU result records, and the environment that pins the CPU kernels' code paths."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from r2mr.core.atomic_io import run_metadata
from r2mr.core.processor import PORTABLE_KERNELS, processor_id, processor_model

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 2
model name\t: other
"""


def test_processor_model_reads_the_first_processor() -> None:
    assert processor_model(CPUINFO) == "AMD EPYC (family 25, model 1)"
    assert processor_model("vendor_id\t: GenuineIntel\n") == "GenuineIntel"


def test_every_run_record_names_the_processor() -> None:
    meta = run_metadata("cpu")
    assert meta["cpu"] == processor_id() and meta["cpu"].endswith(torch.backends.cpu.get_cpu_capability())


@pytest.mark.skipif(torch.backends.cpu.get_cpu_capability() in ("DEFAULT", "NO AVX"), reason="no AVX2 here")
def test_portable_kernels_take_effect_in_a_child() -> None:
    """On an AVX-512 machine the child picks AVX2 kernels; with the pin overridden it picks the scalar path."""
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    for extra, expected in (({}, "AVX2"), ({"ATEN_CPU_CAPABILITY": "default"}, "DEFAULT")):
        env = {**os.environ, **PORTABLE_KERNELS, **extra}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == expected
