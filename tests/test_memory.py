"""The memory policy (r2mr.core.memory): a bad value is one clear error; ``keep`` reuses a freed block without
page faults where ``system`` maps it again; a Trainer on a CPU applies it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from r2mr.core import memory
from r2mr.core.errors import ConfigError
from r2mr.data import load_dataset
from r2mr.runs.experiment import make_configs
from r2mr.training.trainer import Trainer

glibc = pytest.mark.skipif(memory._libc_mallopt() is None, reason="the C library is not glibc")

# Allocate and free a 64 MiB block five times; print the page faults of the last four rounds.
FAULTS = """
import resource, sys
from r2mr.core import memory
print(memory.keep_freed_memory())
b = bytearray(64 << 20); del b
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    b = bytearray(64 << 20); del b
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


def faults(policy: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", FAULTS], env={"R2MR_MALLOC": policy, "PATH": ""},
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0], int(out[1])


def test_bad_value_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(memory.MALLOC_ENV, "jemalloc")
    with pytest.raises(ConfigError, match=r"R2MR_MALLOC='jemalloc' is not allowed .*fix: unset it"):
        memory.policy()


@glibc
def test_keep_reuses_freed_blocks_without_page_faults() -> None:
    applied, kept = faults("keep")
    not_applied, system = faults("system")
    assert (applied, not_applied) == ("True", "False")
    assert system >= 4 * (64 << 20) // 4096 // 2  # every round maps and touches its pages again
    assert kept < system // 20


def test_trainer_on_cpu_applies_the_policy(small_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(memory, "_applied", [])
    monkeypatch.setattr(memory, "_libc_mallopt", lambda: lambda param, value: calls.append((param, value)) or 1)
    cls, mcfg, tcfg = make_configs("bpr", max_epochs=1)
    ds = load_dataset("small", small_root)
    Trainer(cls(ds, mcfg), ds, tcfg, "cpu", None, progress=False)
    Trainer(cls(ds, mcfg), ds, tcfg, "cpu", None, progress=False)  # once per process
    assert calls == [(memory.M_MMAP_MAX, 0), (memory.M_TRIM_THRESHOLD, 2**31 - 1)]
    assert memory.keep_freed_memory() is True
