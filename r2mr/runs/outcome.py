"""Executing one planned run, what every executor of :mod:`r2mr.runs.executors` calls (in this process, in a
worker process or as a Ray task): train or read it back through the store, and turn any exception into a
``failed: <one line>`` :class:`Outcome`."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ..core.errors import R2MRError
from .plan import PlannedRun
from .sequential import Outcome

RETRIES = 1  # a run whose worker dies is tried once more (processes and Ray alike)
OnEpoch = Callable[[dict], None] | None
__all__ = ["RETRIES", "OnEpoch", "Outcome", "execute_one", "one_line", "runs_dir"]


def runs_dir() -> Path:
    """The store's root as the workers must see it (``$R2MR_RUNS_DIR``, else the repository's ``runs/``)."""
    from ..core import paths

    return paths.runs_root().resolve()


def one_line(exc: BaseException) -> str:
    """An exception as one line: the package's own message, else ``Type: first line``."""
    text = (str(exc).strip().splitlines() or [""])[0]
    return text if isinstance(exc, R2MRError) else f"{type(exc).__name__}{': ' + text if text else ''}"


def execute_one(run: PlannedRun, data_dir: str | None, device: str, threads: int | None = None,
                force_since: float = 0.0, on_epoch: OnEpoch = None) -> Outcome:
    """Train or read back one planned run in this process (what every executor calls); any exception in the
    run is a ``failed: <one line>`` Outcome (the other runs go on)."""
    from .notebook_runs import run_one

    t0 = time.perf_counter()
    try:
        if threads:
            import torch

            torch.set_num_threads(threads)
        r = run_one(run.spec, run.dataset, run.seed, data_dir=data_dir, device=device, epochs=run.epochs,
                    force_since=force_since, on_epoch=on_epoch)
    except Exception as exc:  # noqa: BLE001 - a bad config, a diverging run, out of memory, a bug: reported
        return Outcome(run, f"failed: {one_line(exc)}", None, time.perf_counter() - t0)
    return Outcome(run, r.status, r.result, time.perf_counter() - t0)
