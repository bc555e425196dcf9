"""Executors of a run plan (:mod:`r2mr.runs.plan`): each planned run is trained through the store
(:func:`r2mr.runs.experiment.train`), so a run already stored is read back and a killed one resumes.

* sequential (default): in this process, one run after the other (:func:`r2mr.runs.sequential.execute_sequential`,
  the notebooks' executor too); no extra dependency.
* ``jobs=N``: N worker processes on this machine, each with ``cores / N`` torch threads and a passive
  OpenMP wait policy (:mod:`r2mr.core.threads`). A worker that dies
  (SIGKILL, out of memory) breaks the pool: the runs it did not finish go to a fresh pool, and the run that was
  on the dead worker is retried once (it resumes from its checkpoint); a second death is ``failed: …``.
* ``ray=ADDRESS | "auto" | "local"``: one Ray task per run, with ``num_cpus`` and a fractional ``num_gpus``
  (N small runs share one GPU), ``max_retries=1`` (a run whose worker dies is retried once and resumes from its
  checkpoint), the store at ``$R2MR_RUNS_DIR`` as every worker sees it. Ray is imported only here, lazily.

Every executor: any exception inside a run is an Outcome ``failed: <one line>`` (the other runs go on);
Ctrl-C cancels the queued runs, stops the running ones (finished epochs stay in their checkpoints) and raises
:class:`Interrupted` (a KeyboardInterrupt whose message counts the finished runs: the CLI exits 130).

Progress: one line per finished run (runs done / total, its status and time, ETA of the rest).
Fault injection for tests: ``on_epoch``, a picklable callable given the log entry of each epoch after its
checkpoint is saved (:meth:`r2mr.training.trainer.Trainer.fit`); production code passes none.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

from ..core.atomic_io import remove_temporaries_on_sigterm
from ..core.errors import ConfigError
from ..core.threads import threads_per_run, worker_env
from .outcome import RETRIES, OnEpoch, Outcome, execute_one, one_line, runs_dir
from .plan import PlannedRun
from .sequential import Interrupted, Progress, execute_sequential, interrupted

__all__ = ["RETRIES", "Interrupted", "OnEpoch", "Outcome", "execute_one", "execute_plan", "one_line", "runs_dir"]


def execute_plan(planned: Sequence[PlannedRun], *, data_dir: str | None = None, device: str = "cpu", jobs: int = 1,
                 ray: str | None = None, gpus_per_run: float = 0.0, cpus_per_run: int = 1,
                 stream: TextIO | None = None, on_done: Callable[[Outcome], None] | None = None,
                 force_since: float = 0.0, on_epoch: OnEpoch = None) -> list[Outcome]:
    """Execute ``planned`` (in plan order for the result) with the chosen executor; progress to ``stream``.
    Ctrl-C raises :class:`Interrupted` once the queued runs are cancelled and the running ones stopped."""
    if jobs < 1:
        raise ConfigError(f"--jobs {jobs} is not allowed (allowed: an integer >= 1); fix: e.g. --jobs 2")
    if not 0.0 <= gpus_per_run <= 1.0 or cpus_per_run < 1:
        raise ConfigError(f"--gpus-per-run {gpus_per_run} / cpus {cpus_per_run} not allowed (allowed: 0 <= gpus <= 1, "
                          f"cpus >= 1); fix: e.g. --gpus-per-run 0.166")
    progress = Progress(len(planned), stream)
    done: list[Outcome] = []

    def report(o: Outcome) -> None:
        done.append(o)
        progress(o)
        if on_done:
            on_done(o)

    try:
        if ray:
            from .ray_executor import execute_ray  # Ray is imported there, lazily

            execute_ray(planned, data_dir, device, ray, gpus_per_run, cpus_per_run, report, force_since, on_epoch)
        elif jobs > 1 and len(planned) > 1:
            _execute_processes(planned, data_dir, device, jobs, report, force_since, on_epoch)
        else:  # in this process; one run of several at once keeps the thread count it would have had in a worker
            threads = threads_per_run(jobs) if jobs > 1 else None
            execute_sequential(planned, lambda run: execute_one(run, data_dir, device, threads, force_since,
                                                                on_epoch), report)
    except KeyboardInterrupt:
        raise interrupted(sum(not o.status.startswith("failed") for o in done), len(planned)) from None
    return _in_plan_order(planned, done)


def _in_plan_order(planned: Sequence[PlannedRun], done: Iterable[Outcome]) -> list[Outcome]:
    by_identity = {o.run.identity: o for o in done}
    return [by_identity[r.identity] for r in planned if r.identity in by_identity]


def _init_process(store: str, threads: int) -> None:
    os.environ["R2MR_RUNS_DIR"] = store
    os.environ.update(worker_env(threads))  # before torch is imported here: the OpenMP runtime reads it once


# ---- worker processes (--jobs N) ------------------------------------------------------------------------------

_STARTED: Any = None  # in a worker: the queue on which it says which run it starts (its pid, the run's identity)


def _worker_start(store: str, threads: int, started: Any) -> None:
    """A worker's initializer: Ctrl-C is the parent's business (it stops the workers); tqdm gets a thread lock
    (its default, a multiprocessing lock, is a named semaphore that a killed worker would leak); the store and
    the threads."""
    import threading

    from tqdm import tqdm

    global _STARTED
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    remove_temporaries_on_sigterm()
    tqdm.set_lock(threading.RLock())
    _STARTED = started
    _init_process(store, threads)


def _in_worker(run: PlannedRun, data_dir: str | None, device: str, threads: int, force_since: float,
               on_epoch: OnEpoch) -> Outcome:
    _STARTED.put((os.getpid(), run.identity))
    return execute_one(run, data_dir, device, threads, force_since, on_epoch)


def _died(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _execute_processes(planned: Sequence[PlannedRun], data_dir: str | None, device: str, jobs: int,
                       report: Callable[[Outcome], None], force_since: float, on_epoch: OnEpoch) -> None:
    """Run ``planned`` on ``jobs`` worker processes; a broken pool is replaced and its dead worker's run retried
    once (see the module doc)."""
    deaths: dict[tuple, int] = {}
    todo = list(planned)
    while todo:
        todo = _pool_round(todo, data_dir, device, jobs, report, force_since, on_epoch, deaths)


def _pool_round(todo: list[PlannedRun], data_dir: str | None, device: str, jobs: int,
                report: Callable[[Outcome], None], force_since: float, on_epoch: OnEpoch,
                deaths: dict[tuple, int]) -> list[PlannedRun]:
    """One process pool over ``todo``; returns the runs to try again in a fresh pool (the pool broke)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    threads = threads_per_run(jobs)
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter per worker: no forked torch state
    started = ctx.SimpleQueue()
    pool = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_start,
                               initargs=(str(runs_dir()), threads, started))
    on_pid: dict[int, tuple] = {}  # worker pid -> identity of the run it is on
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # workers are spawned here: they inherit SIGINT ignored
    try:
        futures = {pool.submit(_in_worker, run, data_dir, device, threads, force_since, on_epoch): run
                   for run in todo}
        procs = dict(pool._processes or {})  # noqa: SLF001 - to read a dead worker's exit code, to stop them
    finally:
        signal.signal(signal.SIGINT, old)
    pending, broken, finished_ids = set(futures), [], set()
    try:
        while pending:
            ready, pending = wait(pending, return_when=FIRST_COMPLETED)
            while not started.empty():
                pid, ident = started.get()
                on_pid[pid] = ident
            for fut in ready:
                try:
                    out = fut.result()
                except BrokenProcessPool:
                    broken.append(futures[fut])
                    continue
                finished_ids.add(out.run.identity)
                report(out)
    except KeyboardInterrupt:
        _stop(pool, procs)
        raise
    pool.shutdown(wait=True)
    started.close()
    if not broken:
        return []
    return _after_break(broken, procs, on_pid, finished_ids, deaths, report)


