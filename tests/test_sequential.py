"""The one sequential executor (:func:`r2mr.runs.sequential.execute_sequential`), shared by ``run-all`` and the
notebooks' :func:`r2mr.runs.notebook_runs.run_planned`: plan order, one progress line per run (to a stream or
a logger; one line for a missing data set), Ctrl-C stops at once with the count of finished runs."""

from __future__ import annotations

import io
import logging

import pytest

from r2mr.runs import plan
from r2mr.runs.sequential import Interrupted, Outcome, Progress, execute_sequential

RUNS = plan.build_plan(["synthetic", "absent"], [1, 2], "quick", 1, notebooks=["03_main_results"], models="bpr",
                       registered=["bpr"])
RESULT = {"best_epoch": 3, "epochs_run": 10, "test": {"recall@20": 0.12345}}


def fake(p: plan.PlannedRun) -> Outcome:
    if p.dataset == "absent":
        return Outcome(p, "not run: data set missing (fetch it)", None, 0.0)
    return Outcome(p, "trained", RESULT, 2.0)


def test_runs_in_plan_order_with_one_line_each_and_one_for_a_missing_data_set() -> None:
    seen: list[plan.PlannedRun] = []
    out = execute_sequential(RUNS, fake, lambda o: seen.append(o.run))
    assert [o.run for o in out] == seen == RUNS and len(RUNS) == 4
    progress = Progress(len(RUNS), stream=io.StringIO())
    execute_sequential(RUNS, fake, progress)
    lines = progress.stream.getvalue().splitlines()
    assert len(lines) == 3 and lines[0].startswith("[1/4] BPR")
    assert ": trained in 2.0 s, best epoch 3 of 0-9, test recall@20 0.1235; ETA" in lines[0]
    assert lines[2].startswith("[3/4] absent: not run: data set missing (fetch it) (every run on it)")


def test_progress_to_a_logger(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("r2mr.test_sequential")
    with caplog.at_level(logging.INFO, logger=log.name):
        execute_sequential(RUNS[:2], fake, Progress(2, log=log))
    assert [r.getMessage()[:5] for r in caplog.records] == ["[1/2]", "[2/2]"]
    assert "all done in" in caplog.records[-1].getMessage()


def test_ctrl_c_stops_at_once_and_an_error_goes_on() -> None:
    calls = []

    def interrupted_on_the_second(p: plan.PlannedRun) -> Outcome:
        calls.append(p)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return fake(p)

    with pytest.raises(Interrupted, match=r"^1 of 4 runs finished"):
        execute_sequential(RUNS, interrupted_on_the_second, lambda o: None)
    assert len(calls) == 2  # nothing after the interrupted run

    def broken(p: plan.PlannedRun) -> Outcome:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):  # the notebooks' path: the cell fails there
        execute_sequential(RUNS, broken, lambda o: None)


def test_a_pending_row_is_never_trained_at_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """run_planned: a row whose grid has not selected its configuration is a 'not run' Run; the others train."""
    from dataclasses import replace

    from r2mr.runs import notebook_runs

    trained: list[str] = []

    def fake_run_one(spec, dataset, seed, **_):
        trained.append(spec.label)
        return notebook_runs.Run(spec, dataset, seed, "trained", {"valid": {}})

    monkeypatch.setattr(notebook_runs, "run_one", fake_run_one)
    spec = plan.Spec.of("no Reviewer", "r2mr", role="ablation", use_reviewer=False)
    rows = [plan.PlannedRun("tiktok", replace(spec, tuning="pending"), 1, "converged", None),
            plan.PlannedRun("tiktok", replace(spec, label="full", overrides=()), 1, "converged", None)]
    runs = notebook_runs.run_planned(rows)
    assert [r.status for r in runs] == [notebook_runs.PENDING, "trained"] and trained == ["full"]
