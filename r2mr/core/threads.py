"""The thread policy of training runs on a CPU: how many torch threads each run gets, and how idle threads wait.

* Threads per run: the cores this process may use, divided by the runs at once (at least one). The default is
  as many runs at once as cores (``--jobs`` = cores on a CPU, 1 on a GPU), hence one thread per run: the
  numbers of a run then do not depend on the machine's core count, and no run waits on a thread that another
  job on the machine has preempted.
* Wait policy: ``OMP_WAIT_POLICY=PASSIVE``. The GNU OpenMP runtime that ships with torch lets an idle thread
  spin by default; on a busy machine the spinning thread takes the core from the thread that has work, and a
  two-thread epoch ran 3-32x slower than a one-thread epoch (benchmarks/bench_threads.py measures it). The
  runtime reads the variable once, when torch loads it, so :func:`passive_wait` must run before ``import
  torch``: the command line calls it first, worker processes in their initializer. A value the user set wins.
  The policy does not change any number (only how threads wait).

Light to import: no torch here.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
THREAD_ENVS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def cores_available() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports it, else ``os.cpu_count``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_jobs(device: str) -> int:
    """Runs at once when ``--jobs`` is not given: one per core on a CPU, one on a GPU."""
    return cores_available() if str(device).startswith("cpu") else 1


def threads_per_run(jobs: int, cores: int | None = None) -> int:
    """Torch threads of each of ``jobs`` runs at once on ``cores`` cores (default: the cores available)."""
    return max(1, (cores if cores is not None else cores_available()) // max(1, jobs))


def passive_wait(env: MutableMapping[str, str] | None = None) -> None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` in ``env`` (default ``os.environ``) unless it is set already."""
    (os.environ if env is None else env).setdefault(WAIT_POLICY_ENV, "PASSIVE")


def worker_env(threads: int) -> dict[str, str]:
    """The environment variables of a worker process that trains with ``threads`` threads."""
    env = {name: str(threads) for name in THREAD_ENVS}
    env[WAIT_POLICY_ENV] = os.environ.get(WAIT_POLICY_ENV, "PASSIVE")
    return env
