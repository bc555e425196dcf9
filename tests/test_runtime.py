"""The process-wide switches belong to one run (issue 20, item 3): building a model sets nothing; the trainer
turns (where the config asks) TF32 on for the length of ``fit`` and puts it back after it; the allocator policy
(r2mr.core.memory) is applied for a run where nothing had, and put back after it only then; both are recorded
in the result."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from r2mr.core import memory
from r2mr.core.errors import ConfigError
from r2mr.data import load_dataset
from r2mr.models.bpr import BPR, BPRConfig
from r2mr.training import runtime
from r2mr.training.config import TrainConfig
from r2mr.training.trainer import Trainer


@dataclass
class TF32Config(BPRConfig):
    tf32: bool = True  # asks the trainer for TF32 during its runs


class BPR32(BPR):
    Config = TF32Config


def flags() -> tuple[bool, bool]:
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


@pytest.fixture
def restore_flags():
    before = flags()
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def fit(model_cls: type, cfg: BPRConfig, root: Path) -> tuple[dict, list[tuple[bool, bool]]]:
    ds = load_dataset("small", root, features=False)
    seen: list[tuple[bool, bool]] = []
    trainer = Trainer(model_cls(ds, cfg), ds, TrainConfig(max_epochs=2, batch_size=512), progress=False)
    return trainer.fit(on_epoch=lambda entry: seen.append(flags())), seen


def test_tf32_holds_for_the_run_only_and_is_recorded(small_root: Path, restore_flags: None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    released = []
    monkeypatch.setattr(memory, "release_freed_memory", lambda: released.append(1))
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True
    ds = load_dataset("small", small_root, features=False)
    BPR32(ds, TF32Config())  # building the model sets nothing
    assert flags() == (False, True)
    res, seen = fit(BPR32, TF32Config(), small_root)
    assert seen == [(True, True), (True, True)] and flags() == (False, True)  # on while training, then back
    assert res["switches"] == {"keep_freed_memory": memory.in_force(), "tf32": True}
    assert released == []  # the CPU trainer applied the allocator policy for the process: the run leaves it
    res, seen = fit(BPR, BPRConfig(), small_root)  # a baseline trained next does not inherit TF32
    assert seen == [(False, False), (False, False)] and res["switches"]["tf32"] is False
    assert flags() == (False, True)


def fake_mallopt(monkeypatch: pytest.MonkeyPatch, policy: str) -> list[tuple[int, int]]:
    """The allocator not yet set in this process, under ``R2MR_MALLOC=policy``; returns the mallopt calls."""
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(memory, "_applied", [])
    monkeypatch.setattr(memory, "_libc_mallopt", lambda: lambda param, value: calls.append((param, value)) or 1)
    monkeypatch.setenv(memory.MALLOC_ENV, policy)
    return calls


KEEP = [(memory.M_MMAP_MAX, 0), (memory.M_TRIM_THRESHOLD, 2**31 - 1)]


def test_the_allocator_is_put_back_after_a_run_that_applied_it(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_mallopt(monkeypatch, "keep")
    with pytest.raises(RuntimeError), runtime.run_switches(tf32=False) as switches:
        assert switches == {"keep_freed_memory": True, "tf32": False} and calls == KEEP
        raise RuntimeError("a run that fails still restores")
    assert calls == KEEP + list(memory.GLIBC_DEFAULTS) and not memory.in_force()
    with runtime.run_switches(tf32=False):  # applied again by the next run
        assert memory.in_force()
    del calls[:]
    assert memory.keep_freed_memory() and calls == KEEP  # already in force (a CPU trainer): a run leaves it
    with runtime.run_switches(tf32=False) as switches:
        assert switches["keep_freed_memory"]
    assert calls == KEEP and memory.in_force()


def test_r2mr_malloc_system_holds_for_a_run(small_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_mallopt(monkeypatch, "system")
    res, _ = fit(BPR, BPRConfig(), small_root)
    assert calls == [] and res["switches"]["keep_freed_memory"] is False


def test_the_retired_switch_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_applied", [])
    monkeypatch.setenv(memory.RETIRED_ENV, "0")
    with pytest.raises(ConfigError, match=r"R2MR_KEEP_FREED_MEMORY is no longer read; fix: unset it"):
        memory.keep_freed_memory()