def _after_break(broken: list[PlannedRun], procs: dict[int, Any], on_pid: dict[int, tuple], finished: set,
                 deaths: dict[tuple, int], report: Callable[[Outcome], None]) -> list[PlannedRun]:
    """Blame the runs that were on a worker that died by itself (not one the pool terminated after it), report
    those that died more than :data:`RETRIES` + 1 times as failed, and return the rest to be run again."""
    dead = {pid: p.exitcode for pid, p in procs.items() if p.exitcode not in (None, 0, -signal.SIGTERM)}
    blamed = {on_pid[pid]: code for pid, code in dead.items() if pid in on_pid and on_pid[pid] not in finished}
    if not blamed:  # the culprit is unknown: every run that was on a worker
        blamed = {ident: None for pid, ident in on_pid.items() if ident not in finished}
    again = []
    for run in broken:
        if run.identity in blamed:
            deaths[run.identity] = deaths.get(run.identity, 0) + 1
        if deaths.get(run.identity, 0) > RETRIES:
            why = _died(blamed[run.identity]) if blamed[run.identity] is not None else "died"
            report(Outcome(run, f"failed: its worker process died {deaths[run.identity]} times ({why}; e.g. out of "
                                f"memory); rerun with fewer --jobs or a smaller config", None, 0.0))
        else:
            again.append(run)
    return again


def _stop(pool: Any, procs: dict[int, Any]) -> None:
    """Ctrl-C: cancel the queued runs, terminate the workers (their finished epochs are in checkpoints), then
    let the pool notice and close its queues (so no semaphore is left for the interpreter's exit to report)."""
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs.values():
        if p.is_alive():
            p.terminate()
    for p in procs.values():
        p.join(timeout=10)
    pool.shutdown(wait=True)
