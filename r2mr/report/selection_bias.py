"""Selection bias: how much higher a test number gets when the test split picks the model.

For every model and seed, the test metric under *test* selection minus the test metric under *validation*
selection (absolute, and relative to the validation-selected value), summarised as mean ± sample std over
seeds with n:

* ``best test epoch``: within one run, the official rule's test-selected epoch
  (``result["test_selected_by_test"]``, the authors' trainer) vs the best-valid epoch (``result["test"]``);
* ``best test grid point``: across a tuning grid of one seed, the point with the best test value at its
  best-valid epoch (MMRec's grid-search summary) vs the point with the best validation value;
* ``both``: the best test epoch of the best test grid point vs the validation-selected point and epoch.

No published source reports this; it shows how much of a published margin test selection can explain.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .significance import format_cell, mean_std_n

RULES = ("best test epoch", "best test grid point", "both")


def epoch_gaps(runs: Sequence[Mapping[str, Any]], metric: str = "recall@20") -> dict[int, tuple[float, float]]:
    """``{seed: (validation-selected test value, test-selected test value)}`` of single runs."""
    return {int(r["seed"]): (float(r["test"][metric]), float(r["test_selected_by_test"][metric])) for r in runs}


def grid_gaps(grid: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]], metric: str = "recall@20",
              epoch_too: bool = False) -> dict[int, tuple[float, float]]:
    """Per seed over a grid ``[(overrides, result), ...]``: (test value of the point with the best valid value,
    best test value over the points); with ``epoch_too`` the latter uses each point's test-selected epoch.
    Ties go to the point listed first."""
    by_seed: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for _, res in grid:
        by_seed[int(res["seed"])].append(res)
    out = {}
    for seed, results in sorted(by_seed.items()):
        valid = np.array([r["valid"][metric] for r in results], float)
        chosen = float(results[int(np.argmax(valid))]["test"][metric])
        field = "test_selected_by_test" if epoch_too else "test"
        out[seed] = (chosen, max(float(r[field][metric]) for r in results))
    return out


def _row(pairs: Mapping[int, tuple[float, float]]) -> dict[str, Any]:
    base = [v for v, _ in pairs.values()]
    picked = [t for _, t in pairs.values()]
    diff = [t - v for v, t in pairs.values()]
    rel = [(t - v) / v if v else np.nan for v, t in pairs.values()]
    (d_mean, d_std, n), (r_mean, r_std, _) = mean_std_n(diff), mean_std_n(rel)
    return {"validation-selected": mean_std_n(base)[0], "test-selected": mean_std_n(picked)[0],
            "abs diff": d_mean, "abs diff std": d_std, "rel diff": r_mean, "rel diff std": r_std, "n seeds": n,
            "abs": format_cell(diff), "rel %": format_cell([100 * x for x in rel], digits=1)}


def selection_bias_table(runs: Mapping[str, Sequence[Mapping[str, Any]]],
                         grids: Mapping[str, Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]] | None = None,
                         metric: str = "recall@20") -> pd.DataFrame:
    """One row per (model, rule): ``runs`` maps a model to its runs (seeds) of the selected configuration,
    ``grids`` (optional) to its tuning-grid runs ``[(overrides, result)]``. Rows without data are left out."""
    rows = []
    for model in dict.fromkeys([*runs, *(grids or {})]):
        gaps = {}
        if runs.get(model):
            gaps[RULES[0]] = epoch_gaps(runs[model], metric)
        if grids and grids.get(model):
            gaps[RULES[1]] = grid_gaps(grids[model], metric)
            gaps[RULES[2]] = grid_gaps(grids[model], metric, epoch_too=True)
        rows += [{"model": model, "selection": rule, **_row(pairs)} for rule, pairs in gaps.items()]
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).set_index(["model", "selection"])
