"""Executors of a run plan (:mod:`r2mr.runs.plan`): each planned run is trained through the store
(:func:`r2mr.runs.experiment.train`), so a run already stored is read back and a killed one resumes.

* sequential (default): in this process, one run after the other; no extra dependency.
* ``jobs=N``: N worker processes on this machine, each with ``cores / N`` torch threads and a passive OpenMP wait
  policy (:mod:`r2mr.core.threads`).
* ``ray=ADDRESS | "auto" | "local"``: one Ray task per run, with ``num_cpus`` and a fractional ``num_gpus``
  (N small runs share one GPU), ``max_retries`` (a run whose worker dies is retried and resumes from its
  checkpoint), the store at ``$R2MR_RUNS_DIR`` as every worker sees it. Ray is imported only here, lazily.

Progress: one line per finished run (runs done / total, its status and time, ETA of the rest).
Fault injection for tests: with ``R2MR_FAULT_EXIT_AFTER_EPOCH=N`` and ``R2MR_FAULT_MARKER=FILE`` in a worker's
environment, the first run to finish epoch N (counting from 0) writes FILE and kills its process (``os._exit``),
once: the marker stops later attempts.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ..core.formatting import fmt_seconds
from ..core.errors import ConfigError, R2MRError
from .plan import PlannedRun
from ..core.threads import threads_per_run, worker_env

FAULT_EPOCH_ENV, FAULT_MARKER_ENV = "R2MR_FAULT_EXIT_AFTER_EPOCH", "R2MR_FAULT_MARKER"
RAY_RETRIES = 3


@dataclass
class Outcome:
    """What executing one planned run gave: ``status`` trained | cached | not run: … | failed: …."""

    run: PlannedRun
    status: str
    result: dict[str, Any] | None
    seconds: float


def runs_dir() -> Path:
    """The store's root as the workers must see it (``$R2MR_RUNS_DIR``, else the repository's ``runs/``)."""
    from ..core import paths

    return paths.runs_root().resolve()


def _arm_fault_injection() -> None:
    """Kill this process after the checkpoint of epoch ``$R2MR_FAULT_EXIT_AFTER_EPOCH`` (once, see module doc)."""
    epoch, marker = os.environ.get(FAULT_EPOCH_ENV), os.environ.get(FAULT_MARKER_ENV)
    if epoch is None or not marker or Path(marker).exists():
        return
    from ..training.trainer import Trainer

    save = Trainer.save_checkpoint

    def save_then_die(self: Trainer) -> None:
        save(self)
        if len(self.history) - 1 >= int(epoch) and not Path(marker).exists():
            Path(marker).write_text(f"killed after epoch {epoch}\n")
            os._exit(17)

    Trainer.save_checkpoint = save_then_die  # type: ignore[method-assign]


def execute_one(run: PlannedRun, data_dir: str | None, device: str, threads: int | None = None,
                force_since: float = 0.0) -> Outcome:
    """Train or read back one planned run in this process (what every executor calls)."""
    from .notebook_runs import run_one

    if threads:
        import torch

        torch.set_num_threads(threads)
    _arm_fault_injection()
    t0 = time.perf_counter()
    try:
        r = run_one(run.spec, run.dataset, run.seed, data_dir=data_dir, device=device, epochs=run.epochs,
                    force_since=force_since)
    except R2MRError as exc:  # a bad config or a diverging run: reported, the other runs go on
        return Outcome(run, f"failed: {exc}", None, time.perf_counter() - t0)
    return Outcome(run, r.status, r.result, time.perf_counter() - t0)


class Progress:
    """One line per finished run: ``[done/total] label on data set, seed N: status in T; ETA …``."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total, self.done, self.stream, self.t0 = total, 0, stream or sys.stdout, time.perf_counter()

    def __call__(self, out: Outcome) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.t0
        left = self.total - self.done
        eta = f"; ETA {fmt_seconds(elapsed / self.done * left)}" if left else f"; all done in {fmt_seconds(elapsed)}"
        r = out.run
        print(f"[{self.done}/{self.total}] {r.spec.label} on {r.dataset}, seed {r.seed}: {out.status} "
              f"in {fmt_seconds(out.seconds)}{eta}", file=self.stream, flush=True)


