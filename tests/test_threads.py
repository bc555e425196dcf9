"""The thread policy (r2mr.core.threads): threads per run from the cores and the runs at once, a passive OpenMP wait
policy set before torch is loaded, in the command line and in worker processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from r2mr.core import threads
from r2mr.runs import executors


def test_threads_per_run_divides_the_cores() -> None:
    assert [threads.threads_per_run(j, 2) for j in (1, 2, 3)] == [2, 1, 1]
    assert threads.threads_per_run(4, 16) == 4 and threads.threads_per_run(1, 1) == 1
    assert threads.threads_per_run(1) == threads.cores_available() >= 1


def test_default_jobs_one_run_per_core_on_cpu_one_on_gpu() -> None:
    assert threads.default_jobs("cpu") == threads.cores_available()
    assert threads.default_jobs("cuda") == threads.default_jobs("cuda:1") == 1


def test_passive_wait_is_set_unless_the_user_chose() -> None:
    env: dict[str, str] = {}
    threads.passive_wait(env)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    threads.passive_wait(env)
    assert env["OMP_WAIT_POLICY"] == "ACTIVE"


def test_worker_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("R2MR_RUNS_DIR", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(name, "x")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    executors._init_process("/store", 3)
    assert (os.environ["OMP_NUM_THREADS"], os.environ["MKL_NUM_THREADS"]) == ("3", "3")
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE" and os.environ["R2MR_RUNS_DIR"] == "/store"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert threads.worker_env(1)["OMP_WAIT_POLICY"] == "ACTIVE"


def test_command_line_sets_the_policy_before_torch_is_loaded() -> None:
    """Importing the command line loads no torch, and ``main`` sets the policy first, before any command runs."""
    code = ("import os, sys\nimport r2mr.cli.main\nloaded = 'torch' in sys.modules\ntry:\n"
            "    r2mr.cli.main.main(['--version'])\nexcept SystemExit:\n    pass\n"
            "print(loaded, os.environ.get('OMP_WAIT_POLICY'))\n")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[-2:] == ["False", "PASSIVE"], out.stderr
