"""The Ray executor of a run plan (:func:`r2mr.runs.executors.execute_plan` with ``ray=ADDRESS | "auto" |
"local"``): one Ray task per run with ``num_cpus`` and a fractional ``num_gpus``, ``max_retries`` =
:data:`r2mr.runs.outcome.RETRIES` (a run whose worker dies is retried once and resumes from its checkpoint), the
store at ``$R2MR_RUNS_DIR`` as every worker sees it. Ray is imported here only, when this executor is asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..core.errors import ConfigError
from ..core.threads import worker_env
from .outcome import RETRIES, OnEpoch, Outcome, execute_one, one_line, runs_dir
from .plan import PlannedRun


def execute_ray(planned: Sequence[PlannedRun], data_dir: str | None, device: str, address: str,
                gpus_per_run: float, cpus_per_run: int, report: Callable[[Outcome], None],
                force_since: float, on_epoch: OnEpoch) -> None:
    """One Ray task per run (see :mod:`r2mr.runs.executors`); Ctrl-C cancels them (KeyboardInterrupt goes on)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs the ray package, which is not installed; fix: pip install -e .[ray]") from None
    env = {"R2MR_RUNS_DIR": str(runs_dir()), **worker_env(cpus_per_run)}  # threads and a passive wait policy
    started = not ray.is_initialized()
    if started:  # "local": a new instance for this call; "auto" or host:port: the running cluster
        try:
            ray.init(address=address, log_to_driver=False, runtime_env={"env_vars": env},
                     **({"include_dashboard": False} if address == "local" else {}))
        except ConnectionError as exc:
            raise ConfigError(f"--ray {address}: no Ray cluster there ({str(exc).splitlines()[0]}); fix: start one "
                              f"with `ray start --head`, or use --ray local") from None
    task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=RETRIES)(execute_one)
    refs = {task.options(runtime_env={"env_vars": env}).remote(run, data_dir, device, cpus_per_run, force_since,
                                                               on_epoch): run
            for run in planned}
    pending = list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            try:
                out = ray.get(ready[0])
            except ray.exceptions.RayError as exc:  # the worker died more often than max_retries, or worse
                out = Outcome(refs[ready[0]], f"failed: {one_line(exc)}", None, 0.0)
            report(out)
    except KeyboardInterrupt:
        if not started:  # a cluster we joined: cancel our tasks there (a local instance goes with its shutdown;
            for ref in pending:  # force-cancelling a task as it finishes can abort the driver, a Ray bug)
                ray.cancel(ref, force=False)
        raise
    finally:
        if started:
            ray.shutdown()