def execute_plan(planned: Sequence[PlannedRun], *, data_dir: str | None = None, device: str = "cpu", jobs: int = 1,
                 ray: str | None = None, gpus_per_run: float = 0.0, cpus_per_run: int = 1,
                 stream: TextIO | None = None, on_done: Callable[[Outcome], None] | None = None,
                 force_since: float = 0.0) -> list[Outcome]:
    """Execute ``planned`` (in plan order for the result) with the chosen executor; progress to ``stream``."""
    if jobs < 1:
        raise ConfigError(f"--jobs {jobs} is not allowed (allowed: an integer >= 1); fix: e.g. --jobs 2")
    if not 0.0 <= gpus_per_run <= 1.0 or cpus_per_run < 1:
        raise ConfigError(f"--gpus-per-run {gpus_per_run} / cpus {cpus_per_run} not allowed (allowed: 0 <= gpus <= 1, "
                          f"cpus >= 1); fix: e.g. --gpus-per-run 0.166")
    progress = Progress(len(planned), stream)
    report = (lambda o: (progress(o), on_done(o))) if on_done else progress
    if ray:
        done = _execute_ray(planned, data_dir, device, ray, gpus_per_run, cpus_per_run, report, force_since)
    elif jobs > 1 and len(planned) > 1:
        done = _execute_processes(planned, data_dir, device, jobs, report, force_since)
    else:  # in this process; one run of several at once keeps the thread count it would have had in a worker
        done, threads = [], threads_per_run(jobs) if jobs > 1 else None
        for run in planned:
            done.append(execute_one(run, data_dir, device, threads, force_since))
            report(done[-1])
    return _in_plan_order(planned, done)


def _in_plan_order(planned: Sequence[PlannedRun], done: Iterable[Outcome]) -> list[Outcome]:
    by_identity = {o.run.identity: o for o in done}
    return [by_identity[r.identity] for r in planned if r.identity in by_identity]


def _init_process(store: str, threads: int) -> None:
    os.environ["R2MR_RUNS_DIR"] = store
    os.environ.update(worker_env(threads))  # before torch is imported here: the OpenMP runtime reads it once


def _execute_processes(planned: Sequence[PlannedRun], data_dir: str | None, device: str, jobs: int,
                       report: Callable[[Outcome], None], force_since: float) -> list[Outcome]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = threads_per_run(jobs)
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter per worker: no forked torch state
    done = []
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_process,
                             initargs=(str(runs_dir()), threads)) as pool:
        futures = [pool.submit(execute_one, run, data_dir, device, threads, force_since) for run in planned]
        for fut in as_completed(futures):
            done.append(fut.result())
            report(done[-1])
    return done


def _execute_ray(planned: Sequence[PlannedRun], data_dir: str | None, device: str, address: str,
                 gpus_per_run: float, cpus_per_run: int, report: Callable[[Outcome], None],
                 force_since: float) -> list[Outcome]:
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs the ray package, which is not installed; fix: pip install -e .[ray]") from None
    env = {"R2MR_RUNS_DIR": str(runs_dir()), **worker_env(cpus_per_run),
           **{k: os.environ[k] for k in (FAULT_EPOCH_ENV, FAULT_MARKER_ENV) if k in os.environ}}
    started = not ray.is_initialized()
    if started:  # "local": a new instance for this call; "auto" or host:port: the running cluster
        try:
            ray.init(address=address, log_to_driver=False, runtime_env={"env_vars": env},
                     **({"include_dashboard": False} if address == "local" else {}))
        except ConnectionError as exc:
            raise ConfigError(f"--ray {address}: no Ray cluster there ({str(exc).splitlines()[0]}); fix: start one "
                              f"with `ray start --head`, or use --ray local") from None
    task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=RAY_RETRIES)(execute_one)
    refs = {task.options(runtime_env={"env_vars": env}).remote(run, data_dir, device, cpus_per_run, force_since): run
            for run in planned}
    done, pending = [], list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            try:
                done.append(ray.get(ready[0]))
            except ray.exceptions.RayError as exc:  # the worker died more often than max_retries, or worse
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                done.append(Outcome(refs[ready[0]], f"failed: {type(exc).__name__}: {first}", None, 0.0))
            report(done[-1])
    finally:
        if started:
            ray.shutdown()
    return done
