"""The two plan stages of tuning, driven once for every caller (notebook 03's :func:`r2mr.report.main_table.run_main`,
sequential; ``run-all``'s :func:`r2mr.cli.plan_commands.run_all_main`, with processes or Ray):

1. the plan with the selections known so far: every run that needs no selection is executed (the tuning grids,
   and the other notebooks' runs);
2. each (data set, model) whose grid is complete gets its point picked on validation
   (:func:`r2mr.runs.plan.select_points`); the plan with those points: its runs not executed yet (the main rows at
   the selected points) are executed. A row whose grid is incomplete stays ``pending`` and is not executed.

The caller supplies how a plan is built and how runs are executed (the executor, and what it prints).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .plan import PlannedRun, select_points

Selected = dict[tuple[str, str], dict[str, Any]]  # {(data set, model): the selected grid point's overrides}
Result = dict[str, Any] | None  # a run's result (its record), None if it has none (not run, failed)
# execute(stage, plan, todo) -> {identity: result} for every run of todo (todo: runs of plan to execute)
Execute = Callable[[int, list[PlannedRun], list[PlannedRun]], Mapping[tuple[Any, ...], Result]]


def run_two_stages(build: Callable[[Selected | None], list[PlannedRun]], execute: Execute,
                   selected: Selected | None = None, metric: str = "recall@20") -> list[PlannedRun]:
    """Execute both stages; returns the stage-2 plan (every run of both stages, in plan order; pending rows
    are those whose grid has a run without a result). ``build(selected)``: the plan with those selections
    (stage-2 rows without one are pending); ``selected``: the selections already known (e.g. from the store),
    so their rows run in stage 1 already; ``metric``: the validation metric the selection maximises."""
    plan, done = build(selected), {}
    for stage in (1, 2):
        todo = [p for p in plan if p.spec.tuning != "pending" and p.identity not in done]
        done.update(execute(stage, plan, todo))
        if stage == 1:
            grid = [p for p in plan if p.stage == 1]
            picked = select_points(((p.dataset, p.spec, done.get(p.identity)) for p in grid), metric)
            plan = build({**(selected or {}), **picked})
    return plan
