"""Fault-injection hooks for the executor tests, and a ``run-all`` driver that uses them.

A hook is a picklable callable given each epoch's log entry after its checkpoint is written
(:meth:`r2mr.training.trainer.Trainer.fit`'s ``on_epoch``), passed to
:func:`r2mr.runs.executors.execute_plan` as ``on_epoch``; production code passes none. The driver
(``python -m tests.faults HOOK ARG... -- RUN-ALL ARGS``) runs ``python -m r2mr run-all`` on BPR and LightGCN x
the given seeds (notebook 03's grid) with the notebooks left out and the hook handed to the executors, so Ctrl-C
and dead workers can be tested on the real command in a child process.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Slow:
    """Sleep ``seconds`` after every epoch: runs long enough to be interrupted part-way."""

    seconds: float

    def __call__(self, entry: dict) -> None:
        time.sleep(self.seconds)


@dataclass(frozen=True)
class KillAfter:
    """SIGKILL this process after epoch ``epoch`` of a run of ``model`` with ``seed`` (as the OOM killer would);
    with a ``marker`` file only once (the marker is written first, so the retry lives)."""

    model: str
    seed: int
    epoch: int
    marker: str = ""

    def __call__(self, entry: dict) -> None:
        meta = _current_run()
        if entry["epoch"] < self.epoch or meta != (self.model, self.seed):
            return
        if self.marker:
            if Path(self.marker).exists():
                return
            Path(self.marker).write_text(f"killed after epoch {entry['epoch']}\n")
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class Raise:
    """Raise ``kind(message)`` in epoch ``epoch`` of the run of ``model`` with ``seed`` (a bug, out of memory)."""

    model: str
    seed: int
    kind: type = RuntimeError
    message: str = "boom"

    def __call__(self, entry: dict) -> None:
        if _current_run() == (self.model, self.seed):
            raise self.kind(self.message)


def _current_run() -> tuple[str, int]:
    """(model, seed) of the run this process trains: read from the trainer on the call stack."""
    frame = sys._getframe(1)
    while frame is not None:
        trainer = frame.f_locals.get("self")
        if type(trainer).__name__ == "Trainer":
            return trainer.meta.get("model", ""), trainer.cfg.seed
        frame = frame.f_back
    return "", -1


def tiny_plan(inv: object, models: object = "all", selected: object = None) -> list:
    """BPR and LightGCN x ``inv.seeds`` on ``inv.datasets`` (notebook 03's grid, restricted)."""
    from r2mr.runs import plan

    return plan.build_plan(inv.datasets, inv.seeds, "quick", inv.epochs, notebooks=["03_main_results"],
                           models="bpr,lightgcn", registered=["bpr", "lightgcn"])


def main(argv: list[str]) -> int:
    import functools

    from r2mr.cli import main as cli
    from r2mr.cli import pipeline
    from r2mr.cli import plan_commands as plan_cli
    from r2mr.runs import executors

    split = argv.index("--")
    hook_name, hook_args, run_all_args = argv[0], argv[1:split], argv[split + 1:]
    kinds = {"Slow": lambda a: Slow(float(a[0])), "none": lambda a: None,
             "KillAfter": lambda a: KillAfter(a[0], int(a[1]), int(a[2]), *a[3:])}
    hook = kinds[hook_name](hook_args)
    plan_cli.run_plan = tiny_plan
    plan_cli.execute_plan = functools.partial(executors.execute_plan, on_epoch=hook)
    pipeline.run = lambda inv, stream=None: []
    return cli.main(["run-all", *run_all_args])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
