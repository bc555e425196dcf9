"""Issue 22, the executors: Ctrl-C under every executor stops at once (exit 130, one line, the store keeps what
finished), a dead worker is retried once, any exception in a run is ``failed: <one line>``, fault injection only
through a hook. Ctrl-C is a real SIGINT to the child's process group (``tests/faults.py`` drives ``run-all``)."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from r2mr.core import paths
from r2mr.core.paths import REPO_ROOT
from r2mr.data.synth import SynthConfig, write
from r2mr.runs import executors, plan

from .faults import KillAfter, Raise

TINY = dict(n_users=150, n_items=80, text_dim=8, image_dim=8, mean_interactions=8.0)
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write(root / "tiny", SynthConfig(**TINY))
    return root


def tiny_plan(epochs: int = 3, seeds: tuple[int, ...] = (1, 2)) -> list[plan.PlannedRun]:
    return plan.build_plan(["tiny"], seeds, "quick", epochs, notebooks=["03_main_results"], models="bpr,lightgcn",
                           registered=["bpr", "lightgcn"])


def stored(store: Path) -> int:
    return len(list(store.glob("tiny/*/result.json")))


def drive(tiny_root: Path, store: Path, hook: list[str], *extra: str, seeds: str = "1,2") -> subprocess.Popen:
    """``run-all`` on BPR and LightGCN x ``seeds`` in a child, in its own process group, SIGINT at its default
    disposition (a shell that starts the suite in the background ignores it; Python keeps an ignored SIGINT)."""
    cmd = [sys.executable, "-m", "tests.faults", *hook, "--", "--datasets", "tiny", "--data-dir", str(tiny_root),
           "--device", "cpu", "--seeds", seeds, "--notebooks", "03", *extra]
    return subprocess.Popen(cmd, cwd=REPO_ROOT, env={**ENV, paths.RUNS_ENV: str(store)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_first_run(proc: subprocess.Popen) -> list[str]:
    """Read the child's stdout in a thread until its first run's progress line; the lines read so far (the
    list keeps growing)."""
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    deadline = time.time() + 240
    while time.time() < deadline and not any(ln.startswith("[1/8]") for ln in lines) and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    return lines


def interrupt_after_first_run(proc: subprocess.Popen) -> tuple[float, str, str]:
    """Wait for the first run's progress line, send SIGINT to the process group; (seconds until the child
    exited, its stdout, its stderr)."""
    lines = wait_for_first_run(proc)
    t0 = time.time()
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=120)
    seconds = time.time() - t0
    err = proc.stderr.read()
    return seconds, "".join(lines), err


@pytest.mark.parametrize("extra", [[], ["--jobs", "2"], ["--ray", "local", "--cpus-per-run", "1"]],
                         ids=["sequential", "jobs2", "ray"])
def test_ctrl_c_stops_at_once_and_keeps_finished_runs(tiny_root: Path, tmp_path: Path, extra: list[str]) -> None:
    if "--ray" in extra:
        pytest.importorskip("ray", reason="ray is not installed (pip install -e .[ray])")
    store = tmp_path / "runs"
    proc = drive(tiny_root, store, ["Slow", "0.4"], "--epochs", "10", *extra, seeds="1,2,3,4")  # a run: >= 4 s
    seconds, out, err = interrupt_after_first_run(proc)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    m = re.fullmatch(r"interrupted: (\d) of 8 runs finished \(kept in the store.*\); resume with the same command",
                     last)
    assert m and "Traceback" not in err and "leaked" not in err, err
    finished, kept = int(m.group(1)), stored(store)
    assert 1 <= finished < 8 and kept in (finished, finished + 1)  # + one finishing as the signal came
    assert seconds < 10, seconds  # the queued runs were cancelled: 7 runs x 4 s were left
    assert not [p for p in store.rglob(".*") if p.is_file() and p.name != ".lock"]  # no half-written file
    if extra:
        return
    again = drive(tiny_root, store, ["none"], "--epochs", "10", seeds="1,2,3,4")  # the same command resumes
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert stored(store) == 8 and out.count(": trained in") == 8 - kept  # only what the store did not keep


def test_sigterm_to_run_all_stops_its_workers_like_ctrl_c(tiny_root: Path, tmp_path: Path) -> None:
    """``kill PID`` on run-all with --jobs 2: the parent alone gets SIGTERM; it stops and joins its workers
    (none is left orphaned, training on), keeps what finished and says how to resume, like Ctrl-C."""
    store = tmp_path / "runs"
    proc = drive(tiny_root, store, ["Slow", "0.4"], "--epochs", "10", "--jobs", "2", seeds="1,2,3,4")
    wait_for_first_run(proc)
    t0 = time.time()
    os.kill(proc.pid, signal.SIGTERM)  # the parent alone, as `kill PID` does
    proc.wait(timeout=120)
    seconds, orphans = time.time() - t0, True
    while orphans and time.time() - t0 < 30:
        try:
            os.killpg(proc.pid, 0)  # a process of its session (a worker) is still alive
            time.sleep(0.1)
        except ProcessLookupError:
            orphans = False
    if orphans:
        os.killpg(proc.pid, signal.SIGKILL)
    err = proc.stderr.read()
    assert not orphans, f"run-all's workers outlived it after SIGTERM: {err}"
    assert proc.returncode == 130 and seconds < 10, err
    assert re.fullmatch(r"interrupted: \d of 8 runs finished \(kept in the store.*\); resume with the same command",
                        err.strip().splitlines()[-1]) and "Traceback" not in err, err
    assert not [p for p in store.rglob(".*") if p.is_file() and p.name != ".lock"]  # no half-written file


def test_dead_worker_is_retried_once_and_resumes(tiny_root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "killed.txt"
    proc = drive(tiny_root, tmp_path / "runs", ["KillAfter", "lightgcn", "2", "1", str(marker)], "--epochs", "3",
                 "--jobs", "2")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert marker.read_text() == "killed after epoch 1\n"  # the first attempt died after epoch 1's checkpoint
    # the other worker's run is retried with the dead one's when the pool breaks: if it had finished and been
    # stored just before, the retry reads it back ("cached") instead of training it again
    done = re.findall(r": (trained|cached) in", out)
    assert stored(tmp_path / "runs") == 4 and len(done) == 4 and done.count("trained") >= 3, out
    assert "Traceback" not in err and "leaked" not in err and "BrokenProcessPool" not in err, err


def test_worker_that_keeps_dying_fails_alone_with_one_line(tiny_root: Path, tmp_path: Path) -> None:
    proc = drive(tiny_root, tmp_path / "runs", ["KillAfter", "bpr", "2", "0"], "--epochs", "2", "--jobs", "2")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 3, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: 1 of 4 runs failed, first: BPR") and "seed 2: failed: its worker process " \
        "died 2 times (killed by SIGKILL" in lines[-1], err
    assert "Traceback" not in err and "leaked" not in err, err
    assert stored(tmp_path / "runs") == 3  # the other runs went on


def test_retried_run_gives_the_same_numbers(tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    two = [r for r in tiny_plan() if r.seed == 1]  # BPR and LightGCN, seed 1: both workers busy
    monkeypatch.setenv(paths.RUNS_ENV, str(tmp_path / "ref"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers
    try:
        ref = executors.execute_plan(two, data_dir=str(tiny_root), stream=io.StringIO())
    finally:
        torch.set_num_threads(threads)
    monkeypatch.setenv(paths.RUNS_ENV, str(tmp_path / "killed"))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    hook = KillAfter("lightgcn", 1, 1, str(tmp_path / "marker"))
    out = executors.execute_plan(two, data_dir=str(tiny_root), jobs=2, stream=io.StringIO(), on_epoch=hook)
    assert (tmp_path / "marker").exists() and [o.status for o in out] == ["trained", "trained"]
    numbers = [[(h["loss"], h["valid"], h["test"]) for h in o.result["history"]] for o in out]
    assert numbers == [[(h["loss"], h["valid"], h["test"]) for h in o.result["history"]] for o in ref]


@pytest.mark.parametrize("kind, jobs", [(RuntimeError, 1), (MemoryError, 1), (MemoryError, 2)])
def test_any_exception_in_a_run_is_one_failed_line(tiny_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   kind: type, jobs: int) -> None:
    monkeypatch.setenv(paths.RUNS_ENV, str(tmp_path / "runs"))
    stream = io.StringIO()
    out = executors.execute_plan(tiny_plan(epochs=2), data_dir=str(tiny_root), jobs=jobs, stream=stream,
                                 on_epoch=Raise("bpr", 2, kind, "no room"))
    status = {(o.run.model, o.run.seed): o.status for o in out}
    assert status.pop(("bpr", 2)) == f"failed: {kind.__name__}: no room"
    assert set(status.values()) == {"trained"} and "Traceback" not in stream.getvalue()


def test_fault_injection_is_not_read_from_the_environment() -> None:
    source = "\n".join(p.read_text() for p in (REPO_ROOT / "r2mr").rglob("*.py"))
    assert "R2MR_FAULT" not in source and "os._exit(17)" not in source
