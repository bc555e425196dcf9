"""The one two-stage tuning driver (:func:`r2mr.runs.two_stage.run_two_stages`) that notebook 03 and ``run-all``
share, with a fake executor (no training): what each stage executes and which points stage 2 uses."""

from __future__ import annotations

from typing import Any

from r2mr.runs import plan
from r2mr.runs.tuning import Grid, TuningPlan
from r2mr.runs.two_stage import run_two_stages

TP = TuningPlan(points=2, seeds=2, metric="recall@20",
                models={"bpr": Grid({"reg_weight": [0.1, 1.0e-4]}), "lightgcn": Grid({"n_layers": [1, 2]}),
                        "r2mr": Grid({"lr": [1.0e-3, 5.0e-4]})})
BEST = {"bpr": ("reg_weight", 1.0e-4), "lightgcn": ("n_layers", 2), "r2mr": ("lr", 5.0e-4)}  # best on valid


def build(selected: dict | None) -> list[plan.PlannedRun]:
    return plan.build_plan(["synthetic"], [1, 2], "quick", 1, tune=TP, selected=selected,
                           notebooks=["03_main_results"], models="bpr,lightgcn,r2mr", registered=["bpr", "lightgcn"])


class FakeExecutor:
    """Records what each stage executes; a grid point's valid recall is higher at :data:`BEST` (test lower, so
    a test-based pick would differ), and LightGCN's grid point n_layers=1, seed 2 has no result."""

    def __init__(self) -> None:
        self.stages: dict[int, list[plan.PlannedRun]] = {}

    def __call__(self, stage: int, planned: list, todo: list) -> dict[tuple[Any, ...], Any]:
        assert all(p in planned for p in todo)
        self.stages[stage] = list(todo)
        return {p.identity: self.result(p) for p in todo}

    @staticmethod
    def result(p: plan.PlannedRun) -> dict[str, Any] | None:
        point = dict(p.spec.point)
        if p.model == "lightgcn" and point.get("n_layers") == 1 and p.seed == 2:
            return None  # e.g. failed: the grid is incomplete
        key, value = BEST[p.model]
        good = point.get(key) == value
        return {"model": p.model, "dataset": p.dataset, "valid": {"recall@20": 0.2 if good else 0.1},
                "test": {"recall@20": 0.1 if good else 0.2}}


def test_stage_one_runs_what_needs_no_selection_and_stage_two_the_selected_rows() -> None:
    ex = FakeExecutor()
    final = run_two_stages(build, ex)
    one, two = ex.stages[1], ex.stages[2]
    assert {p.stage for p in one} == {0, 1} and len([p for p in one if p.stage == 1]) == 3 * 2 * 2  # grids
    assert {p.spec.role for p in one if p.stage == 0} == {"control"}  # R2MR's content controls need no grid
    assert {(p.model, p.spec.tuning) for p in two} == {("bpr", "tuned"), ("r2mr", "tuned")} and len(two) == 4
    for p in two:  # the point with the best mean valid metric, never the best test one
        key, value = BEST[p.model]
        assert dict(p.spec.point)[key] == value and p.overrides[key] == value
    pending = [p for p in final if p.spec.tuning == "pending"]
    assert {p.model for p in pending} == {"lightgcn"} and len(pending) == 2  # its grid has a run without result
    assert not {p.identity for p in one} & {p.identity for p in two}  # nothing executed twice
    assert {p.identity for p in final} == {p.identity for p in one + two + pending}


def test_selections_already_known_run_in_stage_one() -> None:
    ex = FakeExecutor()
    known = {("synthetic", "bpr"): {"reg_weight": 1.0e-4}}  # e.g. from the tuning grids in the store
    run_two_stages(build, ex, known)
    assert [p.seed for p in ex.stages[1] if p.model == "bpr" and p.spec.tuning == "tuned"] == [1, 2]
    assert {p.model for p in ex.stages[2]} == {"r2mr"}


def test_without_tuning_stage_two_executes_nothing() -> None:
    ex = FakeExecutor()
    untuned = lambda sel: plan.build_plan(["synthetic"], [1], "quick", 1, notebooks=["03_main_results"],  # noqa: E731
                                          models="bpr", registered=["bpr"], selected=sel)
    final = run_two_stages(untuned, ex)
    assert ex.stages[2] == [] and [p.identity for p in ex.stages[1]] == [p.identity for p in final]
