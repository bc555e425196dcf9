"""Notebook 05's tables and figure from its runs (:func:`r2mr.report.main_table.run_main` of the robustness grid:
the store or the evidence archive, trained where absent).

* :func:`run_sets`: ``{data set: {row: RunSet}}`` of the finished runs (the row: the model's printed name, R2MR's
  frozen-feature control apart, :func:`r2mr.report.robustness.row_label`).
* :func:`drop_tables`: ``{variant: drop table}`` (:func:`r2mr.report.robustness.drop_table`): each corrupted
  variant against its clean set, paired by seed.
* :func:`reviewer_states`: ``{data set: {"trained" | "frozen": {seed: {state: view}}}}`` of the R2MR runs on the
  sets with a known corruption (a variant, or the synthetic set's planted one), with its ground truth
  (:func:`ground_truth`); :func:`auc_tables`, :func:`area_tables` and :func:`rewrite_tables` read them.
* :func:`drop_figure`: one panel per variant, each model's relative drop with its 95% interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..data import corrupt
from ..runs.notebook_runs import Run
from . import robustness
from .robustness import FROZEN
from .significance import RunSet

States = dict[str, dict[int, dict[str, Mapping[str, Any]]]]  # {"trained" | "frozen": {seed: {state: view}}}


def _groups(runs: Sequence[Run]) -> dict[str, dict[str, list[Run]]]:
    """``{data set: {row: [finished runs]}}`` (the row: :func:`r2mr.report.robustness.row_label`)."""
    out: dict[str, dict[str, list[Run]]] = {}
    for r in runs:
        if r.ok:
            out.setdefault(r.dataset, {}).setdefault(robustness.row_label(r.result), []).append(r)
    return out


def _run_set(group: Sequence[Run], metric: str) -> RunSet:
    """Each run's test ``metric`` at its best-validation epoch, by seed (no per-user metrics: the drop is a
    seed-level comparison)."""
    return RunSet({r.seed: float(r.result["test"][metric]) for r in group}, pd.Series(dtype=float),
                  group[0].spec.model)


def run_sets(runs: Sequence[Run], metric: str = "recall@20") -> dict[str, dict[str, RunSet]]:
    """``{data set: {row: RunSet}}`` of the finished runs."""
    return {ds: {row: _run_set(g, metric) for row, g in rows.items()} for ds, rows in _groups(runs).items()}


def drop_tables(runs: Sequence[Run], metric: str = "recall@20", reference: str = "R2MR",
                provenance: bool = True) -> dict[str, pd.DataFrame]:
    """``{variant: drop table}`` for every corrupted variant among ``runs`` whose clean set is there too; with
    ``provenance`` each row also says its variant, size, stop rule, selected epochs, seeds, device and commit
    (:func:`r2mr.report.main_table.row_provenance` of the row's runs on the corrupted set)."""
    from .main_table import row_provenance

    groups = _groups(runs)
    sets = {ds: {row: _run_set(g, metric) for row, g in rows.items()} for ds, rows in groups.items()}
    out = {}
    for name in sorted(sets):
        c = corrupt.parse(name)
        if c is None or c.base not in sets:
            continue
        table = robustness.drop_table(sets[c.base], sets[name], reference)
        if provenance and len(table):
            extra = pd.DataFrame({row: row_provenance(groups[name][row]) for row in table.index}).T
            table = table.join(extra.add_prefix("corrupted: "))
        out[name] = table
    return out


def ground_truth(dataset: str, data_dir: Any = None) -> dict[str, np.ndarray]:
    """:func:`r2mr.report.robustness.corruption_masks` of ``dataset`` (a variant: its swapped items; the
    synthetic set: its planted corruption; else none), sized from the clean set's item count."""
    from ..data.discovery import find_dataset_root, load_dataset_named

    base = corrupt.base_name(dataset)
    root = find_dataset_root(base, data_dir)
    n_items = load_dataset_named(base, data_dir, features=False).n_items
    return robustness.corruption_masks(dataset, n_items, root / base if root is not None else None)


def reviewer_states(runs: Sequence[Run], data_dir: Any = None) -> dict[str, tuple[States, dict[str, np.ndarray]]]:
    """``{data set: (states, ground truth)}`` of the finished R2MR runs (trained and frozen feature tables) on
    every data set with a known corruption; the states are :func:`r2mr.report.reviewer_tables.states_of`."""
    from .reviewer_tables import states_of

    out: dict[str, tuple[States, dict[str, np.ndarray]]] = {}
    truth: dict[str, dict[str, np.ndarray]] = {}
    for r in runs:
        if not (r.ok and r.spec.model == "r2mr"):
            continue
        if r.dataset not in truth:
            truth[r.dataset] = ground_truth(r.dataset, data_dir)
        if not truth[r.dataset]:
            continue
        treatment = "frozen" if robustness.row_label(r.result).endswith(FROZEN) else "trained"
        states = out.setdefault(r.dataset, ({}, truth[r.dataset]))[0]
        states.setdefault(treatment, {})[r.seed] = states_of(r)
    return out


def auc_tables(states: Mapping[str, tuple[States, dict[str, np.ndarray]]]) -> dict[str, pd.DataFrame]:
    """``{data set: AUC table}`` (:func:`r2mr.report.robustness.auc_table`) of :func:`reviewer_states`."""
    return {ds: robustness.auc_table(by, masks) for ds, (by, masks) in states.items()}


def area_tables(states: Mapping[str, tuple[States, dict[str, np.ndarray]]],
                state: str = "best valid") -> dict[str, pd.DataFrame]:
    """``{data set: mean over seeds of where the corrupted and clean items lie}`` (quality areas and accepted
    rewrites, :func:`r2mr.report.robustness.area_counts_over_seeds`) for R2MR with trained feature tables, at
    ``state`` (default: the best-validation checkpoint, the model the metrics come from)."""
    out = {}
    for ds, (by, masks) in states.items():
        views = {seed: st[state] for seed, st in by.get("trained", {}).items() if state in st}
        if views:
            out[ds] = robustness.area_counts_over_seeds(views, masks)
    return out


def rewrite_tables(states: Mapping[str, tuple[States, dict[str, np.ndarray]]]) -> dict[str, pd.DataFrame]:
    """``{data set: per seed (index), R2MR with trained feature tables: rewrite rounds, candidates, accepted
    rewrites and rows rewritten over the whole run}`` (:func:`r2mr.report.robustness.rewrite_totals` of the
    final state)."""
    out = {}
    for ds, (by, _) in states.items():
        seeds = {seed: st["after training"] for seed, st in by.get("trained", {}).items() if "after training" in st}
        if seeds:
            out[ds] = robustness.rewrite_totals(list(seeds.values())).set_axis(list(seeds)).rename_axis("seed")
    return out


def drop_figure(tables: Mapping[str, pd.DataFrame], reference: str = "R2MR") -> plt.Figure | None:
    """One panel per variant: each row's relative drop of the metric from clean (mean(corrupted) / mean(clean)
    − 1) with its 95% interval, the reference (R2MR) highlighted; None without a table."""
    tables = {k: t for k, t in tables.items() if len(t)}
    if not tables:
        return None
    cols = min(2, len(tables))
    rows = -(-len(tables) // cols)
    height = 0.45 * max(map(len, tables.values())) + 1.4
    fig, axes = plt.subplots(rows, cols, figsize=(5.0 * cols, height * rows), squeeze=False)
    for ax in axes.flat[len(tables):]:
        ax.set_visible(False)
    for ax, (name, t) in zip(axes.flat, tables.items()):
        y = np.arange(len(t))
        rel, lo, hi = (100 * t[c].to_numpy(float) for c in ("rel drop", "rel drop lo", "rel drop hi"))
        colours = ["tab:red" if row == reference else "tab:blue" for row in t.index]
        ax.errorbar(rel, y, xerr=[rel - lo, hi - rel], fmt="none", ecolor="grey", capsize=3)
        ax.scatter(rel, y, c=colours, zorder=3)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, [f"{row} (n={int(n)})" for row, n in zip(t.index, t["seeds paired"])])
        ax.invert_yaxis()  # the table's order, top down
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("change from clean, % (95% CI)")
    fig.tight_layout()
    return fig
