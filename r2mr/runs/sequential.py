"""The sequential executor of a run plan (:func:`execute_sequential`): each planned run in plan order, in this
process. ``run-all`` without ``--jobs`` / ``--ray`` (:func:`r2mr.runs.executors.execute_plan`) and the notebooks
(:func:`r2mr.runs.notebook_runs.run_planned`) both go through it; they differ only in what executes one run
(a failing run is a ``failed: …`` Outcome there, an exception here in a notebook cell).

Also what every executor shares: the :class:`Outcome` of one run, the progress line per finished run
(:class:`Progress`, to a stream or a logger) and :class:`Interrupted` (Ctrl-C: the message counts the finished
runs; the CLI exits 130).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from ..core.formatting import fmt_seconds
from .plan import PlannedRun


@dataclass
class Outcome:
    """What executing one planned run gave: ``status`` trained | cached | not run: … | failed: …."""

    run: PlannedRun
    status: str
    result: dict[str, Any] | None
    seconds: float


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a plan; the message says how many runs finished and how to resume."""


def interrupted(finished: int, total: int) -> Interrupted:
    return Interrupted(f"{finished} of {total} runs finished (kept in the store, with the checkpoints of the "
                       f"others); resume with the same command")


class Progress:
    """One line per finished run: ``[done/total] label on data set, seed N: status in T, best epoch B of 0-E,
    test recall@20 R; ETA …`` (best epoch and recall for a run with a result; epochs count from 0), to
    ``stream`` (default stdout) or, given ``log``, as INFO lines of that logger. A data set that is missing
    gets one line, not one per run on it."""

    def __init__(self, total: int, stream: TextIO | None = None, log: logging.Logger | None = None) -> None:
        self.total, self.done, self.stream, self.log = total, 0, stream, log
        self.t0, self.missing = time.perf_counter(), set()

    def __call__(self, out: Outcome) -> None:
        self.done += 1
        elapsed, left, r = time.perf_counter() - self.t0, self.total - self.done, out.run
        eta = f"; ETA {fmt_seconds(elapsed / self.done * left)}" if left else f"; all done in {fmt_seconds(elapsed)}"
        if out.status.startswith("not run: data set missing"):
            if r.dataset not in self.missing:  # one line for a missing data set, not one per cell
                self.missing.add(r.dataset)
                self._say(f"[{self.done}/{self.total}] {r.dataset}: {out.status} (every run on it){eta}")
            return
        res = out.result or {}
        best = (f", best epoch {res['best_epoch']} of 0-{res['epochs_run'] - 1}, test recall@20 "
                f"{res['test'].get('recall@20', math.nan):.4f}" if "best_epoch" in res and "test" in res else "")
        self._say(f"[{self.done}/{self.total}] {r.spec.label} on {r.dataset}, seed {r.seed}: {out.status} "
                  f"in {fmt_seconds(out.seconds)}{best}{eta}")

    def _say(self, line: str) -> None:
        if self.log is not None:
            self.log.info("%s", line)
        else:
            print(line, file=self.stream or sys.stdout, flush=True)


def execute_sequential(planned: Sequence[PlannedRun], one: Callable[[PlannedRun], Outcome],
                       report: Callable[[Outcome], None]) -> list[Outcome]:
    """Execute ``planned`` one after the other in this process with ``one``, giving each :class:`Outcome` to
    ``report`` as it finishes; returns them in plan order. Ctrl-C stops at once (the run under way keeps its
    finished epochs in its checkpoint) and raises :class:`Interrupted`; an exception of ``one`` goes on."""
    done: list[Outcome] = []
    try:
        for run in planned:
            done.append(one(run))
            report(done[-1])
    except KeyboardInterrupt:
        raise interrupted(sum(not o.status.startswith("failed") for o in done), len(planned)) from None
    return done

