"""The process-wide switches belong to one run (issue 20, item 3): building a model sets nothing; the trainer
turns the allocator tweak and (where the config asks) TF32 on for the length of ``fit``, puts them back after
it, and records them in the result."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

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
    monkeypatch.setattr(runtime, "release_freed_memory", lambda: released.append(1))
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True
    ds = load_dataset("small", small_root, features=False)
    BPR32(ds, TF32Config())  # building the model sets nothing
    assert flags() == (False, True)
    res, seen = fit(BPR32, TF32Config(), small_root)
    assert seen == [(True, True), (True, True)] and flags() == (False, True)  # on while training, then back
    assert res["switches"]["tf32"] is True and res["switches"]["keep_freed_memory"] == bool(released)
    res, seen = fit(BPR, BPRConfig(), small_root)  # a baseline trained next does not inherit TF32
    assert seen == [(False, False), (False, False)] and res["switches"]["tf32"] is False
    assert flags() == (False, True)


def test_the_allocator_switch_is_put_back_after_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(runtime, "keep_freed_memory", lambda: calls.append("keep") or True)
    monkeypatch.setattr(runtime, "release_freed_memory", lambda: calls.append("release"))
    with pytest.raises(RuntimeError), runtime.run_switches(tf32=False) as switches:
        assert switches == {"keep_freed_memory": True, "tf32": False} and calls == ["keep"]
        raise RuntimeError("a run that fails still restores")
    assert calls == ["keep", "release"]
    monkeypatch.undo()  # the real switch again
    monkeypatch.setenv(runtime.KEEP_ENV, "0")
    assert runtime.keep_freed_memory() is False  # R2MR_KEEP_FREED_MEMORY=0: off
