"""Notebook 01's Reviewer tables read from the right model state: before the first rewrite round, at the
best-validation checkpoint (the model the reported metrics come from) and after the last epoch (labelled).

Each state is an artifact view (:func:`r2mr.report.quality.model_states`); every table has a ``model state``
column so a reader never mixes them up. Runs of several seeds: :func:`states_by_seed` keeps each seed's
states, :func:`per_seed` regroups them by seed, and :func:`over_seeds` turns one table per seed into mean,
sample std and n over seeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..runs.notebook_runs import Run, artifacts
from . import quality as analysis

BEST = "best valid"


def states_of(run: Run) -> dict[str, Mapping[str, Any]]:
    """The saved Reviewer states of one finished R2MR run (``before first rewrite`` if a round ran,
    ``best valid`` if the run saved ``artifacts_best``, and ``after training``)."""
    from ..core.atomic_io import load_torch, result_path

    best_path = result_path(run.result, "artifacts_best")
    best = load_torch(best_path) if best_path is not None and best_path.is_file() else None
    return analysis.model_states(artifacts(run), best)


def states_by_seed(runs: Sequence[Run]) -> dict[str, dict[int, dict[str, Mapping[str, Any]]]]:
    """``{data set: {seed: {state: view}}}`` of the finished runs, in run order."""
    out: dict[str, dict[int, dict[str, Mapping[str, Any]]]] = {}
    for r in runs:
        if r.ok:
            out.setdefault(r.dataset, {})[r.seed] = states_of(r)
    return out


def per_seed(by_seed: Mapping[str, Mapping[int, Any]]) -> dict[int, dict[str, Any]]:
    """``{data set: {seed: x}}`` -> ``{seed: {data set: x}}`` (seeds in first-seen order)."""
    out: dict[int, dict[str, Any]] = {}
    for ds, seeds in by_seed.items():
        for seed, x in seeds.items():
            out.setdefault(seed, {})[ds] = x
    return out


def over_seeds(tables: Mapping[int, pd.DataFrame]) -> pd.DataFrame:
    """One table per seed (same index and columns) -> per row: each numeric column's mean over seeds, its
    sample std (``<column> std``; blank with one seed) and ``n seeds``. Row order: the first table's."""
    tables = {seed: t for seed, t in tables.items() if len(t)}
    if not tables:
        return pd.DataFrame()
    stacked = pd.concat(tables, names=["seed"]).select_dtypes("number")
    levels = list(range(1, stacked.index.nlevels))
    grouped = stacked.groupby(level=levels, sort=False)
    mean, std, n = grouped.mean(), grouped.std(ddof=1), grouped.size()
    out = pd.concat({c: mean[c] for c in mean.columns} | {f"{c} std": std[c] for c in std.columns}, axis=1)
    out = out[[c for col in mean.columns for c in (col, f"{col} std")]]
    out["n seeds"] = n
    first = next(iter(tables.values()))
    out.index.names = first.index.names
    return out.reindex(first.index.unique())


def shares_by_state(states: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> pd.DataFrame:
    """Per data set, model state and tie rule (s ≥ η as in the code, s > η as in the paper): the shares of
    the three quality areas. ``states``: ``{data set: {state: artifact view}}``."""
    parts = {(ds, name): analysis.tie_rule_shares(analysis.scores_of(view), float(view["eta"]))
             for ds, by_state in states.items() for name, view in by_state.items()}
    return pd.concat(parts, names=["data set", "model state"]) if parts else pd.DataFrame()


def saturation_by_state(states: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> pd.DataFrame:
    """Per data set, model state and modality: the share of scores at 0, 0.5 and 1 (where the sigmoid
    consensus saturates), which is why the tie rule matters."""
    parts = {(ds, name): analysis.saturation(analysis.scores_of(view))
             for ds, by_state in states.items() for name, view in by_state.items()}
    return pd.concat(parts, names=["data set", "model state"]) if parts else pd.DataFrame()


def detection_by_features(by_features: Mapping[str, Mapping[str, Mapping[str, Any]]],
                          corrupted: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """ROC-AUC of the planted corruption per modality (columns), for each feature treatment (``trained``:
    R2MR's default, the feature tables learn; ``frozen``: the ``content=frozen`` control) and model state."""
    parts = {name: analysis.detection_by_state(states, corrupted) for name, states in by_features.items() if states}
    return pd.concat(parts, names=["feature tables"]) if parts else pd.DataFrame()
