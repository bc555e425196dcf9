"""Executors of the run plan: sequential, worker processes (--jobs) and Ray (local, and a two-node cluster) give
bit-identical results; a worker killed in the middle of a run is retried and resumes to the same numbers; two
executors on one plan train each run once (needs the store's per-run lock); ``plan`` printing.

Small on purpose (a tiny synthetic set, BPR and LightGCN, 2-3 epochs): a few minutes on 2 CPU cores. The Ray
tests are skipped when ray is not importable (``pip install -e .[ray]``).
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
from pathlib import Path

import pytest

from r2mr.cli import plan_commands as plan_cli
from r2mr.core import paths, threads
from r2mr.core.errors import ConfigError
from r2mr.data.synth import SynthConfig, write
from r2mr.runs import executors, experiment, plan

TINY = dict(n_users=150, n_items=80, text_dim=8, image_dim=8, mean_interactions=8.0)
SEEDS = (1, 2, 3, 4)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write(root / "tiny", SynthConfig(**TINY))
    return root


def use_store(monkeypatch: pytest.MonkeyPatch, folder: Path) -> Path:
    """Point this process and its workers at the store ``folder``."""
    monkeypatch.setenv(paths.RUNS_ENV, str(folder))
    return folder


def tiny_plan(epochs: int = 2) -> list[plan.PlannedRun]:
    """8 runs: BPR and LightGCN x 4 seeds on the tiny set (notebook 03's grid, restricted)."""
    return plan.build_plan(["tiny"], SEEDS, "quick", epochs, notebooks=["03_main_results"], models="bpr,lightgcn",
                           registered=["bpr", "lightgcn"])


def numbers(outcomes: list[executors.Outcome]) -> list[tuple]:
    """What must be bit-identical: per run, the selected metrics and every epoch's loss and metrics."""
    return [(o.run.identity, o.result["best_epoch"], o.result["valid"], o.result["test"],
             [(h["loss"], h["valid"], h["test"]) for h in o.result["history"]]) for o in outcomes]


@pytest.fixture(scope="module")
def sequential(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> list[tuple]:
    import torch

    mp, threads = pytest.MonkeyPatch(), torch.get_num_threads()
    try:
        use_store(mp, tmp_path_factory.mktemp("seq-runs"))
        torch.set_num_threads(1)  # as in the workers below (one CPU, one thread per run), whatever the machine
        out = executors.execute_plan(tiny_plan(), data_dir=str(tiny_root), device="cpu", stream=io.StringIO())
    finally:
        torch.set_num_threads(threads)
        mp.undo()
    assert [o.status for o in out] == ["trained"] * 8
    return numbers(out)


def test_plan_has_eight_distinct_runs() -> None:
    runs = tiny_plan()
    assert len(runs) == 8 and len({r.identity for r in runs}) == 8
    assert {r.purposes for r in runs} == {("03_main_results",)}


def test_jobs_match_sequential(sequential: list[tuple], tiny_root: Path, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    use_store(monkeypatch, tmp_path / "runs")
    stream = io.StringIO()
    monkeypatch.setattr(threads, "cores_available", lambda: 2)  # cores / jobs = one thread per worker, as sequential
    out = executors.execute_plan(tiny_plan(), data_dir=str(tiny_root), device="cpu", jobs=2, stream=stream)
    assert numbers(out) == sequential
    assert "[8/8]" in stream.getvalue() and "all done in" in stream.getvalue()
    again = executors.execute_plan(tiny_plan(), data_dir=str(tiny_root), device="cpu", stream=io.StringIO())
    assert [o.status for o in again] == ["cached"] * 8  # the store the workers filled is this process's store


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray instance for the module's tests (starting one takes a while on 2 busy cores)."""
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install -e .[ray])")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_local_matches_sequential(ray_local, sequential: list[tuple], tiny_root: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    use_store(monkeypatch, tmp_path / "runs")
    stream = io.StringIO()
    out = executors.execute_plan(tiny_plan(), data_dir=str(tiny_root), device="cpu", ray="local", stream=stream)
    assert numbers(out) == sequential
    assert stream.getvalue().count("trained in") == 8 and "ETA" in stream.getvalue()
    assert len(list((tmp_path / "runs" / "tiny").glob("*/result.json"))) == 8  # in the store every worker sees


def test_killed_worker_is_retried_and_resumes_to_the_same_numbers(ray_local, tiny_root: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    one = [r for r in tiny_plan(epochs=3) if r.model == "lightgcn" and r.seed == 1]
    use_store(monkeypatch, tmp_path / "seq")
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the Ray worker (one CPU)
    try:
        ref = executors.execute_plan(one, data_dir=str(tiny_root), device="cpu", stream=io.StringIO())
    finally:
        torch.set_num_threads(threads)
    use_store(monkeypatch, tmp_path / "ray")
    marker = tmp_path / "killed.txt"
    import tests.faults

    ray_local.cloudpickle.register_pickle_by_value(tests.faults)  # the Ray workers need not import the tests
    out = executors.execute_plan(one, data_dir=str(tiny_root), device="cpu", ray="local", stream=io.StringIO(),
                                 on_epoch=tests.faults.KillAfter("lightgcn", 1, 1, str(marker)))
    assert marker.read_text() == "killed after epoch 1\n"  # the first attempt died after epoch 1's checkpoint ...
    assert out[0].status == "trained" and out[0].result["epochs_run"] == 3  # ... the retry resumed and finished
    assert numbers(out) == numbers(ref)


def test_ray_reports_an_exception_as_the_other_executors(ray_local, tiny_root: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.faults

    ray_local.cloudpickle.register_pickle_by_value(tests.faults)  # the Ray workers need not import the tests
    use_store(monkeypatch, tmp_path / "runs")
    runs = [r for r in tiny_plan(epochs=2) if r.seed in (1, 2)]
    out = executors.execute_plan(runs, data_dir=str(tiny_root), ray="auto", stream=io.StringIO(),
                                 on_epoch=tests.faults.Raise("lightgcn", 1, MemoryError, "no room"))
    status = {(o.run.model, o.run.seed): o.status for o in out}
    assert status.pop(("lightgcn", 1)) == "failed: MemoryError: no room" and set(status.values()) == {"trained"}


def test_ray_two_node_cluster_matches_sequential(sequential: list[tuple], tiny_root: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install -e .[ray])")
    from ray.cluster_utils import Cluster

    ray.shutdown()  # the module's local instance, if a test above started it
    use_store(monkeypatch, tmp_path / "runs")
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        out = executors.execute_plan(tiny_plan(), data_dir=str(tiny_root), device="cpu", ray=cluster.address,
                                     stream=io.StringIO())
        assert numbers(out) == sequential
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_missing_ray_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "ray", None)
    with pytest.raises(ConfigError, match=r"pip install -e \.\[ray\]"):
        executors.execute_plan(tiny_plan()[:1], ray="auto", stream=io.StringIO())


def _execute_in_child(runs_dir: str, data_dir: str, queue: multiprocessing.Queue) -> None:
    os.environ[paths.RUNS_ENV] = runs_dir
    from r2mr.runs import executors as ex

    queue.put([o.status for o in ex.execute_plan(tiny_plan(), data_dir=data_dir, device="cpu", stream=io.StringIO())])


@pytest.mark.skipif(not hasattr(experiment, "run_folder"),
                    reason="needs the run store's per-run lock (experiment.run_folder, branch store)")
def test_two_executors_on_one_plan_train_each_run_once(tiny_root: Path, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_execute_in_child, args=(str(tmp_path / "runs"), str(tiny_root), queue))
             for _ in range(2)]
    for p in procs:
        p.start()
    statuses = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    trained = sum(s.count("trained") for s in statuses)
    assert trained == 8 and all(set(s) <= {"trained", "cached"} for s in statuses)


def test_plan_printing_shows_stored_runs_and_work_left(tiny_root: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    use_store(monkeypatch, tmp_path / "runs")
    first = [r for r in tiny_plan() if r.model == "bpr" and r.seed == 1]
    executors.execute_plan(first, data_dir=str(tiny_root), device="cpu", stream=io.StringIO())
    args = argparse.Namespace(datasets="tiny", data_dir=str(tiny_root), device="cpu", seeds="1,2", epochs=2,
                              scale=None, notebooks="03")
    monkeypatch.setattr(plan_cli, "run_plan", lambda inv, selected=None: plan.build_plan(
        inv.datasets, inv.seeds, inv.scale, inv.epochs, notebooks=["03_main_results"], models="bpr,lightgcn",
        table_datasets=["tiny", "baby"], registered=["bpr", "lightgcn"]))
    out = io.StringIO()
    assert plan_cli.plan_main(args, out) == 0
    text = out.getvalue()
    assert "03_main_results" in text and "  tiny" in text
    bpr, lgcn = "BPR" + plan.UNTUNED, "LightGCN" + plan.UNTUNED  # no tuning stage: rows say so
    assert f"{bpr:<{len(lgcn)}}  stored (seeds 1); to train (seeds 2)" in text
    assert f"{lgcn}  to train (seeds 1,2)" in text
    assert "baby: all 2 rows not run: data set missing (run `python -m r2mr data download baby`)" in text
    assert "8 runs: 1 stored, 3 to train, 4 cannot run" in text
    assert "work left: about" in text and "1 of 3 estimated from stored runs' timings" in text
